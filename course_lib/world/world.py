"""The World: entities, facts, documents and tasks from one seed, and the facts API.

``build_world(config)`` is deterministic: the same ``WorldConfig`` gives a
byte-identical world (every random draw comes from a stream named by its
purpose, see ``entities.rng_for``; no set or hash order is ever iterated).
"""

from __future__ import annotations

import dataclasses
import json
import random
from functools import lru_cache

from course_lib.config import WorldConfig

from . import documents as D
from . import noise as N
from .entities import ENTITY_TYPES, Entity, EntityGraph, Fact, build_graph, rng_for
from .task_pages import task_pages
from .tasks import build_tasks, false_value, value_text
from .templates import RELATIONS, STATEMENTS


class World:
    """A generated world. Attributes: ``config``, ``graph`` (entities and facts), ``documents``, ``tasks``."""

    def __init__(self, config: WorldConfig, graph: EntityGraph, documents: list[D.Document], tasks: list[dict]):
        self.config = config
        self.graph = graph
        self.documents = documents
        self.tasks = tasks
        self._support: dict[str, list[D.Document]] = {}
        for doc in documents:
            for fact_id in doc.fact_ids:
                self._support.setdefault(fact_id, []).append(doc)

    # ------------------------------------------------------------------ facts API

    @property
    def cutoff(self) -> str:
        return self.config.cutoff

    def entity(self, entity_id: str) -> Entity:
        return self.graph.entities[entity_id]

    def entities(self, type: str | None = None) -> list[Entity]:
        """All entities, or those of one type (``person``, ``city``, ...)."""
        if type is not None and type not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type {type!r}; types: {', '.join(ENTITY_TYPES)}")
        return [e for e in self.graph.entities.values() if type is None or e.type == type]

    def find(self, name: str) -> Entity:
        """The entity whose English or Korean name is ``name``."""
        for e in self.graph.entities.values():
            if name in (e.name.en, e.name.ko):
                return e
        raise KeyError(f"no entity is named {name!r}")

    def facts(self, subject: str | None = None, relation: str | None = None, value=None,
              after_cutoff: bool | None = None, split: str | None = None) -> list[Fact]:
        """Facts matching every given filter (entity ids for ``subject``/``value``)."""
        return [f for f in self.graph.facts.values()
                if (subject is None or f.subject == subject) and (relation is None or f.relation == relation)
                and (value is None or f.value == value) and (after_cutoff is None or f.after_cutoff == after_cutoff)
                and (split is None or f.split == split)]

    def fact(self, fact_id: str) -> Fact:
        return self.graph.facts[fact_id]

    def statement(self, fact: Fact | str, lang: str = "en", template: int = 0) -> str:
        """The fact as a sentence in ``lang`` using statement template number ``template``."""
        fact = self.fact(fact) if isinstance(fact, str) else fact
        return self.graph.fill(STATEMENTS[fact.relation][lang][template], fact, lang)

    def false_statement(self, fact: Fact | str, lang: str = "en", template: int = 0, seed: int = 0) -> str:
        """The fact with its value replaced by a plausible wrong one (same type), as a sentence."""
        fact = self.fact(fact) if isinstance(fact, str) else fact
        wrong = false_value(self.graph, fact, random.Random(f"{seed}|{fact.id}"))
        return self.graph.fill(STATEMENTS[fact.relation][lang][template], fact, lang,
                               value_text(self.graph, fact, wrong, lang))

    def sample_statements(self, n: int, lang: str = "en", true_fraction: float = 0.5, seed: int = 0,
                          after_cutoff: bool | None = False) -> list[dict]:
        """``n`` statements, each ``{"text", "label", "fact_id"}``; label is True for a true statement."""
        rng = random.Random(f"{seed}|statements|{lang}")
        pool = self.facts(after_cutoff=after_cutoff)
        out = []
        for _ in range(n):
            fact = rng.choice(pool)
            template = rng.randrange(len(STATEMENTS[fact.relation][lang]))
            true = rng.random() < true_fraction
            text = (self.statement(fact, lang, template) if true
                    else self.false_statement(fact, lang, template, seed=rng.randrange(2**31)))
            out.append({"text": text, "label": true, "fact_id": fact.id})
        return out

    def supporting_documents(self, fact: Fact | str, pretraining_only: bool = False) -> list[D.Document]:
        """The documents that state ``fact`` (all kinds, or only those used for pretraining)."""
        fact_id = fact if isinstance(fact, str) else fact.id
        return [d for d in self._support.get(fact_id, []) if d.in_pretraining or not pretraining_only]

    # ------------------------------------------------------------------ records

    def records(self, table: str) -> list[dict]:
        """Rows of ``documents``, ``tasks``, ``facts`` or ``entities`` as plain dicts (JSON-ready)."""
        if table == "documents":
            return [d.to_record() for d in self.documents]
        if table == "tasks":
            return [dict(t) for t in self.tasks]
        if table == "facts":
            return [{"id": f.id, "subject": f.subject, "relation": f.relation, "value": str(f.value),
                     "value_type": RELATIONS[f.relation][1], "value_en": self.graph.value_text(f, "en"),
                     "value_ko": self.graph.value_text(f, "ko"), "date": f.date, "after_cutoff": f.after_cutoff,
                     "split": f.split} for f in self.graph.facts.values()]
        if table == "entities":
            return [{"id": e.id, "type": e.type, "kind": e.kind, "name_en": e.name.en, "name_ko": e.name.ko}
                    for e in self.graph.entities.values()]
        raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")

    def to_jsonl(self, table: str) -> str:
        """One table as JSON Lines: the exact bytes the snapshot stores (UTF-8, no ASCII escaping)."""
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records(table))


