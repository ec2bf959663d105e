"""Clean documents of every source kind the survey lists, written from the world's facts.

Kinds: ``encyclopedia`` (Wikipedia-like), ``web`` (blog pages; noise is added in
``noise.py``), ``forum`` (StackExchange-like Q&A), ``code`` (Python about the
world), ``book`` (narrative chapters), ``paper`` (abstracts), ``patent`` (claims),
the task pages of ``task_pages.py`` (``quiz``, ``faq``, ``infobox``, ``glossary``, ``worked``)
and ``news`` (reports of events after the knowledge cutoff, kept out of
pretraining). Every document lists the facts it states (``fact_ids``), so a
retriever's gold passages and a fact's supporting documents are known.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from urllib.parse import quote

from .entities import EntityGraph, Fact, english_date, korean_date, rng_for, year_of
from .hangul import attach, format_ko, nfc
from .names import NameBook
from .templates import LABELS, QUESTIONS, RELATIONS, STATEMENTS

TASK_PAGE_KINDS = ("quiz", "faq", "infobox", "glossary", "worked")  # pages that carry tasks: task_pages.py
KINDS = ("encyclopedia", "web", "forum", "code", "book", "paper", "patent", *TASK_PAGE_KINDS, "news")
PRETRAINING_KINDS = KINDS[:-1]


@dataclass
class Document:
    """One document with its ground-truth labels.

    ``pii`` spans are character offsets into ``text`` (``text[start:end]`` is the
    personal data). ``dup_cluster`` is shared by a page and its exact, near and
    URL-variant copies ("" when the page has none); ``page_id`` is shared by URL
    variants of one page; ``edit_rate`` is the share of words a near duplicate
    changed.
    """

    id: str
    kind: str
    lang: str
    url: str
    date: str
    title: str
    text: str
    fact_ids: list[str]
    in_pretraining: bool = True
    quality_flags: list[str] = field(default_factory=list)
    dup_cluster: str = ""
    page_id: str = ""
    edit_rate: float = 0.0
    pii: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.page_id = self.page_id or self.id  # a page is its own page unless it is a URL variant

    def to_record(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "lang": self.lang, "url": self.url, "date": self.date,
            "title": self.title, "text": self.text, "fact_ids": list(self.fact_ids),
            "in_pretraining": self.in_pretraining, "quality_flags": list(self.quality_flags),
            "dup_cluster": self.dup_cluster, "page_id": self.page_id, "edit_rate": self.edit_rate,
            "pii": [dict(s) for s in self.pii],
        }


class TextBuilder:
    """Text assembled from pieces; personal data pieces become labelled spans with exact offsets."""

    def __init__(self):
        self.pieces: list[tuple[str, str]] = []  # (text, pii type or "")

    def add(self, text: str, pii: str = "") -> TextBuilder:
        self.pieces.append((nfc(text), pii))
        return self

    def line(self, text: str = "") -> TextBuilder:
        return self.add(text + "\n")

    def build(self) -> tuple[str, list[dict]]:
        out, spans, pos = [], [], 0
        for text, pii in self.pieces:
            if pii:
                spans.append({"start": pos, "end": pos + len(text), "type": pii})
            out.append(text)
            pos += len(text)
        return "".join(out).rstrip("\n") + "\n", spans


# ---------------------------------------------------------------------- helpers


def say(g: EntityGraph, fact: Fact, lang: str, rng: random.Random) -> str:
    """One statement of ``fact`` in ``lang`` with a random template."""
    return g.fill(rng.choice(STATEMENTS[fact.relation][lang]), fact, lang)


def known_facts(g: EntityGraph, entity_id: str, *, as_value: bool = True) -> list[Fact]:
    return [f for f in g.facts_about(entity_id, as_value=as_value) if not f.after_cutoff]


def doc_date(rng: random.Random, g: EntityGraph, facts: list[Fact], earliest: int = 2005) -> str:
    """A publication date before the cutoff and not before the latest year the facts mention."""
    years = [earliest] + [f.value for f in facts if RELATIONS[f.relation][1] == "year"]
    years += [year_of(f.date) for f in facts if f.date]
    start = dt.date(min(max(years), g.cutoff.year), 1, 1)
    return (start + dt.timedelta(days=rng.randrange(max(1, (g.cutoff - start).days)))).isoformat()


def slug(text: str) -> str:
    return "-".join("".join(ch for ch in text.lower() if ch.isalnum() or ch == " ").split())


def make_sites(seed: int, n: int = 16) -> list[tuple[str, str]]:
    """Fictional web sites as (domain, language)."""
    rng = rng_for(seed, "sites")
    names = NameBook(rng)
    sites = []
    for i in range(n):
        lang = "ko" if i % 2 else "en"
        suffix = rng.choice(["blog", "news", "info", "guide", "life", "story", "notes", "daily"])
        tld = rng.choice(["kr", "co.kr", "com"] if lang == "ko" else ["com", "net", "org"])
        sites.append((f"{names.place().en.lower()}-{suffix}.{tld}", lang))
    return sites


def pick_entity(g: EntityGraph, rng: random.Random) -> str:
    """A random entity known before the cutoff."""
    return rng.choice(g.known_ids())


# ---------------------------------------------------------------------- kinds

_HEADINGS = {"en": ("Overview", "Related"), "ko": ("개요", "관련 항목")}


def encyclopedia(g: EntityGraph, entity_id: str, lang: str, rng: random.Random, doc_id: str) -> Document:
    """A Wikipedia-like article: the entity's own facts, then facts that mention it."""
    own = known_facts(g, entity_id, as_value=False)
    related = [f for f in known_facts(g, entity_id) if f not in own][:6]
    title = g.name(entity_id, lang)
    tb = TextBuilder().line(title).line()
    tb.line(f"== {_HEADINGS[lang][0]} ==")
    tb.line(" ".join(say(g, f, lang, rng) for f in own))
    if related:
        tb.line().line(f"== {_HEADINGS[lang][1]} ==")
        tb.line(" ".join(say(g, f, lang, rng) for f in related))
    text, _ = tb.build()
    page = quote(title.replace(" ", "_"))
    return Document(doc_id, "encyclopedia", lang, f"https://{lang}.worldpedia.org/wiki/{page}",
                    doc_date(rng, g, own + related), title, text, [f.id for f in own + related])


