"""TRL's GRPO and RLOO on the course's setting, and the ``rl-comparison`` artifact: PPO, GRPO, RLOO (and DPO).

TRL no longer ships a PPO trainer in its main API; it ships two critic-free methods that
replace the value head with a *group* of completions per prompt:

- GRPO (``GRPOTrainer``): the advantage of a completion is its reward minus the mean of
  its group, divided by the group's standard deviation; the KL to the reference
  (``beta``) is a term of the per-token loss (the ``k3`` estimator);
- RLOO (``RLOOTrainer``): the advantage is the reward minus the mean of the *other*
  completions of its group (leave one out); the KL (``beta`` times the summed
  ``log pi - log pi_ref``) is taken from the reward, as PPO does.

:func:`train_trl_policy` runs either on the same training prompts, the same reward model
and the same stop token as ``ppo.train_ppo``. The reward model is a reward *function* for
TRL: it scores the prompt and the decoded reply with ``reward_model.score_responses``. The
gold reward (the rules) is a second reward function of weight 0: TRL logs its mean and
does not train on it.

:func:`compare_rl` gives the three methods the same budget: PPO samples ``ppo_batch_size``
responses per iteration for ``compare_iterations`` iterations and makes ``epochs`` (2)
optimizer steps on each rollout; GRPO and RLOO sample ``ppo_batch_size`` completions per
generation (``ppo_batch_size / num_generations`` prompts, ``num_generations`` each) for
as many generations and make as many steps on each (TRL's ``num_iterations``). Every
method is then judged on the held-out prompts as ``ppo.ppo_sweep`` judges.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from .. import zoo
from ..config import Config
from .aligned import SECTIONS
from .losses import _positive
from .reward_model import check_same_tokenizer, last_token_rewards, score_responses

METHODS = ("grpo", "rloo")


@torch.no_grad()
def score_replies(reward_model, tokenizer, conversations: list[list[dict]], replies: list[str]) -> list[float]:
    """The reward model's score of each reply (``score_responses``); an empty reply is scored as the empty turn.

    ``score_responses`` refuses an empty response (a chat row must have one); a policy may
    still stop at once, and PPO scores that sample as written: ``<|assistant|><|end|>``.
    """
    from ..instruction.formatting import END_TOKEN, render_chat

    scores = [0.0] * len(replies)
    full = [i for i, r in enumerate(replies) if r.strip()]
    if full:
        found = score_responses(reward_model, tokenizer, [conversations[i] for i in full], [replies[i] for i in full])
        for i, s in zip(full, found.tolist()):
            scores[i] = s
    for i in sorted(set(range(len(replies))) - set(full)):
        ids = tokenizer(render_chat(conversations[i], add_generation_prompt=True) + END_TOKEN, return_tensors="pt",
                        add_special_tokens=False)["input_ids"]
        scores[i] = float(last_token_rewards(reward_model.eval(), ids, torch.ones_like(ids)))
    return scores


def reward_functions(reward_model, tokenizer, prompts: list[dict], gold=None) -> list:
    """TRL reward functions: ``reward_model`` (the one trained on) and, with ``gold``, ``gold`` (logged only).

    Each takes TRL's keywords: ``prompts`` (conversations), ``completions`` (each a list of
    one assistant message) and the dataset's ``id`` column, and returns one float per completion.
    """
    rows = {p["id"]: p for p in prompts}

    def reward_model_score(prompts, completions, **_):
        return score_replies(reward_model, tokenizer, prompts, [c[-1]["content"].strip() for c in completions])

    def gold_reward(prompts, completions, id, **_):
        return [gold(rows[i], c[-1]["content"].strip()) for i, c in zip(id, completions)]

    reward_model_score.__name__, gold_reward.__name__ = "reward_model", "gold"
    return [reward_model_score, gold_reward] if gold else [reward_model_score]


def trl_trainer(instruct, tokenizer, reward_model, reward_tokenizer, prompts: list[dict], *, method: str, beta: float,
                steps: int, batch_size: int, num_generations: int, lr: float, max_new_tokens: int, seed: int,
                output_dir, num_iterations: int = 1, gold=None, callbacks=()):
    """TRL's ``GRPOTrainer`` or ``RLOOTrainer`` on a copy of ``instruct.model``, set up as ``ppo.train_ppo`` is.

    ``steps`` generations of ``batch_size`` completions (``batch_size / num_generations``
    prompts, ``num_generations`` completions each, temperature 1, up to ``<|end|>`` or
    ``max_new_tokens``); ``num_iterations`` optimizer steps on each (PPO's ``epochs``).
    The reference (``instruct``) is saved under ``output_dir`` for TRL to load.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from ..instruction.formatting import END_TOKEN
    from .dpo import disable_dropout

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    beta = _positive("beta", beta)
    check_same_tokenizer(tokenizer, reward_tokenizer)
    if batch_size % num_generations:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of num_generations ({num_generations}): "
                         "each prompt's group of completions is sampled in one batch")
    if not prompts:
        raise ValueError("no prompts to sample completions for")
    reference = Path(output_dir) / "reference"
    instruct.model.save_pretrained(reference)  # TRL builds its reference model from the policy's path
    policy = copy.deepcopy(instruct.model)
    disable_dropout(policy)
    policy.config._name_or_path = str(reference)
    policy.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(END_TOKEN), tokenizer.eos_token_id]
    common = dict(
        output_dir=str(output_dir), report_to="none", save_strategy="no", use_cpu=instruct.model.device.type == "cpu",
        seed=seed, max_steps=steps * num_iterations, num_iterations=num_iterations,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=1, num_generations=num_generations,
        # PPO's optimizer: AdamW at a constant rate, no weight decay, gradients clipped at 1 (TRL: 1e-6, linear)
        learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        max_completion_length=max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, use_vllm=False,
        # TRL checkpoints activations by default: memory for time, which a small model does not need
        disable_dropout=True, activation_checkpointing=False, logging_steps=1, bf16=False,
        # the reward model's score alone is trained on; the gold reward is logged (TRL's default weights are all 1)
        reward_weights=[1.0, 0.0] if gold else [1.0],
        beta=beta,  # the KL coefficient; GRPO's default in TRL 1.16 is 0.0 (no reference model), RLOO's 0.05
    )
    if method == "grpo":
        # TRL 1.16's defaults, stated: loss "dapo" (token losses averaged over all the batch's completion tokens) and
        # scale_rewards "group" (advantages divided by the group's reward standard deviation)
        args, trainer_class = GRPOConfig(**common, loss_type="dapo", scale_rewards="group"), GRPOTrainer
    else:
        # RLOO's default in 1.16: the leave-one-out advantages are not normalized
        args, trainer_class = RLOOConfig(**common, normalize_advantages=False), RLOOTrainer
    data = Dataset.from_list([{"prompt": p["messages"], "id": p["id"]} for p in prompts])
    return trainer_class(model=policy, reward_funcs=reward_functions(reward_model, reward_tokenizer, prompts, gold),
                         args=args, train_dataset=data, processing_class=tokenizer, callbacks=list(callbacks))