TABLES = ("documents", "tasks", "facts", "entities")


# ---------------------------------------------------------------------- documents


def _lang(rng: random.Random, config: WorldConfig) -> str:
    return "ko" if rng.random() < config.ko_fraction else "en"


def _web_documents(g: EntityGraph, config: WorldConfig) -> list[D.Document]:
    """Web pages with labelled noise, then their exact, near and URL-variant copies, shuffled."""
    rng = rng_for(config.seed, "docs", "web")
    sites = D.make_sites(config.seed)
    people = [g.entities[i] for i in g.ids_of("person")]
    pages = [_noisy_web_page(g, config, rng, sites, people, f"web-{i:05d}") for i in range(config.web_docs)]
    out = [doc for doc, _ in pages]
    for doc, pieces in pages:
        copies = _web_copies(g, config, rng, sites, doc, pieces, first_number=len(out))
        if copies:
            doc.dup_cluster = f"dup-{doc.id}"
            for c in copies:
                c.dup_cluster = doc.dup_cluster
            out += copies
    rng.shuffle(out)
    return out


def _noisy_web_page(g: EntityGraph, config: WorldConfig, rng, sites, people, doc_id: str):
    """One web page about a random entity with the noise its rates draw: (document, its labelled pieces)."""
    lang = _lang(rng, config)
    site = rng.choice([s for s in sites if s[1] == lang])
    entity = D.pick_entity(g, rng)
    doc, body = D.web_page(g, entity, site, rng, doc_id)
    keyword = g.name(entity, lang)
    tb, flags = D.TextBuilder(), []
    if rng.random() < config.boilerplate_rate:
        N.boilerplate_head(tb, lang)
        flags.append("boilerplate")
    tb.pieces += body.pieces
    extras = [
        ("keyword_spam", config.spam_rate, lambda: N.keyword_spam(tb, lang, keyword, rng)),
        ("repeated_lines", config.repeated_lines_rate, lambda: N.repeated_lines(tb, lang, rng)),
        ("repeated_ngrams", config.repeated_ngrams_rate, lambda: N.repeated_ngrams(tb, lang, keyword, rng)),
        ("lorem_ipsum", config.lorem_rate, lambda: N.lorem(tb)),
        ("gibberish", config.gibberish_rate, lambda: N.gibberish(tb, lang, rng)),
        ("code_in_prose", config.code_in_prose_rate, lambda: N.code_in_prose(tb, rng)),
    ]
    for flag, rate, inject in extras:
        if rng.random() < rate:
            inject()
            flags.append(flag)
    if rng.random() < config.pii_rate:
        person = rng.choice(people).name.en
        for kind in rng.sample(N.PII_TYPES, rng.randint(1, 3)):
            value = N.add_pii(tb, kind, lang, rng, person, g.cutoff)
            if kind == "rrn_post2020":  # a page cannot predate the birth it mentions
                doc.date = max(doc.date, N.rrn_birth_date(value).isoformat())
    if rng.random() < config.lookalike_rate:
        N.add_lookalike(tb, lang, rng)
    if "boilerplate" in flags:
        N.boilerplate_foot(tb, lang, site[0], doc.date[:4])
    doc.text, doc.pii = tb.build()
    doc.quality_flags = flags
    return doc, tb.pieces


