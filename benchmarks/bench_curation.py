"""Throughput of ``course_lib.curation`` against peer tools, on the course world's documents.

Three measurements, each repeated and interleaved (course, peer, course, peer, ...) so that drifting
machine load hits both alike; tables show medians and ratios measured in this run.

1. Near-duplicate dedup (documents/s, end to end: shingles -> signatures -> LSH buckets -> candidate
   pairs -> true-Jaccard check -> union-find clusters): ``dedup.near_duplicates`` against datasketch
   (``MinHash.bulk`` + ``MinHashLSH`` insert and query) with the same word shingles, the same
   permutations (datasketch's ``affine32`` scheme), the same number of them, the same Jaccard threshold,
   the same bands x rows and the same true-Jaccard check and clustering. The course runs with its
   default ``hash="fast"`` (all shingles of the corpus hashed at once with numpy, signatures as one
   array per block of documents, LSH buckets by one sort) and with ``hash="sha1"`` (datasketch's
   signatures bit for bit). datasketch runs twice: with the course's bands x rows, and with the bands x
   rows its own ``MinHashLSH(threshold=...)`` picks. Recall and precision of each are against all pairs
   of true Jaccard >= threshold (brute force); the S-curve's expected recall over those pairs says how
   far one run's recall may fall by chance. A second table splits the time into stages.
2. PII masking (MB/s of UTF-8 input): ``pii.mask`` with all types, and with e-mails and IPs only,
   against datatrove's ``PIIFormatter`` (e-mails and IPs only: its whole scope).
3. The whole configured pipeline (``pipeline.from_config``; documents/s of input) with one process,
   and each step's share of its time. Kiwi's model is loaded before timing; the per-text word cache
   is cleared before every run, so no run reuses another's Korean segmentation.

    python benchmarks/bench_curation.py                     # laptop world, about a minute
    python benchmarks/bench_curation.py --profile ci --repeats 3
"""

import argparse
import statistics
import time

from datasketch import MinHash, MinHashLSH
from datatrove.pipeline.formatters import PIIFormatter

from course_lib.config import load_config
from course_lib.curation import dedup, evaluate, filters, pii, pipeline
from course_lib.world import load


def datasketch_near_duplicates(texts, threshold, num_perm, ngram, params=None):
    """The course's ``near_duplicates`` with datasketch doing the MinHash and LSH: (rep, pairs, stage seconds)."""
    t0 = time.perf_counter()
    sets = [dedup.shingles(t, ngram) for t in texts]
    hashes = MinHash.bulk([[s.encode("utf-8") for s in sorted(x)] for x in sets], num_perm=num_perm)
    t1 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
    for i, m in enumerate(hashes):
        lsh.insert(i, m)
    candidates = {(min(i, j), max(i, j)) for i, m in enumerate(hashes) for j in lsh.query(m) if j != i}
    t2 = time.perf_counter()
    pairs = {(i, j) for i, j in candidates if dedup.jaccard(sets[i], sets[j]) >= threshold}
    uf = dedup.UnionFind(len(texts))
    for i, j in pairs:
        uf.union(i, j)
    return [uf.find(i) for i in range(len(texts))], pairs, (t1 - t0, t2 - t1), lsh.b, lsh.r


def course_stages(texts, num_perm, ngram, bands, rows):
    """Seconds of the course's (default hash) two MinHash stages: (shingles + signatures, LSH candidate pairs)."""
    t0 = time.perf_counter()
    sigs = dedup.MinHasher(num_perm, ngram).signatures(texts)
    t1 = time.perf_counter()
    dedup.lsh_candidate_pairs(sigs, bands, rows)
    return t1 - t0, time.perf_counter() - t1


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def scores(pairs, truth):
    hit = len(pairs & truth)
    return hit / max(1, len(truth)), hit / max(1, len(pairs))


