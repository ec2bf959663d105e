"""Names from a syllable table: every syllable has a Hangul and a Latin form.

A name is a few syllables; its Hangul form is the syllables themselves and its
Latin form their Revised Romanization run together (달 + 모 + 라 -> 달모라, Dalmora),
so one entity is recognizable in both languages. ``NameBook`` hands out names
that are unique in both scripts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .hangul import HANGUL_FIRST, compose, is_hangul_syllable

# (jamo index, romanization); weights make the common, easy-to-read sounds frequent.
_LEADS = [(0, "g"), (2, "n"), (3, "d"), (5, "r"), (6, "m"), (7, "b"), (9, "s"), (11, ""), (12, "j"),
          (14, "ch"), (16, "t"), (17, "p"), (18, "h")]
_LEAD_WEIGHTS = [3, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 3]
_VOWELS = [(0, "a"), (1, "ae"), (4, "eo"), (5, "e"), (8, "o"), (13, "u"), (18, "eu"), (20, "i"), (12, "yo"), (6, "yeo")]
_VOWEL_WEIGHTS = [6, 1, 2, 2, 5, 4, 1, 5, 1, 1]
_TAILS = [(0, ""), (4, "n"), (8, "l"), (16, "m"), (21, "ng")]
_TAIL_WEIGHTS = [10, 3, 3, 1, 2]


_LEAD_LATIN = dict(_LEADS)
_VOWEL_LATIN = dict(_VOWELS)
_TAIL_LATIN = dict(_TAILS)


def romanize(hangul: str) -> str:
    """The Latin form of Hangul built from the name table's syllables (달모라 -> dalmora)."""
    out = []
    for ch in hangul:
        if not is_hangul_syllable(ch):
            raise ValueError(f"{ch!r} in {hangul!r} is not a Hangul syllable")
        index = ord(ch) - HANGUL_FIRST
        out.append(_LEAD_LATIN[index // 588] + _VOWEL_LATIN[index % 588 // 28] + _TAIL_LATIN[index % 28])
    return "".join(out)


@dataclass(frozen=True)
class Name:
    """One name in both scripts."""

    en: str
    ko: str


def syllable(rng: random.Random) -> tuple[str, str]:
    """A random syllable as (Hangul, romanization)."""
    lead = rng.choices(_LEADS, _LEAD_WEIGHTS)[0]
    vowel = rng.choices(_VOWELS, _VOWEL_WEIGHTS)[0]
    tail = rng.choices(_TAILS, _TAIL_WEIGHTS)[0]
    return compose(lead[0], vowel[0], tail[0]), lead[1] + vowel[1] + tail[1]


def _vowel_clash(parts: list[tuple[str, str]]) -> bool:
    """A vowel-initial syllable after a vowel reads badly in Latin (Daea, Jii); such names are redrawn."""
    return any(a[1][-1] in "aeiouy" and b[1][0] in "aeiouy" for a, b in zip(parts, parts[1:]))


class NameBook:
    """Unique names: no two handed-out names share a Hangul or a Latin form."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self._used: set[str] = set()

    def _fresh(self, n_syllables: int) -> Name:
        for _ in range(1000):
            parts = [syllable(self.rng) for _ in range(n_syllables)]
            ko = "".join(p[0] for p in parts)
            latin = "".join(p[1] for p in parts)
            if len(latin) < 3 or _vowel_clash(parts):
                continue
            en = latin.capitalize()
            if ko not in self._used and en.lower() not in self._used:
                self._used.update((ko, en.lower()))
                return Name(en, ko)
        raise RuntimeError("name space exhausted; use more syllables per name")

    def place(self) -> Name:
        """A place or organization root name of two or three syllables (Dalmora / 달모라)."""
        return self._fresh(self.rng.choice((2, 2, 3)))

    def person(self) -> Name:
        """A person: Latin order 'Given Family', Hangul order family + given (Seora Mun / 문서라)."""
        for _ in range(1000):
            family = syllable(self.rng)
            given = [syllable(self.rng) for _ in range(2)]
            ko = family[0] + given[0][0] + given[1][0]
            en = (given[0][1] + given[1][1]).capitalize() + " " + family[1].capitalize()
            if len(family[1]) < 2 or _vowel_clash(given) or ko in self._used or en.lower() in self._used:
                continue
            self._used.update((ko, en.lower()))
            return Name(en, ko)
        raise RuntimeError("person name space exhausted")
