"""Retrieval-augmented generation (검색 증강 생성, Lewis et al. 2020): a retriever finds passages, a reader answers.

A model knows what its pretraining text said, up to a *knowledge cutoff* (지식 단절
시점); the world's news after ``world.cutoff`` is in the retrieval corpus
(``world_corpus``) but never in pretraining (``in_pretraining`` is false). RAG puts the
retrieved passages into the reader's prompt, so the reader copies the answer instead of
recalling it.

- The prompt is the one ``instruct`` was tuned to read retrieved passages in
  (``instruction.reading.retrieved_prompt``: qa_open's training template "Read the passage
  and answer the question. Passage: ... Question: ..."), the passage slot holding the
  retrieved passages, best first, one per line, each after its id in brackets:
  ``[news-00010] Jujol Marathon 2025 ...``. Chapter 06's reading exercises include
  invented news reports, lines of evidence and two-statement compositions in this shape.
- The reader has a fixed context (``model.config.max_position_embeddings`` tokens) and
  must keep ``max_new_tokens`` for its reply. :meth:`RAG.prompt` drops the lowest-ranked
  passages until the prompt fits and says how many in ``dropped``; when even the best
  passage alone is too long, its end is cut (``truncated``).
- Citations: the course's reader was never taught to write ids, so the answer cites the
  passages of its prompt that contain the answer (``cited``; attribution by string
  match, as many RAG systems attribute after the fact). An answer that no passage holds
  cites nothing: it came from the reader's memory, or was invented.

:func:`closed_book` asks the reader the bare question (no passages), the baseline.
:func:`cutoff_table` and :func:`hallucination_table` are the chapter's two experiments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..config import Config
from ..instruction.clusters import SYSTEM
from ..instruction.formatting import render_chat
from ..instruction.instruct import chat_answers, declines
from ..instruction.reading import retrieved_prompt
from ..pretraining.bootstrap import bootstrap_interval
from ..world import load
from .corpus import Corpus, QueryError, Ranking, check_k, check_query

MAX_NEW_TOKENS = 24  # the world's answers are names, years, dates and short corrections
_ID = re.compile(r"\s*\[[^\]]*\]")


def clean(reply: str) -> str:
    """A reply without bracketed ids and surrounding space or final period: what exact match compares."""
    return _ID.sub("", reply).strip().rstrip(".").strip()


def is_correct(reply: str, answer: str) -> bool:
    """Exact match, as chapter 06 scores it: the reply, without ids and final period, equals the answer."""
    return clean(reply) == answer.strip().rstrip(".")


def one_line(text: str) -> str:
    """A passage on one line: its title and body joined by single spaces."""
    return " ".join(text.split())


@dataclass
class RagAnswer:
    """One question answered from passages: what was retrieved, what the reader saw and said, and what it cites."""

    question: str
    lang: str
    reply: str  # the reader's words
    passages: list[str]  # ids in the prompt, best first
    retrieved: Ranking  # what the retriever returned, best first
    dropped: int = 0  # retrieved passages left out so the prompt fits the reader's context
    truncated: bool = False  # the one passage kept was cut at its end to fit
    cited: list[str] = field(default_factory=list)  # passages of the prompt that contain the answer

    @property
    def answer(self) -> str:
        """The reply as exact match reads it (no ids, no final period)."""
        return clean(self.reply)

    def with_citations(self) -> str:
        """``answer [id, id]``, or the bare answer when no passage holds it."""
        return f"{self.answer} [{', '.join(self.cited)}]" if self.cited else self.answer


class RAG:
    """A retriever (anything with ``search(query, k, lang)``) over ``corpus``, and a chat reader (model, tokenizer).

    ``k`` passages are retrieved per question; the prompt keeps as many of them, best
    first, as fit the reader's context with ``max_new_tokens`` left for the reply.
    """

    def __init__(self, retriever, corpus: Corpus, model, tokenizer, *, k: int = 5,
                 max_new_tokens: int = MAX_NEW_TOKENS, context: int | None = None):
        self.retriever, self.corpus, self.model, self.tokenizer = retriever, corpus, model, tokenizer
        self.k = check_k(k, len(corpus))
        self.max_new_tokens = max_new_tokens
        self.context = context or model.config.max_position_embeddings
        if self.max_new_tokens >= self.context:
            raise QueryError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of "
                             f"{self.context} tokens")
        self.text = dict(zip(corpus.ids, corpus.texts))

    # ------------------------------------------------------------------ the prompt
    def tokens(self, messages: list[dict]) -> int:
        """How many tokens the reader sees for ``messages``, its answer cue included."""
        prompt = render_chat(messages, add_generation_prompt=True)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def messages(self, question: str, lang: str, passages: list[tuple[str, str]]) -> list[dict]:
        """The reading prompt: system, then ``instruction.reading.retrieved_prompt`` (``[id] passage`` lines)."""
        return [{"role": "system", "content": SYSTEM[lang]},
                {"role": "user", "content": retrieved_prompt(lang, passages, question)}]

    def fits(self, question: str, lang: str) -> bool:
        """Whether the prompt with no passage leaves ``max_new_tokens`` of the reader's context for the answer."""
        return self.tokens(self.messages(question, lang, [])) <= self.context - self.max_new_tokens

    def fit(self, question: str, lang: str, passages: list[tuple[str, str]]) -> tuple[list[dict], int, bool]:
        """(messages, dropped, truncated): the best passages that fit ``context - max_new_tokens`` tokens.

        Passages are dropped from the worst up; if the best one alone does not fit, its last
        words are cut until it does. A question that does not fit even with no passage is a
        ``QueryError``.
        """
        budget = self.context - self.max_new_tokens
        if self.tokens(self.messages(question, lang, [])) > budget:
            raise QueryError(f"the question alone is longer than the reader's context of {self.context} tokens "
                             f"less {self.max_new_tokens} for the answer")
        for n in range(len(passages), 0, -1):
            messages = self.messages(question, lang, passages[:n])
            if self.tokens(messages) <= budget:
                return messages, len(passages) - n, False
        if not passages:
            return self.messages(question, lang, []), 0, False
        pid, words = passages[0][0], one_line(passages[0][1]).split()
        lo, hi = 0, len(words)  # the longest prefix of the best passage that fits: binary search on words
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.tokens(self.messages(question, lang, [(pid, " ".join(words[:mid]))])) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return self.messages(question, lang, [(pid, " ".join(words[:lo]))]), len(passages) - 1, True

    # ------------------------------------------------------------------ answering
    def retrieve(self, questions: list[str], langs: list[str]) -> list[Ranking]:
        for q in questions:
            check_query(q)
        return self.retriever.search_many(questions, self.k, langs)

    def answer_many(self, questions: list[str], langs: list[str], *, batch_size: int = 32) -> list[RagAnswer]:
        """Retrieve, fit, read and cite, for each question in its language."""
        rankings = self.retrieve(questions, langs)
        return self.read(questions, langs, [[pid for pid, _ in r] for r in rankings], rankings, batch_size=batch_size)

    def read(self, questions: list[str], langs: list[str], passage_ids: list[list[str]], rankings=None, *,
             passage_texts: list[list[str]] | None = None, batch_size: int = 32) -> list[RagAnswer]:
        """The reader on given passages (ids, best first; texts from the corpus unless ``passage_texts``)."""
        prompts, out = [], []
        for i, (q, lang, ids) in enumerate(zip(questions, langs, passage_ids, strict=True)):
            texts = passage_texts[i] if passage_texts is not None else [self.text[p] for p in ids]
            messages, dropped, truncated = self.fit(q, lang, list(zip(ids, texts)))
            prompts.append(messages)
            shown = ids[: len(ids) - dropped] if not truncated else ids[:1]
            out.append(RagAnswer(q, lang, "", shown, rankings[i] if rankings else [(p, 0.0) for p in ids],
                                 dropped, truncated))
        replies = chat_answers(self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                               batch_size=batch_size)
        for a, reply in zip(out, replies):
            a.reply = reply
            a.cited = [p for p in a.passages if a.answer and a.answer in self.text.get(p, "")]
        return out

    def answer(self, question: str, lang: str = "en") -> RagAnswer:
        return self.answer_many([question], [lang])[0]


