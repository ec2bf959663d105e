"""Sparse retrieval (희소 검색): Okapi BM25 from scratch, and a retriever over a :class:`Corpus`.

For a query q (a list of tokens; a token given twice counts twice) and a passage d::

    score(q, d) = sum over t in q of  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

``tf(t, d)``: how often t occurs in d; ``|d|``: d's length in tokens; ``avgdl``: the mean
length; ``N``: passages; ``df(t)``: passages that contain t. ``k1`` caps what repeating a
word earns (1.5: the 10th occurrence adds little), ``b`` how much long passages are
discounted (0: not at all, 1: fully).

Variants differ in two places. The IDF above is Lucene's, which stays positive for a word
in every passage; Robertson's ``ln((N - df + 0.5) / (df + 0.5))`` (``rank_bm25``'s
``BM25Okapi``, with a floor of ``epsilon`` times the mean IDF) goes negative for words in
more than half the passages. Robertson's numerator also has a factor ``(k1 + 1)``: it
multiplies every score of a query by the same number, so rankings do not change; Lucene
and ``bm25s`` leave it out, and so does this module, whose scores equal ``bm25s``'s
(``method="lucene"``, the default) on the same tokens.
"""

from __future__ import annotations

import collections

import numpy as np
from scipy import sparse

from .corpus import Corpus, QueryError, Ranking, check_k, check_query
from .tokens import tokenize


class BM25:
    """BM25 scores of every passage, computed eagerly: one weight per (passage, token) pair it contains.

    ``corpus_tokens``: one token list per passage. ``weights`` is an (N, V) sparse matrix of
    ``idf(t) * tf / (tf + k1 * norm(d))``, so a query's scores are a sum of its columns.
    """

    def __init__(self, corpus_tokens: list[list[str]], k1: float = 1.5, b: float = 0.75):
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        rows, cols, tf = [], [], []
        for d, tokens in enumerate(corpus_tokens):
            for token, count in collections.Counter(tokens).items():
                rows.append(d)
                cols.append(self.vocab.setdefault(token, len(self.vocab)))
                tf.append(count)
        rows, cols, tf = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(tf, dtype=np.float64)
        self.n_docs = len(corpus_tokens)
        self.doc_len = np.array([len(t) for t in corpus_tokens], dtype=np.float64)  # (N,) tokens
        self.avgdl = float(self.doc_len.mean()) if self.n_docs else 0.0
        df = np.bincount(cols, minlength=len(self.vocab))  # (V,) passages containing each token
        self.idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))  # (V,) Lucene's IDF, > 0
        norm = k1 * (1 - b + b * self.doc_len / max(self.avgdl, 1e-12))  # (N,)
        weight = self.idf[cols] * tf / (tf + norm[rows])
        self.weights = sparse.csc_matrix((weight, (rows, cols)), shape=(self.n_docs, len(self.vocab)))  # (N, V)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """(N,) float64: the BM25 score of every passage; tokens the corpus never uses add nothing."""
        ids = [self.vocab[t] for t in query_tokens if t in self.vocab]
        return np.asarray(self.weights[:, ids].sum(axis=1)).ravel()

    def top_k(self, query_tokens: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices (k,), scores (k,)) of the ``k`` best passages; ties go to the earlier passage."""
        check_k(k, self.n_docs)
        s = self.scores(query_tokens)
        order = np.argsort(-s, kind="stable")[:k]
        return order, s[order]


class SparseRetriever:
    """BM25 over a :class:`Corpus`: each passage tokenized in its own language, Korean by scheme ``ko``."""

    def __init__(self, corpus: Corpus, ko: str = "morpheme", k1: float = 1.5, b: float = 0.75):
        self.corpus, self.ko = corpus, ko
        self.bm25 = BM25([tokenize(t, lang, ko) for t, lang in zip(corpus.texts, corpus.langs)], k1, b)

    def search(self, query: str, k: int, lang: str = "en") -> Ranking:
        """The ``k`` best passages for ``query`` written in ``lang``, as (id, score) pairs."""
        tokens = tokenize(check_query(query), lang, self.ko)
        if not tokens:
            raise QueryError(f"query {query!r} has no word to match (only punctuation or symbols)")
        order, scores = self.bm25.top_k(tokens, k)
        return [(self.corpus.ids[i], float(s)) for i, s in zip(order, scores)]

    def search_many(self, queries: list[str], k: int, langs: list[str]) -> list[Ranking]:
        """:meth:`search` for each query and its language."""
        return [self.search(q, k, lang) for q, lang in zip(queries, langs, strict=True)]
