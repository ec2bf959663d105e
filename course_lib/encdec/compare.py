"""Chapter 04's two experiments: ``t5`` against ``base`` after the same fine-tuning, and span corruption
against single-token masking as the pretraining objective."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from .. import zoo
from ..config import Config
from ..models import count_parameters
from ..packing import PackedBlocks
from ..pretraining.data import TOKEN_FILES
from ..runs import read_metrics
from ..training import train
from .seq2seq import IGNORE_INDEX, FinetuneRun, evaluate_translation, finetune, finetune_config, translation_data
from .spans import SpanCorruptedBlocks, SpanCorruptionCollator, noise_span_counts, sentinel_ids
from .t5 import new_t5_model


@dataclass
class Comparison:
    """The rows of an experiment (one per model or objective and test split) and the fine-tuned runs."""

    rows: list[dict]
    runs: dict[str, FinetuneRun] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def _score_rows(run: FinetuneRun, data: dict[str, list[dict]], splits: Sequence[str], **extra) -> list[dict]:
    rows = []
    for split in splits:
        scores = evaluate_translation(run.model, run.tokenizer, data[split])
        rows.append({**extra, "split": split, "examples": len(data[split]), "chrF": scores["chrF"],
                     "BLEU": scores["BLEU"], "loss": scores["loss"], "finetune_seconds": run.seconds,
                     "predictions": scores["predictions"]})
    return rows


def _work_dir(work_dir: str | Path | None):
    """A context giving the folder for the runs: ``work_dir`` (kept), else a temporary one (removed after)."""
    if work_dir is None:
        return tempfile.TemporaryDirectory(prefix="seq2seq-")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return nullcontext(str(work_dir))


def compare_architectures(cfg: Config, *, steps: int | None = None, lr: float | None = None,
                          seeds: Sequence[int] | None = None, splits: Sequence[str] = ("test", "test_template"),
                          work_dir: str | Path | None = None) -> Comparison:
    """Fine-tune ``t5`` and ``base`` (zoo) on the world's translation pairs with one budget; score both.

    Same examples, steps, batch, learning rate and seed (``finetune_config``); each seed in
    ``seeds`` (default ``run.seed``) is one fine-tuning of each model from its pretrained
    weights. Rows ``{"model", "architecture", "parameters", "seed", "split", "examples", "chrF",
    "BLEU", "loss", "finetune_seconds", "predictions"}``; ``runs`` keeps the last seed's models.
    """

    train_cfg = finetune_config(cfg, steps, lr)
    data = translation_data(cfg)
    seeds = list(seeds) if seeds is not None else [cfg.run.seed]
    rows, runs = [], {}
    with _work_dir(work_dir) as root:
        for seed in seeds:
            for name, architecture in (("t5", "encoder-decoder"), ("base", "decoder-only")):
                pretrained = zoo.get(name, cfg)
                run = finetune(name, pretrained.model, pretrained.tokenizer, data["train"], train_cfg,
                               Path(root) / f"{name}-seed{seed}", seed=seed, config=cfg)
                rows += _score_rows(run, data, splits, model=name, architecture=architecture,
                                    parameters=count_parameters(run.model), seed=seed)
                runs[name] = run
    return Comparison(rows, runs, {"finetune": dataclasses.asdict(train_cfg), "train_pairs": len(data["train"]),
                                   "seeds": seeds})


# --------------------------------------------------------------------------- experiment 2: spans or single tokens


class Chunks(torch.utils.data.Dataset):
    """Each row of ``blocks`` cut into ``pieces`` equal chunks: row j is chunk j % pieces of block j // pieces."""

    def __init__(self, blocks, pieces: int):
        if pieces < 1:
            raise ValueError(f"pieces must be >= 1, got {pieces}")
        self.blocks, self.pieces = blocks, pieces

    def __len__(self) -> int:
        return len(self.blocks) * self.pieces

    def __getitem__(self, j: int) -> dict:
        if not 0 <= j < len(self):
            raise IndexError(j)
        ids = self.blocks[j // self.pieces]["input_ids"]
        n = len(ids) // self.pieces
        piece = ids[(j % self.pieces) * n : (j % self.pieces + 1) * n]
        return {"input_ids": piece, "labels": piece.clone()}


def pieces_for_sentinels(block_size: int, num_sentinels: int, noise_density: float = 0.15,
                         mean_noise_span_length: float = 1.0) -> int:
    """The fewest equal chunks of a block whose noise spans each fit the tokenizer's sentinels.

    Span corruption needs one sentinel per noise span: single-token masking of a 256-token
    block at density 0.15 makes 38 spans. Cutting blocks into chunks keeps the spans per
    example within ``num_sentinels``, for every objective compared, so they see the same text.
    """

    for pieces in range(1, block_size // 2 + 1):
        length = block_size // pieces
        if length >= 2 and noise_span_counts(length, noise_density, mean_noise_span_length)[1] <= num_sentinels:
            return pieces
    raise ValueError(f"no chunking of {block_size}-token blocks fits {num_sentinels} sentinels")


@torch.no_grad()
def hidden_token_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, blocks,
                      mean_noise_span_length: float, *, noise_density: float = 0.15, seed: int = 0,
                      batch_size: int = 16) -> float:
    """Mean cross-entropy (nats) of the hidden tokens when T5 ``model`` denoises ``blocks``.

    Each block is span-corrupted (``spans.span_corrupt``, seeded by ``(seed, i)``); only the
    target's hidden text tokens count, not its sentinels or end token, so objectives with
    different numbers of sentinels compare on the same thing: how well a hidden token is
    recovered from what is left visible.
    """

    length = len(blocks[0]["input_ids"])
    sentinels = sentinel_ids(tokenizer, noise_span_counts(length, noise_density, mean_noise_span_length)[1])
    data = SpanCorruptedBlocks(blocks, sentinels, tokenizer.eos_token_id, noise_density=noise_density,
                               mean_noise_span_length=mean_noise_span_length, seed=seed)
    skip = torch.tensor(sentinels + [tokenizer.eos_token_id])
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        rows = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batch = SpanCorruptionCollator(tokenizer.pad_token_id)(rows)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        labels = batch["labels"]
        logits = model(**batch).logits.float()  # (B, T, V)
        scored = (labels != IGNORE_INDEX) & ~torch.isin(labels, skip.to(labels.device))
        losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten(),
                                                   reduction="none")
        total += losses[scored.flatten()].sum().item()
        count += int(scored.sum())
    if not count:
        raise ValueError("hidden_token_loss needs at least one hidden token")
    return total / count


