"""Pages that carry tasks the way the web does: quizzes, FAQs, infoboxes, glossaries, worked examples.

The survey explains zero- and few-shot ability by *implicit multitask learning*
(암묵적 멀티태스크 학습): web text already holds questions with their answers,
tables, lists and solved exercises, so a language model trained to predict it
learns to do tasks. These kinds put such pages into the world's pretraining
corpus, in English and Korean:

- ``quiz``: numbered questions about several entities, answers inline, as Q/A
  pairs or listed at the end;
- ``faq``: question and answer pairs about one entity;
- ``infobox``: one entity's facts as a table or as ``Label: value`` lines, or a
  table of several entities with one column per relation;
- ``glossary``: ``Name: value`` lines of one relation over many entities;
- ``worked``: textbook-style examples, some answering from a short passage.

Two rules keep the evaluation honest. A page states **training facts only**
(``Fact.split == "train"``; post-cutoff facts are test facts), and it speaks in
its **own phrasings** (the tables below), never the evaluation templates of
``templates.py``, so the ``test_template`` split stays unseen. ``fact_ids`` lists
exactly the facts a page states.

Size: the pages make up ``WorldConfig.task_page_share`` of the pretraining
characters, split evenly between the five kinds; each kind draws from its own
random stream, so the other kinds' documents do not change.
"""

from __future__ import annotations

import random
import re

from course_lib.config import WorldConfig

from .documents import TASK_PAGE_KINDS, Document, doc_date, slug
from .entities import EntityGraph, Fact, rng_for
from .hangul import format_ko, nfc
from .templates import RELATIONS

# relation -> language -> names of the relation as a field ("year of birth", "출생 연도"); several per language
FIELD_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "birth_year": {"en": ("year of birth", "birth year"), "ko": ("출생 연도", "생년")},
    "birth_place": {"en": ("birthplace", "place of birth"), "ko": ("출생지", "출신 도시")},
    "occupation": {"en": ("occupation", "profession"), "ko": ("직업", "직종")},
    "employer": {"en": ("employer", "workplace"), "ko": ("직장", "소속 기관")},
    "country": {"en": ("country", "nation"), "ko": ("소속 국가", "나라")},
    "population": {"en": ("population", "number of residents"), "ko": ("인구", "주민 수")},
    "city_founded": {"en": ("founding year", "year of founding"), "ko": ("건설 연도", "건립 연도")},
    "capital": {"en": ("capital", "capital city"), "ko": ("수도", "수도 도시")},
    "founder": {"en": ("founder", "founding director"), "ko": ("설립자", "창립자")},
    "org_founded": {"en": ("year founded", "year of establishment"), "ko": ("설립 연도", "창립 연도")},
    "headquarters": {"en": ("headquarters", "head office"), "ko": ("본부 소재지", "본사 위치")},
    "industry": {"en": ("field", "industry"), "ko": ("분야", "업종")},
    "inventor": {"en": ("inventor", "creator"), "ko": ("발명가", "발명자")},
    "invented": {"en": ("year of invention", "invention year"), "ko": ("발명 연도", "발명 시기")},
    "developed_at": {"en": ("developer", "developing organization"), "ko": ("개발 기관", "개발처")},
    "author": {"en": ("author", "writer"), "ko": ("저자", "지은이")},
    "published": {"en": ("year of publication", "publication year"), "ko": ("출간 연도", "출판 연도")},
    "genre": {"en": ("genre", "literary form"), "ko": ("장르", "갈래")},
    "location": {"en": ("venue", "host city"), "ko": ("개최 도시", "개최 장소")},
    "event_date": {"en": ("date", "event date"), "ko": ("개최일", "날짜")},
    "organizer": {"en": ("organizer", "host organization"), "ko": ("주최 기관", "주최자")},
}

# Slots: {s} subject, {r} a field name, {o} the value. Korean slots carry their particle (hangul.format_ko).
ASK = {"en": ["Name the {r} of {s}.", "Give the {r} of {s}.", "{s}: {r}?", "Can you recall the {r} of {s}?"],
       "ko": ["{s:의} {r:은}?", "{s:의} {r:을} 쓰시오.", "{s:의} {r:을} 맞혀 보세요."]}
REPLY = {"en": ["Short answer: {o}.", "The {r} is {o}.", "That would be {o}.", "According to our records, {o}."],
         "ko": ["{o}입니다.", "{r:은} {o}입니다.", "기록에 따르면 {o}입니다.", "{o:으로} 알려져 있습니다."]}
