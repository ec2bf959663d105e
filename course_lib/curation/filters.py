"""Rule-based quality filters (규칙 기반 필터링): Gopher quality and repetition rules, C4 line rules, FineWeb rules.

Each filter is a small dataclass whose fields are its thresholds (defaults are
the papers'; ``None`` switches a rule off) and whose call returns a
``Verdict``: keep or not, and the name of the rule that rejected the document.
Rule names are datatrove's, so the two can be compared rule by rule.

Words (``words``): English text is split into words and punctuation marks by a
regular expression; Korean text into morphemes by Kiwi (kiwipiepy), as
datatrove does: Korean writes particles and endings onto the word (행무신이,
설립했다), so whitespace "words" are long and rarely repeat. Morphemes are
short (about 1.5 to 2 syllables), so the Korean defaults (``for_language``)
lower the mean-word-length floor and use a Korean stop-word list of particles
and endings. Lengths are in Unicode code points.

Languages: the rules know English and Korean. A language code is normalized
(``normalize_lang``: BCP-47 tags and ISO 639-1/2/3 codes, any case, so ``ko-KR``,
``KO`` and ``kor`` are Korean); any other code is a ``ValueError``, and a missing
one is detected per document (``document_lang``), never assumed to be English.

References: Rae et al. 2021 (Gopher) Table A1; Raffel et al. 2020 (C4) §2.2;
Penedo et al. 2024 (FineWeb) §3.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from course_lib.world.hangul import detect_lang

from .. import checks

# ---------------------------------------------------------------------- words


@dataclass(frozen=True)
class Verdict:
    """A filter's decision. ``rule`` names the rule that rejected the document ("" if kept);
    ``text`` is the document after the filter (C4 removes lines)."""

    keep: bool
    rule: str = ""
    text: str = ""


# the primary subtag of a BCP-47 tag, or an ISO 639-1/2/3 code, of the two languages the rules know
LANG_CODES = {"en": "en", "eng": "en", "ko": "ko", "kor": "ko"}


def normalize_lang(lang: str) -> str:
    """``"en"`` or ``"ko"`` for a code of English or Korean: ``ko``, ``KO``, ``ko-KR``, ``ko_KR``, ``kor``,
    ``en-US``, ``eng``, ... (the primary subtag, case-folded). Any other code is a ``ValueError``."""
    primary = checks.text("lang", lang).strip().replace("_", "-").split("-")[0].casefold()
    if primary not in LANG_CODES:
        raise ValueError(f"lang: unknown language code {lang!r}; expected a BCP-47 or ISO 639 code of English or "
                         "Korean (en, en-US, eng, ko, ko-KR, kor)")
    return LANG_CODES[primary]


def document_lang(text: str, lang: str | None = None) -> str:
    """The language of a document: ``normalize_lang(lang)``, or detected from ``text`` (``detect_lang``:
    Hangul letters) when ``lang`` is None or ""."""
    if lang in (None, ""):
        return detect_lang(checks.text("text", text))
    return normalize_lang(lang)


_EN_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


@lru_cache(maxsize=1)
def kiwi():
    """The Kiwi morphological analyzer with its default model (loaded once, about a second; the model
    ships in the kiwipiepy_model package, nothing is downloaded). datatrove asks for the ``sbg``
    model, which kiwipiepy_model does not ship."""
    from kiwipiepy import Kiwi

    return Kiwi()


def words(text: str, lang: str = "en") -> tuple[str, ...]:
    """Words and punctuation marks of ``text``: Kiwi morphemes (as surface slices of ``text``) for Korean,
    a regular expression (``\\w+`` with inner apostrophes, or one punctuation mark) for English.

    ``lang`` is any code ``normalize_lang`` reads. Cached, because several filters split the same document.
    """
    return _words(checks.text("text", text), normalize_lang(lang))


def clear_words_cache() -> None:
    """Forget every cached split (a benchmark times the splitting, not the cache)."""
    _words.cache_clear()


@lru_cache(maxsize=4096)
def _words(text: str, lang: str) -> tuple[str, ...]:
    if lang == "ko":
        spans = chunk_spans(text)
        pieces = kiwi().tokenize([text[s:e] for s, e in spans])
        return tuple(text[s + t.start:s + t.end] for (s, _), tokens in zip(spans, pieces) for t in tokens)
    return tuple(_EN_WORD.findall(text))


# Kiwi's time grows faster than the length of what it is given (one 300k-character document: 19 s, 600k:
# 67 s); pieces of at most this many characters keep the time of a document linear in its length
KIWI_CHUNK_CHARS = 5_000


def chunk_spans(text: str, size: int = KIWI_CHUNK_CHARS) -> list[tuple[int, int]]:
    """(start, end) pieces that tile ``text``, each at most ``size`` characters, cut after the last line break
    in the window, else after its last sentence end, else at its last space (a hard cut only inside a
    ``size``-character word). A text of at most ``size`` characters is one piece."""
    spans, start = [], 0
    while len(text) - start > size:
        window = text[start:start + size]
        # one character more, so a full stop at the window's edge counts only if a space follows it
        ends = [m.end() for m in _SENTENCE_END.finditer(text, start, start + size + 1) if m.end() - start <= size]
        cut = window.rfind("\n") + 1 or (ends[-1] - start if ends else 0) or window.rfind(" ") + 1 or size
        spans.append((start, start + cut))
        start += cut
    return spans + [(start, len(text))]


def is_symbol(word: str) -> bool:
    """True if every character is punctuation or a symbol (Unicode categories P* and S*)."""
    return all(unicodedata.category(ch)[0] in "PS" for ch in word)


EN_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher's list
# Korean function morphemes (Kiwi surface forms): case particles, topic/additive particles, the copula and
# sentence endings; clean prose has several in every sentence, lists and spam have few
KO_STOP_WORDS = ("이", "가", "은", "는", "을", "를", "의", "에", "에서", "와", "과", "으로", "로", "도", "다", "고", "하")

# ---------------------------------------------------------------------- Gopher quality


@dataclass
class GopherQuality:
    """Gopher's quality rules (Rae et al. 2021, §A.1.1); a document is dropped by the first rule it breaks.

    Word counts, the mean word length and the share of words with a letter use non-symbol words
    (datatrove counts the letter share over all tokens, so every "." or "," counts against a
    document; the paper splits on whitespace, where punctuation sticks to a word). The symbol
    ratios use all tokens. Stop words are matched lower-cased (datatrove: case-sensitive).
    """

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1  # '#' or ellipses per word
    max_bullet_lines_ratio: float | None = 0.9  # lines starting with a bullet
    max_ellipsis_lines_ratio: float | None = 0.3  # lines ending with an ellipsis
    min_alpha_words_ratio: float | None = 0.8  # words with at least one letter
    min_stop_words: int | None = 2  # distinct stop words present
    stop_words: tuple[str, ...] = EN_STOP_WORDS
    lang: str = "en"

    def __call__(self, text: str) -> Verdict:
        ws = words(text, self.lang)
        if not ws:
            return Verdict(False, "gopher_short_doc", text)
        content = [w for w in ws if not is_symbol(w)]
        n = len(content)
        if self.min_doc_words and n < self.min_doc_words:
            return Verdict(False, "gopher_short_doc", text)
        if self.max_doc_words and n > self.max_doc_words:
            return Verdict(False, "gopher_long_doc", text)
        mean_len = sum(len(w) for w in content) / n if n else 0.0
        if self.min_avg_word_length and mean_len < self.min_avg_word_length:
            return Verdict(False, "gopher_below_avg_threshold", text)
        if self.max_avg_word_length and mean_len > self.max_avg_word_length:
            return Verdict(False, "gopher_above_avg_threshold", text)
        if self.max_symbol_word_ratio and text.count("#") / len(ws) > self.max_symbol_word_ratio:
            return Verdict(False, "gopher_too_many_hashes", text)
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / len(ws) > self.max_symbol_word_ratio:
            return Verdict(False, "gopher_too_many_ellipsis", text)
        lines = text.splitlines()
        bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines)
        if self.max_bullet_lines_ratio and bullets / len(lines) > self.max_bullet_lines_ratio:
            return Verdict(False, "gopher_too_many_bullets", text)
        ellipses = sum(line.rstrip().endswith(("...", "…")) for line in lines)
        if self.max_ellipsis_lines_ratio and ellipses / len(lines) > self.max_ellipsis_lines_ratio:
            return Verdict(False, "gopher_too_many_end_ellipsis", text)
        alpha = sum(any(ch.isalpha() for ch in w) for w in content)
        if self.min_alpha_words_ratio and (alpha / n if n else 0.0) < self.min_alpha_words_ratio:
            return Verdict(False, "gopher_below_alpha_threshold", text)
        if self.min_stop_words and len(set(self.stop_words) & {w.lower() for w in ws}) < self.min_stop_words:
            return Verdict(False, "gopher_enough_stop_words", text)
        return Verdict(True, "", text)


# ---------------------------------------------------------------------- Gopher repetition


def duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items that repeat an earlier one, their total length in characters)."""
    seen: set[str] = set()
    n = chars = 0
    for item in items:
        if item in seen:
            n += 1
            chars += len(item)
        else:
            seen.add(item)
    return n, chars


