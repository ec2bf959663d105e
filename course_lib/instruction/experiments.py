"""Chapter 06's experiments: short SFT runs from ``base``, each scored on rows it never trained on.

Four questions of the survey (§4), each asked with the same small recipe,
:func:`short_sft` (``instruct_experiments.steps`` steps of the course loop from a
fresh copy of ``base``, response-only loss), so that only the one thing varied differs:

- :func:`cluster_count`: FLAN's figure. Hold one cluster out (``held_out_cluster``),
  tune on the first k of the others, score the held-out cluster zero-shot; several
  seeds per k (the seed draws the data order and which rows fill each task's cap).
- :func:`template_diversity`: 1, a few or all training templates per task; scored on
  the held-out templates (``test_template``), with the spread over those templates.
- :func:`cross_lingual`: tune on English only, Korean only or both; score each language.
- :func:`lora_vs_full`: LoRA (rank r on every linear layer of the blocks) against full
  fine-tuning: exact match, trainable parameters, seconds and peak memory per step.

Scores are exact match (``instruct.exact_match``) on at most ``eval_per_cluster`` test
rows per cluster and language, and by the loss on the reference responses (:func:`response_loss`),
which separates short runs that exact match scores alike. Four zoo artifacts keep the tables
(``results.json``), so the notebook reads them in a second: ``instruct-clusters`` (the first),
``instruct-ablations`` (the next two), ``instruct-lora`` (the last, with longer runs:
``lora_steps``) and ``instruct-harness`` (:func:`harness_comparison`: ``base`` against
``instruct`` on chapter 05's harness).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import zoo
from ..config import Config, TrainConfig
from ..tokenization import CHAT_TOKENS
from .clusters import CLUSTERS, instruction_examples, mix
from .formatting import add_chat_template, chat_example
from .instruct import exact_match
from .lora import apply_lora, train_token_rows, trainable_parameters
from .sft import sft_own

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def short_sft(base, rows: list[dict], cfg: Config, *, seed: int = 0, lora_rank: int = 0,
              lr: float | None = None, steps: int | None = None) -> tuple[torch.nn.Module, dict]:
    """A fresh copy of ``base.model`` tuned on chat ``rows`` for ``steps`` (``instruct_experiments.steps``) steps.

    ``lora_rank`` > 0 tunes LoRA adapters of that rank (alpha = 2 r) on every linear layer of
    the blocks, and the embedding rows of the chat tokens (``lora.train_token_rows``), instead
    of every weight, and merges them afterwards. Returns the model and ``{"seconds_per_step",
    "trainable", "total"}`` (parameters).
    """
    p = cfg.instruct_experiments
    model, tokenizer = copy.deepcopy(base.model), add_chat_template(base.tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainable, total = trainable_parameters(model)
    if lora_rank:
        apply_lora(model, LORA_TARGETS, r=lora_rank, alpha=2 * lora_rank)
        token_rows = train_token_rows(model, [tokenizer.convert_tokens_to_ids(t) for t in CHAT_TOKENS])
        adapters, total = trainable_parameters(model)
        trainable = adapters - model.get_input_embeddings().weight.numel() + token_rows
    examples = [chat_example(tokenizer, r["messages"], r["id"]) for r in rows]
    examples = [e for e in examples if len(e["input_ids"]) <= cfg.model.max_seq_len]
    steps = steps or p.steps
    train_cfg = TrainConfig(max_steps=steps, batch_size=p.batch_size, lr=lr or p.lr, warmup_steps=steps // 10,
                            weight_decay=0.0, eval_every=0, log_every=max(1, steps // 10), progress=False)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sft_own(model, examples, train_cfg, output_dir=out, seed=seed, resume=False)
        seconds = time.perf_counter() - start
    if lora_rank:
        from .lora import merge_lora

        merge_lora(model)
    return model, {"seconds_per_step": seconds / steps, "trainable": trainable, "total": total}


@torch.no_grad()
def response_loss(model, tokenizer, rows: list[dict], *, batch_size: int = 32) -> list[float]:
    """Each row's mean loss (nats per token) on its reference response, the prompt given: lower is better.

    Exact match moves in steps of a whole answer; this moves with every token a short run
    gets closer to, so it separates runs that exact match scores alike.
    """
    from .sft import pad_rows

    model.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        batch = pad_rows([chat_example(tokenizer, r["messages"], r["id"]) for r in rows[i : i + batch_size]],
                         tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, reduction="none")
        scored = (labels != -100).sum(1)
        out += (nll.sum(1) / scored).tolist()
    return out


def _score(model, tokenizer, rows: list[dict]) -> dict:
    """Exact match and response loss of ``model`` on ``rows``: overall, per language, and the per-row records."""
    scored = exact_match(model, tokenizer, rows)
    losses = response_loss(model, tokenizer, rows)
    out = {"em": float(np.mean([s["correct"] for s in scored])) if scored else None, "n": len(scored),
           "loss": float(np.mean(losses)) if losses else None}
    for lang in ("en", "ko"):
        mine = [s["correct"] for s in scored if s["lang"] == lang]
        out[f"em_{lang}"] = float(np.mean(mine)) if mine else None
        mine = [x for x, s in zip(losses, scored) if s["lang"] == lang]
        out[f"loss_{lang}"] = float(np.mean(mine)) if mine else None
    return out | {"rows": scored}


def eval_rows(cfg: Config, clusters, split: str = "test", langs=("en", "ko"), *, every: bool = False) -> list[dict]:
    """The first ``eval_per_cluster`` rows of ``split`` per cluster and language (all of them if ``every``)."""
    limit = None if every else cfg.instruct_experiments.eval_per_cluster
    rows = []
    for c in clusters:
        for lang in langs:
            rows += instruction_examples(cfg, clusters=[c], split=split, langs=[lang], seed=cfg.run.seed)[:limit]
    return rows


def _train_rows(cfg: Config, clusters, *, seed: int, langs=("en", "ko"), training_templates: int | None = None):
    p = cfg.instruct_experiments
    examples = instruction_examples(cfg, clusters=clusters, split="train", langs=langs, per_task_cap=p.per_task_cap,
                                    seed=seed, training_templates=training_templates)
    return mix(examples, cap=p.per_task_cap, seed=seed)


def row_options(cfg: Config, rows: list[dict]) -> list[list[str] | None]:
    """The answer options of each row's source (entailment's three labels, paraphrase's yes/no), or None."""
    from .clusters import task_sources

    options = {}
    for task in {r["task"] for r in rows}:
        for src in task_sources(cfg, task):
            if "options" in src.slots and "\n" not in src.slots["options"]:
                options[(task, src.lang, src.key)] = src.slots["options"].split(", ")
    return [options.get((r["task"], r["lang"], r["source_id"])) for r in rows]


