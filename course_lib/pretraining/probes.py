"""What ``base`` learned: greedy completions, and recall of the world's facts against how often it read them."""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from ..config import Config
from ..world.splits import split_documents
from .data import corpus_documents


@torch.no_grad()
def complete(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches), cut at the first newline or end token."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    try:
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer([tokenizer.eos_token + p for p in prompts[i : i + batch_size]], return_tensors="pt",
                              padding=True, add_special_tokens=False).to(model.device)
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out += [t.split("\n")[0] for t in texts]
    finally:
        tokenizer.padding_side = side
    return out


def recall_probe(world, fact, lang: str) -> str | None:
    """The start of a statement of ``fact`` that stops right before its value, or None.

    Uses the first statement template whose value comes after the subject and whose
    cut-off start no other fact about the same subject shares ("X was born in" could
    end with a year or a city, so it is skipped for "X was born in the year").
    """
    from ..world.templates import STATEMENTS

    g = world.graph

    def prefixes(f):
        out = []
        for template in STATEMENTS[f.relation][lang]:
            if "{o" not in template or "{s" not in template or template.index("{s") > template.index("{o"):
                out.append(None)
                continue
            cut = template[: template.index("{o")] + "{o}"
            out.append(g.fill(cut, f, lang, value_text="\0").split("\0")[0].rstrip())
        return out

    others = {p for f in g.facts_about(fact.subject, as_value=False) if f.relation != fact.relation
              for p in prefixes(f) if p}
    return next((p for p in prefixes(fact) if p and p not in others), None)


def _answer_matches(continuation: str, value: str) -> bool:
    text = continuation.strip()
    text = re.sub(r"^(a|an|the) ", "", text)  # "worked as an engineer"
    return text.startswith(value)


def fact_frequency(world, train_docs: Iterable[dict]) -> dict[tuple[str, str], int]:
    """(fact id, language) -> number of training documents in that language that state the fact."""
    counts: dict[tuple[str, str], int] = {}
    for doc in train_docs:
        for fid in doc.get("fact_ids", []):
            counts[fid, doc["lang"]] = counts.get((fid, doc["lang"]), 0) + 1
    return counts


def recall_context(world, fact, lang: str, n: int = 2) -> str:
    """Up to ``n`` true statements about ``fact``'s subject that neither state ``fact`` nor contain its value.

    Put before the probe, they set the scene the way a document about the subject
    would (a bare sentence right after ``<|endoftext|>`` looks like no training
    document), without giving the answer away.
    """
    value = world.graph.value_text(fact, lang)
    others = [f for f in world.graph.facts_about(fact.subject, as_value=False)
              if f.relation != fact.relation and not f.after_cutoff]
    sentences = [world.statement(f, lang) for f in others]
    return " ".join([s for s in sentences if value not in s][:n])


def fact_recall(model, tokenizer, cfg: Config, *, context: int = 2, max_facts: int | None = None,
                batch_size: int = 64) -> list[dict]:
    """Closed-book recall of every pre-cutoff world fact, in English and Korean.

    The prompt is ``context`` other true statements about the subject
    (``recall_context``), then the probe (``recall_probe``); the model must continue it
    with the value. Each row: ``fact_id, relation, lang, seen`` (training documents in
    that language stating the fact), ``prompt, answer, output, correct`` (the greedy
    continuation starts with the answer). ``max_facts`` keeps an evenly spread subset.
    """
    from ..world import build_world

    world = build_world(cfg.world)
    train_docs, _ = split_documents(corpus_documents(cfg), cfg.pretrain.eval_fraction, cfg.run.seed)
    seen = fact_frequency(world, train_docs)
    facts = world.facts(after_cutoff=False)
    if max_facts is not None and len(facts) > max_facts:
        facts = facts[:: -(-len(facts) // max_facts)]
    rows = []
    for fact in facts:
        for lang in ("en", "ko"):
            probe = recall_probe(world, fact, lang)
            if probe is not None:
                scene = recall_context(world, fact, lang, context) if context else ""
                rows.append({"fact_id": fact.id, "relation": fact.relation, "lang": lang,
                             "seen": seen.get((fact.id, lang), 0), "prompt": f"{scene} {probe}".strip(),
                             "answer": world.graph.value_text(fact, lang)})
    # Enough new tokens for the longest answer, plus a couple for articles and spaces.
    longest = max(len(tokenizer(" " + r["answer"], add_special_tokens=False)["input_ids"]) for r in rows)
    outputs = complete(model, tokenizer, [r["prompt"] for r in rows], longest + 2, batch_size)
    for row, output in zip(rows, outputs):
        row["output"] = output
        row["correct"] = _answer_matches(output, row["answer"])
    return rows


FREQUENT = 6  # a fact stated in at least this many training documents (in the probe's language) is "frequent"


def recall_by_frequency(rows: list[dict], bins: Iterable[int] = (0, 1, 2, 4, 8, 16)) -> list[dict]:
    """Recall per frequency bin: ``{"min_seen", "max_seen", "facts", "recall"}``; bin i is [bins[i], bins[i+1])."""
    edges = list(bins) + [float("inf")]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        inside = [r for r in rows if lo <= r["seen"] < hi]
        if inside:
            out.append({"min_seen": lo, "max_seen": hi, "facts": len(inside),
                        "recall": sum(r["correct"] for r in inside) / len(inside)})
    return out


def frequent_recall(rows: list[dict], min_seen: int = FREQUENT) -> float:
    """Recall of the facts seen in at least ``min_seen`` training documents."""
    frequent = [r for r in rows if r["seen"] >= min_seen]
    if not frequent:
        raise ValueError(f"no fact is seen {min_seen} or more times")
    return sum(r["correct"] for r in frequent) / len(frequent)
