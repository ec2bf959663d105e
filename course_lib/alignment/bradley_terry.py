"""The Bradley-Terry 모델: from pairwise comparisons to scores, and back to preference probabilities (선호도 분포).

Each item ``i`` (a response style, a model in an arena) has a score ``r_i``; the chance
that ``a`` is preferred to ``b`` is ``sigma(r_a - r_b) = 1 / (1 + exp(-(r_a - r_b)))``.
This is the model a reward model is trained under: its pairwise loss is the negative
log-likelihood of the observed preferences. Only differences of scores matter, so fitted
scores are reported centred (mean 0).

:func:`fit_scores` finds the maximum-likelihood scores from ``(winner, loser)`` pairs with
Hunter's (2004) minorize-maximize updates: each step raises the likelihood, and from any
start it converges when every item has won and lost against the rest (the comparison
graph is strongly connected); otherwise the likelihood has no maximum and a small
``prior`` (one virtual win and loss against an average item) keeps the scores finite.
"""

from __future__ import annotations

import math

import torch


def preference_probability(r_a, r_b):
    """P(a preferred to b) = sigma(r_a - r_b), element-wise for tensors, a float for numbers."""
    if isinstance(r_a, torch.Tensor) or isinstance(r_b, torch.Tensor):
        return torch.sigmoid(torch.as_tensor(r_a) - torch.as_tensor(r_b))
    return 1.0 / (1.0 + math.exp(-(r_a - r_b)))


def win_matrix(pairs, num_items: int) -> torch.Tensor:
    """``W[i, j]`` = how often ``i`` beat ``j`` in ``pairs`` (``(winner, loser)`` item indices); float64."""
    wins = torch.zeros(num_items, num_items, dtype=torch.float64)
    for k, (w, l) in enumerate(pairs):
        if not (0 <= w < num_items and 0 <= l < num_items):
            raise ValueError(f"pair {k}: items ({w}, {l}) are not in [0, {num_items})")
        if w == l:
            raise ValueError(f"pair {k}: item {w} is compared with itself")
        wins[w, l] += 1
    return wins


def fit_scores(pairs, num_items: int, *, prior: float = 0.0, tol: float = 1e-10,
               max_iter: int = 10_000) -> torch.Tensor:
    """Maximum-likelihood Bradley-Terry scores ``(num_items,)``, centred, from ``(winner, loser)`` pairs.

    Minorize-maximize on strengths ``p_i = exp(r_i)``: ``p_i <- W_i / sum_j n_ij / (p_i + p_j)``,
    where ``W_i`` is ``i``'s wins and ``n_ij`` the comparisons of ``i`` and ``j``. ``prior``
    adds that many wins and losses of every item against a virtual item of score 0.
    Stops when no score moves by more than ``tol``.
    """
    wins = win_matrix(pairs, num_items)
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    games = wins + wins.T  # n_ij
    won = wins.sum(1) + prior
    if prior == 0 and bool((won == 0).any()):
        raise ValueError(f"items {torch.nonzero(won == 0).flatten().tolist()} never win: their maximum-likelihood "
                         "score is minus infinity; pass prior > 0")
    p = torch.ones(num_items, dtype=torch.float64)
    for _ in range(max_iter):
        denominator = (games / (p[:, None] + p[None, :])).sum(1) + 2 * prior / (p + 1.0)
        new = won / denominator
        new = new / torch.exp(torch.log(new).mean())  # the scale is free: fix the geometric mean at 1
        done = bool((torch.log(new) - torch.log(p)).abs().max() < tol)
        p = new
        if done:
            break
    r = torch.log(p)
    return r - r.mean()


def log_likelihood(scores: torch.Tensor, pairs) -> float:
    """The log-likelihood of ``pairs`` under ``scores``: ``sum log sigma(r_winner - r_loser)``."""
    w = torch.tensor([a for a, _ in pairs])
    l = torch.tensor([b for _, b in pairs])
    return float(torch.nn.functional.logsigmoid(scores[w] - scores[l]).sum())
