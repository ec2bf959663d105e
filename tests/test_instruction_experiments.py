"""Chapter 06's experiments: short SFT runs that vary one thing, and the memory of a training step."""

import copy

import pytest
import torch

from course_lib import zoo
from course_lib import instruction as I
from course_lib.config import load_config
from course_lib.instruction.templates import templates


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "instruct-cache"))


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


@pytest.fixture(scope="module")
def base(cfg, tmp_path_factory):
    import os

    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "instruct-cache")
    return zoo.get("base", cfg)


def test_training_templates_keeps_the_first_n_training_phrasings(cfg):
    for n in (1, 3):
        rows = I.instruction_examples(cfg, split="train", training_templates=n)
        for r in rows:
            allowed = [t.id for t in templates(r["task"], r["lang"]) if not t.held_out][:n]
            assert r["template_id"] in allowed, r["id"]
    held = I.instruction_examples(cfg, split="test_template", training_templates=1)
    assert held == I.instruction_examples(cfg, split="test_template")  # held-out phrasings are not restricted
    with pytest.raises(ValueError, match="training_templates: expected None or an int >= 1, got 0"):
        I.instruction_examples(cfg, training_templates=0)


def test_short_sft_trains_a_copy_and_merges_lora(cfg, base):
    rows = I.mix(I.instruction_examples(cfg, clusters=["closed_book_qa"], per_task_cap=8), seed=0)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    full, stats = I.short_sft(base, rows, cfg)
    assert stats["trainable"] == stats["total"] == sum(p.numel() for p in base.model.parameters())
    lora, lora_stats = I.short_sft(base, rows, cfg, lora_rank=4)
    assert 0 < lora_stats["trainable"] < 0.5 * stats["trainable"]
    assert not any(isinstance(m, I.LoRALinear) for m in lora.modules())  # merged back into plain layers
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())  # base itself untouched
    changed = [k for k, v in full.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(not torch.equal(v, before[k]) for k, v in lora.state_dict().items()
                           if k.endswith(("q_proj.weight", "down_proj.weight")))


def test_peak_step_memory_counts_adams_moments(cfg, base):
    """A step of full fine-tuning allocates a gradient and two AdamW moments per weight; LoRA's, per adapter number."""
    tok = I.add_chat_template(base.tokenizer)
    rows = I.instruction_examples(cfg, clusters=["closed_book_qa"], per_task_cap=2)
    batch = I.pad_rows([I.chat_example(tok, r["messages"], r["id"]) for r in rows[:2]], tok.pad_token_id)
    full = I.peak_step_memory(copy.deepcopy(base.model), batch)
    n = sum(p.numel() for p in base.model.parameters())
    assert full >= 3 * 4 * n  # float32 gradient + exp_avg + exp_avg_sq, at least
    lora = I.apply_lora(copy.deepcopy(base.model), ["q_proj"], r=2, alpha=4)
    assert 0 < I.peak_step_memory(lora, batch) < full


def test_the_experiment_artifacts_hold_every_run(cfg, base):
    ex = cfg.instruct_experiments
    clusters = zoo.get("instruct-clusters", cfg)["cluster_count"]
    assert [(r["clusters"], r["seed"]) for r in clusters] == [(k, s) for k in ex.cluster_counts for s in range(ex.seeds)]
    assert all(ex.held_out_cluster not in r["trained_on"] and len(r["trained_on"]) == r["clusters"] for r in clusters)
    ablations = zoo.get("instruct-ablations", cfg)
    assert [r["templates"] for r in ablations["template_diversity"]] == ex.template_counts
    assert [r["tuned_on"] for r in ablations["cross_lingual"]] == ["en", "ko", "en+ko"]
    lora = ablations["lora_vs_full"]
    assert [r["rank"] for r in lora] == [0, *ex.lora_ranks] and lora[0]["share"] == 1
    assert all(0 < r["share"] < 1 and r["seconds_per_step"] > 0 and r["peak_step_bytes"] > 0 for r in lora[1:])
