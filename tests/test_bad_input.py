"""Bad input at the door of curation's and evaluation's public functions and the world loaders (issue #18).

One table: each row calls an entry point with input that real data brings (a string where a list is meant,
None, a number, an unknown name) and names the error it must raise and words its message must hold: the
argument, the item and what was expected. A string must never be read as a list of characters.
"""

import pytest

from course_lib.curation import dedup, filters, pii, quality
from course_lib.curation import pipeline as P
from course_lib.evaluation import (bleu, choice_predictions, chrf, evaluate, exact_match, f1, generate_until,
                                   leaderboard, loglikelihood, loglikelihood_rolling, rouge)
from course_lib.world import load
from course_lib.world.loading import WorldDataError, load_external

# (id, call, error type, words the message must contain)
CASES = [
    ("run-str", lambda: P.Pipeline([P.ExactDedup()]).run("some text"), TypeError, ("data", "got str", "'some text'")),
    ("run-none", lambda: P.Pipeline([P.ExactDedup()]).run(None), TypeError, ("data", "NoneType")),
    ("run-int", lambda: P.Pipeline([P.ExactDedup()]).run(42), TypeError, ("data", "got int 42")),
    ("run-one-record", lambda: P.Pipeline([]).run({"text": "a"}), TypeError, ("data", "got dict")),
    ("run-repeated-id", lambda: P.Pipeline([]).run([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]), ValueError,
     ("data", "unique", "'a' is used 2 times")),
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
    ("classifier-str", lambda: quality.QualityClassifier(2 ** 8).fit("good text", ["bad"]), TypeError,
     ("good", "got str")),
    ("classifier-score-item", lambda: quality.HashedNgrams(2 ** 8).transform(["a", 3]), TypeError,
     ("texts[1]", "got int 3")),
    ("char-lm-str", lambda: quality.CharNgramLM().fit("abc"), TypeError, ("texts", "got str")),
    ("char-lm-none", lambda: quality.CharNgramLM().fit(["ab"]).perplexity(None), TypeError, ("text", "NoneType")),
    ("buckets-lengths", lambda: quality.perplexity_buckets([1.0, 2.0], ["en"]), ValueError,
     ("langs", "one per perplexity (2)", "got 1")),
    ("pii-evaluate-str", lambda: pii.evaluate("a@b.com", [[]]), TypeError, ("texts", "got str")),
    ("pii-evaluate-lengths", lambda: pii.evaluate(["a", "b"], [[]]), ValueError, ("labels", "one list", "(2)")),
    # evaluation: the checks come before the model is touched, so no model is needed
    ("loglik-str-pair", lambda: loglikelihood(None, None, ("Question:", " yes")), TypeError,
     ("pairs[0]", "expected a (context, continuation) pair", "got str")),
    ("loglik-none", lambda: loglikelihood(None, None, [("Question:", None)]), TypeError, ("pairs[0][1]", "NoneType")),
    ("rolling-str", lambda: loglikelihood_rolling(None, None, "a document"), TypeError, ("texts", "got str")),
    ("generate-str", lambda: generate_until(None, None, "Question:", max_new_tokens=4), TypeError,
     ("prompts", "got str")),
    ("generate-stop-str", lambda: generate_until(None, None, ["Q:"], max_new_tokens=4, stop="\n"), TypeError,
     ("stop", "got str")),
    ("exact-match-none", lambda: exact_match(None, "Mudi"), TypeError, ("prediction", "NoneType")),
    ("exact-match-lang", lambda: exact_match("a", "a", lang="fr"), ValueError, ("lang", "'fr'")),
    ("f1-int", lambda: f1("Mudi", 7), TypeError, ("reference", "got int 7")),
    ("rouge-list", lambda: rouge(["a"], "a"), TypeError, ("prediction", "got list")),
    ("chrf-str", lambda: chrf("abc", "abd"), TypeError, ("predictions", "got str")),
    ("bleu-lengths", lambda: bleu(["a"], ["a", "b"]), ValueError, ("references", "one per prediction (1)", "got 2")),
    ("choices-str", lambda: choice_predictions([-1.0], "a"), TypeError, ("choices", "got str")),
    ("choices-lengths", lambda: choice_predictions([-1.0], ["a", "b"]), ValueError, ("logliks", "one per choice")),
    ("choices-none", lambda: choice_predictions([], []), ValueError, ("logliks", "at least one")),
    ("evaluate-split", lambda: evaluate(None, None, "cloze_en", split="dev"), ValueError, ("split", "'dev'", "test")),
    ("evaluate-limit", lambda: evaluate(None, None, "cloze_en", limit=-1), ValueError, ("limit", "at least 0")),
    ("evaluate-batch", lambda: evaluate(None, None, "cloze_en", batch_size="4"), TypeError,
     ("batch_size", "expected an int", "str")),
    ("leaderboard-list", lambda: leaderboard(["base"]), TypeError, ("models", "mapping", "got list")),
    # the world loaders
    ("load-table", lambda: load("docs"), ValueError, ("table", "'docs'", "documents")),
    ("load-external-int", lambda: load_external(5), WorldDataError, ("data.source", "got int 5")),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_entry_point_names_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    for word in words:
        assert word in str(info.value)
