"""Fresh passages: invented people the world never mentions, facts stated only in the passage."""

import unicodedata

import pytest

from course_lib.config import load_config
from course_lib.world import FRESH_RELATIONS, build_world, fresh_passages
from course_lib.world.fresh import is_fresh
from course_lib.world.names import Name


@pytest.fixture(scope="module", params=["ci", "laptop"])
def world(request):
    return build_world(load_config(request.param).world)


def test_is_fresh_refuses_a_name_inside_or_around_a_world_name_or_in_the_text():
    name = Name("Dalmo Kim", "김달모")
    assert is_fresh(name, ["dalmora", "달모라"], "a text about nobody")
    assert not is_fresh(name, ["dalmo"], "")  # a world name inside the fresh one
    assert not is_fresh(name, ["dalmo kimura"], "")  # the fresh name inside a world name
    assert not is_fresh(name, ["달모"], "")  # the Korean form counts as much as the Latin one
    assert not is_fresh(name, [], "yesterday dalmo kim said")
    assert not is_fresh(name, [], "어제 김달모가 말했다")


def test_fresh_names_occur_in_no_document_and_no_entity(world):
    rows = fresh_passages(world, 60)
    text = "\n".join(d.text for d in world.documents).lower()
    entities = [form.lower() for e in world.entities() for form in (e.name.en, e.name.ko)]
    names = {r["name"] for r in rows}
    assert len(names) == 120  # 60 people, each a Latin and a Hangul name, all different
    assert not [n for n in names if n.lower() in text or any(n.lower() in e or e in n.lower() for e in entities)]


def test_fresh_passages_are_deterministic_and_parallel_in_both_languages(world):
    rows = fresh_passages(world, 20, seed=3)
    assert rows == fresh_passages(world, 20, seed=3) and rows != fresh_passages(world, 20, seed=4)
    assert fresh_passages(world, 5, seed=3) == rows[:10]  # the first people of a longer list are the same
    assert fresh_passages(world, 20, seed=3, langs=("ko",)) == rows[1::2]
    assert [r["lang"] for r in rows] == ["en", "ko"] * 20 and rows[7]["id"] == "fresh/00003/ko"
    for en, ko in zip(rows[::2], rows[1::2]):
        assert en["relation"] == ko["relation"] and en["context"].count(".") == ko["context"].count(".")


def test_a_passage_states_two_to_four_facts_and_the_answer(world):
    rows = fresh_passages(world, 100)
    assert {r["relation"] for r in rows} == set(FRESH_RELATIONS)
    for r in rows:
        assert 2 <= r["context"].count(".") <= 4  # one sentence per fact; no value or name holds a period
        assert r["answer"] in r["context"] and r["name"] in r["context"] and r["name"] in r["question"]
        assert r["answer"] not in r["question"]
        assert all(unicodedata.is_normalized("NFC", r[key]) for key in ("context", "question", "answer"))
    cities = {e.name.en for e in world.entities("city")} | {e.name.ko for e in world.entities("city")}
    assert all(r["answer"] in cities for r in rows if r["relation"] == "birth_place")  # the world's own values


def test_korean_particles_follow_the_name_by_hand():
    rows = fresh_passages(build_world(load_config("ci").world), 2)
    # 벤션분 ends in ㄴ: 은, 을; 선원 ends in ㄴ: 으로; 상사 ends in a vowel: 는
    assert rows[3] == {"id": "fresh/00001/ko", "lang": "ko", "name": "벤션분", "relation": "employer",
                       "context": "벤션분은 선원으로 일했다. 딜줌 상사는 벤션분을 고용했다.",
                       "question": "벤션분은 어디에서 일했나요?", "answer": "딜줌 상사"}
    # 닐딘마 ends in a vowel: 는, 를
    assert rows[1]["context"] == "닐딘마는 1959년에 태어났다. 머벨 대학교는 닐딘마를 고용했다. 닐딘마는 엘말 출신이다. 닐딘마는 농부였다."
    assert rows[0]["question"] == "What did Dinma Nil do for a living?" and rows[0]["answer"] == "farmer"
