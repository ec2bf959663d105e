"""Reading exercises (독해 연습) for ``instruct``: the prompts chapter 10's reader meets, about invented names.

``base`` never learned to copy from its prompt (chapter 03). ``instruct`` learns it here, on
exercises whose answer only the prompt holds: every person, event, city and invention in
them is invented (no world name, none of the fresh names evaluations ask about), while the
values are the world's own cities, organizations, countries, years and dates. Four kinds,
in a fixed rotation (``KINDS``):

- ``person``: ``READ``, a passage of two to four facts about one person, a question about
  one of them (chapter 06's fresh-reading shape).
- ``news``: an invented event reported as the world's news reports events (title,
  dateline with the day of publication, the event's city, date and organizer, a visitor
  count), in the retrieval prompt (``retrieved_prompt``: qa_open's ``RETRIEVED_TEMPLATE``
  with ``[id] passage`` lines); a question about the city, the date or the organizer.
  The dateline's day is not the event's day, the dateline's city may not be the host:
  the reader must read the sentence the question is about.
- ``evidence``: two to four ``[id] statement`` lines about different invented people and
  events, in the retrieval prompt; the question is about one of them. This is what
  QASA's composition step shows the reader (one rationale per passage).
- ``compose``: two statements that answer the question only together (a person's
  birthplace and that city's country; an invention's inventor and where that person
  was born), sometimes with a third that does not help, and a question from
  ``world.templates.COMPOSED`` (the last phrasing held out for chapter 10).

Statements and questions use the world's templates but the held-out last one of each
list, so no exercise shows a phrasing a test keeps for itself.
"""

from __future__ import annotations

import datetime as dt
import random

from ..world.entities import english_date, fill_template, korean_date
from ..world.fresh import FRESH_RELATIONS, fresh_values, new_person, reserved_names
from ..world.hangul import format_ko
from ..world.names import NameBook
from ..world.templates import COMPOSED, LABELS, QUESTIONS, STATEMENTS
from .clusters import SYSTEM
from .templates import templates

READ = {"en": "Read the passage and answer the question.", "ko": "지문을 읽고 질문에 답하세요."}
RETRIEVED_TEMPLATE = 1  # qa_open's training template that retrieved passages are read in (chapter 10's prompt)
KINDS = ("person", "news", "person", "compose", "evidence", "person", "news", "compose", "person", "evidence")
EVENT_RELATIONS = ("location", "event_date", "organizer")
_ID_KINDS = ("web", "encyclopedia", "news", "book", "forum", "paper", "infobox")


def retrieved_prompt(lang: str, passages: list[tuple[str, str]], question: str) -> str:
    """The user's turn for passages read from a retriever: ``[id] passage`` lines, best first, then the question."""
    context = "\n".join(f"[{pid}] {' '.join(text.split())}" for pid, text in passages)
    return templates("qa_open", lang)[RETRIEVED_TEMPLATE].instruction.format(context=context, question=question)


def _say(rng: random.Random, relation: str, lang: str, s: str, o: str) -> str:
    return fill_template(rng.choice(STATEMENTS[relation][lang][:-1]), lang, s, o)


def _ask(rng: random.Random, relation: str, lang: str, s: str) -> str:
    return fill_template(rng.choice(QUESTIONS[relation][lang][:-1]), lang, s, "?")


def _pid(rng: random.Random, kind: str | None = None) -> str:
    return f"{kind or rng.choice(_ID_KINDS)}-{rng.randrange(100000):05d}"


def _date(iso: str, lang: str) -> str:
    return english_date(iso) if lang == "en" else korean_date(iso)


class _Inventor:
    """Invented people, events and inventions with the world's values, for one exercise."""

    def __init__(self, rng: random.Random, values: dict, taken: frozenset[str], lang: str):
        self.rng, self.values, self.taken, self.lang = rng, values, taken, lang
        self.book = NameBook(rng)

    def _name(self, name) -> str:
        return name.en if self.lang == "en" else name.ko

    def person(self) -> str:
        return self._name(new_person(self.book, self.taken))

    def place(self) -> str:
        name = self.book.place()
        while name.en.lower() in self.taken or name.ko in self.taken:
            name = self.book.place()
        return self._name(name)

    def labelled(self, label: str) -> str:
        """An invented name of a kind (``event_kind``, ``invention_kind``): a new root and the kind's word."""
        en, ko = LABELS[label][self.rng.choice(sorted(LABELS[label]))]
        root = self.place()
        return f"{root} {en}" if self.lang == "en" else f"{root} {ko}"

    def event(self) -> tuple[str, dict[str, str], str]:
        """An invented event: its name, its three facts as written in ``lang``, and its ISO date."""
        year = self.rng.randrange(1990, 2027)
        iso = (dt.date(year, 1, 1) + dt.timedelta(days=self.rng.randrange(365))).isoformat()
        kind = self.labelled("event_kind")
        name = f"{kind} {year}" if self.lang == "en" else f"{year} {kind}"
        facts = {"location": self.rng.choice(self.values["birth_place"]), "event_date": _date(iso, self.lang),
                 "organizer": self.rng.choice(self.values["employer"])}
        return name, facts, iso

    def statement(self) -> tuple[str, str, str, str]:
        """One fact about a new person or event: (sentence, relation, subject, value)."""
        if self.rng.random() < 0.3:
            name, facts, _ = self.event()
            relation = self.rng.choice(EVENT_RELATIONS)
            value = facts[relation]
        else:
            name, relation = self.person(), self.rng.choice(FRESH_RELATIONS)
            value = self.rng.choice(self.values[relation])
        return _say(self.rng, relation, self.lang, name, value), relation, name, value


