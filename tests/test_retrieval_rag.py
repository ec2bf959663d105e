"""Chapter 10's RAG: the reading-exercise prompt with ids, fitting the reader's context, citations, bad input, tables."""

import pytest

from course_lib import zoo
from course_lib.instruction.clusters import SYSTEM
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
                        {"role": "user", "content": "Read the passage and answer the question.\n\nPassage: [news-1] "
                                                    "Title Body one.\n[web-2] Two.\n\nQuestion: Who organized X?"}]
    ko = rag.messages("X는?", "ko", [("p", "본문.")])[1]["content"]
    assert ko == "지문을 읽고 질문에 답하세요.\n\n지문: [p] 본문.\n\n질문: X는?"


def test_overflow_drops_the_lowest_ranked_passages(corpus, reader):
    rag = RAG(SparseRetriever(corpus), corpus, reader.model, reader.tokenizer, max_new_tokens=8)  # ci: 128 tokens
    question, lang = "Where was Dapuda born?", "en"
    passages = [(f"p{i}", f"Person {i} was born in Gego in {1950 + i}.") for i in range(12)]
    budget = rag.context - rag.max_new_tokens
    assert rag.tokens(rag.messages(question, lang, passages)) > budget  # all twelve overflow ci's 128 tokens
    messages, dropped, truncated = rag.fit(question, lang, passages)
    kept = 12 - dropped
    assert 1 <= kept < 12 and not truncated
    assert messages == rag.messages(question, lang, passages[:kept])  # the best ones, in order
    assert rag.tokens(messages) <= budget < rag.tokens(rag.messages(question, lang, passages[: kept + 1]))


def test_a_passage_too_long_alone_is_cut(corpus, reader):
    rag = RAG(SparseRetriever(corpus), corpus, reader.model, reader.tokenizer, max_new_tokens=8)
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


# --------------------------------------------------------------------------- QASA


def tiny_qasa(reader, texts: dict[str, str], **settings):
    """QASA over an English corpus of ``texts`` (id -> text); tests that read patch the reader."""
    from course_lib.retrieval import Corpus
    from course_lib.retrieval.qasa import Qasa, question_vocabulary

    corpus = Corpus(tuple(texts), tuple(texts.values()), ("en",) * len(texts))
    sparse = SparseRetriever(corpus)
    rag = RAG(sparse, corpus, reader.model, reader.tokenizer, k=3, context=512)
    return Qasa(rag, sparse, select_threshold=0.4, rare_share=0.3, keep=2, question_vocab=question_vocabulary(),
                **settings)


@pytest.fixture(scope="module")
def tiny(reader):
    return tiny_qasa(reader, {"bio": "Dapuda Ron was born in Gego. Dapuda Ron was born in the year 1950.",
                              "city": "Gego is a city in Kolan. Gego was founded in 1801.",
                              "org": "Tajen University was founded by Mira Son.",
                              "news": "Jujol Marathon 2025 took place in Gego. It was organized by Tajen University.",
                              "other": "Bria is a city in Nijol.",
                              "filler": "The weather was mild and the harbor was quiet.",
                              "coast": "Kolan is a country with a long coast."})


def test_selection_scores_by_idf_weighted_coverage(tiny):
    terms = tiny.terms("Who organized Jujol Marathon 2025?", "en")
    assert "who" not in terms and set(terms) == {"organized", "jujol", "marathon", "2025"}
    assert tiny.coverage(terms, "Jujol Marathon 2025 was organized by X.", "en") == 1.0
    part = tiny.coverage(terms, "The Jujol games.", "en")
    assert part == pytest.approx(terms["jujol"] / sum(terms.values()))
    ranking = [("news", 3.0), ("org", 1.0), ("filler", 0.5)]
    selection = tiny.select(terms, "en", ranking)
    assert [s.kept for s in selection] == [True, False, False]  # org and filler cover < half of the question


def test_two_hops_and_one_rationale_per_kept_passage(tiny):
    question = "In which country is the city where Dapuda Ron was born?"
    ranking = tiny.sparse.search(question, 3, "en")
    selection, rationales = tiny.evidence(question, "en", ranking)
    assert (rationales[0].pid, rationales[0].text) == ("bio", "Dapuda Ron was born in Gego.")
    assert rationales[-1].pid == "city" and rationales[-1].text == "Gego is a city in Kolan."  # the bridge: Gego
    assert [(s.hop, s.kept) for s in selection if s.pid == "city"] in ([(2, True)], [(1, False), (2, True)])
    assert len({r.pid for r in rationales}) == len(rationales) == sum(s.kept for s in selection)


