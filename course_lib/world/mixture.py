"""Corpus statistics and data mixtures: how much text each source holds, and a training mix drawn from it.

Units. Sizes are counted in **words**: whitespace-separated tokens
(``len(text.split())``), the unit of the data card (``data/world/README.md``),
and in characters (Unicode code points). A subword tokenizer only arrives in
chapter 03; until then a word is the course's token. Korean words (어절) carry
their particles, so Korean has fewer words than English for the same facts.

- ``corpus_stats(documents, by)``: documents, words and characters per group
  (source kind and language by default), in the data card's order.
- ``build_mixture(documents, weights, total_words, seed=...)``: a training mix
  in which source ``s`` supplies the fraction ``weights[s]`` of the **words**
  (not of the documents), the way LLaMA's pre-training table gives each source a
  sampling proportion and reports the epochs that implies. A source smaller
  than its share is up-sampled (every document repeated, then a seeded random
  part once more); a larger one is down-sampled (a seeded random part).

Weights must be non-negative, name sources present in the documents, and sum
to 1 (within ``WEIGHT_TOLERANCE``); they are not rescaled silently, because a
missing or mistyped source would then quietly inflate the others. Use
``normalize_weights`` to turn raw proportions into weights on purpose.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .documents import KINDS

WEIGHT_TOLERANCE = 1e-6  # |sum of weights - 1| allowed
LANGS = ("en", "ko")


class MixtureError(ValueError):
    """Weights or sizes that cannot make a mixture; the message names the source and the fix."""


def count_words(text: str) -> int:
    """Whitespace-separated words in ``text``: the course's unit of size before chapter 03's tokenizer."""
    return len(text.split())


def _records(documents) -> list[Mapping]:
    """Documents as mappings: a ``datasets.Dataset``, world ``Document`` objects or dicts."""
    if hasattr(documents, "to_list") and hasattr(documents, "column_names"):  # a datasets.Dataset
        return documents.to_list()
    return [d.to_record() if hasattr(d, "to_record") else d for d in documents]


def _order(field: str, value) -> tuple:
    """Sort key putting source kinds in the survey's order and languages as en, ko; other values sorted."""
    known = {"kind": KINDS, "lang": LANGS}.get(field, ())
    return (known.index(value), "") if value in known else (len(known), str(value))


# ---------------------------------------------------------------------- statistics


def corpus_stats(documents, by: Iterable[str] = ("kind", "lang")) -> list[dict]:
    """One row per group of ``documents`` sharing the fields ``by``.

    Each row holds the ``by`` fields and ``documents``, ``words`` (whitespace
    tokens) and ``characters`` (code points). Rows are ordered by source kind as
    in ``KINDS``, then language (en, ko), then other values sorted; groups with
    no documents are left out. ``documents`` may be a ``datasets.Dataset``, a
    list of record dicts (a mixture's ``documents``) or world ``Document`` objects.
    """
    by = tuple(by)
    groups: dict[tuple, dict] = {}
    for doc in _records(documents):
        key = tuple(doc[f] for f in by)
        row = groups.setdefault(key, {**dict(zip(by, key)), "documents": 0, "words": 0, "characters": 0})
        row["documents"] += 1
        row["words"] += count_words(doc["text"])
        row["characters"] += len(doc["text"])
    return [groups[k] for k in sorted(groups, key=lambda k: tuple(_order(f, v) for f, v in zip(by, k)))]


# ---------------------------------------------------------------------- weights


def normalize_weights(proportions: Mapping[str, float]) -> dict[str, float]:
    """``proportions`` divided by their sum, so they sum to 1: ``{"web": 3, "code": 1}`` -> 0.75, 0.25."""
    _check_values(proportions)
    total = sum(proportions.values())
    if total <= 0:
        raise MixtureError("the proportions sum to 0: give at least one source a positive proportion")
    return {s: w / total for s, w in proportions.items()}


def _check_values(weights: Mapping[str, float]) -> None:
    if not weights:
        raise MixtureError("no weights given: map each source to its fraction of the mixture's words")
    for source, w in weights.items():
        if not isinstance(w, numbers.Real) or isinstance(w, bool) or not math.isfinite(w):
            raise MixtureError(f"weight of source {source!r} must be a finite number, got {w!r}")
        if w < 0:
            raise MixtureError(f"weight of source {source!r} is negative ({w}); weights are fractions of the words")


def check_weights(weights: Mapping[str, float], sources: Iterable[str]) -> None:
    """Raise ``MixtureError`` unless ``weights`` are non-negative, name only ``sources`` and sum to 1."""
    _check_values(weights)
    sources = list(sources)
    unknown = [s for s in weights if s not in sources]
    if unknown:
        raise MixtureError(f"unknown source {unknown[0]!r}; the documents have the sources: {', '.join(sources)}")
    total = sum(weights.values())
    if abs(total - 1) > WEIGHT_TOLERANCE:
        raise MixtureError(f"weights sum to {total:.6g}, not 1: they are fractions of the mixture's words. "
                           "Fix them, or rescale on purpose with normalize_weights(weights)")


# ---------------------------------------------------------------------- mixtures


@dataclass(frozen=True)
class SourceMix:
    """What one source gave a mixture. Sizes in words (whitespace tokens).

    ``weight`` is the target fraction of the mixture's words and ``share`` the
    fraction achieved; ``epochs`` is how many times the source's words were seen
    (``sampled_words / words``): above 1 the source was up-sampled, below 1
    down-sampled.
    """

    source: str
    weight: float
    documents: int  # documents available in the source
    words: int  # words available in the source
    target_words: float  # weight * total_words
    sampled_documents: int  # documents drawn, repeats counted
    sampled_words: int  # words drawn, repeats counted
    share: float  # sampled_words / the mixture's words

    @property
    def epochs(self) -> float:
        return self.sampled_words / self.words if self.words else 0.0


