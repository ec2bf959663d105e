"""Deduplication: normalization, exact/URL/line dedup, MinHash + LSH (against datasketch and brute force),
suffix-array exact substrings (against brute force), and near-duplicate quality on the world's labels."""

import collections
import itertools
import os
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

from course_lib.config import load_config
from course_lib.curation import dedup, evaluate
from course_lib.world import load

MIRRORS = ("archive-mirror.net",)


@pytest.fixture(scope="module")
def ci_docs():
    return load("documents", load_config("ci")).to_list()


@pytest.fixture(scope="module")
def laptop_docs():
    return load("documents", load_config("laptop")).to_list()


# ---------------------------------------------------------------------- normalization and exact


def test_normalization_keeps_hangul_syllables():
    nfd = unicodedata.normalize("NFD", "한국어 문서")
    assert len(nfd) == 14  # each syllable split into 2 or 3 conjoining jamo: 3+3+2 +1+ 3+2
    assert dedup.normalize_text(nfd) == "한국어 문서"  # NFC merges them back
    assert unicodedata.normalize("NFKD", "한") != "한"  # why not NFKD


def test_normalize_text_by_hand():
    assert dedup.normalize_text("  Hello,  WORLD!\n\n Straße ") == "hello world strasse"


def test_normalize_text_equals_per_character_definition(laptop_docs):
    """``normalize_text`` translates with a cached table; the definition classifies every character."""
    def by_definition(text):
        text = unicodedata.normalize("NFC", text).casefold()
        return " ".join("".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text).split())

    tricky = ["e\u0301 café_au-lait", "a\u2028b\tc\x00d", "😀x…y·z", "\ud800 lone surrogate", ""]
    for text in [d["text"] for d in laptop_docs] + tricky:
        assert dedup.normalize_text(text) == by_definition(text)


def test_exact_duplicates():
    texts = ["Hello world.", "hello   WORLD", "Other text", "한국어 문서", unicodedata.normalize("NFD", "한국어 문서!")]
    assert dedup.exact_duplicates(texts) == [0, 0, 2, 3, 3]


def test_exact_duplicates_find_world_copies(laptop_docs):
    keep = dedup.exact_duplicates([d["text"] for d in laptop_docs])
    groups = collections.defaultdict(list)
    for i, k in enumerate(keep):
        groups[k].append(i)
    copies = [i for i, d in enumerate(laptop_docs)
              if "exact_duplicate" in d["quality_flags"] and "near_duplicate" not in d["quality_flags"]]
    assert len(copies) > 10
    for i in copies:  # the copy may come first (documents are shuffled): then the original points to it
        group = groups[keep[i]]
        assert len(group) >= 2 and {laptop_docs[j]["dup_cluster"] for j in group} == {laptop_docs[i]["dup_cluster"]}


# ---------------------------------------------------------------------- URLs


def test_normalize_url_by_hand():
    assert dedup.normalize_url("HTTP://WWW.Example.com/a/b/?utm_source=x&id=3&fbclid=abc#top") == "example.com/a/b?id=3"
    assert dedup.normalize_url("https://m.example.com.archive-mirror.net/a", MIRRORS) == "example.com/a"


def test_url_keep_priority():
    urls = ["http://www.a.com/p", "https://www.a.com/p?utm_source=x", "https://www.a.com/p/",
            "https://a.com.archive-mirror.net/p", "https://b.com/p"]
    # https beats http; a mirror loses; no query beats a query; then shortest; different page stays
    assert dedup.url_duplicates(urls, MIRRORS) == [2, 2, 2, 2, 4]


def test_url_groups_match_world_pages(laptop_docs):
    """Web pages only: the world gives some book chapters of different content one URL (other hero or
    language), which URL dedup would merge, as it would on the real web."""
    web = [d for d in laptop_docs if d["kind"] == "web"]
    keep = dedup.url_duplicates([d["url"] for d in web], MIRRORS)
    by_page = collections.defaultdict(set)
    for i, d in enumerate(web):
        by_page[d["page_id"]].add(keep[i])
    assert all(len(kept) == 1 for kept in by_page.values())  # one copy per page
    assert len(set(keep)) == len(by_page)  # and no two pages merged


# ---------------------------------------------------------------------- lines


