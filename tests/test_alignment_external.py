"""Chapter 07's scaled path: preference pairs from a JSONL file or the Hub (``alignment.external``), the config keys
that choose them, and TRL's reward and DPO trainers on them, against the course's own code on the same pairs."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM, LlamaForSequenceClassification

from course_lib.alignment import external as X
from course_lib.alignment import preferences as P
from course_lib.alignment.dpo import dpo_rows
from course_lib.alignment.reward_experiments import preference_pairs
from course_lib.alignment.reward_model import pair_rows
from course_lib.config import ConfigError, TrainConfig, load_config
from course_lib.runs import FINAL_DIR, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "alignment" / "preferences.jsonl"
TWO_STEPS = TrainConfig(max_steps=2, batch_size=4, lr=1e-3, warmup_steps=0, log_every=1, progress=False)


@pytest.fixture(scope="module")
def pairs():
    return X.load_preference_pairs(str(FIXTURE), test_fraction=0.3)


def world_pair() -> dict:
    """One pair as ``preferences.comparisons`` makes it, from a hand-made prompt row."""
    prompt = {"id": "qa_closed/x", "kind": "qa_closed", "lang": "en", "split": "train",
              "messages": [{"role": "user", "content": "Capital of France?"}], "should_decline": False,
              "answers": ["Paris"], "private": [], "reference": "Paris.",
              "responses": [{"style": "answer", "text": "Paris."}, {"style": "wrong_fact", "text": "Lyon."}]}
    return P.comparisons([prompt], n=2)[0]


# --------------------------------------------------------------------------- reading pairs


def test_standard_and_conversational_rows_become_course_pairs(pairs):
    assert len(pairs) == 12
    ours = world_pair()
    for p in pairs:
        assert p.keys() == ours.keys() and all(type(p[k]) is type(ours[k]) for k in ours), p
        assert p["kind"] == "external" and not p["flipped"] and (p["chosen_style"], p["rejected_style"]) == (
            "chosen", "rejected")
    first, korean, system, implicit = pairs[0], pairs[2], pairs[5], pairs[8]
    assert first["prompt_id"] == "preferences/1" and first["lang"] == "en" and first["margin"] == 2.0
    assert first["messages"] == [{"role": "user", "content": "What is the capital of France?"}]  # no system added
    assert (first["chosen"], first["rejected"]) == ("Paris.", "Lyon.")
    assert korean["lang"] == "ko" and korean["margin"] == 4.5  # score_chosen - score_rejected
    assert [m["role"] for m in system["messages"]] == ["system", "user"] and system["chosen"].startswith("No,")
    assert implicit["messages"] == [{"role": "user", "content": "What is two plus two?"}]  # the shared turns
    assert (implicit["chosen"], implicit["rejected"], implicit["margin"]) == ("Four.", "Five.", 8.0)
    assert [p["lang"] for p in pairs].count("ko") == 5 and pairs[3]["margin"] == 0.0


def test_splits_are_fixed_by_the_prompt_and_max_rows_caps(pairs, tmp_path):
    assert X.load_preference_pairs(str(FIXTURE), test_fraction=0.3) == pairs
    splits = [p["split"] for p in pairs]
    assert set(splits) == {"train", "test"}
    assert [p["split"] for p in X.load_preference_pairs(str(FIXTURE), test_fraction=0.3, seed=1)] != splits
    assert {p["split"] for p in X.load_preference_pairs(str(FIXTURE), test_fraction=0.0)} == {"train"}
    assert X.load_preference_pairs(str(FIXTURE), test_fraction=0.3, max_rows=5) == pairs[:5]
    twice = tmp_path / "twice.jsonl"  # one prompt, two pairs: never on both sides of the split
    twice.write_text("".join(json.dumps({"prompt": "Hi?", "chosen": c, "rejected": "No."}) + "\n"
                             for c in ("Hello!", "Hi there.")), encoding="utf-8")
    for seed in range(20):
        assert len({p["split"] for p in X.load_preference_pairs(str(twice), test_fraction=0.5, seed=seed)}) == 1


USER = {"role": "user", "content": "Hi?"}
BAD_ROWS = [
    ("{not json", "not valid JSON"),
    ("", "an empty line"),
    ('["a", "b"]', "a row must be an object"),
    (json.dumps({"prompt": "Hi?", "chosen": "Hello."}), r"missing column\(s\) \['rejected'\]"),
    (json.dumps({"chosen": "Hello.", "rejected": "Go."}), "missing column 'prompt'"),
    (json.dumps({"prompt": "Hi?", "chosen": "  ", "rejected": "Go."}), "the chosen response is empty"),
    (json.dumps({"prompt": "Hi?", "chosen": "Hello.", "rejected": ""}), "the rejected response is empty"),
    (json.dumps({"prompt": "Hi?", "chosen": "Same.", "rejected": "Same."}), "identical"),
    (json.dumps({"prompt": [USER], "chosen": [USER], "rejected": [{"role": "assistant", "content": "Go."}]}),
     r"'chosen' must be one assistant message.*\['user'\]"),
    (json.dumps({"chosen": [USER, {"role": "assistant", "content": "A."}],
                 "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": "B."}]}),
     "do not share every message but their last"),
    (json.dumps({"prompt": "Hi <|end|>", "chosen": "Hello.", "rejected": "Go."}), "special token '<\\|end\\|>'"),
    (json.dumps({"prompt": [{"role": "robot", "content": "Hi?"}], "chosen": "A.", "rejected": "B."}),
     "unknown role 'robot'"),
    (json.dumps({"prompt": "Hi?", "chosen": "A.", "rejected": "B.", "margin": "big"}), "not numbers"),
]


@pytest.mark.parametrize("line, problem", BAD_ROWS, ids=["json", "empty-line", "not-object", "no-rejected", "no-prompt",
                                                         "empty-chosen", "empty-rejected", "identical", "chosen-role",
                                                         "no-shared-prompt", "special-token", "role", "margin"])
def test_a_bad_row_is_an_error_naming_its_line(tmp_path, line, problem):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}) + "\n" + line + "\n",
                    encoding="utf-8")
    with pytest.raises(X.PreferenceDataError, match=f"{path}:2: .*{problem}"):
        X.load_preference_pairs(str(path))


def test_a_bad_source_is_an_error_naming_it(tmp_path):
    with pytest.raises(X.PreferenceDataError, match="'nothing.jsonl': no such .jsonl file"):
        X.load_preference_pairs("nothing.jsonl")
    with pytest.raises(X.PreferenceDataError, match="Hugging Face Hub dataset.*offline.*zoo.offline=false"):
        X.load_preference_pairs("hf:trl-lib/ultrafeedback_binarized", offline=True)
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(X.PreferenceDataError, match="has no rows"):
        X.load_preference_pairs(str(tmp_path / "empty.jsonl"))
    with pytest.raises(ValueError, match="max_rows must be an int >= 0"):
        X.load_preference_pairs(str(FIXTURE), max_rows=-1)


# --------------------------------------------------------------------------- config


def test_the_config_keys_choose_the_data_and_the_trainer():
    ci = load_config("ci")
    assert (ci.alignment.preference_source, ci.alignment.max_pairs, ci.alignment.trainer) == ("", 0, "course")
    gpu = load_config("gpu").alignment
    assert gpu.preference_source.startswith("hf:") and gpu.trainer == "trl" and gpu.dpo.mixed_precision == "bf16"
    ok = load_config("ci", ["alignment.preference_source=my/prefs.jsonl", "alignment.trainer=trl"])
    assert ok.alignment.preference_source == "my/prefs.jsonl" and ok.alignment.trainer == "trl"
    assert load_config("ci", ["alignment.preference_source=hf:org/data:config"]).alignment.preference_source
    source = r"must be '' \(the world's pairs\), a .jsonl path or hf:<name>\[:<config>\].*, got "
    for key, bad, problem in (("preference_source", "prefs.csv", source + "'prefs.csv'"),
                              ("preference_source", "hf:", source + "'hf:'"),
                              ("trainer", "keras", "must be one of 'course', 'trl'"),
                              ("max_pairs", -1, "must be >= 0")):
        with pytest.raises(ConfigError, match=f"'alignment.{key}' {problem}"):
            load_config("ci", {f"alignment.{key}": bad})


def test_preference_pairs_read_the_configured_source():
    cfg = load_config("ci", [f"alignment.preference_source={FIXTURE}", "alignment.max_pairs=10"])
    train, test = preference_pairs(cfg)
    assert (train, test) == P.split_pairs(X.load_preference_pairs(str(FIXTURE), max_rows=10))
    assert sorted(p["prompt_id"] for p in train + test) == sorted(f"preferences/{i}" for i in range(1, 11))
    assert {p["split"] for p in train} == {"train"} and {p["split"] for p in test} <= {"test"}


# --------------------------------------------------------------------------- the same pairs, both trainers


def test_the_course_code_reads_the_external_pairs_as_trl_tokenizes_them(tiny, pairs, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer, decoder = tiny
    rows = pair_rows(tokenizer, pairs)
    assert len(rows) == len(pairs) and all(r["margin"] == p["margin"] for r, p in zip(rows, pairs))
    with_ref = dpo_rows(decoder, tokenizer, pairs)
    assert all(math.isfinite(r["ref_chosen"]) and r["ref_chosen"] < 0 for r in with_ref)
    args = X.trl_args(DPOConfig, TWO_STEPS, output_dir=tmp_path, seed=0, max_len=None)
    trainer = DPOTrainer(model=copy.deepcopy(decoder), ref_model=decoder, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(X.trl_rows(pairs)))
    for theirs, ours in zip(trainer.train_dataset, rows):  # TRL renders the course's chat template: the same ids
        prompt = theirs["prompt_ids"]
        assert prompt + theirs["chosen_ids"] == ours["chosen"]["input_ids"].tolist()
        assert prompt + theirs["rejected_ids"] == ours["rejected"]["input_ids"].tolist()
        assert len(theirs["chosen_ids"]) == int(ours["chosen"]["completion_mask"].sum())


def test_trl_trainers_train_on_the_pairs_and_return_what_the_course_functions_do(tiny, pairs, tmp_path):
    tokenizer, decoder = tiny
    model, log = X.train_reward_model_trl(decoder, tokenizer, pairs, TWO_STEPS, output_dir=tmp_path / "rm", seed=0)
    assert isinstance(model, LlamaForSequenceClassification) and model.config.num_labels == 1
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) for r in log)
    assert all(0.0 <= r["accuracy"] <= 1.0 and math.isfinite(r["margin"]) for r in log)
    assert read_metrics(tmp_path / "rm") == log and (tmp_path / "rm" / FINAL_DIR / "config.json").is_file()
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    policy, log = X.train_dpo_trl(decoder, tokenizer, pairs, TWO_STEPS, beta=0.1, output_dir=tmp_path / "dpo",
                                  sft_weight=0.5)
    assert isinstance(policy, LlamaForCausalLM) and policy is not decoder
    assert all(torch.equal(v, decoder.state_dict()[k]) for k, v in before.items())  # instruct itself is untouched
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) for r in log)
    assert abs(log[0]["margin"]) < 1e-6 and log[0]["reward_accuracy"] == 0.0  # step 1: the policy is the reference
    assert any(not torch.equal(p, decoder.state_dict()[k]) for k, p in policy.state_dict().items())
    assert {"chosen_reward", "rejected_reward", "margin", "reward_accuracy"} <= log[-1].keys()
