"""Korean particles, names and NFC: hand-checked expected values."""

import unicodedata

import pytest

from course_lib.world.hangul import attach, detect_lang, final_consonant, format_ko, particle
from course_lib.world.names import NameBook, romanize
from course_lib.world.entities import rng_for


@pytest.mark.parametrize(
    "word, expected",
    [
        # no final consonant
        ("사과", ("가", "는", "를", "와", "로")),
        ("나무", ("가", "는", "를", "와", "로")),
        # final consonant other than ㄹ
        ("책", ("이", "은", "을", "과", "으로")),
        ("부산", ("이", "은", "을", "과", "으로")),
        ("집", ("이", "은", "을", "과", "으로")),
        # final ㄹ: a consonant for 이/은/을/과, a vowel for 으로/로
        ("서울", ("이", "은", "을", "과", "로")),
        ("연필", ("이", "은", "을", "과", "로")),
    ],
)
def test_particles_follow_the_final_consonant(word, expected):
    assert tuple(particle(word, p) for p in ("이", "은", "을", "와", "으로")) == expected
    # either form of a pair may be asked for
    assert tuple(particle(word, p) for p in ("가", "는", "를", "과", "로")) == expected


@pytest.mark.parametrize(
    "word, subject, direction",
    [
        ("1", "이", "로"),  # 일: ㄹ
        ("2", "가", "로"),  # 이
        ("3", "이", "으로"),  # 삼
        ("6", "이", "으로"),  # 육
        ("7", "이", "로"),  # 칠: ㄹ
        ("0", "이", "으로"),  # 영
        ("10", "이", "으로"),  # 십
        ("100", "이", "으로"),  # 백
        ("1000", "이", "으로"),  # 천
        ("2024", "가", "로"),  # 이천이십사
        ("1990", "이", "으로"),  # 천구백구십
        ("20000", "이", "으로"),  # 이만
        ("200000", "이", "으로"),  # 이십만
        ("1,234,567", "이", "로"),  # ...칠
        ("3.5", "가", "로"),  # 삼 점 오
        ("SQL", "이", "로"),  # 에스큐엘: ㄹ
        ("API", "가", "로"),  # 에이피아이
        ("LLM", "이", "으로"),  # 엘엘엠
        ("data", "가", "로"),  # 데이터
        ("app", "이", "으로"),  # 앱
        ("Google", "이", "로"),  # 구글
        ("Python", "이", "으로"),  # 파이선
        ("『정원』", "이", "으로"),  # quotes skipped: 원
        ("서울)", "이", "로"),
    ],
)
def test_particles_after_digits_latin_and_punctuation(word, subject, direction):
    assert particle(word, "이") == subject
    assert particle(word, "으로") == direction


def test_unreadable_word_gets_both_forms_and_unknown_particle_fails():
    assert final_consonant("~~") is None
    assert particle("★", "이") == "이(가)"
    with pytest.raises(ValueError, match="unknown particle"):
        particle("책", "쀍")


def test_attach_and_format_are_nfc():
    decomposed = unicodedata.normalize("NFD", "서울")
    out = attach(decomposed, "을")
    assert out == "서울을" and unicodedata.is_normalized("NFC", out)
    assert format_ko("{s:은} {o:을} {p:으로} 보냈다.", s="나", o="책", p="서울") == "나는 책을 서울로 보냈다."
    assert format_ko("{s:의} 고향은 {o:이다}.", s="민준", o="부산") == "민준의 고향은 부산이다."
    assert format_ko("{o:이다}.", o="바다") == "바다다."


def test_detect_lang():
    assert detect_lang("서울은 도시이다.") == "ko"
    assert detect_lang("Seoul is a city.") == "en"


def test_names_are_unique_and_consistent_in_both_scripts():
    book = NameBook(rng_for(0, "test-names"))
    places = [book.place() for _ in range(300)]
    people = [book.person() for _ in range(300)]
    all_names = places + people
    assert len({n.en.lower() for n in all_names}) == len(all_names)
    assert len({n.ko for n in all_names}) == len(all_names)
    for n in places:
        assert romanize(n.ko).capitalize() == n.en
    for n in people:  # Latin: Given Family; Hangul: family syllable first
        given, family = n.en.split()
        assert romanize(n.ko[1:]).capitalize() == given and romanize(n.ko[0]).capitalize() == family
