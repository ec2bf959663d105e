"""T5's span corruption: noise masks, sentinels, corrupted blocks and their batches.

T5's pretraining objective, as the original code does it (``random_spans_noise_mask``,
``noise_span_to_unique_sentinel`` and ``nonnoise_span_to_unique_sentinel`` in
google-research/text-to-text-transfer-transformer, ``t5/data/preprocessors.py``).
The number of noise tokens is round(length * noise_density) and the number of noise
spans round(noise tokens / mean span length), at least 1. The noise tokens are cut
into that many non-empty spans at random, and so are the other tokens; the spans
alternate, non-noise first, so the sequence starts with kept text and ends with a
noise span. Each noise span becomes one sentinel in the input; the target lists each
sentinel followed by the span it hides. T5's convention (``append_eos`` after
``denoise``) ends both the input and the target with EOS, and since the last span
is always noise no final sentinel is needed:

    tokens   A B C D E F G H I J          noise spans [C D] and [I J]
    input    A B <X0> E F G H <X1> </s>
    target   <X0> C D <X1> I J </s>

(The T5 paper's figure ends the target with a third sentinel instead; the code does not.)
"""

from __future__ import annotations

import numpy as np
import torch

from ..tokenization import sentinel

NOISE_DENSITY = 0.15  # T5's defaults: 15% of the tokens in spans of mean length 3
MEAN_NOISE_SPAN_LENGTH = 3.0


def random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths (``num_segments``,) of a uniformly random split of ``num_items`` items into non-empty runs.

    T5's ``_random_segmentation``: mark ``num_segments - 1`` of the ``num_items - 1`` gaps
    between items, at random, as segment starts. The lengths are >= 1 and sum to ``num_items``.
    """
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"cannot split {num_items} items into {num_segments} non-empty segments")
    starts = np.zeros(num_items - 1, dtype=bool)
    starts[: num_segments - 1] = True
    first_in_segment = np.concatenate([[False], rng.permutation(starts)])  # item 0 opens segment 0
    segment_id = np.cumsum(first_in_segment)  # (num_items,) in 0..num_segments-1
    return np.bincount(segment_id, minlength=num_segments)


def noise_span_counts(length: int, noise_density: float = NOISE_DENSITY,
                      mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of ``length`` tokens, as T5 computes them.

    noise tokens = round(length * density), kept within [1, length - 1]; spans =
    round(noise tokens / mean span length), at least 1. Python's ``round`` rounds half to
    even, as ``tf.round`` does. Raises ValueError for a density outside (0, 1), a mean span
    length below 1, a length below 2, or too few kept tokens to separate the spans.
    """
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if not mean_noise_span_length >= 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    if length - num_noise < num_spans:
        raise ValueError(
            f"{length} tokens with noise_density {noise_density} leave {length - num_noise} kept tokens, "
            f"too few to separate {num_spans} noise spans; lower the density or raise the mean span length"
        )
    return num_noise, num_spans


def spans_noise_mask(nonnoise_span_lengths, noise_span_lengths) -> np.ndarray:
    """The (length,) bool noise mask of alternating spans: kept span 0, noise span 0, kept span 1, ...

    The deterministic half of ``random_spans_noise_mask``: given the span lengths, the mask
    is fixed (handy for worked examples). Both lists have one length per noise span, each >= 1.
    """
    kept, noise = np.asarray(nonnoise_span_lengths, dtype=int), np.asarray(noise_span_lengths, dtype=int)
    if kept.shape != noise.shape or kept.ndim != 1 or not len(kept):
        raise ValueError(f"need as many kept spans as noise spans (>= 1), got {kept.tolist()} and {noise.tolist()}")
    if (kept < 1).any() or (noise < 1).any():
        raise ValueError(f"span lengths must be >= 1, got {kept.tolist()} and {noise.tolist()}")
    interleaved = np.stack([kept, noise], axis=1).reshape(-1)  # (2 * spans,): kept, noise, kept, noise, ...
    return np.repeat(np.arange(len(interleaved)) % 2 == 1, interleaved)


def random_spans_noise_mask(length: int, noise_density: float = NOISE_DENSITY,
                            mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                            rng: np.random.Generator | int | None = None) -> np.ndarray:
    """T5's noise mask: (length,) bool, True at the tokens that span corruption hides.

    Exactly ``noise_span_counts(length, ...)`` noise tokens in that many spans; the span
    lengths are random segmentations (noise tokens first, then kept tokens, from one
    ``rng``), so the mean span length is ``mean_noise_span_length`` on average. ``rng`` is
    a ``numpy.random.Generator`` or a seed: the same seed gives the same mask.
    """
    num_noise, num_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    rng = np.random.default_rng(rng)
    noise_lengths = random_segmentation(num_noise, num_spans, rng)
    kept_lengths = random_segmentation(length - num_noise, num_spans, rng)
    return spans_noise_mask(kept_lengths, noise_lengths)


