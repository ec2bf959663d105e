"""Vector indexes (벡터 색인) with faiss, and the dense index that the zoo builds once.

- Exact search: ``IndexFlatIP`` compares the query with every vector; on unit vectors the
  inner product is the cosine. :func:`brute_force_top_k` is the same search in numpy.
- Approximate search trades recall for speed. IVF clusters the vectors into ``nlist``
  cells with k-means and searches only the ``nprobe`` cells nearest the query; HNSW walks
  a graph of ``M`` neighbours per vector, keeping ``efSearch`` candidates. :func:`ann_tradeoff`
  measures recall@10 against the exact top 10, and the time per query, as they vary.
- :class:`DenseIndex`: a corpus, its embeddings (N, d) and their faiss index, saved to a
  folder with SHA-256 sums of each file and reloaded without embedding anything again. An
  index and a corpus that do not match (other ids, size or texts), or files from another
  build, raise :class:`IndexMismatchError` rather than return wrong passages.

    zoo.get("retrieval-index")   the world corpus embedded by retrieval.encoder, exact index
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .. import zoo
from ..config import Config
from .corpus import Corpus, IndexMismatchError, Ranking, check_k, load_corpus
from .dense import Encoder, load_encoder

FILES = {"corpus": "corpus.jsonl", "embeddings": "embeddings.npy", "index": "index.faiss"}
META = "index.json"


def brute_force_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores (Q, k), indices (Q, k)) of the ``k`` largest inner products, as faiss's ``search`` returns them."""
    scores = queries @ embeddings.T  # (Q, N)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, axis=1), top


def flat_index(embeddings: np.ndarray) -> faiss.Index:
    """Exact inner-product search over ``embeddings`` (N, d) float32."""
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    return index


def ivf_index(embeddings: np.ndarray, nlist: int) -> faiss.IndexIVFFlat:
    """IVF: k-means into ``nlist`` cells (at most one per vector), each vector stored in its nearest cell."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    nlist = max(1, min(nlist, len(x)))
    quantizer = faiss.IndexFlatIP(x.shape[1])
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # a small corpus: no warning for fewer than 39 points per cell
    index.train(x)
    index.add(x)
    return index


def hnsw_index(embeddings: np.ndarray, m: int) -> faiss.IndexHNSWFlat:
    """HNSW: a layered graph with ``m`` neighbours per vector (efConstruction 40, faiss's default)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    return index


def _timed_search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    _, found = index.search(queries, k)
    return found, (time.perf_counter() - start) * 1000 / len(queries)


def ann_tradeoff(embeddings: np.ndarray, queries: np.ndarray, k: int = 10, nlist: int = 32, m: int = 16,
                 nprobes=(1, 2, 4, 8, 16, 32), ef_searches=(8, 16, 32, 64, 128)) -> list[dict]:
    """Recall@k against the exact top k, and milliseconds per query, for IVF and HNSW settings.

    Rows: ``index`` (flat, ivf, hnsw), ``param`` (nprobe, efSearch; none for flat), ``value``,
    ``recall`` (mean share of the exact top ``k`` found), ``ms_per_query`` (the whole batch
    searched at once, divided by the queries) and ``build_s`` (seconds to build the index).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    rows = []
    for name, make, param, values in (("flat", lambda: flat_index(embeddings), "", (0,)),
                                      ("ivf", lambda: ivf_index(embeddings, nlist), "nprobe", nprobes),
                                      ("hnsw", lambda: hnsw_index(embeddings, m), "efSearch", ef_searches)):
        start = time.perf_counter()
        index = make()
        build_s = time.perf_counter() - start
        for value in values:
            if name == "ivf":
                index.nprobe = min(value, index.nlist)
            elif name == "hnsw":
                index.hnsw.efSearch = value
            found, ms = _timed_search(index, queries, k)
            if name == "flat":
                exact = found  # the reference every approximate search is measured against
            recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])
            rows.append({"index": name, "param": param, "value": value, "recall": float(recall),
                         "ms_per_query": ms, "build_s": build_s})
    return rows


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class DenseIndex:
    """A corpus, its (N, d) embeddings and a faiss index over them, row i being passage ``corpus.ids[i]``."""

    corpus: Corpus
    embeddings: np.ndarray
    index: faiss.Index
    encoder: str = ""  # the encoder's name: queries must come from the same one

    def __post_init__(self):
        n, ntotal = len(self.corpus), self.index.ntotal
        if self.embeddings.shape[0] != n or ntotal != n:
            raise IndexMismatchError(f"the corpus has {n} passages but the embeddings have {self.embeddings.shape[0]} "
                                     f"rows and the faiss index {ntotal} vectors: they were built from different corpora")
        if self.embeddings.shape[1] != self.index.d:
            raise IndexMismatchError(f"embeddings of dimension {self.embeddings.shape[1]}, faiss index of {self.index.d}")

    @classmethod
    def build(cls, corpus: Corpus, encoder: Encoder) -> DenseIndex:
        """Embed every passage with ``encoder`` and index them exactly (``IndexFlatIP``)."""
        embeddings = encoder.encode(list(corpus.texts))
        return cls(corpus, embeddings, flat_index(embeddings), encoder.name)

    def save(self, folder: str | Path) -> Path:
        """Write the corpus (JSONL), embeddings (.npy), faiss index and ``index.json`` (sizes, SHA-256 sums)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / FILES["corpus"]).open("w", encoding="utf-8") as f:
            for row in zip(self.corpus.ids, self.corpus.langs, self.corpus.texts):
                f.write(json.dumps(dict(zip(("id", "lang", "text"), row)), ensure_ascii=False) + "\n")
        np.save(folder / FILES["embeddings"], self.embeddings)
        faiss.write_index(self.index, str(folder / FILES["index"]))
        meta = {"passages": len(self.corpus), "dim": int(self.index.d), "encoder": self.encoder,
                "corpus_fingerprint": self.corpus.fingerprint(),
                "sha256": {name: _sha256(folder / file) for name, file in FILES.items()}}
        (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, corpus: Corpus | None = None) -> DenseIndex:
        """What :meth:`save` wrote, checked file by file; with ``corpus``, also that it is the indexed one."""
        folder = Path(folder)
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        for name, file in FILES.items():
            if _sha256(folder / file) != meta["sha256"][name]:
                raise IndexMismatchError(f"{folder / file} is not the file this index was built with "
                                         f"(its SHA-256 differs from {META}'s): rebuild the index")
        stored = Corpus.from_rows(json.loads(line) for line in (folder / FILES["corpus"]).open(encoding="utf-8"))
        if corpus is not None:
            check_same_corpus(stored, corpus)
        return cls(stored, np.load(folder / FILES["embeddings"]), faiss.read_index(str(folder / FILES["index"])),
                   meta["encoder"])