TELL = {"en": ["For {s}, the {r} is {o}.", "The records list {o} as the {r} of {s}."],
        "ko": ["{s:의} 경우 {r:은} {o}입니다.", "{s:의} {r:은} {o:으로} 기록되어 있습니다."]}

TYPE_NAMES = {"person": ("people", "인물"), "city": ("cities", "도시"), "country": ("countries", "국가"),
              "organization": ("organizations", "조직"), "invention": ("inventions", "발명품"),
              "work": ("works", "작품"), "event": ("events", "행사")}
WORDS = {  # the page furniture of each language
    "en": {"answer": "Answer", "answers": "Answers", "question": "Question", "passage": "Passage",
           "example": "Example", "read": "Read the passage, then answer.", "name": "Name", "unknown": "—"},
    "ko": {"answer": "정답", "answers": "정답", "question": "문제", "passage": "지문",
           "example": "예제", "read": "지문을 읽고 답하시오.", "name": "이름", "unknown": "—"},
}
QUIZ_TITLES = {"en": ["Trivia quiz #{n}", "Pub quiz, round {n}", "World knowledge quiz {n}"],
               "ko": ["상식 퀴즈 제{n}회", "오늘의 퀴즈 {n}", "세계 상식 문제 {n}"]}
WORKED_TITLES = {"en": ["Worked examples, set {n}", "Solved exercises {n}"],
                 "ko": ["예제 풀이 {n}", "풀이가 있는 연습 문제 {n}"]}
SITES = {"quiz": ("www.worldtrivia.com/quiz", "quiz.sangsik.kr/round"),
         "faq": ("help.worldfaq.org/en", "help.worldfaq.org/ko"),
         "infobox": ("facts.worldbase.org/en", "facts.worldbase.org/ko"),
         "glossary": ("www.worldlists.net/lists", "list.mokrok.kr/pages"),
         "worked": ("learn.worldschool.org/examples", "learn.worldschool.org/ko/yeje")}


def fill(text: str, lang: str, **slots: str) -> str:
    """A phrasing with its slots filled; in Korean the slots' particles are chosen by the words (NFC)."""
    if lang == "ko":
        return format_ko(text, **slots)
    text = text.format(**slots)
    return nfc(text[0].upper() + text[1:])


class FactPool:
    """The training facts a task page may state, grouped by subject and by relation (creation order)."""

    def __init__(self, g: EntityGraph):
        self.g = g
        self.facts = [f for f in g.facts.values() if f.split == "train" and g.entity_known(f.subject)]
        self.by_subject: dict[str, list[Fact]] = {}
        self.by_relation: dict[str, list[Fact]] = {}
        for f in self.facts:
            self.by_subject.setdefault(f.subject, []).append(f)
            self.by_relation.setdefault(f.relation, []).append(f)
        self.subjects = list(self.by_subject)

    def value(self, fact: Fact, lang: str) -> str:
        """The value as the page writes it: Korean years and counts take their unit (1953년, 12,300명)."""
        text = self.g.value_text(fact, lang)
        unit = {"year": "년", "count": "명"}.get(RELATIONS[fact.relation][1], "") if lang == "ko" else ""
        return text + unit

    def field(self, relation: str, lang: str, rng: random.Random) -> str:
        return rng.choice(FIELD_NAMES[relation][lang])

    def ask(self, fact: Fact, lang: str, rng: random.Random) -> str:
        """A question about ``fact`` in one of the page phrasings (``ASK``)."""
        return fill(rng.choice(ASK[lang]), lang, s=self.g.name(fact.subject, lang), r=self.field(fact.relation, lang, rng))

    def say(self, fact: Fact, lang: str, rng: random.Random, table: dict[str, list[str]]) -> str:
        """``fact`` in a phrasing from ``table`` (``REPLY`` or ``TELL``)."""
        return fill(rng.choice(table[lang]), lang, s=self.g.name(fact.subject, lang),
                    r=self.field(fact.relation, lang, rng), o=self.value(fact, lang))

    def spread(self, rng: random.Random, n: int) -> list[Fact]:
        """Up to ``n`` facts about as many different subjects."""
        subjects = rng.sample(self.subjects, min(n, len(self.subjects)))
        return [rng.choice(self.by_subject[s]) for s in subjects]


