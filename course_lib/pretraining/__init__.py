"""Chapter 03, decoder pretraining: the course tokenizer, packed data, the ``base`` model and what it learned.

The pipeline, each step a function a notebook can call on its own::

    documents      data.corpus_documents(cfg)         world documents (in_pretraining) and/or a real corpus
    split          world.split_documents(docs, ...)   held-out documents for perplexity, by duplicate cluster
    tokenizer      zoo.get("tokenizer")               byte-level BPE on the training documents (base.py)
    blocks         packing.pack / PackedBlocks        documents + <|endoftext|>, concatenated, cut into blocks
    model          zoo.get("base")                    models.new_decoder(cfg) trained by base.pretrain
    evaluation     packing.perplexity                 held-out perplexity
                   probes.fact_recall                 recall of the world's facts against how often they were read
                   icl.icl_accuracy                   worked examples in the prompt: in-context learning, on all,
                                                      known or fresh (passage-only) facts, with bootstrap intervals
                   induction.repeated_tokens_loss     the induction-head test
    copying        induction.learn_to_copy(cfg)       a tiny model on repeated random tokens: induction heads form
    extra rows     pretrain.copy_share, reading_share  copy rows (induction.CopyRows), reading exercises about
                                                      invented people (reading.ReadingRows)
    scale          zoo.get("reference-icl")           a real pretrained model on the same tests (reference.py)

Modules: ``data`` (the corpus, tokenizer fragmentation), ``base`` (the zoo recipes
``tokenizer``, ``pretrain-data`` and ``base``), ``probes`` (completions, fact recall),
``icl`` (in-context learning), ``bootstrap`` (intervals over questions), ``induction``
(repeated tokens, the copier), ``reading`` (reading rows), ``reference`` (the real model's
scores). Chapter 04 (``course_lib.encdec``) pretrains ``t5`` on the
same packed blocks.

``python -m course_lib train base --profile gpu`` pretrains ``base`` into a resumable run
folder, under ``accelerate launch`` or ``torchrun`` too.
"""

from .base import INDUCTION_LOG, induction_probe, pretrain, read_induction, training_rows
from .bootstrap import bootstrap_interval
from .data import TOKEN_FILES, corpus_documents, stream_hf, tokenizer_fragmentation
from .icl import (FRESH_FACTS, FRESH_POOL, ICL_DESCRIPTIONS, ICL_FACTS, ICL_LABELS, ICL_TASK, PASSAGE_DESCRIPTIONS,
                  answer_nll, fresh_items, icl_accuracy, icl_items, icl_prompt, icl_question, icl_scores, icl_summary,
                  known_facts, question_kind)
from .induction import (CopyRows, RepeatedTokens, copy_rows, copy_share_tradeoff, learn_to_copy, mixed_rows,
                        repeated_tokens_loss, with_copy_rows)
from .probes import (FREQUENT, complete, fact_frequency, fact_recall, frequent_recall, recall_by_frequency,
                     recall_context, recall_probe)
from .reading import ReadingRows
from .reference import REFERENCE_SHOTS, reference_scores

__all__ = ["pretrain", "INDUCTION_LOG", "induction_probe", "read_induction", "training_rows", "copy_rows",
           "mixed_rows", "ReadingRows", "REFERENCE_SHOTS", "reference_scores", "TOKEN_FILES", "corpus_documents", "stream_hf", "tokenizer_fragmentation", "ICL_DESCRIPTIONS",
           "ICL_LABELS", "ICL_TASK", "answer_nll", "icl_accuracy", "icl_items", "icl_prompt", "icl_question",
           "question_kind", "bootstrap_interval", "FRESH_FACTS", "FRESH_POOL", "ICL_FACTS", "PASSAGE_DESCRIPTIONS",
           "fresh_items", "icl_scores", "icl_summary", "known_facts", "CopyRows", "RepeatedTokens",
           "copy_share_tradeoff", "with_copy_rows", "learn_to_copy", "repeated_tokens_loss", "FREQUENT", "complete",
           "fact_frequency", "fact_recall", "frequent_recall", "recall_by_frequency", "recall_context", "recall_probe"]
