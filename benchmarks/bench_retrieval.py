"""Retrieval speed: the course's BM25 against bm25s, and faiss's exact and approximate indexes, in one run.

1. BM25 (queries per second, and index build seconds): ``retrieval.BM25`` against
   ``bm25s.BM25`` (numpy backend, Lucene's BM25, the same k1 and b) on the same token lists:
   the profile's world corpus and its held-out questions (Kiwi morphemes for Korean),
   repeated until each run has ``--queries`` queries, top 10 each. The top 10 of both are
   checked to be the same passages before timing. Runs are interleaved (course, bm25s,
   course, ...) and the medians shown with their ratio.
2. faiss (build seconds, milliseconds per query, recall@10 against the exact top 10): numpy
   brute force, ``IndexFlatIP``, IVF and HNSW, on the zoo's index embeddings (the course's
   bi-encoder; built if missing) and on ``--synthetic`` random unit vectors of the same
   dimension, where approximate search has something to save. Random vectors have no clusters, the
   worst case for IVF and HNSW: their recall there is a floor, not what real embeddings get. Ratios are
   to ``IndexFlatIP``; numpy sorts every score (a stable full sort), faiss keeps a heap of 10.

    python benchmarks/bench_retrieval.py                            # ci world, about two minutes
    python benchmarks/bench_retrieval.py --profile laptop --threads 2
"""

import argparse
import statistics
import time

import bm25s
import faiss
import numpy as np
import torch

from course_lib import zoo
from course_lib.config import load_config
from course_lib.retrieval import BM25, brute_force_top_k, eval_queries, flat_index, hnsw_index, ivf_index, tokenize


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bm25_table(corpus, questions, n_queries: int, repeats: int, k1: float, b: float) -> None:
    docs = [tokenize(t, lang, "morpheme") for t, lang in zip(corpus.texts, corpus.langs)]
    queries = [tokenize(q["question"], q["lang"], "morpheme") for q in questions]
    queries = (queries * (n_queries // len(queries) + 1))[:n_queries]
    builds = {"course": [], "bm25s": []}
    rates = {"course": [], "bm25s": []}
    for _ in range(repeats):
        t, ours = timed(BM25, docs, k1, b)
        builds["course"].append(t)
        theirs = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
        builds["bm25s"].append(timed(theirs.index, docs, False, False)[0])
        t, found = timed(lambda: [ours.top_k(q, 10)[0] for q in queries])
        rates["course"].append(len(queries) / t)
        t, (ref, _) = timed(lambda: theirs.retrieve(queries, k=10, show_progress=False, n_threads=0))
        rates["bm25s"].append(len(queries) / t)
    same = np.mean([set(a) == set(b) for a, b in zip(found, ref)])
    print(f"\nBM25 on {len(docs):,} passages, {len(queries):,} queries, top 10; same top-10 set on {same:.1%} of queries "
          "(the rest differ only in ties at the 10th place)")
    print("| implementation | queries/s | ratio | index build (s) | ratio |\n|---|---:|---:|---:|---:|")
    for name in ("course", "bm25s"):
        q, bld = statistics.median(rates[name]), statistics.median(builds[name])
        print(f"| {name} | {q:,.0f} | {q / statistics.median(rates['bm25s']):.2f}x | {bld:.3f} | "
              f"{bld / statistics.median(builds['bm25s']):.2f}x |")


def faiss_rows(x: np.ndarray, q: np.ndarray, nlist: int, nprobe: int, m: int, ef: int) -> list[tuple]:
    """(name, build s, ms per query, recall@10 against exact) for numpy, flat, IVF and HNSW."""
    _, (_, exact) = timed(brute_force_top_k, x, q, 10)
    rows = []
    for name, make in (("numpy brute force", None), ("IndexFlatIP", lambda: flat_index(x)),
                       (f"IVF nlist={nlist} nprobe={nprobe}", lambda: ivf_index(x, nlist)),
                       (f"HNSW M={m} efSearch={ef}", lambda: hnsw_index(x, m))):
        build, index = timed(make) if make else (0.0, None)
        if name.startswith("IVF"):
            index.nprobe = nprobe
        elif name.startswith("HNSW"):
            index.hnsw.efSearch = ef
        t, found = timed(lambda: brute_force_top_k(x, q, 10)[1] if index is None else index.search(q, 10)[1])
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
        rows.append((name, build, 1000 * t / len(q), recall))
    return rows


def faiss_table(title: str, x: np.ndarray, q: np.ndarray, nlist: int, nprobe: int, m: int, ef: int) -> None:
    rows = faiss_rows(x, q, nlist, nprobe, m, ef)
    flat = rows[1]
    print(f"\n{title}: {len(x):,} vectors of {x.shape[1]} dimensions, {len(q):,} queries (one batch), top 10")
    print("| search | build (s) | ms/query | speed vs flat | recall@10 |\n|---|---:|---:|---:|---:|")
    for name, build, ms, recall in rows:
        print(f"| {name} | {build:.3f} | {ms:.4f} | {flat[2] / ms:.2f}x | {recall:.3f} |")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--threads", type=int, default=1, help="faiss (OpenMP) and torch threads")
    parser.add_argument("--queries", type=int, default=2000, help="BM25 queries per run (the questions, repeated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=50_000, help="random unit vectors for the second faiss table")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.profile)
    index = zoo.get("retrieval-index", cfg)
    encoder = zoo.get("bi-encoder", cfg)
    questions = eval_queries(cfg, index.corpus)
    print(f"profile {args.profile}, {args.threads} thread(s), bm25s {bm25s.__version__}, faiss {faiss.__version__}")
    bm25_table(index.corpus, questions, args.queries, args.repeats, cfg.retrieval.k1, cfg.retrieval.b)
    q = encoder.encode([x["question"] for x in questions], queries=True)
    r = cfg.retrieval
    faiss_table("faiss on the world's passages", index.embeddings, q, r.ivf_nlist, max(1, r.ivf_nlist // 8), r.hnsw_m, 64)
    rng = np.random.default_rng(0)
    x, qs = unit(rng.standard_normal((args.synthetic, q.shape[1]))), unit(rng.standard_normal((1000, q.shape[1])))
    nlist = int(4 * np.sqrt(args.synthetic))
    faiss_table("faiss on random unit vectors", x, qs, nlist, max(1, nlist // 32), r.hnsw_m, 64)


if __name__ == "__main__":
    main()
