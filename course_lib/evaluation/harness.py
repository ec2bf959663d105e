"""``evaluate``: run tasks on a model and aggregate their metrics; loading models, tables, JSON.

The result is a plain dict (JSON-ready)::

    {"results": {task: {"group", "lang", "kind", "n", "num_fewshot", "primary", <metric>: value, ...}},
     "groups":  {group: {"score": mean primary metric of its tasks, "tasks": [...]}},
     "config":  {"split", "limit", "num_fewshot", "seed", "batch_size"},
     "samples": {task: [per-item records]}}           # only with samples=True

Scores are fractions in [0, 1] (chrF and BLEU too); perplexities and bits per byte are
lower-is-better and stay out of the group averages.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from course_lib.world.tasks import SPLITS

from . import metrics as M
from .scoring import encode, generate_until, loglikelihood, loglikelihood_rolling
from .tasks import LOWER_IS_BETTER, Task, fewshot_examples, resolve_tasks

GENERATION_MARGIN = 8  # tokens allowed beyond the longest training answer


def evaluate(
    model,
    tokenizer,
    tasks,
    *,
    config=None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 16,
    num_fewshot: int = 0,
    seed: int = 0,
    max_new_tokens: int | None = None,
    samples: bool = False,
    progress: bool = False,
    chat: bool = False,
    system: str | Mapping[str, str] | None = None,
) -> dict:
    """Score ``model`` (causal or seq2seq) with ``tokenizer`` on ``tasks``.

    Args:
        tasks: names, group names, globs, ``"all"`` or ``Task`` objects (list or comma-separated).
        config: the ``Config`` whose world supplies the data (default: the current profile's).
        split: ``test`` (held-out facts), ``test_template`` (held-out phrasings) or ``train``.
        limit: score only the first ``limit`` items of each task.
        num_fewshot: solved examples from the ``train`` split put before each question.
        seed: seeds the draw of those examples (one ``random.Random(seed)`` per task).
        max_new_tokens: generation budget; default: the longest ``train`` answer of the task
            in tokens plus ``GENERATION_MARGIN``.
        samples: also return every item's prompt, target, log-likelihoods or output.
        progress: show a tqdm bar over the tasks.
        chat: ask in the tokenizer's chat format (lm-eval's ``--apply_chat_template``), for an
            instruction-tuned model: the whole prompt, shots included, is one user turn, the
            answer is the assistant's turn (scored from its first token, with no delimiter
            before it), and generation also stops at the model's end-of-turn token
            (``model.generation_config.eos_token_id``).
        system: a system message for ``chat``: one text, or one per language (``{"en": ..., "ko": ...}``,
            by the language of the question).
    """
    _check_settings(split, limit, batch_size, num_fewshot, max_new_tokens)
    if chat and not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat=True: the tokenizer has no chat_template (is this an instruction-tuned model?)")
    if config is None:
        from course_lib.config import load_config

        config = load_config()
    settings = {"split": split, "limit": limit, "num_fewshot": num_fewshot, "seed": seed, "batch_size": batch_size,
                "chat": chat}
    out = {"results": {}, "groups": {}, "samples": {}, "config": settings}
    for task in tqdm(resolve_tasks(tasks), desc="tasks", unit="task", disable=not progress):
        rows = task.rows(config, split)[:limit]
        if task.kind == "perplexity":  # documents take no prompt
            pool, k, contexts = [], 0, []
        else:
            pool = task.rows(config, "train")
            k, rng = min(num_fewshot, len(pool)), random.Random(seed)
            contexts = [task.fewshot_context(r, fewshot_examples(pool, k, rng)) for r in rows]
            if chat:
                contexts = [chat_prompt(tokenizer, c, system, task.lang.split("-")[0]) for c in contexts]
                task = dataclasses.replace(task, target_delimiter="")
        if task.kind == "generate":
            budget = max_new_tokens or _generation_budget(task, pool, tokenizer)
            values, items = _generate(model, tokenizer, task, rows, contexts, batch_size, budget)
        else:
            score = {"multiple_choice": _multiple_choice, "cloze": _cloze, "perplexity": _perplexity}[task.kind]
            values, items = score(model, tokenizer, task, rows, contexts, batch_size)
        out["results"][task.name] = {"group": task.group, "lang": task.lang, "kind": task.kind, "n": len(rows),
                                     "num_fewshot": k, "primary": task.primary, **values}
        if samples:
            out["samples"][task.name] = items
    out["groups"] = group_scores(out["results"])
    if not samples:
        del out["samples"]
    return out


def _check_settings(split, limit, batch_size, num_fewshot, max_new_tokens) -> None:
    """A ``ValueError`` or ``TypeError`` naming the first setting of ``evaluate`` that is off."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    for name, value, least, optional in (("limit", limit, 0, True), ("batch_size", batch_size, 1, False),
                                         ("num_fewshot", num_fewshot, 0, False),
                                         ("max_new_tokens", max_new_tokens, 1, True)):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
        if value < least:
            raise ValueError(f"{name}: expected at least {least}, got {value}")


