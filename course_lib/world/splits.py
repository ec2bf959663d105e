"""Which world documents are held out of pretraining: a stable hash of each duplicate cluster.

Chapter 02 measures curated training on them, chapter 03 its perplexity, chapter 05
the harness's perplexity tasks; all three use this one split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def is_held_out(doc: dict, eval_fraction: float, seed: int = 0) -> bool:
    """Whether ``doc`` is held out for evaluation: a stable hash of its duplicate cluster (else its id).

    Hashing the cluster keeps every copy of a page on the same side, so no held-out
    text leaks into training through its duplicates.
    """
    key = doc.get("dup_cluster") or doc["id"]
    h = int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big")
    return h / 2**64 < eval_fraction


def split_documents(docs: Iterable[dict], eval_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, eval) lists of documents; see ``is_held_out``."""
    train_docs, eval_docs = [], []
    for doc in docs:
        (eval_docs if is_held_out(doc, eval_fraction, seed) else train_docs).append(doc)
    return train_docs, eval_docs