def closed_book(model, tokenizer, questions: list[str], langs: list[str], *, max_new_tokens: int = MAX_NEW_TOKENS,
                batch_size: int = 32) -> list[str]:
    """The reader's reply to each bare question (system line, the question): what it remembers."""
    for q in questions:
        check_query(q)
    conversations = [[{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": q}]
                     for q, lang in zip(questions, langs, strict=True)]
    return chat_answers(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size)


def rate(values) -> dict:
    """``{"mean", "low", "high", "n"}``: the mean of ``values`` and its 95% bootstrap interval (NaN when empty)."""
    mean, low, high = bootstrap_interval([float(v) for v in values]) if len(values) else (float("nan"),) * 3
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def cutoff_table(rag: RAG, queries: list[dict], *, batch_size: int = 32) -> dict:
    """Closed-book reader vs RAG, exact match on fact questions before and after the knowledge cutoff.

    ``queries``: ``eval_queries`` rows (``question``, ``lang``, ``answer``, ``after_cutoff``).
    Returns ``{"pre"|"post": {"closed_book", "rag", "gain"}}`` with means and 95% bootstrap
    intervals (``gain``: RAG minus closed-book, paired per question), per-language means
    (``by_lang``), the share of RAG answers that cite a passage, the passages dropped to fit,
    and every scored row (``rows``).
    """
    questions, langs = [q["question"] for q in queries], [q["lang"] for q in queries]
    closed = closed_book(rag.model, rag.tokenizer, questions, langs, batch_size=batch_size)
    answers = rag.answer_many(questions, langs, batch_size=batch_size)
    rows = [{"id": q["id"], "lang": q["lang"], "after_cutoff": q["after_cutoff"], "question": q["question"],
             "answer": q["answer"], "closed_book": c, "rag": a.reply, "cited": a.cited, "passages": a.passages,
             "dropped": a.dropped, "retrieved_relevant": bool(set(q["relevant"]) & set(a.passages)),
             "closed_book_correct": is_correct(c, q["answer"]), "rag_correct": is_correct(a.reply, q["answer"])}
            for q, c, a in zip(queries, closed, answers)]
    out: dict = {"rows": rows}
    for name, late in (("pre", False), ("post", True)):
        mine = [r for r in rows if r["after_cutoff"] == late]
        out[name] = {"closed_book": rate([r["closed_book_correct"] for r in mine]),
                     "rag": rate([r["rag_correct"] for r in mine]),
                     "gain": rate([r["rag_correct"] - r["closed_book_correct"] for r in mine]),
                     "relevant_in_prompt": float(np.mean([r["retrieved_relevant"] for r in mine])) if mine else 0.0,
                     "by_lang": {lang: {m: float(np.mean([r[f"{m}_correct"] for r in mine if r["lang"] == lang]))
                                        for m in ("closed_book", "rag")}
                                 for lang in ("en", "ko") if any(r["lang"] == lang for r in mine)}}
    out["cited_share"] = float(np.mean([bool(r["cited"]) for r in rows]))
    out["mean_dropped"] = float(np.mean([r["dropped"] for r in rows]))
    return out


def premise_questions(cfg: Config, splits=("test", "test_template")) -> list[dict]:
    """The world's false-premise and unanswerable questions of ``splits``: ``id``, ``task``, ``lang``, ``question``."""
    tasks = load("tasks", cfg)
    return [{"id": t["id"], "task": t["task"], "lang": t["lang"], "question": t["question"], "answer": t["answer"]}
            for split in splits for t in tasks[split] if t["task"] in ("false_premise", "unanswerable")]


def invented(reply: str, lang: str) -> bool:
    """A reply to a question with no true answer that neither corrects its premise nor declines: an invented fact."""
    return not declines(reply, lang)


def hallucination_table(replies: dict[str, list[str]], questions: list[dict]) -> dict:
    """For each system (name -> replies, one per question): the share of invented answers, per task and overall."""
    out = {}
    for name, said in replies.items():
        flags = [invented(r, q["lang"]) for r, q in zip(said, questions, strict=True)]
        out[name] = {"all": rate(flags)} | {
            task: rate([f for f, q in zip(flags, questions) if q["task"] == task])
            for task in ("false_premise", "unanswerable")}
    return out
