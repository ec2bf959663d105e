"""Chapter 10's RAG: the reading-exercise prompt with ids, fitting the reader's context, citations, bad input, tables."""

import pytest

from course_lib import zoo
from course_lib.instruction.clusters import SYSTEM
from course_lib.instruction.instruct import READ
from course_lib.retrieval import QueryError, SparseRetriever, eval_queries, world_corpus
from course_lib.retrieval import rag as rag_module
from course_lib.retrieval.rag import RAG, clean, hallucination_table, is_correct, premise_questions

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(ci):
    return world_corpus(ci)


@pytest.fixture(scope="module")
def reader(ci):
    return zoo.get("instruct", ci)


@pytest.fixture(scope="module")
def rag(corpus, reader):
    return RAG(SparseRetriever(corpus), corpus, reader.model, reader.tokenizer, k=5)


def test_prompt_is_a_reading_exercise_with_ids(rag):
    messages = rag.messages("Who organized X?", "en", [("news-1", "Title\n\nBody one.\n"), ("web-2", "Two.")])
    assert messages == [{"role": "system", "content": SYSTEM["en"]},
                        {"role": "user", "content": f"{READ['en']}\n[news-1] Title Body one.\n[web-2] Two.\nWho organized X?"}]


def test_overflow_drops_the_lowest_ranked_passages(rag):
    question, lang = "Where was Dapuda born?", "en"
    passages = [(f"p{i}", f"Person {i} was born in Gego in {1950 + i}.") for i in range(12)]
    budget = rag.context - rag.max_new_tokens
    assert rag.tokens(rag.messages(question, lang, passages)) > budget  # all twelve overflow ci's 128 tokens
    messages, dropped, truncated = rag.fit(question, lang, passages)
    kept = 12 - dropped
    assert 1 <= kept < 12 and not truncated
    assert messages == rag.messages(question, lang, passages[:kept])  # the best ones, in order
    assert rag.tokens(messages) <= budget < rag.tokens(rag.messages(question, lang, passages[: kept + 1]))


def test_a_passage_too_long_alone_is_cut(rag):
    long = " ".join(["Dapuda was born in Gego."] * 200)
    messages, dropped, truncated = rag.fit("Where was Dapuda born?", "en", [("p1", long), ("p2", "short")])
    assert truncated and dropped == 1
    assert rag.tokens(messages) <= rag.context - rag.max_new_tokens
    assert "[p1] Dapuda was born in Gego." in messages[1]["content"]


def test_answers_cite_the_passages_that_hold_them(rag, corpus, monkeypatch):
    pid = next(i for i, t in zip(corpus.ids, corpus.texts) if i.startswith("news"))
    other = next(i for i, t in zip(corpus.ids, corpus.texts) if i.startswith("code"))
    city = corpus.texts[corpus.ids.index(pid)].split("\n\n")[1].split(",")[0]  # the news dateline's city
    monkeypatch.setattr(rag_module, "chat_answers", lambda model, tok, prompts, **kw: [f"{city}. [x-1]"] * len(prompts))
    (answer,) = rag.read(["Where?"], ["en"], [[other, pid]])
    assert answer.passages == [other, pid][: 2 - answer.dropped]
    assert answer.answer == city
    assert answer.cited == [p for p in answer.passages if city in corpus.texts[corpus.ids.index(p)]]
    assert pid not in answer.passages or pid in answer.cited
    assert answer.with_citations() == (f"{city} [{', '.join(answer.cited)}]" if answer.cited else city)


def test_rag_answers_end_to_end(ci, rag, corpus):
    queries = eval_queries(ci, corpus)[:4]
    answers = rag.answer_many([q["question"] for q in queries], [q["lang"] for q in queries])
    for a, q in zip(answers, queries):
        assert a.retrieved and len(a.retrieved) == 5 and a.passages == [p for p, _ in a.retrieved][: len(a.passages)]
        assert a.dropped == 5 - len(a.passages) and set(a.cited) <= set(a.passages)
        assert rag.tokens(rag.messages(q["question"], q["lang"], [])) < rag.context


def test_post_cutoff_news_is_retrievable_not_pretrained(ci, corpus):
    from course_lib.world import load

    docs = {d["id"]: d for d in load("documents", ci)}
    late = [q for q in eval_queries(ci, corpus) if q["after_cutoff"]]
    assert late
    assert all(docs[p]["kind"] == "news" and not docs[p]["in_pretraining"] for q in late for p in q["relevant"])


def test_bad_input_is_named(rag, corpus, reader):
    for query in ("", "  \n"):
        with pytest.raises(QueryError, match="empty query"):
            rag.answer(query)
    for k in (0, len(corpus) + 1):
        with pytest.raises(QueryError, match=f"k={k} is outside 1..{len(corpus)}"):
            RAG(rag.retriever, corpus, reader.model, reader.tokenizer, k=k)
    with pytest.raises(QueryError, match="the question alone is longer than the reader's context"):
        rag.fit("born " * 200, "en", [])
    with pytest.raises(QueryError, match="leaves no room for a prompt"):
        RAG(rag.retriever, corpus, reader.model, reader.tokenizer, max_new_tokens=rag.context)


def test_exact_match_and_hallucination_by_hand(ci):
    assert clean(" Gego [news-1]. ") == "Gego" and is_correct("Gego.", "Gego") and not is_correct("Gego city", "Gego")
    questions = [{"task": "false_premise", "lang": "en"}, {"task": "unanswerable", "lang": "ko"},
                 {"task": "unanswerable", "lang": "en"}]
    replies = {"closed_book": ["1977", "무디", "Gego"],
               "rag": ["The question rests on a false premise. X", "이 질문에 답할 수 있는 자료가 없습니다.", "Gego"]}
    table = hallucination_table(replies, questions)
    assert table["closed_book"]["all"]["mean"] == 1.0
    assert table["rag"]["all"]["mean"] == pytest.approx(1 / 3)
    assert table["rag"]["false_premise"]["mean"] == 0.0 and table["rag"]["unanswerable"]["mean"] == 0.5
    rows = premise_questions(ci)
    assert rows and {r["task"] for r in rows} == {"false_premise", "unanswerable"}
