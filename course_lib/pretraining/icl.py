"""In-context learning: worked examples before a question, and whether they help the model answer."""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch

from ..config import Config
from .bootstrap import bootstrap_interval
from .probes import complete, fact_recall

ICL_TASK = "qa_closed"  # the task family of the in-context learning curve; no task data is pretrained on
ICL_DESCRIPTIONS = {
    "en": "Answer each question about the world in a few words.",
    "ko": "세계에 관한 질문에 짧게 답하세요.",
}
PASSAGE_DESCRIPTIONS = {
    "en": "Answer each question from the text before it in a few words.",
    "ko": "앞의 글을 읽고 질문에 짧게 답하세요.",
}
ICL_LABELS = {"en": ("Question", "Choices", "Answer"), "ko": ("질문", "보기", "답")}
ICL_FACTS = ("all", "known", "fresh")  # which questions a curve asks: see icl_scores
FRESH_POOL = 100  # fresh passages kept apart as worked examples for the fresh questions
# facts a fresh passage states: the fewest that still make the model pick the asked one, so that worked
# examples fit a small context (ci's 128 tokens hold no four-fact English passage about a new name)
FRESH_FACTS = 2


@torch.no_grad()
def answer_nll(model, tokenizer, prompts: list[str], answers: list[str], batch_size: int = 32) -> list[float]:
    """Mean negative log-likelihood (nats per token) of each ``" " + answer`` after its prompt.

    Prompt and answer are tokenized apart and joined, so the answer's tokens are the
    same whatever the prompt; batches are right-padded and padding is never scored.
    """
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for prompt, ans in zip(prompts[i : i + batch_size], answers[i : i + batch_size]):
            p = [tokenizer.eos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
            a = tokenizer(" " + ans, add_special_tokens=False)["input_ids"]
            rows.append(p + a)
            spans.append((len(p), len(p) + len(a)))
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows], device=model.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (start, end) in enumerate(spans):
            # position t predicts token t + 1: the answer's tokens start..end-1 are read at start-1..end-2
            target = ids[row, start:end]
            out.append(-logp[row, start - 1 : end - 1].gather(-1, target[:, None]).mean().item())
    return out


def icl_question(row: dict, lang: str) -> str:
    """A task row's question as the prompt shows it: after its passage (open-book rows), before its choices."""
    question = f"{row['context'].strip()}\n{row['question']}" if row.get("context") else row["question"]
    if row.get("choices"):
        return f"{question}\n{ICL_LABELS[lang][1]}: {' / '.join(row['choices'])}"
    return question


def icl_prompt(description: str, examples: list[tuple[str, str]], question: str, lang: str) -> str:
    """Task description, then ``k`` worked examples, then the question: GPT-3's few-shot prompt.

    ``k = 0`` (no examples) is zero-shot. No weight changes: the examples are only text.
    """
    q, _, a = ICL_LABELS[lang]
    shots = "".join(f"{q}: {x}\n{a}: {y}\n\n" for x, y in examples)
    return f"{description}\n\n{shots}{q}: {question}\n{a}:"


def icl_items(cfg: Config, lang: str, task: str = ICL_TASK,
              known: set[tuple[str, str]] | None = None) -> tuple[list[dict], list[dict]]:
    """(example pool, questions) of task family ``task`` in ``lang``, about pre-cutoff facts.

    Examples come from the ``train`` split; questions from ``test`` and ``test_template``
    first (held-out facts and phrasings), then ``train``. The task data is never part of
    pretraining, so the model meets the question-answer format only in the prompt. With
    ``known`` (``(fact id, language)`` pairs, see ``known_facts``), only questions whose
    every fact is known in ``lang`` are kept; the example pool stays whole.
    """
    from ..world import load

    tasks = load("tasks", cfg, task=task)
    keep = lambda r: r["lang"] == lang and not r["after_cutoff"] and r["answerable"] and r["answer"]
    pool = [r for r in tasks["train"] if keep(r)]
    questions = [r for split in ("test", "test_template", "train") for r in tasks[split] if keep(r)]
    if known is not None:
        questions = [r for r in questions if all((f, lang) in known for f in r["fact_ids"])]
    return pool, questions


def known_facts(recall_rows: Iterable[dict]) -> set[tuple[str, str]]:
    """``(fact id, language)`` of every fact the model recalls (``fact_recall`` rows that are ``correct``)."""
    return {(r["fact_id"], r["lang"]) for r in recall_rows if r["correct"]}