def chat_prompt(tokenizer, text: str, system: str | Mapping[str, str] | None = None, lang: str = "en") -> str:
    """``text`` as the user's turn of a chat (after ``system``'s message, if any), ending where the assistant speaks."""
    if isinstance(system, Mapping):
        if lang not in system:
            raise ValueError(f"system: no message for language {lang!r} (it has {sorted(system)})")
        system = system[lang]
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def group_scores(results: dict) -> dict:
    """Mean primary metric per group, over its tasks whose primary metric is higher-is-better and defined."""
    groups: dict[str, dict] = {}
    for name, r in results.items():
        g = groups.setdefault(r["group"], {"tasks": [], "values": []})
        g["tasks"].append(name)
        value = r.get(r["primary"])
        if r["primary"] not in LOWER_IS_BETTER and value is not None:
            g["values"].append(value)
    return {name: {"score": float(np.mean(g["values"])) if g["values"] else None, "tasks": g["tasks"]}
            for name, g in groups.items()}


# --------------------------------------------------------------------------- one function per kind of task


def _multiple_choice(model, tokenizer, task: Task, rows, contexts, batch_size):
    """acc: argmax of log-likelihoods; acc_norm: of log-likelihood per character; acc_bytes: per UTF-8 byte."""
    pairs = [(ctx, task.target_delimiter + c) for ctx, r in zip(contexts, rows) for c in task.doc_to_choice(r)]
    scores = iter(loglikelihood(model, tokenizer, pairs, batch_size=batch_size))
    items = []
    for ctx, r in zip(contexts, rows):
        choices = task.doc_to_choice(r)
        lls = [next(scores)[0] for _ in choices]
        preds = M.choice_predictions(lls, choices)
        items.append({"id": r["id"], "prompt": ctx, "choices": choices, "label": r["label"], "logliks": lls,
                      **{m: float(p == r["label"]) for m, p in preds.items()}})
    return _means(items, task.metrics), items


def _cloze(model, tokenizer, task: Task, rows, contexts, batch_size):
    """acc: the whole answer is the greedy continuation; perplexity: exp(-mean log-likelihood of the answer)."""
    pairs = [(ctx, task.target_delimiter + task.doc_to_target(r)) for ctx, r in zip(contexts, rows)]
    scores = loglikelihood(model, tokenizer, pairs, batch_size=batch_size)
    items = [{"id": r["id"], "prompt": ctx, "target": task.doc_to_target(r), "loglik": ll, "acc": float(greedy)}
             for ctx, r, (ll, greedy) in zip(contexts, rows, scores)]
    values = {"acc": _mean([i["acc"] for i in items]),
              "perplexity": M.perplexity([i["loglik"] for i in items]) if items else None}
    return values, items


def _perplexity(model, tokenizer, task: Task, rows, contexts, batch_size):
    """Per-token, per-word and per-byte perplexity and bits per byte of whole documents."""
    texts = [r["text"] for r in rows]
    scores = loglikelihood_rolling(model, tokenizer, texts, batch_size=batch_size)
    items = [{"id": r["id"], "loglik": ll, "tokens": n, "words": M.count_words(t), "bytes": len(t.encode("utf-8"))}
             for r, t, (ll, n) in zip(rows, texts, scores)]
    if not items:
        return {m: None for m in task.metrics}, items
    lls = [i["loglik"] for i in items]
    values = {"token_perplexity": M.weighted_perplexity(lls, [i["tokens"] for i in items]),
              "word_perplexity": M.weighted_perplexity(lls, [i["words"] for i in items]),
              "byte_perplexity": M.weighted_perplexity(lls, [i["bytes"] for i in items]),
              "bits_per_byte": M.bits_per_byte(lls, [i["bytes"] for i in items])}
    return values, items


