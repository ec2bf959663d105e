"""Passages about invented people that the world has never heard of: reading, not remembering.

A fresh passage states two to four facts about a person whose name occurs in no
document and collides with no entity of the world, then asks about one of them.
The values are the world's own (its cities, organizations, occupations and birth
years), so the words are familiar, but the answer is in the passage alone: a model
can only answer by copying it from there. Chapter 03 measures in-context learning on
them, chapter 06 reading from a passage.

Sentences use the world's statement and question templates (``templates.py``), all
but the held-out last one of each list, so a passage reads like the world's documents
and never shows a phrasing that the tasks keep for ``test_template``.
"""

from __future__ import annotations

from .entities import fill_template, rng_for
from .names import Name, NameBook
from .templates import LABELS, QUESTIONS, STATEMENTS
from .world import World

FRESH_RELATIONS = ("birth_place", "occupation", "birth_year", "employer")  # what a passage may say about a person


def is_fresh(name: Name, world_names: list[str], text: str) -> bool:
    """Whether neither form of ``name`` overlaps a world name (one inside the other) or occurs in ``text``.

    ``world_names`` and ``text`` are lower-cased; the check is on substrings, so a fresh
    "Dalmo Kim" is refused when the world has a "Dalmo" or "Dalmo Kimura".
    """
    for form in (name.en.lower(), name.ko):
        if form in text or any(form in w or w in form for w in world_names):
            return False
    return True


def fresh_names(world: World, n: int, seed: int = 0) -> list[Name]:
    """``n`` person names (both scripts) that no entity and no document of ``world`` contains."""
    world_names = [form.lower() for e in world.entities() for form in (e.name.en, e.name.ko)]
    text = "\n".join(d.text for d in world.documents).lower()
    book = NameBook(rng_for(seed, "fresh", "names"))
    out = []
    for _ in range(100 * n):
        if len(out) == n:
            return out
        name = book.person()
        if is_fresh(name, world_names, text):
            out.append(name)
    raise RuntimeError(f"found only {len(out)} of {n} fresh names in {100 * n} tries")


RESERVED_FRESH = 2000  # fresh names that evaluations may ask about: no training exercise uses them


def reserved_names(world: World, seed: int = 0, n: int = RESERVED_FRESH) -> frozenset[str]:
    """Names an invented person must not take: every entity's, and the first ``n`` fresh names'.

    Both forms of each: the Latin one lower-cased, the Hangul one as written.
    """
    names = [name for e in world.entities() for name in (e.name.en.lower(), e.name.ko)]
    return frozenset(names + [form for name in fresh_names(world, n, seed) for form in (name.en.lower(), name.ko)])


def new_person(book: NameBook, taken: frozenset[str]) -> Name:
    """The next person ``book`` hands out whose names are not in ``taken`` (see ``reserved_names``)."""
    name = book.person()
    while name.en.lower() in taken or name.ko in taken:
        name = book.person()
    return name


def fresh_values(world: World, lang: str) -> dict[str, list[str]]:
    """The values a fresh fact may take, per relation, as written in ``lang``.

    Lists are in the same order in every language (entities in creation order, labels
    by key), so one index picks the same value in English and Korean.
    """
    names = lambda type_: [world.graph.name(e.id, lang) for e in world.entities(type_)]
    years = sorted({str(f.value) for f in world.facts(relation="birth_year")})
    occupations = [pair[lang == "ko"] for _, pair in sorted(LABELS["occupation"].items())]
    return {"birth_place": names("city"), "employer": names("organization"), "birth_year": years,
            "occupation": occupations}


def fresh_passages(world: World, n: int, *, langs: tuple[str, ...] = ("en", "ko"), seed: int = 0,
                   min_facts: int = 2, max_facts: int = 4) -> list[dict]:
    """``n`` invented people, each a short passage and one question about it, in every language of ``langs``.

    Person ``i`` is the same in every language (same name, facts and question), so the
    rows come in parallel groups. Each row: ``id`` (``fresh/00007/ko``), ``lang``,
    ``name`` (the person, as written in ``lang``), ``relation`` (the one asked about, from
    ``FRESH_RELATIONS``), ``context`` (the passage: ``min_facts`` to ``max_facts``
    sentences, one fact each, in random order), ``question`` and ``answer`` (the value
    as the passage writes it). Deterministic in (``world``, ``n``, ``seed``); the first
    ``m`` people of a larger ``n`` are the same ``m`` people.
    """
    names = fresh_names(world, n, seed)
    values = {lang: fresh_values(world, lang) for lang in langs}
    rng = rng_for(seed, "fresh", "facts")
    rows = []
    for i, name in enumerate(names):
        relations = rng.sample(FRESH_RELATIONS, rng.randint(min_facts, max_facts))
        picks = {r: rng.randrange(len(values[langs[0]][r])) for r in relations}
        statement = {r: rng.randrange(len(STATEMENTS[r]["en"]) - 1) for r in relations}  # the last is held out
        asked = rng.choice(relations)
        question = rng.randrange(len(QUESTIONS[asked]["en"]) - 1)
        for lang in langs:
            s = name.en if lang == "en" else name.ko
            value = {r: values[lang][r][picks[r]] for r in relations}
            context = " ".join(fill_template(STATEMENTS[r][lang][statement[r]], lang, s, value[r]) for r in relations)
            ask = fill_template(QUESTIONS[asked][lang][question], lang, s, value[asked])
            rows.append({"id": f"fresh/{i:05d}/{lang}", "lang": lang, "name": s, "relation": asked,
                         "context": context, "question": ask, "answer": value[asked]})
    return rows
