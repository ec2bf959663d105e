"""QASA (Lee et al., ICML 2023): question answering as three inspectable steps over retrieved passages.

1. **Associative selection** (연관 선택): score each retrieved passage by how much of the
   question it covers and keep those above ``select_threshold``. Coverage is weighted by
   BM25's IDF, so a rare name counts for more than "was"; a question word (which, 어디, ...)
   counts for nothing. When the kept passages leave part of the question uncovered, the
   pipeline *associates*: it searches again with the words its evidence brought in (the
   city a person was born in) and the question's uncovered words ("country"), which is how
   a second passage joins the first (two hops, ``hops``).
2. **Evidential rationale generation** (근거 생성): one evidence statement per kept passage,
   tagged with its id: the passage's sentence that covers most of the question (and, on
   the second hop, of the words that led there). QASA has a large model write rationales;
   the course's 1.3M-parameter reader cannot write one, so the statement is the passage's
   own sentence, extracted: an honest simplification that keeps each step checkable.
3. **Systematic composition** (체계적 구성): one answer from the rationales. The reader
   reads them as a reading exercise (``[id] sentence`` lines, then the question); the
   answer cites the rationales that hold it. When a *rare* term of the question is in none
   of the rationales, the evidence does not speak of what the question assumes (a founder
   it invents, a city it misplaces), and the pipeline declines in the world's own words
   instead of letting the reader guess: this is where QASA hallucinates less than plain
   RAG. Rare: at most ``rare_share`` of the passages contain it (a name, a year), or none
   does ("favourite colour"), and it is not the vocabulary of questions
   (:func:`question_vocabulary`: "country" is rare in passages, which say "a city in X",
   but a word of questions). One-character terms are left out: Kiwi splits some invented
   names into pieces.

Ablations (``Qasa.answer_many`` flags): ``select=False`` keeps every retrieved passage
(no threshold, no second hop); ``rationales=False`` composes from the kept passages
whole, so fewer fit the reader's context. :func:`render_html` shows an answer with its
per-passage evidence, for the notebook.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import numpy as np

from ..world import build_world
from ..world.hangul import format_ko
from ..world.templates import COMPOSED
from ..world.tasks import _UNKNOWN
from .bm25 import SparseRetriever
from .corpus import Corpus, _passages_by_fact, check_query
from .rag import RAG, clean
from .tokens import tokenize

# question words and English function words: they say nothing about which passage is relevant
QUESTION_WORDS = {"what", "which", "who", "whom", "whose", "where", "when", "why", "how", "did", "does", "do",
                  "the", "a", "an", "of", "in", "on", "at", "to", "by", "for", "and", "is", "was", "are", "were",
                  "어디", "언제", "누구", "무엇", "몇", "어느", "어떤", "어떻", "무슨", "얼마"}
# sentence ends, line ends, and a news dateline's end ("Gego, May 3, 2025 - ", "[게고=2025년 5월 3일] ")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|(?<=\d{4}) - |(?<=일\])\s+")
_ASKING = re.compile(r"(Q|Question|문|문제|질문)\s*[:.]")  # a quiz line that asks


@dataclass
class Selection:
    """A retrieved passage and its association score (IDF-weighted share of the terms it covers); ``hop`` 1 or 2."""

    pid: str
    score: float
    kept: bool
    hop: int = 1


@dataclass
class Rationale:
    """One evidence statement from one kept passage."""

    pid: str
    text: str
    score: float


@dataclass
class QasaAnswer:
    question: str
    lang: str
    selection: list[Selection]
    rationales: list[Rationale]
    coverage: float  # IDF-weighted share of the question's terms that the evidence covers
    reply: str
    declined: bool
    cited: list[str] = field(default_factory=list)
    dropped: int = 0  # evidence left out of the composition prompt to fit the reader's context

    @property
    def answer(self) -> str:
        return clean(self.reply)


class Qasa:
    """The three steps over ``rag``'s retriever and reader; ``sparse`` (BM25) supplies IDF and the second hop."""

    def __init__(self, rag: RAG, sparse: SparseRetriever, *, select_threshold: float = 0.5,
                 rare_share: float = 0.01, keep: int = 3, hops: int = 2, bridges: int = 8,
                 question_vocab=frozenset(), margin: float = 0.0, hop_share: float = 1 / 3,
                 ties: int = 3):
        if (not 0 <= select_threshold <= 1 or not 0 < rare_share < 1 or keep < 1 or hops not in (1, 2) or bridges < 1
                or not 0 <= hop_share <= 1 or ties < 1):
            raise ValueError(f"QASA needs 0 <= select_threshold <= 1, 0 < rare_share < 1, keep >= 1, hops 1 or 2, "
                             f"bridges >= 1, 0 <= hop_share <= 1 and ties >= 1; got {select_threshold}, {rare_share}, "
                             f"{keep}, {hops}, {bridges}, {hop_share}, {ties}")
        self.rag, self.sparse, self.bridges, self.question_vocab = rag, sparse, bridges, frozenset(question_vocab)
        self.margin, self.hop_share, self.ties = margin, hop_share, ties
        self.select_threshold, self.keep, self.hops = select_threshold, keep, hops
        self.rare_idf = float(np.log1p((sparse.bm25.n_docs - rare_share * sparse.bm25.n_docs + 0.5)
                                       / (rare_share * sparse.bm25.n_docs + 0.5)))  # the IDF of a term that rare
        bm = sparse.bm25
        self.unseen_idf = float(np.log1p((bm.n_docs + 0.5) / 0.5))  # a word no passage has: rarest of all

    # ------------------------------------------------------------------ weights
    def terms(self, text: str, lang: str) -> dict[str, float]:
        """The content terms of ``text`` with their IDF (question words weigh nothing)."""
        vocab, idf = self.sparse.bm25.vocab, self.sparse.bm25.idf
        return {t: float(idf[vocab[t]]) if t in vocab else self.unseen_idf
                for t in tokenize(text, lang, self.sparse.ko) if t not in QUESTION_WORDS}

    def coverage(self, terms: dict[str, float], text: str, lang: str) -> float:
        """The IDF-weighted share of ``terms`` that ``text`` contains (1.0 when there are no terms)."""
        total = sum(terms.values())
        if not total:
            return 1.0
        have = set(tokenize(text, lang, self.sparse.ko))
        return sum(w for t, w in terms.items() if t in have) / total

    def missing(self, question: str, lang: str, evidence: str) -> list[str]:
        """The question's rare terms that ``evidence`` does not contain (as a substring, lower-cased: Kiwi may
        split an invented name in a question otherwise than in a passage)."""
        text = evidence.lower()
        return [t for t, w in self.terms(question, lang).items()
                if w >= self.rare_idf and len(t) > 1 and (w == self.unseen_idf or t not in self.question_vocab)
                and t not in text]

    # ------------------------------------------------------------------ step 1: associative selection
    def subject(self, terms: dict[str, float]) -> dict[str, float]:
        """The terms that say what the question is *about* (a name, a title): those that are not words of
        questions (:func:`question_vocabulary`: "country", "born", "organized")."""
        return {t: w for t, w in terms.items() if t not in self.question_vocab}

    def select(self, terms: dict[str, float], lang: str, ranking, *, hop: int = 1, threshold: float | None = None,
               exclude=(), about=()) -> list[Selection]:
        """Every passage of ``ranking`` scored by coverage of ``terms``; the best ``keep`` above the threshold kept.
        With ``about``, a passage that lacks one of those terms is not relevant (scored, never kept)."""
        threshold = self.select_threshold if threshold is None else threshold
        scored = [Selection(pid, self.coverage(terms, self.rag.text[pid], lang), False, hop)
                  for pid, _ in ranking if pid not in exclude]
        names = [t for t in about if len(t) > 1]  # as substrings: Kiwi may split a name otherwise in a passage
        relevant = [s for s in scored if all(t in self.rag.text[s.pid].lower() for t in names)]
        for s in sorted(relevant, key=lambda s: -s.score)[: self.keep]:
            s.kept = s.score >= threshold or bool(names) and self.hops > 1 and all(
                t in self.rag.text[s.pid].lower() for t in names)  # about the whole subject: the rest is a hop away
        return scored

    # ------------------------------------------------------------------ step 2: evidential rationales
    def statements(self, pid: str) -> list[str]:
        """The sentences of passage ``pid`` that state something: a question (a quiz's, a forum's) is not evidence."""
        return [s.strip() for s in _SENTENCE.split(self.rag.text[pid])
                if s.strip() and not s.strip().endswith("?") and not _ASKING.match(s.strip())]

    def rationale(self, terms: dict[str, float], pid: str, lang: str, must: str | None = None) -> Rationale:
        """The statement of passage ``pid`` that covers most of ``terms``; with ``must``, only statements that
        contain that term count (a second hop's evidence names its bridge). When statements tie, the first
        ``ties`` of them in passage order, joined: "X took place in Gego." and "X began on May 2." cover "When
        did X take place?" alike, and coverage cannot tell which one answers."""
        sentences = self.statements(pid) or [self.rag.text[pid].strip()]
        scores = [self.coverage(terms, s, lang) if must is None or must in tokenize(s, lang, self.sparse.ko) else -1.0
                  for s in sentences]
        best = max(scores)
        tied = [s for s, score in zip(sentences, scores) if score == best][: self.ties]
        return Rationale(pid, " ".join(tied), best)

    # ------------------------------------------------------------------ the pipeline
    def evidence(self, question: str, lang: str, ranking, *, select: bool = True) -> tuple[list[Selection],
                                                                                            list[Rationale]]:
        """Steps 1 and 2 for one question: the scored passages (both hops) and one rationale per kept passage."""
        terms = self.terms(question, lang)
        about = self.subject(terms) if select else {}
        if about:  # associate: the passages about the question's subject join what the question itself retrieved
            ranking = list(dict.fromkeys([pid for pid, _ in ranking] + [
                pid for pid, _ in self.sparse.search(" ".join(about), self.rag.k, lang)]).items())
        selection = self.select(terms, lang, ranking, threshold=None if select else -1.0, about=about)
        if not select:
            for s in selection:
                s.kept = True
        rationales = [self.rationale(terms, s.pid, lang) for s in selection if s.kept]
        if select and rationales:  # keep the passages whose evidence is (nearly) the best: a weak one only distracts
            best = max(r.score for r in rationales)
            weak = {r.pid for r in rationales if r.score < best - self.margin}
            rationales = [r for r in rationales if r.pid not in weak]
            for s in selection:
                s.kept = s.kept and s.pid not in weak
        if select and self.hops > 1 and rationales:
            selection, rationales = self.associate(terms, lang, selection, rationales)
        return selection, rationales

    def bridges_from(self, terms: dict[str, float], lang: str, passages: list[str]) -> list[tuple]:
        """Candidate bridges, rarest first: (IDF, term, pid, statement) for each term that a statement of
        ``passages`` about the question's subject brings in beside the question's own ("Peomi He was born in
        1933", "Peomi He was born in Bonmyom", "Peomi He worked at Ronsanna Press"). A number (a year, a
        count) is never a bridge: it names nothing a second passage is about."""
        found, about = {}, [t for t in self.subject(terms) if len(t) > 1]
        for pid in passages:
            for sentence in self.statements(pid):
                if not all(t in sentence.lower() for t in about):
                    continue
                for t, w in self.terms(sentence, lang).items():
                    if t not in terms and len(t) > 1 and not any(ch.isdigit() for ch in t) and t not in found:
                        found[t] = (w, t, pid, sentence)
        return sorted(found.values(), key=lambda b: (-b[0], b[1]))

    def associate(self, terms: dict[str, float], lang: str, selection: list[Selection],
                  rationales: list[Rationale]) -> tuple[list[Selection], list[Rationale]]:
        """The second hop: when the evidence leaves at least ``hop_share`` of the question's weight uncovered,
        search for the uncovered terms with each bridge (the ``bridges`` rarest of :meth:`bridges_from`, over
        the passages kept and those that scored as well but did not fit ``keep``), and keep one passage that
        holds the bridge and an uncovered term: the one whose statement of the bridge covers most of what is
        searched, then a passage *about* the bridge (its title names it). No coverage threshold here: what the
        second passage must say ("country") is a word of questions that statements rarely use ("a city in X").
        That statement is its rationale; the first hop's rationale becomes the statement that brought the
        bridge in (its passage joins the evidence if it was not kept)."""
        have = set(tokenize(" ".join(r.text for r in rationales), lang, self.sparse.ko))
        uncovered = {t: w for t, w in terms.items() if t not in have}
        if sum(uncovered.values()) < self.hop_share * sum(terms.values()):  # the evidence answers (nearly) all
            return selection, rationales
        seen, best = {s.pid for s in selection if s.kept}, None
        passages = list(dict.fromkeys([r.pid for r in rationales] + [
            s.pid for s in selection if s.hop == 1 and s.score >= max(self.select_threshold, rationales[0].score
                                                                       - self.margin - 1e-9)]))
        for w, bridge, pid, sentence in self.bridges_from(terms, lang, passages)[: self.bridges]:
            wanted = uncovered | {bridge: w}
            found = dict(self.sparse.search(" ".join(wanted), self.rag.k, lang))  # the bridge with the rest, and alone
            found |= {p: v for p, v in self.sparse.search(bridge, self.rag.k, lang) if p not in found}
            for s in self.select(wanted, lang, list(found.items()), hop=2, exclude=seen | {pid}, threshold=0.0):
                tokens = set(tokenize(self.rag.text[s.pid], lang, self.sparse.ko))
                if not (bridge in tokens and tokens & set(uncovered)):
                    continue
                s.kept = True
                second = self.rationale(wanted, s.pid, lang, must=bridge)
                title = set(tokenize(self.rag.text[s.pid].split("\n", 1)[0], lang, self.sparse.ko))
                rank = (second.score, bridge in title, s.score)
                if best is None or rank > best[0]:
                    best = (rank, s, second, pid, sentence)
        if best is None:
            return selection, rationales
        _, found, second, pid, sentence = best
        first = Rationale(pid, sentence, self.coverage(terms, sentence, lang))
        if pid in {r.pid for r in rationales}:
            rationales = [first if r.pid == pid else r for r in rationales]
        else:
            rationales = [first] + rationales
            for s in selection:
                s.kept = s.kept or s.pid == pid
        return selection + [found], rationales + [second]

    def answer_many(self, questions: list[str], langs: list[str], *, select: bool = True, rationales: bool = True,
                    batch_size: int = 32) -> list[QasaAnswer]:
        """The three steps for each question; ``select``/``rationales`` False are the ablations."""
        for q in questions:
            check_query(q)
        rankings = self.rag.retriever.search_many(questions, self.rag.k, langs)
        out, ask = [], []
        for q, lang, ranking in zip(questions, langs, rankings, strict=True):
            selection, evidence = self.evidence(q, lang, ranking, select=select)
            kept = list(dict.fromkeys(r.pid for r in evidence))
            shown = " ".join(r.text for r in evidence) if rationales else " ".join(self.rag.text[p] for p in kept)
            coverage = self.coverage(self.terms(q, lang), shown, lang) if evidence else 0.0
            declined = select and bool(self.missing(q, lang, shown) if evidence else True)
            out.append(QasaAnswer(q, lang, selection, evidence, coverage, _UNKNOWN[lang] if declined else "", declined))
            if not declined:
                ask.append((len(out) - 1, kept, [r.text for r in evidence] if rationales else None))
        if ask:
            read = self.rag.read([out[i].question for i, _, _ in ask], [out[i].lang for i, _, _ in ask],
                                 [ids if texts is None else [r.pid for r in out[i].rationales] for i, ids, texts in ask],
                                 passage_texts=[texts if texts is not None else [self.rag.text[p] for p in ids]
                                                for _, ids, texts in ask], batch_size=batch_size)
            for (i, _, texts), a in zip(ask, read):
                out[i].reply, out[i].dropped = a.reply, a.dropped
                n = len(a.passages)  # what the prompt showed: the best n, the rest dropped to fit
                shown = texts[:n] if texts is not None else [self.rag.text[p] for p in a.passages]
                pids = [r.pid for r in out[i].rationales][:n] if texts is not None else a.passages
                out[i].cited = list(dict.fromkeys(p for p, t in zip(pids, shown) if out[i].answer and out[i].answer in t))
        return out


