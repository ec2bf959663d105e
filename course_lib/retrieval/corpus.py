"""The retrieval corpus (검색 말뭉치) and its questions: passages with ids, and which ids answer each question.

- :class:`Corpus`: passage ids, texts and languages, checked on creation (no duplicate
  id, no empty passage); its :meth:`Corpus.fingerprint` ties an index to it.
- :func:`world_corpus`: every document of ``data.source`` (the world by default) as one
  passage, both languages, news after the knowledge cutoff included: those are kept out
  of pretraining, but retrieval is how a model reads them. :func:`load_corpus` reads
  ``retrieval.corpus`` instead when it names a local JSONL of passages or a Hub dataset
  (:func:`stream_passages`, one passage at a time).
- :func:`eval_queries`: the world's fact questions (``qa_open`` and ``qa_closed``) of the
  held-out splits; a passage is relevant when it is in the question's language and
  states the question's fact (the document's ``fact_ids``).
- :func:`training_pairs`: (question, passage) pairs for the bi-encoder, from training
  facts and training question templates only, so no test fact or phrasing leaks in.

Errors name the problem: :class:`CorpusError`, :class:`QueryError` and
:class:`IndexMismatchError` are all :class:`RetrievalError`, a ``ValueError``.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, is_offline
from ..world import build_world, load
from ..world.hangul import detect_lang
from ..world.templates import QUESTIONS

Ranking = list[tuple[str, float]]  # one query's (passage id, score) pairs, best first
QA_TASKS = ("qa_open", "qa_closed")  # world task families that ask one fact as a question
EVAL_SPLITS = ("test", "test_template")


class RetrievalError(ValueError):
    """Input that retrieval cannot use; the message says what is wrong with it."""


class CorpusError(RetrievalError):
    """A corpus with duplicate ids, empty passages or columns of different lengths."""


class QueryError(RetrievalError):
    """An empty query, one longer than the encoder's context, or a k outside 1..corpus size."""


class IndexMismatchError(RetrievalError):
    """A stored index that was built from another corpus (other ids, other size) or is inconsistent."""


