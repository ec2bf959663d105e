"""Corpus statistics and data mixtures: exact values on a small fixture, bounds and errors on the ci world."""

import json
import re
from collections import Counter

import datasets
import pytest

from course_lib.config import load_config
from course_lib.world import build_world
from course_lib.world.loading import SNAPSHOT_DIR
from course_lib.world.mixture import (
    MixtureError,
    build_mixture,
    check_weights,
    corpus_stats,
    count_words,
    normalize_weights,
)


def doc(id, kind, lang, text, in_pretraining=True):
    return {"id": id, "kind": kind, "lang": lang, "text": text, "in_pretraining": in_pretraining}


# Web: three pages of 4 words each (12 words). Encyclopedia: 3 + 2 = 5 words. News: held out.
# Equal page sizes make the word counts of a mix independent of which pages the seed picks.
FIXTURE = [
    doc("w1", "web", "en", "Home | cookies ok"),
    doc("n1", "news", "en", "late breaking news story", in_pretraining=False),
    doc("w2", "web", "ko", "서울은 큰 도시 이다"),
    doc("e1", "encyclopedia", "ko", "부산은 항구 도시다"),
    doc("w3", "web", "en", "one two three four"),
    doc("e2", "encyclopedia", "en", "Busan  is\n"),
]


def test_count_words_splits_on_any_whitespace():
    assert count_words("Busan  is\n") == 2
    assert count_words("서울은 큰 도시 이다") == 4
    assert count_words("") == 0


def test_corpus_stats_by_hand():
    assert corpus_stats(FIXTURE) == [
        {"kind": "encyclopedia", "lang": "en", "documents": 1, "words": 2, "characters": 10},
        {"kind": "encyclopedia", "lang": "ko", "documents": 1, "words": 3, "characters": 10},
        {"kind": "web", "lang": "en", "documents": 2, "words": 8, "characters": 35},
        {"kind": "web", "lang": "ko", "documents": 1, "words": 4, "characters": 11},
        {"kind": "news", "lang": "en", "documents": 1, "words": 4, "characters": 24},
    ]
    assert corpus_stats(FIXTURE, by=["lang"]) == [
        {"lang": "en", "documents": 4, "words": 14, "characters": 69},
        {"lang": "ko", "documents": 2, "words": 7, "characters": 21},
    ]


def test_corpus_stats_accepts_datasets_and_documents():
    world = build_world(load_config("ci").world)
    records = world.records("documents")
    assert corpus_stats(datasets.Dataset.from_list(records)) == corpus_stats(records) == corpus_stats(world.documents)


def test_corpus_stats_reproduce_the_data_card():
    """The shipped snapshot's per-kind, per-language table, recomputed from its JSONL."""
    with (SNAPSHOT_DIR / "documents.jsonl").open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    card = (SNAPSHOT_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+) \| (en|ko) \| (\d+) \| (\d+) \| (\d+) \|$", card, flags=re.M)
    assert len(rows) == 26  # 13 kinds (8 sources, 5 task-page kinds), each in English and Korean
    assert [(r["kind"], r["lang"], r["documents"], r["words"], r["characters"]) for r in corpus_stats(records)] == [
        (k, lang, int(n), int(w), int(c)) for k, lang, n, w, c in rows]


def test_mixture_by_hand():
    # 20 words, half each. Encyclopedia: 10 words of 5 available = exactly 2 epochs (4 documents).
    # Web: 10 of 12 words; pages of 4 words reach 8 (2 short) or 12 (2 over): the tie keeps the shorter cut.
    mix = build_mixture(FIXTURE, {"web": 0.5, "encyclopedia": 0.5}, 20, seed=0)
    assert [(s.source, s.documents, s.words, s.target_words, s.sampled_documents, s.sampled_words)
            for s in mix.sources] == [("web", 3, 12, 10.0, 2, 8), ("encyclopedia", 2, 5, 10.0, 4, 10)]
    assert mix.words == 18 and len(mix.documents) == 6
    assert [s.share for s in mix.sources] == pytest.approx([8 / 18, 10 / 18])
    assert [s.epochs for s in mix.sources] == pytest.approx([8 / 12, 2.0])
    assert Counter(d["id"] for d in mix.documents if d["kind"] == "encyclopedia") == {"e1": 2, "e2": 2}
    assert all(d["kind"] != "news" for d in mix.documents)
    # 24 words, three quarters web: 18 of 12 words = one full pass (12) + 6: one more page (16) ties with two (20)
    mix = build_mixture(FIXTURE, {"web": 0.75, "encyclopedia": 0.25}, 24, seed=3)
    assert [(s.sampled_documents, s.sampled_words) for s in mix.sources] == [(4, 16), (2, 5)]
    assert mix.sources[1].epochs == 1.0
    assert mix.table()[0] == {"source": "web", "weight": 0.75, "share": 16 / 21, "epochs": 16 / 12, "documents": 3,
                              "words": 12, "sampled_documents": 4, "sampled_words": 16}