def question_vocabulary(ko: str = "morpheme") -> set[str]:
    """The words of the world's fact questions: every term of its question templates (``templates.QUESTIONS``,
    both languages) once the slots are emptied. "country" is one; no name is."""
    from ..world.templates import QUESTIONS

    out: set[str] = set()
    for by_lang in [*QUESTIONS.values(), *COMPOSED.values()]:
        for lang, phrasings in by_lang.items():
            for template in phrasings:
                out |= set(tokenize(re.sub(r"\{[^}]*\}", " ", template), lang, ko))
    return out


def render_html(answer: QasaAnswer) -> str:
    """The answer, its citations and the evidence per passage (kept or not, with scores) as an HTML fragment."""
    e = html.escape
    rows = []
    by_pid = {r.pid: r for r in answer.rationales}
    for s in answer.selection:
        evidence = by_pid.get(s.pid)
        mark = "cited" if s.pid in answer.cited else "kept" if s.kept else "dropped"
        rows.append(f"<tr class='{mark}'><td>{e(s.pid)}</td><td>{s.hop}</td><td>{s.score:.2f}</td><td>{mark}</td>"
                    f"<td>{e(evidence.text) if evidence else ''}</td></tr>")
    cites = "".join(f" <sup>[{e(p)}]</sup>" for p in answer.cited)
    status = "declined: the evidence does not speak of the question's rare terms" if answer.declined else "answered"
    return (f"<div class='qasa'><p><b>Q:</b> {e(answer.question)}</p>"
            f"<p><b>A:</b> {e(answer.reply)}{cites} <i>({status}; coverage {answer.coverage:.2f})</i></p>"
            "<table><tr><th>passage</th><th>hop</th><th>association</th><th>step 1</th><th>evidence (step 2)</th></tr>"
            + "".join(rows) + "</table></div>")



