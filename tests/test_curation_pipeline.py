"""The curation pipeline: every input document accounted for, malformed input reported, steps' exact counts,
the same result with worker processes, and the configured pipeline on the ci world."""

import collections

import pytest

from course_lib.config import load_config
from course_lib.curation import pii
from course_lib.curation import pipeline as P
from course_lib.world import load

CLEAN = ("The river of the north has long been a place of trade and song, and people came to its banks with grain "
         "and salt to build houses of stone near the water.")
MALFORMED = [{"id": "none", "text": None}, {"id": "number", "text": 42}, {"id": "bad-bytes", "text": b"\xff\xfe abc"},
             {"id": "surrogate", "text": "abc \udc80 def"}, {"id": "blank", "text": " \n\t "},
             {"id": "huge", "text": "word " * 300}, {"id": "no-text-field"}]


def test_malformed_input_is_reported_not_lost():
    records = MALFORMED + [{"id": "ok", "text": CLEAN}, {"id": "ok-bytes", "text": CLEAN.encode("utf-8")}]
    result = P.Pipeline([P.Validate(max_chars=1000)]).run(records)
    assert result.audit.fate == {"none": ("validate", "not_text"), "number": ("validate", "not_text"),
                                 "bad-bytes": ("validate", "invalid_utf8"), "surrogate": ("validate", "invalid_utf8"),
                                 "blank": ("validate", "empty"), "huge": ("validate", "huge"),
                                 "no-text-field": ("validate", "not_text"), "ok": ("kept", ""),
                                 "ok-bytes": ("kept", "")}
    assert result.dataset["text"] == [CLEAN, CLEAN]  # valid UTF-8 bytes are decoded, not dropped


def test_records_with_different_fields():
    records = [{"text": CLEAN}, {"id": "x", "text": "Other words here.", "url": "https://a.com/p", "lang": "en"}]
    result = P.Pipeline([P.UrlDedup()]).run(records)
    assert result.dataset.column_names == ["text", "id", "url", "lang"]
    assert result.dataset["url"] == [None, "https://a.com/p"] and result.dataset["id"] == ["0", "x"]


def test_validate_is_always_first():
    assert isinstance(P.Pipeline([P.ExactDedup()]).steps[0], P.Validate)


def test_steps_count_exactly():
    records = [
        {"id": "a", "url": "https://www.site.com/p", "text": CLEAN},
        {"id": "b", "url": "https://other.com/copy", "text": CLEAN.upper()},  # exact duplicate after normalization
        {"id": "c", "url": "http://site.com/p/?utm_source=x", "text": CLEAN + " Again."},  # same URL as a
        # Jaccard 0.86 to a (word 3-grams): an LSH candidate at threshold 0.7 with probability 0.99996, whatever the hash
        {"id": "d", "url": "https://x.com/1", "text": CLEAN + " Mail me: kim@example.com"},
        {"id": "e", "url": "", "text": "전화 010-1234-5678, 주민번호 960121-1021413 입니다."},
    ]
    steps = [P.ExactDedup(), P.UrlDedup(), P.NearDedup(threshold=0.7, num_perm=128, ngram=3), P.MaskPII()]
    result = P.Pipeline(steps).run(records)
    assert result.audit.fate == {"a": ("kept", ""), "b": ("exact_dedup", "exact_duplicate"),
                                 "c": ("url_dedup", "url_duplicate"), "d": ("near_dedup", "near_duplicate"),
                                 "e": ("kept", "")}
    assert result.dataset["text"][1] == "전화 [PHONE_KR], 주민번호 [RRN] 입니다."
    mask_row = result.audit.steps[-1]
    assert mask_row["counters"] == {"email": 0, "phone_kr": 1, "phone_intl": 0, "ip": 0, "rrn": 1, "card": 0}
    assert result.audit.rows() == [("exact_dedup", "exact_duplicate", 1), ("url_dedup", "url_duplicate", 1),
                                   ("near_dedup", "near_duplicate", 1), ("kept", "", 2)]


def test_line_and_substring_steps_rewrite_and_drop_emptied():
    records = [{"id": "1", "text": "Menu\nShared line"}, {"id": "2", "text": "Menu\nShared line\nOwn line"},
               {"id": "3", "text": " ".join(f"w{i}" for i in range(60))},
               {"id": "4", "text": "intro " + " ".join(f"w{i}" for i in range(60))}]
    result = P.Pipeline([P.LineDedup("drop_all"), P.SubstringDedup(min_tokens=50)]).run(records)
    assert result.audit.fate["1"] == ("line_dedup", "empty_after_line_dedup")
    assert result.dataset["text"] == ["Own line", " ".join(f"w{i}" for i in range(60)), "intro"]
    assert result.audit.steps[1]["counters"] == {"lines_removed": 4}
    assert result.audit.steps[2]["counters"] == {"words_removed": 60}