_WEB_OPEN = {
    "en": ["Here is what I found out about {s}.", "A few notes on {s}, for anyone curious.",
           "I finally read up on {s} this week.", "Everything you need to know about {s}!"],
    "ko": ["{s:에} 대해 알아본 것들을 정리해 봤어요.", "{s:에} 관심 있는 분들을 위해 메모를 남깁니다.",
           "이번 주에 {s:에} 대해 찾아봤습니다.", "{s:에} 대해 꼭 알아야 할 모든 것!"],
}
_WEB_CLOSE = {
    "en": ["Thanks for reading!", "Let me know in the comments what you think.", "More posts coming soon."],
    "ko": ["읽어 주셔서 감사합니다!", "댓글로 의견 남겨 주세요.", "다음 글도 기대해 주세요."],
}


def web_page(g: EntityGraph, entity_id: str, site: tuple[str, str], rng: random.Random,
             doc_id: str) -> tuple[Document, TextBuilder]:
    """A clean blog page about one entity, and its text builder for the caller to add noise to."""
    domain, lang = site
    facts = known_facts(g, entity_id)
    facts = rng.sample(facts, min(len(facts), rng.randint(2, 5)))
    name = g.name(entity_id, lang)
    title = {"en": f"All about {name}", "ko": f"{name} 이야기"}[lang]
    tb = TextBuilder().line(title).line()
    opener = rng.choice(_WEB_OPEN[lang])
    tb.line(opener.format(s=name) if lang == "en" else format_ko(opener, s=name))
    tb.line(" ".join(say(g, f, lang, rng) for f in facts))
    tb.line(rng.choice(_WEB_CLOSE[lang]))
    path = f"{rng.choice(['posts', 'blog', 'p', 'articles'])}/{slug(g.entities[entity_id].name.en)}-{doc_id[-5:]}"
    doc = Document(doc_id, "web", lang, f"https://www.{domain}/{path}", doc_date(rng, g, facts), title, "",
                   [f.id for f in facts])
    return doc, tb


