"""Bad input at the door of curation's and evaluation's public functions and the world loaders (issue #18).

One table: each row calls an entry point with input that real data brings (a string where a list is meant,
None, a number, an unknown name) and names the error it must raise and words its message must hold: the
argument, the item and what was expected. A string must never be read as a list of characters.
"""

import pytest

from course_lib.curation import dedup, filters
from course_lib.curation import pipeline as P

# (id, call, error type, words the message must contain)
CASES = [
    ("run-str", lambda: P.Pipeline([P.ExactDedup()]).run("some text"), TypeError, ("data", "got str", "'some text'")),
    ("run-none", lambda: P.Pipeline([P.ExactDedup()]).run(None), TypeError, ("data", "NoneType")),
    ("run-int", lambda: P.Pipeline([P.ExactDedup()]).run(42), TypeError, ("data", "got int 42")),
    ("run-one-record", lambda: P.Pipeline([]).run({"text": "a"}), TypeError, ("data", "got dict")),
    ("exact-str", lambda: dedup.exact_duplicates("abc"), TypeError, ("texts", "got str 'abc'")),
    ("exact-item", lambda: dedup.exact_duplicates(["a", None]), TypeError, ("texts[1]", "expected a str", "NoneType")),
    ("url-dup-str", lambda: dedup.url_duplicates("https://a.com"), TypeError, ("urls", "got str")),
    ("url-dup-item", lambda: dedup.url_duplicates(["https://a.com", "http://[::1"]), ValueError,
     ("urls[1]", "'http://[::1'", "Invalid IPv6 URL")),
    ("normalize-url-int", lambda: dedup.normalize_url(7), TypeError, ("url", "got int 7")),
    ("lines-str", lambda: dedup.dedup_lines("a\nb"), TypeError, ("texts", "got str")),
    ("near-str", lambda: dedup.near_duplicates("abc"), TypeError, ("texts", "got str")),
    ("minhash-str", lambda: dedup.MinHasher(16).signatures("abc"), TypeError, ("texts", "got str")),
    ("spans-str", lambda: dedup.duplicate_spans(["a b c"]), TypeError, ("docs[0]", "got str")),
    ("normalize-text-none", lambda: dedup.normalize_text(None), TypeError, ("text", "NoneType")),
    ("lang-unknown", lambda: filters.for_language("fr-FR"), ValueError, ("lang", "'fr-FR'", "ko-KR")),
    ("lang-int", lambda: filters.normalize_lang(7), TypeError, ("lang", "got int 7")),
    ("words-unknown-lang", lambda: filters.words("text", "xx"), ValueError, ("lang", "'xx'")),
    ("words-list", lambda: filters.words(["a"], "en"), TypeError, ("text", "got list")),
    ("apply-filters-none", lambda: filters.apply_filters(None), TypeError, ("text", "NoneType")),
    ("label-scores-str", lambda: filters.label_scores("abc", ["en"], [[]], filters.for_language), TypeError,
     ("texts", "got str")),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_entry_point_names_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    for word in words:
        assert word in str(info.value)