def rank_classification(model, tokenizer, rows: list[dict], options: list[list[str]]) -> list[bool]:
    """FLAN's scoring of a classification task: is the answer the option the model finds most probable?

    Each option is scored as the assistant's whole reply (the option and ``<|end|>``) after
    the row's prompt, by log-likelihood; the most probable one is the model's choice. Unlike
    exact match, a model that has not learned the label words yet still ranks them.
    """
    from ..evaluation.scoring import loglikelihood
    from .formatting import END_TOKEN, render_chat

    pairs = [(render_chat(r["messages"][:-1], add_generation_prompt=True), o + END_TOKEN)
             for r, opts in zip(rows, options) for o in opts]
    scores = iter(ll for ll, _ in loglikelihood(model, tokenizer, pairs, batch_size=32))
    picked = []
    for r, opts in zip(rows, options):
        lls = [next(scores) for _ in opts]
        picked.append(opts[max(range(len(opts)), key=lls.__getitem__)] == r["answer"])
    return picked


def cluster_count(cfg: Config, base) -> list[dict]:
    """The held-out cluster's score (all its test rows) after tuning on the first k other clusters, per k and seed.

    ``em``: exact match of the generated reply; ``acc`` (when the cluster's tasks have
    options): rank classification, as FLAN scores classification tasks, with ``chance``.
    """
    p = cfg.instruct_experiments
    others = [c for c in CLUSTERS if c != p.held_out_cluster]
    held_out = eval_rows(cfg, [p.held_out_cluster], every=True)
    options = row_options(cfg, held_out)
    ranked = [i for i, o in enumerate(options) if o]
    chance = float(np.mean([1 / len(options[i]) for i in ranked])) if ranked else None
    table = []
    runs = [(k, s) for k in p.cluster_counts for s in range(p.seeds)]
    for k, s in tqdm(runs, desc="clusters", unit="run"):
        model, stats = short_sft(base, _train_rows(cfg, others[:k], seed=cfg.run.seed + s), cfg, seed=cfg.run.seed + s)
        score = _score(model, base.tokenizer, held_out)
        right = rank_classification(model, base.tokenizer, [held_out[i] for i in ranked], [options[i] for i in ranked])
        acc = {"acc": float(np.mean(right)) if ranked else None, "chance": chance}
        for lang in ("en", "ko"):
            mine = [c for i, c in zip(ranked, right) if held_out[i]["lang"] == lang]
            acc[f"acc_{lang}"] = float(np.mean(mine)) if mine else None
        table.append({"clusters": k, "seed": cfg.run.seed + s, "trained_on": others[:k],
                      **{m: score[m] for m in ("em", "em_en", "em_ko", "loss", "loss_en", "loss_ko", "n")}, **acc})
    return table