def forum_thread(g: EntityGraph, fact: Fact, lang: str, rng: random.Random, doc_id: str) -> Document:
    """A question and its answers, StackExchange style; the accepted answer states the fact."""
    question = g.fill(rng.choice(QUESTIONS[fact.relation][lang]), fact, lang)
    extra = [f for f in known_facts(g, fact.subject, as_value=False) if f.id != fact.id]
    extra = rng.sample(extra, min(1, len(extra)))

    def user() -> str:
        return f"{rng.choice(['dev', 'reader', 'hiker', 'owl', 'quill', 'maple'])}{rng.randint(1, 999)}"

    votes = sorted((rng.randint(0, 40) for _ in range(2)), reverse=True)
    words = {"en": ("Question", "asked by", "Answer", "votes", "accepted"),
             "ko": ("질문", "작성자", "답변", "추천", "채택됨")}[lang]
    tb = TextBuilder().line(f"{words[0]}: {question}").line(f"{words[1]} {user()}").line()
    tb.line(f"{words[2]} ({words[4]}, {votes[0]} {words[3]}) - {user()}")
    tb.line(" ".join([say(g, fact, lang, rng)] + [say(g, f, lang, rng) for f in extra]))
    tb.line().line(f"{words[2]} ({votes[1]} {words[3]}) - {user()}")
    tb.line("+1. " + say(g, fact, lang, rng))
    text, _ = tb.build()
    number = 10000 + int(doc_id[-5:])
    url = f"https://ask.worldstack.org/{lang}/questions/{number}/{quote(slug(question)[:60])}"
    return Document(doc_id, "forum", lang, url,
                    doc_date(rng, g, [fact] + extra), question, text, [fact.id] + [f.id for f in extra])


def code_file(g: EntityGraph, subject: str, lang: str, rng: random.Random, doc_id: str) -> Document:
    """A small Python module holding world data and two functions over it.

    ``subject`` is a country (its cities' populations) or an organization (the
    inventions developed there); comments and names are in ``lang``.
    """
    name = g.name(subject, lang)
    slug_name = slug(g.entities[subject].name.en)
    const = slug_name.upper().replace("-", "_")
    if g.entities[subject].type == "country":
        cities = [f.subject for f in g.facts_about(subject) if f.relation == "country"]
        facts = [g.fact(c, "population") for c in cities] + [g.fact(c, "country") for c in cities]
        const += "_CITIES"
        docs = {"en": (f"Population of the cities of {name}.", "Return the most populous city.",
                       "Return the total population."),
                "ko": (f"{name}의 도시별 인구.", "인구가 가장 많은 도시를 돌려준다.", "전체 인구를 돌려준다.")}[lang]
        lines = [f'"""{docs[0]}"""', "", f"{const} = {{"]
        lines += [f'    "{g.name(c, lang)}": {g.value(c, "population"):_},' for c in cities]
        lines += ["}", "", "", "def largest_city(cities: dict[str, int]) -> str:", f'    """{docs[1]}"""',
                  "    return max(cities, key=cities.get)", "", "",
                  "def total_population(cities: dict[str, int]) -> int:", f'    """{docs[2]}"""',
                  "    return sum(cities.values())", "", "", 'if __name__ == "__main__":',
                  f"    print(largest_city({const}))", f"    print(total_population({const}))"]
        path = f"{slug_name}/population_{lang}.py"
    else:
        inventions = [f.subject for f in g.facts_about(subject) if f.relation == "developed_at"]
        facts = [g.fact(i, r) for i in inventions for r in ("developed_at", "invented", "inventor")]
        const += "_INVENTIONS"
        docs = {"en": (f"Inventions developed at {name}: (name, year, inventor).", "Return the earliest invention.",
                       "Return the inventions of one inventor."),
                "ko": (f"{name}에서 개발된 발명품: (이름, 연도, 발명가).", "가장 먼저 나온 발명품을 돌려준다.",
                       "한 발명가의 발명품을 돌려준다.")}[lang]
        lines = [f'"""{docs[0]}"""', "", f"{const} = ["]
        lines += [f'    ("{g.name(i, lang)}", {g.value(i, "invented")}, "{g.name(g.value(i, "inventor"), lang)}"),'
                  for i in inventions]
        lines += ["]", "", "", "def first_invention(inventions: list[tuple[str, int, str]]) -> str:",
                  f'    """{docs[1]}"""', "    return min(inventions, key=lambda item: item[1])[0]", "", "",
                  "def by_inventor(inventions: list[tuple[str, int, str]], inventor: str) -> list[str]:",
                  f'    """{docs[2]}"""', "    return [name for name, _, who in inventions if who == inventor]", "", "",
                  'if __name__ == "__main__":', f"    print(first_invention({const}))"]
        path = f"{slug_name}/inventions_{lang}.py"
    return Document(doc_id, "code", lang, f"https://git.worldhub.dev/{path}", doc_date(rng, g, facts), path,
                    nfc("\n".join(lines) + "\n"), [f.id for f in facts])


