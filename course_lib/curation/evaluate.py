"""Precision and recall of the curation tools against the course world's labels.

    python -m course_lib.curation.evaluate --profile laptop

prints, for the profile's world: PII precision/recall per type (exact spans),
near-duplicate pair precision/recall at the configured Jaccard threshold
(against brute-force true Jaccard, and against the labelled duplicate
clusters), and precision/recall of each rule filter on web and forum pages.
"""

from __future__ import annotations

import argparse
import collections
import itertools

from course_lib.config import load_config
from course_lib.world import load

from . import dedup, filters, pii


def true_pairs(texts: list[str], threshold: float, ngram: int = 5) -> set[tuple[int, int]]:
    """All pairs (i < j) of true shingle Jaccard >= ``threshold`` (exact: pairs sharing a shingle, checked)."""
    sets = [dedup.shingles(t, ngram) for t in texts]
    index = collections.defaultdict(list)
    for i, s in enumerate(sets):
        for x in s:
            index[x].append(i)
    pairs = set()
    for i, s in enumerate(sets):
        others = {j for x in s for j in index[x] if j > i}
        pairs |= {(i, j) for j in others if dedup.jaccard(s, sets[j]) >= threshold}
    return pairs


def near_duplicate_scores(docs, threshold: float, num_perm: int = 128, ngram: int = 5, hash: str = "fast") -> dict:
    """MinHash + LSH pairs vs brute-force pairs at ``threshold``; cluster pairs vs labelled clusters.
    ``hash``: ``dedup.near_duplicates``' shingle hash."""
    texts = [d["text"] for d in docs]
    rep, pairs = dedup.near_duplicates(texts, threshold, num_perm, ngram, hash=hash)
    truth = true_pairs(texts, threshold, ngram)
    groups = collections.defaultdict(list)
    for i, r in enumerate(rep):
        groups[r].append(i)
    found = {p for m in groups.values() for p in itertools.combinations(m, 2)}
    clusters = collections.defaultdict(list)
    for i, d in enumerate(docs):
        if d["dup_cluster"]:
            clusters[d["dup_cluster"]].append(i)
    labelled = {p for m in clusters.values() for p in itertools.combinations(m, 2)}
    labelled_above = labelled & truth
    return {
        "pairs_found": len(pairs), "pairs_true": len(truth),
        "recall": len(pairs & truth) / max(1, len(truth)), "precision": len(pairs & truth) / max(1, len(pairs)),
        "labelled_pairs": len(labelled), "labelled_pairs_above_threshold": len(labelled_above),
        "recall_labelled_above_threshold": len(found & labelled_above) / max(1, len(labelled_above)),
        "recall_labelled_all": len(found & labelled) / max(1, len(labelled)),
        "precision_labelled": len(found & labelled) / max(1, len(found)),
    }


def report(profile: str = "laptop") -> dict:
    cfg = load_config(profile)
    docs = load("documents", cfg)
    c = cfg.curation
    web = docs.filter(lambda d: d["kind"] in c.filter_kinds)
    return {
        "profile": profile, "documents": len(docs),
        "pii": pii.evaluate(docs["text"], docs["pii"]),
        "near_duplicates": near_duplicate_scores(docs.to_list(), c.minhash_threshold, c.minhash_num_perm,
                                                 c.minhash_ngram),
        "filters": filters.label_scores(web["text"], web["lang"], web["quality_flags"],
                                        lambda lang: filters.from_config(lang, c)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="laptop")
    r = report(parser.parse_args(argv).profile)
    print(f"profile {r['profile']}: {r['documents']} documents\n\nPII (exact spans)")
    for t, s in r["pii"].items():
        print(f"  {t:11s} tp {s['tp']:4d} fp {s['fp']:3d} fn {s['fn']:3d}  "
              f"precision {s['precision']:.3f} recall {s['recall']:.3f}")
    print("\nnear duplicates")
    for k, v in r["near_duplicates"].items():
        print(f"  {k:32s} {v:.3f}" if isinstance(v, float) else f"  {k:32s} {v}")
    print("\nrule filters (web and forum pages; positive = a low-quality flag)")
    for name, s in r["filters"].items():
        flags = ", ".join(f"{f} {x:.2f}" for f, x in s["recall_by_flag"].items())
        print(f"  {name:17s} dropped {s['dropped']:4d} precision {s['precision']:.3f} recall {s['recall']:.3f}"
              f"  ({flags})")


if __name__ == "__main__":
    main()
