"""Checks for autograder cells: each says what was expected and what came back.

A check raises ``AssertionError`` whose message names the checked value, the
expected and the received value and, for numbers, the biggest difference; on
success it prints ``✓ <name>``. Numbers, nested sequences, NumPy arrays and
torch tensors are all accepted, so a learner may return whichever is natural::

    >>> check_close([0.1, 0.2, 0.7], [0.1, 0.2, 0.7], name="probs")
    ✓ probs
    >>> check_close(0.5, 0.25, name="lr")
    Traceback (most recent call last):
    ...
    AssertionError: lr: expected 0.25, got 0.5 (difference 0.25, allowed 2.51e-06)
"""

from __future__ import annotations

from typing import Any

import numpy as np

_MISSING = object()
_REPR_LIMIT = 200  # characters of a value shown in a message


def check_close(got: Any, expected: Any, *, name: str = "value", rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Check that ``got`` equals ``expected`` elementwise within ``atol + rtol * |expected|``.

    Both may be numbers, nested sequences, NumPy arrays or torch tensors; they
    are compared as float64 arrays of the same shape. NaN matches only NaN.
    """
    g = _as_float_array(got, name)
    e = np.asarray(_to_numpy(expected), dtype=np.float64)
    if g.shape != e.shape:
        raise AssertionError(_shape_message(name, e.shape, g.shape))
    close = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        _passed(name)
        return
    diff = np.abs(g - e)
    # A NaN where a number was expected is the worst possible difference.
    diff = np.where(np.isnan(diff) & ~close, np.inf, diff)
    if g.ndim == 0:
        allowed = atol + rtol * abs(float(e))
        raise AssertionError(
            f"{name}: expected {_num(e)}, got {_num(g)} (difference {_num(diff)}, allowed {_num(allowed)})"
        )
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    raise AssertionError(
        f"{name}: {int((~close).sum())} of {close.size} values differ (rtol={rtol:g}, atol={atol:g}); "
        f"biggest difference {_num(diff[worst])} at index {_index(worst)}: "
        f"expected {_num(e[worst])}, got {_num(g[worst])}\n"
        f"  expected: {_array(e, '  expected: ')}\n"
        f"  got:      {_array(g, '  got:      ')}"
    )


def check_equal(got: Any, expected: Any, *, name: str = "value") -> None:
    """Check that ``got == expected`` exactly.

    Arrays and tensors are compared elementwise (shape first); lists, tuples and
    dicts report their first difference.
    """
    if _is_array(got) or _is_array(expected):
        _check_array_equal(got, expected, name)
    elif not _equal(got, expected):
        raise AssertionError(f"{name}: expected {_short(expected)}, got {_short(got)}{_first_difference(got, expected)}")
    _passed(name)


def check_shape(got: Any, expected_shape: tuple[int, ...], *, name: str = "value") -> None:
    """Check that the array, tensor or nested sequence ``got`` has shape ``expected_shape``."""
    if got is None:
        raise AssertionError(_none_message(name))
    try:
        shape = tuple(got.shape) if hasattr(got, "shape") else np.shape(got)
    except ValueError:
        raise AssertionError(f"{name}: expected shape {tuple(expected_shape)}, got a ragged sequence") from None
    if tuple(shape) != tuple(expected_shape):
        raise AssertionError(_shape_message(name, tuple(expected_shape), tuple(shape)))
    _passed(name)


def check_true(cond: Any, msg: str, *, got: Any = _MISSING) -> None:
    """Check that ``cond`` holds; ``msg`` states the expectation, ``got`` what was observed.

    >>> check_true(0.9 > 0.5, "low temperature puts most mass on the argmax")
    ✓ low temperature puts most mass on the argmax
    """
    if not bool(cond):
        raise AssertionError(msg if got is _MISSING else f"{msg}; got {_short(got)}")
    _passed(msg)


# --------------------------------------------------------------------------- helpers


def _passed(name: str) -> None:
    print(f"✓ {name}")


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or _is_tensor(x)


def _is_tensor(x: Any) -> bool:
    # Duck-typed so that importing this module never imports torch (seconds on a laptop).
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _to_numpy(x: Any) -> Any:
    if _is_tensor(x):
        return x.detach().cpu().numpy()
    return x


def _none_message(name: str) -> str:
    return f"{name}: got None; does the function `return` its result?"


def _as_float_array(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise AssertionError(_none_message(name))
    try:
        return np.asarray(_to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name}: expected numbers, got {type(x).__name__} {_short(x)}") from None


def _shape_message(name: str, expected: tuple, got: tuple) -> str:
    message = f"{name}: expected shape {_shape(expected)}, got shape {_shape(got)}"
    if expected and got and int(np.prod(expected)) == int(np.prod(got)):
        message += " (same number of elements: transposed or reshaped?)"
    return message


def _shape(shape: tuple) -> str:
    return f"{tuple(shape)} (a scalar)" if len(shape) == 0 else str(tuple(shape))


def _check_array_equal(got: Any, expected: Any, name: str) -> None:
    if got is None:
        raise AssertionError(_none_message(name))
    g, e = np.asarray(_to_numpy(got)), np.asarray(_to_numpy(expected))
    if g.shape != e.shape:
        raise AssertionError(_shape_message(name, e.shape, g.shape))
    equal = g == e
    if not equal.all():
        first = np.unravel_index(int(np.argmin(equal)), equal.shape)
        raise AssertionError(
            f"{name}: {int((~equal).sum())} of {equal.size} values differ; first at index {_index(first)}: "
            f"expected {e[first].item()!r}, got {g[first].item()!r}\n"
            f"  expected: {_array(e, '  expected: ')}\n"
            f"  got:      {_array(g, '  got:      ')}"
        )


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _first_difference(got: Any, expected: Any) -> str:
    """Where two unequal lists, tuples or dicts first differ, as a message suffix."""
    if isinstance(got, (list, tuple)) and isinstance(expected, (list, tuple)):
        for i, (g, e) in enumerate(zip(got, expected)):
            if not _equal(g, e):
                return f"; first difference at index {i}: expected {_short(e)}, got {_short(g)}"
        return f"; expected length {len(expected)}, got length {len(got)}"
    if isinstance(got, dict) and isinstance(expected, dict):
        missing = [k for k in expected if k not in got]
        if missing:
            return f"; missing keys {_short(missing)}"
        extra = [k for k in got if k not in expected]
        if extra:
            return f"; unexpected keys {_short(extra)}"
        key = next((k for k in expected if not _equal(got[k], expected[k])), None)
        if key is None:
            return ""
        return f"; first difference at key {key!r}: expected {_short(expected[key])}, got {_short(got[key])}"
    return ""


def _num(x: Any) -> str:
    return f"{float(x):.6g}"


def _index(index: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _array(a: np.ndarray, prefix: str) -> str:
    return np.array2string(a, precision=6, threshold=20, edgeitems=3, separator=", ", prefix=prefix)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
