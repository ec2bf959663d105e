"""Task sets drawn from the world, with a split that keeps test facts and test templates out of training.

Every example is one row with the same columns (so all families fit one
``datasets`` table)::

    id, task, lang, split, template_id, fact_ids, doc_ids, context, question,
    choices, label, answer, answerable, after_cutoff

``fact_ids`` are the facts the answer depends on; ``doc_ids`` the documents that
state them. Splits: ``train`` uses only training facts and training templates;
``test`` holds out facts (every post-cutoff fact is a test fact) with training
templates; ``test_template`` holds out the phrasing (the last template of each
list) on training facts. An example that would need a held-out fact *and* a
held-out template is not generated.

Families: cloze, multiple_choice, qa_closed, qa_open, summarization,
translation, arithmetic, entailment, false_premise, unanswerable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re

from course_lib.config import WorldConfig

from .documents import TASK_PAGE_KINDS
from .entities import EntityGraph, Fact, rng_for, stable_fraction
from .hangul import format_ko
from .templates import LABELS, QUESTIONS, RELATIONS, STATEMENTS, is_held_out, template_id

FAMILIES = ("cloze", "multiple_choice", "qa_closed", "qa_open", "summarization", "translation", "arithmetic",
            "entailment", "false_premise", "unanswerable")
SPLITS = ("train", "test", "test_template")
ENTAILMENT_LABELS = {"en": ["entailment", "neutral", "contradiction"], "ko": ["함의", "중립", "모순"]}
HELD_OUT_TEMPLATE_SHARE = 0.25  # how often an example is drawn with its family's held-out template
LATE_QUESTION_SHARE = 0.15  # how often a QA example asks about a fact after the knowledge cutoff


def false_value(g: EntityGraph, fact: Fact, rng: random.Random):
    """A plausible wrong value for ``fact``: same type, different from the truth."""
    vtype = RELATIONS[fact.relation][1]
    while True:
        if vtype == "year":
            wrong = fact.value + rng.choice([-1, 1]) * rng.randint(1, 30)
        elif vtype == "count":
            wrong = int(round(fact.value * rng.uniform(0.4, 1.8), -2))
        elif vtype == "date":
            wrong = _shift_date(fact.value, rng.choice([-1, 1]) * rng.randint(1, 400))
        elif vtype.startswith("label:"):
            wrong = rng.choice(sorted(LABELS[vtype[6:]]))
        else:
            wrong = rng.choice(g.ids_of(vtype))
        if wrong != fact.value:
            return wrong


def _shift_date(iso: str, days: int) -> str:
    return (dt.date.fromisoformat(iso) + dt.timedelta(days=days)).isoformat()


def value_text(g: EntityGraph, fact: Fact, value, lang: str) -> str:
    """How ``value`` (true or not) is written for ``fact``'s relation in ``lang``."""
    return g.value_text(dataclasses.replace(fact, value=value), lang)


