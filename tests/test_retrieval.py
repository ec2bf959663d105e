"""Chapter 10's retrieval: BM25 equal to bm25s, metrics and fusion by hand, faiss exact search, the zoo's index, bad input."""

import json
import math

import bm25s
import faiss
import numpy as np
import pytest

from course_lib import zoo
from course_lib.config import load_config
from course_lib.retrieval import (BM25, Corpus, CorpusError, DenseIndex, DenseRetriever, IndexMismatchError,
                                  QueryError, SparseRetriever, ann_tradeoff, brute_force_top_k, char_bigrams,
                                  check_k, eval_queries, evaluate, flat_index, load_corpus, load_minilm, ndcg_at_k, pool,
                                  recall_at_k, reciprocal_rank, reciprocal_rank_fusion, tokenize, training_pairs,
                                  weighted_fusion, world_corpus)
from course_lib.retrieval import index as index_module
from course_lib.retrieval.tokens import KO_SCHEMES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(ci):
    return world_corpus(ci)


@pytest.fixture(scope="module")
def queries(ci, corpus):
    return eval_queries(ci, corpus)


@pytest.fixture(scope="module")
def world_index(ci):
    return zoo.get("retrieval-index", ci)


@pytest.fixture(scope="module")
def encoder(ci, world_index):
    return zoo.get("bi-encoder", ci)


# --------------------------------------------------------------------------- tokens and BM25


def test_korean_tokenizations():
    text = "다푸다는 1977년에 태어났다."
    assert tokenize(text, "ko", "whitespace") == ["다푸다는", "1977년에", "태어났다"]
    assert char_bigrams("다푸다는 a") == ["다푸", "푸다", "다는", "a"]
    assert tokenize(text, "ko", "morpheme")[-3:] == ["1977", "년", "태어나"]  # particle 에 and the endings dropped
    assert tokenize("Where was Dapuda born?", "en", "morpheme") == ["where", "was", "dapuda", "born"]
    with pytest.raises(ValueError, match="unknown Korean tokenization 'jamo'"):
        tokenize(text, "ko", "jamo")


def test_bm25_by_hand():
    docs = [["a", "b", "a"], ["b", "c"], ["c"]]
    bm = BM25(docs, k1=1.5, b=0.75)
    avgdl, n = 2.0, 3
    idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in {"a": 1, "b": 2, "c": 2}.items()}

    def term(t, tf, dl):
        return idf[t] * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))

    expected = [term("a", 2, 3) + term("b", 1, 3), term("b", 1, 2), 0.0]
    np.testing.assert_allclose(bm.scores(["a", "b", "zzz"]), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bm.scores(["b", "b"]), 2 * bm.scores(["b"]))  # a repeated query token counts twice
    assert list(bm.top_k(["c"], 2)[0]) == [2, 1]  # the shorter passage wins


@pytest.mark.parametrize("ko", KO_SCHEMES)
def test_bm25_equals_bm25s_on_the_world(corpus, queries, ko):
    tokens = [tokenize(t, lang, ko) for t, lang in zip(corpus.texts, corpus.langs)]
    ours = BM25(tokens, k1=1.5, b=0.75)
    theirs = bm25s.BM25(k1=1.5, b=0.75, method="lucene", dtype="float64")
    theirs.index(tokens, show_progress=False)
    for q in queries:
        query = tokenize(q["question"], q["lang"], ko)
        np.testing.assert_allclose(ours.scores(query), theirs.get_scores(query), rtol=0, atol=1e-6)


def test_bm25_finds_most_answers(corpus, queries):
    """On ci, BM25 puts a passage stating the asked fact in the top 5 for most held-out questions."""
    ranked = SparseRetriever(corpus).search_many([q["question"] for q in queries], 5, [q["lang"] for q in queries])
    scores = evaluate([[pid for pid, _ in r] for r in ranked], [set(q["relevant"]) for q in queries], ks=(5,))
    assert scores["recall@5"] >= 0.6, scores


# --------------------------------------------------------------------------- metrics and fusion


def test_metrics_by_hand():
    ranked, relevant = ["x", "a", "y", "b"], {"a", "b", "c"}
    assert recall_at_k(ranked, relevant, 1) == 0.0 and recall_at_k(ranked, relevant, 2) == 1.0
    assert reciprocal_rank(ranked, relevant) == 0.5 and reciprocal_rank(["x"], relevant) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "c"], relevant, 3) == pytest.approx(1.0)
    scores = evaluate([ranked, ["a"]], [relevant, {"a"}], ks=(1, 2))
    assert scores == pytest.approx({"recall@1": 0.5, "recall@2": 1.0, "mrr": 0.75,
                                    "ndcg@10": (dcg / ideal + 1) / 2, "n": 2})


def test_reciprocal_rank_fusion_by_hand():
    sparse = [("a", 12.0), ("b", 7.0), ("c", 1.0)]
    dense = [("c", 0.9), ("a", 0.8)]
    fused = reciprocal_rank_fusion([sparse, dense], k=60)
    assert [pid for pid, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)
    assert reciprocal_rank_fusion([sparse, dense], top=1) == fused[:1]


