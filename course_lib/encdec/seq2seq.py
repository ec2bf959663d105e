"""Chapter 04: an encoder-decoder and a decoder fine-tuned on one sequence-to-sequence task, and what T5 reads.

The steps, each a function a notebook can call on its own::

    data         translation_data(cfg)                 the world's translation pairs (en-ko and ko-en)
    examples     make_examples(tokenizer, pairs, ...)   token ids, with labels on the target tokens only
    fine-tune    finetune(name, model, ...)            course_lib.training.train, one budget for every model
    decode       translate(model, tokenizer, sources)  greedy decoding, for either kind of model
    score        evaluate_translation(...)             chrF and BLEU (sacrebleu) and the loss per target token
    look inside  CrossAttention, cross_attention_*     T5's encoder-decoder attention, from scratch and read out
    compare      compare_architectures                 t5 against base after the same fine-tuning
                 compare_objectives                    span corruption against single-token masking

Both kinds of model get the same information. T5 reads ``source </s>`` with its encoder and
writes ``target </s>`` with its decoder; the decoder-only model reads ``<|endoftext|> source \\n``
and continues with ``target <|endoftext|>``. In both the loss covers the target tokens and the
end token only (the prompt's labels are -100), so the losses are nats per target token of the
same tokenizer, and comparable.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ..config import Config, TrainConfig
from ..runs import read_metrics
from ..training import train

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)
SEPARATOR = "\n"  # ends the source in the decoder-only model's prompt; the pretraining text is full of newlines


def translation_data(cfg: Config) -> dict[str, list[dict]]:
    """The world's translation task as ``{split: [{"source", "target", "lang"}, ...]}``.

    Splits ``train``, ``test`` (facts never seen in ``train``) and ``test_template`` (sentence
    templates never seen in ``train``); ``lang`` is ``"en-ko"`` or ``"ko-en"``.
    """
    from ..world import load

    tasks = load("tasks", cfg, task="translation")
    return {split: [{"source": r["question"], "target": r["answer"], "lang": r["lang"]} for r in tasks[split]]
            for split in tasks}


def _ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encoder_decoder_example(tokenizer: PreTrainedTokenizerFast, source: str, target: str) -> dict:
    """``{"input_ids": source </s>, "labels": target </s>}`` (1-D tensors) for a T5 model."""
    eos = tokenizer.eos_token_id
    return {"input_ids": torch.tensor(_ids(tokenizer, source) + [eos]),
            "labels": torch.tensor(_ids(tokenizer, target) + [eos])}


def decoder_prompt(tokenizer: PreTrainedTokenizerFast, source: str) -> list[int]:
    """The decoder-only model's prompt: ``<|endoftext|> source \\n`` as token ids."""
    return [tokenizer.eos_token_id] + _ids(tokenizer, source + SEPARATOR)


def decoder_example(tokenizer: PreTrainedTokenizerFast, source: str, target: str) -> dict:
    """``{"input_ids": prompt target <eos>, "labels": -100 over the prompt, then target <eos>}`` (1-D tensors).

    The model shifts the labels itself, so the prompt's last token (the separator) is
    trained to predict the target's first token; the prompt's own tokens are never scored.
    """
    prompt = decoder_prompt(tokenizer, source)
    answer = _ids(tokenizer, target) + [tokenizer.eos_token_id]
    return {"input_ids": torch.tensor(prompt + answer), "labels": torch.tensor([IGNORE_INDEX] * len(prompt) + answer)}


def make_examples(tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict], encoder_decoder: bool) -> list[dict]:
    """Examples of ``pairs`` (dicts with ``source`` and ``target``) for a T5 model or for a decoder."""
    make = encoder_decoder_example if encoder_decoder else decoder_example
    return [make(tokenizer, p["source"], p["target"]) for p in pairs]


class PadCollator:
    """Examples ``{"input_ids", "labels"}`` of any lengths -> a right-padded batch.

    ``input_ids`` are padded with ``pad_id`` (``attention_mask`` 0 there) and ``labels`` with -100,
    each to its own longest row: (B, S) inputs and mask, (B, T) labels. For a decoder the two
    widths are equal, since each example's labels are as long as its inputs.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        def stack(rows: list[list[int]], fill: int) -> torch.Tensor:
            width = max(len(r) for r in rows)
            return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

        inputs = [torch.as_tensor(e["input_ids"]).tolist() for e in examples]
        return {"input_ids": stack(inputs, self.pad_id),
                "attention_mask": stack([[1] * len(r) for r in inputs], 0),
                "labels": stack([torch.as_tensor(e["labels"]).tolist() for e in examples], IGNORE_INDEX)}


# --------------------------------------------------------------------------- fine-tuning


def finetune_config(cfg: Config, steps: int | None = None, lr: float | None = None) -> TrainConfig:
    """The fine-tuning budget: ``pretrain.train``'s batch and optimizer with ``steps`` steps and peak ``lr``.

    Defaults: a fifth of the pretraining steps (at least 20) and its peak learning rate; warmup
    is a tenth of the steps; no evaluation or intermediate checkpoints during the run.
    """
    t = cfg.pretrain.train
    steps = steps or max(20, t.max_steps // 5)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return dataclasses.replace(t, max_steps=steps, lr=lr or t.lr, warmup_steps=max(1, steps // 10),
                               eval_every=0, save_every=0, log_every=max(1, steps // 25))


@dataclass
class FinetuneRun:
    """A fine-tuned model, its tokenizer, its training log and how long the run took."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    metrics: list[dict]
    seconds: float


