"""PPO from scratch (InstructGPT's RLHF step): rollouts, a KL-penalized reward, a value head, GAE, clipped losses.

One iteration of :func:`train_ppo`:

1. *rollout*: the policy samples a response to each of a batch of training prompts
   (temperature 1, up to ``<|end|>``);
2. *score*: the reward model reads prompt and response (the same token ids: its tokenizer
   must be the policy's) and gives one number per response; the frozen reference
   (``instruct``) gives the log-probability of every response token;
3. *reward*: ``-beta * KL`` at every token (``k1 = log pi - log pi_ref``) and the reward
   model's score added at the last one (``losses.kl_penalized_rewards``);
4. *advantages*: the value head (one linear layer on the policy's last hidden state)
   estimates each token's return; GAE(gamma, lambda) turns rewards and values into
   advantages (whitened over the batch) and returns (``losses.gae``);
5. *update*: ``epochs`` passes of the clipped policy loss, the clipped value loss (times
   ``value_coef``) and minus the entropy (times ``entropy_coef``) with AdamW.

PPO learns from its own samples, not from a fixed dataset, so it has its own small loop
instead of ``training.train``: every step needs fresh rollouts from the current policy.
Each iteration logs the mean reward-model score (the *proxy* reward), the mean gold
reward of the same samples (the rules: what the proxy stands in for) and the mean KL.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from .losses import (
    _positive,
    clipped_policy_loss,
    clipped_value_loss,
    entropy,
    gae,
    kl_k1,
    kl_penalized_rewards,
    masked_mean,
)
from .reward_model import check_same_tokenizer, last_token_rewards


@dataclass
class PPOConfig:
    """PPO's hyperparameters (the ``alignment`` config section fills them)."""

    beta: float = 0.05  # the KL penalty's weight: the leash to the reference
    iterations: int = 20
    batch_size: int = 16  # prompts per rollout
    epochs: int = 2  # passes over each rollout
    lr: float = 1e-4
    clip: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    max_new_tokens: int = 32
    seed: int = 0


class PolicyWithValue(torch.nn.Module):
    """A causal LM and a value head on its last hidden state: logits and per-position values in one pass."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        self.value_head = torch.nn.Linear(policy.config.hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids):
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          output_hidden_states=True)
        return out.logits, self.value_head(out.hidden_states[-1]).squeeze(-1)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(1) - 1).clamp(min=0)  # left padding: positions count the real tokens only


def _response_logps(logits: torch.Tensor, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Log-probabilities ``(batch, new)`` of the tokens after ``start``, from ``logits`` of the whole sequence."""
    logp = torch.log_softmax(logits[:, start - 1 : -1].float(), dim=-1)
    return logp.gather(-1, ids[:, start:, None]).squeeze(-1)