def template_diversity(cfg: Config, base) -> list[dict]:
    """Exact match on held-out templates after tuning with n training templates per task, and its spread."""
    p = cfg.instruct_experiments
    clusters = [c for c in CLUSTERS if c != p.held_out_cluster]
    rows = eval_rows(cfg, clusters, split="test_template")
    table = []
    for n in tqdm(p.template_counts, desc="templates", unit="run"):
        model, _ = short_sft(base, _train_rows(cfg, clusters, seed=cfg.run.seed, training_templates=n), cfg,
                             seed=cfg.run.seed)
        score = _score(model, base.tokenizer, rows)
        by_template: dict[str, list[bool]] = {}
        for r, s in zip(rows, score["rows"]):
            by_template.setdefault(r["template_id"], []).append(s["correct"])
        per_template = {t: float(np.mean(v)) for t, v in by_template.items()}
        table.append({"templates": n, "em": score["em"], "em_en": score["em_en"], "em_ko": score["em_ko"],
                      "loss": score["loss"], "n": score["n"], "per_template": per_template,
                      "spread": float(np.std(list(per_template.values())))})
    return table


def cross_lingual(cfg: Config, base) -> list[dict]:
    """Exact match per language after tuning on English only, Korean only and both (same steps)."""
    p = cfg.instruct_experiments
    clusters = [c for c in CLUSTERS if c != p.held_out_cluster]
    rows = eval_rows(cfg, clusters)
    table = []
    for langs in tqdm((("en",), ("ko",), ("en", "ko")), desc="languages", unit="run"):
        model, _ = short_sft(base, _train_rows(cfg, clusters, seed=cfg.run.seed, langs=langs), cfg, seed=cfg.run.seed)
        score = _score(model, base.tokenizer, rows)
        table.append({"tuned_on": "+".join(langs), "em_en": score["em_en"], "em_ko": score["em_ko"],
                      "loss_en": score["loss_en"], "loss_ko": score["loss_ko"], "n": score["n"]})
    return table


def peak_step_memory(model, batch: dict) -> int:
    """Peak bytes the CPU allocator holds during one training step of ``batch`` (forward, backward, AdamW), measured.

    ``torch.profiler`` records every allocation and free; replaying them in order gives the
    memory in use at each moment, and its maximum is the step's peak above what was already
    held (the weights). The first AdamW step allocates the optimizer's two moments per
    trainable number, so they are in it, as are the gradients and the activations.
    """
    from torch.profiler import ProfilerActivity, profile

    model.train()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
        model(**batch).loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    in_use = np.cumsum([e.self_cpu_memory_usage for e in events]) if events else np.zeros(1)
    return int(max(0, in_use.max()))


def lora_vs_full(cfg: Config, base) -> list[dict]:
    """Full fine-tuning against LoRA of each rank: exact match, trainable share, seconds and peak bytes per step."""
    from .sft import pad_rows

    p = cfg.instruct_experiments
    clusters = [c for c in CLUSTERS if c != p.held_out_cluster]
    rows, train = eval_rows(cfg, clusters), _train_rows(cfg, clusters, seed=cfg.run.seed)
    tokenizer = add_chat_template(base.tokenizer)
    batch = pad_rows([chat_example(tokenizer, r["messages"], r["id"]) for r in train[: p.batch_size]],
                     tokenizer.pad_token_id)
    table = []
    for rank in tqdm((0, *p.lora_ranks), desc="lora", unit="run"):
        probe = copy.deepcopy(base.model)
        if rank:
            apply_lora(probe, LORA_TARGETS, r=rank, alpha=2 * rank)
        peak = peak_step_memory(probe, batch)
        model, stats = short_sft(base, train, cfg, seed=cfg.run.seed, lora_rank=rank, lr=p.lora_lr if rank else None,
                                 steps=p.lora_steps)
        score = _score(model, tokenizer, rows)
        table.append({"method": f"LoRA r={rank}" if rank else "full", "rank": rank, **stats,
                      "share": stats["trainable"] / stats["total"], "peak_step_bytes": peak,
                      "em": score["em"], "em_en": score["em_en"], "em_ko": score["em_ko"], "loss": score["loss"],
                      "n": score["n"]})
    return table