def train_trl_policy(instruct, tokenizer, reward_model, reward_tokenizer, prompts: list[dict], *, method: str,
                     beta: float, steps: int, batch_size: int, num_generations: int, lr: float, max_new_tokens: int,
                     seed: int, output_dir, num_iterations: int = 1, gold=None) -> tuple[torch.nn.Module, list[dict]]:
    """A copy of ``instruct.model`` trained with TRL's GRPO or RLOO (:func:`trl_trainer`); (policy, log).

    ``gold(prompt_row, reply) -> float`` (e.g. ``dpo.reply_reward``) is logged, not trained
    on. Log rows, one per optimizer step as TRL logs them: ``step``, ``loss``, ``kl`` (TRL's:
    mean per *token*, ``k3`` for GRPO and ``log pi - log pi_ref`` for RLOO) and, on the
    steps that sampled (the first of each ``num_iterations``; None on the others),
    ``score`` (the reward model's mean on the completions), ``gold`` (mean; None without
    ``gold``) and ``length`` (mean completion tokens).
    """
    from transformers import TrainerCallback

    log: list[dict] = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:  # the steps' rows, not the summary at the end
                log.append({"step": state.global_step, "score": logs.get("rewards/reward_model/mean"),
                            "gold": logs.get("rewards/gold/mean"), "kl": logs.get("kl"), "loss": logs["loss"],
                            "length": logs.get("completions/mean_length")})

    trainer = trl_trainer(instruct, tokenizer, reward_model, reward_tokenizer, prompts, method=method, beta=beta,
                          steps=steps, batch_size=batch_size, num_generations=num_generations, lr=lr,
                          max_new_tokens=max_new_tokens, seed=seed, output_dir=output_dir,
                          num_iterations=num_iterations, gold=gold, callbacks=[Record()])
    trainer.train()
    policy = trainer.model.eval()
    return policy, log


# --------------------------------------------------------------------------- PPO, GRPO and RLOO side by side