class _Maker:
    """Draws examples of one family until it has enough, assigning splits and skipping double hold-outs."""

    def __init__(self, g: EntityGraph, docs, config: WorldConfig):
        self.g, self.config = g, config
        self.facts = list(g.facts.values())
        self.known = [f for f in self.facts if not f.after_cutoff]
        self.late = [f for f in self.facts if f.after_cutoff]
        self.known_by_relation: dict[str, list[Fact]] = {}
        for f in self.known:
            self.known_by_relation.setdefault(f.relation, []).append(f)
        self.support: dict[str, list] = {}
        for d in docs:
            for fid in d.fact_ids:
                self.support.setdefault(fid, []).append(d)
        self.rows: list[dict] = []
        self._counts: dict[str, int] = {}

    def pick_template(self, rng: random.Random, n: int) -> int:
        """A template index: the held-out (last) one with probability HELD_OUT_TEMPLATE_SHARE."""
        if n == 1 or rng.random() >= HELD_OUT_TEMPLATE_SHARE:
            return rng.randrange(n - 1) if n > 1 else 0
        return n - 1

    def split(self, facts: list[Fact], held_template: bool, key: str = "") -> str | None:
        """The example's split, or None if it would hold out a fact and a template at once.

        An example without facts (unanswerable) is held out by ``key`` (its entity) instead.
        """
        fact_test = any(f.split == "test" for f in facts) or (
            not facts and stable_fraction(str(self.config.seed), "split", key) < self.config.held_out_fact_fraction)
        if fact_test and held_template:
            return None
        return "test" if fact_test else "test_template" if held_template else "train"

    def add(self, task: str, lang: str, split: str, tid: str, facts: list[Fact], *, context: str = "",
            question: str = "", choices: list[str] | None = None, label: int = -1, answer: str = "",
            answerable: bool = True, doc_ids: list[str] | None = None) -> None:
        number = self._counts[task] = self._counts.get(task, -1) + 1
        self.rows.append({
            "id": f"{task}-{number:05d}", "task": task, "lang": lang,
            "split": split, "template_id": tid, "fact_ids": [f.id for f in facts], "doc_ids": doc_ids or [],
            "context": context, "question": question, "choices": choices or [], "label": label, "answer": answer,
            "answerable": answerable, "after_cutoff": any(f.after_cutoff for f in facts),
        })


def _cloze_templates(relation: str, lang: str) -> list[int]:
    """Statement templates whose value comes last, so the sentence can be cut just before it."""
    return [i for i, t in enumerate(STATEMENTS[relation][lang])
            if re.search(r"\{o(:[^}]*)?\}\.$", t) and t.index("{s") < t.index("{o")]


def _cloze(m: _Maker, rng: random.Random, lang: str) -> None:
    """LAMBADA-style: context sentences mention the value; the last sentence stops right before it."""
    fact = rng.choice(m.known)
    usable = _cloze_templates(fact.relation, lang)
    if not usable:
        return
    n = len(STATEMENTS[fact.relation][lang])
    held = rng.random() < HELD_OUT_TEMPLATE_SHARE and is_held_out(usable[-1], n)
    train_usable = [i for i in usable if not is_held_out(i, n)]
    if not held and not train_usable:
        return
    t = usable[-1] if held else rng.choice(train_usable)
    split = m.split([fact], held)
    if split is None:
        return
    first = rng.choice([i for i in range(n - 1) if i != t] or [0])  # an earlier mention in another phrasing
    others = [f for f in m.g.facts_about(fact.subject, as_value=False) if f.id != fact.id and not f.after_cutoff]
    sentences = [m.g.fill(STATEMENTS[fact.relation][lang][first], fact, lang)]
    sentences += [m.g.fill(STATEMENTS[f.relation][lang][rng.randrange(len(STATEMENTS[f.relation][lang]) - 1)], f, lang)
                  for f in rng.sample(others, min(2, len(others)))]
    template = STATEMENTS[fact.relation][lang][t]
    # fill the sentence with a NUL where the value goes, then cut there: the question ends right before the answer
    prefix = m.g.fill(template[: template.index("{o")] + "{o}", fact, lang, value_text="\0").split("\0")[0].rstrip()
    m.add("cloze", lang, split, template_id("stmt", fact.relation, lang, t), [fact],
          context=" ".join(sentences), question=prefix, answer=m.g.value_text(fact, lang))


def _question(m: _Maker, rng: random.Random, lang: str, fact: Fact) -> tuple[str, str, str] | None:
    """(question, template id, split) for a question about ``fact``, or None for a double hold-out."""
    n = len(QUESTIONS[fact.relation][lang])
    t = m.pick_template(rng, n)
    held = is_held_out(t, n)
    split = m.split([fact], held)
    if split is None:
        return None
    return m.g.fill(QUESTIONS[fact.relation][lang][t], fact, lang), template_id("q", fact.relation, lang, t), split


