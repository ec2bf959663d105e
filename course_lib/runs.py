"""A training run's folder: its log, its checkpoints and its final model.

What ``training.train`` leaves in ``output_dir``::

    config.yaml                  the resolved Config (when one is passed)
    metrics.jsonl                one JSON object per line (``read_metrics``)
    checkpoints/step_00000100/   model (safetensors), optimizer, scheduler,
                                 RNG states, state.json; the newest few are kept
    final/                       the trained model, ``from_pretrained``-ready

Checkpoints are written into a ``.tmp-`` folder and renamed when complete, so a
crash leaves either a whole checkpoint or none, and a resumed run starts from the
newest complete one with the same weights, optimizer, schedule and random streams.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, load_fsdp_optimizer, save_fsdp_optimizer
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from .config import Config

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"
_CHECKPOINT_NAME = re.compile(r"^step_(\d{8})$")
_TMP_PREFIX = ".tmp-"


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` log (a run folder is accepted too), in order."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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


def prepare_run_dir(output_dir: Path, *, start_step: int, fresh: bool, config: Config | None) -> None:
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


def save_checkpoint(output_dir: Path, state: dict, accelerator: Accelerator, model, optimizer, scheduler, keep: int):
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

    save_model(accelerator, model, accelerator.unwrap_model(model), tmp)
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


def save_model(accelerator: Accelerator, model, unwrapped, path: Path) -> None:
    """``save_pretrained`` the prepared ``model``'s full weights (safetensors) into ``path``."""
    weights = accelerator.get_state_dict(model)  # gathered from the shards under FSDP: every process calls it
    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per save would bury the training bar
    try:
        unwrapped.save_pretrained(path, state_dict=weights, is_main_process=accelerator.is_main_process)
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()


def load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
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


def load_training_state(checkpoint: Path, accelerator: Accelerator, model, optimizer, scheduler) -> None:
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