def test_the_second_hop_bridges_from_the_statement_that_names_a_place(reader):
    """The first statement about the person is a year; a quiz asks the country: neither is the evidence."""
    qasa = tiny_qasa(reader, {"bio": "Dapuda Ron\n\nDapuda Ron was born in the year 1950. Dapuda Ron was born in Gego.",
                              "quiz": "Question: Which country is the city of Gego in?\nAnswer below.",
                              "city": "Gego\n\nThe city of Gego belongs to Kolan. Gego was founded in 1801.",
                              "fair": "Sembo Fair 1950 took place in Bria.", "other": "Bria is a city in Nijol.",
                              "filler": "The weather was mild and the harbor was quiet."}, hop_share=0.25)
    sparse = qasa.sparse
    assert qasa.statements("quiz") == ["Answer below."]  # a question is not evidence
    question = "In which country is the city where Dapuda Ron was born?"
    assert set(qasa.subject(qasa.terms(question, "en"))) == {"dapuda", "ron"}
    bridges = [b[1] for b in qasa.bridges_from(qasa.terms(question, "en"), "en", ["bio"])]
    assert "gego" in bridges and "1950" not in bridges  # a year names nothing a passage is about
    _, rationales = qasa.evidence(question, "en", sparse.search(question, 3, "en"))
    assert [(r.pid, r.text) for r in rationales] == [("bio", "Dapuda Ron was born in Gego."),
                                                     ("city", "The city of Gego belongs to Kolan.")]


def test_qasa_declines_what_no_evidence_speaks_of(tiny, monkeypatch):
    from course_lib.world.tasks import _UNKNOWN

    monkeypatch.setattr(rag_module, "chat_answers", lambda model, tok, prompts, **kw: ["Kolan"] * len(prompts))
    unknown, answered = tiny.answer_many(["What is the favourite colour of Dapuda Ron?",
                                          "In which country is the city where Dapuda Ron was born?"], ["en", "en"])
    assert unknown.declined and unknown.reply == _UNKNOWN["en"] and not unknown.cited
    assert tiny.missing(unknown.question, "en", "Dapuda Ron was born in Gego.") == ["favourite", "colour"]
    assert not answered.declined and answered.answer == "Kolan" and answered.cited == ["city"]
    # the ablations: no selection keeps every retrieved passage and never declines; no rationales reads passages whole
    (no_select,) = tiny.answer_many(["What is the favourite colour of Dapuda Ron?"], ["en"], select=False)
    assert not no_select.declined and all(s.kept for s in no_select.selection) and len(no_select.selection) == 3
    (whole,) = tiny.answer_many(["In which country is the city where Dapuda Ron was born?"], ["en"], rationales=False)
    assert whole.cited == ["city"] and whole.reply == "Kolan"


def test_qasa_bad_input_is_named(tiny):
    from course_lib.retrieval.qasa import Qasa

    for query in ("", " \t"):
        with pytest.raises(QueryError, match="empty query"):
            tiny.answer_many([query], ["en"])
    with pytest.raises(ValueError, match="0 <= select_threshold <= 1"):
        Qasa(tiny.rag, tiny.sparse, select_threshold=1.5)
    with pytest.raises(ValueError, match="keep >= 1"):
        Qasa(tiny.rag, tiny.sparse, keep=0)


def test_render_html_shows_answer_and_evidence(tiny, monkeypatch):
    from course_lib.retrieval.qasa import render_html

    monkeypatch.setattr(rag_module, "chat_answers", lambda model, tok, prompts, **kw: ["Kolan"] * len(prompts))
    (a,) = tiny.answer_many(["In which country is the city where Dapuda Ron was born?"], ["en"])
    a.reply += " <b>"
    page = render_html(a)
    assert "Kolan &lt;b&gt;" in page and "<td>Gego is a city in Kolan.</td>" in page
    assert page.count("<tr class=") == len(a.selection) and "<tr class='cited'><td>city</td><td>2</td>" in page


