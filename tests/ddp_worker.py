"""Tiny models and data for the training tests, and the torchrun worker of the DDP test.

Run by ``tests/test_training.py`` as
``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUTPUT_DIR STEPS``:
each process trains the tiny Llama with ``batch_size=2``, one micro-batch per step,
so a step sees the same 4 examples as one process with 2 accumulated micro-batches.
"""

import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from course_lib.config import TrainConfig
from course_lib.training import set_seed, train

VOCAB = 32
SEQ_LEN = 16


def tiny_llama(seed: int = 0, dropout: float = 0.0) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32 (~30k parameters), initialised from ``seed``."""
    set_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
        attention_dropout=dropout,
    )
    return LlamaForCausalLM(config)


def counting_dataset(n: int, seed: int = 0) -> list[dict]:
    """``n`` sequences that count up mod VOCAB from a random start: easy to learn.

    Each example is ``{"input_ids", "labels"}``, LongTensors of shape (SEQ_LEN,).
    """
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, VOCAB, (n, 1), generator=generator)
    ids = (starts + torch.arange(SEQ_LEN)) % VOCAB
    return [{"input_ids": row, "labels": row.clone()} for row in ids]


def small_config(**overrides) -> TrainConfig:
    """A TrainConfig for tests: a few fast steps, no progress bar."""
    values = dict(max_steps=6, batch_size=4, lr=1e-2, warmup_steps=2, eval_every=0, log_every=1, progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def main(output_dir: str, steps: int) -> None:
    cfg = small_config(max_steps=steps, batch_size=2, grad_accum_steps=1, eval_every=2, eval_batches=2, save_every=2)
    train(tiny_llama(), counting_dataset(64), cfg, output_dir=output_dir, eval_dataset=counting_dataset(8, seed=1))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
