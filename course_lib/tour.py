"""Chapter 00, the tour: a tiny decoder learns two-number addition.

Small enough to train in seconds on a CPU, real enough to show every moving part
of the course: a config profile, a tokenizer, a ``datasets`` dataset, a
``transformers`` model, the one training loop and the artifact zoo. Problems
are strings such as ``"12+7=19"``; the model reads ``"12+7="`` and must write
``"19"``. The sum pairs in the test split never occur in training, so test
accuracy measures generalisation, not recall.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import datasets
import torch
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from . import zoo
from .config import Config
from .models import TrainedModel, build_decoder
from .tokenization import char_tokenizer
from .training import TrainResult, train

ALPHABET = "0123456789+="
IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


def split_pairs(max_operand: int, seed: int, test_fraction: float = 0.1, max_test: int = 500):
    """All pairs ``(a, b)`` with ``0 <= a, b <= max_operand``, split into train and test.

    At least one pair is held out; at most ``max_test``.
    """
    pairs = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
    random.Random(seed).shuffle(pairs)
    n_test = max(1, min(max_test, round(test_fraction * len(pairs))))
    return pairs[n_test:], pairs[:n_test]


def prompt(a: int, b: int) -> str:
    return f"{a}+{b}="


def encode(pairs, tokenizer: PreTrainedTokenizerFast, max_operand: int) -> Dataset:
    """Tokenize problems into fixed-length rows; only answer tokens and ``</s>`` carry labels."""
    length = 2 * len(str(max_operand)) + 2 + len(str(2 * max_operand)) + 2  # <s> a+b= sum </s>
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for a, b in pairs:
        question = [tokenizer.bos_token_id] + tokenizer.encode(prompt(a, b))
        answer = tokenizer.encode(str(a + b)) + [tokenizer.eos_token_id]
        pad = length - len(question) - len(answer)
        rows["input_ids"].append(question + answer + [tokenizer.pad_token_id] * pad)
        rows["attention_mask"].append([1] * (len(question) + len(answer)) + [0] * pad)
        rows["labels"].append([IGNORE_INDEX] * len(question) + answer + [IGNORE_INDEX] * pad)
    return Dataset.from_dict(rows).with_format("torch")


def make_dataset(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> DatasetDict:
    """``train`` holds ``tour.num_examples`` problems drawn from the train pairs; ``test`` the held-out pairs."""
    train_pairs, test_pairs = split_pairs(cfg.tour.max_operand, cfg.run.seed)
    rng = random.Random(cfg.run.seed + 1)
    drawn = [rng.choice(train_pairs) for _ in range(cfg.tour.num_examples)]
    return DatasetDict(
        train=encode(drawn, tokenizer, cfg.tour.max_operand),
        test=encode(test_pairs, tokenizer, cfg.tour.max_operand),
    )


def test_pairs(cfg: Config) -> list[tuple[int, int]]:
    return split_pairs(cfg.tour.max_operand, cfg.run.seed)[1]


def new_model(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """An untrained decoder of the ``tour.model`` size for the tour's vocabulary."""
    torch.manual_seed(cfg.run.seed)
    return build_decoder(
        cfg.tour.model,
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def train_tour(cfg: Config, output_dir: str | Path, *, resume: bool = True, callbacks=()) -> TrainResult:
    """Train a fresh tour model on the tour data with ``tour.train``; works under torchrun too."""
    tokenizer = zoo.get("tour-tokenizer", cfg)
    data = zoo.get("tour-data", cfg)
    model = new_model(cfg, tokenizer)
    return train(
        model,
        data["train"],
        cfg.tour.train,
        output_dir=output_dir,
        eval_dataset=data["test"],
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=callbacks,
        tokenizer=tokenizer,
    )


@torch.no_grad()
def answer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs, batch_size: int = 256) -> list[str]:
    """Greedy answers of ``model`` to ``a+b=`` prompts (left-padded batches)."""
    model.eval()
    tokenizer.padding_side = "left"
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        batch = tokenizer(
            [tokenizer.bos_token + prompt(a, b) for a, b in chunk], return_tensors="pt", padding=True
        ).to(model.device)
        max_new = len(str(2 * max(max(p) for p in chunk))) + 1
        generated = model.generate(**batch, max_new_tokens=max_new, do_sample=False)
        out += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs) -> float:
    """Fraction of problems whose greedy answer is exactly the sum."""
    answers = answer(model, tokenizer, pairs)
    return sum(ans == str(a + b) for ans, (a, b) in zip(answers, pairs)) / len(pairs)


# --------------------------------------------------------------------------- zoo recipes


def _load_tokenizer(path: Path, cfg: Config) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(path)


@zoo.register("tour-tokenizer", load=_load_tokenizer, sections=(), description="character tokenizer for sums")
def _build_tokenizer(cfg: Config, out: Path) -> None:
    char_tokenizer(ALPHABET).save_pretrained(out)


def _load_data(path: Path, cfg: Config) -> DatasetDict:
    return load_from_disk(str(path)).with_format("torch")


@zoo.register(
    "tour-data", load=_load_data, sections=("run", "tour"), deps=("tour-tokenizer",),
    description="addition problems, test pairs held out",
)
def _build_data(cfg: Config, out: Path) -> None:
    data = make_dataset(cfg, zoo.get("tour-tokenizer", cfg))
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a bar per tiny shard says nothing
    try:
        data.save_to_disk(str(out))
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _load_model(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path)


@zoo.register(
    "tour-model", load=_load_model, sections=("run", "tour"), deps=("tour-tokenizer", "tour-data"),
    description="the tour's addition model, trained with course_lib.training",
)
def _build_model(cfg: Config, out: Path) -> None:
    train_tour(cfg, out, resume=False)
    # The artifact is the final model and its log; optimizer state is only for resuming.
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