def _multiple_choice(m: _Maker, rng: random.Random, lang: str) -> None:
    fact = rng.choice(m.facts)
    q = _question(m, rng, lang, fact)
    if q is None:
        return
    truth = m.g.value_text(fact, lang)
    options = {truth}
    for _ in range(50):  # bounded: a tiny world may have fewer than four values of a type
        options.add(value_text(m.g, fact, false_value(m.g, fact, rng), lang))
        if len(options) == 4:
            break
    else:
        return
    choices = sorted(options)
    rng.shuffle(choices)
    m.add("multiple_choice", lang, q[2], q[1], [fact], question=q[0], choices=choices, label=choices.index(truth),
          answer=truth)


def _qa(m: _Maker, rng: random.Random, lang: str, open_book: bool) -> None:
    # post-cutoff facts are few; asking about them more often gives the RAG chapter enough late questions
    fact = rng.choice(m.late if m.late and rng.random() < LATE_QUESTION_SHARE else m.facts)
    q = _question(m, rng, lang, fact)
    if q is None:
        return
    docs = m.support.get(fact.id, [])
    # a context is prose: a task page would hand the reader the question with its answer
    same = ([d for d in docs if d.lang == lang and d.kind in ("encyclopedia", "news")]
            or [d for d in docs if d.lang == lang and d.kind not in TASK_PAGE_KINDS])
    if open_book and not same:
        return
    context = rng.choice(same).text if open_book else ""
    m.add("qa_open" if open_book else "qa_closed", lang, q[2], q[1], [fact], context=context, question=q[0],
          answer=m.g.value_text(fact, lang), doc_ids=[d.id for d in docs])


_SUMMARY_PROMPTS = {"en": ["Summarize the article in one or two sentences.", "Write a short summary of this article.",
                           "TL;DR:"],
                    "ko": ["이 글을 한두 문장으로 요약하세요.", "이 글의 짧은 요약을 쓰세요.", "세 줄 요약:"]}


def _summarization(m: _Maker, rng: random.Random, lang: str, docs) -> None:
    """Article -> summary: the summary states the entity's first two facts in their plainest template."""
    doc = rng.choice(docs[lang])
    subject = m.g.facts[doc.fact_ids[0]].subject  # an article lists its own facts first
    facts = [f for f in m.g.facts_about(subject, as_value=False) if f.id in doc.fact_ids][:2]
    t = m.pick_template(rng, len(_SUMMARY_PROMPTS[lang]))
    split = m.split(facts, is_held_out(t, len(_SUMMARY_PROMPTS[lang])))
    if split is None or not facts:
        return
    summary = " ".join(m.g.fill(STATEMENTS[f.relation][lang][0], f, lang) for f in facts)
    m.add("summarization", lang, split, template_id("summary", "article", lang, t), facts, context=doc.text,
          question=_SUMMARY_PROMPTS[lang][t], answer=summary, doc_ids=[doc.id])


def _translation(m: _Maker, rng: random.Random, lang: str) -> None:
    """A fact said with template i in one language and template i in the other (their translations)."""
    fact = rng.choice(m.known)
    n = len(STATEMENTS[fact.relation]["en"])
    t = m.pick_template(rng, n)
    split = m.split([fact], is_held_out(t, n))
    if split is None:
        return
    src, tgt = ("en", "ko") if lang == "en" else ("ko", "en")
    m.add("translation", f"{src}-{tgt}", split, template_id("stmt", fact.relation, f"{src}-{tgt}", t), [fact],
          question=m.g.fill(STATEMENTS[fact.relation][src][t], fact, src),
          answer=m.g.fill(STATEMENTS[fact.relation][tgt][t], fact, tgt))


