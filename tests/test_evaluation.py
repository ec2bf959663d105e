"""Chapter 05 harness: tokenization boundary, rolling windows, batching, k-shot prompts, the registry, evaluate, CLI."""

from __future__ import annotations

import json
import random

import pytest
import torch

from course_lib.evaluation import (GROUPS, encode_pair, evaluate, generate_until, get_task, list_tasks, loglikelihood,
                                   loglikelihood_rolling, resolve_tasks, rolling_windows)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok(ci):
    from course_lib.tokenization import char_tokenizer
    from course_lib.world import load

    tasks = load("tasks", ci)
    text = "".join(r["context"] + r["question"] + r["answer"] + "".join(r["choices"])
                   for split in tasks.values() for r in split)
    text += "".join(d["text"] for d in load("documents", ci))
    return char_tokenizer("".join(sorted(set(text))) + "QuestionAnswer질문답")


def _decoder(ci, tok, seed=0, **overrides):
    import dataclasses

    from course_lib.models import build_decoder

    torch.manual_seed(seed)
    return build_decoder(dataclasses.replace(ci.model, **overrides), len(tok), pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id).eval()


@pytest.fixture(scope="module")
def model(ci, tok):
    return _decoder(ci, tok)


# --------------------------------------------------------------------------- scoring


def test_encode_pair_moves_trailing_space_into_the_continuation(tok):
    ctx, cont = encode_pair(tok, "Answer: ", "Mudi")
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " Mudi"
    ctx, cont = encode_pair(tok, "", "Mudi")  # an empty context is the begin token
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "Mudi"


def test_encode_pair_splits_the_joint_encoding_at_the_context_length():
    # With a BPE that merges across the boundary, encoding the two halves apart would give other tokens.
    from course_lib.tokenization import train_tokenizer

    bpe = train_tokenizer(["Answer: Mudi Mudi Mudi", "Answer: Jubal"] * 20, 300, min_frequency=1)
    ctx, cont = encode_pair(bpe, "Answer:", " Mudi")
    assert ctx + cont == bpe.encode("Answer: Mudi")
    assert bpe.decode(cont) == " Mudi" and len(cont) == 1  # " Mudi" is one merged token


@torch.no_grad()
def test_loglikelihood_is_the_sum_of_next_token_log_probs(model, tok):
    context, continuation = "Jubal was founded in", " 1430"
    ids = tok.encode(context + continuation)
    logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    n = len(tok.encode(continuation))
    expected = sum(logprobs[i - 1, ids[i]].item() for i in range(len(ids) - n, len(ids)))
    greedy = all(logprobs[i - 1].argmax().item() == ids[i] for i in range(len(ids) - n, len(ids)))
    (ll, is_greedy), = loglikelihood(model, tok, [(context, continuation)])
    assert ll == pytest.approx(expected, abs=1e-4) and is_greedy == greedy


def test_batching_and_left_truncation_do_not_change_scores(model, tok):
    long_context = "Bolso Dol was born in 1923. " * 8  # 224 characters > max_seq_len 128: cut from the left
    pairs = [("Question: Where is Mudi?\nAnswer:", " Nizol"), ("Q:", " Mudi"), (long_context, " Denba"),
             ("Jubal was founded in", " 1430")]
    one = loglikelihood(model, tok, pairs, batch_size=1)
    batched = loglikelihood(model, tok, pairs, batch_size=4)
    for (a, ga), (b, gb) in zip(one, batched):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb
    # what was cut is exactly what does not fit: the last 128 tokens of context + continuation minus one
    ctx, cont = encode_pair(tok, long_context, " Denba")
    assert tok.decode(cont) == "  Denba"  # the context's trailing space moved over
    tail = (ctx + cont)[-129:]
    (direct, _), = loglikelihood(model, tok, [(tok.decode(tail[: -len(cont)]), tok.decode(cont))])
    assert one[2][0] == pytest.approx(direct, abs=1e-4)


def test_rolling_windows_by_hand_and_equal_to_lm_eval():
    # lm-eval's docstring example: tokens 0..9, context 4 -> predict 0-3 | 4-7 | 8-9, each exactly once
    assert rolling_windows(list(range(10)), -1, 4) == [([-1], [0, 1, 2, 3]), ([3], [4, 5, 6, 7]), ([5, 6, 7], [8, 9])]
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    rng = random.Random(0)
    for _ in range(50):
        tokens, limit = list(range(rng.randrange(1, 40))), rng.randrange(1, 12)
        theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, -1, limit, 1)]
        assert rolling_windows(tokens, -1, limit) == theirs


def test_rolling_loglikelihood_of_a_short_text_is_its_full_log_prob(model, tok):
    text = "Mudi is the capital of Nizol."
    ids = [tok.bos_token_id] + tok.encode(text)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    expected = sum(logprobs[i - 1, ids[i]].item() for i in range(1, len(ids)))
    (ll, n), = loglikelihood_rolling(model, tok, [text])
    assert n == len(text) and ll == pytest.approx(expected, abs=1e-4)