def held_out_chunks(cfg: Config, pieces: int):
    """The held-out ``pretrain-data`` blocks, each cut into ``pieces`` chunks (see ``Chunks``)."""

    return Chunks(PackedBlocks(zoo.build("pretrain-data", cfg) / TOKEN_FILES["eval"], cfg.pretrain.block_size), pieces)


OBJECTIVES = {"span corruption": 3.0, "single-token masking": 1.0}  # name -> mean noise span length (T5's 3)


def pretrain_objective(cfg: Config, mean_noise_span_length: float, steps: int, output_dir: str | Path, *,
                       noise_density: float = 0.15, pieces: int | None = None) -> tuple[PreTrainedModel, dict]:
    """A fresh T5 pretrained for ``steps`` steps by span corruption with the given mean span length.

    The data is ``pretrain-data``'s training blocks cut into ``pieces`` chunks (default: the
    fewest for which single-token masking fits the sentinels), ``pieces * pretrain.train.batch_size``
    chunks a step (the tokens per step of ``t5``) with ``pretrain.train``'s optimizer and
    schedule shortened to ``steps``. Returns the model and ``{"seconds", "input_tokens",
    "target_tokens", "final_loss"}`` (tokens per example, padding excluded).
    """
    tokenizer = zoo.get("tokenizer", cfg)
    block = cfg.pretrain.block_size
    available = len(sentinel_ids(tokenizer))
    pieces = pieces or pieces_for_sentinels(block, available, noise_density)
    chunks = Chunks(PackedBlocks(zoo.build("pretrain-data", cfg) / TOKEN_FILES["train"], block), pieces)
    t = cfg.pretrain.train
    train_cfg = dataclasses.replace(t, max_steps=steps, batch_size=t.batch_size * pieces,
                                    warmup_steps=min(t.warmup_steps, max(1, steps // 10)), eval_every=0,
                                    save_every=0, log_every=max(1, steps // 25))
    n, s = noise_span_counts(block // pieces, noise_density, mean_noise_span_length)
    passes = max(1, -(-steps * train_cfg.batch_size // len(chunks)))  # fresh spans on every pass
    data = SpanCorruptedBlocks(chunks, sentinel_ids(tokenizer, s), tokenizer.eos_token_id, noise_density=noise_density,
                               mean_noise_span_length=mean_noise_span_length, seed=cfg.run.seed, passes=passes)
    model = new_t5_model(cfg, tokenizer)
    start = time.perf_counter()
    result = train(model, data, train_cfg, output_dir=output_dir,
                   collate_fn=SpanCorruptionCollator(tokenizer.pad_token_id), seed=cfg.run.seed, resume=False,
                   config=cfg)
    return model, {"seconds": time.perf_counter() - start, "input_tokens": block // pieces - n + s + 1,
                   "target_tokens": n + s + 1, "final_loss": result.train_loss, "pieces": pieces,
                   "metrics": read_metrics(output_dir)}


def compare_objectives(cfg: Config, *, pretrain_steps: int | None = None, finetune_steps: int | None = None,
                       lr: float | None = None, splits: Sequence[str] = ("test", "test_template"),
                       include_scratch: bool = True, work_dir: str | Path | None = None) -> Comparison:
    """Pretrain one T5 per objective in ``OBJECTIVES`` with one budget, fine-tune each alike, score on translation.

    Same model size, seed, data (chunked as ``pretrain_objective`` says), steps, batch and
    learning rate for both objectives; then the same fine-tuning (``finetune_config``) and
    greedy decoding. ``pretrain_steps`` defaults to a fifteenth of ``pretrain.train.max_steps``
    (the ``t5`` artifact trains for all of them, at least 20), so that the experiment fits a notebook.
    With ``include_scratch`` an unpretrained T5 is fine-tuned too, as the floor. Rows
    ``{"pretraining", "mean_span", "pretrain_steps", "pretrain_seconds", "input_tokens",
    "target_tokens", "pretrain_loss", "hidden_loss_span3", "hidden_loss_span1", "split", ...scores}``:
    ``hidden_loss_span<m>`` is ``hidden_token_loss`` of the pretrained model (before fine-tuning) on
    held-out chunks corrupted with mean span length m. ``settings["pretrain_metrics"]`` has each
    pretraining log.
    """
    pretrain_steps = pretrain_steps or max(20, cfg.pretrain.train.max_steps // 15)
    train_cfg = finetune_config(cfg, finetune_steps, lr)
    data = translation_data(cfg)
    tokenizer = zoo.get("tokenizer", cfg)
    available = len(sentinel_ids(tokenizer))
    rows, runs, logs, pieces = [], {}, {}, None
    with _work_dir(work_dir) as root:
        todo = list(OBJECTIVES.items()) + ([("no pretraining", None)] if include_scratch else [])
        for name, mean_span in todo:
            if mean_span is None:
                model, info = new_t5_model(cfg, tokenizer), {"seconds": 0.0, "input_tokens": None,
                                                            "target_tokens": None, "final_loss": None}
            else:
                model, info = pretrain_objective(cfg, mean_span, pretrain_steps, Path(root) / f"pretrain-{mean_span:g}")
                logs[name], pieces = info.pop("metrics"), info["pieces"]
            held_out = held_out_chunks(cfg, pieces or pieces_for_sentinels(cfg.pretrain.block_size, available))
            hidden = {f"hidden_loss_span{m:g}": hidden_token_loss(model, tokenizer, held_out, m, seed=cfg.run.seed)
                      for m in OBJECTIVES.values()}  # before fine-tuning: how well each denoises either way
            run = finetune(name, model, tokenizer, data["train"], train_cfg, Path(root) / f"finetune-{mean_span}",
                           seed=cfg.run.seed, config=cfg)
            rows += _score_rows(run, data, splits, pretraining=name, mean_span=mean_span,
                                pretrain_steps=0 if mean_span is None else pretrain_steps,
                                pretrain_seconds=info["seconds"], input_tokens=info["input_tokens"],
                                target_tokens=info["target_tokens"], pretrain_loss=info["final_loss"], **hidden)
            runs[name] = run
    return Comparison(rows, runs, {"finetune": dataclasses.asdict(train_cfg), "pretrain_steps": pretrain_steps,
                                   "pieces": pieces, "chunk_tokens": cfg.pretrain.block_size // (pieces or 1),
                                   "pretrain_metrics": logs})
