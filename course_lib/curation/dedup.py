"""Deduplication (중복 제거): exact hashes, URLs, lines, near duplicates (MinHash + LSH), exact substrings.

Why (Lee et al. 2021): duplicated text wastes compute and is memorized. Five
levels, from cheapest to finest:

- ``exact_duplicates``: documents whose *normalized* text hashes alike;
- ``url_duplicates``: documents whose URLs normalize alike (keep one by ``url_priority``);
- ``dedup_lines``: lines repeated across the corpus ("drop all copies" as in
  CCNet, or "keep the first");
- ``near_duplicates``: MinHash signatures, LSH banding with bands and rows
  chosen from the S-curve, true-Jaccard verification, union-find clusters;
- ``duplicate_spans``: token spans of ``min_tokens`` or more that occur twice,
  found with a suffix array.

Normalization uses NFC, never NFKD/NFD: decomposition splits each Hangul
syllable (한) into conjoining jamo (ᄒ ᅡ ᆫ), which changes lengths, offsets and
what a "character" is; NFC keeps syllables whole and merges decomposed input back.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

# ---------------------------------------------------------------------- normalization


def normalize_text(text: str) -> str:
    """NFC, case-folded, punctuation and symbols turned into spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return " ".join(text.split())


def text_hash(text: str) -> str:
    """SHA-1 hex digest of ``normalize_text(text)``."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """For each document, the index of the first document with the same normalized text (itself if none).

    A document is kept iff ``result[i] == i``.
    """
    first: dict[str, int] = {}
    return [first.setdefault(text_hash(t), i) for i, t in enumerate(texts)]


# ---------------------------------------------------------------------- URLs

TRACKING_PARAMS = ("fbclid", "gclid", "ref", "source")


def normalize_url(url: str, mirror_suffixes: Sequence[str] = ()) -> str:
    """The page a URL names: lower-case host without ``www.``/``m.`` or a mirror suffix, no scheme,
    no fragment, no tracking parameters (``utm_*``, ``fbclid``, ...), sorted query, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    for suffix in mirror_suffixes:
        host = host.removesuffix("." + suffix)
    for prefix in ("www.", "m."):
        host = host.removeprefix(prefix)
    path = parts.path.rstrip("/") or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS)
    return host + path + (f"?{urlencode(query)}" if query else "")


def url_priority(url: str, mirror_suffixes: Sequence[str] = ()) -> tuple:
    """Sort key, smallest kept: https first, then not a mirror, then no query or fragment, then the shortest URL."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    mirrored = any(host.endswith("." + s) for s in mirror_suffixes)
    return (parts.scheme != "https", mirrored, bool(parts.query or parts.fragment), len(url))


def url_duplicates(urls: Sequence[str], mirror_suffixes: Sequence[str] = ()) -> list[int]:
    """For each document, the index of the kept document with the same normalized URL (itself if kept).

    Within a group the kept one is the smallest ``url_priority``, ties going to the first seen.
    """
    groups: dict[str, list[int]] = {}
    for i, url in enumerate(urls):
        groups.setdefault(normalize_url(url, mirror_suffixes), []).append(i)
    keep = list(range(len(urls)))
    for members in groups.values():
        best = min(members, key=lambda i: (url_priority(urls[i], mirror_suffixes), i))
        for i in members:
            keep[i] = best
    return keep


# ---------------------------------------------------------------------- lines


def dedup_lines(texts: Sequence[str], mode: str = "drop_all") -> tuple[list[str], int]:
    """Remove lines that occur more than once in the corpus (compared stripped; blank lines stay).

    ``mode="drop_all"`` removes every copy (CCNet: a line seen twice is boilerplate);
    ``mode="keep_first"`` keeps the first occurrence in corpus order. Returns the
    new texts and the number of lines removed.
    """
    if mode not in ("drop_all", "keep_first"):
        raise ValueError(f"mode must be 'drop_all' or 'keep_first', got {mode!r}")
    counts: dict[str, int] = {}
    for text in texts:
        for line in text.split("\n"):
            if line.strip():
                counts[line.strip()] = counts.get(line.strip(), 0) + 1
    seen: set[str] = set()
    out, removed = [], 0
    for text in texts:
        kept = []
        for line in text.split("\n"):
            key = line.strip()
            drop = bool(key) and counts[key] > 1 and (mode == "drop_all" or key in seen)
            seen.add(key)
            removed += drop
            if not drop:
                kept.append(line)
        out.append("\n".join(kept))
    return out, removed


# ---------------------------------------------------------------------- MinHash


def shingles(text: str, n: int = 5) -> set[str]:
    """Word ``n``-grams of ``normalize_text(text)`` joined by spaces (the whole text if it has fewer words)."""
    words = normalize_text(text).split()
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    return len(a & b) / len(a | b) if a or b else 1.0


def sha1_hash32(data: bytes) -> int:
    """The first 4 bytes of SHA-1, little-endian: datasketch's default 32-bit hash."""
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: a bijection that spreads input bits (uint32 in, uint32 out)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (a, b) of ``num_perm`` hash permutations h -> a*h + b mod 2^32, each shape (num_perm,) uint32.

    ``a`` is odd, so each map is a bijection on 32-bit values; drawn exactly as
    datasketch (>= 2.0, scheme ``affine32``) draws them, so signatures agree.
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