def test_dedup_lines_modes():
    texts = ["a\nb\n\nc", "b\nd\na", "e\n\nb"]
    assert dedup.dedup_lines(texts, "drop_all") == (["\nc", "d", "e\n"], 5)
    assert dedup.dedup_lines(texts, "keep_first") == (["a\nb\n\nc", "d", "e\n"], 3)
    with pytest.raises(ValueError):
        dedup.dedup_lines(texts, "keep_last")


# ---------------------------------------------------------------------- MinHash and LSH


def test_shingles_and_jaccard_by_hand():
    a = dedup.shingles("the cat sat on the mat", 3)
    assert a == {"the cat sat", "cat sat on", "sat on the", "on the mat"}
    b = dedup.shingles("the cat sat on a mat", 3)
    assert dedup.jaccard(a, b) == 2 / 6


def test_signatures_equal_datasketch(ci_docs):
    hasher = dedup.MinHasher(num_perm=64, ngram=5, seed=7, hash="sha1")
    texts = [d["text"] for d in ci_docs[:40]] + [""]
    sigs = hasher.signatures(texts)
    for text, sig in zip(texts, sigs):
        m = MinHash(num_perm=64, seed=7)
        for s in dedup.shingles(text, 5):
            m.update(s.encode("utf-8"))
        np.testing.assert_array_equal(sig, m.hashvalues)


# ---------------------------------------------------------------------- the fast hash

MASK64 = (1 << 64) - 1


def mix64_by_hand(h: int) -> int:
    h ^= h >> 30
    h = h * 0xBF58476D1CE4E5B9 & MASK64
    h ^= h >> 27
    h = h * 0x94D049BB133111EB & MASK64
    return h ^ (h >> 31)


def fold_by_hand(values: list[int]) -> int:
    h = len(values)
    for v in values:
        h = mix64_by_hand(h ^ v)
    return h


# computed once and frozen: any change of the hash (or a per-process salt) fails here
FAST_HASHES = {"cat": 733108399106705770, "한국어": 2407079113447973581}
FAST_SHINGLE = ("the cat sat", 18069721476993585175)


def test_fast_hash_by_hand_and_fixed_values():
    for word, expected in FAST_HASHES.items():
        assert dedup.word_hash(word) == fold_by_hand([ord(c) for c in word]) == expected
    shingle, expected = FAST_SHINGLE
    assert dedup.shingle_hash(shingle) == fold_by_hand([dedup.word_hash(w) for w in shingle.split()]) == expected
    assert dedup.word_hash("ab") != dedup.word_hash("ba") and dedup.shingle_hash("a b") != dedup.shingle_hash("ab")
    hashed = dedup.HashedShingles(["The cat sat.", "", "the CAT sat on the mat"], 3)
    assert hashed.offsets.tolist() == [0, 1, 1, 5]
    assert hashed.values.tolist() == [expected, expected, 7986802420151210684, 8508623379584232050,
                                      5296128359277284850]


