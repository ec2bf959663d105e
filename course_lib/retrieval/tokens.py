"""Words for sparse retrieval: English words, and three ways to split Korean (한국어 토큰화).

Korean writes a noun and its particle as one space-separated word (어절): 변손논이다,
변손논은, 변손논의 are three different whitespace tokens for one city. BM25 only matches
equal tokens, so how Korean is split decides what it can match:

- ``whitespace``: lower-cased ``\\w+`` runs, i.e. the 어절 without punctuation;
- ``bigram``: the overlapping character pairs of each word (a one-character word stays
  whole), the classic language-free way to index Chinese, Japanese and Korean;
- ``morpheme``: Kiwi's content morphemes (kiwipiepy, the analyzer of chapter 02's
  ``filters.kiwi``): particles (J*), endings (E*), suffixes (X*, but roots XR) and
  punctuation (S*, but Latin words, numbers and Hanja) are dropped, as Korean search
  engines drop them (Lucene's Nori does by default), so 변손논이다 becomes 변손논 / 이
  (the copula stays) and 태어났다 becomes 태어나. Dropping them matters: the particles
  and endings are in every question, so kept, they rank passages that share a question's
  phrasing above passages about its subject (laptop, Korean recall@5: 0.81 kept, 0.90
  dropped).

English text is split into lower-cased ``\\w+`` words whatever the Korean scheme. Single
characters are kept (``bm25s.tokenize`` would drop them, and most Korean particles with
them), so the course passes these lists to ``bm25s`` as they are.
"""

from __future__ import annotations

import re

from ..curation import filters

KO_SCHEMES = ("whitespace", "bigram", "morpheme")
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased ``\\w+`` runs of ``text``: letters, digits and underscores, punctuation dropped."""
    return _WORD.findall(text.lower())


def char_bigrams(text: str) -> list[str]:
    """Overlapping character pairs inside each word: 변손논이다 -> 변손, 손논, 논이, 이다."""
    out = []
    for w in words(text):
        out += [w] if len(w) == 1 else [w[i:i + 2] for i in range(len(w) - 1)]
    return out


# Kiwi tags whose morphemes carry no content: particles, endings, suffixes and symbols (Sejong tag set)
FUNCTION_TAGS = ("J", "E", "X", "S")
CONTENT_EXCEPTIONS = ("XR", "SL", "SN", "SH")  # roots, Latin-script words, numbers, Hanja


def morphemes(text: str) -> list[str]:
    """Kiwi's content morphemes of ``text`` (their base forms, lower-cased): 태어났나요 -> 태어나."""
    pieces = [text[s:e] for s, e in filters.chunk_spans(text)]  # Kiwi slows down on very long inputs
    return [t.form.lower() for tokens in filters.kiwi().tokenize(pieces) for t in tokens
            if not t.tag.startswith(FUNCTION_TAGS) or t.tag in CONTENT_EXCEPTIONS]


def tokenize(text: str, lang: str, ko: str = "morpheme") -> list[str]:
    """The tokens BM25 indexes for ``text`` in ``lang``: Korean split by scheme ``ko``, anything else into words."""
    if ko not in KO_SCHEMES:
        raise ValueError(f"unknown Korean tokenization {ko!r}; choose one of {', '.join(KO_SCHEMES)}")
    if lang != "ko" or ko == "whitespace":
        return words(text)
    return char_bigrams(text) if ko == "bigram" else morphemes(text)