def finetune(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict],
             train_cfg: TrainConfig, output_dir: str | Path, *, seed: int = 0, config: Config | None = None,
             ) -> FinetuneRun:
    """Train ``model`` (in place) on the ``pairs`` with ``train_cfg``: T5 or decoder, found from its config."""
    examples = make_examples(tokenizer, pairs, model.config.is_encoder_decoder)
    start = time.perf_counter()
    train(model, examples, train_cfg, output_dir=output_dir, collate_fn=PadCollator(tokenizer.pad_token_id),
          seed=seed, resume=False, config=config)
    model.eval()
    return FinetuneRun(name, model, tokenizer, read_metrics(output_dir), time.perf_counter() - start)


# --------------------------------------------------------------------------- decoding and scoring


def _batches(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@torch.no_grad()
def translate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sources: Sequence[str], *,
              max_new_tokens: int | None = None, batch_size: int = 32) -> list[str]:
    """Greedy outputs of ``model`` for ``sources``: the same text for the same inputs, every time.

    T5 gets right-padded ``source </s>``; a decoder gets left-padded prompts and its output is
    cut at the first newline. Decoding stops at the end token or after ``max_new_tokens``
    (default: twice the longest source of the batch, in tokens, plus 4).
    """
    model.eval()
    out = []
    for chunk in _batches(list(sources), batch_size):
        if model.config.is_encoder_decoder:
            rows = [encoder_decoder_example(tokenizer, s, "")["input_ids"].tolist() for s in chunk]
            batch = PadCollator(tokenizer.pad_token_id)([{"input_ids": r, "labels": []} for r in rows])
            batch.pop("labels")
        else:
            rows = [decoder_prompt(tokenizer, s) for s in chunk]
            width = max(map(len, rows))  # left padding: every prompt ends where generation starts
            batch = {"input_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows]),
                     "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])}
        batch = {k: v.to(model.device) for k, v in batch.items()}
        new = max_new_tokens or 2 * max(map(len, rows)) + 4
        ids = model.generate(**batch, max_new_tokens=new, do_sample=False, num_beams=1,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        if not model.config.is_encoder_decoder:
            ids = ids[:, batch["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        out += [t.split(SEPARATOR)[0].strip() for t in texts]
    return out


@torch.no_grad()
def target_loss(model: PreTrainedModel, examples: Sequence[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean cross-entropy (nats) per target token of ``examples`` (every token weighs the same)."""
    model.eval()
    total, count = 0.0, 0
    for chunk in _batches(list(examples), batch_size):
        batch = {k: v.to(model.device) for k, v in PadCollator(pad_id)(chunk).items()}
        labels = batch.pop("labels")
        if model.config.is_encoder_decoder:
            logits = model(**batch, labels=labels).logits  # (B, T, V): T5 shifts the labels into its decoder
        else:
            logits, labels = model(**batch).logits[:, :-1], labels[:, 1:]  # position t predicts token t + 1
        total += torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                                                   ignore_index=IGNORE_INDEX, reduction="sum").item()
        count += int((labels != IGNORE_INDEX).sum())
    if not count:
        raise ValueError("target_loss needs at least one target token")
    return total / count


def evaluate_translation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict],
                         batch_size: int = 32) -> dict:
    """``{"chrF", "BLEU", "loss", "predictions"}`` of ``model`` on ``pairs`` (greedy outputs, corpus scores).

    chrF and BLEU are sacrebleu's corpus scores as fractions (0..1); chrF (character 6-grams)
    suits Korean, where a word carries its particles. ``loss`` is ``target_loss`` on the references.
    """
    import sacrebleu

    if not pairs:
        raise ValueError("evaluate_translation needs at least one pair")
    predictions = translate(model, tokenizer, [p["source"] for p in pairs], batch_size=batch_size)
    references = [p["target"] for p in pairs]
    examples = make_examples(tokenizer, pairs, model.config.is_encoder_decoder)
    return {"chrF": sacrebleu.corpus_chrf(predictions, [references]).score / 100,
            "BLEU": sacrebleu.corpus_bleu(predictions, [references]).score / 100,
            "loss": target_loss(model, examples, tokenizer.pad_token_id, batch_size), "predictions": predictions}