def check_same_corpus(indexed: Corpus, corpus: Corpus) -> None:
    """An ``IndexMismatchError`` naming the first difference between the indexed corpus and ``corpus``."""
    if len(indexed) != len(corpus):
        raise IndexMismatchError(f"the index holds {len(indexed)} passages but the corpus has {len(corpus)}: "
                                 "it was built from another corpus")
    for i, (a, b) in enumerate(zip(indexed.ids, corpus.ids)):
        if a != b:
            raise IndexMismatchError(f"passage {i} is {a!r} in the index but {b!r} in the corpus: "
                                     "it was built from another corpus")
    if indexed.fingerprint() != corpus.fingerprint():
        changed = next(i for i, a, b in zip(indexed.ids, indexed.texts, corpus.texts) if a != b)
        raise IndexMismatchError(f"passage {changed!r} has another text in the corpus than in the index")


class DenseRetriever:
    """Queries embedded by ``encoder``, searched in ``index`` (which the same encoder must have built)."""

    def __init__(self, encoder: Encoder, index: DenseIndex):
        if encoder.dim != index.index.d or (index.encoder and encoder.name != index.encoder):
            raise IndexMismatchError(f"the index was built by {index.encoder!r} ({index.index.d} dimensions); "
                                     f"queries would come from {encoder.name!r} ({encoder.dim} dimensions)")
        self.encoder, self.index = encoder, index

    def search_many(self, queries: list[str], k: int, langs=None) -> list[Ranking]:
        """The ``k`` nearest passages of each query, as (id, cosine) pairs; ``langs`` is unused (one encoder)."""
        check_k(k, len(self.index.corpus))
        scores, found = self.index.index.search(self.encoder.encode(queries, queries=True), k)
        ids = self.index.corpus.ids
        return [[(ids[i], float(s)) for i, s in zip(row_i, row_s)] for row_i, row_s in zip(found, scores)]

    def search(self, query: str, k: int, lang: str = "en") -> Ranking:
        return self.search_many([query], k)[0]


def _load(path: Path, cfg: Config) -> DenseIndex:
    return DenseIndex.load(path)


@zoo.register(
    "retrieval-index", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation", "retrieval"),
    deps=("bi-encoder",), description="the corpus, its embeddings and a faiss index (chapter 10)",
)
def _build(cfg: Config, out: Path) -> None:
    DenseIndex.build(load_corpus(cfg), load_encoder(cfg)).save(out)