def fresh_items(cfg: Config, lang: str, num_questions: int) -> tuple[list[dict], list[dict]]:
    """(example pool, questions) of fresh passages in ``lang``: ``num_questions`` questions, ``FRESH_POOL`` examples.

    Every row is about its own invented person (``world.fresh_passages``, ``FRESH_FACTS``
    facts a passage), so an example never tells the answer to a question; the answer is
    only in the question's passage.
    """
    from ..world import build_world, fresh_passages

    rows = fresh_passages(build_world(cfg.world), num_questions + FRESH_POOL, langs=(lang,), seed=cfg.run.seed,
                          min_facts=FRESH_FACTS, max_facts=FRESH_FACTS)
    return rows[num_questions:], rows[:num_questions]


def question_kind(row: dict) -> str:
    """The relation a task row asks about, from its template id (``q/birth_place/en/1`` -> ``birth_place``).

    A fresh passage row names its relation itself.
    """
    if "relation" in row:
        return row["relation"]
    parts = row["template_id"].split("/")
    return parts[1] if len(parts) > 1 else ""


def _examples(q: dict, pool: list[dict], k: int, seed: int, same_kind: bool) -> list[dict]:
    """``k`` worked examples for question ``q``, drawn (seeded by the question) from ``pool``, about other facts.

    With ``same_kind`` they ask about the same relation as ``q`` (where was X born? -> a
    city), as a task's demonstrations would, if the pool has ``k`` such rows. A fresh
    passage is a fact of its own.
    """
    facts = lambda r: r.get("fact_ids") or [r["id"]]
    rng = random.Random(f"{seed}|{q['id']}")
    others = [r for r in pool if facts(r) != facts(q)]
    if same_kind:
        kind = [r for r in others if question_kind(r) == question_kind(q)]
        others = kind if len(kind) >= k else others
    return rng.sample(others, min(k, len(others)))


def _curve_items(cfg: Config, facts: str, task: str, lang: str, num_questions: int,
                 known: set | None) -> tuple[str, list[dict], list[dict]]:
    """(task description, example pool, questions) of one curve in one language."""
    if facts == "fresh":
        return (PASSAGE_DESCRIPTIONS[lang], *fresh_items(cfg, lang, num_questions))
    pool, questions = icl_items(cfg, lang, task, known)
    if not questions:
        raise ValueError(f"no {task} question in {lang} is about a fact the model recalls")
    return ICL_DESCRIPTIONS[lang], pool, questions[:num_questions]


def icl_scores(model, tokenizer, cfg: Config, *, facts: str = "all", task: str = ICL_TASK,
               shots: Iterable[int] = (0, 1, 2, 4, 8), num_questions: int = 100,
               langs: Iterable[str] = ("en", "ko"), same_kind: bool = True, batch_size: int = 32) -> list[dict]:
    """Every question of an in-context learning curve, asked after ``k`` worked examples for every ``k`` in ``shots``.

    ``facts`` chooses the questions (``ICL_FACTS``): ``"all"`` the first ``num_questions``
    closed-book questions of ``task``; ``"known"`` the same, keeping only questions whose
    fact the model recalls in that language (``fact_recall``, run here); ``"fresh"``
    questions about invented people, each after its passage (``world.fresh_passages``),
    answerable only by copying from the prompt. Examples are drawn by ``_examples``.
    Where a prompt with its answer would not fit the model's context, its first examples
    are dropped; a question that does not fit even alone is a ``ValueError`` (the model
    would read past the positions it was trained on).

    One row per (language, k, question): ``facts, lang, k, id, examples`` (the number the
    prompt kept), ``correct`` (the greedy answer, up to a final period, equals the answer)
    and ``answer_nll`` (nats per answer token, ``answer_nll``).
    """
    if facts not in ICL_FACTS:
        raise ValueError(f"facts={facts!r}; choose one of {', '.join(ICL_FACTS)}")
    known = known_facts(fact_recall(model, tokenizer, cfg)) if facts == "known" else None
    context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    rows = []
    for lang in langs:
        description, pool, questions = _curve_items(cfg, facts, task, lang, num_questions, known)
        longest = max(len(tokenizer(" " + q["answer"], add_special_tokens=False)["input_ids"]) for q in questions)
        needed = lambda text: len(tokenizer(text)["input_ids"]) + longest + 3  # <eos>, the prompt, longest + 2 new tokens
        for k in shots:
            prompts, used = [], []
            for q in questions:
                examples = [(icl_question(r, lang), r["answer"]) for r in _examples(q, pool, k, cfg.run.seed, same_kind)]
                prompt = icl_prompt(description, examples, icl_question(q, lang), lang)
                while examples and needed(prompt) > context:
                    examples = examples[1:]  # too long for the model's context: drop the first example
                    prompt = icl_prompt(description, examples, icl_question(q, lang), lang)
                if needed(prompt) > context:
                    raise ValueError(f"{'fresh' if facts == 'fresh' else task} question {q['id']!r} ({lang}) needs "
                                     f"{needed(prompt)} tokens with no example, more than the model's context of "
                                     f"{context}: ask a model with a longer context, or another task")
                prompts.append(prompt)
                used.append(len(examples))
            outputs = complete(model, tokenizer, prompts, longest + 2, batch_size)
            nll = answer_nll(model, tokenizer, prompts, [q["answer"] for q in questions], batch_size)
            rows += [{"facts": facts, "lang": lang, "k": k, "id": q["id"], "examples": n,
                      "correct": o.strip().rstrip(".") == q["answer"], "answer_nll": a}
                     for q, o, n, a in zip(questions, outputs, used, nll)]
    return rows