@dataclass(frozen=True)
class Mixture:
    """A sampled training mix: ``documents`` (records, in training order) and per-source ``sources``.

    A document drawn more than once appears once per draw, as the same record object: treat it as read-only.
    """

    documents: list[dict]
    sources: list[SourceMix]
    total_words: int  # requested size
    seed: int
    by: str  # the record field that names a document's source

    @property
    def words(self) -> int:
        """Words actually drawn (within about half a document per source of ``total_words``)."""
        return sum(s.sampled_words for s in self.sources)

    def table(self) -> list[dict]:
        """One row per source: weight, share, epochs, available and sampled documents and words."""
        return [{"source": s.source, "weight": s.weight, "share": s.share, "epochs": s.epochs,
                 "documents": s.documents, "words": s.words, "sampled_documents": s.sampled_documents,
                 "sampled_words": s.sampled_words} for s in self.sources]

    def to_dataset(self):
        """The mix as a ``datasets.Dataset`` (one row per drawn document), ready for tokenization."""
        import datasets

        return datasets.Dataset.from_list(self.documents)


def _draw(docs: list[dict], target: float, rng: random.Random) -> list[dict]:
    """Documents of one source whose words come as close to ``target`` as whole documents allow.

    Whole passes over the source first (``floor(target / words)`` epochs), then a
    seeded random order of its documents, cut where the running word count is
    nearest the rest of the target (a tie keeps the shorter cut).
    """
    sizes = [count_words(d["text"]) for d in docs]
    passes, rest = divmod(target, sum(sizes))
    drawn = docs * int(passes)
    order = list(range(len(docs)))
    rng.shuffle(order)
    taken = 0
    for i in order:
        if taken + sizes[i] - rest >= rest - taken:  # adding it lands no nearer the target
            break
        drawn.append(docs[i])
        taken += sizes[i]
    return drawn


def build_mixture(documents, weights: Mapping[str, float], total_words: int, *, seed: int = 0, by: str = "kind",
                  pretraining_only: bool = True) -> Mixture:
    """Sample a training mix of about ``total_words`` words in which source ``s`` has ``weights[s]`` of the words.

    ``documents``: a ``datasets.Dataset``, record dicts or world ``Document``
    objects; ``by`` is the field naming a document's source (``kind``, or e.g.
    ``lang`` to mix languages). With ``pretraining_only`` (default), documents
    with ``in_pretraining`` false (news after the knowledge cutoff) are left out
    before sampling. ``weights`` maps sources to fractions of the words: each
    >= 0, summing to 1 (see ``check_weights``); sources left out get none.

    Deterministic: the same inputs and ``seed`` give the same mix. Each source
    draws from its own random stream, so changing one source's weight does not
    change which documents another source contributes. The mixed documents are
    then shuffled into one training order.
    """
    if not isinstance(total_words, int) or isinstance(total_words, bool) or total_words <= 0:
        raise MixtureError(f"total_words must be a positive integer (words in the mixture), got {total_words!r}")
    per_source: dict[str, list[dict]] = {}
    held_out = set()
    for d in _records(documents):
        if d.get("in_pretraining", True) or not pretraining_only:
            per_source.setdefault(d[by], []).append(d)
        else:
            held_out.add(d[by])
    sources = sorted(per_source, key=lambda s: _order(by, s))
    for source in weights:
        if source in held_out and source not in per_source:
            raise MixtureError(f"source {source!r} has no pretraining documents: all of them are held out "
                               "(in_pretraining=false, e.g. news after the knowledge cutoff)")
    check_weights(weights, sources)
    for source, w in weights.items():
        if w > 0 and not sum(count_words(d["text"]) for d in per_source[source]):
            raise MixtureError(f"source {source!r} has weight {w} but its documents hold no words")

    drawn: dict[str, list[dict]] = {}
    for source, w in weights.items():
        if w > 0:
            drawn[source] = _draw(per_source[source], w * total_words, random.Random(f"{seed}|mixture|{source}"))
    mixed = [d for s in drawn for d in drawn[s]]
    random.Random(f"{seed}|mixture|order").shuffle(mixed)

    total = sum(count_words(d["text"]) for d in mixed)
    stats = []
    for source, w in weights.items():
        docs = per_source[source]
        got = drawn.get(source, [])
        got_words = sum(count_words(d["text"]) for d in got)
        stats.append(SourceMix(source=source, weight=w, documents=len(docs),
                               words=sum(count_words(d["text"]) for d in docs), target_words=w * total_words,
                               sampled_documents=len(got), sampled_words=got_words,
                               share=got_words / total if total else 0.0))
    return Mixture(documents=mixed, sources=stats, total_words=total_words, seed=seed, by=by)


def plot_mixture(mixture: Mixture, ax=None, title: str | None = None):
    """Bar chart of each source's target weight next to its achieved share of the words, with epochs on top."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    names = [s.source for s in mixture.sources]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [100 * s.weight for s in mixture.sources], width=0.4, label="target weight")
    bars = ax.bar([i + 0.2 for i in x], [100 * s.share for s in mixture.sources], width=0.4, label="achieved share")
    for bar, s in zip(bars, mixture.sources):
        ax.annotate(f"{s.epochs:.2f} ep", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_ylabel("share of the mixture's words (%)")
    ax.set_xlabel(f"source ({mixture.by})")
    ax.set_title(title or f"Mixture of {mixture.words:,} words: target vs achieved (ep = epochs)")
    ax.legend()
    return ax