class MinHasher:
    """MinHash signatures: ``sig[k] = min over shingles s of perm_k(fmix32(sha1_32(s)))``.

    P(sig_A[k] == sig_B[k]) = Jaccard(A, B) for a random permutation, so the
    share of equal entries estimates the Jaccard similarity.
    """

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        self.num_perm, self.ngram, self.seed = num_perm, ngram, seed
        self.a, self.b = permutations(num_perm, seed)

    def signature_of_shingles(self, items: set[str]) -> np.ndarray:
        """(num_perm,) uint32; all 2^32-1 for an empty set."""
        if not items:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        hv = fmix32(np.array([sha1_hash32(s.encode("utf-8")) for s in sorted(items)], dtype=np.uint32))
        return (hv[:, None] * self.a[None, :] + self.b[None, :]).min(axis=0)  # (S, P) -> (P,), wraps mod 2^32

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(N, num_perm) uint32 signatures of the texts' word ``ngram`` shingles."""
        return np.stack([self.signature_of_shingles(shingles(t, self.ngram)) for t in texts]) if len(texts) else \
            np.zeros((0, self.num_perm), dtype=np.uint32)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal signature entries."""
    return float(np.mean(sig_a == sig_b))


# ---------------------------------------------------------------------- LSH


def candidate_probability(s: np.ndarray | float, bands: int, rows: int):
    """The S-curve: P(two documents of Jaccard ``s`` share at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


def _area(f: Callable, lo: float, hi: float, steps: int = 2001) -> float:
    x = np.linspace(lo, hi, steps)
    return float(np.trapezoid(f(x), x))


def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimizing the weighted areas under the S-curve:
    false positives = area below ``threshold``, false negatives = area above it of (1 - curve).

    Equal weights are datasketch's default. ``near_duplicates`` verifies every
    candidate with the true Jaccard, so a false positive costs only time while a
    false negative is a missed duplicate: it weights them 0.1 / 0.9.
    """
    best, best_err = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _area(lambda s: candidate_probability(s, b, r), 0.0, threshold)
            fn = _area(lambda s: 1 - candidate_probability(s, b, r), threshold, 1.0)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def lsh_candidates(sigs: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on all ``rows`` entries of at least one of ``bands`` bands.

    ``sigs``: (N, P) with P >= bands*rows; band k covers columns [k*rows, (k+1)*rows).
    """
    pairs: set[tuple[int, int]] = set()
    for k in range(bands):
        band = np.ascontiguousarray(sigs[:, k * rows:(k + 1) * rows])
        buckets: dict[bytes, list[int]] = {}
        for i, key in enumerate(band):
            buckets.setdefault(key.tobytes(), []).append(i)
        for members in buckets.values():
            pairs.update((members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members)))
    return pairs


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving; ``find`` returns the smallest index of a set."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)  # the root stays the smallest index


def near_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, ngram: int = 5,
                    seed: int = 1, bands_rows: tuple[int, int] | None = None,
                    fn_weight: float = 0.9) -> tuple[list[int], set[tuple[int, int]]]:
    """Near-duplicate clusters by MinHash + LSH + true-Jaccard verification.

    Returns (cluster representative per document, verified pairs). The
    representative is the smallest index in the cluster; a document is kept iff
    ``rep[i] == i``. A candidate pair counts only if the true Jaccard of its
    shingle sets is >= ``threshold``, so LSH can only cost recall, not precision.
    """
    sets = [shingles(t, ngram) for t in texts]
    hasher = MinHasher(num_perm, ngram, seed)
    sigs = np.stack([hasher.signature_of_shingles(s) for s in sets]) if sets else np.zeros((0, num_perm), np.uint32)
    bands, rows = bands_rows or lsh_params(threshold, num_perm, 1.0 - fn_weight, fn_weight)
    pairs = {(i, j) for i, j in lsh_candidates(sigs, bands, rows) if jaccard(sets[i], sets[j]) >= threshold}
    uf = UnionFind(len(texts))
    for i, j in pairs:
        uf.union(i, j)
    return [uf.find(i) for i in range(len(texts))], pairs


