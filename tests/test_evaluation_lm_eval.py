"""The course harness agrees with lm-evaluation-harness on course tasks written as local lm-eval task configs.

A tiny random model (character tokenizer, ``ci`` sizes) is saved to disk; lm-eval's
``HFLM`` loads it from the folder and runs the YAML tasks in ``data/fixtures/lm_eval/``
(local JSON Lines files, offline); ``course_lib.evaluation.evaluate`` runs the same
registry tasks. Per item: the prompts are equal, the log-likelihoods agree within
1e-4 and acc/acc_norm/acc_bytes are equal. Covered: multiple choice with k-shot
prompts cut from the left (English and Korean), a cloze task, rolling-window
perplexity of documents longer than the context, and a seq2seq (T5) model.

Regenerate the fixture data after a change to the world: ``python tests/test_evaluation_lm_eval.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "fixtures" / "lm_eval"
SEED = 7  # the k-shot draw: our random.Random(SEED), lm-eval's fewshot_random_seed=SEED
TOL = 1e-4
# fixture task -> (course task, k shots, fixture files' splits, item limit)
CASES = {
    "course_multiple_choice_en": ("multiple_choice_en", 2, ("train", "test"), None),
    "course_multiple_choice_ko": ("multiple_choice_ko", 1, ("train", "test"), None),
    "course_entailment_ko": ("entailment_ko", 0, ("train", "test"), None),
    "course_cloze_en": ("cloze_en", 0, ("train", "test"), None),
    "course_perplexity_en": ("perplexity_en", 0, ("test",), 4),
}
FIELDS = ("id", "context", "question", "choices", "label", "answer")


def fixture_rows(config) -> dict[str, list[dict]]:
    """File name -> rows: what the fixture JSON Lines files must hold for the ``ci`` world."""
    from course_lib.evaluation import get_task

    files = {}
    for course_name, _, splits, limit in CASES.values():
        task = get_task(course_name)
        for split in splits:
            rows = task.rows(config, split)[:limit]
            keep = ("id", "text") if task.kind == "perplexity" else FIELDS
            files[f"{course_name}_{split}.jsonl"] = [{k: r[k] for k in keep} for r in rows]
    return files


def write_fixtures() -> None:
    from course_lib.config import load_config

    for name, rows in fixture_rows(load_config("ci")).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (FIXTURES / name).write_text(text, encoding="utf-8")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_fixture_data_is_current(ci):
    for name, rows in fixture_rows(ci).items():
        stored = [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()]
        assert stored == rows, f"{name} is stale: run `python tests/test_evaluation_lm_eval.py`"


def _alphabet() -> str:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(FIXTURES.iterdir()))
    return "".join(sorted(set(text)))


@pytest.fixture(scope="module")
def saved_models(ci, tmp_path_factory):
    """Folders holding a tiny random Llama with a byte-level BPE and a tiny random T5 with a character tokenizer.

    The BPE (trained on the fixture text) splits Hangul into byte tokens and merges words
    with their leading space, so the tokenization boundary and acc_bytes are exercised.
    """
    from transformers import T5Config, T5ForConditionalGeneration

    from course_lib.models import build_decoder
    from course_lib.tokenization import char_tokenizer, train_tokenizer

    text = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.jsonl"))]
    bpe = train_tokenizer([json.loads(line)[k] for t in text for line in t.splitlines()
                           for k in ("question", "text", "context") if k in json.loads(line)], 400)
    chars = char_tokenizer(_alphabet())
    torch.manual_seed(0)
    decoder = build_decoder(ci.model, len(bpe), pad_token_id=bpe.pad_token_id, bos_token_id=bpe.bos_token_id,
                            eos_token_id=bpe.eos_token_id)
    t5 = T5ForConditionalGeneration(T5Config(
        vocab_size=len(chars), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        pad_token_id=chars.pad_token_id, eos_token_id=chars.eos_token_id, decoder_start_token_id=chars.pad_token_id))
    folders = {}
    for name, model, tok in (("llama", decoder, bpe), ("t5", t5, chars)):
        with torch.no_grad():  # wide weights: choices far apart, so no near-tie hides or fakes a disagreement
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, 0.3)
        folders[name] = tmp_path_factory.mktemp(name)
        model.save_pretrained(folders[name])
        tok.save_pretrained(folders[name])
    return folders


def _run_lm_eval(folder: Path, tasks: list[str], monkeypatch, tmp_path) -> dict:
    import datasets
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.chdir(FIXTURES)  # the YAML files name their data relative to this folder
    return simple_evaluate(
        model="hf", model_args={"pretrained": str(folder), "device": "cpu", "dtype": "float32"},
        tasks=tasks, task_manager=TaskManager(include_path=str(FIXTURES), include_defaults=False),
        batch_size=4, log_samples=True, bootstrap_iters=0, fewshot_random_seed=SEED,
    )


def _compare(ours: dict, theirs: dict, fixture_task: str) -> float:
    """Assert per-item agreement of one task; return the largest |difference| of log-likelihoods."""
    course_name, *_ = CASES[fixture_task]
    mine = ours["samples"][course_name]
    other = sorted(theirs["samples"][fixture_task], key=lambda s: int(s["doc_id"]))
    assert len(mine) == len(other) > 0
    worst = 0.0
    for m, o in zip(mine, other):
        if "tokens" in m:  # rolling: one total per document
            worst = max(worst, abs(m["loglik"] - o["resps"][0][0]))
            continue
        (context, _), *_ = o["arguments"]
        assert context == m["prompt"], (fixture_task, m["id"])
        scores = [resp[0] for resp in o["resps"]]  # one (loglik, is_greedy) per request
        if "logliks" in m:  # multiple choice: one request per choice
            worst = max(worst, *(abs(a - b) for a, (b, _) in zip(m["logliks"], scores)))
            for metric in ("acc", "acc_norm", "acc_bytes"):
                assert m[metric] == o[metric], (fixture_task, m["id"], metric)
        else:  # cloze: loglik of the answer and whether it is the greedy continuation
            (ll, greedy), = scores
            worst = max(worst, abs(m["loglik"] - ll))
            assert m["acc"] == float(greedy) == o["acc"], (fixture_task, m["id"])
    return worst


def _picks(sample: dict, rule: str) -> int:
    from course_lib.evaluation import choice_predictions

    return choice_predictions(sample["logliks"], sample["choices"])[rule]


@pytest.mark.slow
def test_causal_model_agrees_with_lm_eval(saved_models, ci, monkeypatch, tmp_path):
    from course_lib.evaluation import evaluate, load_model

    theirs = _run_lm_eval(saved_models["llama"], list(CASES), monkeypatch, tmp_path)
    model, tok = load_model(str(saved_models["llama"]))
    worst, differ = {}, 0
    for fixture_task, (course_name, k, _, limit) in CASES.items():
        ours = evaluate(model, tok, [course_name], config=ci, num_fewshot=k, seed=SEED, limit=limit, batch_size=4,
                        samples=True)  # lm-eval's batches: the same padding, so near-identical floats
        worst[fixture_task] = _compare(ours, theirs, fixture_task)
        differ += sum(_picks(s, "acc") != _picks(s, "acc_norm") for s in ours["samples"][course_name] if "logliks" in s)
        mine, other = ours["results"][course_name], theirs["results"][fixture_task]
        for metric in ("acc", "acc_norm", "acc_bytes"):
            if metric in mine and f"{metric},none" in other:
                assert mine[metric] == other[f"{metric},none"], (fixture_task, metric)
        if course_name == "cloze_en":
            assert math.isclose(mine["perplexity"], other["perplexity,none"], rel_tol=1e-4)
        if course_name == "perplexity_en":
            for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
                assert math.isclose(mine[metric], other[f"{metric},none"], rel_tol=1e-4), metric
    # the rules must disagree somewhere, or equal acc_norm would prove nothing beyond equal acc
    assert differ, "no item where acc and acc_norm pick different choices"
    print("max |delta loglik| vs lm-eval (causal):", {k: f"{v:.1e}" for k, v in worst.items()},
          f"items where acc and acc_norm differ: {differ}")
    assert max(worst.values()) < TOL


@pytest.mark.slow
def test_seq2seq_model_agrees_with_lm_eval(saved_models, ci, monkeypatch, tmp_path):
    from course_lib.evaluation import evaluate, load_model

    cases = ["course_multiple_choice_en", "course_cloze_en"]
    theirs = _run_lm_eval(saved_models["t5"], cases, monkeypatch, tmp_path)
    model, tok = load_model(str(saved_models["t5"]))
    worst = 0.0
    for fixture_task in cases:
        course_name, k, _, limit = CASES[fixture_task]
        ours = evaluate(model, tok, [course_name], config=ci, num_fewshot=k, seed=SEED, limit=limit, batch_size=4,
                        samples=True)
        worst = max(worst, _compare(ours, theirs, fixture_task))
    print(f"max |delta loglik| vs lm-eval (seq2seq): {worst:.2e}")
    assert worst < TOL


if __name__ == "__main__":
    write_fixtures()


@pytest.mark.slow
def test_empty_choice_and_empty_context_score_as_in_lm_eval(saved_models):
    """lm-eval's ``HFLM.loglikelihood`` on the two edge cases of multiple choice: an empty choice (the request
    is the target delimiter alone) and an empty context (the prefix token stands in for it)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from course_lib.evaluation import choice_predictions, load_model, loglikelihood

    prompt = "Question: Where was Mudi born?\nAnswer:"
    pairs = [(prompt, " "), (prompt, " Jubal"), ("", " Jubal"), ("", "서울")]
    lm = HFLM(pretrained=str(saved_models["llama"]), device="cpu", dtype="float32", batch_size=4)
    theirs = [r[0] for r in lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])]
    model, tok = load_model(str(saved_models["llama"]))
    ours = [ll for ll, _ in loglikelihood(model, tok, pairs, batch_size=4)]
    assert ours == pytest.approx(theirs, abs=TOL)
    # lm-eval's multiple-choice rule (api/task.py): np.argmax(lls / np.array([float(len(c)) for c in choices]))
    assert choice_predictions(ours[:2], ["", "Jubal"]) == {"acc": int(ours[1] > ours[0]), "acc_norm": 1,
                                                           "acc_bytes": 1}
