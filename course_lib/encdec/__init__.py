"""Chapter 04, encoder-decoder pretraining: T5's span corruption, the ``t5`` model, and what an encoder-decoder reads.

The steps, each a function a notebook can call on its own::

    corrupt      spans.random_spans_noise_mask, corrupt_spans   T5's noise spans and sentinels
    data         spans.SpanCorruptedBlocks                      base's packed blocks, corrupted afresh each pass
    pretrain     zoo.get("t5")                                  t5.pretrain_t5: T5 by span corruption
    fine-tune    seq2seq.finetune(name, model, ...)             one translation budget for every model
    decode       seq2seq.translate, evaluate_translation        greedy outputs; chrF, BLEU and the target loss
    look inside  cross_attention.CrossAttention, ...            encoder-decoder attention, from scratch and read out
    compare      compare.compare_architectures                  t5 against base after the same fine-tuning
                 compare.compare_objectives                     span corruption against single-token masking

Modules: ``spans`` (span corruption), ``t5`` (the ``t5`` recipe), ``seq2seq``
(translation data, fine-tuning, decoding and scores for either kind of model),
``cross_attention`` (from scratch, read out, plotted), ``compare`` (the chapter's two
experiments). ``t5`` pretrains on chapter 03's packed blocks (``pretrain-data``).
"""

from .compare import (OBJECTIVES, Chunks, Comparison, compare_architectures, compare_objectives, held_out_chunks,
                      hidden_token_loss, pieces_for_sentinels, pretrain_objective)
from .cross_attention import (CrossAttention, attention_while_generating, cross_attention_inputs,
                              cross_attention_weights, eager_attention, plot_cross_attention, romanize, token_labels)
from .seq2seq import (IGNORE_INDEX, SEPARATOR, FinetuneRun, PadCollator, decoder_example, decoder_prompt,
                      encoder_decoder_example, evaluate_translation, finetune, finetune_config, make_examples,
                      target_loss, translate, translation_data)
from .spans import (MEAN_NOISE_SPAN_LENGTH, NOISE_DENSITY, SpanCorruptedBlocks, SpanCorruptionCollator, corrupt_spans,
                    noise_span_counts, random_segmentation, random_spans_noise_mask, sentinel_ids, span_corrupt,
                    spans_noise_mask)
from .t5 import new_t5_model, pretrain_t5, span_corruption_data

__all__ = ["OBJECTIVES", "Chunks", "Comparison", "compare_architectures", "compare_objectives", "held_out_chunks",
           "hidden_token_loss", "pieces_for_sentinels", "pretrain_objective", "CrossAttention",
           "attention_while_generating", "cross_attention_inputs", "cross_attention_weights", "eager_attention",
           "plot_cross_attention", "romanize", "token_labels", "IGNORE_INDEX", "SEPARATOR", "FinetuneRun",
           "PadCollator", "decoder_example", "decoder_prompt", "encoder_decoder_example", "evaluate_translation",
           "finetune", "finetune_config", "make_examples", "target_loss", "translate", "translation_data",
           "MEAN_NOISE_SPAN_LENGTH", "NOISE_DENSITY", "SpanCorruptedBlocks", "SpanCorruptionCollator",
           "corrupt_spans", "noise_span_counts", "random_segmentation", "random_spans_noise_mask", "sentinel_ids",
           "span_corrupt", "spans_noise_mask", "new_t5_model", "pretrain_t5", "span_corruption_data"]
