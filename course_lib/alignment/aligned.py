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
from .reward_experiments import preference_data

SECTIONS = ("run", "model", "world", "data", "pretrain", "curation", "instruct", "alignment")


def held_out_prompts(cfg: Config) -> list[dict]:
    """The preference prompts of the ``test`` split: no pair of theirs is trained on."""
    return [p for p in preference_data(cfg) if p["split"] == "test"]


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
                            output_dir=out, seed=cfg.run.seed, max_len=cfg.model.max_seq_len)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    trained = time.perf_counter() - start
    held_out = implicit_reward_accuracy(policy, instruct.model, tokenizer, test, beta=cfg.alignment.dpo_beta,
                                        max_len=cfg.model.max_seq_len)
    results = {"method": "dpo", "beta": cfg.alignment.dpo_beta, "dpo_log": log, "train_seconds": trained,
               "held_out_implicit_reward": held_out,
               **compare(cfg, policy, instruct, tokenizer)}
    results["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")


def results(cfg: Config) -> dict:
    """``aligned``'s ``results.json`` (built with it)."""
    return json.loads((zoo.path("aligned", cfg) / "results.json").read_text(encoding="utf-8"))