def _generate(model, tokenizer, task: Task, rows, contexts, batch_size, budget):
    """Greedy answers scored against the reference: EM/F1, ROUGE, chrF/BLEU or the final number."""
    preds = generate_until(model, tokenizer, contexts, max_new_tokens=budget, stop=task.stop, batch_size=batch_size)
    refs = [task.doc_to_target(r) for r in rows]
    lang = task.score_lang
    items = []
    for ctx, r, pred, ref in zip(contexts, rows, preds, refs):
        item = {"id": r["id"], "prompt": ctx, "target": ref, "prediction": pred.strip()}
        for m in task.metrics:
            if m == "exact_match":
                item[m] = M.number_match(pred, ref) if task.family == "arithmetic" else M.exact_match(pred, ref, lang)
            elif m == "f1":
                item[m] = M.f1(pred, ref, lang)
            elif m.startswith("rouge"):
                item[m] = M.rouge(pred, ref)[m]
        items.append(item)
    values = _means(items, [m for m in task.metrics if m not in ("chrf", "bleu")])
    if "chrf" in task.metrics:
        values["chrf"] = M.chrf([i["prediction"] for i in items], refs) if items else None
    if "bleu" in task.metrics:
        values["bleu"] = M.bleu([i["prediction"] for i in items], refs) if items else None
    return values, items


def _generation_budget(task: Task, pool: list[dict], tokenizer) -> int:
    longest = max((len(encode(tokenizer, task.target_delimiter + task.doc_to_target(r), add_special_tokens=False))
                   for r in pool), default=32)
    return longest + GENERATION_MARGIN


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _means(items: list[dict], names) -> dict:
    return {m: _mean([i[m] for i in items]) for m in names}


# --------------------------------------------------------------------------- models, tables, files


def load_model(name_or_path: str, config=None):
    """(model, tokenizer) from a saved folder (a run folder's ``final/`` is found) or a zoo artifact name.

    A folder's config decides the class: encoder-decoder -> ``AutoModelForSeq2SeqLM``,
    otherwise ``AutoModelForCausalLM``. A zoo artifact must have ``.model`` and ``.tokenizer``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / "final" / "config.json").is_file():
            path = path / "final"
        auto = AutoModelForSeq2SeqLM if AutoConfig.from_pretrained(path).is_encoder_decoder else AutoModelForCausalLM
        return auto.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    from course_lib import zoo

    try:
        zoo.recipe(name_or_path)
    except KeyError as err:
        raise ValueError(f"{name_or_path!r} is neither a model folder nor a zoo artifact ({err.args[0]})") from None
    artifact = zoo.get(name_or_path, config)
    if not (hasattr(artifact, "model") and hasattr(artifact, "tokenizer")):
        raise ValueError(f"zoo artifact {name_or_path!r} is not a model (it has no .model and .tokenizer)")
    return artifact.model, artifact.tokenizer


def format_table(report: dict) -> str:
    """The results as a text table: one line per task and metric (primary metric marked *), then group scores."""
    lines = [f"{'task':<24} {'group':<26} {'n':>5}  {'metric':<18} {'value':>9}", "-" * 86]
    for name, r in report["results"].items():
        shown = [m for m in r if m not in ("group", "lang", "kind", "n", "num_fewshot", "primary")]
        for j, m in enumerate(sorted(shown, key=lambda m: m != r["primary"])):
            value = "n/a" if r[m] is None else f"{r[m]:.4f}" if abs(r[m]) < 1e5 else f"{r[m]:.3e}"
            head = (name, r["group"], str(r["n"])) if j == 0 else ("", "", "")
            star = "*" if m == r["primary"] else ""
            arrow = " (lower is better)" if m in LOWER_IS_BETTER and j == 0 else ""
            lines.append(f"{head[0]:<24} {head[1]:<26} {head[2]:>5}  {m + star:<18} {value:>9}{arrow}")
    lines += ["-" * 86, f"{'group':<51} {'tasks':>5}  {'mean primary':<18}"]
    for name, g in report["groups"].items():
        score = "n/a" if g["score"] is None else f"{g['score']:.4f}"
        lines.append(f"{name:<51} {len(g['tasks']):>5}  {score:<18}")
    return "\n".join(lines)


def write_json(report: dict, path: str | Path) -> Path:
    """Write ``report`` as indented UTF-8 JSON (non-finite numbers become null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(report, default=float), parse_constant=lambda _: None)
    path.write_text(json.dumps(clean, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

