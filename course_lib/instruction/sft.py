"""Supervised fine-tuning (SFT, 지도 미세조정) on prompt-completion rows: with the course loop and with TRL.

SFT is next-token prediction on examples of the behaviour we want: a prompt (an
instruction, a conversation so far) and the completion a good assistant would write.
Only the completion is scored: the prompt's tokens get the label ``-100``, so the model
spends its capacity on answering, not on predicting questions.

The same data goes two ways:

- :func:`sft_rows` tokenizes prompt-completion examples exactly as TRL's ``SFTTrainer``
  does, and :func:`sft_own` trains on the rows with the course loop (``training.train``);
- :func:`sft_trl` hands the untokenized examples to TRL's ``SFTTrainer``.

A test starts both from the same weights, on the same examples in the same order,
with the same optimizer and schedule, and checks that they log the same losses.

How TRL (1.x) tokenizes a prompt-completion example, read from ``SFTTrainer._prepare_dataset``:

1. it appends the tokenizer's EOS *text* to the completion, unless the completion already
   ends with it (the model must learn to stop);
2. it tokenizes ``prompt`` alone and ``prompt + completion`` joined as one string, each with
   ``tokenizer(text=...)`` (so a tokenizer that adds a BOS adds it to both);
3. the completion starts where the two token lists stop agreeing (usually the prompt's
   length; shorter when a token merges across the join, and then TRL warns);
4. ``completion_mask`` is 0 before that point and 1 after; with ``completion_only_loss``
   the labels are the ids where the mask is 1 and ``-100`` elsewhere;
5. rows longer than ``max_length`` keep their start, and rows left with no scored token
   are dropped. (Here such a row is an error that names it.)

Its collator pads each batch on the right to its longest row: ``pad_token_id`` in the
ids, 0 in ``attention_mask``, ``-100`` in the labels. :func:`pad_rows` does the same.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.nn.functional import pad

from .. import checks
from ..config import TrainConfig
from ..runs import FINAL_DIR
# `_optimizer` is the course loop's own AdamW and schedule: TRL gets the very same, so only the trainer differs.
from ..training import ShuffledStream, TrainResult, _optimizer, train
from .formatting import IGNORE

logger = logging.getLogger(__name__)


def check_examples(examples) -> list[tuple[object, Mapping]]:
    """``(row_id, example)`` pairs, after checking each prompt-completion example.

    An example is a mapping with ``str`` ``prompt`` and ``completion``; its row id is its
    ``id`` when it has one, else its index. A completion that is empty (or only
    whitespace) is a ``ValueError`` naming the row: there is nothing to learn from it but EOS.
    """
    pairs = []
    for i, example in enumerate(checks.sequence("examples", examples, "prompt-completion examples")):
        if not isinstance(example, Mapping):
            raise ValueError(f"examples[{i}]: expected a dict with 'prompt' and 'completion', got {example!r:.60}")
        row_id = example.get("id", i)
        for key in ("prompt", "completion"):
            if not isinstance(example.get(key), str):
                raise ValueError(f"row {row_id!r}: {key!r} must be a str, got {checks.type_name(example.get(key))}")
        if not example["completion"].strip():
            raise ValueError(f"row {row_id!r}: empty completion; a row without a response has nothing to train on")
        pairs.append((row_id, example))
    if not pairs:
        raise ValueError("examples is empty")
    return pairs


def common_prefix_length(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share: where TRL takes the completion to start."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def sft_rows(tokenizer, examples, *, max_length: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Prompt-completion ``examples`` as course-loop rows ``{"input_ids", "labels"}`` (``(seq,)`` longs each).

    Tokenized as TRL's ``SFTTrainer`` tokenizes them (steps 1-5 of the module's
    docstring): EOS appended to the completion, the prompt's tokens labelled ``-100``,
    rows cut to ``max_length`` tokens keeping their start (``None``: no cut).
    """
    rows = []
    for row_id, example in check_examples(examples):
        completion = example["completion"]
        if not completion.endswith(tokenizer.eos_token):
            completion += tokenizer.eos_token
        prompt_ids = tokenizer(text=example["prompt"])["input_ids"]
        input_ids = tokenizer(text=example["prompt"] + completion)["input_ids"]
        start = common_prefix_length(prompt_ids, input_ids)
        if start < len(prompt_ids):
            logger.warning("row %r: the prompt's last tokens %r merge with the completion's first; the completion "
                           "starts where they diverge", row_id, tokenizer.decode(prompt_ids[start:]))
        labels = [IGNORE] * start + input_ids[start:]
        input_ids, labels = input_ids[:max_length], labels[:max_length]
        if all(label == IGNORE for label in labels):
            raise ValueError(f"row {row_id!r}: no completion token is left within max_length={max_length} "
                             f"(the prompt alone has {start} tokens)")
        rows.append({"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels)})
    return rows


def pad_rows(rows: list[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A batch ``(batch, longest)`` of rows of different lengths, padded on the right as TRL's collator pads.

    ``input_ids`` get ``pad_token_id``, ``labels`` get ``-100`` (not scored) and
    ``attention_mask`` is 1 on the rows' tokens and 0 on the padding. On the right, a
    causal model's real tokens never attend to the padding, so padding changes no loss.
    """
    longest = max(len(row["input_ids"]) for row in rows)

    def padded(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
        return torch.stack([pad(t, (0, longest - len(t)), value=value) for t in tensors])

    ids = [row["input_ids"] for row in rows]
    return {"input_ids": padded(ids, pad_token_id), "labels": padded([row["labels"] for row in rows], IGNORE),
            "attention_mask": padded([torch.ones_like(t) for t in ids], 0)}


def sft_own(model, rows, train_cfg: TrainConfig, *, output_dir: str | Path, seed: int = 0,
            **train_kwargs) -> TrainResult:
    """Fine-tune ``model`` in place on ``rows`` (from :func:`sft_rows` or ``formatting.chat_example``).

    This is the course loop, ``training.train``, with :func:`pad_rows` as the collator, so
    rows of different lengths batch together. ``train_kwargs`` go to ``train``
    (``tokenizer``, ``config``, ``callbacks``, ``resume``, ...). The log is ``result.metrics_path``.
    """
    pad_token_id = model.config.pad_token_id
    if pad_token_id is None:
        raise ValueError("model.config.pad_token_id is None; set it to the tokenizer's pad_token_id")
    return train(model, rows, train_cfg, output_dir=output_dir, seed=seed,
                 collate_fn=lambda batch: pad_rows(batch, pad_token_id), **train_kwargs)


def course_order(num_examples: int, cfg: TrainConfig, seed: int) -> list[int]:
    """The indices of the examples the course loop reads, in order, over a run of ``cfg.max_steps`` steps.

    ``training.train`` draws them from ``ShuffledStream(num_examples, seed=seed)``, one
    fresh permutation per epoch; a one-process run reads ``batch_size * grad_accum_steps``
    of them per step.
    """
    draws = cfg.max_steps * cfg.batch_size * cfg.grad_accum_steps
    return list(itertools.islice(ShuffledStream(num_examples, seed=seed), draws))


def sft_trl(model, tokenizer, examples, train_cfg: TrainConfig, *, output_dir: str | Path, seed: int = 0,
            max_length: int | None = None) -> list[dict]:
    """Fine-tune ``model`` in place on prompt-completion ``examples`` with TRL's ``SFTTrainer``; the train log.

    Set up to differ from :func:`sft_own` in nothing but the trainer:

    - the data: TRL reads the examples in the course loop's order (:func:`course_order`),
      without shuffling (``train_sampling_strategy="sequential"``), and tokenizes them
      itself, with the loss on the completion only (``completion_only_loss=True``);
    - the optimizer: the course loop's own AdamW and warmup-then-cosine schedule, passed in
      through ``optimizers=``. (TRL's ``cosine_with_min_lr`` warmup would start at lr 0,
      where the course's reaches ``lr / (warmup_steps + 1)`` at the first step.) Gradient
      clipping, batch size and accumulation come from ``train_cfg``. (With
      ``grad_accum_steps > 1`` the two weigh a step's micro-batches differently: TRL divides
      by the step's count of completion tokens, the course loop averages the micro-batches'
      means; they agree when every micro-batch scores as many tokens.);
    - the machine: the CPU in float32 (``use_cpu=True, bf16=False``; TRL's default bf16
      stops on a CPU), without activation checkpointing (TRL's default recomputes the
      activations in the backward pass: the same numbers, more time): this is the
      reference the course loop is checked against.

    Returns one row per step, ``{"step", "loss", "lr", "grad_norm"}``, as the course loop
    logs them: the step's mean loss over its completion tokens, the learning rate it used
    and the gradient norm before clipping (``training.plot_loss`` plots either log). The
    final model is saved in ``output_dir/final``.
    """
    examples = [example for _, example in check_examples(examples)]
    from datasets import Dataset  # imported here: TRL and datasets take seconds to import
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"prompt": examples[i]["prompt"], "completion": examples[i]["completion"]}
                              for i in course_order(len(examples), train_cfg, seed)])
    args = SFTConfig(
        output_dir=str(output_dir), use_cpu=True, bf16=False, seed=seed, max_steps=train_cfg.max_steps,
        per_device_train_batch_size=train_cfg.batch_size, gradient_accumulation_steps=train_cfg.grad_accum_steps,
        max_grad_norm=train_cfg.max_grad_norm, train_sampling_strategy="sequential", completion_only_loss=True,
        max_length=max_length, activation_checkpointing=False, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=not train_cfg.progress,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         optimizers=_optimizer(model, train_cfg))
    if not train_cfg.progress:  # without a progress bar, transformers prints each log line instead
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model(str(Path(output_dir) / FINAL_DIR))
    return [{"step": r["step"], "loss": r["loss"], "lr": r["learning_rate"], "grad_norm": r["grad_norm"]}
            for r in trainer.state.log_history if "loss" in r]