def top_ngram_chars(ws: tuple[str, ...], n: int) -> int:
    """Characters covered by the most frequent word n-gram: len(" ".join(gram)) * its count (0 if none)."""
    grams = Counter(" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def duplicate_ngram_chars(ws: tuple[str, ...], n: int) -> int:
    """Characters (words joined without spaces) in n-grams that repeat an earlier n-gram, scanning left to
    right and jumping past each repeat, so no character counts twice."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(ws) - n + 1:
        gram = "".join(ws[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


@dataclass
class GopherRepetition:
    """Gopher's repetition rules (Rae et al. 2021, Table A1); fractions are of ``len(text)`` characters
    except the two counts of duplicated lines and paragraphs."""

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    lang: str = "en"

    def __call__(self, text: str) -> Verdict:
        if not text:
            return Verdict(False, "empty", text)
        paragraphs = re.split(r"\n{2,}", text.strip())
        n, chars = duplicates(paragraphs)
        if self.dup_para_frac and n / len(paragraphs) > self.dup_para_frac:
            return Verdict(False, "dup_para_frac", text)
        if self.dup_para_char_frac and chars / len(text) > self.dup_para_char_frac:
            return Verdict(False, "dup_para_char_frac", text)
        lines = re.split(r"\n+", text)
        n, chars = duplicates(lines)
        if self.dup_line_frac and n / len(lines) > self.dup_line_frac:
            return Verdict(False, "dup_line_frac", text)
        if self.dup_line_char_frac and chars / len(text) > self.dup_line_char_frac:
            return Verdict(False, "dup_line_char_frac", text)
        ws = words(text, self.lang)
        for n, frac in self.top_n_grams:
            if top_ngram_chars(ws, n) / len(text) > frac:
                return Verdict(False, f"top_{n}_gram", text)
        for n, frac in self.dup_n_grams:
            if duplicate_ngram_chars(ws, n) / len(text) > frac:
                return Verdict(False, f"duplicated_{n}_n_grams", text)
        return Verdict(True, "", text)


# ---------------------------------------------------------------------- C4


C4_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
# the same notices as Korean sites write them: "uses cookies", cookie policy, privacy policy, terms of use
C4_POLICY_KO = ("쿠키를 사용", "쿠키 정책", "개인정보처리방침", "개인정보 처리방침", "이용약관")
_SENTENCE_END = re.compile(r"[.!?。？！]+[\"'”’)]*(?=\s|$)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: a sentence ends after a run of terminal punctuation (and closing
    quotes) followed by a space or the end of the text; trailing text without one is a last sentence."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


@dataclass
class C4Lines:
    """C4's rules (Raffel et al. 2020): keep only lines that end in terminal punctuation, have at least
    ``min_words_per_line`` words and mention neither "javascript" nor a policy phrase; drop the whole
    page for "lorem ipsum", a curly bracket, or fewer than ``min_num_sentences`` sentences left.

    ``min_kept_words`` (the course's addition, off by default) also drops a page whose kept lines hold fewer
    (whitespace) words: with a relaxed sentence count, a cookie-banner or menu page of which only the
    copyright line "© 2024 Site. All rights reserved." survives would pass as two sentences."""

    min_words_per_line: int = 3
    min_num_sentences: int = 5
    min_kept_words: int | None = None
    max_word_length: int = 1000
    end_punctuation: tuple[str, ...] = (".", "?", "!", '"', "'")
    remove_citations: bool = True
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    policy_phrases: tuple[str, ...] = C4_POLICY

    def __call__(self, text: str) -> Verdict:
        kept, sentences = [], 0
        for line in text.splitlines():
            line = line.strip()
            line_words = line.split()
            if any(len(w) > self.max_word_length for w in line_words):
                continue
            if self.remove_citations:
                line = C4_CITATION.sub("", line)
            if not line.endswith(self.end_punctuation) or line.endswith("..."):
                continue
            if len(line_words) < self.min_words_per_line:
                continue
            low = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in low:
                return Verdict(False, "lorem_ipsum", text)
            if self.filter_javascript and "javascript" in low:
                continue
            if self.filter_curly_bracket and "{" in line:
                return Verdict(False, "curly_bracket", text)
            if self.filter_policy and any(p in low for p in self.policy_phrases):
                continue
            sentences += len(sentence_spans(line))
            kept.append(line)
        if sentences < self.min_num_sentences:
            return Verdict(False, "too_few_sentences", text)
        if self.min_kept_words and sum(len(line.split()) for line in kept) < self.min_kept_words:
            return Verdict(False, "too_few_words", text)
        return Verdict(True, "", "\n".join(kept).strip())


# ---------------------------------------------------------------------- FineWeb

# sentence terminators of the Latin and CJK scripts (datatrove's set holds 159, of every script)
TERMINAL_PUNCTUATION = (".", "!", "?", "。", "？", "！", "‼", "‽", "⁇", "⁈", "⁉")


@dataclass
class FineWeb:
    """FineWeb's three rules (Penedo et al. 2024) and the list-page rule of datatrove's implementation.

    On non-blank lines: at least ``line_punct_thr`` end in terminal punctuation; at most
    ``short_line_thr`` are ``short_line_length`` characters or shorter; duplicated lines hold at most
    ``char_duplicates_ratio`` of the characters (newlines excluded); newlines per word at most ``new_line_ratio``.
    """

    line_punct_thr: float = 0.12
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3
    stop_chars: tuple[str, ...] = TERMINAL_PUNCTUATION
    lang: str = "en"

    def __call__(self, text: str) -> Verdict:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return Verdict(False, "empty", text)
        if sum(line.endswith(self.stop_chars) for line in lines) / len(lines) < self.line_punct_thr:
            return Verdict(False, "line_punct_ratio", text)
        if sum(len(line) <= self.short_line_length for line in lines) / len(lines) > self.short_line_thr:
            return Verdict(False, "short_line_ratio", text)
        if duplicates(lines)[1] / len(text.replace("\n", "")) > self.char_duplicates_ratio:
            return Verdict(False, "char_dup_ratio", text)
        if text.count("\n") / max(1, len(words(text, self.lang))) > self.new_line_ratio:
            return Verdict(False, "list_ratio", text)
        return Verdict(True, "", text)


# ---------------------------------------------------------------------- per language

FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


def for_language(lang: str, **overrides: dict) -> dict[str, object]:
    """The four filters with the paper defaults for English and adapted defaults for Korean.

    Korean (measured on the world's clean Korean documents, Kiwi morphemes): mean
    morpheme length is about 1.7 characters, so the floor is 1; Korean stop
    words; a Korean line holds about twice the content of an English line of
    the same length, so FineWeb's short line is 15 characters. ``overrides``
    maps a filter name to field values, e.g. ``{"c4": {"min_num_sentences": 3}}``. ``lang`` is any code
    ``normalize_lang`` reads; C4 also drops lines with Korean policy notices (``C4_POLICY_KO``) in Korean.
    """
    lang = normalize_lang(lang)
    if lang == "ko":
        made = {"gopher_quality": GopherQuality(min_avg_word_length=1, stop_words=KO_STOP_WORDS, lang="ko"),
                "gopher_repetition": GopherRepetition(lang="ko"),
                "c4": C4Lines(policy_phrases=C4_POLICY + C4_POLICY_KO),
                "fineweb": FineWeb(short_line_length=15, lang="ko")}
    else:
        made = {"gopher_quality": GopherQuality(lang=lang), "gopher_repetition": GopherRepetition(lang=lang),
                "c4": C4Lines(), "fineweb": FineWeb(lang=lang)}
    for name, values in overrides.items():
        if name not in made:
            raise ValueError(f"unknown filter {name!r}; filters: {', '.join(FILTERS)}")
        made[name] = dataclasses.replace(made[name], **values)
    return made


def apply_filters(text: str, lang: str = "en", filters: dict | None = None) -> Verdict:
    """Run the filters in order; the first rejection wins and is named ``"<filter>.<rule>"``.
    C4 may shorten the text; later filters see the shortened text."""
    checks.text("text", text)
    for name, f in (filters or for_language(lang)).items():
        verdict = f(text)
        if not verdict.keep:
            return Verdict(False, f"{name}.{verdict.rule}", text)
        text = verdict.text
    return Verdict(True, "", text)


def from_config(lang: str, cfg) -> dict[str, object]:
    """The four filters for ``lang`` with the thresholds of a ``CurationConfig`` (``config.curation``)."""
    return for_language(
        lang,
        gopher_quality={"min_doc_words": cfg.min_doc_words, "max_doc_words": cfg.max_doc_words,
                        "min_alpha_words_ratio": cfg.min_alpha_words_ratio, "min_stop_words": cfg.min_stop_words},
        gopher_repetition={"top_n_grams": tuple(zip(range(2, 5), cfg.top_ngram_fracs)),
                           "dup_n_grams": tuple(zip(range(5, 11), cfg.dup_ngram_fracs))},
        # what C4 keeps must still be as long as Gopher's shortest document (cookie-banner and menu pages)
        c4={"min_num_sentences": cfg.c4_min_num_sentences, "min_kept_words": cfg.min_doc_words},
        fineweb={"short_line_length": cfg.ko_short_line_length} if normalize_lang(lang) == "ko" else {},
    )


# ---------------------------------------------------------------------- against labels

# the world's flags a document-level filter should catch (boilerplate lines are C4's to cut, copies dedup's)
LOW_QUALITY_FLAGS = ("keyword_spam", "repeated_lines", "repeated_ngrams", "lorem_ipsum", "gibberish", "code_in_prose")


def label_scores(texts: list[str], langs: list[str], flags: list[list[str]], make_filters,
                 positive: tuple[str, ...] = LOW_QUALITY_FLAGS) -> dict[str, dict]:
    """Precision and recall of each filter (and of all together) against quality labels.

    A document is *positive* if it carries any flag in ``positive``. Each filter
    is run alone on every document; precision = positives among the documents
    it drops, recall = dropped positives / positives; ``recall_by_flag`` splits
    recall by flag. ``make_filters(lang)`` returns the filters (e.g.
    ``lambda lang: from_config(lang, cfg.curation)``). A missing language is detected (``document_lang``).
    """
    texts = checks.texts("texts", texts)
    langs = [document_lang(t, lang) for t, lang in zip(texts, checks.sequence("langs", langs, "language codes"))]
    by_lang = {lang: make_filters(lang) for lang in set(langs)}
    names = list(next(iter(by_lang.values())))
    dropped = {name: [] for name in names + ["all"]}
    for text, lang in zip(texts, langs):
        verdicts = [f(text).keep for f in by_lang[lang].values()]
        for name, keep in zip(names, verdicts):
            dropped[name].append(not keep)
        dropped["all"].append(not all(verdicts))
    is_pos = [bool(set(f) & set(positive)) for f in flags]
    out = {}
    for name, drops in dropped.items():
        tp = sum(d and p for d, p in zip(drops, is_pos))
        n_drop, n_pos = sum(drops), sum(is_pos)
        by_flag = {}
        for flag in positive:
            has = [flag in f for f in flags]
            by_flag[flag] = sum(d and h for d, h in zip(drops, has)) / max(1, sum(has))
        out[name] = {"dropped": n_drop, "precision": tp / n_drop if n_drop else 1.0,
                     "recall": tp / n_pos if n_pos else 1.0, "recall_by_flag": by_flag}
    return out
