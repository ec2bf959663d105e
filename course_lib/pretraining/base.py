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
from .induction import copy_rows, mixed_rows, repeated_tokens_loss
from .reading import ReadingRows


INDUCTION_LOG = "induction.jsonl"  # the induction test over training, in the run folder


def pretrain(cfg: Config, output_dir: str | Path, *, resume: bool = True, callbacks=()):
    """Train a fresh ``base`` model on the packed corpus with ``pretrain.train``; works under torchrun too.

    With ``pretrain.copy_share`` > 0 that share of the training rows are ``CopyRows``
    (repeated random tokens), which reward the induction heads that in-context learning
    needs, and with ``pretrain.reading_share`` > 0 that share are ``ReadingRows`` (reading
    exercises about invented people); the held-out blocks stay text only, so perplexities
    compare. The induction test (``repeated_tokens_loss``) runs before the first step and
    every ``eval_every`` steps; its rows go to ``INDUCTION_LOG`` in ``output_dir``.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    data = zoo.get("pretrain-data", cfg)  # built on first use; each document attends only to itself
    model = new_decoder(cfg, tokenizer)
    t = cfg.pretrain.train
    probe = induction_probe(model, Path(output_dir) / INDUCTION_LOG, t.eval_every, t.max_steps,
                            low=max(tokenizer.all_special_ids) + 1)
    if not resume:
        (Path(output_dir) / INDUCTION_LOG).unlink(missing_ok=True)
        probe(0, {})
    return train(
        model,
        training_rows(cfg, data["train"], tokenizer),
        cfg.pretrain.train,
        output_dir=output_dir,
        eval_dataset=data["eval"] if len(data["eval"]) else None,
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=(probe, *callbacks),
        tokenizer=tokenizer,
    )


def induction_probe(model, path: Path, every: int, last: int, *, low: int):
    """A training callback: the induction test on ``model`` every ``every`` steps and at step ``last``, appended to ``path``.

    The test draws its own seeded tokens and puts the model back in training mode, so
    the run's random stream and dropout are as they would be without it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def probe(step: int, _row: dict) -> None:
        if (every and step % every == 0) or step == last:
            row = {"step": step, **repeated_tokens_loss(model, low=low)}
            model.train()
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    return probe


def read_induction(path: Path) -> list[dict]:
    """The induction test over training (``{"step", "first", "second"}`` rows) of a ``base`` run folder."""
    log = Path(path) / INDUCTION_LOG
    if not log.is_file():
        raise FileNotFoundError(f"{log} is missing: the run was trained before the induction test was logged; rebuild it")
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def training_rows(cfg: Config, blocks, tokenizer):
    """The text ``blocks`` mixed with ``pretrain.copy_share`` copy rows and ``pretrain.reading_share`` reading rows."""
    from ..world import build_world

    p, seed = cfg.pretrain, cfg.run.seed
    reading = lambda n: ReadingRows(n, p.block_size, tokenizer, build_world(cfg.world), seed=seed,
                                    ko_fraction=cfg.world.ko_fraction)
    return mixed_rows(blocks, [(p.copy_share, copy_rows(blocks, tokenizer, seed=seed, min_period=p.copy_min_period)),
                               (p.reading_share, reading)])


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