def test_fast_hash_is_the_same_in_another_process():
    code = ("from course_lib.curation import dedup; "
            "print(dedup.word_hash('cat'), dedup.shingle_hash('the cat sat'), "
            "dedup.HashedShingles(['the CAT sat on the mat'], 3).values.tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout.split(maxsplit=2)
    assert [int(out[0]), int(out[1])] == [FAST_HASHES["cat"], FAST_SHINGLE[1]]
    assert out[2].strip() == str(dedup.HashedShingles(["the CAT sat on the mat"], 3).values.tolist())


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_hashed_shingles_are_the_shingle_sets(ci_docs, ngram):
    """The corpus-at-once hashing gives, per document, the ``shingle_hash`` of each of ``shingles``' strings."""
    tricky = ["", " ... ", "Straße STRASSE", unicodedata.normalize("NFD", "한국어 문서"), "one",
              "a\u2028b\tc_d e\u0301f 😀x \ud800"]
    texts = [d["text"] for d in ci_docs[:60]] + tricky
    hashed = dedup.HashedShingles(texts, ngram)
    assert len(hashed) == len(texts)
    for d, text in enumerate(texts):
        assert hashed[d].tolist() == sorted({dedup.shingle_hash(s) for s in dedup.shingles(text, ngram)}), text


def test_fast_signatures_and_errors(ci_docs):
    hasher = dedup.MinHasher(num_perm=128, ngram=5)
    assert hasher.hash == "fast"
    texts = [d["text"] for d in ci_docs[:80]] + [""]
    dedup.MinHasher.block, block = 64, dedup.MinHasher.block  # many blocks, documents split across none
    try:
        sigs = hasher.signatures(texts)
    finally:
        dedup.MinHasher.block = block
    expected = np.stack([hasher.signature_of_shingles(dedup.shingles(t, 5)) for t in texts])
    np.testing.assert_array_equal(sigs, expected)
    np.testing.assert_array_equal(hasher.signatures(texts), expected)
    assert (sigs[-1] == np.iinfo(np.uint32).max).all()  # the empty text
    with pytest.raises(ValueError, match="'md5'"):
        dedup.MinHasher(hash="md5")
    with pytest.raises(ValueError, match="15 x 9"):
        dedup.lsh_candidate_pairs(sigs, 15, 9)


@pytest.mark.parametrize("hash", dedup.HASHES)
def test_estimate_tracks_true_jaccard(ci_docs, hash):
    """Std of the estimate is sqrt(J(1-J)/P) <= 0.044 for P=128; allow 4 sigma."""
    hasher = dedup.MinHasher(num_perm=128, hash=hash)
    texts = [d["text"] for d in ci_docs]
    clusters = collections.defaultdict(list)
    for i, d in enumerate(ci_docs):
        if d["dup_cluster"]:
            clusters[d["dup_cluster"]].append(i)
    pairs = [p for m in clusters.values() for p in itertools.combinations(m, 2)][:60]
    assert len(pairs) >= 20
    for i, j in pairs:
        true = dedup.jaccard(dedup.shingles(texts[i]), dedup.shingles(texts[j]))
        est = dedup.estimate_jaccard(*hasher.signatures([texts[i], texts[j]]))
        assert abs(est - true) <= 4 * np.sqrt(true * (1 - true) / 128) + 1e-9


def test_fast_estimates_are_unbiased_over_many_pairs(ci_docs):
    """Over edited copies at many similarities (0.05 < J < 0.95), the estimate's error in standard deviations
    sqrt(J(1-J)/P) has mean ~0 (|mean| <= 4/sqrt(n): 4 standard errors) and >= 85% of pairs lie within 2 of
    them (95% expected)."""
    rng = random.Random(0)
    texts = [d["text"] for d in ci_docs if len(d["text"].split()) >= 40][:150]
    copies = [" ".join(w if rng.random() > rate else f"x{rng.randrange(10 ** 6)}" for w in t.split())
              for t, rate in zip(texts, np.linspace(0.01, 0.15, len(texts)))]
    hasher = dedup.MinHasher(num_perm=128)
    sig_a, sig_b = hasher.signatures(texts), hasher.signatures(copies)
    true = np.array([dedup.jaccard(dedup.shingles(a), dedup.shingles(b)) for a, b in zip(texts, copies)])
    inside = (0.05 < true) & (true < 0.95)
    est = (sig_a == sig_b).mean(axis=1)[inside]
    z = (est - true[inside]) / np.sqrt(true[inside] * (1 - true[inside]) / 128)
    assert len(z) >= 50
    assert abs(z.mean()) <= 4 / np.sqrt(len(z)) and np.mean(np.abs(z) <= 2) >= 0.85, (z.mean(), np.abs(z).max())


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_lsh_params_equal_datasketch(threshold):
    assert dedup.lsh_params(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_s_curve_by_hand():
    # b=2, r=2, s=0.5: 1 - (1 - 0.25)^2 = 0.4375
    assert dedup.candidate_probability(0.5, 2, 2) == pytest.approx(0.4375)


def test_lsh_candidates_equal_datasketch(ci_docs):
    hasher = dedup.MinHasher(num_perm=128)
    texts = [d["text"] for d in ci_docs]
    sigs = hasher.signatures(texts)
    bands, rows = 14, 9
    ours = dedup.lsh_candidates(sigs, bands, rows)
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    mh = [MinHash(num_perm=128, hashvalues=s, scheme="affine32") for s in sigs]
    for i, m in enumerate(mh):
        lsh.insert(i, m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(mh) for j in lsh.query(m) if j != i}
    assert ours == theirs and len(ours) > 10


@pytest.mark.parametrize("bands, rows", [(14, 9), (32, 4), (1, 1), (8, 2)])
def test_lsh_candidates_equal_brute_force_band_matching(ci_docs, bands, rows):
    texts = [d["text"] for d in ci_docs[:200]] + ["", "", "same text", "same text"]
    sigs = dedup.MinHasher(num_perm=128).signatures(texts)
    banded = sigs[:, :bands * rows].reshape(len(texts), bands, rows)
    brute = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
             if (banded[i] == banded[j]).all(axis=1).any()}
    pairs = dedup.lsh_candidate_pairs(sigs, bands, rows)
    assert pairs.tolist() == sorted(map(list, brute)) and dedup.lsh_candidates(sigs, bands, rows) == brute
    assert (len(texts) - 4, len(texts) - 3) in brute and (len(texts) - 2, len(texts) - 1) in brute


def test_lsh_candidates_survive_bucket_key_collisions():
    """Bands that differ but are forced into one bucket key are not candidates (keys are checked)."""
    sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [5, 6, 3, 4], [7, 7, 7, 7]], dtype=np.uint32)
    assert dedup.lsh_candidates(sigs, 2, 2) == {(0, 1), (0, 2)}
    original = dedup.mix64
    try:
        dedup.mix64 = lambda h: h & np.uint64(0)  # every band of every document in one bucket
        assert dedup.lsh_candidates(sigs, 2, 2) == {(0, 1), (0, 2)}
    finally:
        dedup.mix64 = original