def test_mixture_is_deterministic_and_the_seed_matters():
    ids = lambda m: [d["id"] for d in m.documents]  # noqa: E731
    weights = {"web": 0.5, "encyclopedia": 0.5}
    assert ids(build_mixture(FIXTURE, weights, 20, seed=1)) == ids(build_mixture(FIXTURE, weights, 20, seed=1))
    assert len({tuple(ids(build_mixture(FIXTURE, weights, 20, seed=s))) for s in range(10)}) > 1


def test_zero_weight_and_unnamed_sources_contribute_nothing():
    mix = build_mixture(FIXTURE, {"web": 0.0, "encyclopedia": 1.0}, 7)
    assert {d["kind"] for d in mix.documents} == {"encyclopedia"}
    assert mix.sources[0].sampled_words == 0 and mix.sources[0].epochs == 0
    assert [s.source for s in build_mixture(FIXTURE, {"web": 1.0}, 7).sources] == ["web"]


def test_mixing_by_language():
    mix = build_mixture(FIXTURE, {"en": 0.5, "ko": 0.5}, 14, by="lang")
    assert {s.source: s.words for s in mix.sources} == {"en": 10, "ko": 7}  # news is held out
    en, ko = mix.sources
    assert ko.sampled_words == 7 and ko.epochs == 1.0
    assert abs(en.sampled_words - 7) <= 2  # en documents of 4, 4 and 2 words: within half the longest


def test_held_out_news_only_on_request():
    with pytest.raises(MixtureError, match="'news' has no pretraining documents.*knowledge cutoff"):
        build_mixture(FIXTURE, {"web": 0.5, "news": 0.5}, 20)
    mix = build_mixture(FIXTURE, {"web": 0.5, "news": 0.5}, 16, pretraining_only=False)
    assert [(s.source, s.sampled_words) for s in mix.sources] == [("web", 8), ("news", 8)]


@pytest.mark.parametrize("weights, total, message", [
    ({"wiki": 0.5, "web": 0.5}, 20, r"unknown source 'wiki'; the documents have the sources: encyclopedia, web"),
    ({"web": 1.2, "encyclopedia": -0.2}, 20, r"weight of source 'encyclopedia' is negative \(-0.2\)"),
    ({"web": 0.5, "encyclopedia": 0.4}, 20, r"weights sum to 0.9, not 1.*normalize_weights"),
    ({"web": float("nan"), "encyclopedia": 0.5}, 20, r"weight of source 'web' must be a finite number"),
    ({"web": "half"}, 20, r"weight of source 'web' must be a finite number, got 'half'"),
    ({}, 20, r"no weights given"),
    ({"web": 1.0}, 0, r"total_words must be a positive integer"),
    ({"web": 1.0}, 2.5, r"total_words must be a positive integer"),
])
def test_bad_weights_fail_clearly(weights, total, message):
    with pytest.raises(MixtureError, match=message):
        build_mixture(FIXTURE, weights, total)


def test_a_source_without_words_fails_clearly():
    with pytest.raises(MixtureError, match="source 'code' has weight 0.5 but its documents hold no words"):
        build_mixture(FIXTURE + [doc("c1", "code", "en", "   ")], {"web": 0.5, "code": 0.5}, 10)
    mix = build_mixture(FIXTURE + [doc("c1", "code", "en", "   ")], {"web": 1.0, "code": 0.0}, 12)
    assert mix.table()[1]["epochs"] == 0.0 and mix.sources[0].epochs == 1.0


def test_weights_within_tolerance_and_normalize():
    check_weights({"a": 0.1, "b": 0.2, "c": 0.7}, ["a", "b", "c"])  # 0.1 + 0.2 + 0.7 != 1.0 in floats
    assert normalize_weights({"web": 3, "code": 1}) == {"web": 0.75, "code": 0.25}
    with pytest.raises(MixtureError, match="sum to 0"):
        normalize_weights({"web": 0, "code": 0})
    with pytest.raises(MixtureError, match="negative"):
        normalize_weights({"web": 1, "code": -1})


def test_world_mixture_hits_its_targets():
    """On the ci world each source lands within half its longest document of its target; streams are per source."""
    world = build_world(load_config("ci").world)
    records = world.records("documents")
    weights = {"web": 0.45, "encyclopedia": 0.25, "forum": 0.1, "code": 0.05, "book": 0.05, "paper": 0.05,
               "patent": 0.05}
    total = 20_000
    mix = build_mixture(records, weights, total, seed=7)
    longest = {}
    for r in records:
        longest[r["kind"]] = max(longest.get(r["kind"], 0), count_words(r["text"]))
    for s in mix.sources:
        assert abs(s.sampled_words - s.target_words) <= longest[s.source] / 2, s
    assert abs(mix.words - total) <= sum(longest[s] for s in weights) / 2
    assert Counter(d["kind"] for d in mix.documents) == {s.source: s.sampled_documents for s in mix.sources}
    assert all(d["in_pretraining"] for d in mix.documents)
    assert mix.to_dataset().num_rows == len(mix.documents)
    # moving weight between web and forum leaves the encyclopedia's draw unchanged
    moved = build_mixture(records, {**weights, "web": 0.35, "forum": 0.2}, total, seed=7)
    enc = lambda m: sorted(d["id"] for d in m.documents if d["kind"] == "encyclopedia")  # noqa: E731
    assert enc(moved) == enc(mix)

