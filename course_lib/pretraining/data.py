"""Chapter 03's corpus: which documents ``base`` reads, and how the tokenizer cuts each language.

``pretrain.corpus=curated`` reads chapter 02's curated documents (the zoo artifact
``curated``) instead of the raw ones. ``pretrain.source`` (else ``data.source``)
may name a local ``.jsonl`` file, a text folder or ``hf:<name>[:<config>]``, which is
streamed (the ``gpu`` profile's real corpus), read after the world's documents;
``pretrain.max_documents`` caps what is read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import zoo
from ..config import Config, is_offline
from ..tokenization import tokens_per_character, train_tokenizer
from ..world.splits import split_documents

TOKEN_FILES = {"train": "train.bin", "eval": "eval.bin"}  # the pretrain-data artifact's files


def stream_hf(source: str, *, offline: bool) -> Iterator[dict]:
    """Rows of the ``train`` split of ``hf:<name>[:<config>]``, streamed (nothing is downloaded whole).

    ``<name>`` may be a local folder of data files (JSON Lines, Parquet, ...), which is read
    even offline; a Hub name is refused while offline (``zoo.offline`` or ``HF_HUB_OFFLINE``).
    """
    import datasets

    from ..world import WorldDataError
    from ..world.hangul import detect_lang

    name, _, subset = source[3:].partition(":")
    if offline and not Path(name).expanduser().is_dir():
        raise WorldDataError(
            f"source {source!r} is a Hugging Face Hub dataset, but the course is offline "
            "(zoo.offline=true or HF_HUB_OFFLINE=1). Set zoo.offline=false to stream it, "
            "or point pretrain.source at a local .jsonl file, text folder or dataset folder."
        )
    stream = datasets.load_dataset(name, subset or None, split="train", streaming=True)
    for i, row in enumerate(stream):
        if "text" not in row:
            raise WorldDataError(f"source {source!r}: rows have no 'text' field ({sorted(row)})")
        yield {"id": str(row.get("id", f"{Path(name).name}-{i}")), "text": row["text"],
               "lang": row.get("lang") or detect_lang(row["text"]), "dup_cluster": "", "fact_ids": []}


def corpus_documents(cfg: Config) -> Iterator[dict]:
    """The pretraining documents as dicts with at least ``id``, ``text``, ``lang`` (lazy for streamed sources).

    The source is ``pretrain.source``, or ``data.source`` when that is empty:

    - ``world``: the world's documents with ``in_pretraining`` (news after the knowledge
      cutoff is excluded); with ``pretrain.corpus=curated``, chapter 02's curated ones
      (zoo artifact ``curated``) instead;
    - a ``.jsonl`` file or text folder: every document in it (``world.load_external``);
    - ``hf:<name>[:<config>]``: the dataset's ``train`` split, streamed.

    An external source comes after the world's documents when ``pretrain.with_world``.
    At most ``pretrain.max_documents`` documents in all (0: no limit).
    """
    from ..world import load, load_external

    source = cfg.pretrain.source or cfg.data.source
    parts: list[Iterable[dict]] = []
    if source == "world" or cfg.pretrain.with_world:
        if cfg.pretrain.corpus == "curated":
            parts.append(zoo.get("curated", cfg))
        else:
            world_cfg = cfg if cfg.data.source == "world" else _with_world_source(cfg)
            parts.append(d for d in load("documents", world_cfg) if d["in_pretraining"])
    if source != "world":
        parts.append(stream_hf(source, offline=is_offline(cfg)) if source.startswith("hf:")
                     else load_external(source, offline=is_offline(cfg)))
    return itertools.islice(itertools.chain.from_iterable(parts), cfg.pretrain.max_documents or None)


def _with_world_source(cfg: Config) -> Config:
    import copy

    world_cfg = copy.deepcopy(cfg)
    world_cfg.data.source = "world"
    return world_cfg


def tokenizer_fragmentation(cfg: Config, vocab_size: int | None = None) -> list[dict]:
    """Tokens per character of held-out English and Korean text under two vocabularies of one size.

    ``english-only`` is a byte-level BPE trained on the English training documents,
    ``bilingual`` one trained on all of them. Rows ``{"vocabulary", "lang", "tokens_per_char"}``.
    Korean under the English-only vocabulary falls back to about three byte tokens per
    syllable (UTF-8 spends three bytes on each Hangul syllable).
    """
    vocab_size = vocab_size or cfg.pretrain.vocab_size
    train_docs, eval_docs = split_documents(corpus_documents(cfg), cfg.pretrain.eval_fraction, cfg.run.seed)
    held_out = {lang: [d["text"] for d in eval_docs if d["lang"] == lang] for lang in ("en", "ko")}
    corpora = {"english-only": [d["text"] for d in train_docs if d["lang"] == "en"],
               "bilingual": [d["text"] for d in train_docs]}
    rows = []
    for name, texts in corpora.items():
        tok = train_tokenizer(texts, vocab_size, num_sentinels=0)
        for lang, eval_texts in held_out.items():
            if eval_texts:
                rows.append({"vocabulary": name, "lang": lang, "tokens_per_char": tokens_per_character(tok, eval_texts)})
    return rows
