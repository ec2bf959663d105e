"""Chapter 06's ``instruct`` recipe (reading exercises, the SFT mixture, chat answers, honesty) and its experiments."""

import copy
import json
import re

import pytest
import torch

from course_lib import instruction as I
from course_lib import zoo
from course_lib.config import load_config
from course_lib.instruction.templates import templates
from course_lib.world import build_world, fresh_names


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "instruct-cache"))


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


def test_reading_conversations_ask_about_new_names_with_the_answer_in_the_prompt(cfg):
    from course_lib.instruction.reading import KINDS, retrieved_prompt
    from course_lib.world.templates import COMPOSED

    world = build_world(cfg.world)
    rows = I.reading_conversations(world, 40, seed=0)
    people = {n for t in ("person", "event", "invention") for e in world.entities(t) for n in (e.name.en, e.name.ko)}
    people |= {n for name in fresh_names(world, 300, 0) for n in (name.en, name.ko)}  # what evaluations ask about
    assert [r["lang"] for r in rows[:4]] == ["en", "ko", "en", "ko"]
    assert [r["kind"] for r in rows] == [KINDS[i // 2 % len(KINDS)] for i in range(40)]
    assert {(r["kind"], r["lang"]) for r in rows} == {(k, lang) for k in KINDS for lang in ("en", "ko")}
    shape = retrieved_prompt("en", [("ID", "PASSAGE")], "QUESTION").split("ID")[0]  # "...\n\nPassage: ["
    for r in rows:
        I.check_messages(r["messages"], r["id"])
        system, user, assistant = r["messages"]
        assert assistant["content"] == r["answer"] and system["content"] == I.SYSTEM[r["lang"]]
        assert not [n for n in people if n in user["content"]]  # invented subjects; the values are the world's
        if r["kind"] == "person":
            assert user["content"].startswith(I.READ[r["lang"]]) and r["answer"] in user["content"].split("\n")[1]
            continue
        lines = [line for line in user["content"].split("\n") if line.startswith("[") or "] " in line]
        assert user["content"].startswith(retrieved_prompt(r["lang"], [("ID", "P")], "Q").split("ID")[0]), user
        assert any(r["answer"] in line for line in lines)
        if r["kind"] == "compose":  # two statements, one bridge: the answer is in one, the question names the other
            asked = user["content"].split("\n")[-1].split(": ", 1)[1]
            phrasings = [p for by_lang in COMPOSED.values() for p in by_lang[r["lang"]]]
            matches = [i % 4 for i, p in enumerate(phrasings)
                       if re.fullmatch(re.sub(r"\\\{s[^}]*\\\}", ".+", re.escape(p)), asked, flags=re.I)]
            assert sum(r["answer"] in line for line in lines) == 1 and 2 <= len(lines) <= 3
            assert matches and 3 not in matches, asked  # a training phrasing, never the held-out last
    assert shape.endswith("[") and {r["kind"] for r in rows} == set(KINDS)
    assert rows == I.reading_conversations(world, 40, seed=0)
    assert rows != I.reading_conversations(world, 40, seed=1)


def test_composition_questions_hold_out_the_phrasing_chapter_10_asks():
    from course_lib.retrieval.qasa import MULTI
    from course_lib.world.templates import COMPOSED

    assert all(MULTI[kind][lang] == COMPOSED[kind][lang][-1] for kind in COMPOSED for lang in ("en", "ko"))
    assert all(len(set(by_lang[lang])) == len(by_lang[lang]) >= 3 for by_lang in COMPOSED.values() for lang in by_lang)


def test_training_conversations_mix_the_clusters_and_the_reading_exercises(cfg):
    rows = I.training_conversations(cfg)
    reading = [r for r in rows if r["id"].startswith("reading/")]
    assert len(reading) == cfg.instruct.reading_examples
    clusters = {r["cluster"] for r in rows if "cluster" in r}
    assert clusters == set(I.CLUSTERS)  # every cluster trains
    assert all(r["split"] == "train" for r in rows if "cluster" in r)  # no test fact, no held-out template


@pytest.fixture(scope="module")
def instruct(cfg, tmp_path_factory):
    import os

    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "instruct-cache")
    return zoo.get("instruct", cfg)


def test_instruct_learns_the_chat_format_from_base(cfg, instruct):
    losses = [r["loss"] for r in instruct.metrics if "loss" in r]
    assert losses[-1] < 0.7 * losses[0], losses
    assert zoo.manifest("instruct", cfg)["deps"].keys() == {"base"}
    assert instruct.tokenizer.chat_template == I.CHAT_TEMPLATE  # saved with the model: TRL and the notebooks read it
    skipped = json.loads((instruct.path / "skipped.json").read_text(encoding="utf-8"))
    assert all(s["tokens"] > cfg.model.max_seq_len for s in skipped)  # only rows too long for the context, listed


def test_exact_match_asks_without_the_answer_and_scores_the_reply(cfg, instruct):
    rows = I.instruction_examples(cfg, split="train", per_task_cap=2)[:6]
    scored = I.exact_match(instruct.model, instruct.tokenizer, rows)
    assert [s["id"] for s in scored] == [r["id"] for r in rows]
    assert all(s["correct"] == (s["output"].rstrip(".") == s["answer"].rstrip(".")) for s in scored)
    assert all("<|end|>" not in s["output"] and "<|assistant|>" not in s["output"] for s in scored)


def test_instruct_source_reads_a_local_jsonl_in_both_formats(tmp_path):
    path = tmp_path / "sft.jsonl"
    rows = [{"id": "a", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                     {"role": "assistant", "content": "4"}]},
            {"prompt": "Capital of Korea?", "completion": " Seoul"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    got = I.external_conversations(str(path))
    assert [g["id"] for g in got] == ["a", "1"] and [g["answer"] for g in got] == ["4", " Seoul"]
    assert got[1]["messages"] == [{"role": "user", "content": "Capital of Korea?"},
                                  {"role": "assistant", "content": " Seoul"}]
    cfg = load_config("ci", [f"instruct.source={path}"])
    assert I.training_conversations(cfg) == got  # the recipe trains on the file instead of the world


@pytest.mark.parametrize("row, match", [
    ({"id": "q7", "text": "no chat here"}, "row 'q7': expected 'messages' or 'prompt' and 'completion'"),
    ({"id": "q8", "messages": [{"role": "user", "content": "hi"}]}, "row 'q8': no assistant turn"),
    ({"id": "q9", "messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
     "row 'q9', message 0: unknown role 'robot'"),
    ({"id": "q10", "prompt": "Q?", "completion": "  "}, "row 'q10', message 1: the assistant's response is empty"),
])
def test_a_bad_row_in_the_source_stops_with_its_id(tmp_path, row, match):
    path = tmp_path / "bad.jsonl"
    good = {"id": "ok", "prompt": "Q?", "completion": "A"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        I.external_conversations(str(path))


def test_a_hub_source_is_refused_offline_and_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="instruct.source='hf:org/some-sft-data' is a Hugging Face Hub dataset"):
        I.external_conversations("hf:org/some-sft-data", offline=True)
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        I.external_conversations(str(tmp_path / "nothing.jsonl"))


def test_instruct_stops_at_the_end_of_its_turn(instruct):
    """generation_config says <|end|> ends a reply, so every generate() call (the harness's too) stops there."""
    from course_lib.evaluation.scoring import end_tokens

    end = instruct.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in instruct.model.generation_config.eos_token_id
    assert end_tokens(instruct.model, instruct.tokenizer) == [instruct.tokenizer.eos_token_id, end]


def test_the_harness_asks_a_chat_model_in_its_chat_format(cfg, instruct):
    from course_lib.evaluation import evaluate
    from course_lib.evaluation.harness import chat_prompt

    report = evaluate(instruct.model, instruct.tokenizer, ["qa_closed_en", "multiple_choice_ko"], config=cfg, limit=2,
                      chat=True, system=I.SYSTEM, samples=True)
    assert report["config"]["chat"] is True
    for item in report["samples"]["qa_closed_en"]:
        assert item["prompt"].startswith("<|system|>" + I.SYSTEM["en"] + "<|end|><|user|>Question: ")
        assert item["prompt"].endswith("<|end|><|assistant|>") and "<|end|>" not in item["prediction"]
    assert report["samples"]["multiple_choice_ko"][0]["prompt"].startswith("<|system|>" + I.SYSTEM["ko"])
    assert chat_prompt(instruct.tokenizer, "hi") == "<|user|>hi<|end|><|assistant|>"
    with pytest.raises(ValueError, match="system: no message for language 'ko'"):
        evaluate(instruct.model, instruct.tokenizer, ["qa_closed_ko"], config=cfg, limit=1, chat=True,
                 system={"en": "x"})
    base = zoo.get("base", cfg)
    with pytest.raises(ValueError, match="chat=True: the tokenizer has no chat_template"):
        evaluate(base.model, base.tokenizer, ["qa_closed_en"], config=cfg, limit=1, chat=True)


def test_declines_reads_the_worlds_own_corrections_and_refusals(cfg):
    rows = {s: I.instruction_examples(cfg, clusters=["premise_check", "reading_comprehension"], split=s)
            for s in ("train", "test")}
    for r in rows["train"] + rows["test"]:
        if r["task"] in ("false_premise", "unanswerable"):
            assert I.declines(r["answer"], r["lang"]), r["id"]
        else:
            assert not I.declines(r["answer"], r["lang"]), r["id"]


def test_honesty_counts_declines_and_answers_per_language(cfg, instruct):
    h = I.honesty(instruct.model, instruct.tokenizer, cfg)
    premise = I.instruction_examples(cfg, clusters=["premise_check"], split="test")
    for lang in ("en", "ko"):
        assert h[lang]["n_premise"] == sum(r["lang"] == lang for r in premise) > 0
        assert 0 <= h[lang]["declined"] <= 1 and 0 <= h[lang]["answered_correctly"] <= h[lang]["answered"] <= 1
    declined = [r for r in h["rows"] if r["cluster"] == "premise_check" and r["lang"] == "en"]
    assert h["en"]["declined"] == pytest.approx(sum(r["declined"] for r in declined) / len(declined))


# --------------------------------------------------------------------------- the experiments


@pytest.fixture(scope="module")
def base(cfg, instruct):
    return zoo.get("base", cfg)  # built with instruct, in the same cache


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
    assert all(0 <= r["acc"] <= 1 and r["chance"] == pytest.approx(1 / 3) for r in clusters)  # nli: three labels
    ablations = zoo.get("instruct-ablations", cfg)
    assert [r["templates"] for r in ablations["template_diversity"]] == ex.template_counts
    assert [r["tuned_on"] for r in ablations["cross_lingual"]] == ["en", "ko", "en+ko"]
    lora = zoo.get("instruct-lora", cfg)["lora_vs_full"]
    assert [r["rank"] for r in lora] == [0, *ex.lora_ranks] and lora[0]["share"] == 1
    assert all(0 < r["share"] < 1 and r["seconds_per_step"] > 0 and r["peak_step_bytes"] > 0 for r in lora[1:])
