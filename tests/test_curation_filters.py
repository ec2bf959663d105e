"""Rule-based filters: hand-computed rule values, Korean prose, and rule-by-rule agreement with datatrove."""

import difflib
import json
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.utils.text import PUNCTUATION_SET
from datatrove.utils.word_tokenizers import WordTokenizer

from course_lib.config import load_config
from course_lib.curation import filters as F
from course_lib.world import load
from course_lib.world.documents import TASK_PAGE_KINDS

CASES = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "curation" / "filter_cases.jsonl"


@pytest.fixture(scope="module")
def cases():
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
    return {r["name"]: r for r in rows}


@pytest.fixture(scope="module")
def corpus(cases):
    """The fixture cases plus the ci world's documents: (text, lang) pairs."""
    docs = load("documents", load_config("ci"))
    return [(c["text"], c["lang"]) for c in cases.values()] + list(zip(docs["text"], docs["lang"]))


# ---------------------------------------------------------------------- pieces by hand


def test_words():
    assert F.words("Don't stop, the river's 2 boats!") == ("Don't", "stop", ",", "the", "river's", "2", "boats", "!")
    assert F.words("행무신이 설립했다.", "ko")[:2] == ("행무신", "이")


def test_chunk_spans_tile_the_text_at_line_breaks_then_sentences_then_spaces():
    assert F.chunk_spans("") == [(0, 0)] and F.chunk_spans("짧은 글.") == [(0, 5)]
    assert F.chunk_spans("ab cd\nef gh. ij kl", 7) == [(0, 6), (6, 12), (12, 18)]  # line break, ". ", end
    assert F.chunk_spans("ab 3.14 cd", 5) == [(0, 3), (3, 8), (8, 10)]  # "3." is no sentence end: a space
    assert F.chunk_spans("abcdefghij", 4) == [(0, 4), (4, 8), (8, 10)]  # one long word: hard cuts