# the two-passage questions ask the held-out last phrasing of world.templates.COMPOSED (instruct trains on the others)
MULTI = {kind: {lang: phrasings[-1] for lang, phrasings in by_lang.items()} for kind, by_lang in COMPOSED.items()}


def multi_passage_questions(cfg, corpus: Corpus, n_per_kind: int = 40) -> list[dict]:
    """Questions that need two passages, from the world's facts, in both languages.

    ``birth_country``: a person's birthplace (first passage) and that city's country (second);
    ``inventor_birthplace``: an invention's inventor, as the paper abstracts revisiting it
    say (first), and where that person was born (second). Only inventions some paper
    revisits, and only where no passage states both facts. Rows: ``id``, ``kind``, ``lang``, ``question``, ``answer``, ``hops`` (two lists
    of passage ids, one per fact, same language), at most ``n_per_kind`` per kind and language.
    """
    from ..world import load

    world = build_world(cfg.world)
    g = world.graph
    docs = load("documents", cfg)
    support = _passages_by_fact(corpus, docs)
    papers = {f for d in docs if d["kind"] == "paper" for f in d["fact_ids"]}
    rows = []
    for kind in MULTI:
        for lang in ("en", "ko"):
            count = 0
            subjects = sorted(g.ids_of("person" if kind == "birth_country" else "invention"))
            for subject in subjects:
                first = g.fact(subject, "birth_place" if kind == "birth_country" else "inventor")
                if first is None or (kind == "inventor_birthplace" and first.id not in papers):
                    continue
                second = g.fact(first.value, "country" if kind == "birth_country" else "birth_place")
                hops = [support.get((f.id, lang), []) if f else [] for f in (first, second)]
                if second is None or not all(hops) or set(hops[0]) & set(hops[1]) or count >= n_per_kind:
                    continue
                template, name = MULTI[kind][lang], g.name(subject, lang)
                question = template.format(s=name) if lang == "en" else format_ko(template, s=name)
                rows.append({"id": f"{kind}/{lang}/{subject}", "kind": kind, "lang": lang, "question": question,
                             "answer": g.name(second.value, lang), "hops": hops})
                count += 1
    return rows