EMPTIED = {  # a batch whose every document is dropped before the first per-document step -> its audit
    "empty": ([], {}),
    "blank": ([""], {"0": ("validate", "empty")}),
    "all-bad": ([{"id": "blank", "text": " "}, {"id": "none", "text": None}],
                {"blank": ("validate", "empty"), "none": ("validate", "not_text")}),
    "10MB": ([{"id": "huge", "text": "x " * 5_000_000}], {"huge": ("validate", "huge")}),
}


@pytest.mark.parametrize("batch, fate", EMPTIED.values(), ids=EMPTIED)
def test_configured_pipeline_runs_when_every_document_is_dropped(batch, fate):
    """Every step runs on an empty dataset (``Dataset.map`` over nothing adds no ``_reason`` column)."""
    result = P.from_config(load_config("ci"), num_proc=1).run(batch)
    assert len(result.dataset) == 0
    assert result.audit.fate == fate and result.audit.n_input == len(batch)
    assert [row["in"] for row in result.audit.steps] == [len(batch), 0, 0, 0, 0, 0]


def test_audit_check_catches_a_lost_document():
    result = P.Pipeline([P.ExactDedup()]).run([CLEAN, CLEAN, "other text here"])
    result.audit.check()
    del result.audit.fate["2"]
    with pytest.raises(AssertionError):
        result.audit.check()


@pytest.fixture(scope="module")
def ci_world():
    return load("documents", load_config("ci"))


def test_world_audit_accounts_for_every_document(ci_world):
    records = ci_world.to_list() + MALFORMED
    steps = [P.UrlDedup(("archive-mirror.net",)), P.ExactDedup(), P.QualityFilters(None), P.NearDedup(),
             P.LineDedup("keep_first"), P.MaskPII()]
    result = P.Pipeline(steps).run(records)
    audit = result.audit
    assert sum(audit.by_reason().values()) == len(records) == audit.n_input
    assert sum(n for _, _, n in audit.rows()) == len(records)
    assert audit.by_reason()[("kept", "")] == len(result.dataset) > 0
    assert {r for (s, r) in audit.by_reason() if s == "validate"} == {"not_text", "invalid_utf8", "empty"}
    assert audit.steps[1]["dropped"]["url_duplicate"] > 0 and audit.steps[2]["dropped"]["exact_duplicate"] > 0
    assert all(not pii.find_pii(t) for t in result.dataset["text"])
    assert "| **total** |" in audit.markdown()


def test_num_proc_gives_the_same_result(ci_world):
    sample = ci_world.select(range(40))
    steps = [P.QualityFilters(None), P.MaskPII()]
    one = P.Pipeline(steps, num_proc=1).run(sample)
    two = P.Pipeline(steps, num_proc=2).run(sample)
    assert one.dataset["text"] == two.dataset["text"]
    assert one.audit.fate == two.audit.fate and one.audit.steps == two.audit.steps


def test_configured_pipeline_on_ci_world(ci_world):
    """``pipeline.from_config``: copies gone (exact, URL, near at Jaccard >= 0.8), noisy pages filtered,
    personal data masked, encyclopedia untouched by the web filters, and the audit adds up."""
    cfg = load_config("ci")
    result = P.from_config(cfg).run(ci_world)
    audit = result.audit
    audit.check()
    assert [row["step"] for row in audit.steps] == ["validate", "url_dedup", "exact_dedup", "quality_filters",
                                                     "near_dedup", "mask_pii"]
    kept = set(result.dataset["id"])
    by_id = {d["id"]: d for d in ci_world}
    assert all(by_id[i]["id"] in kept for i in by_id if by_id[i]["kind"] == "encyclopedia")
    # a page, its exact copies and URL variants share one text: one survives per cluster (an edited copy
    # with Jaccard < 0.8 may survive beside it)
    verbatim = collections.Counter(by_id[i]["dup_cluster"] for i in kept
                                   if by_id[i]["dup_cluster"] and "near_duplicate" not in by_id[i]["quality_flags"])
    assert verbatim and max(verbatim.values()) == 1
    assert audit.steps[1]["dropped"]["url_duplicate"] > 0 and audit.steps[2]["dropped"]["exact_duplicate"] > 0
    assert sum(audit.steps[-1]["counters"].values()) > 0
    assert all(not pii.find_pii(t) for t in result.dataset["text"])
    assert audit.steps[3]["dropped"] and all(r.split(".")[0] in ("gopher_quality", "gopher_repetition", "c4",
                                                                 "fineweb") for r in audit.steps[3]["dropped"])


