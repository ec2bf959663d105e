"""Korean text helpers: Hangul syllables, final consonants (받침) and particles (조사).

A Korean particle has two forms and the word before it chooses one: 이/가, 은/는,
을/를, 와/과 follow whether the word's last syllable ends in a consonant (받침);
으로/로 has one more rule: a word ending in ㄹ takes 로, like a vowel (서울로, 부산으로).

The word before a particle is not always Hangul. We read it the way a Korean
speaker would: digits by their Sino-Korean reading (3 = 삼 -> 삼을, 10 = 십 -> 십을,
2 = 이 -> 이를), Latin acronyms by letter names (SQL = 에스큐엘 -> ㄹ), Latin words
by a pronunciation heuristic (app -> 앱 -> 앱을, data -> 데이터 -> 데이터를), and trailing
punctuation such as quotes and brackets is skipped (『정원』은).
"""

from __future__ import annotations

import string
import unicodedata

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
RIEUL = 8  # index of ㄹ among the 28 final-consonant slots (0 = no final consonant)

# Final-consonant index of each syllable a number ends with when read aloud.
_DIGIT_FINAL = {"0": 21, "1": 8, "2": 0, "3": 16, "4": 0, "5": 0, "6": 1, "7": 8, "8": 8, "9": 0}  # 영 일 이 삼 사 오 육 칠 팔 구
_PLACE_FINAL = {1: 17, 2: 1, 3: 4}  # 십(ㅂ) 백(ㄱ) 천(ㄴ)
_MYRIAD_FINAL = {1: 4, 2: 1, 3: 0, 4: 21}  # 만(ㄴ) 억(ㄱ) 조(-) 경(ㅇ)

# Letter names as read in Korean; only these end in a consonant: L 엘, M 엠, N 엔, R 알.
_LETTER_FINAL = {"L": RIEUL, "R": RIEUL, "M": 16, "N": 4}

# Each particle: (form after a final consonant, form after a vowel).
_PARTICLES = [
    ("이", "가"),
    ("은", "는"),
    ("을", "를"),
    ("과", "와"),
    ("으로", "로"),
    ("으로서", "로서"),
    ("으로써", "로써"),
    ("이다", "다"),
    ("이었다", "였다"),
    ("이며", "며"),
    ("이라는", "라는"),
    ("이나", "나"),
    ("이랑", "랑"),
    ("아", "야"),
    # invariant particles, accepted as format specs so templates can mark every particle alike
    ("의", "의"),
    ("에", "에"),
    ("에서", "에서"),
    ("도", "도"),
]
PARTICLE_FORMS: dict[str, tuple[str, str]] = {form: pair for pair in _PARTICLES for form in pair}


def is_hangul_syllable(ch: str) -> bool:
    return len(ch) == 1 and HANGUL_FIRST <= ord(ch) <= HANGUL_LAST


def compose(lead: int, vowel: int, tail: int = 0) -> str:
    """One Hangul syllable from jamo indices (19 leads, 21 vowels, 28 tails incl. none)."""
    return chr(HANGUL_FIRST + (lead * 21 + vowel) * 28 + tail)


def syllable_final(ch: str) -> int:
    """Final-consonant index (0 = none, 8 = ㄹ) of a Hangul syllable."""
    return (ord(ch) - HANGUL_FIRST) % 28


def _number_final(digits: str) -> int:
    """Final consonant of an integer read in Sino-Korean (1990 -> 구십 -> ㅂ)."""
    digits = digits.lstrip("0")
    if not digits:
        return _DIGIT_FINAL["0"]
    low = digits[-4:].lstrip("0")
    if low:  # the reading ends inside the last group of four: ...일, ...십, ...백, ...천
        zeros = len(low) - len(low.rstrip("0"))
        return _DIGIT_FINAL[low[-1]] if zeros == 0 else _PLACE_FINAL[zeros]
    # the last four digits are 0: the reading ends with a myriad unit (만, 억, 조, 경)
    group = 1
    rest = digits[:-4]
    while rest and not rest[-4:].strip("0"):
        group, rest = group + 1, rest[:-4]
    return _MYRIAD_FINAL.get(group, 0)


