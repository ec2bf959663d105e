"""Deduplication (중복 제거): exact hashes, URLs, lines, near duplicates (MinHash + LSH), exact substrings.

Why (Lee et al. 2021): duplicated text wastes compute and is memorized. Five
levels, from cheapest to finest:

- ``exact_duplicates``: documents whose *normalized* text hashes alike;
- ``url_duplicates``: documents whose URLs normalize alike (keep one by ``url_priority``);
- ``dedup_lines``: lines repeated across the corpus ("drop all copies" as in
  CCNet, or "keep the first");
- ``near_duplicates``: MinHash signatures, LSH banding with bands and rows
  chosen from the S-curve, true-Jaccard verification, union-find clusters.
  By default shingles are hashed for the whole corpus at once with numpy
  (``HashedShingles``, ``hash="fast"``); ``hash="sha1"`` reproduces datasketch's
  signatures bit for bit, one SHA-1 per shingle;
- ``duplicate_spans``: token spans of ``min_tokens`` or more that occur twice,
  found with a suffix array.

Normalization uses NFC, never NFKD/NFD: decomposition splits each Hangul
syllable (한) into conjoining jamo (ᄒ ᅡ ᆫ), which changes lengths, offsets and
what a "character" is; NFC keeps syllables whole and merges decomposed input back.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from .. import checks

# ---------------------------------------------------------------------- normalization


class _SpaceTable(dict):
    """A ``str.translate`` table: code point -> " " for punctuation, symbols, separators and control characters
    (Unicode categories P*, S*, Z*, C*), else the character itself; each code point is classified on first sight."""

    def __missing__(self, code_point: int) -> str:
        ch = chr(code_point)
        self[code_point] = out = " " if unicodedata.category(ch)[0] in "PSZC" else ch
        return out


_SPACES = _SpaceTable()


def normalize_text(text: str) -> str:
    """NFC, case-folded, punctuation and symbols turned into spaces, whitespace collapsed."""
    text = checks.text("text", text)
    text = unicodedata.normalize("NFC", text).casefold().translate(_SPACES)  # one C loop, not one per character
    return " ".join(text.split())


def text_hash(text: str) -> str:
    """SHA-1 hex digest of ``normalize_text(text)``."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """For each document, the index of the first document with the same normalized text (itself if none).

    A document is kept iff ``result[i] == i``.
    """
    first: dict[str, int] = {}
    return [first.setdefault(text_hash(t), i) for i, t in enumerate(checks.texts("texts", texts))]


# ---------------------------------------------------------------------- URLs

TRACKING_PARAMS = ("fbclid", "gclid", "ref", "source")


def split_url(url: str):
    """``urlsplit`` of the stripped ``url``; a ``TypeError`` for a non-string, a ``ValueError`` naming the URL
    for one it cannot read (an unclosed IPv6 bracket, a bad port)."""
    try:
        parts = urlsplit(checks.text("url", url).strip())
        parts.port  # noqa: B018 -- parses the port, so a bad one fails here, not later
    except ValueError as err:
        raise ValueError(f"url: cannot read {url!r} ({err})") from None
    return parts


def normalize_url(url: str, mirror_suffixes: Sequence[str] = ()) -> str:
    """The page a URL names: lower-case host without ``www.``/``m.`` or a mirror suffix, no scheme,
    no fragment, no tracking parameters (``utm_*``, ``fbclid``, ...), sorted query, no trailing slash.

    A URL ``urlsplit`` cannot read (``http://[::1``) is a ``ValueError`` that names it."""
    parts = split_url(url)
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
    parts = split_url(url)
    host = (parts.hostname or "").lower()
    mirrored = any(host.endswith("." + s) for s in mirror_suffixes)
    return (parts.scheme != "https", mirrored, bool(parts.query or parts.fragment), len(url))


def url_duplicates(urls: Sequence[str], mirror_suffixes: Sequence[str] = ()) -> list[int]:
    """For each document, the index of the kept document with the same normalized URL (itself if kept).

    Within a group the kept one is the smallest ``url_priority``, ties going to the first seen.
    """
    urls = checks.texts("urls", urls)
    groups: dict[str, list[int]] = {}
    for i, url in enumerate(urls):
        try:
            key = normalize_url(url, mirror_suffixes)
        except ValueError as err:
            raise ValueError(f"urls[{i}]: {err}") from None
        groups.setdefault(key, []).append(i)
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
    texts = checks.texts("texts", texts)
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


HASHES = ("fast", "sha1")  # how MinHasher hashes a shingle; "sha1" reproduces datasketch bit for bit


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


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection that spreads every input bit over the output (uint64 in, uint64 out)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)  # wraps mod 2^64
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def fold(values: np.ndarray, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """64-bit hash of each run ``values[starts[i]:starts[i] + widths[i]]``: ``h = width``, then
    ``h = mix64(h ^ value)`` for each value in order (so order matters, and runs of different widths differ).

    ``values``: (V,) integers; ``starts``, ``widths``: (R,). Returns (R,) uint64. One numpy step per
    position k, over the runs longer than k: the work is the total length of the runs.
    """
    h = widths.astype(np.uint64)
    run = np.arange(len(starts))
    for k in range(int(widths.max(initial=0))):
        run = run[widths[run] > k]  # the runs with a k-th value
        h[run] = mix64(h[run] ^ values[starts[run] + k].astype(np.uint64))
    return h


def word_hash(word: str) -> int:
    """The "fast" 64-bit hash of a word: ``fold`` over its code points. Stable across processes and machines
    (unlike Python's ``hash``, salted per process)."""
    return int(fold(np.array([ord(c) for c in word], dtype=np.uint64), np.array([0]), np.array([len(word)]))[0])


def shingle_hash(shingle: str) -> int:
    """The "fast" 64-bit hash of a shingle: ``fold`` over the ``word_hash`` of its words (split on spaces,
    as ``shingles`` joins them)."""
    words = np.array([word_hash(w) for w in shingle.split(" ")], dtype=np.uint64)
    return int(fold(words, np.array([0]), np.array([len(words)]))[0])


class HashedShingles:
    """Every document's word ``ngram`` shingles as 64-bit ``shingle_hash`` values, hashed for a corpus at once.

    Document ``d`` owns ``values[offsets[d]:offsets[d + 1]]`` (in text order; ``self[d]``: sorted and
    distinct). Same sets as ``shingles`` up to 64-bit hash collisions (for a million distinct
    shingles, a chance of about 3e-8 that any two collide). No Python loop over words: the corpus
    becomes one array of code points, words are the runs of characters that ``normalize_text`` keeps,
    and ``fold`` hashes all words, then all shingles, with numpy.
    """

    def __init__(self, texts: Sequence[str], ngram: int = 5):
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        texts = checks.texts("texts", texts)
        folded = [unicodedata.normalize("NFC", t).casefold() for t in texts]
        joined = " ".join(folded)  # a space between texts, so no word crosses two
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)  # (C,) code points
        present = np.flatnonzero(np.bincount(cp)) if len(cp) else np.zeros(0, dtype=np.int64)
        keep = np.zeros(present[-1] + 1 if len(present) else 1, dtype=bool)  # code point -> part of a word
        keep[present] = [_SPACES[c] != " " for c in present.tolist()]
        letter = keep[cp]  # (C,)
        edge = np.diff(np.concatenate([[False], letter, [False]]).astype(np.int8))  # +1 where a word starts, -1 after
        word_start, word_end = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)  # (W,) each
        word = fold(cp, word_start, word_end - word_start)  # (W,) word_hash of every word, in order
        text_end = np.cumsum([len(t) + 1 for t in folded])  # (N,) one past each text's separating space
        length = np.bincount(np.searchsorted(text_end, word_start, side="right"), minlength=len(texts))  # (N,) words
        count = np.where(length > ngram, length - ngram + 1, np.minimum(length, 1))  # (N,) shingles per document
        self.offsets = np.concatenate([[0], np.cumsum(count)])  # (N + 1,)
        doc = np.repeat(np.arange(len(texts)), count)  # (S,) the document of each shingle
        start = (np.cumsum(length) - length)[doc] + np.arange(len(doc)) - self.offsets[doc]  # (S,) its first word
        self.values = fold(word, start, np.minimum(length[doc], ngram))  # (S,) ngram words, or a shorter whole text

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, d: int) -> np.ndarray:
        """Document ``d``'s distinct shingle hashes, sorted."""
        return np.unique(self.values[self.offsets[d]:self.offsets[d + 1]])

    def jaccard(self, i: int, j: int) -> float:
        """Jaccard similarity of documents ``i`` and ``j``'s shingle sets (1.0 for two empty sets)."""
        a, b = self[i], self[j]
        common = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - common
        return common / union if union else 1.0


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
    """MinHash signatures: ``sig[k] = min over shingles s of perm_k(h(s))`` for a 32-bit shingle hash ``h``.

    P(sig_A[k] == sig_B[k]) = Jaccard(A, B) for a random permutation, so the
    share of equal entries estimates the Jaccard similarity. ``hash`` picks ``h``:

    - ``"fast"`` (default): the top 32 bits of ``shingle_hash``, computed for all shingles of all
      documents in one numpy pass (``HashedShingles``), then every permutation of every shingle as
      one (num_perm, shingles) array and a minimum per document (``np.minimum.reduceat``);
    - ``"sha1"``: datasketch's ``fmix32(sha1_hash32(s))``, one shingle at a time: signatures equal
      ``datasketch.MinHash``'s bit for bit.
    """

    block = 1 << 12  # shingles per (num_perm, shingles) block: 2 MB of uint32 at 128 permutations

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1, hash: str = "fast"):
        if hash not in HASHES:
            raise ValueError(f"hash must be one of {HASHES}, got {hash!r}")
        if num_perm < 1:
            raise ValueError(f"num_perm must be >= 1, got {num_perm}")
        self.num_perm, self.ngram, self.seed, self.hash = num_perm, ngram, seed, hash
        self.a, self.b = permutations(num_perm, seed)

    def _hash32(self, items: Sequence[str]) -> np.ndarray:
        if self.hash == "sha1":
            return fmix32(np.array([sha1_hash32(s.encode("utf-8")) for s in items], dtype=np.uint32))
        return (np.array([shingle_hash(s) for s in items], dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)

    def signature_of_shingles(self, items: set[str]) -> np.ndarray:
        """(num_perm,) uint32; all 2^32-1 for an empty set."""
        if not items:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        hv = self._hash32(sorted(items))  # (S,)
        return (hv[:, None] * self.a[None, :] + self.b[None, :]).min(axis=0)  # (S, P) -> (P,), wraps mod 2^32

    def signatures_of_hashed(self, hashed: HashedShingles) -> np.ndarray:
        """(N, num_perm) uint32 signatures of ``HashedShingles`` (the "fast" hash), a block of documents at a time.

        Each block is one (num_perm, shingles) array of every permutation of every shingle, reduced
        to a minimum per document along its rows (contiguous, so numpy runs through them fast).
        """
        sigs = np.full((self.num_perm, len(hashed)), np.iinfo(np.uint32).max, dtype=np.uint32)  # (P, N)
        hv = (hashed.values >> np.uint64(32)).astype(np.uint32)  # (S,) the top 32 bits
        docs = np.flatnonzero(np.diff(hashed.offsets))  # documents with at least one shingle
        starts = hashed.offsets[docs]
        a, b = self.a[:, None], self.b[:, None]  # (P, 1)
        i = 0
        while i < len(docs):
            j = max(i + 1, int(np.searchsorted(starts, starts[i] + self.block)))  # documents starting in the block
            lo, hi = starts[i], hashed.offsets[docs[j - 1] + 1]
            permuted = a * hv[None, lo:hi]  # (P, shingles): a*h + b, wrapping mod 2^32
            permuted += b
            sigs[:, docs[i:j]] = np.minimum.reduceat(permuted, starts[i:j] - lo, axis=1)  # (P, documents)
            i = j
        return np.ascontiguousarray(sigs.T)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(N, num_perm) uint32 signatures of the texts' word ``ngram`` shingles."""
        texts = checks.texts("texts", texts)
        if self.hash == "fast":
            return self.signatures_of_hashed(HashedShingles(texts, self.ngram))
        return np.stack([self.signature_of_shingles(shingles(t, self.ngram)) for t in texts]) if len(texts) else \
            np.zeros((0, self.num_perm), dtype=np.uint32)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal signature entries."""
    return float(np.mean(sig_a == sig_b))


# ---------------------------------------------------------------------- LSH


def candidate_probability(s: np.ndarray | float, bands, rows):
    """The S-curve: P(two documents of Jaccard ``s`` share at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


@functools.lru_cache(maxsize=None)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimizing the weighted areas under the S-curve:
    false positives = area below ``threshold``, false negatives = area above it of (1 - curve).

    Equal weights are datasketch's default. ``near_duplicates`` verifies every
    candidate with the true Jaccard, so a false positive costs only time while a
    false negative is a missed duplicate: it weights them 0.1 / 0.9.
    Areas by the trapezoid rule on 2001 points; all ``rows`` of one ``bands`` at once.
    """
    below, above = np.linspace(0.0, threshold, 2001), np.linspace(threshold, 1.0, 2001)
    best, best_err = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1)[:, None]  # (R, 1)
        fp = np.trapezoid(candidate_probability(below, b, r), below, axis=1)  # (R,)
        fn = np.trapezoid(1 - candidate_probability(above, b, r), above, axis=1)
        err = fp_weight * fp + fn_weight * fn
        k = int(np.argmin(err))  # the first minimum, as a strict "<" scan would keep
        if err[k] < best_err:
            best, best_err = (b, k + 1), float(err[k])
    return best


def lsh_candidate_pairs(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(M, 2) int64 pairs (i < j), sorted, whose signatures agree on all ``rows`` entries of at least one band.

    ``sigs``: (N, P) with P >= bands*rows; band k covers columns [k*rows, (k+1)*rows). Each band of
    each document is hashed to one 64-bit bucket key (its index and rows folded with ``mix64``); one
    sort of all N*bands keys puts each bucket's documents next to each other, and each is paired
    with the next 1, 2, ... while they share its key. A key shared by chance (2^-64 per pair) is
    caught by comparing the pair's bands themselves, so the pairs are exact.
    """
    n, width = sigs.shape
    if bands < 1 or rows < 1 or bands * rows > width:
        raise ValueError(f"bands x rows = {bands} x {rows} does not fit signatures of {width} entries")
    banded = sigs[:, :bands * rows].reshape(n, bands, rows)  # (N, b, r)
    key = np.broadcast_to(np.arange(bands, dtype=np.uint64), (n, bands))  # (N, b) start from the band index
    for c in range(rows):
        key = mix64(key ^ banded[:, :, c].astype(np.uint64))
    key = key.ravel()  # (N*b,) document-major
    order = np.argsort(key, kind="stable")
    ranked, doc = key[order], order // bands
    found = []
    d = 1
    while d < len(ranked) and (same := ranked[d:] == ranked[:-d]).any():  # sorted positions d apart, one bucket
        i, j = doc[:-d][same], doc[d:][same]
        found.append((np.minimum(i, j) * n + np.maximum(i, j))[i != j])
        d += 1
    codes = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)  # i * n + j, i < j
    pairs = np.stack([codes // n, codes % n], axis=1)
    exact = (banded[pairs[:, 0]] == banded[pairs[:, 1]]).all(axis=2).any(axis=1)  # (M,) some band fully equal
    return pairs[exact].astype(np.int64)


def lsh_candidates(sigs: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """``lsh_candidate_pairs`` as a set of (i, j) tuples."""
    return set(map(tuple, lsh_candidate_pairs(sigs, bands, rows).tolist()))


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
                    fn_weight: float = 0.9, hash: str = "fast") -> tuple[list[int], set[tuple[int, int]]]:
    """Near-duplicate clusters by MinHash + LSH + true-Jaccard verification.

    Returns (cluster representative per document, verified pairs). The
    representative is the smallest index in the cluster; a document is kept iff
    ``rep[i] == i``. A candidate pair counts only if the true Jaccard of its
    shingle sets is >= ``threshold``, so LSH can only cost recall, not precision.
    ``hash="fast"`` hashes and verifies with 64-bit shingle hashes (``HashedShingles``);
    ``hash="sha1"`` with datasketch's signatures and the shingle strings themselves.
    """
    texts = checks.texts("texts", texts)
    hasher = MinHasher(num_perm, ngram, seed, hash)
    if hash == "fast":
        hashed = HashedShingles(texts, ngram)
        sigs = hasher.signatures_of_hashed(hashed)
        similarity = hashed.jaccard
    else:
        sets = [shingles(t, ngram) for t in texts]
        sigs = np.stack([hasher.signature_of_shingles(s) for s in sets]) if sets else \
            np.zeros((0, num_perm), np.uint32)
        similarity = lambda i, j: jaccard(sets[i], sets[j])  # noqa: E731
    bands, rows = bands_rows or lsh_params(threshold, num_perm, 1.0 - fn_weight, fn_weight)
    pairs = {(i, j) for i, j in lsh_candidate_pairs(sigs, bands, rows).tolist() if similarity(i, j) >= threshold}
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
    docs = checks.sequence("docs", docs, "token lists")
    docs = [checks.texts(f"docs[{d}]", tokens) for d, tokens in enumerate(docs)]
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
    return [_merge_windows(np.flatnonzero(repeated[starts[d]:starts[d] + len(tokens)]).tolist(), min_tokens)
            for d, tokens in enumerate(docs)]


def _merge_windows(positions: Iterable[int], width: int) -> list[tuple[int, int]]:
    """Spans covering the windows ``[p, p + width)`` of ascending ``positions``, overlapping ones merged."""
    spans: list[tuple[int, int]] = []
    for p in positions:
        if spans and p <= spans[-1][1]:
            spans[-1] = (spans[-1][0], p + width)
        else:
            spans.append((p, p + width))
    return spans


def duplicate_spans_brute_force(docs: Sequence[Sequence[str]], min_tokens: int = 50) -> list[list[tuple[int, int]]]:
    """The same as ``duplicate_spans`` by counting every window of ``min_tokens`` tokens (for tests)."""
    counts: dict[tuple, int] = {}
    for tokens in docs:
        for p in range(len(tokens) - min_tokens + 1):
            key = tuple(tokens[p:p + min_tokens])
            counts[key] = counts.get(key, 0) + 1
    return [_merge_windows((p for p in range(len(tokens) - min_tokens + 1)
                            if counts[tuple(tokens[p:p + min_tokens])] > 1), min_tokens) for tokens in docs]


def remove_spans(tokens: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[str]:
    """``tokens`` without the token ranges in ``spans``."""
    drop = np.zeros(len(tokens), dtype=bool)
    for s, e in spans:
        drop[s:e] = True
    return [t for t, d in zip(tokens, drop) if not d]
