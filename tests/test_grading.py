"""The autograder checks: they pass on right answers and explain wrong ones exactly."""

import re

import numpy as np
import pytest
import torch

from course_lib.grading import check_close, check_equal, check_shape, check_true


def fails_with(message: str):
    """pytest.raises for an AssertionError whose message is exactly ``message``."""
    return pytest.raises(AssertionError, match="^" + re.escape(message) + "$")


# --------------------------------------------------------------------------- check_close


@pytest.mark.parametrize(
    "got, expected",
    [
        (0.1 + 0.2, 0.3),
        ([0.1, 0.2, 0.7], np.array([0.1, 0.2, 0.7])),
        (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), [[1, 2], [3, 4]]),
        (np.float32(1 / 3), 1 / 3),
        (torch.tensor(2.0, requires_grad=True) * 1, 2),
        ([float("nan"), 1.0], [float("nan"), 1.0]),
    ],
)
def test_check_close_passes_and_prints_tick(got, expected, capsys):
    check_close(got, expected, name="value")
    assert capsys.readouterr().out == "✓ value\n"


def test_check_close_scalar_message():
    with fails_with("lr: expected 0.25, got 0.5 (difference 0.25, allowed 2.51e-06)"):
        check_close(0.5, 0.25, name="lr")


def test_check_close_array_message_names_biggest_difference():
    message = (
        "probs: 2 of 3 values differ (rtol=1e-05, atol=1e-08); biggest difference 0.05 at index [1]: "
        "expected 0.25, got 0.2\n"
        "  expected: [0.1 , 0.25, 0.65]\n"
        "  got:      [0.1, 0.2, 0.7]"
    )
    with fails_with(message):
        check_close(torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64), [0.1, 0.25, 0.65], name="probs")


def test_check_close_nan_is_the_biggest_difference():
    message = (
        "m: 1 of 4 values differ (rtol=1e-05, atol=1e-08); biggest difference inf at index [1, 1]: "
        "expected 4, got nan\n"
        "  expected: [[1., 2.],\n"
        "             [3., 4.]]\n"
        "  got:      [[ 1.,  2.],\n"
        "             [ 3., nan]]"
    )
    with fails_with(message):
        check_close(torch.tensor([[1.0, 2.0], [3.0, float("nan")]]), [[1, 2], [3, 4]], name="m")


def test_check_close_tolerances_are_used():
    check_close(1.05, 1.0, name="x", atol=0.1)
    check_close(110.0, 100.0, name="x", rtol=0.1, atol=0)
    with fails_with("x: expected 100, got 111 (difference 11, allowed 10)"):
        check_close(111.0, 100.0, name="x", rtol=0.1, atol=0)


def test_check_close_explains_shape_mismatch():
    with fails_with("x: expected shape (3, 2), got shape (2, 3) (same number of elements: transposed or reshaped?)"):
        check_close(torch.ones(2, 3), np.ones((3, 2)), name="x")
    with fails_with("x: expected shape (4,), got shape (3,)"):
        check_close([1, 2, 3], [1, 2, 3, 4], name="x")
    with fails_with("x: expected shape () (a scalar), got shape (1,)"):
        check_close([1.0], 1.0, name="x")


def test_check_close_explains_none_and_non_numbers():
    with fails_with("f(1): got None; does the function `return` its result?"):
        check_close(None, 1.0, name="f(1)")
    with fails_with("f(1): expected numbers, got str 'abc'"):
        check_close("abc", 1.0, name="f(1)")
    with fails_with("rows: expected numbers, got list [[1, 2], [3]]"):
        check_close([[1, 2], [3]], [[1, 2], [3, 4]], name="rows")


# --------------------------------------------------------------------------- check_equal


def test_check_equal_passes(capsys):
    check_equal([1, 2, 3], [1, 2, 3], name="ids")
    check_equal(torch.tensor([1, 2]), np.array([1, 2]), name="tensor")
    check_equal({"a": 1}, {"a": 1}, name="dict")
    assert capsys.readouterr().out == "✓ ids\n✓ tensor\n✓ dict\n"


def test_check_equal_messages():
    with fails_with("ids: expected [1, 2, 4], got [1, 2, 3]; first difference at index 2: expected 4, got 3"):
        check_equal([1, 2, 3], [1, 2, 4], name="ids")
    with fails_with("ids: expected [1, 2], got [1, 2, 3]; expected length 2, got length 3"):
        check_equal([1, 2, 3], [1, 2], name="ids")
    with fails_with("d: expected {'a': 2}, got {'a': 1}; first difference at key 'a': expected 2, got 1"):
        check_equal({"a": 1}, {"a": 2}, name="d")
    with fails_with("d: expected {'a': 1, 'b': 2}, got {'a': 1}; missing keys ['b']"):
        check_equal({"a": 1}, {"a": 1, "b": 2}, name="d")
    with fails_with("d: expected {'a': 1}, got {'a': 1, 'c': 3}; unexpected keys ['c']"):
        check_equal({"a": 1, "c": 3}, {"a": 1}, name="d")
    with fails_with("answer: expected '19', got '91'"):
        check_equal("91", "19", name="answer")


def test_check_equal_arrays_report_first_difference():
    message = (
        "ids: 2 of 3 values differ; first at index [1]: expected 5, got 2\n"
        "  expected: [1, 5, 6]\n"
        "  got:      [1, 2, 3]"
    )
    with fails_with(message):
        check_equal(torch.tensor([1, 2, 3]), [1, 5, 6], name="ids")
    with fails_with("ids: expected shape (3,), got shape (2,)"):
        check_equal(torch.tensor([1, 2]), [1, 5, 6], name="ids")
    with fails_with("ids: got None; does the function `return` its result?"):
        check_equal(None, np.array([1]), name="ids")


# --------------------------------------------------------------------------- check_shape, check_true


def test_check_shape(capsys):
    check_shape(torch.zeros(2, 3), (2, 3), name="logits")
    check_shape([[1, 2, 3], [4, 5, 6]], (2, 3), name="nested")
    assert capsys.readouterr().out == "✓ logits\n✓ nested\n"
    with fails_with("logits: expected shape (2, 4), got shape (2, 3)"):
        check_shape(torch.zeros(2, 3), (2, 4), name="logits")
    with fails_with("logits: expected shape (3, 2), got shape (2, 3) (same number of elements: transposed or reshaped?)"):
        check_shape(np.zeros((2, 3)), (3, 2), name="logits")
    with fails_with("rows: expected shape (2, 2), got a ragged sequence"):
        check_shape([[1, 2], [3]], (2, 2), name="rows")
    with fails_with("logits: got None; does the function `return` its result?"):
        check_shape(None, (2,), name="logits")


def test_check_true(capsys):
    check_true(torch.tensor(True), "sums to 1")
    assert capsys.readouterr().out == "✓ sums to 1\n"
    with fails_with("sums to 1"):
        check_true(False, "sums to 1")
    with fails_with("sums to 1; got 0.9"):
        check_true(np.isclose(0.9, 1), "sums to 1", got=0.9)
