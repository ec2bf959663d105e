"""The one training loop of the course, on Hugging Face ``accelerate``.

Every model in the course (the tour's adder, ``base``, ``instruct``, the seq2seq
models) is trained by :func:`train`. It works for any ``transformers`` model whose
``forward(**batch)`` returns an output with ``.loss``, and the same code runs on
a laptop CPU, one GPU, or many GPUs under ``torchrun`` / ``accelerate launch``
(DDP or FSDP): ``accelerate`` wraps the model, shards the data and all-reduces
the gradients; the loop below stays the same.

One optimizer *step* is ``grad_accum_steps`` micro-batches of ``batch_size``
examples on each process, so it sees ``batch_size * grad_accum_steps *
num_processes`` examples. What a run leaves in ``output_dir``::

    config.yaml                  the resolved Config (when one is passed)
    metrics.jsonl                one JSON object per line (see ``train``)
    checkpoints/step_00000100/   model (safetensors), optimizer, scheduler,
                                 RNG states, state.json; the newest few are kept
    final/                       the trained model, ``from_pretrained``-ready

A run is reproducible from its seed: the data order comes from a seeded
generator, not from the global RNG, and a run resumed from a checkpoint ends
exactly where the uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, GradientAccumulationPlugin, load_fsdp_optimizer, save_fsdp_optimizer
from accelerate.utils import set_seed as _accelerate_set_seed
from safetensors.torch import load_file
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Sampler, Subset
from tqdm.auto import tqdm
from transformers import default_data_collator
from transformers.utils import logging as hf_logging

from .config import Config, TrainConfig

if TYPE_CHECKING:
    from matplotlib.axes import Axes

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"
_CHECKPOINT_NAME = re.compile(r"^step_(\d{8})$")
_TMP_PREFIX = ".tmp-"

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


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` log (a run folder is accepted too), in order."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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
        output_dir: the run folder (layout in the module docstring).
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
            ``from_pretrained`` (``tour.TrainedModel.from_run`` reads both).

    ``metrics.jsonl`` gets a train line every ``log_every`` steps and at the last step,
    ``{"step", "loss", "lr", "grad_norm", "tokens", "elapsed_s"}``: the step's mean loss
    over its micro-batches and processes, the learning rate it used, the gradient norm
    before clipping, the input tokens seen so far (non-padding, all processes) and the
    seconds of training so far; and an eval line ``{"step", "eval_loss", "elapsed_s"}``
    every ``eval_every`` steps and at the last step: the mean loss of the first
    ``eval_batches`` batches of ``eval_dataset``.
    """
    output_dir = Path(output_dir)
    collate_fn = collate_fn or default_data_collator
    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty")
    if eval_dataset is not None and len(eval_dataset) == 0:
        raise ValueError("eval_dataset is empty; pass None to skip evaluation")
    if accelerator is None:
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            # Without a GPU, accelerate must be told "cpu" to run multi-process (gloo) under torchrun.
            cpu=(config is not None and config.run.device == "cpu") or not torch.accelerator.is_available(),
            # The loop decides when a step ends by counting micro-batches; the data never "ends".
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=cfg.grad_accum_steps, sync_with_dataloader=False
            ),
        )
    elif accelerator.gradient_accumulation_steps != cfg.grad_accum_steps:
        raise ValueError(
            f"the accelerator accumulates {accelerator.gradient_accumulation_steps} micro-batches "
            f"but cfg.grad_accum_steps is {cfg.grad_accum_steps}"
        )
    if config is not None and config.run.num_threads:
        torch.set_num_threads(config.run.num_threads)
    # Different dropout masks on each process, as if one process saw the whole batch.
    set_seed(seed + accelerator.process_index)

    checkpoint = latest_checkpoint(output_dir) if resume else None
    state = {"step": 0, "samples_seen": 0, "tokens_seen": 0, "elapsed_s": 0.0, "loss": None, "eval_loss": None}
    if checkpoint is not None:
        state.update(json.loads((checkpoint / "state.json").read_text(encoding="utf-8")))
        # Weights go in before accelerate wraps (and, under FSDP, shards) the model.
        _load_weights(model, checkpoint)
    if accelerator.is_main_process:
        _prepare_run_dir(output_dir, start_step=state["step"], fresh=not resume, config=config)

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
        eval_loader = accelerator.prepare(
            DataLoader(
                first, batch_size=cfg.batch_size, collate_fn=collate_fn, generator=torch.Generator().manual_seed(seed)
            )
        )
    if checkpoint is not None:
        _load_training_state(checkpoint, accelerator, model, optimizer, scheduler)
        logger.info("resumed from %s", checkpoint)

    metrics_path = output_dir / METRICS_FILE
    log = metrics_path.open("a", encoding="utf-8") if accelerator.is_main_process else None
    progress = tqdm(
        total=cfg.max_steps,
        initial=state["step"],
        desc="train",
        disable=not (cfg.progress and accelerator.is_main_process),
    )
    clock = time.perf_counter() - state["elapsed_s"]  # elapsed time continues across resumes
    samples_per_step = cfg.batch_size * cfg.grad_accum_steps * accelerator.num_processes
    batches = iter(train_loader)
    model.train()
    try:
        for step in range(state["step"] + 1, cfg.max_steps + 1):  # `step` counts finished updates
            lr = scheduler.get_last_lr()[0]
            loss_sum = torch.zeros((), device=accelerator.device)
            tokens = torch.zeros((), device=accelerator.device)
            for _ in range(cfg.grad_accum_steps):
                batch = next(batches)
                # No gradient all-reduce until the last micro-batch of the step.
                with accelerator.accumulate(model):
                    loss = _forward_loss(model, batch)
                    accelerator.backward(loss)  # backward of loss / grad_accum_steps: grads average
                loss_sum += loss.detach().float()
                tokens += _count_tokens(batch)
            # max_norm=inf measures the norm without clipping.
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or math.inf)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            # Bookkeeping: one all-reduce gives every process the same numbers.
            loss_sum, tokens = accelerator.reduce(torch.stack([loss_sum, tokens]), reduction="sum")
            state["step"] = step
            state["loss"] = loss_sum.item() / (cfg.grad_accum_steps * accelerator.num_processes)
            state["tokens_seen"] += int(tokens.item())
            state["samples_seen"] += samples_per_step
            state["elapsed_s"] = time.perf_counter() - clock
            row = {
                "step": step,
                "loss": state["loss"],
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens": state["tokens_seen"],
                "elapsed_s": round(state["elapsed_s"], 3),
            }
            last = step == cfg.max_steps
            if step % cfg.log_every == 0 or last:
                _write_row(log, row)
            if eval_loader is not None and (step % cfg.eval_every == 0 or last):
                state["eval_loss"] = _evaluate(model, eval_loader, accelerator)
                row["eval_loss"] = state["eval_loss"]
                _write_row(log, {"step": step, "eval_loss": state["eval_loss"], "elapsed_s": row["elapsed_s"]})
            if (cfg.save_every and step % cfg.save_every == 0) or last:
                _save_checkpoint(output_dir, state, accelerator, model, optimizer, scheduler, cfg.keep_checkpoints)
            progress.update(1)
            progress.set_postfix(loss=f"{state['loss']:.4f}")
            if accelerator.is_main_process:
                for callback in callbacks:
                    callback(step, row)
    finally:
        progress.close()
        if log is not None:
            log.close()

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # undo the autocast patch
    _save_model(accelerator, model, unwrapped, output_dir / FINAL_DIR)
    if tokenizer is not None and accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir / FINAL_DIR)
    accelerator.wait_for_everyone()
    return TrainResult(
        step=state["step"],
        train_loss=state["loss"],
        eval_loss=state["eval_loss"],
        output_dir=output_dir,
        metrics_path=metrics_path,
    )


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