def icl_summary(scores: list[dict], *, baseline: int = 0, resamples: int = 1000, seed: int = 0) -> list[dict]:
    """``icl_scores`` rows summed up per (facts, lang, k), with bootstrap 95% intervals over the questions.

    Each row: ``facts, lang, k, questions, examples`` (mean kept), ``accuracy`` (exact
    match) and ``answer_nll`` (mean), each with ``_low`` and ``_high``, and ``gain``:
    accuracy minus accuracy at ``k = baseline`` on the same questions, with a paired
    interval (each resample draws the same questions for both k). ``gain`` and its
    interval are None where the curve was not measured at ``baseline``.
    """
    groups: dict[tuple, dict[str, dict]] = {}
    for r in scores:
        groups.setdefault((r["facts"], r["lang"], r["k"]), {})[r["id"]] = r
    out = []
    for (facts, lang, k), rows in groups.items():
        base = groups.get((facts, lang, baseline))
        interval = lambda values: bootstrap_interval(values, resamples=resamples, seed=seed)
        acc, acc_low, acc_high = interval([r["correct"] for r in rows.values()])
        nll, nll_low, nll_high = interval([r["answer_nll"] for r in rows.values()])
        gain = (None, None, None) if base is None else interval(
            [float(r["correct"]) - base[i]["correct"] for i, r in rows.items()])
        out.append({"facts": facts, "lang": lang, "k": k, "questions": len(rows),
                    "examples": float(np.mean([r["examples"] for r in rows.values()])),
                    "accuracy": acc, "accuracy_low": acc_low, "accuracy_high": acc_high,
                    "answer_nll": nll, "answer_nll_low": nll_low, "answer_nll_high": nll_high,
                    "gain": gain[0], "gain_low": gain[1], "gain_high": gain[2]})
    return out


def icl_accuracy(model, tokenizer, cfg: Config, *, facts: str = "all", task: str = ICL_TASK,
                 shots: Iterable[int] = (0, 1, 2, 4, 8), num_questions: int = 100, langs: Iterable[str] = ("en", "ko"),
                 same_kind: bool = True, batch_size: int = 32, resamples: int = 1000) -> list[dict]:
    """In-context learning curve: how well answers come out against the number ``k`` of worked examples.

    ``icl_scores`` (which questions: ``facts``), summed up by ``icl_summary``: one row per
    language and ``k`` with the exact-match ``accuracy`` of the greedy answer and the mean
    per-token negative log-likelihood ``answer_nll`` of the correct answer (lower is
    better; it moves before accuracy does), their bootstrap intervals, the ``gain`` over
    ``k = 0`` and ``examples``, the mean number of examples that fit the context.
    """
    scores = icl_scores(model, tokenizer, cfg, facts=facts, task=task, shots=shots, num_questions=num_questions,
                        langs=langs, same_kind=same_kind, batch_size=batch_size)
    return icl_summary(scores, resamples=resamples, seed=cfg.run.seed)
