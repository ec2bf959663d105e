"""The ``aligned`` model: ``instruct`` trained with DPO on the preference pairs, and how it compares with ``instruct``.

    zoo.get("aligned")   a TrainedModel like instruct: instruct + DPO (beta = alignment.dpo_beta,
                         reference = instruct, frozen) on the training prompts' pairs

The run folder holds the policy (``final/``), the course loop's ``metrics.jsonl`` and
``results.json``: the DPO log per step (loss from ln 2, implicit rewards of the chosen and
rejected responses, their margin), and both models judged on the held-out preference
prompts (``dpo.evaluate_policy``, ``dpo.summarize``): mean gold reward, the paired gain
with its bootstrap 95% interval, refusal rates, answers kept, and the KL to ``instruct``
(``dpo.sequence_kl``): the budget the gain was bought with.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .. import zoo
from ..config import Config
from ..models import TrainedModel
from . import preferences as P
from .dpo import evaluate_policy, implicit_reward_accuracy, sequence_kl, summarize, train_dpo
from .reward_experiments import held_out_prompts, preference_data

SECTIONS = ("run", "model", "world", "data", "pretrain", "curation", "instruct", "alignment")


def compare(cfg: Config, policy, instruct, tokenizer) -> dict:
    """``policy`` and ``instruct`` judged on the held-out prompts: per-prompt rows, summaries, KL to ``instruct``."""
    prompts = held_out_prompts(cfg)
    p = cfg.alignment
    reference_rows = evaluate_policy(instruct.model, tokenizer, prompts, max_new_tokens=p.max_new_tokens)
    rows = evaluate_policy(policy, tokenizer, prompts, max_new_tokens=p.max_new_tokens)
    return {"instruct": summarize(reference_rows), "policy": summarize(rows, reference_rows, resamples=p.bootstrap,
                                                                       seed=cfg.run.seed),
            "kl": sequence_kl(policy, instruct.model, tokenizer, prompts, max_new_tokens=p.max_new_tokens,
                              seed=cfg.run.seed),
            "rows": {"instruct": reference_rows, "policy": rows}}


def _load(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path)


@zoo.register("aligned", load=_load, sections=SECTIONS, deps=("instruct",),
              description="instruct aligned with DPO on the world's preference pairs (chapter 07)")
def _build(cfg: Config, out: Path) -> None:
    from ..instruction.formatting import add_chat_template

    start = time.perf_counter()
    instruct = zoo.get("instruct", cfg)
    tokenizer = add_chat_template(instruct.tokenizer)
    train, test = P.split_pairs(P.comparisons(preference_data(cfg), seed=cfg.run.seed))
    policy, log = train_dpo(instruct, tokenizer, train, cfg.alignment.dpo, beta=cfg.alignment.dpo_beta,
                            output_dir=out, seed=cfg.run.seed, max_len=cfg.model.max_seq_len,
                            sft_weight=cfg.alignment.dpo_sft_weight)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    trained = time.perf_counter() - start
    held_out = implicit_reward_accuracy(policy, instruct.model, tokenizer, test, beta=cfg.alignment.dpo_beta,
                                        max_len=cfg.model.max_seq_len)
    results = {"method": "dpo", "beta": cfg.alignment.dpo_beta, "sft_weight": cfg.alignment.dpo_sft_weight,
               "dpo_log": log, "train_seconds": trained,
               "held_out_implicit_reward": held_out,
               **compare(cfg, policy, instruct, tokenizer)}
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")


def results(cfg: Config) -> dict:
    """``aligned``'s ``results.json`` (built with it)."""
    return json.loads((zoo.path("aligned", cfg) / "results.json").read_text(encoding="utf-8"))


def _load_json(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


@zoo.register("ppo-sweep", load=_load_json, sections=SECTIONS, deps=("instruct", "reward-models"),
              description="chapter 07: PPO from instruct against the reward model, one run per KL coefficient beta")
def _build_ppo_sweep(cfg: Config, out: Path) -> None:
    from .ppo import ppo_sweep

    start = time.perf_counter()
    results = ppo_sweep(cfg, zoo.get("instruct", cfg), zoo.get("reward-models", cfg), progress=True)
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")


ARENA_MODELS = ("base", "instruct", "aligned")


@zoo.register("arena", load=_load_json, sections=SECTIONS, deps=("base", "instruct", "aligned", "reward-models"),
              description="chapter 07: base, instruct and aligned in pairwise battles; Elo and Bradley-Terry ratings")
def _build_arena(cfg: Config, out: Path) -> None:
    from ..instruction.formatting import add_chat_template
    from . import arena

    start = time.perf_counter()
    prompts = held_out_prompts(cfg)
    answers = {}
    for name in ARENA_MODELS:
        m = zoo.get(name, cfg)
        answers[name] = evaluate_policy(m.model, add_chat_template(m.tokenizer), prompts,
                                        max_new_tokens=cfg.alignment.max_new_tokens)
    rm = zoo.get("reward-models", cfg)
    judges = {"gold": lambda model, i: answers[model][i]["gold"],
              "reward_model": arena.reward_model_judge(rm["model"], rm["tokenizer"], prompts, answers)}
    results = {"models": list(ARENA_MODELS), "prompts": len(prompts), "judges": {}}
    for judge, fn in judges.items():
        fights = arena.battles(answers, fn)
        results["judges"][judge] = {
            "battles": len(fights), "ties": sum(b["winner"] == "tie" for b in fights),
            "elo": arena.elo_ratings(fights, list(ARENA_MODELS), seed=cfg.run.seed),
            "bradley_terry": arena.bt_ratings(fights, list(ARENA_MODELS), resamples=cfg.alignment.bootstrap,
                                              seed=cfg.run.seed),
            "win_rates": arena.win_rates(fights, list(ARENA_MODELS))}
    results["samples"] = [{"prompt": p["messages"][-1]["content"], "kind": p["kind"],
                           **{m: answers[m][i]["reply"] for m in ARENA_MODELS}} for i, p in enumerate(prompts[:12])]
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")
