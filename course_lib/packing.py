"""Packed token blocks: how every causal language model in the course reads a corpus.

    write_tokens(texts, tokenizer, path)    documents + <|endoftext|> appended to a flat uint32 file
    PackedBlocks(path, block_size, eos)     that file as consecutive blocks, positions restarting per document
    pack(token_lists, block_size, eos)      the same packing in memory, for small examples
    perplexity(model, blocks)               exp(mean next-token loss) over the blocks

Chapter 02 trains on raw and curated text this way, chapter 03 pretrains ``base``,
chapter 04 corrupts the same blocks for ``t5``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel


def pack(token_lists: Iterable[list[int]], block_size: int, eos_id: int) -> list[list[int]]:
    """Documents' tokens, each followed by ``eos_id``, concatenated and cut into blocks of ``block_size``.

    The last partial block is dropped. A block may start mid-document and hold
    several documents; ``<|endoftext|>`` tells the model where one ends. Example
    (``block_size=4``, eos 0): ``[[5, 6, 7], [8, 9], [3]]`` -> ``[[5, 6, 7, 0], [8, 9, 0, 3]]``.
    """
    stream = [t for tokens in token_lists for t in (*tokens, eos_id)]
    return [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def write_tokens(texts: Iterable[str], tokenizer, path: str | Path, *, batch_size: int = 512) -> int:
    """Append the tokens of ``texts`` (each followed by ``<|endoftext|>``) to the binary file ``path``.

    The file is a flat array of little-endian uint32 (as nanoGPT's ``train.bin``), so a
    corpus larger than memory is packed by reading it as a memory map (``PackedBlocks``).
    Returns the number of tokens written.
    """
    eos = tokenizer.eos_token_id
    total = 0
    with open(path, "ab") as f:
        for batch in batched(texts, batch_size):
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            flat = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype="<u4")
            f.write(flat.tobytes())
            total += flat.size
    return total


def batched(items: Iterable, n: int) -> Iterator[list]:
    """Lists of ``n`` consecutive items (the last may be shorter)."""
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def document_positions(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Position ids that restart at 0 at every ``eos_id``, along the last dimension.

    Each ``<|endoftext|>`` opens the next document, as it opens every prompt the course
    gives a model. Example (eos 0): ``[5, 6, 0, 7, 8, 0, 9]`` -> ``[0, 1, 0, 1, 2, 0, 1]``.
    """
    idx = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
    starts = torch.where(input_ids == eos_id, idx, torch.zeros_like(idx)).cummax(dim=-1).values
    return idx - starts


class PackedBlocks(torch.utils.data.Dataset):
    """Consecutive ``block_size`` blocks of a token file: row ``i`` is tokens ``[i*B, (i+1)*B)``.

    Each row is ``{"input_ids", "labels"}`` with ``labels == input_ids``: the model
    shifts them itself, so position t is trained to predict token t + 1. With ``eos_id``
    a row also has ``position_ids`` from ``document_positions``: positions restart with
    every document, and ``transformers`` then masks attention between the documents of a
    block (each token sees only earlier tokens of its own document, as Llama 3 trains).
    """

    def __init__(self, path: str | Path, block_size: int, eos_id: int | None = None):
        self.tokens = np.memmap(path, dtype="<u4", mode="r") if Path(path).stat().st_size else np.zeros(0, "<u4")
        self.block_size, self.eos_id = block_size, eos_id

    def __len__(self) -> int:
        return len(self.tokens) // self.block_size

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        block = torch.from_numpy(self.tokens[i * self.block_size : (i + 1) * self.block_size].astype(np.int64))
        row = {"input_ids": block, "labels": block.clone()}
        if self.eos_id is not None:
            row["position_ids"] = document_positions(block, self.eos_id)
        return row


@torch.no_grad()
def perplexity(model: PreTrainedModel, dataset, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) over every block of ``dataset`` (tokens weigh equally).

    Rows with ``position_ids`` (``PackedBlocks`` with ``eos_id``) are read as they were
    trained: each document sees only itself.
    """
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        ids = torch.stack([r["input_ids"] for r in rows]).to(model.device)
        positions = None
        if "position_ids" in rows[0]:
            positions = torch.stack([r["position_ids"] for r in rows]).to(model.device)
        logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                 reduction="sum")
        total += loss.item()
        count += ids[:, 1:].numel()
    if not count:
        raise ValueError("perplexity needs at least one block")
    return float(np.exp(total / count))
