"""The one training loop of the course, on Hugging Face ``accelerate``.

Every model in the course (the tour's adder, ``base``, ``instruct``, the seq2seq
models) is trained by :func:`train`. It works for any ``transformers`` model whose
``forward(**batch)`` returns an output with ``.loss``, and the same code runs on
a laptop CPU, one GPU, or many GPUs under ``torchrun`` / ``accelerate launch``
(DDP or FSDP): ``accelerate`` wraps the model, shards the data and all-reduces
the gradients; the loop below stays the same.

One optimizer *step* is ``grad_accum_steps`` micro-batches of ``batch_size``
examples on each process, so it sees ``batch_size * grad_accum_steps *
num_processes`` examples. What a run leaves in ``output_dir`` (its log,
checkpoints and final model) is described in ``course_lib.runs``.

A run is reproducible from its seed: the data order comes from a seeded
generator, not from the global RNG, and a run resumed from a checkpoint ends
exactly where the uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin
from accelerate.utils import set_seed as _accelerate_set_seed
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Sampler, Subset
from tqdm.auto import tqdm
from transformers import default_data_collator

from .config import Config, TrainConfig
from .runs import (FINAL_DIR, METRICS_FILE, latest_checkpoint, load_training_state, load_weights, prepare_run_dir,
                   read_metrics, save_checkpoint, save_model)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, Any]], None]


# --------------------------------------------------------------------------- schedule and seeds


def lr_schedule(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Learning rate of update number ``step`` (0 for the first update): warmup, then cosine.

    - warmup, ``step < warmup_steps``: ``lr * (step + 1) / (warmup_steps + 1)``, a
      straight line that reaches ``lr`` at ``step == warmup_steps`` (as in nanoGPT);
    - cosine, ``warmup_steps <= step <= max_steps``: from ``lr`` down to
      ``min_lr = lr * min_lr_ratio``, ``min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2``
      with ``t = (step - warmup_steps) / (max_steps - warmup_steps)``;
    - after ``max_steps``: ``min_lr``.

    Example (``lr=1, warmup_steps=4, max_steps=14, min_lr_ratio=0.1``): steps 0..4 give
    0.2, 0.4, 0.6, 0.8, 1.0; step 9 (half-way down) gives 0.55; step 14 gives 0.1.
    """
    min_lr = lr * min_lr_ratio
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if step >= max_steps:
        return min_lr
    t = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU)."""
    _accelerate_set_seed(seed)


# --------------------------------------------------------------------------- data order


class ShuffledStream(Sampler[int]):
    """An endless stream of dataset indices: epoch after epoch, each a fresh permutation.

    The permutations come from one ``torch.Generator`` seeded with ``seed``, so the
    order depends on the seed only. ``start`` (indices already consumed) resumes the
    stream mid-epoch, which is how a resumed run skips the data it has already seen.
    Being endless, the stream has no epoch boundary at which a batch would run short.
    """

    def __init__(self, num_examples: int, *, seed: int, start: int = 0):
        if num_examples <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.num_examples = num_examples
        self.seed = seed
        self.start = start

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        epoch, offset = divmod(self.start, self.num_examples)
        for _ in range(epoch):  # replay the finished epochs' draws to reach the same generator state
            torch.randperm(self.num_examples, generator=generator)
        while True:
            yield from torch.randperm(self.num_examples, generator=generator)[offset:].tolist()
            offset = 0


# --------------------------------------------------------------------------- results and metrics


@dataclass
class TrainResult:
    """What a finished run reports; the model itself is trained in place and saved in ``final/``."""

    step: int  # optimizer steps done
    train_loss: float | None  # mean loss of the last step (nats per predicted token)
    eval_loss: float | None  # last evaluation's loss, None if the run never evaluated
    output_dir: Path
    metrics_path: Path

    @property
    def final_dir(self) -> Path:
        return self.output_dir / FINAL_DIR


def plot_loss(metrics: str | Path | Sequence[dict], ax: Axes | None = None, title: str = "Training loss") -> Axes:
    """Plot train loss (and eval loss, if logged) against the optimizer step; returns the Axes."""
    import matplotlib.pyplot as plt  # imported here: matplotlib is slow to import and only plots need it

    rows = read_metrics(metrics) if isinstance(metrics, (str, Path)) else list(metrics)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    train_rows = [r for r in rows if "loss" in r]
    eval_rows = [r for r in rows if "eval_loss" in r]
    ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train")
    if eval_rows:
        ax.plot([r["step"] for r in eval_rows], [r["eval_loss"] for r in eval_rows], "o-", label="eval")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(title)
    ax.legend()
    return ax


# --------------------------------------------------------------------------- the loop


def train(
    model: torch.nn.Module,
    train_dataset,
    cfg: TrainConfig,
    *,
    output_dir: str | Path,
    eval_dataset=None,
    collate_fn: Callable | None = None,
    seed: int = 0,
    resume: bool = True,
    config: Config | None = None,
    callbacks: Iterable[Callback] = (),
    accelerator: Accelerator | None = None,
    tokenizer=None,
) -> TrainResult:
    """Train ``model`` in place on ``train_dataset`` for ``cfg.max_steps`` optimizer steps.

    Args:
        model: a ``transformers`` model whose ``forward(**batch)`` returns ``.loss``
            (a causal LM with ``labels``, a seq2seq model with ``labels``, ...).
        train_dataset, eval_dataset: map-style datasets (a torch ``Dataset`` or a
            ``datasets.Dataset`` with torch format) of equal-length examples, or any
            examples ``collate_fn`` turns into a batch of tensors.
        cfg: the hyperparameters (``config.TrainConfig``).
        output_dir: the run folder (layout in ``course_lib.runs``).
        collate_fn: list of examples -> batch dict; default ``transformers.default_data_collator``.
        seed: seeds the data order and each process's RNGs (process ``i`` uses ``seed + i``).
        resume: continue from the newest complete checkpoint in ``output_dir`` if there is
            one; ``False`` starts afresh and deletes the folder's old checkpoints.
        config: the full Config; when given it is saved as ``config.yaml``, and
            ``config.run.device == "cpu"`` keeps the run on the CPU (as does having no GPU),
            and ``config.run.num_threads`` (when not 0) sets torch's intra-op threads.
        callbacks: ``cb(step, metrics)`` called on the main process after every optimizer
            step (after that step's logging, evaluation and checkpoint); raising stops the run
            (in one process: under torchrun the other processes would wait for the main one).
        accelerator: an ``Accelerator`` to use instead of the one built from ``cfg``.
        tokenizer: saved beside the final model, so ``final/`` loads on its own with
            ``from_pretrained`` (``models.TrainedModel.from_run`` reads both).

    ``metrics.jsonl`` gets a train line every ``log_every`` steps and at the last step,
    ``{"step", "loss", "lr", "grad_norm", "tokens", "elapsed_s"}``: the step's mean loss
    over its micro-batches and processes, the learning rate it used, the gradient norm
    before clipping, the input tokens seen so far (non-padding, all processes) and the
    seconds of training so far; and an eval line ``{"step", "eval_loss", "elapsed_s"}``
    every ``eval_every`` steps and at the last step: the mean loss of the first
    ``eval_batches`` batches of ``eval_dataset``.
    """
    run = _start_run(model, train_dataset, eval_dataset, cfg, output_dir=Path(output_dir),
                     collate_fn=collate_fn or default_data_collator, seed=seed, resume=resume, config=config,
                     accelerator=accelerator)
    model, optimizer, scheduler, accelerator = run.model, run.optimizer, run.scheduler, run.accelerator
    batches = iter(run.train_loader)
    model.train()
    try:
        for step in range(run.state["step"] + 1, cfg.max_steps + 1):  # `step` counts finished updates
            lr = scheduler.get_last_lr()[0]
            loss_sum = torch.zeros((), device=accelerator.device)
            tokens = torch.zeros((), device=accelerator.device)
            for _ in range(cfg.grad_accum_steps):
                batch = next(batches)
                with accelerator.accumulate(model):  # no gradient all-reduce until the last micro-batch
                    loss = _forward_loss(model, batch)
                    accelerator.backward(loss)  # backward of loss / grad_accum_steps: grads average
                loss_sum += loss.detach().float()
                tokens += _count_tokens(batch)
            # max_norm=inf measures the norm without clipping.
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or math.inf)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            row = run.record(step, loss_sum, tokens, grad_norm, lr)
            last = step == cfg.max_steps
            if step % cfg.log_every == 0 or last:
                run.write(row)
            if run.eval_loader is not None and (step % cfg.eval_every == 0 or last):
                row["eval_loss"] = run.evaluate()
            if (cfg.save_every and step % cfg.save_every == 0) or last:
                save_checkpoint(run.output_dir, run.state, accelerator, model, optimizer, scheduler,
                                cfg.keep_checkpoints)
            run.progress.update(1)
            run.progress.set_postfix(loss=f"{run.state['loss']:.4f}")
            if accelerator.is_main_process:
                for callback in callbacks:
                    callback(step, row)
    finally:
        run.close()
    return run.finish(tokenizer)


# --------------------------------------------------------------------------- the run's state and set-up


@dataclass
class _Run:
    """Everything one call of ``train`` works with: prepared objects, counters, the log."""

    cfg: TrainConfig
    output_dir: Path
    accelerator: Accelerator
    model: torch.nn.Module  # prepared (wrapped under DDP/FSDP)
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    train_loader: DataLoader
    eval_loader: DataLoader | None
    state: dict  # step, samples_seen, tokens_seen, elapsed_s, loss, eval_loss: what a checkpoint stores
    log: IO[str] | None  # metrics.jsonl, open on the main process only
    progress: tqdm
    clock: float  # perf_counter() at the (virtual) start of training: elapsed time continues across resumes

    def record(self, step: int, loss_sum: torch.Tensor, tokens: torch.Tensor, grad_norm, lr: float) -> dict:
        """Update the counters after optimizer step ``step``; return its train row for the log.

        One all-reduce gives every process the same numbers.
        """
        cfg, acc = self.cfg, self.accelerator
        loss_sum, tokens = acc.reduce(torch.stack([loss_sum, tokens]), reduction="sum")
        s = self.state
        s["step"] = step
        s["loss"] = loss_sum.item() / (cfg.grad_accum_steps * acc.num_processes)
        s["tokens_seen"] += int(tokens.item())
        s["samples_seen"] += cfg.batch_size * cfg.grad_accum_steps * acc.num_processes
        s["elapsed_s"] = time.perf_counter() - self.clock
        return {"step": step, "loss": s["loss"], "lr": lr, "grad_norm": float(grad_norm),
                "tokens": s["tokens_seen"], "elapsed_s": round(s["elapsed_s"], 3)}

    def write(self, row: dict) -> None:
        if self.log is not None:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()  # a crashed run keeps every line it logged

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean of the per-batch mean losses over the eval batches, gathered from every process; logged."""
        self.model.eval()
        losses = torch.stack([self.model(**batch).loss.float() for batch in self.eval_loader])  # (batches here,)
        self.model.train()
        self.state["eval_loss"] = self.accelerator.gather(losses).mean().item()
        self.write({"step": self.state["step"], "eval_loss": self.state["eval_loss"],
                    "elapsed_s": round(self.state["elapsed_s"], 3)})
        return self.state["eval_loss"]

    def close(self) -> None:
        self.progress.close()
        if self.log is not None:
            self.log.close()

    def finish(self, tokenizer) -> TrainResult:
        """Save the final model (and ``tokenizer``) into ``final/`` and report the run."""
        acc = self.accelerator
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(self.model, keep_fp32_wrapper=False)  # undo the autocast patch
        save_model(acc, self.model, unwrapped, self.output_dir / FINAL_DIR)
        if tokenizer is not None and acc.is_main_process:
            tokenizer.save_pretrained(self.output_dir / FINAL_DIR)
        acc.wait_for_everyone()
        return TrainResult(step=self.state["step"], train_loss=self.state["loss"], eval_loss=self.state["eval_loss"],
                           output_dir=self.output_dir, metrics_path=self.output_dir / METRICS_FILE)


def _start_run(model, train_dataset, eval_dataset, cfg: TrainConfig, *, output_dir: Path, collate_fn: Callable,
               seed: int, resume: bool, config: Config | None, accelerator: Accelerator | None) -> _Run:
    """Check the data, build the accelerator, resume from a checkpoint, prepare model, optimizer and loaders.

    The order of these steps is part of the run's reproducibility: each one that draws
    random numbers does so at the same point of the seeded stream in a fresh and a resumed run.
    """
    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty")
    if eval_dataset is not None and len(eval_dataset) == 0:
        raise ValueError("eval_dataset is empty; pass None to skip evaluation")
    accelerator = _accelerator(cfg, config, accelerator)
    if config is not None and config.run.num_threads:
        torch.set_num_threads(config.run.num_threads)
    if accelerator.device.type == "cpu":
        # Denormal floats (below 1.2e-38) take a slow path on CPUs: t5, which trains without dropout,
        # produces them after about 200 steps and then runs at half speed. Flushed to zero, they cost nothing.
        torch.set_flush_denormal(True)
    # Different dropout masks on each process, as if one process saw the whole batch.
    set_seed(seed + accelerator.process_index)

    checkpoint = latest_checkpoint(output_dir) if resume else None
    state = {"step": 0, "samples_seen": 0, "tokens_seen": 0, "elapsed_s": 0.0, "loss": None, "eval_loss": None}
    if checkpoint is not None:
        state.update(json.loads((checkpoint / "state.json").read_text(encoding="utf-8")))
        load_weights(model, checkpoint)  # before accelerate wraps (and, under FSDP, shards) the model
    if accelerator.is_main_process:
        prepare_run_dir(output_dir, start_step=state["step"], fresh=not resume, config=config)

    optimizer, scheduler = _optimizer(model, cfg)
    train_loader = DataLoader(
        train_dataset,
        batch_size=cfg.batch_size,
        sampler=ShuffledStream(len(train_dataset), seed=seed, start=state["samples_seen"]),
        collate_fn=collate_fn,
        # Its own generator, so starting the loader does not draw from the global RNG
        # (dropout's): a resumed run then continues the exact same random stream.
        generator=torch.Generator().manual_seed(seed),
    )
    # The scheduler stays unprepared: we step it once per optimizer step, on every process.
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loader = None
    if eval_dataset is not None and cfg.eval_every > 0:
        first = Subset(eval_dataset, range(min(len(eval_dataset), cfg.eval_batches * cfg.batch_size)))
        eval_loader = accelerator.prepare(DataLoader(first, batch_size=cfg.batch_size, collate_fn=collate_fn,
                                                     generator=torch.Generator().manual_seed(seed)))
    if checkpoint is not None:
        load_training_state(checkpoint, accelerator, model, optimizer, scheduler)
        logger.info("resumed from %s", checkpoint)

    log = (output_dir / METRICS_FILE).open("a", encoding="utf-8") if accelerator.is_main_process else None
    progress = tqdm(total=cfg.max_steps, initial=state["step"], desc="train",
                    disable=not (cfg.progress and accelerator.is_main_process))
    return _Run(cfg, output_dir, accelerator, model, optimizer, scheduler, train_loader, eval_loader, state, log,
                progress, clock=time.perf_counter() - state["elapsed_s"])


def _accelerator(cfg: TrainConfig, config: Config | None, accelerator: Accelerator | None) -> Accelerator:
    """The given accelerator (checked against ``cfg``), or one built from ``cfg`` and the run's device."""
    if accelerator is None:
        return Accelerator(
            mixed_precision=cfg.mixed_precision,
            # Without a GPU, accelerate must be told "cpu" to run multi-process (gloo) under torchrun.
            cpu=(config is not None and config.run.device == "cpu") or not torch.accelerator.is_available(),
            # The loop decides when a step ends by counting micro-batches; the data never "ends".
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=cfg.grad_accum_steps, sync_with_dataloader=False
            ),
        )
    if accelerator.gradient_accumulation_steps != cfg.grad_accum_steps:
        raise ValueError(
            f"the accelerator accumulates {accelerator.gradient_accumulation_steps} micro-batches "
            f"but cfg.grad_accum_steps is {cfg.grad_accum_steps}"
        )
    return accelerator


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, LambdaLR]:
    """AdamW and its warmup-then-cosine schedule (``lr_schedule``)."""
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2)
    )
    # LambdaLR multiplies cfg.lr by the factor, so the factor is the schedule with a peak of 1.
    scheduler = LambdaLR(
        optimizer,
        lambda s: lr_schedule(
            s, lr=1.0, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio
        ),
    )
    return optimizer, scheduler


def _forward_loss(model, batch: dict) -> torch.Tensor:
    """The scalar loss of one micro-batch, or an error that says what the batch lacks."""
    loss = model(**batch).loss
    if loss is None:
        raise ValueError(
            f"the model returned no loss for a batch with keys {sorted(batch)}; "
            "add 'labels' to the dataset (for a causal LM, a copy of input_ids with -100 "
            "at positions that should not be predicted)"
        )
    return loss


def _count_tokens(batch: dict) -> torch.Tensor:
    """Input tokens in a batch: non-padding positions of ``attention_mask``, else all of ``input_ids``."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    if "input_ids" in batch:
        return torch.tensor(batch["input_ids"].numel(), device=batch["input_ids"].device)
    raise ValueError(f"cannot count tokens in a batch without input_ids; its keys are {sorted(batch)}")


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay the matrices (>= 2 dims); not biases or norm gains, whose scale matters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