def corrupt_spans(tokens, noise_mask, sentinel_ids: list[int], eos_id: int | None) -> tuple[list[int], list[int]]:
    """(input, target) token lists of span corruption with the given (length,) bool ``noise_mask``.

    The input is ``tokens`` with noise span i replaced by ``sentinel_ids[i]`` (T5's
    ``noise_span_to_unique_sentinel``); the target is each noise span's sentinel followed by
    the span (for T5's masks, which start with kept text, this is ``nonnoise_span_to_unique_sentinel``).
    Both end with ``eos_id`` unless it is None. Every token of ``tokens`` appears exactly once
    across input and target.
    """
    tokens, mask = np.asarray(tokens, dtype=np.int64), np.asarray(noise_mask, dtype=bool)
    if tokens.shape != mask.shape or tokens.ndim != 1:
        raise ValueError(f"tokens {tokens.shape} and noise_mask {mask.shape} must be 1-D of one length")
    first = mask & ~np.concatenate([[False], mask[:-1]])  # (length,): the first token of each noise span
    num_spans = int(first.sum())
    if num_spans > len(sentinel_ids):
        raise ValueError(f"{num_spans} noise spans but only {len(sentinel_ids)} sentinels; train the tokenizer with more")
    sentinels = np.asarray(sentinel_ids[:num_spans], dtype=np.int64)  # (spans,): <extra_id_0>, <extra_id_1>, ...
    inputs = tokens.copy()
    inputs[first] = sentinels  # a span's first token becomes its sentinel ...
    inputs = inputs[~mask | first]  # ... and the rest of the span is dropped
    # The target is the noise tokens with sentinel i inserted before span i's first token.
    span_starts = (np.cumsum(mask) - 1)[first]  # (spans,): where each span starts among the noise tokens
    targets = np.insert(tokens[mask], span_starts, sentinels)
    end = [] if eos_id is None else [eos_id]
    return inputs.tolist() + end, targets.tolist() + end


def sentinel_ids(tokenizer, num_spans: int | None = None) -> list[int]:
    """Token ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in the tokenizer (all of them, or the first ``num_spans``).

    The course tokenizer gives them consecutive ids after the chat tokens (T5's own
    vocabulary counts down from its end instead; only the strings matter).
    """

    vocab = tokenizer.get_vocab()
    ids = []
    while sentinel(len(ids)) in vocab and (num_spans is None or len(ids) < num_spans):
        ids.append(vocab[sentinel(len(ids))])
    if num_spans is not None and len(ids) < num_spans:
        raise ValueError(f"the tokenizer has {len(ids)} sentinels, fewer than the {num_spans} needed")
    return ids


def span_corrupt(tokens, sentinel_ids: list[int], eos_id: int | None, *, noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                 rng: np.random.Generator | int | None = None) -> tuple[list[int], list[int]]:
    """(input, target) of T5 span corruption of ``tokens``: ``random_spans_noise_mask`` then ``corrupt_spans``.

    A block of L tokens with n noise tokens in s spans gives an input of L - n + s + 1 and a
    target of n + s + 1 tokens (with EOS): the same for every block of one length.
    """
    mask = random_spans_noise_mask(len(tokens), noise_density, mean_noise_span_length, rng)
    return corrupt_spans(tokens, mask, sentinel_ids, eos_id)


class SpanCorruptedBlocks(torch.utils.data.Dataset):
    """Span-corrupted packed blocks for a seq2seq model: row ``j`` is ``{"input_ids", "labels"}``.

    Row ``j`` corrupts block ``j % len(blocks)`` with a generator seeded by ``(seed, j)``, so
    a row is the same every time it is read (a resumed run sees the same data) while
    ``passes`` > 1 gives each pass over the blocks fresh noise spans: T5 sees each text
    once, and ``passes`` lets a small corpus imitate that. Every row of one block length
    has the same input and target lengths (see ``span_corrupt``).
    """

    def __init__(self, blocks, sentinel_ids: list[int], eos_id: int | None, *, noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH, seed: int = 0, passes: int = 1):
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.blocks, self.sentinel_ids, self.eos_id = blocks, list(sentinel_ids), eos_id
        self.noise_density, self.mean_noise_span_length = noise_density, mean_noise_span_length
        self.seed, self.passes = seed, passes

    def __len__(self) -> int:
        return len(self.blocks) * self.passes

    def __getitem__(self, j: int) -> dict:
        if not 0 <= j < len(self):
            raise IndexError(j)
        tokens = self.blocks[j % len(self.blocks)]["input_ids"]
        inputs, targets = span_corrupt(
            np.asarray(tokens), self.sentinel_ids, self.eos_id, noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length, rng=np.random.default_rng((self.seed, j)),
        )
        return {"input_ids": torch.tensor(inputs), "labels": torch.tensor(targets)}


class SpanCorruptionCollator:
    """Examples ``{"input_ids", "labels"}`` of any lengths -> a batch for ``T5ForConditionalGeneration``.

    Pads ``input_ids`` with ``pad_id`` (``attention_mask`` 0 there) and ``labels`` with -100,
    which the loss ignores; the model builds its decoder inputs by shifting the labels right
    behind ``decoder_start_token_id`` (T5's pad). Returns (B, S) ``input_ids`` and
    ``attention_mask`` and (B, T) ``labels``, S and T the longest input and target.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        def stack(rows, fill):
            width = max(len(r) for r in rows)
            return torch.tensor([list(r) + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

        inputs = [list(map(int, e["input_ids"])) for e in examples]
        return {
            "input_ids": stack(inputs, self.pad_id),
            "attention_mask": stack([[1] * len(r) for r in inputs], 0),
            "labels": stack([list(map(int, e["labels"])) for e in examples], -100),
        }
