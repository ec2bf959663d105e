"""Chapter 10, retrieval (검색): sparse, dense and hybrid retrieval over the world, and the index in the zoo (survey §7).

Modules: ``corpus`` (passages with ids, checked; the world's held-out questions with their
relevant passages; training pairs; the named errors), ``tokens`` (English words and three
Korean tokenizations: whitespace, character bigrams, Kiwi morphemes), ``bm25`` (Okapi BM25
from scratch with Lucene's IDF, equal to ``bm25s``; the sparse retriever), ``dense``
(encoders: pooling, unit vectors, all-MiniLM-L6-v2 from its package), ``bi_encoder`` (the
``bi-encoder`` recipe: ``base`` trained with in-batch negatives), ``index`` (faiss exact,
IVF and HNSW indexes, the recall/latency trade-off, the saved and checked ``DenseIndex``,
the ``retrieval-index`` recipe), ``hybrid`` (reciprocal rank fusion, weighted score
fusion), ``metrics`` (recall@k, MRR, nDCG@k), ``compare`` (every method side by side, per
language), ``rag`` (retriever + ``instruct`` reader, the prompt fitted to its context, citations,
closed-book baseline, cutoff and hallucination tables), ``qasa`` (selection, rationales,
composition; two-passage questions; HTML), ``small_reader`` (``instruct`` with half its layers
removed: the ``reader-small`` recipe), ``rag_eval`` (the experiments, the ``rag-eval`` artifact).
"""

from .bi_encoder import InBatchContrastive, train_bi_encoder
from .bm25 import BM25, SparseRetriever
from .compare import retrieval_rankings, retrieval_table
from .corpus import (Corpus, CorpusError, IndexMismatchError, QueryError, Ranking, RetrievalError, check_k,
                     check_query, eval_queries, load_corpus, stream_passages, training_pairs, world_corpus)
from .dense import Encoder, load_encoder, load_folder_encoder, load_minilm, minilm_folder, pool
from .hybrid import min_max, reciprocal_rank_fusion, weighted_fusion
from .index import (DenseIndex, DenseRetriever, ann_tradeoff, brute_force_top_k, check_same_corpus, flat_index,
                    hnsw_index, ivf_index)
from .metrics import evaluate, ndcg_at_k, recall_at_k, reciprocal_rank
from .qasa import Qasa, QasaAnswer, multi_passage_questions, question_vocabulary, render_html
from .rag import RAG, RagAnswer, closed_book, cutoff_table, hallucination_table, premise_questions
from .rag_eval import rag_experiments, size_comparison
from .small_reader import _build as _build_small_reader  # registers reader-small
from .tokens import KO_SCHEMES, char_bigrams, morphemes, tokenize, words

__all__ = ["InBatchContrastive", "train_bi_encoder", "BM25", "SparseRetriever", "retrieval_rankings",
           "retrieval_table", "Corpus", "CorpusError", "IndexMismatchError", "QueryError", "Ranking",
           "RetrievalError", "check_k", "check_query", "eval_queries", "load_corpus", "stream_passages", "training_pairs",
           "world_corpus", "Encoder",
           "load_encoder", "load_folder_encoder", "load_minilm", "minilm_folder", "pool", "min_max",
           "reciprocal_rank_fusion", "weighted_fusion", "DenseIndex", "DenseRetriever", "ann_tradeoff",
           "brute_force_top_k", "check_same_corpus", "flat_index", "hnsw_index", "ivf_index", "evaluate",
           "ndcg_at_k", "recall_at_k", "reciprocal_rank", "KO_SCHEMES", "char_bigrams", "morphemes", "tokenize",
           "words", "Qasa", "QasaAnswer", "multi_passage_questions", "question_vocabulary", "render_html", "RAG",
           "RagAnswer", "closed_book", "cutoff_table", "hallucination_table", "premise_questions", "rag_experiments", "size_comparison"]