def _document(pool: FactPool, kind: str, lang: str, rng: random.Random, doc_id: str, title: str,
              lines: list[str], facts: list[Fact], page: str) -> Document:
    """A task page: title, blank line, body lines; the URL is the kind's site for ``lang`` plus ``page``."""
    site = SITES[kind][lang == "ko"]
    text = nfc("\n".join([title, ""] + lines).rstrip("\n") + "\n")
    return Document(doc_id, kind, lang, f"https://{site}/{page}", doc_date(rng, pool.g, facts), title, text,
                    [f.id for f in facts])


# ---------------------------------------------------------------------- the five kinds


def quiz_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """Numbered questions about several entities; answers inline, as Q/A pairs, or in a key at the end."""
    w, n = WORDS[lang], int(doc_id[-5:]) + 1
    facts = pool.spread(rng, rng.randint(5, 8))
    asked = [(pool.ask(f, lang, rng), pool.value(f, lang)) for f in facts]
    style = rng.randrange(3)
    if style == 0:
        number = "{i}." if lang == "en" else "문제 {i}."
        lines = [f"{number.format(i=i)} {q} {w['answer']}: {a}" for i, (q, a) in enumerate(asked, 1)]
    elif style == 1:
        sep = ":" if lang == "en" else "."
        lines = [line for i, (q, a) in enumerate(asked, 1) for line in (f"Q{i}{sep} {q}", f"A{i}{sep} {a}", "")]
    else:
        lines = [f"{i}. {q}" for i, (q, _) in enumerate(asked, 1)] + ["", f"{w['answers']}:"]
        lines += [f"{i}. {a}" for i, (_, a) in enumerate(asked, 1)]
    title = rng.choice(QUIZ_TITLES[lang]).format(n=n)
    return _document(pool, "quiz", lang, rng, doc_id, title, lines, facts, str(n))


def faq_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """Question and answer pairs about one entity, in a random order."""
    subject = rng.choice(pool.subjects)
    facts = list(pool.by_subject[subject])
    rng.shuffle(facts)
    q, a = ("Q", "A") if lang == "en" else ("질문", "답변")
    lines = []
    for f in facts:
        lines += [f"{q}: {pool.ask(f, lang, rng)}", f"{a}: {pool.say(f, lang, rng, REPLY)}", ""]
    name = pool.g.name(subject, lang)
    title = f"{name}: frequently asked questions" if lang == "en" else f"{name} 자주 묻는 질문"
    page = f"{slug(pool.g.entities[subject].name.en)}-{doc_id[-5:]}"
    return _document(pool, "faq", lang, rng, doc_id, title, lines, facts, page)


def _cell(text: str) -> str:
    return f"| {text} |"


def infobox_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """One entity's facts as a table or as ``Field: value`` lines, or a table of several entities."""
    g, style = pool.g, rng.randrange(3)
    if style == 2:
        return _table_page(pool, lang, rng, doc_id)
    subject = rng.choice(pool.subjects)
    facts = pool.by_subject[subject]
    rows = [(pool.field(f.relation, lang, rng), pool.value(f, lang)) for f in facts]
    if style == 0:
        lines = [_cell(f"{r[0].upper() + r[1:]} | {v}") for r, v in rows]
    else:
        lines = [f"{r[0].upper() + r[1:]}: {v}" for r, v in rows]
    page = f"{slug(g.entities[subject].name.en)}-{doc_id[-5:]}"
    return _document(pool, "infobox", lang, rng, doc_id, g.name(subject, lang), lines, facts, page)


def _table_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """Several entities of one type, a column per relation; a cell whose fact is held out stays blank (—)."""
    g = pool.g
    type_ = g.entities[rng.choice(pool.subjects)].type
    relations = [r for r, (subject_type, _) in RELATIONS.items() if subject_type == type_]
    rows = [s for s in pool.subjects if g.entities[s].type == type_]
    rows = rng.sample(rows, min(len(rows), rng.randint(4, 8)))
    header = [WORDS[lang]["name"]] + [pool.field(r, lang, rng) for r in relations]
    lines = [_cell(" | ".join(h[0].upper() + h[1:] for h in header)), "|" + "---|" * len(header)]
    facts = []
    for s in rows:
        cells = [g.name(s, lang)]
        for r in relations:
            fact = g.fact(s, r)
            stated = fact is not None and fact in pool.by_subject[s]
            cells.append(pool.value(fact, lang) if stated else WORDS[lang]["unknown"])
            facts += [fact] if stated else []
        lines.append(_cell(" | ".join(cells)))
    plural, korean = TYPE_NAMES[type_]
    title = f"{plural.capitalize()} at a glance" if lang == "en" else f"한눈에 보는 {korean}"
    return _document(pool, "infobox", lang, rng, doc_id, title, lines, facts, f"table-{doc_id[-5:]}")