# (problem type) -> language -> phrasings; slots are filled by _arithmetic
_ARITH = {
    "age": {"en": ["{p} was born in {y1}. In {y2}, {p} invented {x}. How old was {p} that year?",
                   "{x} was invented in {y2} by {p}, who was born in {y1}. How many years old was {p} then?",
                   "Born in {y1}, {p} created {x} in {y2}. What was {p}'s age when {x} appeared?"],
            "ko": ["{p:은} {y1}년에 태어났다. {y2}년에 {p:은} {x:을} 발명했다. 그해 {p:은} 몇 살이었나?",
                   "{x:은} {y2}년에 {p:이} 발명했다. {p:은} {y1}년생이다. 그때 {p:은} 몇 살이었나?",
                   "{y1}년에 태어난 {p:은} {y2}년에 {x:을} 만들었다. {x:이} 나왔을 때 {p:의} 나이는?"]},
    "difference": {"en": ["{a} has {n1} residents and {b} has {n2}. How many more people live in {a} than in {b}?",
                          "The population of {a} is {n1}; that of {b} is {n2}. By how many people does {a} exceed {b}?",
                          "{n1} people live in {a} and {n2} in {b}. What is the difference in population?"],
                   "ko": ["{a}에는 {n1}명, {b}에는 {n2}명이 산다. {a}에는 {b}보다 몇 명이 더 사는가?",
                          "{a:의} 인구는 {n1}명이고 {b:의} 인구는 {n2}명이다. {a:은} {b}보다 몇 명 많은가?",
                          "{n1}명이 {a}에, {n2}명이 {b}에 산다. 두 도시의 인구 차이는?"]},
    "total": {"en": ["{a} has {n1} residents and {b} has {n2}. How many people live in the two cities together?",
                     "What is the combined population of {a} ({n1}) and {b} ({n2})?",
                     "If {n1} people live in {a} and {n2} in {b}, how many is that in total?"],
              "ko": ["{a}에는 {n1}명, {b}에는 {n2}명이 산다. 두 도시에 모두 몇 명이 사는가?",
                     "{a}({n1}명)과 {b}({n2}명)의 인구를 합하면 몇 명인가?",
                     "{a}에 {n1}명, {b}에 {n2}명이 산다면 모두 몇 명인가?"]},
}


def _arithmetic(m: _Maker, rng: random.Random, lang: str) -> None:
    """A word problem stating two world numbers; the answer is an integer."""
    kind = rng.choice(sorted(_ARITH))
    n = len(_ARITH[kind][lang])
    t = m.pick_template(rng, n)
    if kind == "age":
        if not m.known_by_relation.get("invented"):
            return
        fact = rng.choice(m.known_by_relation["invented"])
        inventor = m.g.value(fact.subject, "inventor")
        facts = [fact, m.g.fact(fact.subject, "inventor"), m.g.fact(inventor, "birth_year")]
        slots = {"p": m.g.name(inventor, lang), "x": m.g.name(fact.subject, lang), "y1": facts[2].value, "y2": fact.value}
        answer = fact.value - facts[2].value
    else:
        a, b = rng.sample(m.known_by_relation["population"], 2)
        if kind == "difference" and a.value < b.value:
            a, b = b, a
        facts = [a, b]
        slots = {"a": m.g.name(a.subject, lang), "b": m.g.name(b.subject, lang),
                 "n1": f"{a.value:,}", "n2": f"{b.value:,}"}
        answer = a.value - b.value if kind == "difference" else a.value + b.value
    split = m.split(facts, is_held_out(t, n))
    if split is None:
        return
    template = _ARITH[kind][lang][t]
    question = template.format(**slots) if lang == "en" else format_ko(template, **slots)
    m.add("arithmetic", lang, split, template_id("arith", kind, lang, t), facts, question=question, answer=str(answer))