def test_weighted_fusion_by_hand():
    sparse = [("a", 12.0), ("b", 7.0), ("c", 2.0)]  # scaled: a 1, b 0.5, c 0
    dense = [("c", 0.9), ("b", 0.5)]  # scaled: c 1, b 0
    fused = dict(weighted_fusion([sparse, dense], [0.25, 0.75]))
    assert fused == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75})
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        weighted_fusion([sparse, dense], [1.0])


# --------------------------------------------------------------------------- dense: pooling, faiss


def test_pooling_leaves_out_padding():
    import torch

    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]])  # (1, 3, 2); the last position is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 1.0]]
    assert pool(hidden, mask, "last").tolist() == [[3.0, 2.0]]


def test_flat_index_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    q = rng.standard_normal((40, 32)).astype(np.float32)
    scores, found = flat_index(x).search(q, 10)
    expected_scores, expected = brute_force_top_k(x, q, 10)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_flat_index_equals_brute_force_on_world_embeddings(world_index, encoder, queries):
    q = encoder.encode([x["question"] for x in queries], queries=True)
    scores, found = world_index.index.search(q, 10)
    expected_scores, expected = brute_force_top_k(world_index.embeddings, q, 10)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    # the same passages in the same order, except among exact copies of one page (equal vectors, equal scores)
    differ = found != expected
    assert np.all(np.abs(scores[differ] - expected_scores[differ]) < 1e-5)
    assert differ.mean() < 0.05


def test_ann_tradeoff_table(world_index, encoder, queries):
    q = encoder.encode([x["question"] for x in queries], queries=True)
    rows = ann_tradeoff(world_index.embeddings, q, k=10, nlist=8, m=8, nprobes=(1, 8), ef_searches=(8, 256))
    by = {(r["index"], r["value"]): r for r in rows}
    assert by["flat", 0]["recall"] == 1.0
    assert by["ivf", 8]["recall"] == 1.0  # every cell probed: exact
    assert by["ivf", 1]["recall"] < 1.0
    assert by["hnsw", 256]["recall"] >= by["hnsw", 8]["recall"]
    assert all(r["ms_per_query"] > 0 and r["build_s"] >= 0 for r in rows)


# --------------------------------------------------------------------------- the bi-encoder and the zoo's index


def test_training_pairs_use_training_facts_only(ci, corpus):
    from course_lib.world import build_world

    world = build_world(ci.world)
    pairs = training_pairs(ci, corpus)
    test_questions = {q["question"] for q in eval_queries(ci, corpus)}
    assert len(pairs) > 100
    assert all(p["passage_id"] in p["relevant"] for p in pairs)
    assert not test_questions & {p["query"] for p in pairs}
    assert all(not f.after_cutoff for f in world.facts(split="train"))


def test_dense_retrieval_learns_the_world(ci, world_index, encoder, queries):
    """The trained bi-encoder beats chance by far: a passage of the asked fact in its top 20 for most questions."""
    ranked = DenseRetriever(encoder, world_index).search_many([q["question"] for q in queries], 20)
    scores = evaluate([[pid for pid, _ in r] for r in ranked], [set(q["relevant"]) for q in queries], ks=(20,))
    chance = np.mean([len(q["relevant"]) for q in queries]) * 20 / len(world_index.corpus)
    assert scores["recall@20"] > chance + 0.2, (scores, chance)


