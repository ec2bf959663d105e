"""The chapter's accuracy experiment: held-out perplexity of one model quantized by each setting (bits,
granularity, round to nearest or GPTQ, weight-only or W8A8), each against fp32 in the same run.

A setting is a ``Setting``; ``SETTINGS`` is the grid the issue asks for (int8 per channel,
4 and 3 bits per group and per channel with both methods, W8A8 with each calibration).

The zoo artifact ``quantization-study`` runs ``study_settings`` (every bit width at every
granularity by round to nearest, GPTQ at 4 and 3 bits, W8A8 with each calibration) on ``base``
and ``instruct``, with chapter 05's harness on a few tasks for some of the settings, so
chapter 08's notebook reads the table instead of waiting for it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import zoo
from ..config import Config
from ..packing import perplexity
from .calibration import calibration_batches, linear_layers, quantize_linears
from .gptq import gptq_model
from .outliers import w8a8


@dataclass(frozen=True)
class Setting:
    """How to quantize: ``method`` is ``"rtn"``, ``"gptq"`` or ``"w8a8"``; ``group_size=None`` is per channel;
    ``calibration`` names the W8A8 range method; ``threshold`` keeps LLM.int8's outlier features in float."""

    bits: int
    group_size: int | None = None
    method: str = "rtn"
    calibration: str = "minmax"
    threshold: float | None = None
    per_tensor: bool = False  # one (s, z) for the whole weight (round to nearest)

    @property
    def name(self) -> str:
        where = "tensor" if self.per_tensor else "channel" if self.group_size is None else f"g{self.group_size}"
        if self.method == "w8a8":
            return f"W8A8 {self.calibration}" + (f" + float outliers >= {self.threshold:g}" if self.threshold else "")
        return f"int{self.bits} {where} {self.method.upper()}"


SETTINGS = (
    Setting(8), Setting(4, 32), Setting(4, 32, "gptq"), Setting(4), Setting(4, None, "gptq"),
    Setting(3, 32), Setting(3, 32, "gptq"), Setting(3), Setting(3, None, "gptq"),
    Setting(8, method="w8a8"), Setting(8, method="w8a8", calibration="percentile"),
    Setting(8, method="w8a8", calibration="mse"), Setting(8, method="w8a8", threshold=6.0),
)


def quantized(model: torch.nn.Module, setting: Setting, calibration: list) -> torch.nn.Module:
    """A quantized copy of ``model`` by ``setting`` (8 bits and W8A8 symmetric weights; 4 and 3 bits asymmetric)."""
    symmetric = setting.bits == 8
    granularity = "tensor" if setting.per_tensor else "channel" if setting.group_size is None else "group"
    if setting.method == "gptq":
        return gptq_model(model, calibration, setting.bits, group_size=setting.group_size, symmetric=symmetric)[0]
    if setting.method == "w8a8":
        return w8a8(model, calibration, method=setting.calibration, threshold=setting.threshold)
    if setting.method != "rtn":
        raise ValueError(f"method {setting.method!r}: expected rtn, gptq or w8a8")
    return quantize_linears(model, setting.bits, granularity=granularity, group_size=setting.group_size or 128,
                            symmetric=symmetric)


def perplexity_grid(model: torch.nn.Module, held_out, calibration: list, settings=SETTINGS,
                    batch_size: int = 8, extra=None, progress: bool = False) -> list[dict]:
    """One row per setting (fp32 first): ``{"setting", "perplexity", "vs_fp32", "seconds"}`` on ``held_out``
    (packed blocks), quantizing with ``calibration`` batches; ``seconds`` is the time to quantize.

    ``extra(model, setting)`` (``setting`` is None for fp32) returns more columns for a row, e.g. task scores.
    """
    fp32 = perplexity(model, held_out, batch_size)
    rows = [{"setting": "fp32", "perplexity": fp32, "vs_fp32": 1.0, "seconds": 0.0,
             **(extra(model, None) if extra else {})}]
    for setting in tqdm(settings, desc="settings", disable=not progress):
        start = time.perf_counter()
        q = quantized(model, setting, calibration)
        seconds = time.perf_counter() - start
        ppl = perplexity(q, held_out, batch_size)
        rows.append({"setting": setting.name, "perplexity": ppl, "vs_fp32": ppl / fp32, "seconds": seconds,
                     **(extra(q, setting) if extra else {})})
    return rows


