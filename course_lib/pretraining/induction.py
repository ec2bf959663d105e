"""Induction heads: the repeated-token test, and a tiny model that learns to copy from its context."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable

import numpy as np
import torch
from transformers import PreTrainedModel

from .. import zoo
from ..config import Config
from ..models import build_decoder
from ..packing import perplexity
from ..training import train
from .probes import fact_recall, frequent_recall


@torch.no_grad()
def repeated_tokens_loss(model, *, length: int = 50, batch: int = 16, low: int = 0, seed: int = 0) -> dict:
    """Induction test (Olsson et al., 2022): loss on random tokens, then on the same tokens again.

    A sequence of ``length`` random token ids (from ``low`` up to the vocabulary size) is
    followed by itself. Nothing predicts the first copy, so its loss is at least about
    ln(vocabulary size); a model with *induction heads* (attend to the token after the earlier
    occurrence of the current token, copy it) predicts the second copy almost perfectly.
    Copying from the context is the simplest form of in-context learning. Returns
    ``{"first", "second"}``: mean nats per token over the first copy (its first token,
    which has no context, excluded) and over the second.
    """
    model.eval()
    vocab = model.config.vocab_size
    if not 0 <= low < vocab - 1:
        raise ValueError(f"low={low} leaves no token ids below the vocabulary size {vocab}")
    rows = RepeatedTokens(batch, length, vocab - low, seed=seed)
    ids = (torch.stack([rows[i]["input_ids"] for i in range(batch)]) + low).to(model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
    nll = -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # nll[:, t] is the loss of token t + 1
    return {"first": nll[:, : length - 1].mean().item(), "second": nll[:, length - 1 :].mean().item()}


class RepeatedTokens(torch.utils.data.Dataset):
    """``size`` rows of ``2 * length`` token ids in ``[0, vocab)``: random tokens, then the same tokens again.

    By default a row is ``length`` random ids followed by the same ids (the induction test's
    sequences). With ``min_period`` each row repeats its own random sequence of ``p`` ids,
    ``p`` drawn from ``min_period..length``, until the row is full: the copy now lies a
    different distance back in every row, so a model can only predict it by finding the earlier
    occurrence of what it just read (an induction head), not by looking a fixed number of
    positions back. Row ``i`` is drawn from a generator seeded by ``(seed, i)`` (``(seed, i, stream)``
    for another ``stream``), so every row is new to the model and the same in every run. Labels are the
    inputs (next-token loss everywhere).
    """

    def __init__(self, size: int, length: int, vocab: int, seed: int = 0, min_period: int | None = None,
                 stream: int = 0):
        if size < 1 or length < 2 or vocab < 2:
            raise ValueError(f"RepeatedTokens needs size >= 1, length >= 2 and vocab >= 2, got {size}, {length}, {vocab}")
        if min_period is not None and not 1 <= min_period <= length:
            raise ValueError(f"RepeatedTokens needs 1 <= min_period <= length ({length}), got min_period={min_period}")
        self.size, self.length, self.vocab, self.seed = size, length, vocab, seed
        self.min_period = length if min_period is None else min_period
        self.stream = stream

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.size:
            raise IndexError(i)
        # numpy drops trailing zeros from a seed, so the stream goes last, where it is never 0
        rng = np.random.default_rng([self.seed, i] if self.stream == 0 else [self.seed, i, self.stream])
        period = self.length if self.min_period == self.length else int(rng.integers(self.min_period, self.length + 1))
        x = torch.from_numpy(rng.integers(0, self.vocab, period))
        ids = x.repeat(-(-2 * self.length // period))[: 2 * self.length]
        return {"input_ids": ids, "labels": ids.clone()}


COPY_STREAM = 1  # RepeatedTokens' stream for pretraining copy rows


class CopyRows(torch.utils.data.Dataset):
    """Pretraining rows that reward copying: random ordinary tokens, a span repeated until the row is full.

    Row ``i`` is ``RepeatedTokens`` row ``i`` (period drawn from ``min_period..block_size // 2``)
    over the ids ``[low, high)``, the tokenizer's ordinary tokens, so the model copies the
    same tokens it reads in text. Rows have the keys of ``PackedBlocks`` rows: ``input_ids``,
    ``labels`` and ``position_ids`` (0..B-1: one document), so they mix with text blocks.
    """

    def __init__(self, size: int, block_size: int, low: int, high: int, *, seed: int = 0, min_period: int = 4):
        if not 0 <= low < high:
            raise ValueError(f"CopyRows needs 0 <= low < high, got low={low}, high={high}")
        # Their own random stream: the induction test draws stream 0, and a model trained on its rows
        # would recall them instead of copying.
        self.rows = RepeatedTokens(size, block_size // 2, high - low, seed=seed, min_period=min_period,
                                   stream=COPY_STREAM)
        self.low, self.block_size = low, block_size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        ids = self.rows[i]["input_ids"] + self.low  # (block_size,) with an even block_size
        return {"input_ids": ids, "labels": ids.clone(), "position_ids": torch.arange(len(ids))}


def mixed_rows(blocks, parts):
    """``blocks`` and extra rows, each kind making up its share of all rows (``blocks`` itself if every share is 0).

    ``parts`` is a list of ``(share, make)``: ``make(n)`` returns a dataset of ``n`` rows
    with the keys of ``blocks``' rows. The training loop shuffles all kinds together.
    """
    shares = [share for share, _ in parts]
    if any(not 0.0 <= s < 1.0 for s in shares) or sum(shares) >= 1.0:
        raise ValueError(f"the shares of extra rows must be in [0, 1) and sum below 1 (text needs a share), got {shares}")
    total = len(blocks) / (1.0 - sum(shares))
    extra = [make(round(total * share)) for share, make in parts if round(total * share) > 0]
    return torch.utils.data.ConcatDataset([blocks, *extra]) if extra else blocks


def with_copy_rows(blocks, share: float, tokenizer, *, seed: int = 0, min_period: int = 4):
    """``blocks`` with ``CopyRows`` added so that they are ``share`` of all rows (``blocks`` itself if 0).

    The copy rows use every ordinary token of ``tokenizer`` (ids above its special tokens)
    and the block length of ``blocks``; the training loop shuffles both kinds together.
    """
    return mixed_rows(blocks, [(share, copy_rows(blocks, tokenizer, seed=seed, min_period=min_period))])


def copy_rows(blocks, tokenizer, *, seed: int = 0, min_period: int = 4):
    """``make(n)`` for ``mixed_rows``: ``n`` ``CopyRows`` over ``tokenizer``'s ordinary tokens, ``blocks``' length."""
    low = max(tokenizer.all_special_ids) + 1
    return lambda n: CopyRows(n, len(blocks[0]["input_ids"]), low, len(tokenizer), seed=seed, min_period=min_period)


def learn_to_copy(cfg: Config, *, vocab: int = 64, length: int = 32, min_period: int = 4, steps: int = 600,
                  batch_size: int = 32, lr: float = 3e-3, eval_every: int = 50,
                  test_lengths: Iterable[int] = (8, 32)) -> tuple[PreTrainedModel, list[dict]]:
    """Train a tiny decoder (2 layers, 2 heads, width 64) on repeated random tokens only; watch it learn to copy.

    The data is ``RepeatedTokens`` with periods ``min_period..length`` over a
    ``vocab``-token vocabulary (a new sequence in every row), trained with the course loop
    (``pretrain.train``'s optimizer settings, ``steps`` steps of ``batch_size`` rows, peak
    ``lr``, no weight decay). Because the period changes from row to row, looking a fixed
    distance back does not work: the model has to find the earlier occurrence of the current
    token and copy what followed it. Every ``eval_every`` steps ``repeated_tokens_loss`` is
    measured on held-out sequences of each of ``test_lengths`` tokens. Returns the model and
    rows ``{"step", "length", "first", "second"}``: the second-copy loss falls only a little
    for a few hundred steps, then drops within about 150, at every length at once: the
    phase change of Olsson et al. (2022), when induction heads form. The first copy stays no
    better than ln(vocab). (With ``min_period=length`` every copy lies ``length`` tokens back,
    and the model learns that offset instead: the second copy then falls only at that length.)
    """
    test_lengths = list(test_lengths)
    if steps < 1 or eval_every < 1:
        raise ValueError(f"learn_to_copy needs steps >= 1 and eval_every >= 1, got steps={steps}, eval_every={eval_every}")
    if not test_lengths or not all(2 <= n <= length for n in test_lengths):
        raise ValueError(f"learn_to_copy needs test_lengths within 2..length ({length}), got {test_lengths}")
    model_cfg = dataclasses.replace(cfg.model, n_layer=2, n_head=2, d_model=64, d_ff=0, max_seq_len=2 * length,
                                    dropout=0.0)
    torch.manual_seed(cfg.run.seed)
    model = build_decoder(model_cfg, vocab)
    train_cfg = dataclasses.replace(cfg.pretrain.train, max_steps=steps, batch_size=batch_size, grad_accum_steps=1,
                                    lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0, eval_every=0,
                                    save_every=0, log_every=max(1, steps // 10), progress=False)
    held_out_seed = cfg.run.seed + 1  # test rows come from another seed than the training rows

    def measure(step: int) -> list[dict]:
        rows = [{"step": step, "length": n, **repeated_tokens_loss(model, length=n, batch=64, seed=held_out_seed)}
                for n in test_lengths]
        model.train()
        return rows

    rows = measure(0)

    def on_step(step: int, _metrics: dict) -> None:
        if step % eval_every == 0 or step == steps:
            rows.extend(measure(step))

    data = RepeatedTokens(steps * batch_size, length, vocab, seed=cfg.run.seed, min_period=min_period)
    with tempfile.TemporaryDirectory(prefix="copier-") as run_dir:
        train(model, data, train_cfg, output_dir=run_dir, seed=cfg.run.seed, resume=False, config=cfg,
              callbacks=(on_step,))
    model.eval()
    return model, rows


def copy_share_tradeoff(cfg: Config, shares: Iterable[float] = (0.0, 0.05, 0.1, 0.2)) -> list[dict]:
    """What copy rows buy and cost: one ``base`` per ``pretrain.copy_share``, everything else equal.

    Each model is the zoo's ``base`` for ``cfg`` with that share (built on first use, cached
    after). Rows ``{"copy_share", "first", "second", "ratio", "frequent_recall",
    "held_out_perplexity"}``: the induction test's two copies (nats per token) and their
    ratio (below 0.5: the second copy costs at most half the first), the recall of facts seen
    at least ``probes.FREQUENT`` times, and perplexity on the same held-out text blocks.
    """
    rows = []
    for share in shares:
        share_cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, copy_share=share))
        base = zoo.get("base", share_cfg)
        induction = repeated_tokens_loss(base.model, low=max(base.tokenizer.all_special_ids) + 1)
        rows.append({"copy_share": share, **induction, "ratio": induction["second"] / induction["first"],
                     "frequent_recall": frequent_recall(fact_recall(base.model, base.tokenizer, share_cfg)),
                     "held_out_perplexity": perplexity(base.model, zoo.get("pretrain-data", share_cfg)["eval"])})
    return rows