def _web_copies(g: EntityGraph, config: WorldConfig, rng, sites, doc: D.Document, pieces,
                first_number: int) -> list[D.Document]:
    """The copies the rates draw for ``doc``: exact, near (edited) and URL variants, numbered from ``first_number``."""
    copies = []

    def next_id() -> str:
        return f"web-{first_number + len(copies):05d}"

    if rng.random() < config.exact_dup_rate:
        site = rng.choice([s for s in sites if s[1] == doc.lang and s[0] not in doc.url])
        copies.append(N.copy_document(doc, next_id(), url=f"https://{site[0]}/copy/{doc.id[-5:]}",
                                      quality_flags=doc.quality_flags + ["exact_duplicate"], page_id=""))
    if rng.random() < config.near_dup_rate and config.near_dup_edit_rates:
        rate = rng.choice(config.near_dup_edit_rates)
        text, spans = _assemble(N.near_duplicate_pieces(pieces, rate, rng))
        site = rng.choice([s for s in sites if s[1] == doc.lang and s[0] not in doc.url])
        # an edit may have hit a fact's words: keep only the facts the copy still states
        still = [f for f in doc.fact_ids if g.name(g.facts[f].subject, doc.lang) in text
                 and g.value_text(g.facts[f], doc.lang) in text]
        copies.append(N.copy_document(doc, next_id(), url=f"https://{site[0]}/re/{doc.id[-5:]}", text=text,
                                      pii=spans, fact_ids=still, quality_flags=doc.quality_flags + ["near_duplicate"],
                                      page_id="", edit_rate=rate))
    if rng.random() < config.url_variant_rate:
        for _ in range(rng.randint(1, 2)):
            copies.append(N.copy_document(doc, next_id(), url=N.url_variant(doc.url, rng),
                                          quality_flags=doc.quality_flags + ["url_variant"], page_id=doc.id))
    return copies


def _assemble(pieces: list[tuple[str, str]]) -> tuple[str, list[dict]]:
    tb = D.TextBuilder()
    tb.pieces = list(pieces)
    return tb.build()


def _documents(g: EntityGraph, config: WorldConfig) -> list[D.Document]:
    """All documents, kind by kind; each kind draws from its own random stream. The task pages come last,
    sized by the characters of the others."""
    docs: list[D.Document] = []
    rng = rng_for(config.seed, "docs", "encyclopedia")
    n = 0
    for e in g.entities.values():
        if g.entity_known(e.id):
            for lang in ["en"] + (["ko"] if rng.random() < config.ko_fraction else []):
                docs.append(D.encyclopedia(g, e.id, lang, rng, f"encyclopedia-{n:05d}"))
                n += 1
    docs += _web_documents(g, config)

    rng = rng_for(config.seed, "docs", "forum")
    known = [f for f in g.facts.values() if g.entity_known(f.subject)]  # a forum asks about the past
    for i in range(config.forum_docs):
        docs.append(D.forum_thread(g, rng.choice(known), _lang(rng, config), rng, f"forum-{i:05d}"))

    rng = rng_for(config.seed, "docs", "code")
    # one module per (subject, language): a country's cities or an organization's inventions
    subjects = g.ids_of("country") + [o for o in g.ids_of("organization")
                                      if any(f.relation == "developed_at" for f in g.facts_about(o))]
    pairs = [(s, lang) for s in subjects for lang in ("en", "ko")]
    for i, (subject, lang) in enumerate(rng.sample(pairs, min(config.code_docs, len(pairs)))):
        docs.append(D.code_file(g, subject, lang, rng, f"code-{i:05d}"))

    rng = rng_for(config.seed, "docs", "book")
    works, people = g.ids_of("work"), g.ids_of("person")
    for i in range(config.book_docs if works else 0):
        work = rng.choice(works)
        hero = rng.choice(people)
        for _ in range(20):  # prefer a hero born before the book came out
            if g.value(hero, "birth_year") < g.value(work, "published"):
                break
            hero = rng.choice(people)
        docs.append(D.book_chapter(g, work, hero, rng.randint(1, 12), _lang(rng, config), rng, f"book-{i:05d}"))

    inventions = g.ids_of("invention")
    for kind, count, make in (("paper", config.paper_docs, D.paper_abstract),
                              ("patent", config.patent_docs, D.patent_claims)):
        rng = rng_for(config.seed, "docs", kind)
        for i in range(count if inventions else 0):
            docs.append(make(g, rng.choice(inventions), _lang(rng, config), rng, f"{kind}-{i:05d}"))

    rng = rng_for(config.seed, "docs", "news")
    n = 0
    for e in g.entities.values():
        if e.type == "event" and not g.entity_known(e.id):
            for lang in ("en", "ko"):
                docs.append(D.news_report(g, e.id, lang, rng, f"news-{n:05d}"))
                n += 1
    return docs + task_pages(g, config, sum(len(d.text) for d in docs if d.in_pretraining))


def generate_world(config: WorldConfig) -> World:
    """Generate the world of ``config`` from scratch (deterministic; see ``build_world`` for the cached one)."""
    graph = build_graph(config)
    docs = _documents(graph, config)
    return World(config, graph, docs, build_tasks(graph, docs, config))


def build_world(config: WorldConfig | None = None) -> World:
    """The world of ``config`` (default: laptop-sized defaults), generated once per process and config.

    The returned world is shared between callers: treat it as read-only.
    """
    config = config or WorldConfig()
    return _cached(json.dumps(dataclasses.asdict(config), sort_keys=True))


@lru_cache(maxsize=4)
def _cached(key: str) -> World:
    return generate_world(WorldConfig(**json.loads(key)))