def table(title, unit, rows, base, digits=0):
    """Print ``rows`` {name: (rate, extra columns dict)} with the ratio to row ``base``."""
    extras = list(next(iter(rows.values()))[1])
    print(f"\n{title}")
    print(f"  {'':<44}{unit:>12}{'vs ' + base[:10]:>14}" + "".join(f"{e:>11}" for e in extras))
    for name, (rate, extra) in rows.items():
        print(f"  {name:<44}{rate:>12,.{digits}f}{rate / rows[base][0]:>14.2f}" + "".join(f"{v:>11}" for v in extra.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop", help="whose world's documents to use")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs of each contender")
    parser.add_argument("--pipeline-repeats", type=int, default=3, help="runs of the whole pipeline")
    args = parser.parse_args()

    cfg = load_config(args.profile)
    c = cfg.curation
    docs = load("documents", cfg)
    texts = list(docs["text"])  # a plain list: no contender pays for reading the dataset row by row
    n, mb = len(texts), sum(len(t.encode("utf-8")) for t in texts) / 1e6
    bands, rows = dedup.lsh_params(c.minhash_threshold, c.minhash_num_perm, 0.1, 0.9)  # as near_duplicates
    truth = evaluate.true_pairs(texts, c.minhash_threshold, c.minhash_ngram)
    filters.words("가", "ko")  # load Kiwi's model once, outside every timing
    print(f"{args.profile} world: {n:,} documents, {mb:.2f} MB of UTF-8 text, {len(truth)} pairs of true Jaccard >= "
          f"{c.minhash_threshold}; {args.repeats} interleaved repeats, medians")

    # ------------------------------------------------------------ 1. near-duplicate dedup
    runs = {"course": [], "sha1": [], "same": [], "own": []}
    stages = {"course": [], "datasketch": []}
    found, shape = {}, {}
    args_nd = (texts, c.minhash_threshold, c.minhash_num_perm, c.minhash_ngram)
    for _ in range(args.repeats):
        seconds, (_, found["course"]) = timed(dedup.near_duplicates, *args_nd)
        runs["course"].append(seconds)
        seconds, (_, found["same"], st, *shape["same"]) = timed(datasketch_near_duplicates, *args_nd, (bands, rows))
        runs["same"].append(seconds)
        stages["datasketch"].append(st)
        seconds, (_, found["sha1"]) = timed(dedup.near_duplicates, *args_nd, hash="sha1")
        runs["sha1"].append(seconds)
        seconds, (_, found["own"], _, *shape["own"]) = timed(datasketch_near_duplicates, *args_nd)
        runs["own"].append(seconds)
        stages["course"].append(course_stages(texts, c.minhash_num_perm, c.minhash_ngram, bands, rows))
    names = {"course": f"course_lib near_duplicates ({bands} x {rows})",
             "sha1": f"course_lib near_duplicates, hash=sha1 ({bands} x {rows})",
             "same": f"datasketch MinHashLSH ({shape['same'][0]} x {shape['same'][1]}, same)",
             "own": f"datasketch MinHashLSH ({shape['own'][0]} x {shape['own'][1]}, its own)"}
    rows_out = {}
    for key, name in names.items():
        recall, precision = scores(found[key], truth)
        rows_out[name] = (n / statistics.median(runs[key]), {"recall": f"{recall:.3f}", "precision": f"{precision:.3f}"})
    table(f"1. near-duplicate dedup: word {c.minhash_ngram}-gram shingles, {c.minhash_num_perm} permutations, "
          f"Jaccard >= {c.minhash_threshold}, bands x rows as named", "docs/s", rows_out, names["same"])
    true_jaccard = [dedup.jaccard(dedup.shingles(texts[i], c.minhash_ngram), dedup.shingles(texts[j], c.minhash_ngram))
                    for i, j in sorted(truth)]
    expected = float(dedup.candidate_probability(true_jaccard, bands, rows).mean()) if truth else 1.0
    print(f"  S-curve expected recall at {bands} x {rows} over the {len(truth)} true pairs: {expected:.3f}; "
          f"misses expected: {len(truth) * (1 - expected):.1f}")
    speedup = rows_out[names["course"]][0] / rows_out[names["same"]][0]
    recall_gap = abs(float(rows_out[names["course"]][1]["recall"]) - float(rows_out[names["same"]][1]["recall"]))
    print(f"  goal: course_lib >= 5x datasketch (same bands x rows) at equal recall; measured {speedup:.2f}x, "
          f"recall {rows_out[names['course']][1]['recall']} vs {rows_out[names['same']][1]['recall']}: "
          + ("met" if speedup >= 5 and recall_gap <= 0.01 else "NOT met"))
    print("\n  stages (same bands x rows)       course docs/s  datasketch docs/s  course / datasketch")
    for i, stage in enumerate(["shingles + signatures", "LSH candidate pairs"]):
        ours, theirs = (n / statistics.median(s[i] for s in stages[who]) for who in ("course", "datasketch"))
        print(f"  {stage:<32}{ours:>14,.0f}{theirs:>19,.0f}{ours / theirs:>21.2f}")

    # ------------------------------------------------------------ 2. PII masking
    formatter = PIIFormatter()
    contenders = {"course_lib pii.mask, all 6 types": lambda t: pii.mask(t).text,
                  "course_lib pii.mask, e-mails and IPs": lambda t: pii.mask(t, types=("email", "ip")).text,
                  "datatrove PIIFormatter (e-mails and IPs)": formatter.format}
    runs = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, fn in contenders.items():
            runs[name].append(timed(lambda f=fn: [f(t) for t in texts])[0])
    table("2. PII masking (UTF-8 input)", "MB/s", {name: (mb / statistics.median(s), {}) for name, s in runs.items()},
          "datatrove PIIFormatter (e-mails and IPs)", digits=2)

    # ------------------------------------------------------------ 3. the whole pipeline
    totals, per_step = [], []
    for _ in range(args.pipeline_repeats):
        filters.clear_words_cache()
        pipe = pipeline.from_config(cfg, num_proc=1)
        step_seconds = {}
        for step in pipe.steps:  # time each step by wrapping its apply
            step.apply = _timing(step.apply, step.name, step_seconds)
        seconds, result = timed(pipe.run, docs)
        totals.append(seconds)
        per_step.append(step_seconds)
    median = statistics.median(totals)
    kept = result.audit.by_reason()[("kept", "")]
    print(f"\n3. whole pipeline ({', '.join(s.name for s in pipe.steps)}), 1 process, {args.pipeline_repeats} runs: "
          f"{n / median:,.0f} docs/s ({mb / median:.2f} MB/s), {kept:,} of {n:,} documents kept")
    for name in per_step[0]:
        share = statistics.median(s[name] / t for s, t in zip(per_step, totals))
        print(f"  {name:<34}{100 * share:>6.1f}% of the time")
    other = statistics.median(1 - sum(s.values()) / t for s, t in zip(per_step, totals))
    print(f"  {'other (validate, select, datasets)':<34}{100 * other:>6.1f}% of the time")


def _timing(apply, name, sink):
    def wrapped(ds, num_proc):
        seconds, out = timed(apply, ds, num_proc)
        sink[name] = seconds
        return out
    return wrapped


if __name__ == "__main__":
    main()