@torch.no_grad()
def rollout(policy, tokenizer, prompts: list[dict], max_new_tokens: int, generator_seed: int) -> dict:
    """Sampled responses to ``prompts``: ids ``(batch, prompt + new)``, masks, where the response starts, texts."""
    from ..instruction.formatting import END_TOKEN, render_chat

    stop = [tokenizer.convert_tokens_to_ids(END_TOKEN), tokenizer.eos_token_id]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer([render_chat(p["messages"], add_generation_prompt=True) for p in prompts],
                          return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    torch.manual_seed(generator_seed)
    policy.eval()
    ids = policy.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0,
                          top_p=1.0, eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
    start = batch["input_ids"].shape[1]
    generated = ids[:, start:]
    is_stop = torch.isin(generated, torch.tensor(stop))
    mask = ((is_stop.cumsum(1) - is_stop.long()) == 0).long()  # up to and including the first stop token
    texts = [t.strip() for t in tokenizer.batch_decode(generated * mask + tokenizer.pad_token_id * (1 - mask),
                                                       skip_special_tokens=True)]
    return {"ids": ids, "attention_mask": torch.cat([batch["attention_mask"], mask], 1), "mask": mask,
            "start": start, "texts": texts}


@torch.no_grad()
def reward_scores(reward_model, ids: torch.Tensor, attention_mask: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The reward model's score ``(batch,)`` of left-padded sequences, re-padded on the right as it reads them."""
    rows = [seq[m.bool()] for seq, m in zip(ids, attention_mask)]
    longest = max(len(r) for r in rows)
    right = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(right)
    for i, r in enumerate(rows):
        right[i, : len(r)], attention[i, : len(r)] = r, 1
    reward_model.eval()
    return last_token_rewards(reward_model, right, attention)


def train_ppo(instruct, tokenizer, reward_model, reward_tokenizer, prompts: list[dict], cfg: PPOConfig, *,
              gold=None, progress: bool = False) -> tuple[torch.nn.Module, list[dict]]:
    """A copy of ``instruct.model`` trained with PPO against ``reward_model`` on ``prompts``; (policy, log).

    ``gold(prompt_row, reply) -> float`` (e.g. ``dpo.reply_reward``) scores each sample by
    the rules for the log. Log rows: ``iteration``, ``score`` (the reward model's, mean),
    ``gold`` (mean), ``kl`` (mean summed ``log pi - log pi_ref`` per response),
    ``policy_loss``, ``value_loss``, ``entropy``, ``length`` (mean response tokens).
    """
    from tqdm.auto import tqdm

    from .dpo import disable_dropout

    beta = _positive("beta", cfg.beta)
    check_same_tokenizer(tokenizer, reward_tokenizer)
    if not prompts:
        raise ValueError("no prompts to roll out")
    reference = instruct.model.eval()
    policy = copy.deepcopy(reference)
    disable_dropout(policy)
    model = PolicyWithValue(policy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    order = random.Random(cfg.seed)
    log = []
    for it in tqdm(range(cfg.iterations), desc=f"ppo beta={beta:g}", disable=not progress):
        batch_prompts = order.sample(prompts, min(cfg.batch_size, len(prompts)))
        roll = rollout(model.policy, tokenizer, batch_prompts, cfg.max_new_tokens, cfg.seed * 100_003 + it)
        ids, attention, mask, start = roll["ids"], roll["attention_mask"], roll["mask"].float(), roll["start"]
        positions = _positions(attention)
        with torch.no_grad():
            logits, values = model(ids, attention, positions)
            old_logp = _response_logps(logits, ids, start)
            old_values = values[:, start - 1 : -1]
            ref_logp = _response_logps(reference(input_ids=ids, attention_mask=attention,
                                                 position_ids=positions).logits, ids, start)
            score = reward_scores(reward_model, ids, attention, tokenizer.pad_token_id)
            rewards = kl_penalized_rewards(score, old_logp, ref_logp, mask, beta)
            advantages, returns = gae(rewards, old_values, mask, gamma=cfg.gamma, lam=cfg.lam)
            mean, std = masked_mean(advantages, mask), masked_mean((advantages - masked_mean(advantages, mask)) ** 2,
                                                                   mask).sqrt()
            advantages = (advantages - mean) / (std + 1e-8) * mask
        model.train()
        for _ in range(cfg.epochs):
            logits, values = model(ids, attention, positions)
            logp = _response_logps(logits, ids, start)
            policy_loss = clipped_policy_loss(logp, old_logp, advantages, mask, clip=cfg.clip)
            value_loss = clipped_value_loss(values[:, start - 1 : -1], old_values, returns, mask, clip=cfg.value_clip)
            ent = masked_mean(entropy(logits[:, start - 1 : -1]), mask)
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        golds = [gold(p, t) for p, t in zip(batch_prompts, roll["texts"])] if gold else []
        log.append({"iteration": it + 1, "score": float(score.mean()),
                    "gold": sum(golds) / len(golds) if golds else None,
                    "kl": float((kl_k1(old_logp, ref_logp) * mask).sum(1).mean()),
                    "policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": ent.item(),
                    "length": float(mask.sum(1).mean())})
    model.policy.eval()
    return model.policy, log


# --------------------------------------------------------------------------- the beta sweep


def run_dir(beta: float) -> str:
    """The folder, inside the ``ppo-sweep`` artifact, of the run with KL coefficient ``beta``."""
    return f"beta-{beta:g}"


def proxy_score(reward_models: dict, prompts: list[dict], rows: list[dict]) -> float:
    """The reward model's mean score of the non-empty replies of ``rows`` (``dpo.evaluate_policy``'s) to ``prompts``."""
    from .reward_model import score_responses

    answered = [(q, r) for q, r in zip(prompts, rows) if r["reply"].strip()]
    scores = score_responses(reward_models["model"], reward_models["tokenizer"], [q["messages"] for q, _ in answered],
                             [r["reply"] for _, r in answered])
    return float(scores.mean()) if len(scores) else float("nan")


def judge(cfg, model, tokenizer, reward_models: dict, prompts: list[dict]) -> tuple[list[dict], float]:
    """``model``'s greedy answers to ``prompts`` judged by the rules (``dpo.evaluate_policy``'s rows) and by the
    reward model (:func:`proxy_score`)."""
    from .dpo import evaluate_policy

    rows = evaluate_policy(model, tokenizer, prompts, max_new_tokens=cfg.alignment.max_new_tokens)
    return rows, proxy_score(reward_models, prompts, rows)


def judge_policy(cfg, policy, instruct, tokenizer, reward_models: dict, prompts: list[dict],
                 reference_rows: list[dict]) -> dict:
    """A trained policy on the held-out ``prompts``: ``gold``, ``score`` (:func:`judge`), ``kl`` to ``instruct`` per
    response (``dpo.sequence_kl``), ``summary`` (``dpo.summarize`` against instruct's ``reference_rows``) and
    ``rows`` (the judged answers)."""
    from .dpo import sequence_kl, summarize

    p = cfg.alignment
    rows, score = judge(cfg, policy, tokenizer, reward_models, prompts)
    summary = summarize(rows, reference_rows, resamples=p.bootstrap, seed=cfg.run.seed)
    return {"gold": summary["gold"], "score": score, "summary": summary, "rows": rows,
            "kl": sequence_kl(policy, instruct.model, tokenizer, prompts, max_new_tokens=p.max_new_tokens,
                              seed=cfg.run.seed)}


def ppo_sweep(cfg, instruct, reward_models: dict, *, progress: bool = False, save_dir=None) -> dict:
    """One PPO run per ``alignment.ppo_betas``, each judged on the held-out prompts against ``instruct``.

    ``{"runs": [{"beta", "gold", "score", "kl", "log", "summary", "rows", "seconds"}], "instruct": {"gold",
    "score", "summary", "rows"}}``: ``gold`` the mean gold reward of the greedy answers, ``score``
    the reward model's mean score of them (the proxy), ``kl`` the KL to ``instruct`` per
    response (``dpo.sequence_kl``), ``rows`` the judged answers (``dpo.evaluate_policy``).
    Plotting ``gold`` and ``score`` against ``sqrt(kl)`` gives Gao et al.'s over-optimisation
    curve. With ``save_dir``, each policy is saved (with the tokenizer) in ``save_dir/run_dir(beta)/final``.
    """
    import time

    from ..instruction.formatting import add_chat_template
    from .dpo import reply_reward, summarize
    from .reward_experiments import held_out_prompts, training_prompts

    p = cfg.alignment
    tokenizer = add_chat_template(instruct.tokenizer)
    test = held_out_prompts(cfg)
    reference_rows, reference_score = judge(cfg, instruct.model, tokenizer, reward_models, test)
    out = {"instruct": {"gold": summarize(reference_rows)["gold"], "score": reference_score,
                        "summary": summarize(reference_rows), "rows": reference_rows}, "runs": []}
    for beta in p.ppo_betas:
        start = time.perf_counter()
        ppo_cfg = PPOConfig(beta=beta, iterations=p.ppo_iterations, batch_size=p.ppo_batch_size, lr=p.ppo_lr,
                            max_new_tokens=p.ppo_max_new_tokens, seed=cfg.run.seed)
        policy, log = train_ppo(instruct, tokenizer, reward_models["model"], reward_models["tokenizer"],
                                training_prompts(cfg), ppo_cfg, gold=reply_reward, progress=progress)
        judged = judge_policy(cfg, policy, instruct, tokenizer, reward_models, test, reference_rows)
        out["runs"].append({"beta": beta, **judged, "log": log, "seconds": time.perf_counter() - start})
        if save_dir is not None:
            policy.save_pretrained(Path(save_dir) / run_dir(beta) / "final")
            tokenizer.save_pretrained(Path(save_dir) / run_dir(beta) / "final")
    return out