def glossary_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """``Name: value`` lines of one relation over many entities, sorted by name like a printed glossary."""
    g = pool.g
    relations = [r for r, facts in pool.by_relation.items() if len(facts) >= 6] or list(pool.by_relation)
    relation = rng.choice(relations)
    candidates = pool.by_relation[relation]
    facts = sorted(rng.sample(candidates, min(len(candidates), rng.randint(6, 12))),
                   key=lambda f: g.name(f.subject, lang))
    sep = rng.choice([": ", " — ", " · "])
    lines = [f"{g.name(f.subject, lang)}{sep}{pool.value(f, lang)}" for f in facts]
    plural, korean = TYPE_NAMES[RELATIONS[relation][0]]
    field = pool.field(relation, lang, rng)
    title = f"{plural.capitalize()} and their {field}" if lang == "en" else f"{korean}별 {field}"
    return _document(pool, "glossary", lang, rng, doc_id, title, lines, facts, f"{relation}-{doc_id[-5:]}")


def worked_page(pool: FactPool, lang: str, rng: random.Random, doc_id: str) -> Document:
    """Two to four solved examples; some ask about a short passage that states the answer."""
    w, n = WORDS[lang], int(doc_id[-5:]) + 1
    lines, facts = [], []
    for i in range(1, rng.randint(2, 4) + 1):
        fact = rng.choice(pool.facts)
        if rng.random() < 0.4:  # a reading-comprehension example: the passage states the answer and more
            own = pool.by_subject[fact.subject]
            told = rng.sample(own, min(len(own), rng.randint(2, 3)))
            fact = rng.choice(told)
            passage = " ".join(pool.say(f, lang, rng, TELL) for f in told)
            lines += [f"{w['example']} {i}. {w['read']}", f"{w['passage']}: {passage}"]
            facts += [f for f in told if f not in facts]
        else:
            lines.append(f"{w['example']} {i}.")
            facts += [] if fact in facts else [fact]
        lines += [f"{w['question']}: {pool.ask(fact, lang, rng)}", f"{w['answer']}: {pool.value(fact, lang)}", ""]
    title = rng.choice(WORKED_TITLES[lang]).format(n=n)
    return _document(pool, "worked", lang, rng, doc_id, title, lines, facts, str(n))


MAX_REPEATS = 100  # draws in a row that only repeat earlier pages: a tiny world has said all it can
BUILDERS = {"quiz": quiz_page, "faq": faq_page, "infobox": infobox_page, "glossary": glossary_page,
            "worked": worked_page}


def task_pages(g: EntityGraph, config: WorldConfig, pretraining_chars: int) -> list[Document]:
    """The task pages of the world, kind by kind (``quiz-00000``, ...), each kind from its own random stream.

    ``pretraining_chars`` is what the other kinds put into pretraining; the pages
    add ``share / (1 - share)`` times as many characters, so that they make up
    ``config.task_page_share`` of the whole, an equal part per kind (each kind
    overshoots its part by less than one page). No two pages have the same words (punctuation and case aside).
    """
    share = config.task_page_share
    pool = FactPool(g)
    if share == 0 or not pool.facts:
        return []
    part = share / (1 - share) * pretraining_chars / len(TASK_PAGE_KINDS)
    docs, texts = [], set()
    for kind in TASK_PAGE_KINDS:
        rng = rng_for(config.seed, "docs", kind)
        chars, n, repeats = 0, 0, 0
        while chars < part and repeats < MAX_REPEATS:
            lang = "ko" if rng.random() < config.ko_fraction else "en"
            doc = BUILDERS[kind](pool, lang, rng, f"{kind}-{n:05d}")
            words = tuple(re.findall(r"\w+", doc.text.casefold()))
            if words in texts:  # an unlabelled duplicate (up to punctuation) would count against chapter 02's dedup
                repeats += 1
                continue
            texts.add(words)
            docs.append(doc)
            chars, n, repeats = chars + len(doc.text), n + 1, 0
    return docs
