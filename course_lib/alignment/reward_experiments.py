"""Chapter 07's reward-model experiments and the ``reward-models`` zoo artifact.

Every reward model starts from ``instruct`` (a fresh scalar head on its backbone) and is
trained with the course loop on the training prompts' pairs; every score is on the test
prompts' pairs (no prompt is in both):

- the main, *combined* reward model: all the rules, no label noise, all training pairs;
- :func:`comparisons_curve`: accuracy against the number of training comparisons
  (``alignment.comparison_fractions`` of the training prompts, all their pairs);
- :func:`noise_curve`: accuracy against the label-noise rate (``alignment.noise_rates``),
  on the noisy test labels (a perfect model reaches ``ceiling`` = 1 - the flipped share)
  and on the rules' own order (``gold_accuracy``);
- :func:`helpful_vs_safe`: LLaMA-2's two reward models, one trained on the helpfulness
  rules' pairs and one on the harmlessness rules', against the combined one, each scored
  on the test pairs of either kind and of all the rules; ``two-model`` reads the safety
  model on prompts that should be declined and the helpfulness model elsewhere;
- :func:`accuracy_by_styles`: the combined model's accuracy on each kind of pair (which
  response against which), where its failures show what it cannot judge.

``zoo.get("reward-models")`` returns ``{"results": ..., "model": the combined reward model,
"tokenizer": ...}``; ``results.json`` holds the tables.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from .. import zoo
from ..config import Config, is_offline
from . import preferences as P
from .reward_model import pair_accuracy, train_reward_model

MODEL_DIR = "combined"


def preference_data(cfg: Config) -> list[dict]:
    """The preference prompts of ``cfg`` (``alignment.per_kind`` per kind, the run's seed)."""
    from ..world import build_world

    return P.preference_prompts(build_world(cfg.world), per_kind=cfg.alignment.per_kind, seed=cfg.run.seed)


def preference_pairs(cfg: Config) -> tuple[list[dict], list[dict]]:
    """(train, test) preference pairs of ``cfg``: the world's comparisons, or ``alignment.preference_source``'s.

    An empty source gives the world's prompts' comparisons (no label noise), split by
    prompt; a ``.jsonl`` file or ``hf:<name>`` gives its first ``alignment.max_pairs`` rows
    (all when 0) as pairs (``external.load_preference_pairs``), split by their ``split``.
    """
    from .external import load_preference_pairs

    a = cfg.alignment
    if not a.preference_source:
        return P.split_pairs(P.comparisons(preference_data(cfg), seed=cfg.run.seed))
    return P.split_pairs(load_preference_pairs(a.preference_source, max_rows=a.max_pairs, offline=is_offline(cfg),
                                               seed=cfg.run.seed))


def held_out_prompts(cfg: Config) -> list[dict]:
    """The preference prompts of the ``test`` split: no pair of theirs is trained on."""
    return [p for p in preference_data(cfg) if p["split"] == "test"]


def training_prompts(cfg: Config) -> list[dict]:
    """The preference prompts of the ``train`` split: what PPO, GRPO and RLOO sample responses to."""
    return [p for p in preference_data(cfg) if p["split"] == "train"]


def train_on(instruct, cfg: Config, train_pairs: list[dict], *, seed: int | None = None):
    """A reward model from ``instruct`` trained on ``train_pairs`` with ``alignment.reward``; (model, log)."""
    from ..instruction.formatting import add_chat_template

    from .external import train_reward_model_trl

    tokenizer = add_chat_template(instruct.tokenizer)
    fit = train_reward_model_trl if cfg.alignment.trainer == "trl" else train_reward_model
    with tempfile.TemporaryDirectory() as out:
        return fit(instruct.model, tokenizer, train_pairs, cfg.alignment.reward, output_dir=out,
                   seed=cfg.run.seed if seed is None else seed, max_len=cfg.model.max_seq_len)


def accuracy_by_styles(model, tokenizer, pairs: list[dict]) -> list[dict]:
    """Held-out accuracy per kind of pair: ``[{"kind", "chosen_style", "rejected_style", "accuracy", "n"}]``.

    Where a reward model fails says what it cannot read: a wrong value against the right
    one is told apart only by a model that knows (or reads in the passage) the fact.
    """
    from .reward_model import score_responses

    messages = [p["messages"] for p in pairs]
    chosen = score_responses(model, tokenizer, messages, [p["chosen"] for p in pairs]).tolist()
    rejected = score_responses(model, tokenizer, messages, [p["rejected"] for p in pairs]).tolist()
    groups: dict[tuple, list[bool]] = {}
    for p, c, r in zip(pairs, chosen, rejected):
        groups.setdefault((p["kind"], p["chosen_style"], p["rejected_style"]), []).append(c > r)
    return [{"kind": k, "chosen_style": c, "rejected_style": r, "accuracy": sum(v) / len(v), "n": len(v)}
            for (k, c, r), v in sorted(groups.items())]


def subset_by_prompt(pairs: list[dict], fraction: float, seed: int) -> list[dict]:
    """The pairs of a fixed random ``fraction`` of the prompts (at least one prompt)."""
    ids = sorted({p["prompt_id"] for p in pairs})
    keep = set(random.Random(f"{seed}|comparisons").sample(ids, max(1, round(fraction * len(ids)))))
    return [p for p in pairs if p["prompt_id"] in keep]


def comparisons_curve(cfg: Config, instruct, prompts: list[dict]) -> list[dict]:
    """Held-out accuracy against the number of training comparisons (no label noise)."""
    train, test = P.split_pairs(P.comparisons(prompts, seed=cfg.run.seed))
    table = []
    for fraction in sorted(cfg.alignment.comparison_fractions):
        subset = subset_by_prompt(train, fraction, cfg.run.seed)
        model, _ = train_on(instruct, cfg, subset)
        table.append({"fraction": fraction, "comparisons": len(subset),
                      **pair_accuracy(model, instruct.tokenizer, test)})
    return table


def noise_curve(cfg: Config, instruct, prompts: list[dict]) -> list[dict]:
    """Held-out accuracy against the label-noise rate: on the noisy labels, its ceiling, and on the rules' order."""
    table = []
    for noise in sorted(cfg.alignment.noise_rates):
        train, test = P.split_pairs(P.comparisons(prompts, label_noise=noise, seed=cfg.run.seed))
        model, _ = train_on(instruct, cfg, train)
        table.append({"noise": noise, "comparisons": len(train), **pair_accuracy(model, instruct.tokenizer, test)})
    return table


def helpful_vs_safe(cfg: Config, instruct, prompts: list[dict], combined) -> dict:
    """Helpfulness, safety and combined reward models, each scored on every kind of test pairs.

    ``{"accuracy": {model: {pairs: accuracy}}, "comparisons": {model: training pairs}}`` with
    models ``helpful``, ``safe``, ``combined``, ``two-model`` and pairs ``helpful``
    (ranked by ``HELPFULNESS``), ``safe`` (``HARMLESSNESS``) and ``all`` (every rule).
    """
    rules = {"helpful": P.HELPFULNESS, "safe": P.HARMLESSNESS, "all": tuple(P.RULES)}
    splits = {k: P.split_pairs(P.comparisons(prompts, rules=r, ties=True, seed=cfg.run.seed)) for k, r in rules.items()}
    models = {"combined": combined}
    counts = {"combined": len(splits["all"][0])}
    for name in ("helpful", "safe"):
        models[name], _ = train_on(instruct, cfg, splits[name][0])
        counts[name] = len(splits[name][0])
    accuracy = {}
    for name, model in models.items():
        accuracy[name] = {k: pair_accuracy(model, instruct.tokenizer, test)["accuracy"] for k, (_, test) in splits.items()}
    accuracy["two-model"] = {}
    for k, (_, test) in splits.items():  # the safety model where the prompt should be declined, else helpfulness
        unsafe = [p for p in test if p["kind"] in ("pii", "fabricate")]
        safe = [p for p in test if p["kind"] not in ("pii", "fabricate")]
        right = sum(pair_accuracy(models[m], instruct.tokenizer, part)["accuracy"] * len(part)
                    for m, part in (("safe", unsafe), ("helpful", safe)) if part)
        accuracy["two-model"][k] = right / len(test)
    return {"accuracy": accuracy, "comparisons": counts}


def _load(path: Path, cfg: Config) -> dict:
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    return {"results": json.loads((path / "results.json").read_text(encoding="utf-8")),
            "model": LlamaForSequenceClassification.from_pretrained(path / MODEL_DIR).eval(),
            "tokenizer": AutoTokenizer.from_pretrained(path / MODEL_DIR)}


@zoo.register("reward-models", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation",
                                                     "instruct", "alignment"), deps=("instruct",),
              description="chapter 07: reward models from instruct (accuracy vs comparisons, noise; helpful vs safe)")
def _build(cfg: Config, out: Path) -> None:
    from ..instruction.formatting import add_chat_template

    start = time.perf_counter()
    instruct = zoo.get("instruct", cfg)
    tokenizer = add_chat_template(instruct.tokenizer)
    train, test = preference_pairs(cfg)
    combined, log = train_on(instruct, cfg, train)
    results = {"combined": {"comparisons": len(train), **pair_accuracy(combined, tokenizer, test)}, "log": log}
    if not cfg.alignment.preference_source:  # the curves re-rank the world's responses by the rules
        prompts = preference_data(cfg)
        results["by_styles"] = accuracy_by_styles(combined, tokenizer, test)
        results["comparisons_curve"] = comparisons_curve(cfg, instruct, prompts)
        results["comparisons_curve"].append({"fraction": 1.0, **results["combined"]})
        results["noise_curve"] = [{"noise": 0.0, **results["combined"]}, *noise_curve(cfg, instruct, prompts)]
        results["helpful_vs_safe"] = helpful_vs_safe(cfg, instruct, prompts, combined)
    results["seconds"] = time.perf_counter() - start
    combined.save_pretrained(out / MODEL_DIR)
    tokenizer.save_pretrained(out / MODEL_DIR)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
