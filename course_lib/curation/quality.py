"""Model-based quality filtering (모델 기반 필터링): a quality classifier and CCNet perplexity buckets.

- ``HashedNgrams`` + ``LogisticRegression``: the GPT-3 / Brown et al. recipe in
  small: word n-grams hashed into a fixed number of buckets, a linear model
  trained to tell reference text (the encyclopedia) from raw web text; its
  probability is a quality score, and ``precision_recall_curve`` shows what
  each threshold keeps.
- ``CharNgramLM`` + ``perplexity_buckets``: CCNet (Wenzek et al. 2020) scores
  each document with a language model trained on Wikipedia and splits each
  language at the 30th and 60th perplexity percentiles into head, middle and
  tail. Here the model is a from-scratch character n-gram model with
  Witten-Bell interpolation (characters, so English and Korean need no
  tokenizer).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .. import checks
from .dedup import normalize_text

# ---------------------------------------------------------------------- features


class HashedNgrams:
    """Word 1..``max_n``-grams of ``normalize_text`` hashed (CRC-32) into ``n_features`` buckets.

    ``transform`` returns a (N, n_features) CSR matrix of log(1 + count), each
    row scaled to unit L2 norm, so long and short documents are comparable.
    """

    def __init__(self, n_features: int = 2 ** 18, max_n: int = 2):
        self.n_features, self.max_n = n_features, max_n

    def buckets(self, text: str) -> Counter:
        ws = normalize_text(text).split()
        grams = (" ".join(ws[i:i + n]) for n in range(1, self.max_n + 1) for i in range(len(ws) - n + 1))
        return Counter(zlib.crc32(g.encode("utf-8")) % self.n_features for g in grams)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, text in enumerate(checks.texts("texts", texts)):
            counts = self.buckets(text)
            if not counts:
                continue
            v = np.log1p(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            rows += [i] * len(counts)
            cols += list(counts)
            vals += (v / np.linalg.norm(v)).tolist()
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), self.n_features))


# ---------------------------------------------------------------------- logistic regression


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^-z), without overflow


class LogisticRegression:
    """Binary logistic regression with an L2 penalty, by Nesterov-accelerated gradient descent.

    Minimizes ``C * sum_i logloss(y_i, sigmoid(w.x_i + b)) + 0.5 * |w|^2`` (the
    objective of scikit-learn's ``LogisticRegression(C=C)``; the bias is not
    penalized). The step is 1/L with L the gradient's Lipschitz constant, so it
    converges without tuning; momentum restarts when it points uphill
    (O'Donoghue and Candes 2015). Stops when the gradient norm is below ``tol``.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 5000, tol: float = 1e-4):
        self.C, self.max_iter, self.tol = C, max_iter, tol
        self.coef_: np.ndarray | None = None
        self.intercept_ = 0.0

    def _lipschitz(self, X) -> float:
        """C/4 * largest eigenvalue of [X 1]^T [X 1] (power iteration) + 1."""
        v = np.ones(X.shape[1] + 1) / math.sqrt(X.shape[1] + 1)
        for _ in range(50):
            u = X @ v[:-1] + v[-1]
            w = np.append(X.T @ u, u.sum())
            v = w / np.linalg.norm(w)
        return self.C / 4 * float(np.linalg.norm(w)) + 1.0

    def _grad(self, X, y, w, b):
        p = sigmoid(X @ w + b)
        r = self.C * (p - y)
        return X.T @ r + w, r.sum()

    def fit(self, X, y) -> LogisticRegression:
        """``X``: (N, F) array or sparse matrix; ``y``: (N,) of 0/1."""
        y = np.asarray(y, dtype=np.float64)
        step = 1.0 / self._lipschitz(X)
        w = np.zeros(X.shape[1])
        b = 0.0
        w_prev, b_prev, t = w, b, 0
        for _ in range(self.max_iter):
            t += 1
            mom = (t - 1) / (t + 2)
            vw, vb = w + mom * (w - w_prev), b + mom * (b - b_prev)
            gw, gb = self._grad(X, y, vw, vb)
            if np.sqrt(gw @ gw + gb * gb) < self.tol:
                w, b = vw, vb
                break
            if gw @ (w - w_prev) + gb * (b - b_prev) > 0:  # momentum points uphill: restart it
                t = 0
            w_prev, b_prev = w, b
            w, b = vw - step * gw, vb - step * gb
        self.coef_, self.intercept_ = w, float(b)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(N,) probability of class 1."""
        return sigmoid(X @ self.coef_ + self.intercept_)


class QualityClassifier:
    """Hashed n-grams + logistic regression: P(text looks like the reference corpus)."""

    def __init__(self, n_features: int = 2 ** 18, max_n: int = 2, C: float = 1.0):
        self.features = HashedNgrams(n_features, max_n)
        self.model = LogisticRegression(C=C)

    def fit(self, good: Sequence[str], bad: Sequence[str]) -> QualityClassifier:
        good, bad = checks.texts("good", good), checks.texts("bad", bad)
        X = self.features.transform(good + bad)
        self.model.fit(X, np.r_[np.ones(len(good)), np.zeros(len(bad))])
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) quality scores in [0, 1]."""
        return self.model.predict_proba(self.features.transform(texts))


def precision_recall_curve(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of "keep if score >= t" for every distinct score t (ascending).

    Returns (precision, recall, thresholds) like scikit-learn: ``precision`` and
    ``recall`` have one more entry than ``thresholds``, ending at precision 1,
    recall 0 (keep nothing); recall is non-increasing.
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score, descending
    tp = np.cumsum(y)[last]
    kept = last + 1
    precision, recall = tp / kept, tp / max(1, y.sum())
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], s[last][::-1]


# ---------------------------------------------------------------------- CCNet perplexity buckets


class CharNgramLM:
    """A character ``order``-gram language model with Witten-Bell interpolation.

    P(c | h) = (C(h c) + T(h) * P(c | h')) / (C(h) + T(h)), where h' drops the
    oldest character of h and T(h) is the number of distinct characters seen
    after h; the recursion ends in a uniform distribution over the training
    characters plus one unknown. Texts are NFC (as the world is); a document
    is padded with ``order - 1`` start marks.
    """

    BOS = "\x02"
    UNK = "\x00"

    def __init__(self, order: int = 4):
        self.order = order
        self.counts: dict[str, Counter] = defaultdict(Counter)  # history -> next-char counts, all lengths < order
        self.vocab: set[str] = set()

    def fit(self, texts: Sequence[str]) -> CharNgramLM:
        for text in checks.texts("texts", texts):
            padded = self.BOS * (self.order - 1) + text
            self.vocab.update(text)
            for i in range(self.order - 1, len(padded)):
                for k in range(self.order):
                    self.counts[padded[i - k:i]][padded[i]] += 1
        self.vocab.add(self.UNK)
        self._totals = {h: (sum(c.values()), len(c)) for h, c in self.counts.items()}
        return self

    def prob(self, history: str, ch: str) -> float:
        """P(ch | the last ``order - 1`` characters of ``history``)."""
        ch = ch if ch in self.vocab else self.UNK
        p = 1.0 / len(self.vocab)
        for k in range(0, self.order):
            h = history[len(history) - k:] if k else ""
            if len(h) < k or h not in self._totals:
                break
            total, types = self._totals[h]
            p = (self.counts[h][ch] + types * p) / (total + types)
        return p

    def log_prob(self, text: str) -> float:
        """Natural-log probability of ``text`` (each character given the ones before it)."""
        padded = self.BOS * (self.order - 1) + checks.text("text", text)
        return sum(math.log(self.prob(padded[i - self.order + 1:i], padded[i]))
                   for i in range(self.order - 1, len(padded)))

    def perplexity(self, text: str) -> float:
        """exp(-log P(text) / characters); inf for an empty text."""
        text = checks.text("text", text)
        return math.exp(-self.log_prob(text) / len(text)) if text else math.inf


BUCKETS = ("head", "middle", "tail")


def perplexity_buckets(perplexities: Sequence[float], langs: Sequence[str],
                       cuts: tuple[float, float] = (30.0, 60.0)) -> list[str]:
    """CCNet's split: per language, ``head`` up to the 30th percentile of perplexity, ``middle`` up to the
    60th, ``tail`` above (lower perplexity = closer to the reference corpus)."""
    ppl = np.asarray(checks.sequence("perplexities", perplexities, "numbers"), dtype=np.float64)
    langs = np.asarray(checks.texts("langs", langs))
    if len(langs) != len(ppl):
        raise ValueError(f"langs: expected one per perplexity ({len(ppl)}), got {len(langs)}")
    out = np.empty(len(ppl), dtype=object)
    for lang in np.unique(langs):
        mask = langs == lang
        lo, hi = np.percentile(ppl[mask], cuts)
        out[mask] = np.where(ppl[mask] <= lo, "head", np.where(ppl[mask] <= hi, "middle", "tail"))
    return out.tolist()
