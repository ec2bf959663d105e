"""Chapter 04: the T5 encoder-decoder built from the profile and its span-corruption pretraining (`t5`)."""

import math
import time

import pytest
from transformers import T5ForConditionalGeneration

from course_lib import encdec as E
from course_lib import zoo
from course_lib.config import ConfigError, ModelConfig, load_config
from course_lib.models import build_decoder, build_encoder_decoder, count_parameters, llama_ff_width


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    # One cache for the module (not shared with test_seq2seq.py, so that the t5 fixture times a real build).
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "t5-pretraining-cache"))


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


# --------------------------------------------------------------------------- the model


def test_encoder_decoder_takes_its_sizes_from_the_decoders_config():
    cfg = ModelConfig(n_layer=2, n_head=2, d_model=64)
    model = build_encoder_decoder(cfg, 1024, pad_token_id=0, eos_token_id=1)
    c = model.config
    assert (c.d_model, c.num_heads, c.d_kv, c.num_layers, c.num_decoder_layers) == (64, 2, 32, 2, 2)
    assert c.d_ff == llama_ff_width(64) == 192 and c.is_gated_act
    assert c.decoder_start_token_id == c.pad_token_id == 0 and c.eos_token_id == 1
    assert model.lm_head.weight is model.shared.weight  # tied, as in build_decoder
    # Hand count (V = 1024, d = 64, ff = 192, 2 heads, 32 position buckets):
    #   embeddings V d = 65536
    #   encoder layer: attention 4 d^2 + gated FFN 3 d ff + 2 norms = 16384 + 36864 + 128 = 53376
    #   decoder layer: self + cross attention 8 d^2 + FFN 3 d ff + 3 norms = 32768 + 36864 + 192 = 69824
    #   each stack: relative position bias 32 * 2 = 64 and a final norm 64
    assert count_parameters(model) == 65536 + 2 * 53376 + 2 * 69824 + 2 * (64 + 64) == 312192
    # The decoder of the same config: 65536 + 2 * (4 d^2 + 3 d ff + 2 d) + d = 172352.
    assert count_parameters(build_decoder(cfg, 1024)) == 172352


def test_gpt2_arch_gives_the_original_t5_feed_forward_and_bad_heads_are_an_error():
    model = build_encoder_decoder(ModelConfig(arch="gpt2", n_layer=1, n_head=2, d_model=32), 300)
    assert model.config.d_ff == 128 and not model.config.is_gated_act
    with pytest.raises(ConfigError, match="divisible"):
        build_encoder_decoder(ModelConfig(n_head=3, d_model=64), 300)


def test_t5_data_is_the_packed_corpus_span_corrupted(cfg):
    train_data, eval_data = E.span_corruption_data(cfg)
    blocks = zoo.get("pretrain-data", cfg)
    t = cfg.pretrain.train
    assert len(eval_data) == len(blocks["eval"]) > 0
    assert len(train_data) >= t.max_steps * t.batch_size > len(blocks["train"])  # fresh spans on each pass
    sentinels = set(E.sentinel_ids(zoo.get("tokenizer", cfg)))
    row = train_data[len(blocks["train"]) + 3]  # block 3, second pass
    n, s = E.noise_span_counts(cfg.pretrain.block_size)
    assert row["input_ids"].shape == (cfg.pretrain.block_size - n + s + 1,) and row["labels"].shape == (n + s + 1,)
    hidden = [t for t in row["input_ids"][:-1].tolist() + row["labels"][:-1].tolist() if t not in sentinels]
    assert sorted(hidden) == sorted(blocks["train"][3]["input_ids"].tolist())


# --------------------------------------------------------------------------- the ci t5 model


@pytest.fixture(scope="module")
def t5(cfg, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "t5-pretraining-cache"))
        zoo.build("pretrain-data", cfg)  # time only the t5 build below
        start = time.perf_counter()
        trained = zoo.get("t5", cfg)
        trained.build_seconds = time.perf_counter() - start
    return trained


@pytest.mark.slow
def test_t5_learns_on_the_ci_profile(cfg, t5):
    evals = [r["eval_loss"] for r in t5.metrics if "eval_loss" in r]
    assert len(evals) == 3 and t5.metrics[-1]["step"] == cfg.pretrain.train.max_steps
    # Falls, and ends well below log V (a uniform guess over the 1024 tokens: 6.93 nats).
    assert evals[-1] < evals[0] - 0.2 and evals[-1] < 0.75 * math.log(len(t5.tokenizer)), evals
    assert isinstance(t5.model, T5ForConditionalGeneration)
    assert count_parameters(t5.model) == count_parameters(build_encoder_decoder(cfg.model, len(t5.tokenizer)))


@pytest.mark.slow
def test_t5_is_cached_by_the_zoo(cfg, t5):
    start = time.perf_counter()
    again = zoo.get("t5", cfg)
    assert again.path == t5.path and zoo.manifest("t5", cfg)["deps"].keys() == {"tokenizer", "pretrain-data"}
    assert time.perf_counter() - start < t5.build_seconds
    assert not (t5.path / "checkpoints").exists() and (t5.path / "final" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_t5_fills_in_sentinels_in_order(cfg, t5):
    """Greedy output on a held-out input starts with <extra_id_0> and lists the sentinels in order."""
    _, eval_data = E.span_corruption_data(cfg)
    row = eval_data[0]
    out = t5.model.generate(input_ids=row["input_ids"][None], max_new_tokens=40, do_sample=False)[0].tolist()
    sentinels = E.sentinel_ids(t5.tokenizer)
    assert out[0] == t5.tokenizer.pad_token_id and out[1] == sentinels[0]  # decoding starts from pad
    emitted = [t for t in out if t in sentinels]
    assert emitted == sentinels[: len(emitted)] and len(emitted) >= 2
