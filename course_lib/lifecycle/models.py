"""The capstone's models: the chain's three (``base``, ``instruct``, ``aligned``) and ``aligned`` compressed three ways.

    zoo.get("aligned-answers")   aligned's own greedy answers to compression.sequence_rows instructions (the
                                 recovery data of the two models below: sequence-level distillation, chapter 09)
    zoo.get("aligned-int8")      aligned stored as int8 codes with a scale per row (chapter 08), computing with
                                 torch's int8 kernels (quantize_dynamic)
    zoo.get("aligned-pruned")    aligned with compression.prune_sparsity of its block weights removed by global
                                 magnitude, recovered on aligned's answers with the zeros held, stored as CSR
    zoo.get("aligned-student")   aligned with half its layers removed (Taylor importance), distilled on aligned's
                                 answers: a smaller model that loads with from_pretrained

``load(name, cfg)`` returns any of the six as a ``Loaded``: the model, its tokenizer in the chat
format, and the weight files on disk (what "size on disk" measures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .. import zoo
from ..config import Config

MODELS = ("base", "instruct", "aligned", "aligned-int8", "aligned-pruned", "aligned-student")
CHAT_MODELS = MODELS[1:]  # base was never taught the chat format: it is asked plainly
SECTIONS = ("run", "model", "world", "data", "pretrain", "curation", "instruct", "alignment", "compression")
INT8_FILE = "int8.safetensors"


@dataclass
class Loaded:
    """One model of the scorecard: ``model`` (eval mode), ``tokenizer`` (chat template added), weight ``files``,
    and ``dense``: the same weights as ordinary float tensors, where ``model`` packs them (int8 kernels) so that
    its parameters can no longer be counted."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    files: list[Path]
    dense: torch.nn.Module | None = None

    @property
    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def load(name: str, cfg: Config) -> Loaded:
    """Model ``name`` (one of ``MODELS``) of ``cfg``, built first if it is not cached."""
    from ..instruction.formatting import add_chat_template
    from ..runs import FINAL_DIR

    if name not in MODELS:
        raise KeyError(f"no scorecard model named {name!r}; the models are {', '.join(MODELS)}")
    got = zoo.get(name, cfg)
    if name in ("base", "instruct", "aligned"):
        model, tokenizer, files = got.model, got.tokenizer, sorted((got.path / FINAL_DIR).glob("*.safetensors"))
    else:
        model, tokenizer, files, *dense = got
        return Loaded(name, model.eval(), add_chat_template(tokenizer), files, dense[0] if dense else None)
    return Loaded(name, model.eval(), add_chat_template(tokenizer), files)


# --------------------------------------------------------------------------- aligned's answers


def _load_rows(path: Path, cfg: Config) -> list[dict]:
    with open(path / "rows.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@zoo.register("aligned-answers", load=_load_rows, sections=SECTIONS, deps=("aligned",),
              description="chapter 11: aligned's own answers to instructions, the recovery data of its compressed copies")
def _build_answers(cfg: Config, out: Path) -> None:
    from ..compression.distillation import teacher_answers
    from ..compression.experiments import sequence_rows
    from ..instruction.formatting import add_chat_template

    aligned = zoo.get("aligned", cfg)
    rows = teacher_answers(aligned.model, add_chat_template(aligned.tokenizer), sequence_rows(cfg))
    with open(out / "rows.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- int8


def _load_int8(path: Path, cfg: Config):
    from ..compression.kernels import load_quantized, torch_int8

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    missing, unexpected = model.load_state_dict(load_quantized(path / INT8_FILE), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{path / INT8_FILE}: missing weights {missing}, unexpected {unexpected}")
    model.tie_weights()
    return torch_int8(model.eval()), AutoTokenizer.from_pretrained(path), [path / INT8_FILE], model


@zoo.register("aligned-int8", load=_load_int8, sections=SECTIONS, deps=("aligned",),
              description="chapter 11: aligned as int8 codes and row scales, run with torch's int8 kernels")
def _build_int8(cfg: Config, out: Path) -> None:
    from ..compression.kernels import save_quantized

    aligned = zoo.get("aligned", cfg)
    save_quantized(aligned.model, out / INT8_FILE, "int8")
    aligned.model.config.save_pretrained(out)
    aligned.tokenizer.save_pretrained(out)


# --------------------------------------------------------------------------- pruned and distilled


def _recover_on_answers(cfg: Config, model, tokenizer, **train_kwargs) -> None:
    """Fine-tune ``model`` in place on ``aligned-answers`` (sequence-level distillation from aligned)."""
    from ..compression.distillation import sequence_distill
    from ..compression.experiments import sequence_train_config

    sequence_distill(model, tokenizer, zoo.get("aligned-answers", cfg), sequence_train_config(cfg), seed=cfg.run.seed,
                     max_length=cfg.model.max_seq_len, **train_kwargs)


def _load_pruned(path: Path, cfg: Config):
    from ..compression.pruning import SPARSE_FILE, load_sparse

    return load_sparse(path), AutoTokenizer.from_pretrained(path), [path / SPARSE_FILE]


@zoo.register("aligned-pruned", load=_load_pruned, sections=SECTIONS, deps=("aligned", "aligned-answers"),
              description="chapter 11: aligned magnitude-pruned (global), recovered on its own answers, stored as CSR")
def _build_pruned(cfg: Config, out: Path) -> None:
    from ..compression.pruning import keep_masks, magnitude_prune, save_sparse, sparsity_of

    aligned = zoo.get("aligned", cfg)
    pruned, masks = magnitude_prune(aligned.model, cfg.compression.prune_sparsity, scope="global")
    _recover_on_answers(cfg, pruned, aligned.tokenizer, callbacks=[keep_masks(pruned, masks)])
    save_sparse(pruned, out, masks)
    aligned.tokenizer.save_pretrained(out)
    (out / "pruning.json").write_text(json.dumps({"sparsity": sparsity_of(masks), "scope": "global"}), encoding="utf-8")


def _load_student(path: Path, cfg: Config):
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), sorted(path.glob("*.safetensors"))


@zoo.register("aligned-student", load=_load_student, sections=SECTIONS,
              deps=("aligned", "aligned-answers", "pretrain-data"),
              description="chapter 11: aligned with half its layers removed, distilled on aligned's answers")
def _build_student(cfg: Config, out: Path) -> None:
    from ..compression.experiments import calibration_blocks
    from ..compression.structured import structured_prune

    aligned, data = zoo.get("aligned", cfg), zoo.get("pretrain-data", cfg)
    layers = aligned.model.config.num_hidden_layers
    student, removed = structured_prune(aligned.model, calibration_blocks(cfg, data), layers=max(1, layers // 2),
                                        score=cfg.compression.importance)
    _recover_on_answers(cfg, student, aligned.tokenizer)
    student.save_pretrained(out)
    aligned.tokenizer.save_pretrained(out)
    (out / "removed.json").write_text(json.dumps({"layers": removed["layers"], "score": removed["score"]}),
                                      encoding="utf-8")
