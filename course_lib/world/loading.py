"""``load``: the world (or a real corpus) as ``datasets`` objects; the shipped snapshot and its data card.

``data.source`` in the config picks where documents come from:

- ``world`` (default): the generated course world of ``config.world``;
- a path to a ``.jsonl`` file (one JSON object per line with a ``text`` field;
  ``id``, ``url``, ``lang``, ``date``, ``title``, ``kind`` are used when present);
- a path to a folder: every ``.txt`` and ``.md`` file below it is one document;
- ``hf:<name>`` or ``hf:<name>:<config>``: the ``train`` split of a Hugging Face
  dataset with a ``text`` column. Refused while offline (``zoo.offline`` or
  ``HF_HUB_OFFLINE``), so the default never touches the network.

Real corpora carry no labels: their label columns are empty.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from pathlib import Path

import datasets

from course_lib.config import WorldConfig

from .documents import KINDS, TASK_PAGE_KINDS
from .hangul import detect_lang
from .noise import PII_TYPES, QUALITY_FLAGS
from .tasks import FAMILIES, SPLITS
from .world import TABLES, World, build_world

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "data" / "world"

_S = datasets.Value("string")
FEATURES = {
    "documents": datasets.Features({
        "id": _S, "kind": _S, "lang": _S, "url": _S, "date": _S, "title": _S, "text": _S,
        "fact_ids": datasets.List(_S), "in_pretraining": datasets.Value("bool"), "quality_flags": datasets.List(_S),
        "dup_cluster": _S, "page_id": _S, "edit_rate": datasets.Value("float64"),
        "pii": datasets.List({"start": datasets.Value("int64"), "end": datasets.Value("int64"), "type": _S}),
    }),
    "tasks": datasets.Features({
        "id": _S, "task": _S, "lang": _S, "split": _S, "template_id": _S, "fact_ids": datasets.List(_S),
        "doc_ids": datasets.List(_S), "context": _S, "question": _S, "choices": datasets.List(_S),
        "label": datasets.Value("int64"), "answer": _S, "answerable": datasets.Value("bool"),
        "after_cutoff": datasets.Value("bool"),
    }),
    "facts": datasets.Features({
        "id": _S, "subject": _S, "relation": _S, "value": _S, "value_type": _S, "value_en": _S, "value_ko": _S,
        "date": _S, "after_cutoff": datasets.Value("bool"), "split": _S,
    }),
    "entities": datasets.Features({"id": _S, "type": _S, "kind": _S, "name_en": _S, "name_ko": _S}),
}


class WorldDataError(ValueError):
    """A data source that cannot be read; the message names the file (and line) or the setting."""


def _settings(config) -> tuple[WorldConfig, str, bool]:
    """(world config, data source, offline) from a full ``Config``, a ``WorldConfig`` or None (the profile's)."""
    if isinstance(config, WorldConfig):
        return config, "world", True
    if config is None:
        from course_lib.config import load_config

        config = load_config()
    offline = config.zoo.offline or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    return config.world, config.data.source, offline


def load(table: str = "documents", config=None, *, task: str | None = None):
    """The world's ``table`` as a ``datasets`` object.

    ``table`` is ``documents`` (a ``Dataset``; from ``data.source``), ``tasks``
    (a ``DatasetDict`` with splits train/test/test_template; ``task`` keeps one
    family), ``facts`` or ``entities`` (``Dataset``). ``config`` is a full
    ``Config`` (default: the current profile's) or just a ``WorldConfig``.
    """
    if table not in TABLES:
        raise ValueError(f"table: unknown table {table!r}; tables: {', '.join(TABLES)}")
    world_config, source, offline = _settings(config)
    if table == "documents" and source != "world":
        return load_external(source, offline=offline)
    world = build_world(world_config)
    records = world.records(table)
    if table != "tasks":
        return datasets.Dataset.from_list(records, features=FEATURES[table])
    if task is not None and task not in FAMILIES:
        raise ValueError(f"unknown task family {task!r}; families: {', '.join(FAMILIES)}")
    rows = [r for r in records if task is None or r["task"] == task]
    return datasets.DatasetDict({split: datasets.Dataset.from_list([r for r in rows if r["split"] == split],
                                                                   features=FEATURES["tasks"]) for split in SPLITS})


# ---------------------------------------------------------------------- real data


def _external_record(raw: dict, default_id: str) -> dict:
    text = raw["text"]
    return {
        "id": str(raw.get("id", default_id)), "kind": str(raw.get("kind", "external")),
        "lang": str(raw.get("lang") or detect_lang(text)), "url": str(raw.get("url", "")),
        "date": str(raw.get("date", "")), "title": str(raw.get("title", "")), "text": text, "fact_ids": [],
        "in_pretraining": True, "quality_flags": [], "dup_cluster": "", "page_id": str(raw.get("id", default_id)),
        "edit_rate": 0.0, "pii": [],
    }


def read_jsonl(path: Path) -> list[dict]:
    """Documents from a JSONL file; a bad line raises ``WorldDataError`` naming the file and line."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise WorldDataError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(raw, dict) or "text" not in raw:
                raise WorldDataError(f"{path}:{lineno}: each line must be a JSON object with a 'text' field")
            if not isinstance(raw["text"], str):
                raise WorldDataError(f"{path}:{lineno}: 'text' must be a string, got {type(raw['text']).__name__}")
            rows.append(_external_record(raw, f"{path.stem}-{lineno}"))
    return rows


def read_text_folder(path: Path) -> list[dict]:
    """One document per ``.txt``/``.md`` file below ``path``, in sorted path order."""
    rows = []
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise WorldDataError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        rel = file.relative_to(path).as_posix()
        rows.append(_external_record({"text": text, "title": file.stem}, rel))
    if not rows:
        raise WorldDataError(f"{path}: no .txt or .md files in this folder")
    return rows


def load_external(source: str, *, offline: bool = True) -> datasets.Dataset:
    """Documents from a JSONL file, a text folder or ``hf:<name>[:<config>]``, with the world's columns."""
    if not isinstance(source, str):
        raise WorldDataError(f"data.source: expected a str (a path or hf:<name>), got {type(source).__name__} "
                             f"{source!r}")
    if source.startswith("hf:"):
        name, _, subset = source[3:].partition(":")
        if offline:
            raise WorldDataError(
                f"data.source={source!r} is a Hugging Face Hub dataset, but the course is offline "
                "(zoo.offline=true or HF_HUB_OFFLINE=1). Set zoo.offline=false and unset HF_HUB_OFFLINE to "
                "download it, or point data.source at a local .jsonl file or text folder.")
        hub = datasets.load_dataset(name, subset or None, split="train")
        if "text" not in hub.column_names:
            raise WorldDataError(f"data.source={source!r}: the dataset has no 'text' column ({hub.column_names})")
        return datasets.Dataset.from_list([_external_record({"text": t}, f"{name}-{i}")
                                           for i, t in enumerate(hub["text"])], features=FEATURES["documents"])
    path = Path(source).expanduser()
    if path.is_dir():
        rows = read_text_folder(path)
    elif path.is_file():
        rows = read_jsonl(path)
    else:
        raise WorldDataError(f"data.source={source!r}: no such file or folder (use 'world', a path, or hf:<name>)")
    return datasets.Dataset.from_list(rows, features=FEATURES["documents"])


# ---------------------------------------------------------------------- snapshot


def table_bytes(world: World) -> dict[str, bytes]:
    """Each table as the exact JSONL bytes the snapshot stores."""
    return {t: world.to_jsonl(t).encode("utf-8") for t in TABLES}


def table_hashes(world: World) -> dict[str, str]:
    return {f"{t}.jsonl": hashlib.sha256(b).hexdigest() for t, b in table_bytes(world).items()}


def write_snapshot(world: World, folder: str | os.PathLike = SNAPSHOT_DIR) -> Path:
    """Write the four tables as JSONL, their SHA-256 sums and the data card (README.md) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for table, blob in table_bytes(world).items():
        (folder / f"{table}.jsonl").write_bytes(blob)
    (folder / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in table_hashes(world).items()), encoding="utf-8")
    (folder / "README.md").write_text(data_card(world), encoding="utf-8")
    return folder


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def data_card(world: World) -> str:
    """A Markdown data card: what the snapshot holds, counts, token counts, how it was made, license."""
    docs, c = world.documents, world.config
    by_kind = collections.Counter((d.kind, d.lang) for d in docs)
    words = collections.Counter()
    chars = collections.Counter()
    for d in docs:
        words[d.kind, d.lang] += len(d.text.split())
        chars[d.kind, d.lang] += len(d.text)
    doc_rows = [[k, lang, by_kind[k, lang], words[k, lang], chars[k, lang]] for k in KINDS for lang in ("en", "ko")
                if by_kind[k, lang]]
    doc_rows.append(["**all**", "", len(docs), sum(words.values()), sum(chars.values())])
    flags = collections.Counter(f for d in docs for f in d.quality_flags)
    pii = collections.Counter(s["type"] for d in docs for s in d.pii)
    tasks = collections.Counter((t["task"], t["split"]) for t in world.tasks)
    families = sorted({t["task"] for t in world.tasks}, key=FAMILIES.index)
    entity_types = collections.Counter(e.type for e in world.entities())
    pretraining = sum(len(d.text) for d in docs if d.in_pretraining)
    task_chars = sum(len(d.text) for d in docs if d.kind in TASK_PAGE_KINDS)
    return _DATA_CARD.format(
        seed=c.seed, cutoff=c.cutoff, last_date=c.last_date, n_entities=len(world.entities()),
        n_facts=len(world.graph.facts), n_documents=len(docs), n_tasks=len(world.tasks), n_families=len(families),
        entity_counts=", ".join(f"{n} {t}" for t, n in entity_types.items()),
        document_table=_table(["kind", "lang", "documents", "words", "characters"], doc_rows),
        flag_table=_table(["flag", "documents"], [[f, flags[f]] for f in QUALITY_FLAGS]),
        n_clusters=len({d.dup_cluster for d in docs if d.dup_cluster}),
        edit_rates=", ".join(str(r) for r in c.near_dup_edit_rates),
        pii_table=_table(["type", "spans"], [[t, pii[t]] for t in PII_TYPES]),
        task_table=_table(["family"] + list(SPLITS), [[f] + [tasks[f, s] for s in SPLITS] for f in families]),
        task_page_share=c.task_page_share, task_page_measured=f"{task_chars / max(1, pretraining):.3f}",
    )


_DATA_CARD = """# Course world snapshot (`laptop` profile)

A fictional, bilingual (English/Korean) world generated by `course_lib.world` from
seed {seed}. Every name, fact, document, e-mail address, phone number and
resident registration number in it is synthetic. Knowledge cutoff: **{cutoff}**;
news documents report events after it (up to {last_date}) and are held out of
pretraining (`in_pretraining = false`).

Regenerate (byte-identical; `tests/test_world_snapshot.py` checks the hashes in `SHA256SUMS`):

```
python -m course_lib.world.snapshot          # writes data/world/
```

## Files

| file | rows | what |
|---|---|---|
| `entities.jsonl` | {n_entities} | people, places, organizations, inventions, works, events with English and Korean names |
| `facts.jsonl` | {n_facts} | (subject, relation, value) triples; `split` says whether tasks may train on it |
| `documents.jsonl` | {n_documents} | documents of every source kind, with labels |
| `tasks.jsonl` | {n_tasks} | task examples of {n_families} families with train/test/test_template splits |

Entities: {entity_counts}.

## Documents per source kind and language

Tokens are **whitespace-separated words** (`len(text.split())`); characters are
Unicode code points. Korean words (어절) carry particles, so Korean has fewer
words per fact than English: compare characters across languages, not words.

{document_table}

## Pages that carry tasks

The web already holds tasks: quizzes, FAQs, tables, lists, solved exercises. The
survey credits this *implicit multitask learning* (암묵적 멀티태스크 학습) for the
zero- and few-shot ability of pretrained models, so the world has such pages too,
in both languages:

| kind | what |
|---|---|
| `quiz` | numbered questions about several entities with their answers (inline, Q/A pairs, or listed at the end) |
| `faq` | question and answer pairs about one entity |
| `infobox` | one entity's facts as a table or `Field: value` lines, or a table of several entities |
| `glossary` | `Name: value` lines of one relation over many entities |
| `worked` | solved examples, some answering from a short passage |

They state training facts only (never a `test` or post-cutoff fact) and use their
own phrasings (`course_lib.world.task_pages`), never the evaluation templates, so
the `test_template` split stays unseen. `world.task_page_share` = {task_page_share}
sets their share of the pretraining characters, split evenly between the kinds
(measured: {task_page_measured}); 0 leaves them out.

## Labels (web documents)

Quality flags (a document may carry several; copies carry their original's flags too):

{flag_table}

Duplicate clusters: {n_clusters} (`dup_cluster`), holding exact copies, near
copies (edit rates {edit_rates} of the words) and URL variants of one
page (`page_id` shared, URLs normalize to one, see `course_lib.world.noise.normalize_url`).

Personal data spans (`pii`: start, end, type; `text[start:end]` is the data):

{pii_table}

`rrn` numbers have a valid check digit; `rrn_post2020` numbers (issued since
October 2020) end in random digits that fail it. Look-alikes that are *not*
personal data and not labelled: RRN-shaped numbers with impossible dates, order
ids, ISBNs, version numbers, @handles.

## Tasks

{task_table}

`train` uses only training facts and templates; `test` holds out facts (all
post-cutoff facts are test facts); `test_template` holds out phrasings.

## How it was generated

`course_lib.world.build_world(WorldConfig())` with the `laptop` profile's
`world` settings: names from a Hangul syllable table with Revised Romanization,
facts drawn from seeded random streams, sentences from English and Korean
templates (Korean particles chosen by the final consonant), noise injected at
the configured rates. No model and no external data were used.

## License

Apache-2.0, like the course code. The data is synthetic: e-mail domains are
reserved example domains, but phone, IP and resident registration numbers are
random digits that could coincide with real ones; they are tied only to
fictional names. Do not use them to contact or identify anyone.
"""