def news_report(make: _Inventor) -> tuple[str, str, str]:
    """(passage, question, answer): an invented event in the world's news-report shape."""
    rng, lang = make.rng, make.lang
    name, facts, iso = make.event()
    published = (dt.date.fromisoformat(iso) + dt.timedelta(days=rng.randint(0, 2))).isoformat()
    dateline = facts["location"] if rng.random() < 0.7 else rng.choice(make.values["birth_place"])
    visitors = rng.randint(2, 90) * 100
    body = " ".join(_say(rng, r, lang, name, facts[r]) for r in EVENT_RELATIONS)
    if lang == "en":
        text = (f"{name} draws {visitors:,} visitors\n\n{dateline}, {_date(published, lang)} - {body}"
                f" Organizers counted about {visitors:,} visitors.")
    else:
        text = (f"{name}, 방문객 {visitors:,}명 몰려\n\n[{dateline}={_date(published, lang)}] {body}"
                f" 주최 측은 약 {visitors:,}명이 방문했다고 밝혔다.")
    asked = rng.choice(EVENT_RELATIONS)
    return text, _ask(rng, asked, lang, name), facts[asked]


def composition(make: _Inventor) -> tuple[list[str], str, str]:
    """(statements, question, answer): two facts that answer a ``COMPOSED`` question together, maybe a third."""
    rng, lang = make.rng, make.lang
    kind = rng.choice(sorted(COMPOSED))
    person = make.person()
    if kind == "birth_country":
        city, country = make.place(), rng.choice(make.values["country"])
        subject, answer = person, country
        lines = [_say(rng, "birth_place", lang, person, city), _say(rng, "country", lang, city, country)]
    else:
        invention, city = make.labelled("invention_kind"), rng.choice(make.values["birth_place"])
        subject, answer = invention, city
        lines = [_say(rng, "inventor", lang, invention, person), _say(rng, "birth_place", lang, person, city)]
    if rng.random() < 0.5:  # a true statement that does not help: the person's birth year or job
        relation = rng.choice(("birth_year", "occupation", "employer"))
        lines.insert(rng.randrange(len(lines) + 1), _say(rng, relation, lang, person,
                                                          rng.choice(make.values[relation])))
    phrasing = rng.choice(COMPOSED[kind][lang][:-1])
    question = phrasing.format(s=subject) if lang == "en" else format_ko(phrasing, s=subject)
    return lines, question[0].upper() + question[1:], answer


def reading_conversations(world, n: int, *, seed: int = 0, langs=("en", "ko")) -> list[dict]:
    """``n`` reading exercises as chat rows (``id``, ``lang``, ``kind``, ``messages``, ``answer``).

    Exercise ``i`` is in ``langs[i % len(langs)]`` and of kind ``KINDS[i // len(langs) % len(KINDS)]``.
    Deterministic in (``world``, ``n``, ``seed``); the first ``m`` of a larger ``n`` are the same.
    """
    values = {lang: fresh_values(world, lang) | {"country": [world.graph.name(e.id, lang)
                                                           for e in world.entities("country")]}
              for lang in langs}
    taken = reserved_names(world, seed)
    rows = []
    for i in range(n):
        rng = random.Random(f"{seed}|instruct-reading|{i}")
        lang, kind = langs[i % len(langs)], KINDS[i // len(langs) % len(KINDS)]  # every kind in every language
        make = _Inventor(rng, values[lang], taken, lang)
        if kind == "person":
            name = make.person()
            told = rng.sample(FRESH_RELATIONS, rng.randint(2, 4))
            value = {r: rng.choice(values[lang][r]) for r in told}
            passage = " ".join(_say(rng, r, lang, name, value[r]) for r in told)
            asked = rng.choice(told)
            answer = value[asked]
            user = f"{READ[lang]}\n{passage}\n{_ask(rng, asked, lang, name)}"
        elif kind == "news":
            passage, question, answer = news_report(make)
            user = retrieved_prompt(lang, [(_pid(rng, "news"), passage)], question)
        elif kind == "evidence":
            said = [make.statement() for _ in range(rng.randint(2, 4))]
            sentence, relation, subject, answer = rng.choice(said)
            user = retrieved_prompt(lang, [(_pid(rng), s[0]) for s in said], _ask(rng, relation, lang, subject))
        else:
            lines, question, answer = composition(make)
            user = retrieved_prompt(lang, [(_pid(rng), line) for line in lines], question)
        messages = [{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": user},
                    {"role": "assistant", "content": answer}]
        rows.append({"id": f"reading/{i:05d}/{lang}", "lang": lang, "kind": kind, "messages": messages,
                     "answer": answer})
    return rows
