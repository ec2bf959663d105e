"""Chapter 10's experiments on the ``instruct`` reader, kept as the ``rag-eval`` zoo artifact (``results.json``).

- ``cutoff``: closed-book ``instruct`` against RAG (BM25 over the world corpus, news
  included), exact match on the held-out fact questions before and after the knowledge
  cutoff (:func:`rag.cutoff_table`);
- ``hallucination``: on the false-premise and unanswerable questions, the share answered
  with an invented fact by the closed-book reader, by RAG and by QASA; beside it, how
  often each *answers* the fact questions, so that declining everything does not pass
  for honesty (``answered``);
- ``multi``: QASA against plain RAG on questions that need two passages, and QASA's
  ablations (without selection, without rationales), exact match with paired 95%
  bootstrap intervals of each difference; the same systems on the single-passage fact
  questions (``single``);
- ``size``: the survey's claim that a small model with QASA beats a larger one without it:
  ``reader-small`` (``instruct`` with half its layers removed and recovered) through QASA
  against ``instruct`` through plain RAG, paired per question (:func:`size_comparison`).

    zoo.get("rag-eval")   {"cutoff", "hallucination", "answered", "multi", "single", "size", "examples",
                           "too_long", "seconds"}

Questions whose prompt alone leaves no room for the answer in the reader's context (only on
``ci``'s 128 tokens) are left out and counted per set in ``too_long``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import zoo
from ..config import Config
from ..instruction.instruct import declines
from ..models import count_parameters
from .bm25 import SparseRetriever
from .corpus import eval_queries, world_corpus
from .qasa import Qasa, multi_passage_questions, question_vocabulary, render_html
from .rag import RAG, closed_book, cutoff_table, hallucination_table, is_correct, premise_questions, rate

SYSTEMS = {"qasa": {}, "qasa_no_selection": {"select": False}, "qasa_no_rationales": {"rationales": False}}


def paired(a: list[bool], b: list[bool]) -> dict:
    """Mean of ``a`` minus ``b`` (per question) with its 95% bootstrap interval; questions resampled together."""
    return rate([float(x) - float(y) for x, y in zip(a, b, strict=True)])


def compare(rag: RAG, qasa: Qasa, rows: list[dict]) -> dict:
    """Exact match of plain RAG, QASA and its ablations on ``rows`` (``question``, ``lang``, ``answer``).

    Per system: ``em`` (mean) and ``declined`` (share); ``qasa_minus_rag`` and
    ``qasa_minus_<ablation>``: paired differences with 95% intervals; ``answers``: one example
    rendered as HTML per system.
    """
    questions, langs = [r["question"] for r in rows], [r["lang"] for r in rows]
    correct = {"rag": [is_correct(a.reply, r["answer"]) for a, r in zip(rag.answer_many(questions, langs), rows)]}
    out: dict = {"n": len(rows)}
    for name, flags in SYSTEMS.items():
        answers = qasa.answer_many(questions, langs, **flags)
        correct[name] = [is_correct(a.reply, r["answer"]) for a, r in zip(answers, rows)]
        out[name] = {"declined": sum(a.declined for a in answers) / len(rows)}
        if name == "qasa":
            shown = next((a for a, c in zip(answers, correct[name]) if c), answers[0])
            out["example_html"] = render_html(shown)
    for name, flags in correct.items():
        out.setdefault(name, {})["em"] = sum(flags) / len(rows)
    out["qasa_minus_rag"] = paired(correct["qasa"], correct["rag"])
    for name in ("qasa_no_selection", "qasa_no_rationales"):
        out[f"qasa_minus_{name[5:]}"] = paired(correct["qasa"], correct[name])
    out["correct"] = correct
    return out


def size_comparison(small_qasa: Qasa, results: dict, sets: dict[str, list[dict]], parameters: dict) -> dict:
    """The survey's claim, with the course's readers: the small reader through QASA against ``instruct`` through
    plain RAG, on each set of ``sets`` (name -> rows, already scored by :func:`compare` in ``results[name]``).

    Per set: exact match of the small reader through plain RAG and through QASA, beside instruct's, and the
    paired difference ``small_qasa_minus_instruct_rag`` with its 95% interval.
    """
    out: dict = {"parameters": parameters}
    for name, rows in sets.items():
        questions, langs = [r["question"] for r in rows], [r["lang"] for r in rows]
        small = {"small_rag": [is_correct(a.reply, r["answer"])
                               for a, r in zip(small_qasa.rag.answer_many(questions, langs), rows)],
                 "small_qasa": [is_correct(a.reply, r["answer"])
                                for a, r in zip(small_qasa.answer_many(questions, langs), rows)]}
        big = {f"instruct_{s}": results[name]["correct"][s] for s in ("rag", "qasa")}
        out[name] = {key: sum(flags) / len(rows) for key, flags in (big | small).items()} | {
            "n": len(rows), "small_qasa_minus_instruct_rag": paired(small["small_qasa"], big["instruct_rag"])}
    return out


def rag_experiments(cfg: Config, reader, *, k: int = 5, small=None) -> dict:
    """Every table of the chapter for ``reader`` (a TrainedModel in the chat format) on ``cfg``'s world; with
    ``small`` (a smaller reader), also :func:`size_comparison` (``size``)."""
    start = time.perf_counter()
    corpus = world_corpus(cfg)
    sparse = SparseRetriever(corpus)
    rag = RAG(sparse, corpus, reader.model, reader.tokenizer, k=k)
    qasa = Qasa(rag, sparse, question_vocab=question_vocabulary(sparse.ko))
    results: dict = {"passages": len(corpus), "k": k, "reader_context": rag.context, "too_long": {}}

    def fitting(name: str, rows: list[dict]) -> list[dict]:  # a question the reader cannot even read is counted out
        kept = [r for r in rows if rag.fits(r["question"], r["lang"])]
        results["too_long"][name] = len(rows) - len(kept)
        return kept

    facts = fitting("facts", eval_queries(cfg, corpus))
    cutoff = cutoff_table(rag, facts)
    results["cutoff"] = {key: value for key, value in cutoff.items() if key != "rows"}
    results["examples"] = [r for r in cutoff["rows"] if r["after_cutoff"]][:6]

    premise = fitting("premise", premise_questions(cfg))
    questions, langs = [q["question"] for q in premise], [q["lang"] for q in premise]
    replies = {"closed_book": closed_book(reader.model, reader.tokenizer, questions, langs),
               "rag": [a.reply for a in rag.answer_many(questions, langs)],
               "qasa": [a.reply for a in qasa.answer_many(questions, langs)]}
    results["hallucination"] = hallucination_table(replies, premise)
    results["hallucination_examples"] = [{"question": q["question"]} | {n: r[i] for n, r in replies.items()}
                                         for i, q in enumerate(premise[:6])]
    fact_q, fact_l = [q["question"] for q in facts], [q["lang"] for q in facts]
    qasa_facts = [a.reply for a in qasa.answer_many(fact_q, fact_l)]
    results["answered"] = {name: sum(not declines(r, q["lang"]) for r, q in zip(said, facts)) / len(facts)
                           for name, said in (("closed_book", [r["closed_book"] for r in cutoff["rows"]]),
                                              ("rag", [r["rag"] for r in cutoff["rows"]]), ("qasa", qasa_facts))}
    multi = fitting("multi", multi_passage_questions(cfg, corpus))
    results["multi"] = compare(rag, qasa, multi)
    results["single"] = compare(rag, qasa, facts)
    if small is not None:
        small_rag = RAG(sparse, corpus, small.model, small.tokenizer, k=k)
        parameters = {"small": count_parameters(small.model), "instruct": count_parameters(reader.model)}
        results["size"] = size_comparison(Qasa(small_rag, sparse, question_vocab=qasa.question_vocab), results,
                                          {"multi": multi, "single": facts}, parameters)
    results["seconds"] = time.perf_counter() - start
    return results


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


@zoo.register("rag-eval", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation", "instruct",
                                                 "compression"),
              deps=("instruct", "reader-small"), description="chapter 10: closed-book vs RAG vs QASA (cutoff, "
                                                             "hallucination, multi-passage questions, ablations, "
                                                             "a small reader with QASA vs instruct without)")
def _build(cfg: Config, out: Path) -> None:
    results = rag_experiments(cfg, zoo.get("instruct", cfg), small=zoo.get("reader-small", cfg))
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float), encoding="utf-8")