def test_kiwi_gets_a_long_korean_document_in_bounded_pieces(monkeypatch):
    """Kiwi's time grows faster than its input's length, so a 60,000-character document reaches it in
    pieces of at most ``KIWI_CHUNK_CHARS`` characters; the words are Kiwi's in the whole document but in
    one place of 28,561 words, where Kiwi reads across the piece's edge (로그+인+인 whole, 로그인 in pieces)."""
    docs = load("documents", load_config("ci"))
    base = "\n\n".join(t for t, lang, kind in zip(docs["text"], docs["lang"], docs["kind"])
                       if lang == "ko" and kind not in TASK_PAGE_KINDS)  # prose: the kinds the world began with
    text = (base * (60_000 // len(base) + 1))[:60_000]
    whole = tuple(text[t.start:t.end] for t in F.kiwi().tokenize(text))
    seen = []
    real = F.kiwi()

    class Recording:
        def tokenize(self, texts):
            seen.extend(len(t) for t in texts)
            return real.tokenize(texts)

    monkeypatch.setattr(F, "kiwi", Recording)
    F.clear_words_cache()
    pieces = F.words(text, "ko")
    assert sum(seen) == len(text) and max(seen) <= F.KIWI_CHUNK_CHARS == 5_000 and len(seen) == 13
    opcodes = difflib.SequenceMatcher(None, whole, pieces, autojunk=False).get_opcodes()
    changed = [op for op in opcodes if op[0] != "equal"]
    assert len(whole) == 28_561 and changed == [("replace", 4683, 4686, 4683, 4684)]


def test_duplicates_and_ngram_chars_by_hand():
    assert F.duplicates(["a", "bb", "a", "bb", "c", "a"]) == (3, 4)
    ws = ("a", "b", "a", "b", "a", "b")
    assert F.top_ngram_chars(ws, 2) == 3 * 3  # "a b" (3 chars) three times
    # 2-grams joined without spaces: ab, ba, [ab repeats: +2, jump 2], [ab repeats: +2, jump 2] -> 4
    assert F.duplicate_ngram_chars(ws, 2) == 4


def test_sentence_spans():
    assert F.sentence_spans('He said "no." Then left! ok') == [(0, 13), (13, 24), (24, 27)]


def test_gopher_quality_rules_by_hand(cases):
    g = F.GopherQuality()
    assert g(cases["clean_en"]["text"]).keep
    expected = {"bullets": "gopher_too_many_bullets", "end_ellipsis": "gopher_too_many_end_ellipsis",
                "hashes": "gopher_too_many_hashes", "long_words": "gopher_above_avg_threshold",
                "short_words": "gopher_below_avg_threshold", "no_stop_words": "gopher_enough_stop_words",
                "numbers": "gopher_below_alpha_threshold"}
    for name, rule in expected.items():
        assert g(cases[name]["text"]).rule == rule, name
    assert g("too short a text").rule == "gopher_short_doc"
    assert F.GopherQuality(min_doc_words=None)("").rule == "gopher_short_doc"


def test_gopher_thresholds_are_configurable(cases):
    text = cases["hashes"]["text"]  # 20 '#'... 3 per 9 tokens: ratio 0.333
    assert not F.GopherQuality()(text).keep
    assert F.GopherQuality(max_symbol_word_ratio=0.34)(text).keep


def test_gopher_repetition_rules(cases):
    g = F.GopherRepetition()
    assert g(cases["clean_en"]["text"]).keep
    assert g(cases["dup_paragraphs"]["text"]).rule == "dup_para_frac"  # 2 of 5 paragraphs repeat: 0.4 > 0.3
    assert g(cases["repeated_phrase"]["text"]).rule.startswith(("top_", "duplicated_"))
    assert g("").rule == "empty"


def test_c4_line_rules(cases):
    v = F.C4Lines()(cases["c4_lines"]["text"])
    assert v.keep
    assert v.text.split("\n") == [
        "The river of the north has long been a place of trade.",  # citation [1] removed
        "People came to the banks with grain and salt. They stayed to build houses.",
        "Some say the town is old, others say it is new!",
        "Visitors ask: is it worth the trip? Most say yes.",
        "A final sentence about the river and the town ends here."]  # menu, cookies, javascript, policy, short gone
    assert F.C4Lines()(cases["c4_curly"]["text"]).rule == "curly_bracket"
    assert F.C4Lines()(cases["c4_lorem"]["text"]).rule == "lorem_ipsum"
    assert F.C4Lines()(cases["c4_too_few_sentences"]["text"]).rule == "too_few_sentences"


def test_fineweb_rules(cases):
    assert F.FineWeb()(cases["clean_en"]["text"]).keep
    assert F.FineWeb()(cases["fineweb_list"]["text"]).rule == "short_line_ratio"
    assert F.FineWeb(short_line_thr=1.0)(cases["fineweb_list"]["text"]).rule == "char_dup_ratio"
    assert F.FineWeb()("\n\n").rule == "empty"


def test_apply_filters_names_filter_and_rule(cases):
    text = cases["clean_en"]["text"] + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."
    v = F.apply_filters(text, "en")
    assert (v.keep, v.rule) == (False, "c4.lorem_ipsum")
    with pytest.raises(ValueError):
        F.for_language("en", gopher={"min_doc_words": 5})


# ---------------------------------------------------------------------- Korean


def test_korean_noise_rejected_by_named_rules(cases):
    ko = F.for_language("ko")
    assert {name: f(cases["ko_spam"]["text"]).rule for name, f in ko.items()} == {
        "gopher_quality": "gopher_enough_stop_words", "gopher_repetition": "dup_line_frac",
        "c4": "too_few_sentences", "fineweb": "line_punct_ratio"}
    # 4 of 6 lines end in "…": 0.67 > 0.3
    assert ko["gopher_quality"](cases["ko_ellipsis"]["text"]).rule == "gopher_too_many_end_ellipsis"


def test_korean_clean_prose_needs_korean_settings(cases):
    """English defaults reject clean Korean (morphemes average < 3 characters; no English stop words)."""
    text = cases["clean_ko"]["text"]
    assert F.GopherQuality(min_doc_words=10, lang="ko")(text).rule == "gopher_below_avg_threshold"
    for name, f in F.for_language("ko").items():
        assert f(text).keep, name


# ---------------------------------------------------------------------- agreement with datatrove


class SameWords(WordTokenizer):
    """datatrove's tokenizer slot filled with our words and sentences, so the comparison is of the rules.
    (datatrove's English tokenizer is spaCy, not installed here; its Korean one asks for a Kiwi model
    that kiwipiepy_model does not ship.)"""

    def __init__(self, lang):
        super().__init__(lang)
        self.lang = lang

    def word_tokenize(self, text):
        return list(F.words(text, self.lang))

    def sent_tokenize(self, text):
        return [text[a:b].strip() for a, b in F.sentence_spans(text)]

    def span_tokenize(self, text):
        return F.sentence_spans(text)


def datatrove_verdict(f, text):
    doc = Document(text=text, id="0")
    result = f.filter(doc)
    return (True, "", doc.text) if result is True else (False, result[1], text)


def ours(v):
    return (v.keep, v.rule, v.text)


def test_repetition_c4_fineweb_agree_with_datatrove(corpus):
    """Identical verdicts, rule names and (C4) output text on every document, at the papers' thresholds.

    FineWeb's terminal punctuation is passed to datatrove as ours (its default holds 159 terminators of
    every script; on English and Korean text they coincide).
    """
    rules = set()
    for text, lang in corpus:
        tok = SameWords(lang)
        for mine, theirs in ((F.GopherRepetition(lang=lang), GopherRepetitionFilter(language=tok)),
                             (F.C4Lines(), C4QualityFilter(language=tok)),
                             (F.FineWeb(lang=lang), FineWebQualityFilter(language=tok, stop_chars=F.TERMINAL_PUNCTUATION))):
            assert ours(mine(text)) == datatrove_verdict(theirs, text), (type(mine).__name__, text[:80])
            rules.add(mine(text).rule)
    assert len(rules) >= 10  # the corpus exercises most rules


def test_gopher_quality_agrees_with_datatrove_up_to_stated_differences(corpus):
    """Same verdict and rule except where one of our two deliberate differences decides:

    1. stop words: we lower-case before matching ("The" counts), datatrove does not;
    2. symbol words: we call a token a symbol if all its characters are Unicode punctuation or symbols
       (P*, S*); datatrove uses a fixed list that lacks e.g. the Korean title brackets 『』, so it
       counts them as words (more words, shorter mean length).
    The share-of-words-with-a-letter rule differs by design (see ``GopherQuality``) and is off in both here.
    """
    agree = 0
    for text, lang in corpus:
        stop = F.EN_STOP_WORDS if lang == "en" else F.KO_STOP_WORDS
        mine = F.GopherQuality(min_alpha_words_ratio=None, stop_words=stop, lang=lang)(text)
        theirs = datatrove_verdict(GopherQualityFilter(max_non_alpha_words_ratio=None, stop_words=list(stop),
                                                       language=SameWords(lang)), text)
        if ours(mine) == theirs:
            agree += 1
            continue
        ws = F.words(text, lang)
        if theirs[1] == "gopher_enough_stop_words" and mine.keep:
            assert len(set(stop) & set(ws)) < 2 <= len(set(stop) & {w.lower() for w in ws})
        else:
            assert any(F.is_symbol(w) != all(ch in PUNCTUATION_SET for ch in w) for w in ws), text[:80]
    assert agree / len(corpus) >= 0.95


# ---------------------------------------------------------------------- the world


def test_no_rule_rejects_clean_korean_encyclopedia():
    """With the world's thresholds (short documents: fewer words and sentences), every Korean encyclopedia
    article passes every filter."""
    docs = load("documents", load_config("laptop")).filter(lambda d: d["kind"] == "encyclopedia" and d["lang"] == "ko")
    assert len(docs) > 100
    fs = F.from_config("ko", load_config("laptop").curation)
    rejected = [(t[:40], f.rule) for t in docs["text"] for f in [F.apply_filters(t, "ko", fs)] if not f.keep]
    assert rejected == []


def test_filters_against_world_labels():
    """On the laptop world's web and forum pages, with the profile's thresholds: no clean page is dropped
    (precision 1.0 by construction of the thresholds, asserted >= 0.95), and the rules catch the noise they
    are built for. Gibberish and stray code are not document-level targets of these rules: C4 cuts a code
    line (it ends without terminal punctuation) instead of dropping the page, and gibberish is the
    perplexity filter's (``quality``)."""
    cfg = load_config("laptop")
    docs = load("documents", cfg).filter(lambda d: d["kind"] in cfg.curation.filter_kinds)
    scores = F.label_scores(docs["text"], docs["lang"], docs["quality_flags"],
                            lambda lang: F.from_config(lang, cfg.curation))
    assert scores["all"]["precision"] >= 0.95 and scores["all"]["recall"] >= 0.65, scores["all"]
    by_flag = scores["all"]["recall_by_flag"]
    assert by_flag["repeated_lines"] == 1.0 and by_flag["lorem_ipsum"] == 1.0
    assert by_flag["keyword_spam"] >= 0.9 and by_flag["repeated_ngrams"] >= 0.7
    assert scores["c4"]["recall_by_flag"]["lorem_ipsum"] == 1.0
    assert scores["gopher_repetition"]["recall_by_flag"]["repeated_lines"] == 1.0
    code_pages = [(t, lang) for t, lang, f in zip(docs["text"], docs["lang"], docs["quality_flags"])
                  if "code_in_prose" in f]
    assert code_pages and all("{" not in F.C4Lines(min_num_sentences=0)(t).text for t, _ in code_pages)


BOILERPLATE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "curation" / "boilerplate_pages.jsonl"


@pytest.mark.parametrize("profile", ["ci", "laptop"])
def test_config_filters_drop_cookie_banner_and_menu_pages_as_the_paper_set_does(profile):
    """Hand-written cookie-consent and menu pages, English and Korean: all that C4 keeps of them is the
    copyright line, two "sentences", enough for the profiles' relaxed sentence count, so the configured set
    drops them for keeping fewer words than Gopher's shortest document; the papers' set drops them too."""
    pages = [json.loads(line) for line in BOILERPLATE.read_text(encoding="utf-8").splitlines()]
    cfg = load_config(profile).curation
    config = {p["name"]: F.apply_filters(p["text"], p["lang"], F.from_config(p["lang"], cfg)).rule for p in pages}
    paper = {p["name"]: F.apply_filters(p["text"], p["lang"]).rule for p in pages}
    assert config == {"cookie_en": "c4.too_few_words", "menu_en": "c4.too_few_words",
                      "cookie_ko": "c4.too_few_words", "menu_ko": "c4.too_few_words"}
    assert paper == {"cookie_en": "c4.too_few_sentences", "menu_en": "gopher_quality.gopher_short_doc",
                     "cookie_ko": "c4.too_few_sentences", "menu_ko": "gopher_quality.gopher_short_doc"}


def test_korean_policy_notices_are_c4_policy_lines():
    c4 = F.for_language("ko")["c4"]
    text = "당사와 파트너는 쿠키를 사용합니다.\n이 글은 강의 역사를 다룬다. 강은 오래되었다.\n사람들이 모였다. 마을이 생겼다. 다리가 놓였다."
    assert c4(text).text == "이 글은 강의 역사를 다룬다. 강은 오래되었다.\n사람들이 모였다. 마을이 생겼다. 다리가 놓였다."
    assert F.C4Lines()(text).text == text  # the paper's list is English
