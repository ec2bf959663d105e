"""Chapter 04's zoo recipe: ``t5``, an encoder-decoder pretrained by span corruption on ``base``'s packed corpus."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

from .. import zoo
from ..config import Config
from ..models import TrainedModel, build_encoder_decoder
from ..packing import PackedBlocks
from ..pretraining.data import TOKEN_FILES
from ..training import train
from .spans import (MEAN_NOISE_SPAN_LENGTH, NOISE_DENSITY, SpanCorruptedBlocks, SpanCorruptionCollator,
                    noise_span_counts, sentinel_ids)


def new_t5_model(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> T5ForConditionalGeneration:
    """An untrained T5 encoder-decoder of the ``model`` size for ``tokenizer``'s vocabulary.

    Without dropout, as T5 v1.1 pretrains: span corruption draws fresh spans on every pass
    over the corpus, so the data itself keeps the model from memorizing its inputs (the
    decoder ``base`` sees the same blocks each pass and keeps ``model.dropout``). On the CPU
    this also makes a T5 step about a third cheaper.
    """
    torch.manual_seed(cfg.run.seed)
    return build_encoder_decoder(
        dataclasses.replace(cfg.model, dropout=0.0), len(tokenizer),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def span_corruption_data(cfg: Config, *, noise_density: float = NOISE_DENSITY,
                         mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH):
    """(train, eval) ``SpanCorruptedBlocks`` of the packed corpus (``pretrain-data``) that ``base`` trains on.

    Each ``pretrain.block_size`` block becomes an input of about 0.9 and a target of about
    0.2 of its length (sentinels and EOS included). The train set has enough passes for
    ``pretrain.train`` to see every block with fresh spans each time (on one process); the
    eval set is one fixed corruption of the held-out blocks, so eval losses compare.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    data = zoo.build("pretrain-data", cfg)
    block = cfg.pretrain.block_size
    sentinels = sentinel_ids(tokenizer, noise_span_counts(block, noise_density, mean_noise_span_length)[1])
    t = cfg.pretrain.train
    train_blocks, eval_blocks = (PackedBlocks(data / TOKEN_FILES[s], block) for s in ("train", "eval"))
    passes = max(1, -(-t.max_steps * t.batch_size * t.grad_accum_steps // max(len(train_blocks), 1)))
    corrupt = dict(noise_density=noise_density, mean_noise_span_length=mean_noise_span_length, seed=cfg.run.seed)
    return (SpanCorruptedBlocks(train_blocks, sentinels, tokenizer.eos_token_id, passes=passes, **corrupt),
            SpanCorruptedBlocks(eval_blocks, sentinels, tokenizer.eos_token_id, **corrupt))


def pretrain_t5(cfg: Config, output_dir: str | Path, *, resume: bool = True, noise_density: float = NOISE_DENSITY,
                mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH, callbacks=()):
    """Train a fresh T5 by span corruption on ``base``'s packed corpus with ``pretrain.train``.

    The loss is the cross-entropy of the target tokens (sentinels, hidden spans and EOS),
    so it is not comparable with ``base``'s next-token loss over whole blocks.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    train_data, eval_data = span_corruption_data(
        cfg, noise_density=noise_density, mean_noise_span_length=mean_noise_span_length
    )
    return train(
        new_t5_model(cfg, tokenizer),
        train_data,
        cfg.pretrain.train,
        output_dir=output_dir,
        eval_dataset=eval_data if len(eval_data) else None,
        collate_fn=SpanCorruptionCollator(tokenizer.pad_token_id),
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=callbacks,
        tokenizer=tokenizer,
    )


def _load_t5(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path, T5ForConditionalGeneration)


@zoo.register(
    "t5", load=_load_t5, sections=("run", "model", "world", "data", "pretrain", "curation"),
    deps=("tokenizer", "pretrain-data"),
    description="the course's T5 encoder-decoder, pretrained by span corruption on the world (chapter 04)",
)
def _build_t5(cfg: Config, out: Path) -> None:
    pretrain_t5(cfg, out, resume=False, noise_density=0.15, mean_noise_span_length=3.0)  # T5's settings
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # optimizer state is only for resuming
