"""Chapter 03's zoo recipes: the course tokenizer, the packed corpus and the ``base`` model.

    zoo.get("tokenizer")       byte-level BPE with pad, end-of-text, chat and sentinel tokens
    zoo.get("pretrain-data")   {"train", "eval"}: PackedBlocks of the token files
    zoo.get("base")            a TrainedModel: new_decoder(cfg) trained by ``pretrain``
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .. import zoo
from ..config import Config
from ..models import TrainedModel, new_decoder
from ..packing import PackedBlocks, batched, write_tokens
from ..tokenization import train_tokenizer
from ..training import train
from ..world.splits import is_held_out
from .data import TOKEN_FILES, corpus_documents
from .induction import with_copy_rows


def pretrain(cfg: Config, output_dir: str | Path, *, resume: bool = True, callbacks=()):
    """Train a fresh ``base`` model on the packed corpus with ``pretrain.train``; works under torchrun too.

    With ``pretrain.copy_share`` > 0 that share of the training rows are ``CopyRows``
    (repeated random tokens), which reward the induction heads that in-context learning
    needs; the held-out blocks stay text only, so perplexities compare.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    data = zoo.get("pretrain-data", cfg)  # built on first use; each document attends only to itself
    p = cfg.pretrain
    return train(
        new_decoder(cfg, tokenizer),
        with_copy_rows(data["train"], p.copy_share, tokenizer, seed=cfg.run.seed, min_period=p.copy_min_period),
        cfg.pretrain.train,
        output_dir=output_dir,
        eval_dataset=data["eval"] if len(data["eval"]) else None,
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=callbacks,
        tokenizer=tokenizer,
    )


def _tokenizer_texts(cfg: Config) -> Iterator[str]:
    docs = (d for d in corpus_documents(cfg) if not is_held_out(d, cfg.pretrain.eval_fraction, cfg.run.seed))
    return (d["text"] for d in itertools.islice(docs, cfg.pretrain.tokenizer_documents or None))


def _load_tokenizer(path: Path, cfg: Config) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(path)


@zoo.register(
    "tokenizer", load=_load_tokenizer, sections=("run", "world", "data", "pretrain", "curation"),
    description="bilingual byte-level BPE with pad, end-of-text, chat and sentinel tokens",
)
def _build_tokenizer(cfg: Config, out: Path) -> None:
    p = cfg.pretrain
    train_tokenizer(_tokenizer_texts(cfg), p.vocab_size, num_sentinels=p.num_sentinels).save_pretrained(out)


def _load_data(path: Path, cfg: Config) -> dict:
    block, eos = cfg.pretrain.block_size, zoo.get("tokenizer", cfg).eos_token_id
    return {split: PackedBlocks(path / name, block, eos) for split, name in TOKEN_FILES.items()}


@zoo.register(
    "pretrain-data", load=_load_data, sections=("run", "world", "data", "pretrain", "curation"), deps=("tokenizer",),
    description="the pretraining corpus as token files (train.bin, eval.bin)",
)
def _build_data(cfg: Config, out: Path) -> None:
    tokenizer = zoo.get("tokenizer", cfg)
    counts = {"train": {"documents": 0, "tokens": 0}, "eval": {"documents": 0, "tokens": 0}}
    for split in TOKEN_FILES:
        (out / TOKEN_FILES[split]).touch()
    for batch in batched(corpus_documents(cfg), 1024):
        for split in TOKEN_FILES:
            held = split == "eval"
            texts = [d["text"] for d in batch if is_held_out(d, cfg.pretrain.eval_fraction, cfg.run.seed) == held]
            counts[split]["documents"] += len(texts)
            counts[split]["tokens"] += write_tokens(texts, tokenizer, out / TOKEN_FILES[split])
    (out / "counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")


def _load_base(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path)


@zoo.register(
    "base", load=_load_base, sections=("run", "model", "world", "data", "pretrain", "curation"),
    deps=("tokenizer", "pretrain-data"),
    description="the course's base decoder, pretrained on the world (chapter 03)",
)
def _build_base(cfg: Config, out: Path) -> None:
    pretrain(cfg, out, resume=False)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # optimizer state is only for resuming
