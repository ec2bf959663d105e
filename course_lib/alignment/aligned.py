"""The ``aligned`` model: the better of DPO and PPO by gold reward within a KL budget, and how it compares with ``instruct``.

    zoo.get("aligned")   a TrainedModel like instruct: of instruct + DPO and the ``ppo-sweep``'s PPO
                         runs, the policy with the highest mean gold reward on the held-out
                         prompts among those whose KL to instruct is at most alignment.kl_budget

DPO (beta = ``alignment.dpo_beta``, reference = ``instruct``, frozen) trains on each
training prompt's best response against each of the others (``preferences.best_vs_rest``):
its SFT term (``alignment.dpo_sft_weight``) then imitates only the best response, never a
padded or wrong one that merely beat a worse one. PPO is chapter 07's from-scratch PPO
against the combined reward model, one run per ``alignment.ppo_betas``.

The run folder holds the chosen policy (``final/``) and its log (``metrics.jsonl``), DPO's
own run (``dpo/``) and ``results.json``: the candidates (method, beta, gold reward, its
paired gain over ``instruct`` with a bootstrap 95% interval, KL, within the budget or not),
the choice, the DPO log per step (loss from ln 2, implicit rewards of the chosen and
rejected responses, their margin), and the chosen policy and ``instruct`` judged on the
held-out preference prompts (``dpo.evaluate_policy``, ``dpo.summarize``): mean gold reward,
the gain, refusal rates, answers kept, and the KL to ``instruct`` (``dpo.sequence_kl``).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

from .. import zoo
from ..config import Config
from ..models import TrainedModel
from . import preferences as P
from .dpo import evaluate_policy, implicit_reward_accuracy, sequence_kl, summarize, train_dpo
from .reward_experiments import held_out_prompts

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


def candidates(cfg: Config, dpo: dict, sweep: dict) -> list[dict]:
    """DPO's policy and each PPO run as ``{"method", "beta", "gold", "gain", "kl", "within_budget"}``."""
    rows = [{"method": "dpo", "beta": cfg.alignment.dpo_beta, "gold": dpo["policy"]["gold"],
             "gain": dpo["policy"]["gain"], "kl": dpo["kl"]}]
    rows += [{"method": "ppo", "beta": r["beta"], "gold": r["gold"], "gain": r["summary"]["gain"], "kl": r["kl"]}
             for r in sweep["runs"]]
    return [{**r, "within_budget": r["kl"] <= cfg.alignment.kl_budget} for r in rows]


def choose(rows: list[dict]) -> dict:
    """The candidate with the highest gold reward within the KL budget (none within it: the one of least KL)."""
    within = [r for r in rows if r["within_budget"]]
    if not within:
        warnings.warn(f"no policy is within the KL budget (KLs {[round(r['kl'], 1) for r in rows]}): aligned is "
                      "the one closest to instruct", stacklevel=2)
        return min(rows, key=lambda r: r["kl"])
    return max(within, key=lambda r: r["gold"])


@zoo.register("aligned", load=_load, sections=SECTIONS, deps=("instruct", "ppo-sweep"),
              description="the better of DPO and PPO from instruct, by gold reward within a KL budget (chapter 07)")
def _build(cfg: Config, out: Path) -> None:
    from ..instruction.formatting import add_chat_template
    from ..runs import FINAL_DIR, METRICS_FILE
    from .external import train_dpo_trl
    from .ppo import run_dir
    from .reward_experiments import preference_pairs

    start = time.perf_counter()
    instruct = zoo.get("instruct", cfg)
    tokenizer = add_chat_template(instruct.tokenizer)
    a = cfg.alignment
    train, test = preference_pairs(cfg)
    if not a.preference_source:  # the world's ranked responses: the best against each of the others
        train = P.best_vs_rest(train)
    fit = train_dpo_trl if a.trainer == "trl" else train_dpo
    policy, log = fit(instruct, tokenizer, train, a.dpo, beta=a.dpo_beta, output_dir=out / "dpo", seed=cfg.run.seed,
                      max_len=cfg.model.max_seq_len, sft_weight=a.dpo_sft_weight)
    shutil.rmtree(out / "dpo" / "checkpoints", ignore_errors=True)
    trained = time.perf_counter() - start
    held_out = implicit_reward_accuracy(policy, instruct.model, tokenizer, test, beta=a.dpo_beta,
                                        max_len=cfg.model.max_seq_len)
    dpo = compare(cfg, policy, instruct, tokenizer)
    sweep = zoo.get("ppo-sweep", cfg)
    rows = candidates(cfg, dpo, sweep)
    chosen = choose(rows)
    if chosen["method"] == "dpo":
        judged = dpo
        shutil.copytree(out / "dpo" / FINAL_DIR, out / FINAL_DIR)
        shutil.copy(out / "dpo" / METRICS_FILE, out / METRICS_FILE)
    else:
        run = next(r for r in sweep["runs"] if r["beta"] == chosen["beta"])
        judged = {"instruct": sweep["instruct"]["summary"], "policy": run["summary"], "kl": run["kl"],
                  "rows": {"instruct": sweep["instruct"]["rows"], "policy": run["rows"]}}
        shutil.copytree(zoo.path("ppo-sweep", cfg) / run_dir(chosen["beta"]) / FINAL_DIR, out / FINAL_DIR)
        (out / METRICS_FILE).write_text("".join(json.dumps({"step": r["iteration"], **r}) + "\n" for r in run["log"]),
                                        encoding="utf-8")
    results = {"method": chosen["method"], "chosen": chosen, "kl_budget": a.kl_budget, "candidates": rows,
               "beta": a.dpo_beta, "sft_weight": a.dpo_sft_weight, "dpo_pairs": len(train), "dpo_log": log,
               "train_seconds": trained, "held_out_implicit_reward": held_out,
               "dpo": {k: dpo[k] for k in ("policy", "kl", "rows")}, **judged}
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")


def results(cfg: Config) -> dict:
    """``aligned``'s ``results.json`` (built with it)."""
    return json.loads((zoo.path("aligned", cfg) / "results.json").read_text(encoding="utf-8"))


def _load_json(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


@zoo.register("ppo-sweep", load=_load_json, sections=SECTIONS, deps=("instruct", "reward-models"),
              description="chapter 07: PPO from instruct against the reward model, one run per KL coefficient beta "
                          "(the policies kept), and best-of-n against the same reward model")
def _build_ppo_sweep(cfg: Config, out: Path) -> None:
    from .ppo import ppo_sweep

    from ..instruction.formatting import add_chat_template
    from .overoptimisation import best_of_n_curve

    start = time.perf_counter()
    instruct, reward_models = zoo.get("instruct", cfg), zoo.get("reward-models", cfg)
    results = ppo_sweep(cfg, instruct, reward_models, progress=True, save_dir=out)
    a = cfg.alignment  # best-of-n from instruct against the same reward model: over-optimisation without training
    results["best_of_n"] = best_of_n_curve(instruct.model, add_chat_template(instruct.tokenizer), reward_models["model"],
                                           held_out_prompts(cfg), samples=a.bon_samples,
                                           max_new_tokens=a.max_new_tokens, seed=cfg.run.seed)
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
