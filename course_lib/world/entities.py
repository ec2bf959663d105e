"""Entities and facts of the course world, and how a fact is said in English and Korean.

An entity (a person, country, city, organization, invention, written work or
event) has a name in both scripts; a fact is a triple (subject, relation, value)
where the value is another entity (so facts chain: a person born in a city that
lies in a country) or a literal (a year, a count, a date, a label). Facts of
events dated after the knowledge cutoff are marked ``after_cutoff``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from dataclasses import dataclass

from course_lib.config import WorldConfig

from .hangul import format_ko, nfc
from .names import Name, NameBook
from .templates import LABELS, RELATIONS

ENTITY_TYPES = ("country", "city", "person", "organization", "invention", "work", "event")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def rng_for(seed: int, *stream: str) -> random.Random:
    """An independent random stream per purpose, so adding draws to one leaves the others unchanged."""
    digest = hashlib.sha256(("|".join([str(seed), *stream])).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def stable_fraction(*key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (used for splits that must not drift)."""
    digest = hashlib.sha256("|".join(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Entity:
    """One thing in the world; ``kind`` is a label key refining the type (e.g. ``engine``)."""

    id: str
    type: str
    name: Name
    kind: str = ""


@dataclass(frozen=True)
class Fact:
    """A true triple. ``value`` is an entity id, a year or count (int), an ISO date or a label key."""

    id: str
    subject: str
    relation: str
    value: str | int
    date: str  # ISO date from which the fact holds, "" when timeless or before the world's records
    after_cutoff: bool
    split: str  # "train" or "test": whether task generators may use the fact for training


def year_of(date: str) -> int:
    return int(date[:4])


def english_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"


def korean_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{d.year}년 {d.month}월 {d.day}일"


def with_article(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> str:
    return (start + dt.timedelta(days=rng.randrange((end - start).days + 1))).isoformat()


class EntityGraph:
    """Entities and facts, with the look-ups task and document generators need."""

    def __init__(self, config: WorldConfig):
        self.config = config
        self.cutoff = dt.date.fromisoformat(config.cutoff)
        self.last_date = dt.date.fromisoformat(config.last_date)
        if self.last_date <= self.cutoff:
            raise ValueError(f"world.last_date ({config.last_date}) must come after world.cutoff ({config.cutoff})")
        self.entities: dict[str, Entity] = {}
        self.facts: dict[str, Fact] = {}
        self._by_subject: dict[str, list[Fact]] = {}
        self._by_value: dict[str, list[Fact]] = {}
        self._counts: dict[str, int] = {}
        self._ids: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ building

    def add_entity(self, type_: str, name: Name, kind: str = "") -> Entity:
        n = self._counts.get(type_, 0)
        self._counts[type_] = n + 1
        self._ids.clear()
        entity = Entity(f"{type_}:{n:04d}", type_, name, kind)
        self.entities[entity.id] = entity
        return entity

    def add_fact(self, subject: Entity, relation: str, value: str | int, date: str = "") -> Fact:
        fact_id = f"{subject.id}/{relation}"
        after = bool(date) and dt.date.fromisoformat(date) > self.cutoff
        held = stable_fraction(str(self.config.seed), "split", fact_id) < self.config.held_out_fact_fraction
        fact = Fact(fact_id, subject.id, relation, value, date, after, "test" if (after or held) else "train")
        self.facts[fact_id] = fact
        self._by_subject.setdefault(subject.id, []).append(fact)
        if isinstance(value, str) and value in self.entities:
            self._by_value.setdefault(value, []).append(fact)
        return fact

    # ------------------------------------------------------------------ queries

    def ids_of(self, type_: str) -> list[str]:
        """Ids of all entities of ``type_``, in creation order (cached: call once the graph is built)."""
        if type_ not in self._ids:
            self._ids[type_] = [e.id for e in self.entities.values() if e.type == type_]
        return self._ids[type_]

    def known_ids(self) -> list[str]:
        """Ids of the entities a pretraining document may talk about (all but post-cutoff events)."""
        if "known" not in self._ids:
            self._ids["known"] = [e for e in self.entities if self.entity_known(e)]
        return self._ids["known"]

    def fact(self, subject: str, relation: str) -> Fact | None:
        return self.facts.get(f"{subject}/{relation}")

    def value(self, subject: str, relation: str):
        fact = self.fact(subject, relation)
        return None if fact is None else fact.value

    def facts_about(self, entity_id: str, *, as_value: bool = True) -> list[Fact]:
        """Facts whose subject is the entity, then (if ``as_value``) facts that point to it."""
        return list(self._by_subject.get(entity_id, [])) + (list(self._by_value.get(entity_id, [])) if as_value else [])

    def entity_known(self, entity_id: str) -> bool:
        """Post-cutoff events exist only in the news; everything else is known before the cutoff."""
        facts = self._by_subject.get(entity_id, [])
        return not any(f.after_cutoff for f in facts)

    # ------------------------------------------------------------------ rendering

    def name(self, entity_id: str, lang: str) -> str:
        entity = self.entities[entity_id]
        return entity.name.en if lang == "en" else entity.name.ko

    def value_text(self, fact: Fact, lang: str) -> str:
        """The value of ``fact`` as it is written in ``lang`` (a name, 1,234,567, March 5, 2024, 엔지니어)."""
        vtype = RELATIONS[fact.relation][1]
        if vtype == "year":
            return str(fact.value)
        if vtype == "count":
            return f"{fact.value:,}"
        if vtype == "date":
            return english_date(fact.value) if lang == "en" else korean_date(fact.value)
        if vtype.startswith("label:"):
            en, ko = LABELS[vtype[6:]][fact.value]
            return en if lang == "en" else ko
        return self.name(fact.value, lang)

    def fill(self, template: str, fact: Fact, lang: str, value_text: str | None = None) -> str:
        """Fill a statement or question template with the fact's subject and value."""
        o = self.value_text(fact, lang) if value_text is None else value_text
        return fill_template(template, lang, self.name(fact.subject, lang), o)


def fill_template(template: str, lang: str, s: str, o: str) -> str:
    """A statement or question template with subject ``s`` and value ``o`` written in; Korean particles agree."""
    if lang == "en":
        text = template.format(s=s, o=o, o_a=with_article(o))
        return nfc(text[0].upper() + text[1:])
    return format_ko(template, s=s, o=o)


# ---------------------------------------------------------------------- generation


def build_graph(config: WorldConfig) -> EntityGraph:
    """Generate all entities and facts of the world from ``config.seed``.

    Each kind is drawn in turn from one random stream, so the order below is part of the
    world: places, people, organizations (and who works where), inventions, works, events.
    """
    g = EntityGraph(config)
    names = NameBook(rng_for(config.seed, "names"))
    rng = rng_for(config.seed, "entities")
    cities = _add_places(g, names, rng)
    people = _add_people(g, names, rng, cities)
    orgs = _add_organizations(g, names, rng, people, cities)
    _add_employers(g, rng, people, orgs)
    _add_inventions(g, names, rng, people)
    _add_works(g, rng, people, cities)
    _add_events(g, names, rng, cities, orgs)
    return g


def _add_places(g: EntityGraph, names: NameBook, rng: random.Random) -> list[Entity]:
    """Countries and cities (population, founding year); each country's capital is its largest city."""
    config = g.config
    countries = [g.add_entity("country", names.place()) for _ in range(config.countries)]
    cities = []
    for i in range(config.cities):
        city = g.add_entity("city", names.place())
        cities.append(city)
        # the first cities give every country one, the rest are spread at random
        country = countries[i] if i < len(countries) else rng.choice(countries)
        g.add_fact(city, "country", country.id)
        # log-uniform population between 20 thousand and 5 million, rounded to hundreds
        g.add_fact(city, "population", int(round(math.exp(rng.uniform(math.log(2e4), math.log(5e6))), -2)))
        g.add_fact(city, "city_founded", rng.randrange(700, 1900))
    for country in countries:
        own = [c for c in cities if g.value(c.id, "country") == country.id]
        g.add_fact(country, "capital", max(own, key=lambda c: g.value(c.id, "population")).id)
    return cities


def _add_people(g: EntityGraph, names: NameBook, rng: random.Random, cities: list[Entity]) -> list[Entity]:
    people = []
    for _ in range(g.config.people):
        person = g.add_entity("person", names.person())
        people.append(person)
        g.add_fact(person, "birth_year", rng.randrange(1900, 2001))
        g.add_fact(person, "birth_place", rng.choice(cities).id)
        g.add_fact(person, "occupation", rng.choice(sorted(LABELS["occupation"])))
    return people


def _add_organizations(g: EntityGraph, names: NameBook, rng: random.Random, people: list[Entity],
                       cities: list[Entity]) -> list[Entity]:
    """Organizations, each founded by a person old enough, before the cutoff."""
    orgs = []
    org_kinds = sorted(LABELS["org_kind"])
    for _ in range(g.config.organizations):
        kind = rng.choice(org_kinds)
        root = names.place()
        en, ko = LABELS["org_kind"][kind]
        org = g.add_entity("organization", Name(f"{root.en} {en}", f"{root.ko} {ko}"), kind)
        orgs.append(org)
        founder = rng.choice(people)
        born = g.value(founder.id, "birth_year")
        g.add_fact(org, "founder", founder.id)
        g.add_fact(org, "org_founded", rng.randrange(born + 22, min(born + 60, g.cutoff.year)))
        g.add_fact(org, "headquarters", rng.choice(cities).id)
        g.add_fact(org, "industry", rng.choice(sorted(LABELS["industry"])))
    return orgs


def _add_employers(g: EntityGraph, rng: random.Random, people: list[Entity], orgs: list[Entity]) -> None:
    for person in people:
        born = g.value(person.id, "birth_year")
        # an employer must exist by the time the person is 45
        options = [o for o in orgs if g.value(o.id, "org_founded") <= born + 45]
        if options:
            g.add_fact(person, "employer", rng.choice(options).id)


def _add_inventions(g: EntityGraph, names: NameBook, rng: random.Random, people: list[Entity]) -> None:
    """Inventions by employed people, dated within the inventor's working life and the employer's existence."""
    inventors = [p for p in people if g.fact(p.id, "employer")]
    invention_kinds = sorted(LABELS["invention_kind"])
    for _ in range(g.config.inventions if inventors else 0):
        kind = rng.choice(invention_kinds)
        root = names.place()
        en, ko = LABELS["invention_kind"][kind]
        invention = g.add_entity("invention", Name(f"{root.en} {en}", f"{root.ko} {ko}"), kind)
        inventor = rng.choice(inventors)
        org = g.value(inventor.id, "employer")
        start = max(g.value(inventor.id, "birth_year") + 20, g.value(org, "org_founded"))
        end = min(g.value(inventor.id, "birth_year") + 75, g.cutoff.year - 1)
        g.add_fact(invention, "inventor", inventor.id)
        g.add_fact(invention, "invented", rng.randrange(start, max(start, end) + 1))
        g.add_fact(invention, "developed_at", org)


def _add_works(g: EntityGraph, rng: random.Random, people: list[Entity], cities: list[Entity]) -> None:
    """Books with distinct titles ("The <noun> of <city>"), each by an author of writing age."""
    config, cutoff_year = g.config, g.cutoff.year
    titles: set[tuple[str, str]] = set()
    nouns = sorted(LABELS["title_noun"])
    if config.works > len(nouns) * len(cities):
        raise ValueError(f"world.works={config.works} exceeds the {len(nouns) * len(cities)} distinct titles; add cities")
    for _ in range(config.works):
        noun, place = rng.choice(nouns), rng.choice(cities)
        while (noun, place.id) in titles:
            noun, place = rng.choice(nouns), rng.choice(cities)
        titles.add((noun, place.id))
        en, ko = LABELS["title_noun"][noun]
        work = g.add_entity("work", Name(f"The {en} of {place.name.en}", f"『{place.name.ko}의 {ko}』"), noun)
        author = rng.choice(people)
        born = g.value(author.id, "birth_year")
        g.add_fact(work, "author", author.id)
        g.add_fact(work, "published", rng.randrange(born + 18, max(born + 19, min(born + 85, cutoff_year))))
        g.add_fact(work, "genre", rng.choice(sorted(LABELS["genre"])))


def _add_events(g: EntityGraph, names: NameBook, rng: random.Random, cities: list[Entity],
                orgs: list[Entity]) -> None:
    """Events, the last ``after_cutoff_fraction`` of them after the knowledge cutoff; one of a kind per city and year."""
    config = g.config
    event_keys: set[tuple[str, str, int]] = set()
    event_kinds = sorted(LABELS["event_kind"])
    n_after = round(config.events * config.after_cutoff_fraction)
    for i in range(config.events):
        after = i >= config.events - n_after
        for _ in range(1000):
            if after:
                date = _random_date(rng, g.cutoff + dt.timedelta(days=1), g.last_date)
            else:
                date = _random_date(rng, dt.date(1990, 1, 1), g.cutoff)
            kind, city = rng.choice(event_kinds), rng.choice(cities)
            key = (kind, city.id, year_of(date))  # one event of a kind per city and year
            organizers = [o for o in orgs if g.value(o.id, "org_founded") <= year_of(date)]
            if key not in event_keys and organizers:
                break
        event_keys.add(key)
        en, ko = LABELS["event_kind"][kind]
        year = year_of(date)
        # the name has its own root, not the host city's, so "where was it held?" needs knowledge
        root = names.place()
        event = g.add_entity("event", Name(f"{root.en} {en} {year}", f"{year} {root.ko} {ko}"), kind)
        # every fact of an event is dated by the event, so post-cutoff events are wholly unknown
        g.add_fact(event, "location", city.id, date)
        g.add_fact(event, "event_date", date, date)
        g.add_fact(event, "organizer", rng.choice(organizers).id, date)
