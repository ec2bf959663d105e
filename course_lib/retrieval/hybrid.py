"""Hybrid retrieval (하이브리드 검색): fusing the rankings of a sparse and a dense retriever.

- Reciprocal rank fusion (RRF, Cormack et al. 2009): a passage's fused score is
  ``sum over rankings of 1 / (k + rank)`` (rank 1-based; k = 60 in the paper); a ranking
  that does not list the passage adds nothing. It reads only ranks, so BM25's unbounded
  scores and a cosine in [-1, 1] need no common scale.
- Weighted score fusion: each ranking's scores are min-max scaled to [0, 1] over the
  passages it lists, then ``sum of weight * scaled score`` (a missing passage scores 0
  in that ranking).

Both take rankings as lists of (passage id, score), best first, and return one such list,
ties broken by the id's first appearance (first ranking first).
"""

from __future__ import annotations

from collections.abc import Sequence

from .corpus import Ranking


def _ordered(scores: dict[str, float], k: int | None) -> Ranking:
    order = sorted(enumerate(scores.items()), key=lambda item: (-item[1][1], item[0]))  # dicts keep first appearance
    return [pair for _, pair in order][:k]


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = 60, top: int | None = None) -> Ranking:
    """RRF of ``rankings``: score(d) = sum of 1 / (``k`` + rank of d); the best ``top`` (all if None)."""
    if k < 0:
        raise ValueError(f"RRF's k must be >= 0, got {k}")
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (pid, _) in enumerate(ranking, 1):
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (k + rank)
    return _ordered(fused, top)


def min_max(ranking: Ranking) -> Ranking:
    """The ranking with scores scaled to [0, 1] (best 1, worst 0; all 1 when every score is equal)."""
    if not ranking:
        return []
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    return [(pid, (s - lo) / (hi - lo) if hi > lo else 1.0) for pid, s in ranking]


def weighted_fusion(rankings: Sequence[Ranking], weights: Sequence[float], top: int | None = None) -> Ranking:
    """score(d) = sum of weight_i * min-max scaled score of d in ranking i; the best ``top`` (all if None)."""
    if len(rankings) != len(weights):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for pid, s in min_max(ranking):
            fused[pid] = fused.get(pid, 0.0) + weight * s
    return _ordered(fused, top)
