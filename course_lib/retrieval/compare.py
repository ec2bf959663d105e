"""Sparse, dense and hybrid retrieval side by side on the world's held-out questions, per language.

:func:`retrieval_table` returns one row per (method, language) with recall@1/5/20, MRR
and nDCG@10 (``metrics.evaluate``):

- ``bm25 whitespace``, ``bm25 bigram``, ``bm25 morpheme``: BM25 with each Korean
  tokenization (English is split into words by all three; its rows differ only through the
  corpus statistics that the Korean passages share, the mean passage length);
- ``dense``: the zoo's index (``retrieval.encoder``, the course's bi-encoder by default);
- ``minilm``: all-MiniLM-L6-v2, a general English encoder never trained on the world;
- ``hybrid rrf`` and ``hybrid weighted``: BM25 (``retrieval.ko_tokens``) fused with
  ``dense`` by reciprocal rank fusion (``retrieval.rrf_k``) and by min-max scaled scores
  (``retrieval.dense_weight`` on the dense side).

Every method returns its best ``depth`` passages per question, the pool that fusion reorders.
"""

from __future__ import annotations

from .. import zoo
from ..config import Config
from .bm25 import SparseRetriever
from .corpus import EVAL_SPLITS, Corpus, Ranking, eval_queries
from .dense import load_encoder, load_minilm
from .hybrid import reciprocal_rank_fusion, weighted_fusion
from .index import DenseIndex, DenseRetriever
from .metrics import evaluate
from .tokens import KO_SCHEMES


def sparse_rankings(corpus: Corpus, queries: list[dict], depth: int, cfg: Config) -> dict[str, list[Ranking]]:
    """``bm25 <scheme>`` -> one ranking per query, for each Korean tokenization."""
    r = cfg.retrieval
    out = {}
    for scheme in KO_SCHEMES:
        retriever = SparseRetriever(corpus, scheme, r.k1, r.b)
        out[f"bm25 {scheme}"] = retriever.search_many([q["question"] for q in queries], depth,
                                                      [q["lang"] for q in queries])
    return out


def dense_rankings(cfg: Config, queries: list[dict], depth: int, minilm: bool) -> dict[str, list[Ranking]]:
    """``dense`` (the zoo's index) and, with ``minilm``, ``minilm`` (its index built here) -> rankings."""
    index = zoo.get("retrieval-index", cfg)
    texts = [q["question"] for q in queries]
    out = {"dense": DenseRetriever(load_encoder(cfg), index).search_many(texts, depth)}
    if minilm:
        encoder = load_minilm()
        out["minilm"] = DenseRetriever(encoder, DenseIndex.build(index.corpus, encoder)).search_many(texts, depth)
    return out


def retrieval_rankings(cfg: Config, queries: list[dict], depth: int = 100, minilm: bool = True) -> dict[str, list]:
    """Method name -> one ranking (list of (id, score), best first) per query, hybrids included."""
    corpus = zoo.get("retrieval-index", cfg).corpus
    rankings = sparse_rankings(corpus, queries, depth, cfg) | dense_rankings(cfg, queries, depth, minilm)
    sparse, dense, w = rankings[f"bm25 {cfg.retrieval.ko_tokens}"], rankings["dense"], cfg.retrieval.dense_weight
    rankings["hybrid rrf"] = [reciprocal_rank_fusion([s, d], cfg.retrieval.rrf_k, depth) for s, d in zip(sparse, dense)]
    rankings["hybrid weighted"] = [weighted_fusion([s, d], [1 - w, w], depth) for s, d in zip(sparse, dense)]
    return rankings


def retrieval_table(cfg: Config, splits=EVAL_SPLITS, depth: int = 100, minilm: bool = True) -> list[dict]:
    """Rows ``{"method", "lang", "recall@1", "recall@5", "recall@20", "mrr", "ndcg@10", "n"}`` on ``splits``."""
    corpus = zoo.get("retrieval-index", cfg).corpus
    queries = eval_queries(cfg, corpus, splits)
    rankings = retrieval_rankings(cfg, queries, min(depth, len(corpus)), minilm)
    rows = []
    for method, per_query in rankings.items():
        for lang in ("en", "ko"):
            picked = [i for i, q in enumerate(queries) if q["lang"] == lang]
            if picked:
                scores = evaluate([[pid for pid, _ in per_query[i]] for i in picked],
                                  [set(queries[i]["relevant"]) for i in picked])
                rows.append({"method": method, "lang": lang, **scores})
    return rows