def check_query(query: str) -> str:
    """``query`` itself, or a ``QueryError`` when it is not a string or is empty or whitespace only."""
    if not isinstance(query, str):
        raise QueryError(f"a query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise QueryError(f"empty query {query!r}: a query needs at least one non-space character")
    return query


def check_k(k: int, n: int) -> int:
    """``k`` itself when 1 <= k <= n (the corpus size), else a ``QueryError``."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise QueryError(f"k must be an int, got {type(k).__name__} {k!r}")
    if not 1 <= k <= n:
        raise QueryError(f"k={k} is outside 1..{n}: ask for at least one passage and at most the corpus size ({n})")
    return k


@dataclass(frozen=True)
class Corpus:
    """Passages to search: ``ids[i]`` names passage ``texts[i]``, written in ``langs[i]`` (``en``/``ko``)."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    langs: tuple[str, ...]

    def __post_init__(self):
        if not len(self.ids) == len(self.texts) == len(self.langs):
            raise CorpusError(f"ids, texts and langs differ in length: {len(self.ids)}, {len(self.texts)}, "
                              f"{len(self.langs)}")
        if not self.ids:
            raise CorpusError("the corpus is empty: retrieval needs at least one passage")
        repeated = [i for i, n in collections.Counter(self.ids).items() if n > 1]
        if repeated:
            raise CorpusError(f"{len(repeated)} duplicate passage ids, e.g. {repeated[:3]}: each id must name one passage")
        empty = [i for i, t in zip(self.ids, self.texts) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise CorpusError(f"{len(empty)} empty or whitespace-only passages, e.g. ids {empty[:3]}")

    @classmethod
    def from_rows(cls, rows) -> Corpus:
        """A corpus from dicts with ``id``, ``text`` and ``lang`` (world documents, JSONL rows)."""
        rows = list(rows)
        return cls(tuple(r["id"] for r in rows), tuple(r["text"] for r in rows), tuple(r["lang"] for r in rows))

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """SHA-256 of every id and text in order: two corpora with one passage changed differ."""
        h = hashlib.sha256()
        for i, t in zip(self.ids, self.texts):
            h.update(f"{len(i)}:{i}{len(t)}:{t}".encode())
        return h.hexdigest()


def world_corpus(cfg: Config) -> Corpus:
    """Every document of ``cfg``'s ``data.source`` as one passage (2,401 on ``laptop``)."""
    return Corpus.from_rows(load("documents", cfg))


def _passage(raw, where: str) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise CorpusError(f"{where}: a passage must be a JSON object with a string 'text' field")
    if "id" not in raw:
        raise CorpusError(f"{where}: the passage has no 'id' (an index names every passage)")
    return {"id": str(raw["id"]), "text": raw["text"], "lang": str(raw.get("lang") or detect_lang(raw["text"]))}


def stream_passages(source: str, *, offline: bool = True, limit: int = 0):
    """Passages ``{"id", "text", "lang"}`` one at a time from a local ``.jsonl`` file or ``hf:<name>[:<config>]``
    (``datasets``' streaming mode: nothing is downloaded whole), the first ``limit`` only when ``limit`` > 0.

    A missing ``lang`` is detected from the text. A bad line is a ``CorpusError`` naming the
    file and line; a Hub name while ``offline`` is one too.
    """
    if source.startswith("hf:"):
        name, _, subset = source[3:].partition(":")
        if offline:
            raise CorpusError(f"retrieval.corpus={source!r} is a Hugging Face Hub dataset, but the course is offline "
                              "(zoo.offline=true or HF_HUB_OFFLINE=1): set zoo.offline=false, or use a local .jsonl")
        import datasets

        rows = datasets.load_dataset(name, subset or None, split="train", streaming=True)
        where = f"{source} row {{}}"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise CorpusError(f"retrieval.corpus={source!r}: no such file (use '' for the world, a .jsonl, or "
                              "hf:<name>)")
        rows = _jsonl_rows(path)
        where = f"{path}:{{}}"
    for i, raw in enumerate(itertools.islice(rows, limit or None), 1):  # islice: nothing past the cap is read
        yield _passage(raw, where.format(i))


def _jsonl_rows(path: Path):
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                raise CorpusError(f"{path}:{lineno}: an empty line (one passage per line)")
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None


def load_corpus(cfg: Config) -> Corpus:
    """The corpus ``retrieval.corpus`` names (the world's documents when it is empty), checked as any Corpus is."""
    r = cfg.retrieval
    if not r.corpus:
        return world_corpus(cfg)
    return Corpus.from_rows(stream_passages(r.corpus, offline=is_offline(cfg), limit=r.max_passages))


def _passages_by_fact(corpus: Corpus, documents) -> dict[tuple[str, str], list[str]]:
    """(fact id, language) -> ids of the corpus passages in that language that state the fact."""
    known = set(corpus.ids)
    out = collections.defaultdict(list)
    for d in documents:
        if d["id"] in known:
            for fact_id in d["fact_ids"]:
                out[fact_id, d["lang"]].append(d["id"])
    return out


def eval_queries(cfg: Config, corpus: Corpus, splits=EVAL_SPLITS) -> list[dict]:
    """The world's fact questions of ``splits`` that the corpus can answer.

    Each row: ``id``, ``lang``, ``question``, ``answer``, ``after_cutoff`` and ``relevant``
    (a sorted list of passage ids: same language, states the fact). Questions whose fact no
    passage of their language states are left out.
    """
    support = _passages_by_fact(corpus, load("documents", cfg))
    tasks = load("tasks", cfg)
    rows = []
    for split in splits:
        for t in tasks[split]:
            relevant = sorted({p for f in t["fact_ids"] for p in support.get((f, t["lang"]), [])})
            if t["task"] in QA_TASKS and relevant:
                rows.append({"id": t["id"], "lang": t["lang"], "question": t["question"], "answer": t["answer"],
                             "after_cutoff": t["after_cutoff"], "relevant": relevant})
    return rows


def training_pairs(cfg: Config, corpus: Corpus, seed: int = 0) -> list[dict]:
    """(question, passage) pairs for contrastive training, from training facts and templates only.

    For every training fact (``split == "train"``; post-cutoff facts are all test facts),
    language and question template but the held-out last one: the question, one passage
    that states the fact (drawn with ``seed``) and ``relevant``, every passage that states it
    (so another question's positive is not used as this one's negative). Rows: ``query``,
    ``passage``, ``passage_id``, ``relevant`` (a frozenset of ids).
    """
    world = build_world(cfg.world)
    support = _passages_by_fact(corpus, load("documents", cfg))
    text = dict(zip(corpus.ids, corpus.texts))
    rng = random.Random(f"{seed}|retrieval-pairs")
    rows = []
    for fact in world.facts(split="train"):
        for lang in ("en", "ko"):
            positives = support.get((fact.id, lang), [])
            templates = QUESTIONS.get(fact.relation, {}).get(lang, [])[:-1]
            for template in templates if positives else ():
                pick = rng.choice(positives)
                rows.append({"query": world.graph.fill(template, fact, lang), "passage": text[pick],
                             "passage_id": pick, "relevant": frozenset(positives)})
    return rows