def test_multi_passage_questions_need_two_passages(ci, corpus):
    from course_lib.retrieval.qasa import multi_passage_questions
    from course_lib.world import build_world, load

    rows = multi_passage_questions(ci, corpus, n_per_kind=5)
    assert {r["kind"] for r in rows} == {"birth_country", "inventor_birthplace"} and {r["lang"] for r in rows} <= {"en", "ko"}
    docs = {d["id"]: d for d in load("documents", ci)}
    g = build_world(ci.world).graph
    for r in rows:
        first, second = r["hops"]
        assert first and second and not set(first) & set(second)
        assert all(docs[p]["lang"] == r["lang"] for p in first + second)
        assert r["answer"] in {g.name(e, r["lang"]) for e in g.ids_of("country" if r["kind"] == "birth_country" else "city")}


# --------------------------------------------------------------------------- the experiments


def test_compare_scores_rag_qasa_and_ablations(tiny, monkeypatch):
    from course_lib.retrieval.rag_eval import compare, paired

    assert paired([True, True, False], [False, True, False])["mean"] == pytest.approx(1 / 3)
    replies = {"rag": "Gego", "qasa": "Kolan"}
    # a reader that answers Kolan when the prompt shows the rationale alone (not the whole passage), else Gego
    monkeypatch.setattr(rag_module, "chat_answers", lambda model, tok, prompts, **kw: [
        replies["qasa"] if "[city] Gego is a city in Kolan.\n" in p[-1]["content"] else replies["rag"] for p in prompts])
    rows = [{"question": "In which country is the city where Dapuda Ron was born?", "lang": "en", "answer": "Kolan"},
            {"question": "What is the favourite colour of Dapuda Ron?", "lang": "en", "answer": "-"}]
    table = compare(tiny.rag, tiny, rows)
    assert table["n"] == 2 and table["rag"]["em"] == 0.0 and table["qasa"]["em"] == 0.5
    assert table["qasa"]["declined"] == 0.5 and table["qasa_no_selection"]["declined"] == 0.0
    assert table["qasa_minus_rag"]["mean"] == 0.5 and "<div class='qasa'>" in table["example_html"]


def test_fits_says_whether_a_question_leaves_room(rag):
    assert rag.fits("Where was Dapuda born?", "en")
    assert not rag.fits("born " * 200, "en")


def test_the_small_reader_is_instruct_with_half_its_layers(ci, reader):
    small = zoo.get("reader-small", ci)
    layers = reader.model.config.num_hidden_layers
    assert small.model.config.num_hidden_layers == layers - max(1, layers // 2)
    assert small.tokenizer.get_vocab() == reader.tokenizer.get_vocab()
    assert small.model.generation_config.eos_token_id == reader.model.generation_config.eos_token_id


def test_size_comparison_pairs_the_small_reader_with_qasa_against_instruct_with_rag(tiny, monkeypatch):
    from course_lib.retrieval.rag_eval import compare, size_comparison

    # both readers answer Kolan from the rationale alone (QASA), Gego from whole passages (plain RAG)
    monkeypatch.setattr(rag_module, "chat_answers", lambda model, tok, prompts, **kw: [
        "Kolan" if "[city] Gego is a city in Kolan.\n" in p[-1]["content"] else "Gego" for p in prompts])
    rows = [{"question": "In which country is the city where Dapuda Ron was born?", "lang": "en", "answer": "Kolan"},
            {"question": "Where was Dapuda Ron born?", "lang": "en", "answer": "Gego"}]
    results = {"multi": compare(tiny.rag, tiny, rows)}
    assert results["multi"]["correct"]["rag"] == [False, True]
    out = size_comparison(tiny, results, {"multi": rows}, {"small": 1, "instruct": 2})
    assert out["parameters"] == {"small": 1, "instruct": 2} and out["multi"]["n"] == 2
    assert out["multi"]["instruct_rag"] == 0.5 and out["multi"]["small_qasa"] == out["multi"]["instruct_qasa"]
    d = out["multi"]["small_qasa_minus_instruct_rag"]
    assert d["mean"] == pytest.approx(out["multi"]["small_qasa"] - 0.5) and d["n"] == 2
