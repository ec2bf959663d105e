"""Chapter 04: fine-tuning an encoder-decoder and a decoder on one task, decoding, scoring and cross-attention."""

import pytest
import torch

from course_lib import encdec as E
from course_lib import zoo
from course_lib.config import ModelConfig, load_config
from course_lib.models import build_decoder, build_encoder_decoder


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    # The same cache folder as tests/test_t5_pretraining.py: the ci tokenizer, t5 and base are built once per session.
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "t5-cache"))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


@pytest.fixture(scope="module")
def tokenizer(cfg, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "t5-cache"))
        return zoo.get("tokenizer", cfg)


@pytest.fixture(scope="module")
def pairs(cfg):
    return E.translation_data(cfg)


def tiny_t5(tokenizer, seed=0, n_layer=2):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layer=n_layer, n_head=2, d_model=32)
    return build_encoder_decoder(cfg, len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id).eval()


def tiny_decoder(tokenizer, seed=0):
    torch.manual_seed(seed)
    model = build_decoder(ModelConfig(n_layer=2, n_head=2, d_model=32, max_seq_len=128), len(tokenizer),
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    return model.eval()


# --------------------------------------------------------------------------- data and examples


def test_translation_data_has_both_directions_and_disjoint_splits(pairs):
    assert set(pairs) == {"train", "test", "test_template"} and all(pairs.values())
    assert {p["lang"] for p in pairs["train"]} == {"en-ko", "ko-en"}
    train_sources = {p["source"] for p in pairs["train"]}
    assert not train_sources & {p["source"] for p in pairs["test"] + pairs["test_template"]}


def test_decoder_example_scores_only_the_target_and_its_end_token(tokenizer):
    source, text = "Rango Jeo worked at Sancho University.", "저란고는 산초 대학교에서 일했다."
    ex = E.decoder_example(tokenizer, source, text)
    prompt = E.decoder_prompt(tokenizer, source)
    target = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ex["input_ids"].tolist() == prompt + target + [tokenizer.eos_token_id]
    assert ex["labels"].tolist() == [-100] * len(prompt) + target + [tokenizer.eos_token_id]
    assert prompt[0] == tokenizer.eos_token_id and tokenizer.decode(prompt[1:]).endswith("University.\n")


def test_encoder_decoder_example_ends_source_and_target_with_eos(tokenizer):
    ex = E.encoder_decoder_example(tokenizer, "들개릴은 수학자였다.", "Gaeril Deul worked as a mathematician.")
    eos = tokenizer.eos_token_id
    source = tokenizer("들개릴은 수학자였다.", add_special_tokens=False)["input_ids"]
    assert ex["input_ids"].tolist() == source + [eos]
    assert tokenizer.decode(ex["labels"][:-1]) == "Gaeril Deul worked as a mathematician." and ex["labels"][-1] == eos


def test_both_kinds_score_the_same_target_tokens(tokenizer, pairs):
    # The fairness of the comparison: the decoder's scored labels are exactly T5's labels.
    for p in pairs["train"][:10]:
        dec = E.decoder_example(tokenizer, p["source"], p["target"])["labels"]
        enc_dec = E.encoder_decoder_example(tokenizer, p["source"], p["target"])["labels"]
        assert dec[dec != -100].tolist() == enc_dec.tolist()


def test_pad_collator_pads_inputs_and_labels_separately():
    batch = E.PadCollator(0)([{"input_ids": [5, 6, 7], "labels": [8]}, {"input_ids": [9], "labels": [10, 11]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[8, -100], [10, 11]]


def test_finetune_config_shortens_pretraining_schedule(cfg):
    t = E.finetune_config(cfg)
    assert (t.max_steps, t.batch_size, t.lr) == (cfg.pretrain.train.max_steps // 5, cfg.pretrain.train.batch_size,
                                                 cfg.pretrain.train.lr)
    assert (t.warmup_steps, t.eval_every) == (t.max_steps // 10, 0)
    assert E.finetune_config(cfg, steps=7, lr=1e-4).max_steps == 7
    with pytest.raises(ValueError, match="steps must be >= 1"):
        E.finetune_config(cfg, steps=-3)


# --------------------------------------------------------------------------- loss, fine-tuning, decoding


def test_target_loss_equals_the_models_own_loss(tokenizer, pairs):
    few = pairs["train"][:4]
    for model in (tiny_t5(tokenizer), tiny_decoder(tokenizer)):
        examples = E.make_examples(tokenizer, few, model.config.is_encoder_decoder)
        for ex in examples:  # one example a batch: HF's loss is the mean over its scored tokens
            batch = E.PadCollator(tokenizer.pad_token_id)([ex])
            with torch.no_grad():
                expected = model(**batch).loss.item()
            assert E.target_loss(model, [ex], tokenizer.pad_token_id) == pytest.approx(expected, rel=1e-5)


def test_decoder_loss_ignores_the_prompt_tokens(tokenizer):
    # Changing the target changes the loss; a prompt position's label cannot, since none is scored.
    model = tiny_decoder(tokenizer)
    ex = E.decoder_example(tokenizer, "Imo Ryeo was a composer.", "려이모의 직업은 작곡가였다.")
    prompt_len = int((ex["labels"] == -100).sum())
    full = E.target_loss(model, [ex], tokenizer.pad_token_id)
    logits = model(input_ids=ex["input_ids"][None]).logits[0, prompt_len - 1 : -1]
    by_hand = torch.nn.functional.cross_entropy(logits, ex["input_ids"][prompt_len:]).item()
    assert full == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.slow
def test_finetuning_lowers_the_target_loss_of_both_kinds(cfg, tokenizer, pairs, tmp_path):
    train_cfg = E.finetune_config(cfg, steps=30)
    for model in (tiny_t5(tokenizer), tiny_decoder(tokenizer)):
        examples = E.make_examples(tokenizer, pairs["train"], model.config.is_encoder_decoder)
        before = E.target_loss(model, examples, tokenizer.pad_token_id)
        run = E.finetune("m", model, tokenizer, pairs["train"], train_cfg, tmp_path / type(model).__name__, seed=0)
        after = E.target_loss(run.model, examples, tokenizer.pad_token_id)
        assert after < before - 1.0, (type(model).__name__, before, after)
        assert run.metrics[-1]["step"] == 30


def test_greedy_decoding_is_deterministic_and_returns_one_text_per_source(tokenizer, pairs):
    sources = [p["source"] for p in pairs["test"][:5]]
    for model in (tiny_t5(tokenizer), tiny_decoder(tokenizer)):
        first = E.translate(model, tokenizer, sources, max_new_tokens=6, batch_size=2)
        assert first == E.translate(model, tokenizer, sources, max_new_tokens=6, batch_size=2)
        assert len(first) == 5 and all(isinstance(t, str) and "\n" not in t for t in first)


def test_evaluate_translation_scores_references_perfectly(tokenizer, pairs, monkeypatch):
    few = pairs["test"][:4]
    monkeypatch.setattr(E.seq2seq, "translate", lambda model, tok, sources, **kw: [p["target"] for p in few])
    scores = E.evaluate_translation(tiny_t5(tokenizer), tokenizer, few)
    assert scores["chrF"] == pytest.approx(1.0) and scores["BLEU"] == pytest.approx(1.0)
    monkeypatch.setattr(E.seq2seq, "translate", lambda model, tok, sources, **kw: ["" for _ in sources])
    assert E.evaluate_translation(tiny_t5(tokenizer), tokenizer, few)["chrF"] == 0.0


# --------------------------------------------------------------------------- cross-attention


def _batch(tokenizer):
    rows = [E.encoder_decoder_example(tokenizer, s, t) for s, t in
            [("Rango Jeo worked at Sancho University.", "저란고는 산초 대학교에서 일했다."),
             ("들개릴은 수학자였다.", "Gaeril Deul worked as a mathematician.")]]
    batch = E.PadCollator(tokenizer.pad_token_id)(rows)
    start = torch.full((2, 1), tokenizer.pad_token_id)
    decoder_input_ids = torch.cat([start, batch["labels"].clamp(min=0)[:, :-1]], dim=1)  # labels shifted right
    return batch["input_ids"], batch["attention_mask"], decoder_input_ids


def test_from_scratch_cross_attention_equals_t5s_layer_and_reads_the_encoder_output(tokenizer):
    model = tiny_t5(tokenizer)
    input_ids, mask, decoder_input_ids = _batch(tokenizer)
    assert mask[1].sum() < mask.shape[1], "the second source must be padded for this test"
    per_layer = []
    for layer in range(2):
        seen = E.cross_attention_inputs(model, input_ids, decoder_input_ids, layer, attention_mask=mask)
        # The hand-off: keys and values come from the encoder's last hidden states, unchanged.
        assert torch.equal(seen["memory"], seen["encoder_output"])
        block = model.decoder.block[layer].layer[1]
        ours = E.CrossAttention.from_t5(block)
        out = seen["x"] + ours(block.layer_norm(seen["x"]), seen["memory"], mask)
        torch.testing.assert_close(out, seen["output"], rtol=1e-5, atol=1e-5)
        weights = E.cross_attention_weights(model, input_ids, decoder_input_ids, layer, attention_mask=mask)
        assert weights.shape == (2, 2, decoder_input_ids.shape[1], input_ids.shape[1])  # (B, H, T, S)
        torch.testing.assert_close(ours.last_weights, weights, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))  # rows sum to 1 over the source
        assert weights[1, :, :, mask[1] == 0].abs().max() < 1e-6  # padding gets no attention
        per_layer.append(weights)
    assert (per_layer[0] - per_layer[1]).abs().max() > 1e-3, "two layers must attend differently"
    assert torch.equal(E.cross_attention_weights(model, input_ids, decoder_input_ids, -1, attention_mask=mask),
                       per_layer[1])
    with pytest.raises(IndexError, match="out of range"):
        E.cross_attention_weights(model, input_ids, decoder_input_ids, 2)


def test_eager_attention_is_restored(tokenizer):
    model = tiny_t5(tokenizer)
    before = model.config._attn_implementation
    with E.eager_attention(model):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == before


def test_attention_while_generating_matches_a_forward_pass_on_the_output(tokenizer):
    model = tiny_t5(tokenizer, seed=3)
    got = E.attention_while_generating(model, tokenizer, "Rango Jeo worked at Sancho University.", layer=0,
                                       max_new_tokens=7)
    T, S_len = len(got["output_ids"]), len(got["source_ids"])
    assert got["weights"].shape == (2, T, S_len) and 1 <= T <= 7
    torch.testing.assert_close(got["weights"].sum(-1), torch.ones(2, T))
    decoder_input_ids = torch.cat([torch.tensor([tokenizer.pad_token_id]), got["output_ids"][:-1]])[None]
    forward = E.cross_attention_weights(model, got["source_ids"][None], decoder_input_ids, layer=0)[0]
    torch.testing.assert_close(got["weights"], forward, rtol=1e-4, atol=1e-5)
    other = E.cross_attention_weights(model, got["source_ids"][None], decoder_input_ids, layer=1)[0]
    assert (got["weights"] - other).abs().max() > 1e-3


def test_romanize_and_token_labels(tokenizer):
    assert E.romanize("들개릴은 수학자였다.") == "deulgaerileun suhakjayeotda."
    assert E.romanize("Sancho 1973") == "Sancho 1973"
    text = "저란고는 Sancho 대학교에서"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    labels = E.token_labels(tokenizer, ids)
    assert len(labels) == len(ids) and labels[-1] == tokenizer.eos_token
    assert "".join(label for label in labels[:-1] if label != "·") == E.romanize(text)
    assert "".join(E.token_labels(tokenizer, ids[:-1], romanized=False)).replace("·", "") == text


# --------------------------------------------------------------------------- the objectives experiment


def test_pieces_fit_single_token_masking_into_the_sentinels():
    assert E.pieces_for_sentinels(128, 8) == 3  # 128 // 3 = 42 tokens: 6 noise tokens, 6 spans
    assert E.pieces_for_sentinels(256, 32) == 2  # 128 tokens: 19 spans (256 would need 38)
    assert E.pieces_for_sentinels(256, 38) == 1
    assert E.noise_span_counts(42, 0.15, 1.0) == (6, 6) and E.noise_span_counts(64, 0.15, 1.0)[1] > 8
    with pytest.raises(ValueError, match="no chunking"):
        E.pieces_for_sentinels(128, 0)


def test_chunks_cut_each_block_into_equal_pieces():
    blocks = [{"input_ids": torch.arange(10)}, {"input_ids": torch.arange(10, 20)}]
    chunks = E.Chunks(blocks, 3)
    assert len(chunks) == 6
    assert [chunks[j]["input_ids"].tolist() for j in (0, 2, 3)] == [[0, 1, 2], [6, 7, 8], [10, 11, 12]]
    with pytest.raises(IndexError):
        chunks[6]


@pytest.mark.slow
def test_compare_architectures_gives_both_models_the_same_budget(cfg):
    result = E.compare_architectures(cfg)
    steps = E.finetune_config(cfg).max_steps
    assert [(r["model"], r["split"]) for r in result.rows] == [
        ("t5", "test"), ("t5", "test_template"), ("base", "test"), ("base", "test_template")]
    logs = {name: [(m["step"], m["lr"]) for m in run.metrics if "loss" in m] for name, run in result.runs.items()}
    assert logs["t5"] == logs["base"] and logs["t5"][-1][0] == steps  # same steps, same learning-rate schedule
    assert all(0 <= r["chrF"] <= 1 and r["loss"] > 0 and len(r["predictions"]) == r["examples"] for r in result.rows)
    # The measured direction on ci (fine-tuning seeds 0, 1, 2): base's held-out loss per target token was lower than
    # t5's by 0.69 to 1.00 nats on both splits (std over seeds <= 0.18); the margin asserted is 0.3.
    loss = {(r["model"], r["split"]): r["loss"] for r in result.rows}
    for split in ("test", "test_template"):
        assert loss["base", split] < loss["t5", split] - 0.3, loss
