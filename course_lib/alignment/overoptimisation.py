"""Reward over-optimisation (보상 과최적화) measured with best-of-n sampling, as Gao et al. (2022) measure it.

Best-of-n is the simplest way to optimise against a reward model: sample ``n`` responses
from the policy and keep the one the reward model scores highest. Its KL to the policy is
known in closed form, ``log n - (n - 1) / n`` nats, so ``n`` is a dial for how hard the
proxy is pushed, the same dial that a small ``beta`` is for PPO. As ``n`` grows the proxy
score of the kept response can only rise; the gold reward (the rules) rises with it while
the proxy and the rules agree, and turns down once the kept responses are the ones the
proxy over-rates (reward hacking).

For each prompt, ``samples`` responses are drawn once; the expected scores of best-of-``n``
for every ``n`` up to ``samples`` come from them exactly (:func:`best_of_n_expectation`), not
from resampling, so the curve has no sampling noise beyond the draw itself.
"""

from __future__ import annotations

import math

import torch


def bon_kl(n: int) -> float:
    """KL(best-of-n || policy) in nats: ``log n - (n - 1) / n`` (Stiennon et al. 2020; Gao et al. 2022)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return math.log(n) - (n - 1) / n


def best_of_n_expectation(proxy: list[float], gold: list[float], n: int) -> tuple[float, float]:
    """Expected (proxy, gold) of the response best-of-``n`` keeps, among ``N = len(proxy)`` drawn responses.

    A random ``n``-subset of the ``N`` responses keeps its highest-proxy member; the
    response ranked ``i``-th lowest by proxy (1-based) is that member with probability
    ``C(i - 1, n - 1) / C(N, n)``. Ties in the proxy are broken by draw order.
    """
    if len(proxy) != len(gold) or not proxy:
        raise ValueError(f"proxy and gold must be equally long and non-empty, got {len(proxy)} and {len(gold)}")
    if not isinstance(n, int) or not 1 <= n <= len(proxy):
        raise ValueError(f"n must be an int in [1, {len(proxy)}] (the responses drawn), got {n!r}")
    order = sorted(range(len(proxy)), key=lambda i: proxy[i])
    total = math.comb(len(proxy), n)
    weights = [math.comb(rank, n - 1) / total for rank in range(len(proxy))]  # rank = i - 1
    return (sum(w * proxy[j] for w, j in zip(weights, order)), sum(w * gold[j] for w, j in zip(weights, order)))


@torch.no_grad()
def best_of_n_curve(policy, tokenizer, reward_model, prompts: list[dict], *, samples: int = 16,
                    ns: tuple[int, ...] | None = None, max_new_tokens: int = 32, seed: int = 0, gold=None,
                    batch_size: int = 64) -> dict:
    """Proxy and gold reward of best-of-``n`` against ``n`` and its KL, on ``prompts``.

    ``samples`` responses per prompt are drawn from ``policy`` (temperature 1, as PPO's
    rollouts: ``ppo.rollout``), each scored by ``reward_model`` (the proxy, ``ppo.reward_scores``)
    and by ``gold(prompt_row, reply)`` (default ``dpo.reply_reward``). Returns ``{"samples",
    "curve": [{"n", "kl", "proxy", "gold"}]}``, the means over prompts, for ``ns`` (default:
    the powers of two up to ``samples``).
    """
    from .dpo import reply_reward
    from .ppo import reward_scores, rollout

    gold = gold or reply_reward
    if not prompts:
        raise ValueError("no prompts to sample")
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    ns = tuple(ns) if ns is not None else tuple(2**k for k in range(int(math.log2(samples)) + 1))
    flat = [p for p in prompts for _ in range(samples)]
    proxy, golds = [], []
    for i in range(0, len(flat), batch_size):
        chunk = flat[i : i + batch_size]
        roll = rollout(policy, tokenizer, chunk, max_new_tokens, seed * 100_003 + i)
        proxy += reward_scores(reward_model, roll["ids"], roll["attention_mask"], tokenizer.pad_token_id).tolist()
        golds += [gold(p, t) for p, t in zip(chunk, roll["texts"])]
    curve = []
    for n in ns:
        per_prompt = [best_of_n_expectation(proxy[j : j + samples], golds[j : j + samples], n)
                      for j in range(0, len(flat), samples)]
        curve.append({"n": n, "kl": bon_kl(n), "proxy": sum(p for p, _ in per_prompt) / len(per_prompt),
                      "gold": sum(g for _, g in per_prompt) / len(per_prompt)})
    return {"samples": samples, "prompts": len(prompts), "curve": curve}


def turning_point(curve: list[dict]) -> dict:
    """Where the gold reward peaks on ``curve`` (rows with ``proxy`` and ``gold``, in order of KL), and what follows.

    ``{"peak": the row of highest gold, "last": the last row, "gold_falls": the last row's gold
    is below the peak's, "proxy_rises": the last row's proxy is above the peak's}``: both true
    is Gao et al.'s over-optimisation, the proxy still climbing while the truth declines.
    """
    if not curve:
        raise ValueError("an empty curve has no turning point")
    peak = max(curve, key=lambda r: r["gold"])
    last = curve[-1]
    return {"peak": peak, "last": last, "gold_falls": last["gold"] < peak["gold"],
            "proxy_rises": last["proxy"] > peak["proxy"]}