_BOOK_FILLER = {
    "en": ["The winter that year was long and quiet.", "Nobody in the family spoke of it again.",
           "Letters arrived every spring, always late.", "The streets smelled of rain and salt."],
    "ko": ["그해 겨울은 길고 조용했다.", "가족 중 누구도 그 일을 다시 말하지 않았다.", "편지는 봄마다 늦게 도착했다.",
           "거리에서는 비와 소금 냄새가 났다."],
}


def book_chapter(g: EntityGraph, work: str, hero: str, chapter: int, lang: str, rng: random.Random,
                 doc_id: str) -> Document:
    """A narrative chapter of a work, telling the life of one person between filler sentences."""
    facts = known_facts(g, hero, as_value=False)
    city = g.value(hero, "birth_place")
    facts += [f for f in known_facts(g, city, as_value=False) if f.relation in ("country", "population")]
    title = {"en": f"{g.name(work, lang)}, Chapter {chapter}", "ko": f"{g.name(work, lang)} 제{chapter}장"}[lang]
    sentences = []
    for f in facts:
        sentences.append(say(g, f, lang, rng))
        if rng.random() < 0.5:
            sentences.append(rng.choice(_BOOK_FILLER[lang]))
    half = len(sentences) // 2
    tb = TextBuilder().line(title).line().line(" ".join(sentences[:half])).line().line(" ".join(sentences[half:]))
    text, _ = tb.build()
    published = g.value(work, "published")
    # One page per edition (language), chapter and hero: chapters with different heroes are different texts.
    url = (f"https://library.worldbooks.org/{lang}/{slug(g.entities[work].name.en)}/{chapter}"
           f"-{slug(g.entities[hero].name.en)}")
    return Document(doc_id, "book", lang, url,
                    f"{published}-01-01", title, text, [g.fact(work, "author").id] + [f.id for f in facts])


def paper_abstract(g: EntityGraph, invention: str, lang: str, rng: random.Random, doc_id: str) -> Document:
    """A paper abstract that revisits an invention and reports a made-up measurement."""
    facts = [g.fact(invention, r) for r in ("inventor", "developed_at", "invented")]
    name = g.name(invention, lang)
    gain, trials = rng.randint(3, 40), rng.choice([12, 24, 48, 96, 200])
    if lang == "en":
        title = f"Revisiting the {name}: measurements and open questions"
        body = (f"Abstract. {' '.join(say(g, f, lang, rng) for f in facts)} We revisit its design with {trials} "
                f"controlled trials and find a {gain}% gain in efficiency over earlier models. "
                "We release our measurements and discuss open questions.")
    else:
        title = f"{name} 재검토: 측정과 남은 질문"
        body = (f"초록. {' '.join(say(g, f, lang, rng) for f in facts)} 본 연구는 {trials}회의 통제 실험으로 "
                f"그 설계를 다시 살펴보고, 이전 모델보다 효율이 {gain}% 높음을 확인하였다. 측정 자료를 공개하고 남은 질문을 논의한다.")
    date = doc_date(rng, g, facts)
    number = f"{date[2:4]}{date[5:7]}.{int(doc_id[-5:]):05d}"
    return Document(doc_id, "paper", lang, f"https://papers.worldarxiv.org/abs/{number}", date, title,
                    nfc(f"{title}\n\n{body}\n"), [f.id for f in facts])


