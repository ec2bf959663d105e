"""A smaller reader for the survey's claim that a small model with QASA beats a larger one without it.

    zoo.get("reader-small")   a TrainedModel: ``instruct`` with half its layers removed (chapter 09's
                              structured pruning, Taylor importance), recovered by fine-tuning on
                              ``compression.sequence_rows`` of instruct's own training rows (reading
                              exercises among them) for ``compression.sequence_steps`` steps

The survey (§7) reports that QASA lets a small model answer multi-passage questions better
than a much larger model answering from plain retrieval. The course has no family of
readers of different sizes trained alike, so it makes one: ``instruct`` shrunk by chapter
09's recipe. ``rag_eval`` asks it through QASA and compares it with ``instruct`` through
plain RAG, question by question.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import zoo
from ..config import Config
from ..models import TrainedModel, count_parameters


def _load(path: Path, cfg: Config) -> TrainedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return TrainedModel(model=AutoModelForCausalLM.from_pretrained(path), tokenizer=AutoTokenizer.from_pretrained(path),
                        path=path, metrics=[])


@zoo.register("reader-small", load=_load,
              sections=("run", "model", "world", "data", "pretrain", "curation", "instruct", "compression"),
              deps=("instruct", "pretrain-data"),
              description="chapter 10: instruct with half its layers removed, recovered on its training rows "
                          "(the small reader of QASA's small-vs-large comparison)")
def _build(cfg: Config, out: Path) -> None:
    from ..compression.distillation import sequence_distill
    from ..compression.experiments import calibration_blocks, sequence_rows, sequence_train_config
    from ..compression.structured import structured_prune

    instruct, data = zoo.get("instruct", cfg), zoo.get("pretrain-data", cfg)
    layers = instruct.model.config.num_hidden_layers
    before = count_parameters(instruct.model)
    small, removed = structured_prune(instruct.model, calibration_blocks(cfg, data), layers=max(1, layers // 2),
                                      score=cfg.compression.importance)
    sequence_distill(small, instruct.tokenizer, sequence_rows(cfg), sequence_train_config(cfg), seed=cfg.run.seed,
                     max_length=cfg.model.max_seq_len)
    small.generation_config.eos_token_id = instruct.model.generation_config.eos_token_id
    small.save_pretrained(out)
    instruct.tokenizer.save_pretrained(out)
    (out / "reader.json").write_text(json.dumps({"layers_removed": removed["layers"], "score": removed["score"],
                                                 "parameters": count_parameters(small), "instruct_parameters": before}),
                                     encoding="utf-8")
