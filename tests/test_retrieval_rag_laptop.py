"""Chapter 10's promised numbers, on the ``laptop`` profile's ``rag-eval`` (the tables the notebook shows).

``ci``'s reader is too small to read, so these read ``rag-eval`` of ``laptop`` from the repo's cache, built
otherwise: about 2.5 minutes on one core once ``instruct`` exists (``tests/test_instruct_laptop.py`` builds it).
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


@pytest.mark.xfail(strict=False, reason=(
    "named miss: +33.8 points [22.5, 43.7] on laptop, seed 0 (closed-book 0.0, RAG 0.338): the relevant news passage "
    "is in the prompt for 98.6% of the questions, but instruct reads event reports poorly (its reading exercises "
    "were about people)"))
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


@pytest.mark.xfail(strict=False, reason=(
    "named miss: on two-passage questions QASA 0.0 vs RAG 0.016 exact match (n=63): the second hop finds the gold "
    "second passage for 13% of them, and given both statements instruct does not compose them"))
def test_qasa_beats_rag_on_two_passage_questions(results):
    assert results["multi"]["qasa_minus_rag"]["low"] > 0, results["multi"]


@pytest.mark.xfail(strict=False, reason=(
    "named miss: composing from rationales instead of whole passages costs 5.1 points [-10.7, +0.5] on single-passage "
    "questions: a rationale sentence is often the wrong one of a tie (the birth year for the birthplace)"))
def test_rationales_are_worth_something(results):
    assert results["single"]["qasa_minus_no_rationales"]["low"] > 0, results["single"]