def compare_rl(cfg: Config, instruct, reward_models: dict, aligned_results: dict | None = None, *,
               progress: bool = False) -> dict:
    """PPO, GRPO and RLOO from ``instruct`` against the same reward model, with the same budget, judged alike.

    All three use ``beta = alignment.compare_beta``, ``alignment.ppo_lr`` and ``ppo_max_new_tokens``,
    and sample ``compare_iterations * ppo_batch_size`` completions with ``compare_iterations * epochs``
    optimizer steps (see the module's docstring). With ``aligned_results`` (``aligned``'s
    ``results.json``) a ``dpo`` row is added: its gold, KL and training time, trained on
    the preference pairs instead (no samples). Returns ``{"instruct": {"gold", "score"},
    "budget": {...}, "runs": [{"method", "gold", "score", "kl", "summary", "seconds", "log", "settings"}]}``;
    ``seconds`` is the training's wall time alone.
    """
    from ..instruction.formatting import add_chat_template
    from .dpo import reply_reward, summarize
    from .ppo import PPOConfig, judge, judge_policy, proxy_score, train_ppo
    from .reward_experiments import held_out_prompts, training_prompts

    p = cfg.alignment
    tokenizer = add_chat_template(instruct.tokenizer)
    train, test = training_prompts(cfg), held_out_prompts(cfg)
    rm, rm_tokenizer = reward_models["model"], reward_models["tokenizer"]
    reference_rows, reference_score = judge(cfg, instruct.model, tokenizer, reward_models, test)
    ppo = PPOConfig(beta=p.compare_beta, iterations=p.compare_iterations, batch_size=p.ppo_batch_size, lr=p.ppo_lr,
                    max_new_tokens=p.ppo_max_new_tokens, seed=cfg.run.seed)
    out = {"instruct": {"gold": summarize(reference_rows)["gold"], "score": reference_score},
           "budget": {"completions": ppo.iterations * ppo.batch_size, "optimizer_steps": ppo.iterations * ppo.epochs},
           "runs": []}
    for method in ("ppo", *METHODS):
        start = time.perf_counter()
        if method == "ppo":
            settings = {"beta": ppo.beta, "iterations": ppo.iterations, "batch_size": ppo.batch_size,
                        "epochs": ppo.epochs, "lr": ppo.lr}
            policy, log = train_ppo(instruct, tokenizer, rm, rm_tokenizer, train, ppo, gold=reply_reward,
                                    progress=progress)
        else:
            settings = {"beta": p.compare_beta, "steps": ppo.iterations, "batch_size": ppo.batch_size,
                        "num_generations": p.num_generations, "num_iterations": ppo.epochs, "lr": ppo.lr,
                        **({"loss_type": "dapo", "scale_rewards": "group"} if method == "grpo" else
                           {"normalize_advantages": False})}
            with tempfile.TemporaryDirectory() as folder:
                policy, log = train_trl_policy(instruct, tokenizer, rm, rm_tokenizer, train, method=method,
                                               beta=p.compare_beta, steps=ppo.iterations, batch_size=ppo.batch_size,
                                               num_generations=p.num_generations, lr=ppo.lr,
                                               max_new_tokens=ppo.max_new_tokens, seed=cfg.run.seed,
                                               output_dir=folder, num_iterations=ppo.epochs, gold=reply_reward)
        seconds = time.perf_counter() - start
        judged = judge_policy(cfg, policy, instruct, tokenizer, reward_models, test, reference_rows)
        out["runs"].append({"method": method, **judged, "seconds": seconds, "log": log, "settings": settings})
    if aligned_results is not None:
        dpo = aligned_results["dpo"]  # aligned's DPO candidate (aligned itself may be a PPO run)
        out["runs"].append({"method": "dpo", "gold": dpo["policy"]["gold"],
                            "score": proxy_score(reward_models, test, dpo["rows"]["policy"]),
                            "kl": dpo["kl"], "summary": dpo["policy"],
                            "seconds": aligned_results["train_seconds"], "log": aligned_results["dpo_log"],
                            "settings": {"beta": aligned_results["beta"], "sft_weight": aligned_results["sft_weight"]}})
    return out


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


@zoo.register("rl-comparison", load=_load, sections=SECTIONS, deps=("instruct", "reward-models", "aligned"),
              description="chapter 07: the course's PPO against TRL's GRPO and RLOO (and DPO): gold, KL, wall time")
def _build(cfg: Config, out: Path) -> None:
    from .aligned import results

    start = time.perf_counter()
    zoo.get("aligned", cfg)
    found = compare_rl(cfg, zoo.get("instruct", cfg), zoo.get("reward-models", cfg), results(cfg), progress=True)
    found["seconds"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(found, indent=1, ensure_ascii=False, default=float),
                                      encoding="utf-8")