def _latin_final(word: str) -> int:
    """Final consonant of a Latin word or acronym as a Korean speaker reads it."""
    if word.isupper() or len(word) == 1:  # acronym: letter names (API -> 에이피아이)
        return _LETTER_FINAL.get(word[-1].upper(), 0)
    w = word.lower()
    if w.endswith("ng"):
        return 21  # -ng -> ㅇ (ring -> 링)
    if w.endswith("le") and len(w) > 2 and w[-3] not in "aeiou":
        return RIEUL  # google -> 구글, apple -> 애플
    last, before = w[-1], w[-2] if len(w) > 1 else ""
    if last == "l":
        return RIEUL
    if last in "mn":
        return 16 if last == "m" else 4
    if last in "bptc" or (last == "k" and (before in "aeiouc")):
        return 1  # book -> 북, app -> 앱, chat -> 챗, music -> 뮤직
    return 0  # vowels and letters read with a trailing 으 (data -> 데이터, desk -> 데스크)


def final_consonant(word: str) -> int | None:
    """Final-consonant index of how ``word`` ends when read aloud, ``None`` if unreadable.

    0 means the word ends in a vowel, 8 means ㄹ, any other value another consonant.
    Trailing punctuation (quotes, brackets, periods) is skipped.
    """
    text = unicodedata.normalize("NFC", word).rstrip(string.punctuation + " 』」》〉’”")
    if not text:
        return None
    ch = text[-1]
    if is_hangul_syllable(ch):
        return syllable_final(ch)
    if ch.isdigit():
        run = text
        i = len(run)
        while i > 0 and (run[i - 1].isdigit() or run[i - 1] == ","):
            i -= 1
        number = run[i:].replace(",", "")
        if i > 0 and run[i - 1] == ".":  # decimal part is read digit by digit (3.5 -> 삼 점 오)
            return _DIGIT_FINAL[number[-1]]
        return _number_final(number)
    if ch.isascii() and ch.isalpha():
        i = len(text)
        while i > 0 and text[i - 1].isascii() and text[i - 1].isalpha():
            i -= 1
        return _latin_final(text[i:])
    return None


def particle(word: str, form: str) -> str:
    """The form of the particle written ``form`` (either of its forms) that fits after ``word``.

    >>> particle("서울", "으로"), particle("부산", "로"), particle("나무", "이")
    ('로', '으로', '가')
    """
    if form not in PARTICLE_FORMS:
        raise ValueError(f"unknown particle {form!r}; known: {', '.join(PARTICLE_FORMS)}")
    after_consonant, after_vowel = PARTICLE_FORMS[form]
    final = final_consonant(word)
    if after_consonant == after_vowel:
        return after_vowel
    if final is None:  # unreadable: Korean writers then give both forms, e.g. 이(가)
        return f"{after_consonant}({after_vowel})"
    if after_consonant.startswith("으"):  # 으로 family: ㄹ behaves like a vowel
        return after_vowel if final in (0, RIEUL) else after_consonant
    return after_vowel if final == 0 else after_consonant


def attach(word: str, form: str) -> str:
    """``word`` followed by the right form of the particle: ``attach("서울", "을") == "서울을"``."""
    return nfc(word + particle(word, form))


class KoreanFormatter(string.Formatter):
    """``str.format`` where a particle as format spec attaches it: ``"{x:은}"`` -> ``서울은``."""

    def format_field(self, value, format_spec):
        if format_spec in PARTICLE_FORMS:
            return attach(str(value), format_spec)
        return super().format_field(value, format_spec)


_FORMATTER = KoreanFormatter()


def format_ko(template: str, **slots) -> str:
    """Fill a Korean template whose slots may carry a particle spec, e.g. ``"{s:은} {o:을} 만들었다."``."""
    return nfc(_FORMATTER.format(template, **slots))


def detect_lang(text: str) -> str:
    """``"ko"`` if at least a third of the letters are Hangul syllables, else ``"en"``."""
    letters = [ch for ch in text if ch.isalpha()]
    hangul = sum(1 for ch in letters if is_hangul_syllable(ch))
    return "ko" if letters and hangul * 3 >= len(letters) else "en"


def nfc(text: str) -> str:
    """Unicode NFC: precomposed Hangul syllables, the form every world text is stored in."""
    return unicodedata.normalize("NFC", text)