def test_rolling_loglikelihood_of_a_long_text_sums_its_windows(ci, tok):
    small = _decoder(ci, tok, max_seq_len=16)
    text = "Bolso Dol was born in the year 1923 in Denba."  # 45 tokens: windows predict 16 + 16 + 13
    ids = tok.encode(text)
    windows = rolling_windows(ids, tok.bos_token_id, 16)
    assert [len(pred) for _, pred in windows] == [16, 16, 13] and sum((p for _, p in windows), []) == ids
    expected = 0.0
    with torch.no_grad():
        for ctx, pred in windows:  # one plain forward per window: the input is context + prediction minus its last
            inp = (ctx + pred)[-17:][:-1]
            logprobs = torch.log_softmax(small(torch.tensor([inp])).logits[0].float(), -1)
            expected += sum(logprobs[len(inp) - len(pred) + j, t].item() for j, t in enumerate(pred))
    (ll, n), = loglikelihood_rolling(small, tok, [text], batch_size=2)
    assert n == 45 and ll == pytest.approx(expected, abs=1e-4)


def test_generate_until_stops_at_the_stop_string_and_batches_like_one_at_a_time(model, tok):
    prompts = ["Question: Where is Mudi?\nAnswer:", "Q: 1+1=", "질문: 무디는 어디에 있나요?\n답:"]
    batched = generate_until(model, tok, prompts, max_new_tokens=12, stop=("\n", "."), batch_size=3)
    single = [generate_until(model, tok, [p], max_new_tokens=12, stop=("\n", "."))[0] for p in prompts]
    assert batched == single
    assert all("\n" not in o and "." not in o for o in batched)


# --------------------------------------------------------------------------- tasks


def test_registry_covers_the_survey_abilities_and_every_family(ci):
    from course_lib.world.tasks import FAMILIES

    tasks = list_tasks()
    assert {t.group for t in tasks} == set(GROUPS)
    assert {t.family for t in tasks} >= set(FAMILIES)
    assert [t.name for t in resolve_tasks("knowledge")] == [t.name for t in tasks if t.group.startswith("knowledge")]
    assert [t.name for t in resolve_tasks("cloze_*,korquad,cloze_en")] == ["cloze_en", "cloze_ko", "korquad"]
    with pytest.raises(KeyError, match="nothing|no task"):
        resolve_tasks("nothing")
    for t in tasks:
        assert t.rows(ci, "test"), t.name
    korquad = get_task("korquad").rows(ci, "test")
    assert all(r["lang"] == "ko" and r["answer"] in r["context"] for r in korquad)


def test_fewshot_prompts_are_seeded_and_drawn_from_train(ci):
    task = get_task("multiple_choice_en")
    pool, rows = task.rows(ci, "train"), task.rows(ci, "test")[:3]
    rng = random.Random(5)
    examples = rng.sample(pool, 2)
    prompt = task.fewshot_context(rows[0], examples)
    first = examples[0]
    assert prompt.startswith(f"Question: {first['question']}\nAnswer: {first['choices'][first['label']]}\n\n")
    assert prompt.endswith(f"\n\nQuestion: {rows[0]['question']}\nAnswer:") and prompt.count("Question:") == 3
    assert not {r["id"] for r in examples} & {r["id"] for r in task.rows(ci, "test")}


def test_evaluate_reports_every_metric_and_is_reproducible(model, tok, ci):
    names = ["multiple_choice_ko", "cloze_en", "qa_closed_ko", "translation_en_ko", "perplexity_ko"]
    run = lambda seed: evaluate(model, tok, names, config=ci, limit=3, num_fewshot=1, seed=seed,  # noqa: E731
                                max_new_tokens=6, samples=True)
    report = run(0)
    r = report["results"]
    assert set(r) == set(names) and all(v["n"] == 3 for v in r.values())
    assert [v["num_fewshot"] for v in r.values()] == [1, 1, 1, 1, 0]  # documents take no shots
    assert {"acc", "acc_norm", "acc_bytes"} <= set(r["multiple_choice_ko"])
    assert 0 <= r["qa_closed_ko"]["f1"] <= 1 and 0 <= r["translation_en_ko"]["chrf"] <= 1
    assert r["cloze_en"]["perplexity"] > 1 and r["perplexity_ko"]["bits_per_byte"] > 0
    assert report["groups"]["language_generation"]["tasks"] == ["cloze_en", "translation_en_ko", "perplexity_ko"]
    assert run(0)["samples"] == report["samples"]
    assert run(1)["samples"]["multiple_choice_ko"] != report["samples"]["multiple_choice_ko"]  # other shots


def test_evaluate_runs_a_seq2seq_model(tok, ci):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(
        vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)).eval()
    report = evaluate(t5, tok, "multiple_choice_en,qa_open_en,perplexity_en", config=ci, limit=2, max_new_tokens=4)
    assert all(v["n"] == 2 for v in report["results"].values())
    assert report["results"]["perplexity_en"]["bits_per_byte"] > 0


