"""In-context learning: worked examples before a question, and whether they help the model answer."""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch

from ..config import Config
from .probes import complete

ICL_TASK = "qa_closed"  # the task family of the in-context learning curve; no task data is pretrained on
ICL_DESCRIPTIONS = {
    "en": "Answer each question about the world in a few words.",
    "ko": "세계에 관한 질문에 짧게 답하세요.",
}
ICL_LABELS = {"en": ("Question", "Choices", "Answer"), "ko": ("질문", "보기", "답")}


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


def icl_items(cfg: Config, lang: str, task: str = ICL_TASK) -> tuple[list[dict], list[dict]]:
    """(example pool, questions) of task family ``task`` in ``lang``, about pre-cutoff facts.

    Examples come from the ``train`` split; questions from ``test`` and ``test_template``
    first (held-out facts and phrasings), then ``train``. The task data is never part of
    pretraining, so the model meets the question-answer format only in the prompt.
    """
    from ..world import load

    tasks = load("tasks", cfg, task=task)
    keep = lambda r: r["lang"] == lang and not r["after_cutoff"] and r["answerable"] and r["answer"]
    pool = [r for r in tasks["train"] if keep(r)]
    questions = [r for split in ("test", "test_template", "train") for r in tasks[split] if keep(r)]
    return pool, questions


def question_kind(row: dict) -> str:
    """The relation a task row asks about, from its template id (``q/birth_place/en/1`` -> ``birth_place``)."""
    parts = row["template_id"].split("/")
    return parts[1] if len(parts) > 1 else ""


def icl_accuracy(model, tokenizer, cfg: Config, *, task: str = ICL_TASK, shots: Iterable[int] = (0, 1, 2, 4, 8),
                 num_questions: int = 100, langs: Iterable[str] = ("en", "ko"), same_kind: bool = True,
                 batch_size: int = 32) -> list[dict]:
    """In-context learning curve: how well answers come out against the number ``k`` of worked examples.

    Rows ``{"k", "lang", "questions", "accuracy", "answer_nll"}``: the exact-match
    accuracy of the greedy answer, and the mean per-token negative log-likelihood of the
    correct answer (lower is better; it moves before accuracy does). The first ``num_questions`` questions of
    ``task`` in each language are asked with every ``k``; each question's ``k`` examples
    are drawn (seeded by the question) from the train pool, about other facts, and with
    ``same_kind`` about the same relation (where was X born? -> a city), as a task's
    demonstrations would be. Where a prompt with its answer would not fit the model's context,
    its first examples are dropped; ``examples`` is the mean number the prompts kept. A question
    that does not fit even with no example is a ``ValueError`` (the model would read past the
    positions it was trained on).
    """
    rows = []
    shots = list(shots)
    context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    for lang in langs:
        pool, items = icl_items(cfg, lang, task)
        questions = items[:num_questions]
        longest = max(len(tokenizer(" " + q["answer"], add_special_tokens=False)["input_ids"]) for q in questions)
        needed = lambda text: len(tokenizer(text)["input_ids"]) + longest + 3  # <eos>, the prompt, longest + 2 new tokens
        for k in shots:
            prompts, used = [], []
            for q in questions:
                rng = random.Random(f"{cfg.run.seed}|{q['id']}")
                others = [r for r in pool if r["fact_ids"] != q["fact_ids"]]
                if same_kind:  # worked examples of the same kind of question (same relation), if there are enough
                    kind = [r for r in others if question_kind(r) == question_kind(q)]
                    others = kind if len(kind) >= k else others
                examples = [(icl_question(r, lang), r["answer"]) for r in rng.sample(others, min(k, len(others)))]
                prompt = icl_prompt(ICL_DESCRIPTIONS[lang], examples, icl_question(q, lang), lang)
                while examples and needed(prompt) > context:
                    examples = examples[1:]  # too long for the model's context: drop the first example
                    prompt = icl_prompt(ICL_DESCRIPTIONS[lang], examples, icl_question(q, lang), lang)
                if needed(prompt) > context:
                    raise ValueError(f"{task} question {q['id']!r} ({lang}) needs {needed(prompt)} tokens with no "
                                     f"example, more than the model's context of {context}: ask a model with a "
                                     f"longer context, or another task")
                prompts.append(prompt)
                used.append(len(examples))
            outputs = complete(model, tokenizer, prompts, longest + 2, batch_size)
            correct = sum(o.strip().rstrip(".") == q["answer"] for o, q in zip(outputs, questions))
            nll = answer_nll(model, tokenizer, prompts, [q["answer"] for q in questions], batch_size)
            rows.append({"k": k, "lang": lang, "questions": len(questions), "examples": float(np.mean(used)),
                         "accuracy": correct / len(questions), "answer_nll": float(np.mean(nll))})
    return rows
