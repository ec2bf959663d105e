"""Model-based filtering: hashed features, logistic regression and PR curve against scikit-learn,
the character n-gram LM (normalization, hand values), CCNet buckets, and the effect on the world's labels."""

import collections
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve

from course_lib.config import load_config
from course_lib.curation import quality as Q
from course_lib.curation.filters import LOW_QUALITY_FLAGS
from course_lib.world import load


@pytest.fixture(scope="module")
def docs():
    return load("documents", load_config("laptop")).to_list()


def is_low_quality(doc):
    return bool(set(doc["quality_flags"]) & set(LOW_QUALITY_FLAGS))


# ---------------------------------------------------------------------- features and the classifier


def test_hashed_ngrams_by_hand():
    f = Q.HashedNgrams(n_features=2 ** 20, max_n=2)
    assert sum(f.buckets("the cat the cat").values()) == 4 + 3  # 4 unigrams + 3 bigrams
    X = f.transform(["the cat the cat", "", "고양이가 있다"])
    assert X.shape == (3, 2 ** 20)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, [1.0, 0.0, 1.0])
    # "the" and "cat" twice -> log(3); "the cat" twice -> log(3); "cat the" once -> log(2)
    np.testing.assert_allclose(sorted(X[0].data), sorted(np.array([math.log(3)] * 3 + [math.log(2)])
                                                        / math.sqrt(3 * math.log(3) ** 2 + math.log(2) ** 2)))


def test_sigmoid_is_stable():
    np.testing.assert_allclose(Q.sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])


def test_logistic_regression_equals_sklearn(docs):
    sample = [d for d in docs if d["kind"] in ("encyclopedia", "web")][::4]
    texts, y = [d["text"] for d in sample], np.array([d["kind"] == "encyclopedia" for d in sample], float)
    assert 0.2 < y.mean() < 0.8
    X = Q.HashedNgrams(n_features=2 ** 12).transform(texts)
    ours = Q.LogisticRegression(C=2.0, tol=1e-5).fit(X, y)
    theirs = SkLogisticRegression(C=2.0, tol=1e-8, max_iter=2000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_[0], atol=1e-4)
    assert ours.intercept_ == pytest.approx(theirs.intercept_[0], abs=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X)[:, 1], atol=1e-5)


def test_precision_recall_curve_by_hand():
    p, r, t = Q.precision_recall_curve([1, 0, 1, 1], [0.9, 0.8, 0.8, 0.1])
    # t=0.1 keeps all: 3/4; t=0.8 keeps 3 docs, 2 good: 2/3, recall 2/3; t=0.9: 1/1, recall 1/3
    np.testing.assert_allclose(p, [3 / 4, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(r, [1.0, 2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(t, [0.1, 0.8, 0.9])


def test_precision_recall_curve_equals_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 2)  # ties on purpose
    for a, b in zip(Q.precision_recall_curve(labels, scores), sk_precision_recall_curve(labels, scores)):
        np.testing.assert_allclose(a, b)


def test_classifier_ranks_clean_web_above_noisy(docs):
    """Trained on encyclopedia (good) vs half of the low-quality web pages (bad); on the other half of the
    web pages the average precision of "clean" beats the share of clean pages by a margin."""
    web = [d for d in docs if d["kind"] == "web"]
    train, test = web[::2], web[1::2]
    clf = Q.QualityClassifier(n_features=2 ** 16).fit([d["text"] for d in docs if d["kind"] == "encyclopedia"],
                                                      [d["text"] for d in train if is_low_quality(d)])
    labels = [0 if is_low_quality(d) else 1 for d in test]
    ap = average_precision_score(labels, clf.score([d["text"] for d in test]))
    assert ap >= np.mean(labels) + 0.05, (ap, np.mean(labels))


# ---------------------------------------------------------------------- n-gram LM and buckets


def test_char_lm_by_hand():
    lm = Q.CharNgramLM(order=2).fit(["abab"])
    # vocab {a, b, UNK}: uniform 1/3. Unigram: C=4, T=2: P(a) = (2 + 2/3) / 6 = 4/9.
    # After "a": C=2 (b twice), T=1: P(b|a) = (2 + 1 * P(b)) / 3 with P(b) = 4/9 -> 22/27
    assert lm.prob("", "a") == pytest.approx(4 / 9)
    assert lm.prob("a", "b") == pytest.approx(22 / 27)
    assert lm.prob("a", "z") == lm.prob("a", Q.CharNgramLM.UNK)


def test_char_lm_is_normalized(docs):
    lm = Q.CharNgramLM(order=4).fit([d["text"] for d in docs if d["kind"] == "encyclopedia"][:100])
    for history in ["", "th", "the", "이다.", "zzz"]:
        assert sum(lm.prob(history, c) for c in lm.vocab) == pytest.approx(1.0)


def test_perplexity_buckets_by_hand():
    ppl = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100] + [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    langs = ["en"] * 10 + ["ko"] * 10
    buckets = Q.perplexity_buckets(ppl, langs)
    # numpy percentiles of 10..100: 30th = 37, 60th = 64
    assert buckets[:10] == ["head"] * 3 + ["middle"] * 3 + ["tail"] * 4
    assert collections.Counter(buckets[10:]) == {"head": 3, "middle": 3, "tail": 4}


def test_ccnet_tail_holds_the_noise(docs):
    """An LM of the encyclopedia, buckets over all documents per language as in CCNet: the encyclopedia
    fills the head, and low-quality web pages land in the tail more often than clean ones."""
    lm = Q.CharNgramLM(order=4).fit([d["text"] for d in docs if d["kind"] == "encyclopedia"])
    buckets = Q.perplexity_buckets([lm.perplexity(d["text"]) for d in docs], [d["lang"] for d in docs])
    share = collections.defaultdict(list)
    for d, b in zip(docs, buckets):
        group = "encyclopedia" if d["kind"] == "encyclopedia" else "low" if is_low_quality(d) else d["kind"]
        share[group].append(b)
    tail = {g: np.mean([b == "tail" for b in bs]) for g, bs in share.items()}
    assert np.mean([b == "head" for b in share["encyclopedia"]]) >= 0.8
    assert tail["low"] >= tail["web"] + 0.2, tail
