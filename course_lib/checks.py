"""Checks at the door of the course's public functions (curation, evaluation, every later chapter): a wrong type or
shape is a named error.

A Python string is a sequence of characters, so ``run("some text")`` would read
four documents ``h``, ``e``, ``l``, ``o`` and ``exact_duplicates("abc")`` three;
these checks refuse a string (or bytes, or a dict) where a list is meant. Every
message names the argument, the item (``texts[3]``) and what was expected. Wrong
types raise ``TypeError``, wrong values ``ValueError``. (A malformed *record* in
the curation pipeline is not an error: ``Validate`` gives it a reason in the audit.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def type_name(value) -> str:
    """``str``, ``int``, ``NoneType``, ...: the name a message shows for ``value``'s type."""
    return type(value).__name__


def _preview(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def text(name: str, value) -> str:
    """``value`` if it is a ``str``, else a ``TypeError`` naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type_name(value)} {_preview(value)}")
    return value


def sequence(name: str, value, what: str = "items") -> list:
    """``value`` as a list, if it is a list-like collection (not a string, bytes, dict or a single value).

    ``what`` names the expected items in the message (``"texts"``, ``"records"``, ...).
    """
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        hint = "; wrap a single one in a list" if isinstance(value, (str, bytes, Mapping)) else ""
        raise TypeError(f"{name}: expected a list of {what}, got {type_name(value)} {_preview(value)}{hint}")
    return list(value)


def texts(name: str, value) -> list[str]:
    """``value`` as a list of ``str``; a string itself, or an item that is not one, is a ``TypeError``
    naming the item's index."""
    items = sequence(name, value, "texts")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}]: expected a str, got {type_name(item)} {_preview(item)}")
    return items


def names(name: str, value, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` as a tuple of names from ``allowed``: a single string is a ``TypeError`` (a tuple of
    characters is never meant), an unknown name a ``ValueError`` that lists the allowed ones."""
    items = tuple(sequence(name, value, "names"))
    for item in items:
        if item not in allowed:
            raise ValueError(f"{name}: unknown {item!r}; expected some of {', '.join(allowed)}")
    return items
