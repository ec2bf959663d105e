"""Property-based tests (hypothesis) of curation's pure functions: normalization, shingling, MinHash, PII masking.

Example counts are kept modest so the file stays fast on 2 cores (about 4 s): 200 examples for each
normalization and shingling property, 100 for each MinHash property, 150 for each PII property. No
deadline: phonenumbers' first call loads its metadata. Texts mix English, Hangul, full-width forms, dash
variants, punctuation and the kinds of personal data the world plants.
"""

import unicodedata

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.curation import dedup, pii

WORDS = ["the", "River", "north", "강", "마을이", "사람들", "ＦＵＬＬ", "２０２４", "naïve", "Ｑ&Ａ", "x-y"]
SEPARATORS = [" ", "  ", "\n", "\t", ", ", ". ", "!", "…", "—", "·", "\u3000"]
text_pieces = st.lists(st.sampled_from(WORDS) | st.sampled_from(SEPARATORS) | st.text(max_size=4), max_size=20)
texts = text_pieces.map("".join)

PII_PIECES = ["010-3922-4615", "０１０－３９２２－４６１５", "010–3922–4615", "010 - 3922 - 4615",
              "(02) 123-4567", "+1 415 555 2671", "960121-1021413", "９６０１２１－１０２１４１３",
              "960121 - 1021413", "221104-3677943", "kim@example.com", "kim＠example．com", "192.168.0.1",
              "2001:db8::1", "4111 1111 1111 1111"]
PII_CONTEXT = ["신청인", "(", ")", "은", "입니다", " ", ".", ",", "call ", "mail: ", "“", "”", "-", "0", "1", "a"]
pii_texts = st.lists(st.sampled_from(PII_PIECES) | st.sampled_from(PII_CONTEXT), max_size=12).map("".join)

NORMALIZATION = settings(max_examples=200, deadline=None)
MINHASH = settings(max_examples=100, deadline=None)
PII = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------------- normalization


@NORMALIZATION
@given(texts)
def test_normalize_text_is_idempotent_and_leaves_only_words_and_single_spaces(text):
    out = dedup.normalize_text(text)
    assert dedup.normalize_text(out) == out
    assert "  " not in out and out == out.strip()
    assert all(unicodedata.category(ch)[0] not in "PSZC" for ch in out.replace(" ", ""))


@NORMALIZATION
@given(texts)
def test_normalize_text_reads_decomposed_hangul_as_composed(text):
    assert dedup.normalize_text(unicodedata.normalize("NFD", text)) == dedup.normalize_text(text)


# ---------------------------------------------------------------------- shingling


@NORMALIZATION
@given(texts, st.integers(1, 6))
def test_shingles_are_word_ngrams_of_the_normalized_text(text, n):
    words = dedup.normalize_text(text).split()
    grams = dedup.shingles(text, n)
    assert grams == dedup.shingles(dedup.normalize_text(text), n)
    assert len(grams) <= max(1, len(words) - n + 1) if words else grams == set()
    assert all(len(g.split(" ")) == min(n, len(words)) for g in grams)


@NORMALIZATION
@given(st.lists(texts, min_size=2, max_size=4), st.integers(1, 4))
def test_hashed_shingles_match_the_string_shingles(docs, n):
    hashed = dedup.HashedShingles(docs, n)
    sets = [dedup.shingles(t, n) for t in docs]
    assert [len(hashed[d]) for d in range(len(docs))] == [len(s) for s in sets]
    assert hashed.jaccard(0, 1) == dedup.jaccard(sets[0], sets[1])


# ---------------------------------------------------------------------- MinHash

shingle_sets = st.sets(st.text(alphabet="abcdefgh 강나", min_size=1, max_size=8), min_size=1, max_size=40)


@MINHASH
@given(shingle_sets, shingle_sets)
def test_minhash_of_a_union_is_the_elementwise_minimum(a, b):
    hasher = dedup.MinHasher(num_perm=64)
    union = hasher.signature_of_shingles(a | b)
    assert np.array_equal(union, np.minimum(hasher.signature_of_shingles(a), hasher.signature_of_shingles(b)))


@MINHASH
@given(shingle_sets, shingle_sets)
def test_minhash_estimate_is_within_five_standard_errors_of_the_jaccard(a, b):
    """256 permutations: standard error at most 0.5 / 16; five of them fail about once in 1.7 million."""
    hasher = dedup.MinHasher(num_perm=256)
    estimate = dedup.estimate_jaccard(hasher.signature_of_shingles(a), hasher.signature_of_shingles(b))
    assert abs(estimate - dedup.jaccard(a, b)) <= 5 * 0.5 / 16
    assert dedup.estimate_jaccard(hasher.signature_of_shingles(a), hasher.signature_of_shingles(set(a))) == 1.0


# ---------------------------------------------------------------------- PII masking


@PII
@given(pii_texts)
def test_masking_is_idempotent_and_leaves_nothing_to_find(text):
    masked = pii.mask(text).text
    assert pii.mask(masked).text == masked
    assert pii.find_pii(masked) == []


@PII
@given(pii_texts)
def test_masking_changes_only_the_spans(text):
    result = pii.mask(text)
    rebuilt, pos = [], 0
    for span in result.spans:
        assert pos <= span.start < span.end
        rebuilt += [text[pos:span.start], pii.PLACEHOLDERS[span.type]]
        pos = span.end
    assert "".join(rebuilt + [text[pos:]]) == result.text
    for span in result.spans:  # no punctuation around an item; a bracket only if closed inside, as (02) 123-4567
        item = text[span.start:span.end]
        assert item[0] not in "“”,." and item[-1] not in "“”,."
        assert (item[0] != "(" or ")" in item) and (item[-1] != ")" or "(" in item)