# --------------------------------------------------------------------------- the zoo artifact

GROUP_SIZES = (128, 64, 32)  # the group sizes GPTQ and AWQ report, largest first
CALIBRATION_BLOCKS = 32
TASKS = ("cloze_en", "multiple_choice_en", "multiple_choice_ko", "entailment_en", "entailment_ko", "qa_open_ko")
TASK_LIMIT = 40  # items per task (the laptop world's test splits are smaller)


def group_size_for(model: torch.nn.Module, sizes=GROUP_SIZES) -> int:
    """The largest of ``sizes`` that divides the input features of every linear layer of ``model``.

    A group never spans two rows, so it must divide each weight's row: the laptop model's MLP is
    352 wide (``down_proj``'s input), and 352 = 2 x 128 + 96 = 5 x 64 + 32 = 11 x 32.
    """
    widths = {layer.in_features for layer in linear_layers(model).values()}
    fits = [g for g in sizes if all(w % g == 0 for w in widths)]
    if not fits:
        raise ValueError(f"no group size in {sizes} divides every layer's input features {sorted(widths)}")
    return fits[0]


def study_settings(group_size: int) -> list[Setting]:
    """Round to nearest at 8, 4, 3 and 2 bits per tensor, per channel and per group; GPTQ at 4 and 3 bits per group
    and per channel; W8A8 with each calibration, and with LLM.int8's outlier features in float."""
    rtn = [Setting(b, g, per_tensor=t) for b in (8, 4, 3, 2)
           for g, t in ((None, True), (None, False), (group_size, False))]
    gptq = [Setting(b, g, "gptq") for b in (4, 3) for g in (group_size, None)]
    act = [Setting(8, method="w8a8", calibration=c) for c in ("minmax", "percentile", "mse")]
    return rtn + gptq + act + [Setting(8, method="w8a8", threshold=6.0)]


def task_settings(group_size: int) -> set[str]:
    """The names of the settings that are also scored on chapter 05's tasks (besides fp32)."""
    return {s.name for s in (Setting(8), Setting(4, group_size), Setting(4, group_size, "gptq"), Setting(3, group_size),
                             Setting(3, group_size, "gptq"), Setting(2, group_size),
                             Setting(8, method="w8a8"), Setting(8, method="w8a8", threshold=6.0))}


def accuracy_study(cfg: Config, models: dict) -> dict:
    """``{"group_size", "calibration_blocks", "held_out_blocks", "tasks", "rows": {model name: perplexity_grid rows}}``.

    ``models``: ``{name: TrainedModel}``; ``instruct`` is asked in its chat format, as chapter 06 asks it.
    A row of a setting in ``task_settings`` also has each task's primary metric (``task/<name>``) and
    item count (``n/<name>``).
    """
    from ..evaluation import evaluate, get_task
    from ..instruction import SYSTEM

    group_size = group_size_for(next(iter(models.values())).model)
    held_out = zoo.get("pretrain-data", cfg)["eval"]
    calibration = calibration_batches(cfg, CALIBRATION_BLOCKS)
    scored = task_settings(group_size)
    rows = {}
    for name, trained in models.items():
        chat = name == "instruct"

        def tasks(model, setting):
            if setting is not None and setting.name not in scored:
                return {}
            report = evaluate(model, trained.tokenizer, list(TASKS), config=cfg, limit=TASK_LIMIT, batch_size=32,
                              chat=chat, system=SYSTEM if chat else None)["results"]
            return {**{f"task/{t}": r[r["primary"]] for t, r in report.items()},
                    **{f"n/{t}": r["n"] for t, r in report.items()}}

        rows[name] = perplexity_grid(trained.model.eval(), held_out, calibration, study_settings(group_size),
                                     extra=tasks, progress=True)
    return {"group_size": group_size, "calibration_blocks": CALIBRATION_BLOCKS, "held_out_blocks": len(held_out),
            "tasks": {t: get_task(t).primary for t in TASKS}, "rows": rows}


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


@zoo.register("quantization-study", load=_load, deps=("pretrain-data", "base", "instruct"),
              sections=("run", "model", "world", "data", "pretrain", "curation", "instruct"),
              description="chapter 08: held-out perplexity and task scores of base and instruct, every way quantized")
def _build_study(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    results = accuracy_study(cfg, {name: zoo.get(name, cfg) for name in ("base", "instruct")})
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
