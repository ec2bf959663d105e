"""Pages that carry tasks (quiz, faq, infobox, glossary, worked): facts, phrasings, Korean particles, size."""

import collections
import dataclasses
import re
import string

import pytest

from course_lib.config import load_config
from course_lib.world import build_world, generate_world
from course_lib.world.documents import TASK_PAGE_KINDS
from course_lib.world.hangul import PARTICLE_FORMS
from course_lib.world.loading import table_bytes
from course_lib.world.task_pages import ASK, REPLY, TELL, fill
from course_lib.world.templates import QUESTIONS, STATEMENTS

SHARE_TOLERANCE = 0.005  # |measured share of pretraining characters - task_page_share| at laptop size


@pytest.fixture(scope="module")
def world():
    return build_world(load_config("laptop").world)


@pytest.fixture(scope="module")
def pages(world):
    return [d for d in world.documents if d.kind in TASK_PAGE_KINDS]


def test_every_kind_in_both_languages(pages):
    counts = collections.Counter((d.kind, d.lang) for d in pages)
    for kind in TASK_PAGE_KINDS:
        assert counts[kind, "en"] >= 10 and counts[kind, "ko"] >= 10, (kind, counts)
    assert all(d.in_pretraining and not d.quality_flags and not d.pii for d in pages)


def test_pages_state_exactly_their_training_facts(world, pages):
    for d in pages:
        assert d.fact_ids and len(set(d.fact_ids)) == len(d.fact_ids), d.id
        for fact_id in d.fact_ids:
            fact = world.fact(fact_id)
            assert fact.split == "train" and not fact.after_cutoff, (d.id, fact_id)
            assert world.graph.name(fact.subject, d.lang) in d.text, (d.id, fact_id)
            assert world.graph.value_text(fact, d.lang) in d.text, (d.id, fact_id)
        body = d.text.split("\n")[2:]
        answers = {"quiz": len(re.findall(r"(?:Answer|정답): \S|^A\d+[:.] ", d.text, re.M))
                   + (len(re.findall(r"^\d+\. ", d.text.split("Answers:" if d.lang == "en" else "정답:\n")[-1], re.M))
                      if re.search(r"^(Answers|정답):$", d.text, re.M) else 0),
                   "faq": sum(line.startswith(("A: ", "답변: ")) for line in body),
                   "glossary": sum(bool(line) for line in body)}
        if d.kind in answers:  # one stated fact per answer given
            assert answers[d.kind] == len(d.fact_ids), (d.id, answers[d.kind], d.fact_ids)


def test_every_page_is_dated_before_the_cutoff_has_its_own_url_and_words(world, pages):
    assert all(d.date <= world.cutoff for d in pages)
    assert len({d.url for d in pages}) == len(pages)
    # the same words with other punctuation would be an unlabelled exact duplicate for chapter 02
    assert len({tuple(re.findall(r"\w+", d.text.casefold())) for d in pages}) == len(pages)


def _template_patterns(world, lang: str) -> list[tuple[str, re.Pattern]]:
    """Each evaluation template of ``lang`` as a regex: its fixed text with any world name or value in its slots.

    Returns (longest fixed part, pattern) pairs; the fixed part is a cheap pre-check before the regex.
    """
    g = world.graph
    words = {g.name(e.id, lang) for e in world.entities()} | {g.value_text(f, lang) for f in g.facts.values()}
    slot = "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"
    out = []
    for table in (QUESTIONS, STATEMENTS):
        for by_lang in table.values():
            for template in by_lang[lang]:
                parts, pattern = [], ""
                for literal, field, spec, _ in string.Formatter().parse(template):
                    parts.append(literal.strip())
                    pattern += re.escape(literal)
                    if field is not None:
                        pattern += ("(?:an? )" if field == "o_a" else "") + slot
                        if spec:
                            pattern += "(?:" + "|".join(re.escape(p) for p in PARTICLE_FORMS[spec]) + ")"
                out.append((max(parts, key=len).lower(), re.compile(pattern, re.I)))
    return out


def test_no_evaluation_template_appears_in_any_page(world, pages):
    for lang in ("en", "ko"):
        patterns = _template_patterns(world, lang)
        fact = world.facts(relation="birth_place", split="train")[0]
        for i in range(4):  # the detector finds the evaluation phrasings it is meant to find
            text = world.statement(fact, lang, i)
            assert any(fixed in text.lower() and p.search(text) for fixed, p in patterns), text
        for d in (d for d in pages if d.lang == lang):
            lowered = d.text.lower()
            for fixed, p in patterns:
                assert not (fixed in lowered and p.search(d.text)), (d.id, p.search(d.text).group())


def test_korean_particles_by_hand():
    assert fill(ASK["ko"][0], "ko", s="서울", r="직업") == "서울의 직업은?"
    assert fill(ASK["ko"][0], "ko", s="서울", r="수도") == "서울의 수도는?"
    assert fill(ASK["ko"][1], "ko", s="부산", r="인구") == "부산의 인구를 쓰시오."
    assert fill(ASK["ko"][1], "ko", s="부산", r="출생지") == "부산의 출생지를 쓰시오."
    assert fill(REPLY["ko"][3], "ko", o="서울") == "서울로 알려져 있습니다."  # ㄹ takes 로
    assert fill(REPLY["ko"][3], "ko", o="1953년") == "1953년으로 알려져 있습니다."
    assert fill(REPLY["ko"][3], "ko", o="교사") == "교사로 알려져 있습니다."
    assert fill(REPLY["ko"][1], "ko", r="개최일", o="2019년 3월 5일") == "개최일은 2019년 3월 5일입니다."
    assert fill(TELL["ko"][1], "ko", s="틴닝", r="주민 수", o="12,300명") == "틴닝의 주민 수는 12,300명으로 기록되어 있습니다."
    assert fill(ASK["en"][2], "en", s="Tinning", r="population") == "Tinning: population?"


def test_share_of_pretraining_characters(world, pages):
    pretraining = [d for d in world.documents if d.in_pretraining]
    total = sum(len(d.text) for d in pretraining)
    share = world.config.task_page_share
    assert abs(sum(len(d.text) for d in pages) / total - share) <= SHARE_TOLERANCE
    # each kind stops at the first page that reaches its part: above the part, and below it without that page
    part = share / (1 - share) * (total - sum(len(d.text) for d in pages)) / len(TASK_PAGE_KINDS)
    for kind in TASK_PAGE_KINDS:
        sizes = [len(d.text) for d in pages if d.kind == kind]
        assert sum(sizes) >= part > sum(sizes) - sizes[-1], kind


def test_zero_share_disables_them_and_leaves_the_other_kinds_unchanged(world):
    config = dataclasses.replace(load_config("ci").world, task_page_share=0.0)
    without = generate_world(config)
    assert not [d for d in without.documents if d.kind in TASK_PAGE_KINDS]
    with_pages = generate_world(dataclasses.replace(config, task_page_share=0.3))
    others = [d.to_record() for d in with_pages.documents if d.kind not in TASK_PAGE_KINDS]
    assert others == [d.to_record() for d in without.documents]
    assert {d.kind for d in with_pages.documents} >= set(TASK_PAGE_KINDS)


def test_deterministic():
    config = load_config("ci").world
    assert table_bytes(generate_world(config)) == table_bytes(generate_world(config))
