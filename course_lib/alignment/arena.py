"""The arena (Chatbot Arena, 챗봇 아레나): pairwise battles between models, online Elo and Bradley-Terry ratings.

Each battle puts two models' answers to one held-out prompt side by side; a judge picks
the better one. Here the judge is the gold reward (the rules) or, as an "LLM judge"
stand-in, a reward model; an equal score is a tie, which counts half a win for each.

Two ways to turn battles into ratings, as Chatbot Arena reported them:

- *online Elo* (:func:`elo_ratings`): after each battle, ``R_a += K (S_a - E_a)`` with
  ``E_a = 1 / (1 + 10^((R_b - R_a) / 400))``; the result depends on the battles' order;
- *Bradley-Terry* maximum likelihood (:func:`bt_ratings`, ``bradley_terry.fit_scores``) on
  all the battles at once, order-free, shown on Elo's scale
  (``400 / ln 10`` points per unit of score, centred at 1000), with a bootstrap 95%
  interval from battles resampled with replacement.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .bradley_terry import fit_scores

ELO_SCALE = 400 / math.log(10)  # Elo points per unit of Bradley-Terry score
ELO_BASE = 1000.0


def battles(answers: dict[str, list[dict]], judge) -> list[dict]:
    """Every pair of models on every prompt: ``{"a", "b", "prompt", "winner"}`` (``winner`` is a name or "tie").

    ``answers[model]`` is one row per prompt (``dpo.evaluate_policy``'s, same prompts in the
    same order); ``judge(model, i) -> float`` scores model's answer to prompt ``i``.
    """
    names = list(answers)
    n = len(next(iter(answers.values())))
    if any(len(rows) != n for rows in answers.values()):
        raise ValueError("every model must answer the same prompts")
    out = []
    for i in range(n):
        scores = {m: judge(m, i) for m in names}
        for a, b in itertools.combinations(names, 2):
            winner = a if scores[a] > scores[b] else b if scores[b] > scores[a] else "tie"
            out.append({"a": a, "b": b, "prompt": i, "winner": winner})
    return out


def elo_ratings(battles_: list[dict], names: list[str], *, k: float = 4.0, seed: int | None = None) -> dict[str, float]:
    """Online Elo after the battles in order (shuffled first when ``seed`` is given), starting at ``ELO_BASE``."""
    order = list(battles_)
    if seed is not None:
        np.random.default_rng(seed).shuffle(order)
    rating = dict.fromkeys(names, ELO_BASE)
    for b in order:
        expected = 1 / (1 + 10 ** ((rating[b["b"]] - rating[b["a"]]) / 400))
        actual = 1.0 if b["winner"] == b["a"] else 0.0 if b["winner"] == b["b"] else 0.5
        rating[b["a"]] += k * (actual - expected)
        rating[b["b"]] -= k * (actual - expected)
    return rating


def _pairs(battles_: list[dict], index: dict[str, int]) -> list[tuple[int, int]]:
    """(winner, loser) pairs; a tie counts as one win each way (half a win each, doubled)."""
    pairs = []
    for b in battles_:
        a, c = index[b["a"]], index[b["b"]]
        if b["winner"] == "tie":
            pairs += [(a, c), (c, a)]
        else:
            pairs += [(a, c), (a, c)] if b["winner"] == b["a"] else [(c, a), (c, a)]
    return pairs


def bt_ratings(battles_: list[dict], names: list[str], *, resamples: int = 1000, seed: int = 0,
               prior: float = 0.5) -> dict[str, dict]:
    """Bradley-Terry ratings on Elo's scale with bootstrap 95% intervals: ``{name: {"rating", "low", "high"}}``.

    ``prior`` (virtual wins and losses against an average model) keeps a model that never
    wins (or never loses) at a finite rating.
    """
    if not battles_:
        raise ValueError("no battles to rate")
    index = {m: i for i, m in enumerate(names)}

    def rate(sample) -> np.ndarray:
        return (fit_scores(_pairs(sample, index), len(names), prior=prior) * ELO_SCALE + ELO_BASE).numpy()

    point = rate(battles_)
    rng = np.random.default_rng(seed)
    boot = np.stack([rate([battles_[j] for j in rng.integers(0, len(battles_), len(battles_))])
                     for _ in range(resamples)])
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {m: {"rating": float(point[i]), "low": float(low[i]), "high": float(high[i])} for m, i in index.items()}


def win_rates(battles_: list[dict], names: list[str]) -> dict[str, dict[str, float]]:
    """``rates[a][b]``: the share of a-vs-b battles that ``a`` won (a tie counts half)."""
    rates = {a: {} for a in names}
    for a, b in itertools.permutations(names, 2):
        mine = [x for x in battles_ if {x["a"], x["b"]} == {a, b}]
        if mine:
            rates[a][b] = sum(1.0 if x["winner"] == a else 0.5 if x["winner"] == "tie" else 0.0 for x in mine) / len(mine)
    return rates


def reward_model_judge(reward_model, tokenizer, prompts: list[dict], answers: dict[str, list[dict]]):
    """A judge from a reward model: its score of each model's answer (an empty answer scores ``-inf``)."""
    from .reward_model import score_responses

    table = {}
    for name, rows in answers.items():
        said = [i for i, r in enumerate(rows) if r["reply"].strip()]
        scores = score_responses(reward_model, tokenizer, [prompts[i]["messages"] for i in said],
                                 [rows[i]["reply"] for i in said]) if said else torch.zeros(0)
        table[name] = dict.fromkeys(range(len(rows)), -math.inf) | dict(zip(said, scores.tolist()))
    return lambda model, i: table[model][i]