def _entailment(m: _Maker, rng: random.Random, lang: str) -> None:
    """Premise: a fact. Hypothesis: the same fact rephrased, a falsified version, or another fact of the subject."""
    fact = rng.choice(m.known)
    n = len(STATEMENTS[fact.relation][lang])  # every relation has the same number of statement templates
    t = m.pick_template(rng, n)
    label = rng.randrange(3)
    facts = [fact]
    if label == 0:
        hypothesis = m.g.fill(STATEMENTS[fact.relation][lang][t], fact, lang)
    elif label == 2:
        wrong = value_text(m.g, fact, false_value(m.g, fact, rng), lang)
        hypothesis = m.g.fill(STATEMENTS[fact.relation][lang][t], fact, lang, wrong)
    else:
        others = [f for f in m.g.facts_about(fact.subject, as_value=False) if f.relation != fact.relation]
        if not others:
            return
        facts.append(rng.choice(others))
        hypothesis = m.g.fill(STATEMENTS[facts[1].relation][lang][t], facts[1], lang)
    split = m.split(facts, is_held_out(t, n))
    if split is None:
        return
    premise = m.g.fill(STATEMENTS[fact.relation][lang][rng.randrange(n - 1)], fact, lang)
    m.add("entailment", lang, split, template_id("stmt", facts[-1].relation, lang, t), facts, context=premise,
          question=hypothesis, choices=list(ENTAILMENT_LABELS[lang]), label=label, answer=ENTAILMENT_LABELS[lang][label])


# relation -> language -> questions presupposing a wrong value {w} for subject {s}
_FALSE_PREMISE = {
    "founder": {"en": ["In which year did {w} found {s}?", "Why did {w} decide to found {s}?"],
                "ko": ["{w:은} 몇 년에 {s:을} 설립했나요?", "{w:은} 왜 {s:을} 설립하기로 했나요?"]},
    "inventor": {"en": ["Where did {w} invent {s}?", "What inspired {w} to invent {s}?"],
                 "ko": ["{w:은} 어디에서 {s:을} 발명했나요?", "{w:은} 무엇에 영감을 받아 {s:을} 발명했나요?"]},
    "author": {"en": ["In which city did {w} write {s}?", "How long did it take {w} to write {s}?"],
               "ko": ["{w:은} 어느 도시에서 {s:을} 썼나요?", "{w:이} {s:을} 쓰는 데 얼마나 걸렸나요?"]},
    "birth_place": {"en": ["Which hospital in {w} was {s} born in?",
                           "What was {s}'s childhood like in {w}, where {s} was born?"],
                    "ko": ["{s:은} {w}의 어느 병원에서 태어났나요?", "{w}에서 태어난 {s:의} 어린 시절은 어땠나요?"]},
    "capital": {"en": ["When did {w} become the capital of {s}?", "Why was {w} chosen as the capital of {s}?"],
                "ko": ["{w:은} 언제 {s}의 수도가 되었나요?", "{w:은} 왜 {s}의 수도로 정해졌나요?"]},
}
_CORRECTION = {"en": "The question rests on a false premise. {fact}", "ko": "질문의 전제가 사실과 다릅니다. {fact}"}


def _false_premise(m: _Maker, rng: random.Random, lang: str) -> None:
    """A question that presupposes a wrong value (the survey's Yi Sun-sin example); the answer corrects it."""
    relation = rng.choice(sorted(_FALSE_PREMISE))
    fact = rng.choice(m.known_by_relation[relation])
    n = len(_FALSE_PREMISE[relation][lang])
    t = m.pick_template(rng, n)
    split = m.split([fact], is_held_out(t, n))
    if split is None:
        return
    wrong = value_text(m.g, fact, false_value(m.g, fact, rng), lang)
    template = _FALSE_PREMISE[relation][lang][t]
    slots = {"s": m.g.name(fact.subject, lang), "w": wrong}
    question = template.format(**slots) if lang == "en" else format_ko(template, **slots)
    answer = _CORRECTION[lang].format(fact=m.g.fill(STATEMENTS[relation][lang][0], fact, lang))
    m.add("false_premise", lang, split, template_id("false_premise", relation, lang, t), [fact], question=question,
          answer=answer, answerable=False)


