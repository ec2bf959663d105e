"""One model measured every way the course knows: the ``scores-<model>`` artifacts behind the scorecard.

    zoo.get("scores-aligned")   {"model", "profile", "seed", "harness", "perplexity", "preference", "footprint",
                                 "rag"}

- ``harness``: chapter 05's harness, zero-shot, on chapter 06's tasks (``lifecycle.harness_limit``
  items per task): the mean primary metric by ability and language; ``base`` asked plainly,
  the others in their chat format with the system line;
- ``perplexity``: on the held-out pretraining blocks (chapter 03's measure);
- ``preference``: chapter 07's judgement on the held-out preference prompts (``lifecycle.preference_prompts``
  of them, spread over the kinds; all by default): mean gold reward,
  refusal and answer rates, the KL to ``instruct`` (nats per response), and each prompt's
  gold reward (the arena's battles are fought with them);
- ``footprint``: parameters (and non-zero ones), bytes on disk, the resident bytes of a fresh
  process that loads the weight file, and seconds per generated token (chapters 08-09);
- ``rag``: chapter 10's systems with this model as the reader (``lifecycle.rag_questions``
  questions per set): exact match closed-book and with RAG before and after the cutoff, the
  share of false-premise and unanswerable questions answered with an invented fact
  (closed-book, RAG, QASA), QASA against RAG on two-passage questions. ``base`` is no chat
  reader: ``None``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import zoo
from ..config import Config
from ..packing import perplexity
from .models import CHAT_MODELS, MODELS, SECTIONS, load

SCORE_SECTIONS = SECTIONS + ("lifecycle",)


def spread(rows: list, n: int) -> list:
    """At most ``n`` of ``rows``, evenly spaced over the whole list (so every kind and language it holds in runs of
    more than ``len(rows) / n`` is represented)."""
    if n >= len(rows):
        return list(rows)
    return [rows[i * len(rows) // n] for i in range(n)]


def harness_scores(cfg: Config, m, chat: bool) -> dict:
    """Mean primary metric per ability (the task's group) and language, and per language over every task."""
    from ..evaluation import evaluate
    from ..instruction.clusters import SYSTEM
    from ..instruction.experiments import HARNESS_TASKS

    report = evaluate(m.model, m.tokenizer, list(HARNESS_TASKS), config=cfg, split="test",
                      limit=cfg.lifecycle.harness_limit, batch_size=32, chat=chat, system=SYSTEM if chat else None)
    by: dict[str, list[float]] = {}
    for r in report["results"].values():
        lang = r["lang"].split("-")[0]
        value = r[r["primary"]]
        by.setdefault(f"{r['group']}/{lang}", []).append(value)
        by.setdefault(f"all/{lang}", []).append(value)
    return {key: float(np.mean(v)) for key, v in sorted(by.items())} | {"items_per_task": cfg.lifecycle.harness_limit}


def preference_scores(cfg: Config, m, instruct) -> dict:
    """Chapter 07's judgement of ``m`` on the held-out preference prompts, and its KL to ``instruct``."""
    from ..alignment.dpo import evaluate_policy, sequence_kl, summarize
    from ..alignment.reward_experiments import held_out_prompts

    prompts, p = held_out_prompts(cfg), cfg.alignment
    prompts = spread(prompts, cfg.lifecycle.preference_prompts or len(prompts))
    rows = evaluate_policy(m.model, m.tokenizer, prompts, max_new_tokens=p.max_new_tokens)
    kl = 0.0 if m.name == "instruct" else sequence_kl(m.model, instruct.model, m.tokenizer, prompts,
                                                       max_new_tokens=p.max_new_tokens, seed=cfg.run.seed)
    return summarize(rows) | {"kl_to_instruct": kl, "rows": [{k: r[k] for k in ("id", "kind", "lang", "gold", "reply")}
                                                             for r in rows]}


def footprint(cfg: Config, m) -> dict:
    """Parameters, bytes on disk and resident, and the median seconds per generated token (batch 1, one thread)."""
    import torch

    from ..compression.pruning import nonzero_parameters
    from ..compression.speed import resident_bytes, time_generation

    counted = m.dense if m.dense is not None else m.model  # int8 kernels pack their weights out of parameters()
    parameters = {id(p): p for p in counted.parameters()}.values()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a latency on one core is comparable between models; the machine's load is not
    try:
        seconds = time_generation({m.name: m.model}, batch=1, new_tokens=cfg.lifecycle.latency_tokens,
                                  rounds=cfg.lifecycle.latency_rounds)[m.name]
    finally:
        torch.set_num_threads(threads)
    return {"parameters": int(sum(p.numel() for p in parameters)), "nonzero": nonzero_parameters(counted),
            "disk_bytes": m.disk_bytes, "resident_bytes": sum(resident_bytes(f) for f in m.files),
            "seconds_per_token": seconds, "files": [f.name for f in m.files]}


def rag_scores(cfg: Config, m) -> dict:
    """Chapter 10's systems with ``m`` as the reader, on ``lifecycle.rag_questions`` questions per set."""
    from ..retrieval import (RAG, Qasa, SparseRetriever, closed_book, cutoff_table, eval_queries, hallucination_table,
                             multi_passage_questions, premise_questions, question_vocabulary, world_corpus)
    from ..retrieval.rag_eval import compare

    n = cfg.lifecycle.rag_questions
    corpus = world_corpus(cfg)
    sparse = SparseRetriever(corpus)
    rag = RAG(sparse, corpus, m.model, m.tokenizer)
    qasa = Qasa(rag, sparse, question_vocab=question_vocabulary(sparse.ko))
    fits = lambda rows: [r for r in rows if rag.fits(r["question"], r["lang"])]
    facts = fits(eval_queries(cfg, corpus))
    facts = spread([r for r in facts if not r["after_cutoff"]], n) + spread([r for r in facts if r["after_cutoff"]], n)
    cutoff = {k: v for k, v in cutoff_table(rag, facts).items() if k != "rows"}
    premise = spread(fits(premise_questions(cfg)), n)
    questions, langs = [q["question"] for q in premise], [q["lang"] for q in premise]
    replies = {"closed_book": closed_book(m.model, m.tokenizer, questions, langs),
               "rag": [a.reply for a in rag.answer_many(questions, langs)],
               "qasa": [a.reply for a in qasa.answer_many(questions, langs)]}
    multi = compare(rag, qasa, spread(fits(multi_passage_questions(cfg, corpus)), n))
    multi.pop("example_html", None)
    return {"cutoff": cutoff, "hallucination": hallucination_table(replies, premise), "multi": multi}


def score(cfg: Config, name: str) -> dict:
    """Every measure of model ``name`` (see the module's docstring), with the seconds each took."""
    m = load(name, cfg)
    instruct = m if name == "instruct" else load("instruct", cfg)
    out: dict = {"model": name, "profile": cfg.profile, "seed": cfg.run.seed, "seconds": {}}
    data = zoo.get("pretrain-data", cfg)
    steps = {"harness": lambda: harness_scores(cfg, m, chat=name in CHAT_MODELS),
             "perplexity": lambda: perplexity(m.model, data["eval"]),
             "preference": lambda: preference_scores(cfg, m, instruct),
             "footprint": lambda: footprint(cfg, m),
             "rag": lambda: rag_scores(cfg, m) if name in CHAT_MODELS else None}
    for key, fn in steps.items():
        start = time.perf_counter()
        out[key] = fn()
        out["seconds"][key] = time.perf_counter() - start
    return out


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "scores.json").read_text(encoding="utf-8"))


def _register(name: str) -> None:
    deps = (name, "instruct", "pretrain-data")
    deps = tuple(dict.fromkeys(deps))  # instruct's own scores depend on it once

    @zoo.register(f"scores-{name}", load=_load, sections=SCORE_SECTIONS, deps=deps,
                  description=f"chapter 11: {name} on the harness, perplexity, gold reward, footprint and RAG")
    def _build(cfg: Config, out: Path) -> None:
        (out / "scores.json").write_text(json.dumps(score(cfg, name), indent=1, ensure_ascii=False, default=float),
                                         encoding="utf-8")


for _name in MODELS:
    _register(_name)