@pytest.fixture(scope="module")
def korean_pages(ci_world):
    """The ci world's Korean web and forum pages and their fates under the papers' thresholds as ``ko``."""
    korean = [d for d in ci_world.to_list() if d["lang"] == "ko" and d["kind"] in ("web", "forum")]
    return korean, P.Pipeline([P.QualityFilters(None)]).run(korean).audit.fate


def _recoded(docs, code):
    return [{k: v for k, v in d.items() if k != "lang"} | ({"lang": code} if code is not None else {}) for d in docs]


@pytest.mark.parametrize("code", ["ko-KR", "KO", "kor", "ko_kr"])
def test_korean_documents_are_judged_by_the_korean_rules_whatever_the_code(korean_pages, code):
    """Written as ``ko-KR``, ``KO``, ``kor``, each Korean page meets the fate it meets as ``ko``: none falls to
    an English-only rule."""
    korean, as_ko = korean_pages
    assert P.Pipeline([P.QualityFilters(None)]).run(_recoded(korean, code)).audit.fate == as_ko
    # judged as English all 100 would go (63 too short in whitespace words, 30 without English stop words, ...)
    assert len(korean) == 100 and collections.Counter(as_ko.values())[("kept", "")] == 41


@pytest.mark.parametrize("code", [None, ""])
def test_a_missing_language_is_detected_not_assumed_english(korean_pages, code):
    """With no code, the course's detector reads each page: all but one are Korean and meet their ``ko`` fate;
    the one page it reads as English is lorem-ipsum filler in Latin letters, dropped either way."""
    korean, as_ko = korean_pages
    fate = P.Pipeline([P.QualityFilters(None)]).run(_recoded(korean, code)).audit.fate
    assert {i for i in fate if fate[i] != as_ko[i]} == {"web-00111"}
    assert fate["web-00111"][0] == as_ko["web-00111"][0] == "quality_filters"


def test_an_unknown_language_code_is_a_named_reason():
    records = [{"id": "fr", "text": CLEAN, "lang": "fr-FR"}, {"id": "num", "text": CLEAN + " Two.", "lang": 7},
               {"id": "en", "text": CLEAN + " Three.", "lang": "en-US"}]
    fate = P.Pipeline([P.QualityFilters(None)]).run(records).audit.fate
    assert fate["fr"] == fate["num"] == ("validate", "unknown_lang") and fate["en"][0] != "validate"


def test_a_malformed_url_is_a_reason_and_the_run_goes_on():
    good = [{"id": f"p{i}", "text": f"Page number {i} of the site.", "url": f"https://site.com/p/{i}"}
            for i in range(2000)]
    bad = [{"id": "ipv6", "text": "One more page.", "url": "http://[::1"},
           {"id": "int", "text": "And another page.", "url": 42},
           {"id": "port", "text": "A page on a bad port.", "url": "https://site.com:99999/q"}]
    result = P.Pipeline([P.UrlDedup(), P.ExactDedup()]).run(good[:1000] + bad + good[1000:])
    assert {i: f for i, f in result.audit.fate.items() if f != ("kept", "")} == {
        "ipv6": ("validate", "invalid_url"), "int": ("validate", "invalid_url"), "port": ("validate", "invalid_url")}
    assert result.dataset["id"] == [d["id"] for d in good]


def test_a_value_of_the_wrong_type_for_its_column_is_a_reason():
    """``extra`` holds strings in most records: the record with an int in it goes with ``bad_column_type``
    (pyarrow would refuse the whole column); ints and floats share a column."""
    records = [{"id": "a", "text": "First page.", "extra": "x", "score": 1},
               {"id": "b", "text": "Second page.", "extra": 7, "score": 2.5},
               {"id": "c", "text": "Third page.", "extra": "y", "score": 3},
               {"id": "d", "text": "Fourth page.", "extra": None, "score": True}]
    result = P.Pipeline([P.ExactDedup()]).run(records)
    assert result.audit.fate == {"a": ("kept", ""), "b": ("validate", "bad_column_type"),
                                 "c": ("kept", ""), "d": ("validate", "bad_column_type")}
    assert result.dataset["extra"] == ["x", "y"] and result.dataset["score"] == [1, 3]