@torch.no_grad()
def _evaluate(model, eval_loader, accelerator: Accelerator) -> float:
    """Mean of the per-batch mean losses over ``eval_loader``, gathered from every process."""
    model.eval()
    losses = torch.stack([model(**batch).loss.float() for batch in eval_loader])  # (batches on this process,)
    model.train()
    return accelerator.gather(losses).mean().item()


def _write_row(log, row: dict) -> None:
    if log is not None:
        log.write(json.dumps(row) + "\n")
        log.flush()  # a crashed run keeps every line it logged


# --------------------------------------------------------------------------- run folder and checkpoints


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first.

    A checkpoint is complete when its folder has its final name ``step_NNNNNNNN`` and a
    ``state.json``; a save interrupted mid-way leaves only a ``.tmp-`` folder, ignored here.
    """
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _CHECKPOINT_NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _prepare_run_dir(output_dir: Path, *, start_step: int, fresh: bool, config: Config | None) -> None:
    """Create the run folder and make it agree with a run starting at ``start_step``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = output_dir / CHECKPOINT_DIR
    if fresh and checkpoints.exists():
        logger.warning("resume=False: deleting the old checkpoints in %s", checkpoints)
        shutil.rmtree(checkpoints)
    for leftover in checkpoints.glob(_TMP_PREFIX + "*"):  # saves that crashed half-way
        shutil.rmtree(leftover)
    # Drop log lines of steps after the checkpoint: the resumed run logs them again.
    metrics_path = output_dir / METRICS_FILE
    if metrics_path.exists():
        kept = [r for r in read_metrics(metrics_path) if r["step"] <= start_step]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    if config is not None:
        config.save(output_dir / "config.yaml")


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(output_dir: Path, state: dict, accelerator: Accelerator, model, optimizer, scheduler, keep: int):
    """Write ``checkpoints/step_NNNNNNNN`` atomically and keep only the newest ``keep``.

    Everything is written into a ``.tmp-`` folder that is renamed once complete; a rename
    is atomic, so a crash leaves either the whole checkpoint or none.
    """
    root = output_dir / CHECKPOINT_DIR
    final = root / f"step_{state['step']:08d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()

    _save_model(accelerator, model, accelerator.unwrap_model(model), tmp)
    if accelerator.distributed_type == DistributedType.FSDP:
        # Each process holds a shard of the optimizer state; accelerate writes them together.
        save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, tmp)
    elif main:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if main:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()

    if main:
        record = {**state, "num_processes": accelerator.num_processes}
        (tmp / "state.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if final.exists():  # the same step saved by an earlier, longer-lived attempt
            shutil.rmtree(final)
        tmp.rename(final)
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _save_model(accelerator: Accelerator, model, unwrapped, path: Path) -> None:
    """``save_pretrained`` the prepared ``model``'s full weights (safetensors) into ``path``."""
    weights = accelerator.get_state_dict(model)  # gathered from the shards under FSDP: every process calls it
    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per save would bury the training bar
    try:
        unwrapped.save_pretrained(path, state_dict=weights, is_main_process=accelerator.is_main_process)
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()


def _load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    """Load a ``save_pretrained`` folder's safetensors weights into ``model`` in place."""
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"checkpoint {checkpoint} has no *.safetensors weights")
    weights = {}
    for file in files:  # one file, or the shards of a large model
        weights.update(load_file(file))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # save_pretrained stores tied weights (e.g. T5's shared embeddings) once.
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def _load_training_state(checkpoint: Path, accelerator: Accelerator, model, optimizer, scheduler) -> None:
    """Restore optimizer, scheduler and this process's RNG states (weights are already loaded)."""
    if accelerator.distributed_type == DistributedType.FSDP:
        load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, checkpoint)
    else:
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng_file = checkpoint / f"rng_state_{accelerator.process_index}.pt"
    if rng_file.is_file():
        # weights_only=False: the file holds NumPy's RNG tuple; we wrote it ourselves.
        _set_rng_state(torch.load(rng_file, weights_only=False))
    else:
        logger.warning("%s has no RNG state for process %d; dropout will differ", checkpoint, accelerator.process_index)