# ---------------------------------------------------------------------- exact substrings (suffix array)


def suffix_array(ids: np.ndarray) -> np.ndarray:
    """Start positions of the suffixes of ``ids`` (1-D int array, length n) in sorted order, by prefix doubling.

    Each round sorts suffixes by (rank of first k symbols, rank of the next k)
    with one ``lexsort``, so O(n log^2 n) time and O(n) memory.
    """
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rank = np.unique(ids, return_inverse=True)[1].astype(np.int64)
    k = 1
    while True:
        second = np.full(n, -1, dtype=np.int64)
        if k < n:
            second[:n - k] = rank[k:]  # rank of the next k symbols; -1 past the end sorts first
        sa = np.lexsort((second, rank))
        changed = np.empty(n, dtype=np.int64)
        changed[0] = 0
        changed[1:] = (rank[sa[1:]] != rank[sa[:-1]]) | (second[sa[1:]] != second[sa[:-1]])
        new_rank = np.empty(n, dtype=np.int64)
        new_rank[sa] = np.cumsum(changed)
        rank = new_rank
        if rank.max() == n - 1 or k >= n:
            return sa
        k *= 2


def lcp_array(ids: np.ndarray, sa: np.ndarray) -> np.ndarray:
    """Kasai's algorithm: ``lcp[i]`` = common prefix length of suffixes ``sa[i-1]`` and ``sa[i]`` (lcp[0] = 0)."""
    n = len(ids)
    rank = np.empty(n, dtype=np.int64)
    rank[sa] = np.arange(n)
    seq, sa_l, rank_l = ids.tolist(), sa.tolist(), rank.tolist()
    lcp = [0] * n
    h = 0
    for i in range(n):
        r = rank_l[i]
        if r == 0:
            h = 0
            continue
        j = sa_l[r - 1]
        while i + h < n and j + h < n and seq[i + h] == seq[j + h]:
            h += 1
        lcp[r] = h
        if h:
            h -= 1
    return np.array(lcp, dtype=np.int64)


def duplicate_spans(docs: Sequence[Sequence[str]], min_tokens: int = 50) -> list[list[tuple[int, int]]]:
    """Token spans of each document that belong to a run of ``min_tokens`` or more tokens occurring twice
    in the corpus (in the same or another document), as sorted, merged ``[start, end)`` token ranges.

    The documents are concatenated with a unique separator after each, so no
    match crosses a boundary. A window of ``min_tokens`` tokens starting at
    position p repeats iff the LCP of suffix p with a neighbour in the suffix
    array is >= ``min_tokens``; the spans are the union of those windows.
    """
    vocab: dict[str, int] = {}
    seq, starts = [], []
    for d, tokens in enumerate(docs):
        starts.append(len(seq))
        seq += [vocab.setdefault(t, len(vocab)) for t in tokens]
        seq.append(-1 - d)  # unique separator
    ids = np.array(seq, dtype=np.int64)
    sa = suffix_array(ids)
    lcp = lcp_array(ids, sa)
    best = np.maximum(lcp, np.append(lcp[1:], 0))  # (n,) longest match with either neighbour, by SA rank
    repeated = np.zeros(len(ids), dtype=bool)
    repeated[sa] = best >= min_tokens
    out = []
    for d, tokens in enumerate(docs):
        spans: list[tuple[int, int]] = []
        for p in np.flatnonzero(repeated[starts[d]:starts[d] + len(tokens)]).tolist():
            if spans and p <= spans[-1][1]:
                spans[-1] = (spans[-1][0], p + min_tokens)
            else:
                spans.append((p, p + min_tokens))
        out.append(spans)
    return out


def duplicate_spans_brute_force(docs: Sequence[Sequence[str]], min_tokens: int = 50) -> list[list[tuple[int, int]]]:
    """The same as ``duplicate_spans`` by counting every window of ``min_tokens`` tokens (for tests)."""
    counts: dict[tuple, int] = {}
    for tokens in docs:
        for p in range(len(tokens) - min_tokens + 1):
            key = tuple(tokens[p:p + min_tokens])
            counts[key] = counts.get(key, 0) + 1
    out = []
    for tokens in docs:
        spans: list[tuple[int, int]] = []
        for p in range(len(tokens) - min_tokens + 1):
            if counts[tuple(tokens[p:p + min_tokens])] > 1:
                if spans and p <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], p + min_tokens)
                else:
                    spans.append((p, p + min_tokens))
        out.append(spans)
    return out


def remove_spans(tokens: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[str]:
    """``tokens`` without the token ranges in ``spans``."""
    drop = np.zeros(len(tokens), dtype=bool)
    for s, e in spans:
        drop[s:e] = True
    return [t for t, d in zip(tokens, drop) if not d]