def test_index_reloads_without_embedding_again(ci, world_index, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the index was embedded again")

    monkeypatch.setattr(index_module.DenseIndex, "build", refuse)
    again = zoo.get("retrieval-index", ci)
    np.testing.assert_array_equal(again.embeddings, world_index.embeddings)
    assert again.corpus == world_index.corpus and again.index.ntotal == len(world_index.corpus)


def test_index_and_corpus_must_match(ci, world_index, corpus, tmp_path):
    folder = zoo.path("retrieval-index", ci)
    DenseIndex.load(folder, corpus)  # the corpus it was built from
    smaller = Corpus(corpus.ids[:-1], corpus.texts[:-1], corpus.langs[:-1])
    with pytest.raises(IndexMismatchError, match=f"holds {len(corpus)} passages but the corpus has {len(corpus) - 1}"):
        DenseIndex.load(folder, smaller)
    renamed = Corpus(("other-0",) + corpus.ids[1:], corpus.texts, corpus.langs)
    with pytest.raises(IndexMismatchError, match="passage 0 is .* in the index but 'other-0'"):
        DenseIndex.load(folder, renamed)
    edited = Corpus(corpus.ids, ("new text",) + corpus.texts[1:], corpus.langs)
    with pytest.raises(IndexMismatchError, match="another text"):
        DenseIndex.load(folder, edited)
    with pytest.raises(IndexMismatchError, match="rows and the faiss index"):
        DenseIndex(smaller, world_index.embeddings, world_index.index)


def test_index_file_from_another_corpus_is_refused(world_index, tmp_path):
    folder = world_index.save(tmp_path / "index")
    other = flat_index(np.eye(len(world_index.corpus), world_index.embeddings.shape[1], dtype=np.float32))
    faiss.write_index(other, str(folder / "index.faiss"))  # same size, other vectors
    with pytest.raises(IndexMismatchError, match="index.faiss is not the file this index was built with"):
        DenseIndex.load(folder)


def test_queries_come_from_the_index_encoder(world_index):
    minilm = load_minilm()
    with pytest.raises(IndexMismatchError, match="queries would come from 'all-MiniLM-L6-v2'"):
        DenseRetriever(minilm, world_index)


# --------------------------------------------------------------------------- bad input


def test_bad_corpora_are_named():
    with pytest.raises(CorpusError, match=r"1 duplicate passage ids, e.g. \['a'\]"):
        Corpus(("a", "b", "a"), ("x", "y", "z"), ("en",) * 3)
    with pytest.raises(CorpusError, match=r"1 empty or whitespace-only passages, e.g. ids \['b'\]"):
        Corpus(("a", "b"), ("x", "  \n"), ("en", "en"))
    with pytest.raises(CorpusError, match="corpus is empty"):
        Corpus((), (), ())


def test_bad_queries_and_k_are_named(corpus, world_index, encoder):
    sparse, dense = SparseRetriever(corpus, "whitespace"), DenseRetriever(encoder, world_index)
    for retriever in (sparse, dense):
        for query in ("", "   \t\n"):
            with pytest.raises(QueryError, match="empty query"):
                retriever.search(query, 5)
        for k in (0, -1, len(corpus) + 1):
            with pytest.raises(QueryError, match=f"k={k} is outside 1..{len(corpus)}"):
                retriever.search("Where was Dapuda born?", k)
    with pytest.raises(QueryError, match="no word to match"):
        sparse.search("?!", 5)
    with pytest.raises(QueryError, match=f"longer than the encoder's context of {encoder.max_length} tokens"):
        dense.search("born " * (encoder.max_length + 1), 5)
    with pytest.raises(QueryError, match="k must be an int"):
        check_k(2.0, 10)


def test_world_corpus_is_every_document_with_news(ci, corpus):
    from course_lib.world import load

    docs = load("documents", ci)
    assert corpus.ids == tuple(docs["id"])
    assert any(d["kind"] == "news" and not d["in_pretraining"] for d in docs)
    edited = Corpus(corpus.ids, corpus.texts[:-1] + (corpus.texts[-1] + " ",), corpus.langs)
    assert edited.fingerprint() != corpus.fingerprint()


# --------------------------------------------------------------------------- a corpus from config


def _jsonl(path, rows, tail: str = "") -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + tail, encoding="utf-8")
    return str(path)


def test_a_local_jsonl_corpus_by_config(tmp_path, ci):
    rows = [{"id": "p1", "text": "Seoul is the capital of Korea.", "lang": "en"},
            {"id": "p2", "text": "서울은 한국의 수도이다."}]  # no lang: detected from the text
    cfg = load_config("ci", [f"retrieval.corpus={_jsonl(tmp_path / 'passages.jsonl', rows)}"])
    corpus = load_corpus(cfg)
    assert corpus.ids == ("p1", "p2") and corpus.langs == ("en", "ko") and corpus.texts[1] == rows[1]["text"]
    assert load_corpus(ci).ids == world_corpus(ci).ids  # no corpus named: the world's documents


def test_a_streamed_corpus_stops_at_its_cap(tmp_path):
    """Read line by line: with max_passages 2 the broken third line is never parsed."""
    path = _jsonl(tmp_path / "p.jsonl", [{"id": f"p{i}", "text": f"passage {i}"} for i in range(2)], "{broken\n")
    assert load_corpus(load_config("ci", [f"retrieval.corpus={path}", "retrieval.max_passages=2"])).ids == ("p0", "p1")
    with pytest.raises(CorpusError, match=r"p\.jsonl:3: not valid JSON"):
        load_corpus(load_config("ci", [f"retrieval.corpus={path}"]))


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], r"1 duplicate passage ids, e\.g\. \['a'\]"),
    ([{"id": "a", "text": "  "}], r"empty or whitespace-only passages, e\.g\. ids \['a'\]"),
    ([{"text": "no id"}], r"p\.jsonl:1: the passage has no 'id'"),
    ([{"id": "a", "body": "x"}], r"p\.jsonl:1: a passage must be a JSON object with a string 'text' field"),
])
def test_a_bad_corpus_file_is_named(tmp_path, rows, message):
    path = _jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(CorpusError, match=message):
        load_corpus(load_config("ci", [f"retrieval.corpus={path}"]))


def test_a_hub_corpus_needs_the_network(tmp_path):
    with pytest.raises(CorpusError, match="Hugging Face Hub dataset, but the course is offline"):
        load_corpus(load_config("ci", ["retrieval.corpus=hf:someone/passages"]))
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(load_config("ci", [f"retrieval.corpus={tmp_path / 'missing.jsonl'}"]))