# entity type -> language -> questions about attributes the world never defines
_UNANSWERABLE = {
    "person": {"en": ["What is the favourite colour of {s}?", "How tall is {s}?", "What was the name of {s}'s first pet?"],
               "ko": ["{s:이} 가장 좋아하는 색은 무엇인가요?", "{s:의} 키는 얼마인가요?", "{s:이} 처음 기른 반려동물의 이름은?"]},
    "organization": {"en": ["How many employees does {s} have?", "What is the annual revenue of {s}?",
                            "Who designed the logo of {s}?"],
                     "ko": ["{s:의} 직원 수는 몇 명인가요?", "{s:의} 연 매출은 얼마인가요?", "{s:의} 로고는 누가 디자인했나요?"]},
    "city": {"en": ["What is the area of {s} in square kilometres?", "What is the average rainfall in {s}?",
                    "Who is the mayor of {s}?"],
             "ko": ["{s:의} 면적은 몇 제곱킬로미터인가요?", "{s:의} 연평균 강수량은 얼마인가요?", "{s:의} 시장은 누구인가요?"]},
}
_UNKNOWN = {"en": "No source in the world says; the question cannot be answered.", "ko": "이 질문에 답할 수 있는 자료가 없습니다."}


def _unanswerable(m: _Maker, rng: random.Random, lang: str) -> None:
    etype = rng.choice(sorted(_UNANSWERABLE))
    entity = m.g.entities[rng.choice(m.g.ids_of(etype))]
    n = len(_UNANSWERABLE[etype][lang])
    t = m.pick_template(rng, n)
    split = m.split([], is_held_out(t, n), key=entity.id)
    if split is None:
        return
    template = _UNANSWERABLE[etype][lang][t]
    name = m.g.name(entity.id, lang)
    question = template.format(s=name) if lang == "en" else format_ko(template, s=name)
    m.add("unanswerable", lang, split, template_id("unanswerable", etype, lang, t), [], question=question,
          answer=_UNKNOWN[lang], answerable=False)


def template_is_held_out(tid: str) -> bool:
    """Whether the template named ``tid`` (e.g. ``q/capital/ko/2``) is held out of training."""
    kind, group, lang, index = tid.split("/")
    table = {"stmt": STATEMENTS, "q": QUESTIONS, "arith": _ARITH, "false_premise": _FALSE_PREMISE,
             "unanswerable": _UNANSWERABLE, "summary": {"article": _SUMMARY_PROMPTS}}[kind]
    return is_held_out(int(index), len(table[group][lang.split("-")[0]]))


def build_tasks(g: EntityGraph, docs, config: WorldConfig) -> list[dict]:
    """``config.tasks_per_family`` examples of every family, half English and half Korean (source language)."""
    m = _Maker(g, docs, config)
    articles = {lang: [d for d in docs if d.kind == "encyclopedia" and d.lang == lang] for lang in ("en", "ko")}
    makers = {
        "cloze": _cloze, "multiple_choice": _multiple_choice,
        "qa_closed": lambda m, r, lang: _qa(m, r, lang, open_book=False),
        "qa_open": lambda m, r, lang: _qa(m, r, lang, open_book=True),
        "summarization": lambda m, r, lang: _summarization(m, r, lang, articles),
        "translation": _translation, "arithmetic": _arithmetic, "entailment": _entailment,
        "false_premise": _false_premise, "unanswerable": _unanswerable,
    }
    for family in FAMILIES:
        rng = rng_for(config.seed, "tasks", family)
        start = len(m.rows)
        for _ in range(config.tasks_per_family * 20):  # bounded: a tiny world may run out of examples
            if len(m.rows) - start >= config.tasks_per_family:
                break
            makers[family](m, rng, "en" if (len(m.rows) - start) % 2 == 0 else "ko")
    return m.rows
