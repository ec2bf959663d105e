"""A curation pipeline over ``datasets``: small steps that each count what they kept, dropped and why.

    >>> pipe = Pipeline([Validate(), UrlDedup(), ExactDedup(), QualityFilters(cfg.curation), NearDedup(), MaskPII()])
    >>> result = pipe.run(load("documents", cfg))
    >>> print(result.audit.markdown())          # every input document accounted for

A step sees the surviving documents as a ``datasets.Dataset`` and returns the
(possibly rewritten) dataset and one reason per document ("" keeps it).
Per-document steps run through ``Dataset.map(batched=True, num_proc=...)``;
corpus-level steps (deduplication) look at a whole column at once. The
``Audit`` records, for every input document id, the step and reason that
dropped it, so ``kept + dropped == input`` holds per reason, by construction
and by ``Audit.check``.

Malformed input never disappears silently: ``Validate`` (always first; added
if missing) reports documents whose text is missing or not a string
(``not_text``), bytes that are not UTF-8 (``invalid_utf8``), strings with
lone surrogates that cannot be encoded (``invalid_utf8``), blank text
(``empty``) and text over ``max_chars`` characters (``huge``); then its other
fields: a URL that is not a string or cannot be parsed (``invalid_url``), a
language code that is not one of English or Korean (``unknown_lang``), and a
value whose type differs from the rest of its column (``bad_column_type``: an
int among strings, which ``pyarrow`` would refuse for the whole batch).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import datasets

from .. import checks
from . import dedup, filters, pii

# ---------------------------------------------------------------------- steps


class Step:
    """One pipeline step. Subclasses set ``name`` and implement ``apply``."""

    name = "step"

    def apply(self, ds: datasets.Dataset, num_proc: int) -> tuple[datasets.Dataset, list[str], dict]:
        """(dataset with rewritten text, reason per row ("" = keep), extra counters for the audit)."""
        raise NotImplementedError


def _map_reasons(ds: datasets.Dataset, fn, num_proc: int, desc: str, batch_size: int = 64):
    """Run ``fn(batch) -> {"text": [...], "_reason": [...], ...}`` over ``ds``; return (dataset, reasons, extra).

    An empty ``ds`` is returned as it is (``map`` would call ``fn`` on nothing and add no columns)."""
    if len(ds) == 0:
        return ds, [], {}
    workers = num_proc if num_proc > 1 and len(ds) >= 2 * num_proc else None  # None: no process pool at all
    out = ds.map(fn, batched=True, batch_size=batch_size, num_proc=workers, desc=desc)
    reasons = out["_reason"]
    extra_cols = [c for c in out.column_names if c.startswith("_") and c != "_reason"]
    extra = collections.Counter()
    for c in extra_cols:
        extra[c[1:]] = sum(out[c])
    return out.remove_columns(["_reason"] + extra_cols), reasons, dict(extra)


def _kind(value) -> str:
    """What ``pyarrow`` makes of a value: ints and floats share a column (as doubles), bools do not."""
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


@dataclass
class Validate(Step):
    """Drop malformed documents with a named reason: not_text, invalid_utf8, empty, huge (> ``max_chars``),
    invalid_url, unknown_lang, bad_column_type."""

    max_chars: int = 1_000_000
    name: str = "validate"

    def reason(self, text) -> str:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                return "invalid_utf8"
        if not isinstance(text, str):
            return "not_text"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_utf8"
        if not text.strip():
            return "empty"
        if len(text) > self.max_chars:
            return "huge"
        return ""

    def field_reason(self, record: dict, kinds: dict[str, str]) -> str:
        """The reason a record with good text is malformed all the same ("" if it is not); ``kinds`` maps
        each column to the kind of value most records hold in it (``_kind``)."""
        url = record.get("url")
        if url not in (None, ""):
            try:
                dedup.split_url(url)
            except (TypeError, ValueError):
                return "invalid_url"
        lang = record.get("lang")
        if lang not in (None, ""):  # a missing code is detected later, by QualityFilters
            try:
                filters.normalize_lang(lang)
            except (TypeError, ValueError):
                return "unknown_lang"
        if any(value is not None and _kind(value) != kinds[key] for key, value in record.items()
               if key not in ("id", "text")):
            return "bad_column_type"
        return ""

    def reasons(self, records: list[dict]) -> list[str]:
        """One reason per record ("" keeps it): its text first, then its other fields."""
        columns = collections.defaultdict(collections.Counter)  # column -> kind -> records, first seen first
        for r in records:
            for key, value in r.items():
                if value is not None:
                    columns[key][_kind(value)] += 1
        kinds = {key: counts.most_common(1)[0][0] for key, counts in columns.items()}
        return [self.reason(r.get("text")) or self.field_reason(r, kinds) for r in records]

    def apply(self, ds, num_proc):
        return ds, self.reasons(ds.to_list()), {}


@dataclass
class ExactDedup(Step):
    """Keep the first document of each normalized-text hash (``dedup.exact_duplicates``)."""

    name: str = "exact_dedup"

    def apply(self, ds, num_proc):
        keep = dedup.exact_duplicates(ds["text"])
        return ds, ["" if k == i else "exact_duplicate" for i, k in enumerate(keep)], {}


@dataclass
class UrlDedup(Step):
    """Keep one document per normalized URL, chosen by ``dedup.url_priority``; documents without a URL stay."""

    mirror_suffixes: Sequence[str] = ()
    name: str = "url_dedup"

    def apply(self, ds, num_proc):
        urls = ds["url"] if "url" in ds.column_names else [""] * len(ds)
        has = [i for i, u in enumerate(urls) if u]
        keep = dedup.url_duplicates([urls[i] for i in has], self.mirror_suffixes)
        reasons = [""] * len(ds)
        for pos, i in enumerate(has):
            if keep[pos] != pos:
                reasons[i] = "url_duplicate"
        return ds, reasons, {}


@dataclass
class NearDedup(Step):
    """MinHash + LSH near-duplicate clusters (``dedup.near_duplicates``); the first of each cluster stays."""

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    name: str = "near_dedup"

    def apply(self, ds, num_proc):
        rep, pairs = dedup.near_duplicates(ds["text"], self.threshold, self.num_perm, self.ngram)
        return ds, ["" if r == i else "near_duplicate" for i, r in enumerate(rep)], {"pairs": len(pairs)}


@dataclass
class LineDedup(Step):
    """Remove lines repeated across the corpus (``mode`` drop_all or keep_first); a document left blank is dropped."""

    mode: str = "drop_all"
    name: str = "line_dedup"

    def apply(self, ds, num_proc):
        texts, removed = dedup.dedup_lines(ds["text"], self.mode)
        ds = ds.remove_columns("text").add_column("text", texts)
        return ds, ["" if t.strip() else "empty_after_line_dedup" for t in texts], {"lines_removed": removed}


@dataclass
class SubstringDedup(Step):
    """Cut word runs of ``min_tokens`` or more that occur elsewhere in the corpus, keeping their first
    occurrence (Lee et al. 2021, ExactSubstr); a document left without words is dropped."""

    min_tokens: int = 50
    name: str = "substring_dedup"

    def apply(self, ds, num_proc):
        docs = [t.split() for t in ds["text"]]
        spans = dedup.duplicate_spans(docs, self.min_tokens)
        seen: set[tuple] = set()
        texts, cut = [], 0
        for tokens, doc_spans in zip(docs, spans):
            drop = []
            for s, e in doc_spans:
                key = tuple(tokens[s:e])
                if key in seen:
                    drop.append((s, e))
                seen.add(key)
            cut += sum(e - s for s, e in drop)
            texts.append(" ".join(dedup.remove_spans(tokens, drop)) if drop else None)
        new = [t if t is not None else old for t, old in zip(texts, ds["text"])]
        ds = ds.remove_columns("text").add_column("text", new)
        return ds, ["" if t.strip() else "empty_after_substring_dedup" for t in new], {"words_removed": cut}


class _FilterBatch:
    """Picklable batch function for ``QualityFilters`` (runs in ``num_proc`` workers)."""

    def __init__(self, config, kinds, rewrite):
        self.config, self.kinds, self.rewrite = config, kinds, rewrite

    def __call__(self, batch):
        texts, reasons = [], []
        langs = batch.get("lang", [None] * len(batch["text"]))
        kinds = batch.get("kind", [""] * len(batch["text"]))
        for text, lang, kind in zip(batch["text"], langs, kinds):
            if self.kinds is not None and kind not in self.kinds:
                texts.append(text)
                reasons.append("")
                continue
            lang = filters.document_lang(text, lang)  # "ko-KR" is Korean; a missing code is detected, not English
            fs = filters.from_config(lang, self.config) if self.config is not None else filters.for_language(lang)
            v = filters.apply_filters(text, lang, fs)
            texts.append(v.text if v.keep and self.rewrite else text)
            reasons.append(v.rule)
        return {"text": texts, "_reason": reasons}


@dataclass
class QualityFilters(Step):
    """Gopher quality, Gopher repetition, C4 and FineWeb rules (``filters.apply_filters``); the reason is
    ``"<filter>.<rule>"``. ``config`` is a ``CurationConfig`` (None: the papers' thresholds); only
    documents whose ``kind`` is in ``config.filter_kinds`` are judged. ``rewrite`` keeps C4's cleaned text.
    Each document is judged by the rules of its ``lang`` (``filters.document_lang``: normalized, or detected
    when missing)."""

    config: object = None
    rewrite: bool = True
    name: str = "quality_filters"

    def apply(self, ds, num_proc):
        kinds = set(self.config.filter_kinds) if self.config is not None else None
        langs = set(ds["lang"]) if "lang" in ds.column_names else {None}
        if num_proc > 1 and not all(lang and filters.normalize_lang(lang) == "en" for lang in langs):
            filters.words("가", "ko")  # load Kiwi's model (~2 s) once here; forked workers inherit it
        return _map_reasons(ds, _FilterBatch(self.config, kinds, self.rewrite), num_proc, self.name)


class _MaskBatch:
    def __init__(self, min_confidence):
        self.min_confidence = min_confidence

    def __call__(self, batch):
        texts, counts = [], {t: [] for t in pii.PII_TYPES}
        for text in batch["text"]:
            m = pii.mask(text, min_confidence=self.min_confidence)
            texts.append(m.text)
            for t in pii.PII_TYPES:
                counts[t].append(m.counts.get(t, 0))
        return {"text": texts, "_reason": [""] * len(texts)} | {f"_{t}": c for t, c in counts.items()}


@dataclass
class MaskPII(Step):
    """Replace personal data with typed placeholders (``pii.mask``); drops nothing, counts spans per type."""

    min_confidence: float = 0.0
    name: str = "mask_pii"

    def apply(self, ds, num_proc):
        return _map_reasons(ds, _MaskBatch(self.min_confidence), num_proc, self.name)


# ---------------------------------------------------------------------- audit


@dataclass
class Audit:
    """What happened to every input document.

    ``fate[id]`` is ``(step, reason)`` for a dropped document and ``("kept", "")``
    for a kept one; ``steps`` holds one row per step: documents in, kept,
    dropped per reason, and the step's own counters (lines removed, PII spans, ...).
    """

    n_input: int = 0
    fate: dict[str, tuple[str, str]] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)

    def by_reason(self) -> collections.Counter:
        """(step, reason) -> documents; kept documents under ("kept", "")."""
        return collections.Counter(self.fate.values())

    def check(self) -> None:
        """Raise if a document is missing or counted twice: kept + dropped must equal the input, per step too."""
        if len(self.fate) != self.n_input:
            raise AssertionError(f"audit covers {len(self.fate)} documents, input had {self.n_input}")
        n = self.n_input
        for row in self.steps:
            if row["in"] != n or row["kept"] + sum(row["dropped"].values()) != n:
                raise AssertionError(f"step {row['step']}: in {row['in']}, kept {row['kept']}, dropped {row['dropped']}")
            n = row["kept"]

    def rows(self) -> list[tuple[str, str, int]]:
        """(step, reason, documents) for every drop reason in step order, then ("kept", "", n)."""
        out = [(row["step"], reason, count) for row in self.steps for reason, count in sorted(row["dropped"].items())]
        return out + [("kept", "", self.by_reason()[("kept", "")])]

    def markdown(self) -> str:
        lines = ["| step | in | kept | dropped | reasons | counters |", "|---|---|---|---|---|---|"]
        for row in self.steps:
            reasons = ", ".join(f"{r}: {c}" for r, c in sorted(row["dropped"].items())) or "-"
            counters = ", ".join(f"{k}: {v}" for k, v in row["counters"].items() if v) or "-"
            lines.append(f"| {row['step']} | {row['in']} | {row['kept']} | {sum(row['dropped'].values())} | "
                         f"{reasons} | {counters} |")
        lines.append(f"| **total** | {self.n_input} | {self.by_reason()[('kept', '')]} | "
                     f"{self.n_input - self.by_reason()[('kept', '')]} | | |")
        return "\n".join(lines)


@dataclass
class Result:
    dataset: datasets.Dataset
    audit: Audit


# ---------------------------------------------------------------------- pipeline


def _as_records(data) -> list[dict]:
    """Copies of the input records; a text (or any other non-record item) becomes ``{"text": item}``.

    A string, bytes, a single record or ``None`` where the list belongs is a ``TypeError``."""
    if isinstance(data, datasets.Dataset):
        return data.to_list()
    items = checks.sequence("data", data, "records (dicts with a 'text' field) or texts")
    return [dict(r) if isinstance(r, Mapping) else {"text": r} for r in items]


class Pipeline:
    """Run ``steps`` in order over documents; ``num_proc`` worker processes for per-document steps."""

    def __init__(self, steps: Sequence[Step], num_proc: int = 1):
        steps = list(steps)
        if not steps or not isinstance(steps[0], Validate):
            steps.insert(0, Validate())
        self.steps, self.num_proc = steps, num_proc

    def run(self, data) -> Result:
        """``data``: a ``datasets.Dataset`` or a list of records (dicts with ``text``; ``id``, ``url``,
        ``lang``, ``kind`` used when present) or of plain texts. Records may be malformed."""
        records = _as_records(data)
        audit = Audit(n_input=len(records))
        for i, r in enumerate(records):
            r["id"] = str(r.get("id", i)) if r.get("id") not in (None, "") else str(i)
        repeated = [i for i, n in collections.Counter(r["id"] for r in records).items() if n > 1]
        if repeated:
            raise ValueError(f"data: document ids must be unique; {repeated[0]!r} is used "
                             f"{sum(r['id'] == repeated[0] for r in records)} times")
        validate, rest = self.steps[0], self.steps[1:]
        reasons = validate.reasons(records)
        self._record(audit, validate.name, [r["id"] for r in records], reasons, {})
        good = []
        for r, reason in zip(records, reasons):
            if not reason:
                text = r["text"]
                r["text"] = bytes(text).decode("utf-8") if isinstance(text, (bytes, bytearray)) else text
                good.append(r)
        columns = list(dict.fromkeys(k for r in good for k in r)) or ["id", "text"]  # every key, first-seen order
        ds = datasets.Dataset.from_dict({k: [r.get(k) for r in good] for k in columns})
        for step in rest:
            new, reasons, counters = step.apply(ds, self.num_proc)
            self._record(audit, step.name, ds["id"], reasons, counters)
            ds = new.select([i for i, r in enumerate(reasons) if not r])
        for doc_id in ds["id"]:
            audit.fate[doc_id] = ("kept", "")
        audit.check()
        return Result(ds, audit)

    @staticmethod
    def _record(audit: Audit, step: str, ids: list[str], reasons: list[str], counters: dict) -> None:
        dropped = collections.Counter(r for r in reasons if r)
        audit.steps.append({"step": step, "in": len(ids), "kept": len(ids) - sum(dropped.values()),
                            "dropped": dict(dropped), "counters": dict(counters)})
        for doc_id, reason in zip(ids, reasons):
            if reason:
                audit.fate[doc_id] = (step, reason)


def from_config(config, num_proc: int | None = None) -> Pipeline:
    """The course's default pipeline from a full ``Config``: validate, URL dedup (cheapest: reads no text),
    exact dedup, quality filters, near duplicates, (line dedup), mask personal data; ``num_proc``
    defaults to ``config.data.num_proc``."""
    c = config.curation
    steps: list[Step] = [Validate(c.max_doc_chars), UrlDedup(tuple(c.url_mirror_suffixes)), ExactDedup(),
                         QualityFilters(c), NearDedup(c.minhash_threshold, c.minhash_num_perm, c.minhash_ngram)]
    if c.line_dedup != "off":
        steps.append(LineDedup(c.line_dedup))
    steps.append(MaskPII(c.pii_min_confidence))
    return Pipeline(steps, num_proc=num_proc or config.data.num_proc)
