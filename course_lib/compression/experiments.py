"""Chapter 09's experiments, each a zoo artifact the notebook reads in a second (``results.json``):

- ``kd-students`` (:func:`kd_comparison`, :func:`temperature_sweep`, :func:`kd_speed`): the
  ``compression`` section's student trained directly and by distillation from ``base``, on
  the same packed blocks ``base`` read, for the same steps and seeds; held-out perplexity of
  each, the paired gap with a 95% t-interval over seeds; the temperature sweep; the time
  per step with the teacher on the fly against cached top-k logits.
- ``pruning-sweep`` (:func:`pruning_sweep`): ``base`` pruned to each of ``compression.sparsities``,
  unstructured (global magnitude) and structured (that share of every layer's heads, at most
  all but one, and FFN neurons, by the ``importance`` score), and by whole layers
  (``compression.drop_layers``), each smaller model beside unstructured pruning with as many
  non-zero parameters; held-out perplexity before and after the recovery fine-tune, with
  the parameters left.
- ``kd-sequence`` (:func:`sequence_comparison`): sequence-level distillation of ``instruct``
  into ``instruct`` pruned to half its layers (the least important by ``compression.importance``):
  fine-tuned on the teacher's answers against on the true ones.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import zoo
from ..config import Config, TrainConfig
from ..models import count_parameters
from ..packing import perplexity
from .distillation import cache_teacher, new_student, sequence_distill, teacher_answers, train_student
from .pruning import magnitude_prune, nonzero_parameters, prunable_weights, recover
from .structured import structured_prune


def paired_interval(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """The mean of ``a[i] - b[i]`` and its ``level`` t-interval over the pairs (seeds): ``{"mean", "low", "high", "n"}``."""
    from scipy import stats

    gaps = np.asarray(a, float) - np.asarray(b, float)
    if len(gaps) < 2:
        return {"mean": float(gaps.mean()), "low": None, "high": None, "n": len(gaps)}
    half = stats.t.ppf((1 + level) / 2, len(gaps) - 1) * gaps.std(ddof=1) / np.sqrt(len(gaps))
    return {"mean": float(gaps.mean()), "low": float(gaps.mean() - half), "high": float(gaps.mean() + half),
            "n": len(gaps)}


def kd_comparison(cfg: Config, base, data: dict, cache) -> dict:
    """Direct and distilled students at each of ``compression.seeds`` seeds: held-out perplexity of each, and the gap.

    The seed draws the student's initial weights and the data order; both students of a
    seed share them. ``cache``: the teacher's cached logits on ``data["train"]``.
    """
    rows = []
    for s in range(cfg.compression.seeds):
        seed = cfg.run.seed + s
        direct = new_student(cfg, base.tokenizer, seed=seed)
        train_student(cfg, direct, data["train"], seed=seed)
        distilled = new_student(cfg, base.tokenizer, seed=seed)
        train_student(cfg, distilled, cache, seed=seed)
        rows.append({"seed": seed, "direct": perplexity(direct, data["eval"]),
                     "distilled": perplexity(distilled, data["eval"])})
    gap = paired_interval([r["direct"] for r in rows], [r["distilled"] for r in rows])
    return {"rows": rows, "gap": gap, "student_parameters": count_parameters(direct),
            "teacher_parameters": count_parameters(base.model), "teacher": perplexity(base.model, data["eval"])}


def temperature_sweep(cfg: Config, base, data: dict, cache, done: dict | None = None,
                      alphas: tuple[float, ...] = (0.5, 1.0)) -> list[dict]:
    """The distilled student's held-out perplexity at each of ``compression.temperatures`` and each soft-term
    weight of ``alphas`` (Hinton's even mix, and the teacher alone), seed ``run.seed``:
    ``[{"alpha", "temperature", "perplexity"}]``.

    ``done``: ``{(alpha, temperature): perplexity}`` already measured at that seed (reused, not retrained).
    """
    rows = []
    for alpha in alphas:
        for T in cfg.compression.temperatures:
            if done and (alpha, T) in done:
                rows.append({"alpha": alpha, "temperature": T, "perplexity": done[alpha, T]})
                continue
            student = new_student(cfg, base.tokenizer, seed=cfg.run.seed)
            train_student(cfg, student, cache, temperature=T, alpha=alpha, seed=cfg.run.seed)
            rows.append({"alpha": alpha, "temperature": T, "perplexity": perplexity(student, data["eval"])})
    return rows


def kd_speed(cfg: Config, base, data: dict, cache, cache_seconds: float, steps: int = 20) -> dict:
    """Seconds per step of distillation with the teacher run on every batch against cached top-k logits.

    Both over ``steps`` steps from the same student; ``cache`` took ``cache_seconds`` (one
    teacher pass over ``data["train"]``); ``break_even_steps`` is the run length from which
    caching is faster, and ``faster`` says which is, for a run of ``compression.student_steps``.
    """
    short = replace(cfg, compression=replace(cfg.compression, student_steps=steps))
    per_step = {}
    for name, blocks, teacher in (("on_the_fly", data["train"], base.model), ("cached", cache, None)):
        student = new_student(short, base.tokenizer, seed=cfg.run.seed)
        start = time.perf_counter()
        train_student(short, student, blocks, teacher=teacher, seed=cfg.run.seed)
        per_step[name] = (time.perf_counter() - start) / steps
    saved = per_step["on_the_fly"] - per_step["cached"]
    return {"seconds_per_step": per_step, "cache_seconds": cache_seconds, "cache_bytes": cache.nbytes(),
            "top_k": cfg.compression.top_k, "break_even_steps": cache_seconds / saved if saved > 0 else None,
            "faster": "cached" if saved > 0 and cfg.compression.student_steps * saved > cache_seconds else "on_the_fly"}


def _sweep_row(cfg: Config, kind: str, sparsity: float, model, data: dict, masks=None) -> dict:
    row = {"kind": kind, "sparsity": sparsity, "parameters": count_parameters(model),
           "nonzero": nonzero_parameters(model), "perplexity": perplexity(model, data["eval"])}
    if cfg.compression.recovery_steps:
        recover(model, data["train"], cfg, masks=masks, seed=cfg.run.seed)
        row["recovered"] = perplexity(model, data["eval"])
    return row


def calibration_blocks(cfg: Config, data: dict, batch_size: int = 8) -> list[dict]:
    """The first ``compression.calibration_blocks`` training blocks in batches: what importance scores are measured on."""
    n = cfg.compression.calibration_blocks
    return [{k: torch.stack([data["train"][i][k] for i in range(j, min(j + batch_size, n))])
             for k in ("input_ids", "position_ids")} for j in range(0, n, batch_size)]


def pruning_sweep(cfg: Config, base, data: dict) -> list[dict]:
    """One row per pruned model: its kind, parameters (all and non-zero), held-out perplexity, and after
    ``compression.recovery_steps`` of fine-tuning (``recovered``).

    - ``"unstructured"``: global magnitude pruning at each of ``compression.sparsities``;
    - ``"structured"``: ``min(s, 1 - 1/H)`` of every layer's heads and ``s`` of its FFN neurons removed
      (each sparsity above 0);
    - ``"layers"``: the ``compression.drop_layers`` least important whole layers removed;
    - ``"matched"``: for each structured and layers row, unstructured pruning that leaves the same
      number of non-zero parameters (``matches`` names the row): quality at an equal parameter count.

    Importance by ``compression.importance`` on :func:`calibration_blocks`.
    """
    c = cfg.compression
    calibration = calibration_blocks(cfg, data)
    heads, n_layers = base.model.config.num_attention_heads, base.model.config.num_hidden_layers
    prunable = sum(w.numel() for w in prunable_weights(base.model).values())
    rows, smaller = [], []
    for s in c.sparsities:
        pruned, masks = magnitude_prune(base.model, s, scope="global")
        rows.append(_sweep_row(cfg, "unstructured", s, pruned, data, masks))
        if s == 0:
            continue  # nothing to remove: the unstructured row at 0 is the unpruned model
        model, _ = structured_prune(base.model, calibration, head_share=min(s, 1 - 1 / heads), neuron_share=s,
                                    score=c.importance)
        smaller.append((("structured", s), model))
    for k in c.drop_layers:
        if not 0 < k < n_layers:
            raise ValueError(f"compression.drop_layers has {k}: the model has {n_layers} layers, so between 1 and "
                             f"{n_layers - 1} can go")
        model, removed = structured_prune(base.model, calibration, layers=k, score=c.importance)
        smaller.append((("layers", k / n_layers), model))
    for (kind, s), model in smaller:
        extra = {"heads": model.config.num_attention_heads, "intermediate": model.config.intermediate_size,
                 "layers": model.config.num_hidden_layers}
        rows.append(_sweep_row(cfg, kind, s, model, data) | extra)
        gone = count_parameters(base.model) - rows[-1]["parameters"]
        if gone:
            share = gone / prunable
            pruned, masks = magnitude_prune(base.model, share, scope="global")
            rows.append(_sweep_row(cfg, "matched", share, pruned, data, masks) | {"matches": f"{kind} {s:g}"})
    return rows


def sequence_rows(cfg: Config) -> list[dict]:
    """``compression.sequence_rows`` of ``instruct``'s training conversations, spread over the clusters: the
    instructions a teacher answers for sequence-level distillation."""
    from ..instruction import training_conversations

    rows, n = training_conversations(cfg), cfg.compression.sequence_rows
    return rows[:: max(1, len(rows) // n)][:n]


def sequence_train_config(cfg: Config) -> TrainConfig:
    """The fine-tune of sequence-level distillation: ``compression.sequence_steps`` steps of 16 rows at 1e-3."""
    steps = cfg.compression.sequence_steps
    return TrainConfig(max_steps=steps, batch_size=16, lr=1e-3, warmup_steps=steps // 10, weight_decay=0.0,
                       eval_every=0, progress=False)


def sequence_comparison(cfg: Config, instruct, student) -> dict:
    """Sequence-level KD: copies of ``student`` (a smaller model that already speaks the chat format) fine-tuned on
    the teacher's greedy answers and on the true answers of the same ``compression.sequence_rows`` instruction
    rows, same steps and seed, beside the student as it came (``untuned``).

    Scored by exact match (``instruction.exact_match``) on chapter 06's test rows, and by how
    often the student's answer equals the teacher's (``agreement``).
    """
    from ..instruction import add_chat_template, exact_match
    from ..instruction.experiments import eval_rows
    from ..instruction.clusters import CLUSTERS

    tokenizer = add_chat_template(instruct.tokenizer)
    rows = sequence_rows(cfg)
    start = time.perf_counter()
    distilled_rows = teacher_answers(instruct.model, tokenizer, rows)
    answer_seconds = time.perf_counter() - start
    test = eval_rows(cfg, CLUSTERS)
    teacher_scored = exact_match(instruct.model, tokenizer, test)
    train_cfg = sequence_train_config(cfg)
    out = {"teacher_em": float(np.mean([s["correct"] for s in teacher_scored])), "rows": len(rows),
           "teacher_answered": len(distilled_rows), "answer_seconds": answer_seconds, "n_test": len(test),
           "student_parameters": count_parameters(student), "teacher_parameters": count_parameters(instruct.model)}
    for name, train_rows in (("untuned", None), ("true_answers", rows), ("teacher_answers", distilled_rows)):
        model = copy.deepcopy(student)
        if train_rows is not None:
            sequence_distill(model, tokenizer, train_rows, train_cfg, seed=cfg.run.seed,
                             max_length=cfg.model.max_seq_len)
        scored = exact_match(model, tokenizer, test)
        out[name] = {"em": float(np.mean([s["correct"] for s in scored])),
                     "agreement": float(np.mean([s["output"] == t["output"] for s, t in zip(scored, teacher_scored)]))}
    return out


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


def _save(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float), encoding="utf-8")


_SECTIONS = ("run", "model", "world", "data", "pretrain", "curation", "compression")


@zoo.register("kd-students", load=_load, sections=_SECTIONS, deps=("base", "pretrain-data"),
              description="chapter 09: distilled against directly trained students (seeds), temperature sweep, speed")
def _build_students(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    base, data = zoo.get("base", cfg), zoo.get("pretrain-data", cfg)
    cache_start = time.perf_counter()
    cache = cache_teacher(base.model, data["train"], cfg.compression.top_k)
    speed = kd_speed(cfg, base, data, cache, time.perf_counter() - cache_start)
    comparison = kd_comparison(cfg, base, data, cache)
    done = {(cfg.compression.alpha, cfg.compression.temperature): comparison["rows"][0]["distilled"]}
    sweep = temperature_sweep(cfg, base, data, cache, done)
    _save({"comparison": comparison, "temperatures": sweep, "speed": speed,
           "seconds": time.perf_counter() - start}, out)


@zoo.register("pruning-sweep", load=_load, sections=_SECTIONS, deps=("base", "pretrain-data"),
              description="chapter 09: perplexity against sparsity, unstructured and structured, before and after recovery")
def _build_sweep(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    rows = pruning_sweep(cfg, zoo.get("base", cfg), zoo.get("pretrain-data", cfg))
    _save({"rows": rows, "seconds": time.perf_counter() - start}, out)


@zoo.register("kd-sequence", load=_load, sections=_SECTIONS + ("instruct", "instruct_experiments"),
              deps=("base", "pretrain-data", "instruct"),
              description="chapter 09: instruct pruned to half its layers, recovered on instruct's answers or the true ones")
def _build_sequence(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    instruct, data = zoo.get("instruct", cfg), zoo.get("pretrain-data", cfg)
    layers = instruct.model.config.num_hidden_layers
    student, removed = structured_prune(instruct.model, calibration_blocks(cfg, data), layers=max(1, layers // 2),
                                        score=cfg.compression.importance)
    results = sequence_comparison(cfg, instruct, student)
    _save(results | {"removed_layers": removed["layers"], "seconds": time.perf_counter() - start}, out)
