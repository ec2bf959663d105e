"""Chapter 10's promised numbers, on the ``laptop`` profile's ``rag-eval`` (the tables the notebook shows).

``ci``'s reader is too small to read, so these read ``rag-eval`` of ``laptop`` from the repo's cache, built
otherwise: about 3 minutes on one core once ``instruct`` exists (``tests/test_instruct_laptop.py`` builds it),
``reader-small`` included.
Targets the course's 1.3M-parameter reader misses are named misses (``xfail``, not strict), with the measured
number in the reason; each has a weaker claim beside it that must hold.
"""

import pytest

from course_lib import zoo
from course_lib.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread", "repo_cache")]


@pytest.fixture(scope="module")
def results(one_thread, repo_cache):
    return zoo.get("rag-eval", load_config("laptop"))


def test_rag_answers_after_the_cutoff(results):
    post = results["cutoff"]["post"]
    assert post["closed_book"]["mean"] <= 0.05, post  # the reader cannot know the news
    assert post["gain"]["low"] > 0.15, post["gain"]  # RAG's gain, paired per question, well above 0


def test_rag_gains_40_points_after_the_cutoff(results):
    assert results["cutoff"]["post"]["gain"]["mean"] >= 0.40, results["cutoff"]["post"]


def test_rag_no_worse_before_the_cutoff(results):
    pre = results["cutoff"]["pre"]
    assert pre["rag"]["mean"] >= pre["closed_book"]["mean"], pre


def test_qasa_invents_at_most_half_as_often_and_still_answers(results):
    h, answered = results["hallucination"], results["answered"]
    assert min(h["rag"]["all"]["mean"], h["qasa"]["all"]["mean"]) <= h["closed_book"]["all"]["mean"] / 2, h
    assert answered["qasa"] >= 0.8 * answered["closed_book"], answered  # not by declining everything


def test_selection_is_worth_something(results):
    assert results["single"]["qasa_minus_no_selection"]["low"] > 0, results["single"]


def test_qasa_beats_rag_on_two_passage_questions(results):
    assert results["multi"]["qasa_minus_rag"]["low"] > 0, results["multi"]


def test_each_ablation_costs_something_on_two_passage_questions(results):
    """Without selection there is no second hop; without rationales the two passages whole do not both fit."""
    multi = results["multi"]
    assert multi["qasa_minus_no_selection"]["low"] > 0, multi
    assert multi["qasa_minus_no_rationales"]["low"] > 0, multi


def test_qasa_answers_single_passage_questions_as_well_as_rag(results):
    """QASA's gain is on two-passage questions and in declining; on one-passage questions it is no worse than RAG
    beyond noise (reading extracted statements costs some answers that the whole passage gives, see the notebook)."""
    single = results["single"]
    assert single["qasa_minus_rag"]["high"] > 0 and single["qasa_minus_no_selection"]["low"] > 0, single


def test_qasa_helps_the_small_reader_too(results):
    size = results["size"]
    assert size["parameters"]["small"] < 0.75 * size["parameters"]["instruct"], size["parameters"]
    assert size["multi"]["small_qasa"] >= size["multi"]["small_rag"], size["multi"]


@pytest.mark.xfail(strict=False, reason=(
    "named miss: the small reader (0.93M parameters) through QASA scores 0.238 on two-passage questions, instruct "
    "(1.33M) through plain RAG 0.254: -1.6 points [-15.9, +12.7] (laptop, seed 0, n=63): no difference shown. The "
    "small reader, instruct with half its layers removed and recovered in 150 steps, composes less well than "
    "instruct does through QASA (0.492)"))
def test_a_small_reader_with_qasa_beats_instruct_without(results):
    assert results["size"]["multi"]["small_qasa_minus_instruct_rag"]["low"] > 0, results["size"]["multi"]