def patent_claims(g: EntityGraph, invention: str, lang: str, rng: random.Random, doc_id: str) -> Document:
    """Patent front page and claims for an invention, filed in the year it was invented."""
    facts = [g.fact(invention, r) for r in ("inventor", "developed_at", "invented")]
    kind_en, kind_ko = LABELS["invention_kind"][g.entities[invention].kind]
    parts_en = ["a housing", "a frame", "a valve", "a rotating shaft", "a sensor", "a coil", "a lens", "a filter layer"]
    parts_ko = ["하우징", "프레임", "밸브", "회전축", "센서", "코일", "렌즈", "필터층"]
    idx = rng.sample(range(len(parts_en)), 3)
    year = g.value(invention, "invented")
    filed = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    number = f"WP-{year}-{int(doc_id[-5:]):06d}"
    inventor, org = g.name(g.value(invention, "inventor"), lang), g.name(g.value(invention, "developed_at"), lang)
    if lang == "en":
        k = kind_en.lower()
        text = (f"Patent {number}\nTitle: {g.name(invention, lang)}\nInventor: {inventor}\nAssignee: {org}\n"
                f"Filed: {english_date(filed)}\n\nClaims\n"
                f"1. A {k} comprising: {parts_en[idx[0]]}; {parts_en[idx[1]]}; and {parts_en[idx[2]]}.\n"
                f"2. The {k} of claim 1, wherein {parts_en[idx[1]]} is coupled to {parts_en[idx[0]]}.\n"
                f"3. The {k} of claim 2, further comprising {parts_en[idx[2]]} arranged inside {parts_en[idx[0]]}.\n")
    else:
        text = (f"특허 {number}\n발명의 명칭: {g.name(invention, lang)}\n발명자: {inventor}\n출원인: {org}\n"
                f"출원일: {korean_date(filed)}\n\n청구범위\n"
                f"청구항 1. {parts_ko[idx[0]]}, {parts_ko[idx[1]]} 및 {attach(parts_ko[idx[2]], '을')} 포함하는 {kind_ko}.\n"
                f"청구항 2. 제1항에 있어서, {attach(parts_ko[idx[1]], '은')} {parts_ko[idx[0]]}에 결합되는 {kind_ko}.\n"
                f"청구항 3. 제2항에 있어서, {parts_ko[idx[0]]} 내부에 배치된 {attach(parts_ko[idx[2]], '을')} 더 포함하는 {kind_ko}.\n")
    return Document(doc_id, "patent", lang, f"https://patents.worldpto.org/{number}", filed,
                    f"{number} {g.name(invention, lang)}", nfc(text), [f.id for f in facts])


def news_report(g: EntityGraph, event: str, lang: str, rng: random.Random, doc_id: str) -> Document:
    """A news report of an event after the cutoff; news is held out of pretraining."""
    facts = [g.fact(event, r) for r in ("location", "event_date", "organizer")]
    date = g.value(event, "event_date")
    published = min(dt.date.fromisoformat(date) + dt.timedelta(days=rng.randint(0, 2)), g.last_date).isoformat()
    city = g.name(g.value(event, "location"), lang)
    visitors = rng.randint(2, 90) * 100
    if lang == "en":
        title = f"{g.name(event, lang)} draws {visitors:,} visitors"
        body = (f"{city}, {english_date(published)} - " + " ".join(say(g, f, lang, rng) for f in facts)
                + f" Organizers counted about {visitors:,} visitors.")
    else:
        title = f"{g.name(event, lang)}, 방문객 {visitors:,}명 몰려"
        body = (f"[{city}={korean_date(published)}] " + " ".join(say(g, f, lang, rng) for f in facts)
                + f" 주최 측은 약 {visitors:,}명이 방문했다고 밝혔다.")
    url = f"https://{lang}.worldnews.net/{published.replace('-', '/')}/{slug(g.entities[event].name.en)}"
    return Document(doc_id, "news", lang, url,
                    published, title, nfc(f"{title}\n\n{body}\n"), [f.id for f in facts], in_pretraining=False)