def test_union_find():
    uf = dedup.UnionFind(6)
    for a, b in [(4, 2), (2, 5), (1, 3)]:
        uf.union(a, b)
    assert [uf.find(i) for i in range(6)] == [0, 1, 2, 1, 2, 2]


def test_true_pairs_equal_all_pairs(ci_docs):
    texts = [d["text"] for d in ci_docs[:150]]
    sets = [dedup.shingles(t) for t in texts]
    naive = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2) if dedup.jaccard(sets[i], sets[j]) >= 0.5}
    assert evaluate.true_pairs(texts, 0.5) == naive and naive


@pytest.mark.parametrize("hash", dedup.HASHES)
def test_near_duplicates_on_world(laptop_docs, hash):
    """Targets at Jaccard >= 0.8 (word 5-gram shingles, 128 permutations, verified pairs): pair recall and
    precision >= 0.95 against brute-force true pairs, and the clusters' pairs are labelled duplicates,
    with either hash. Labelled pairs below 0.8 (copies with 10% of words edited) are out of scope here."""
    scores = evaluate.near_duplicate_scores(laptop_docs, threshold=0.8, hash=hash)
    assert scores["pairs_true"] > 100
    assert scores["recall"] >= 0.95 and scores["precision"] >= 0.95, scores
    assert scores["recall_labelled_above_threshold"] >= 0.95 and scores["precision_labelled"] >= 0.95, scores
    rep, _ = dedup.near_duplicates([d["text"] for d in laptop_docs], threshold=0.8, hash=hash)
    kept = [i for i in range(len(rep)) if rep[i] == i]
    assert len(kept) == len(rep) - sum(len(m) - 1 for m in _groups(rep))


def _groups(rep):
    groups = collections.defaultdict(list)
    for i, r in enumerate(rep):
        groups[r].append(i)
    return [m for m in groups.values() if len(m) > 1]


# ---------------------------------------------------------------------- suffix array


def test_suffix_array_and_lcp_brute_force():
    rng = random.Random(0)
    for n in (1, 2, 7, 50, 300):
        seq = [rng.randrange(3) for _ in range(n)]
        sa = dedup.suffix_array(np.array(seq))
        assert sa.tolist() == sorted(range(n), key=lambda i: seq[i:])
        lcp = dedup.lcp_array(np.array(seq), sa)
        for r in range(1, n):
            a, b = seq[sa[r - 1]:], seq[sa[r]:]
            assert lcp[r] == next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_duplicate_spans_by_hand():
    docs = [list("abcdefg"), list("xxcdefyy"), list("abc")]
    assert dedup.duplicate_spans(docs, 3) == [[(0, 6)], [(2, 6)], [(0, 3)]]
    assert dedup.remove_spans(docs[1], [(2, 6)]) == list("xxyy")


def test_duplicate_spans_equal_brute_force(ci_docs):
    docs = [d["text"].split() for d in ci_docs]
    for k in (10, 50):
        spans = dedup.duplicate_spans(docs, k)
        assert spans == dedup.duplicate_spans_brute_force(docs, k)
    assert sum(e - s for sp in spans for s, e in sp) > 500  # the world's copies share 50-token runs