# chapter 05's tasks of the families instruct was tuned on (every task but perplexity and KorQuAD), both languages
HARNESS_TASKS = ("cloze_en", "cloze_ko", "summarization_en", "summarization_ko", "translation_en_ko", "translation_ko_en",
                 "qa_closed_en", "qa_closed_ko", "multiple_choice_en", "multiple_choice_ko", "false_premise_en",
                 "false_premise_ko", "unanswerable_en", "unanswerable_ko", "qa_open_en", "qa_open_ko", "entailment_en",
                 "entailment_ko", "arithmetic_en", "arithmetic_ko")


def harness_comparison(cfg: Config, base, instruct) -> dict:
    """``base`` (plain prompts) and ``instruct`` (the same prompts in its chat format) on chapter 05's harness, zero-shot.

    ``{"<model>/<split>": evaluate's report}`` for the ``test`` (held-out facts) and
    ``test_template`` (held-out question phrasings) splits, at most ``harness_limit`` items
    per task, with each task's first three samples; ``means``: the mean primary metric per
    model, split and language (a translation counts for its source language).
    """
    from ..evaluation import evaluate
    from .clusters import SYSTEM

    p = cfg.instruct_experiments
    reports, means = {}, {}
    for split in ("test", "test_template"):
        for name, m, chat in (("base", base, False), ("instruct", instruct, True)):
            report = evaluate(m.model, m.tokenizer, list(HARNESS_TASKS), config=cfg, split=split, limit=p.harness_limit,
                              batch_size=32, chat=chat, system=SYSTEM if chat else None, samples=True, progress=True)
            report["samples"] = {t: items[:3] for t, items in report["samples"].items()}
            reports[f"{name}/{split}"] = report
            for lang in ("en", "ko"):
                values = [r[r["primary"]] for r in report["results"].values() if r["lang"].split("-")[0] == lang]
                means[f"{name}/{split}/{lang}"] = float(np.mean(values))
    return {"reports": reports, "means": means}


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


def _save(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float), encoding="utf-8")


_SECTIONS = ("run", "model", "world", "data", "pretrain", "curation", "instruct_experiments")


@zoo.register("instruct-clusters", load=_load, sections=_SECTIONS, deps=("base",),
              description="chapter 06: held-out-cluster score against the number of training clusters (seeds)")
def _build_clusters(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    table = cluster_count(cfg, zoo.get("base", cfg))
    _save({"cluster_count": table, "seconds": time.perf_counter() - start}, out)


@zoo.register("instruct-ablations", load=_load, sections=_SECTIONS, deps=("base",),
              description="chapter 06: template diversity, cross-lingual transfer, LoRA against full fine-tuning")
def _build_ablations(cfg: Config, out: Path) -> None:
    base, results = zoo.get("base", cfg), {}
    for name, run in (("template_diversity", template_diversity), ("cross_lingual", cross_lingual)):
        start = time.perf_counter()
        results[name] = run(cfg, base)
        results[f"{name}_seconds"] = time.perf_counter() - start
    _save(results, out)


@zoo.register("instruct-lora", load=_load, sections=_SECTIONS, deps=("base",),
              description="chapter 06: LoRA against full fine-tuning (quality, trainable parameters, time, memory)")
def _build_lora(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    table = lora_vs_full(cfg, zoo.get("base", cfg))
    _save({"lora_vs_full": table, "seconds": time.perf_counter() - start}, out)


@zoo.register("instruct-harness", load=_load, sections=_SECTIONS + ("instruct",), deps=("base", "instruct"),
              description="chapter 06: base and instruct zero-shot on chapter 05's harness, both test splits")
def _build_harness(cfg: Config, out: Path) -> None:
    start = time.perf_counter()
    results = harness_comparison(cfg, zoo.get("base", cfg), zoo.get("instruct", cfg))
    _save(results | {"seconds": time.perf_counter() - start}, out)
