"""How well a ranking finds the relevant passages: recall@k, MRR and nDCG@k (검색 평가 지표).

Each function takes one query's ranking (passage ids, best first) and the set of ids
relevant to it; :func:`evaluate` averages them over queries. Relevance is binary.

- recall@k, as dense-retrieval papers (DPR) and RAG use it: 1 when at least one relevant
  passage is among the first k, else 0; averaged, the share of questions whose reader
  would see an answer-bearing passage among k;
- reciprocal rank: 1 / the rank of the first relevant passage (0 when none is ranked);
  its mean is MRR;
- nDCG@k: DCG = sum over ranks i <= k of rel_i / log2(i + 1), divided by the DCG of the
  ideal ranking (all min(k, |relevant|) relevant passages first), so 1 is perfect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1.0 when a relevant id is among the first ``k`` of ``ranked``, else 0.0."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(any(r in relevant for r in ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    """1 / rank (1-based) of the first relevant id in ``ranked``; 0.0 when there is none."""
    return next((1.0 / i for i, r in enumerate(ranked, 1) if r in relevant), 0.0)


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Normalized discounted cumulative gain of the first ``k`` ids (binary relevance), in [0, 1]."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, r in enumerate(ranked[:k], 1) if r in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def evaluate(rankings: Sequence[Sequence[str]], relevants: Sequence[set[str]], ks=(1, 5, 20),
             ndcg_k: int = 10) -> dict[str, float]:
    """Means over queries: ``recall@k`` for each of ``ks``, ``mrr`` and ``ndcg@{ndcg_k}``, plus ``n`` (queries)."""
    if len(rankings) != len(relevants):
        raise ValueError(f"{len(rankings)} rankings but {len(relevants)} relevance sets")
    if not rankings:
        raise ValueError("no queries to evaluate")
    n = len(rankings)
    out = {f"recall@{k}": sum(recall_at_k(r, rel, k) for r, rel in zip(rankings, relevants)) / n for k in ks}
    out["mrr"] = sum(reciprocal_rank(r, rel) for r, rel in zip(rankings, relevants)) / n
    out[f"ndcg@{ndcg_k}"] = sum(ndcg_at_k(r, rel, ndcg_k) for r, rel in zip(rankings, relevants)) / n
    out["n"] = n
    return out