@pytest.mark.slow
def test_a_model_that_knows_the_answers_scores_high(ci, tok, tmp_path):
    """Teach a tiny model the test answers (prompt + answer, 150 steps): the harness must notice."""
    from course_lib.training import train

    mc, qa = get_task("multiple_choice_en"), get_task("qa_closed_en")
    mc_rows, qa_rows = mc.rows(ci, "test")[:4], qa.rows(ci, "test")[:4]
    texts = [t.doc_to_text(r) + " " + t.doc_to_target(r) + "\n" for t, rows in ((mc, mc_rows), (qa, qa_rows))
             for r in rows]
    width = max(len(t) for t in texts)
    examples = []
    for t in texts:
        ids = tok.encode(t)
        pad = width - len(ids)
        examples.append({"input_ids": torch.tensor(ids + [tok.pad_token_id] * pad),
                         "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
                         "labels": torch.tensor(ids + [-100] * pad)})
    student = _decoder(ci, tok, seed=1)
    before = evaluate(student, tok, [mc], config=ci, limit=4)["results"]["multiple_choice_en"]["acc"]
    import dataclasses

    cfg = dataclasses.replace(ci.train, max_steps=150, batch_size=8, lr=1e-2, warmup_steps=10, eval_every=0,
                              log_every=50, progress=False)
    train(student, examples, cfg, output_dir=tmp_path / "run", seed=0)
    report = evaluate(student, tok, [mc, qa], config=ci, limit=4, max_new_tokens=24)["results"]
    assert report["multiple_choice_en"]["acc"] == 1.0 > before
    assert report["qa_closed_en"]["exact_match"] >= 0.75 and report["qa_closed_en"]["f1"] >= 0.75


# --------------------------------------------------------------------------- command line


def test_cli_lists_and_evaluates_a_saved_model(model, tok, tmp_path, capsys):
    from course_lib.cli import main
    from course_lib.evaluation import load_model

    assert main(["eval", "--list", "--profile", "ci"]) == 0
    listed = capsys.readouterr().out
    assert "korquad" in listed and "reasoning_arithmetic" in listed
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    out = tmp_path / "eval.json"
    assert main(["eval", "--profile", "ci", "--model", str(tmp_path / "m"), "--tasks", "entailment_en,cloze_ko",
                 "--limit", "2", "--output", str(out)]) == 0
    table = capsys.readouterr().out
    assert "entailment_en" in table and "acc*" in table and "reasoning_commonsense" in table
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["model"] == str(tmp_path / "m") and saved["results"]["cloze_ko"]["n"] == 2
    with pytest.raises(ValueError, match="neither a model folder nor a zoo artifact"):
        load_model("no-such-model")
    assert main(["eval", "--profile", "ci", "--model", "no-such-model", "--tasks", "cloze_en"]) == 2
    assert main(["eval", "--profile", "ci", "--model", str(tmp_path / "m"), "--tasks", "no_such_task"]) == 2
    assert "no_such_task" in capsys.readouterr().err


# --------------------------------------------------------------------------- empty choices and contexts


@torch.no_grad()
def test_an_empty_context_is_the_begin_token_and_an_empty_continuation_scores_log_one(model, tok):
    ids = [tok.bos_token_id] + tok.encode("Mudi", add_special_tokens=False)
    logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    expected = sum(logprobs[i - 1, ids[i]].item() for i in range(1, len(ids)))
    scores = loglikelihood(model, tok, [("", "Mudi"), ("", ""), ("Jubal was founded in", "")])
    assert scores[0][0] == pytest.approx(expected, abs=1e-4)
    assert scores[1:] == [(0.0, True), (0.0, True)]  # P(empty string) = 1, whatever the context


def test_multiple_choice_with_an_empty_choice(model, tok, ci):
    """The empty choice is scored as lm-eval scores it: the target delimiter alone, and -inf per character
    (lm-eval divides the log-likelihoods by numpy float lengths), so acc_norm and acc_bytes never pick it."""
    from course_lib.evaluation import Task

    class Fixed(Task):
        def rows(self, config, split="test"):
            return [{"id": f"q{split}", "question": "Where was Mudi born?", "context": "", "lang": "en",
                     "choices": ["", "Jubal", "Mudi"], "label": 2}]

    task = Fixed(name="empty_choice", family="multiple_choice", lang="en", group="test", kind="multiple_choice",
                 metrics=("acc", "acc_norm", "acc_bytes"), primary="acc")
    item, = evaluate(model, tok, [task], config=ci, samples=True)["samples"]["empty_choice"]
    pairs = [(item["prompt"], " " + c) for c in item["choices"]]
    assert item["logliks"] == [ll for ll, _ in loglikelihood(model, tok, pairs)]
    norm = [item["logliks"][i] / len(c) for i, c in enumerate(item["choices"]) if c]
    assert item["acc_norm"] == float(1 + norm.index(max(norm)) == 2)
    assert item["acc"] == float(item["logliks"].index(max(item["logliks"])) == 2)
