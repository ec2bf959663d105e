"""The losses of learning from human feedback, from scratch: the reward model's, DPO's, and PPO's pieces.

Reward model (보상 모델): a scalar ``r(x, y)`` per prompt and response, trained on pairs
with ``-log sigma(r_chosen - r_rejected - margin)`` (LLaMA-2 adds a margin that grows with
how clearly the annotator preferred one response; 0 recovers the Bradley-Terry loss).

DPO (direct preference optimization): no reward model; the policy's log-probability ratio to the
reference is the implicit reward, ``beta * (log pi(y|x) - log pi_ref(y|x))``, and the loss is
the Bradley-Terry loss on those rewards. When the policy equals the reference every
implicit reward is 0 and the loss is ``ln 2 = 0.693``: where every DPO run starts.

PPO (Proximal Policy Optimization: 강화학습 kept near the reference by a KL-divergence 제약),
per token of a sampled response, with ``mask`` marking the response tokens:

- the KL to the reference, estimated from the sampled tokens: ``k1 = log pi - log pi_ref``
  (unbiased, can be negative) and ``k3 = (ratio - 1) - log ratio`` with
  ``ratio = pi_ref / pi`` (unbiased, never negative, lower variance; Schulman 2020);
- the per-token reward: ``-beta * KL`` at every token and the reward model's score added
  at the last one;
- GAE(gamma, lambda): ``delta_t = r_t + gamma V_{t+1} - V_t``,
  ``A_t = delta_t + gamma lambda A_{t+1}``; returns ``A_t + V_t``;
- the clipped policy loss ``-min(ratio A, clip(ratio, 1 - eps, 1 + eps) A)``, the clipped
  value loss ``0.5 max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)`` and the entropy.

Shapes: ``(batch,)`` for per-sequence values, ``(batch, seq)`` for per-token ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the positions where ``mask`` is 1 (a scalar)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


# --------------------------------------------------------------------------- reward model and DPO


def reward_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """The reward model's pairwise loss, ``mean(-log sigma(r_chosen - r_rejected - margin))``; ``(batch,)`` inputs."""
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def completion_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """``log pi(y | x)`` per sequence, ``(batch,)``: the summed log-probabilities of the completion tokens.

    ``logits`` ``(batch, seq, vocab)`` come from a causal LM on ``input_ids`` ``(batch, seq)``;
    position ``t``'s logits predict token ``t + 1``; ``completion_mask`` marks the response tokens.
    """
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = logps.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (batch, seq - 1)
    return (token_logps * completion_mask[:, 1:]).sum(1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss and the implicit rewards: ``(loss, chosen_rewards, rejected_rewards)``.

    Inputs are ``(batch,)`` sequence log-probabilities (:func:`completion_logps`) of the
    policy and the reference. ``rewards = beta * (policy - ref)``;
    ``loss = mean(-log sigma(chosen_rewards - rejected_rewards))``.
    """
    beta = _positive("beta", beta)
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen - rejected).mean(), chosen.detach(), rejected.detach()


# --------------------------------------------------------------------------- PPO


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``log pi - log pi_ref`` at the sampled tokens (unbiased; negative at some tokens)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``(ratio - 1) - log ratio``, ``ratio = pi_ref / pi`` (unbiased, >= 0)."""
    log_ratio = ref_logp - logp
    return torch.expm1(log_ratio) - log_ratio


def kl_penalized_rewards(score: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                         beta: float, estimator: str = "k1") -> torch.Tensor:
    """Per-token rewards ``(batch, seq)``: ``-beta * KL`` on each response token, plus ``score`` on the last one.

    ``score`` ``(batch,)`` is the reward model's score of the whole response; ``mask``
    marks the response tokens (at least one per row).
    """
    beta = _positive("beta", beta)
    estimate = {"k1": kl_k1, "k3": kl_k3}.get(estimator)
    if estimate is None:
        raise ValueError(f"unknown KL estimator {estimator!r}; estimators: k1, k3")
    if bool((mask.sum(1) == 0).any()):
        raise ValueError(f"rows {torch.nonzero(mask.sum(1) == 0).flatten().tolist()} have no response tokens")
    mask = mask.to(logp.dtype)
    rewards = -beta * estimate(logp, ref_logp) * mask
    last = (mask * torch.arange(mask.shape[1], dtype=logp.dtype)).argmax(1)  # the last response token of each row
    rewards[torch.arange(len(last)), last] += score
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimates and returns, both ``(batch, seq)``.

    ``rewards`` and ``values`` are per token; the episode ends after the last token, so
    ``V`` beyond it is 0. Masked-out tokens (padding) pass nothing back. Returns are
    ``advantages + values``: the value function's targets.
    """
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must be in [0, 1], got gamma={gamma}, lam={lam}")
    mask = torch.ones_like(rewards) if mask is None else mask.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = advantage * mask[:, t]
        next_value = torch.where(mask[:, t] > 0, values[:, t], next_value)
        next_advantage = torch.where(mask[:, t] > 0, advantage, next_advantage)
    return advantages, (advantages + values) * mask


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor | None = None, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate loss, ``masked_mean(-min(ratio A, clip(ratio, 1-clip, 1+clip) A))``."""
    clip = _positive("clip", clip)
    ratio = torch.exp(logp - old_logp)
    loss = -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return masked_mean(loss, torch.ones_like(loss) if mask is None else mask)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor | None = None, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped value loss, ``masked_mean(0.5 * max((V - R)^2, (V_old + clip(V - V_old) - R)^2))``."""
    clip = _positive("clip", clip)
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    loss = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return masked_mean(loss, torch.ones_like(loss) if mask is None else mask)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of each position's next-token distribution, ``(..., vocab) -> (...)``, in nats."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)
