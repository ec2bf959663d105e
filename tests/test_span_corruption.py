"""Chapter 04: T5 span corruption (noise mask, sentinel input and target, batches for T5)."""

from collections import Counter

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from course_lib import encdec as E

SENTINELS = [900, 901, 902, 903, 904, 905, 906, 907]  # stand-ins for <extra_id_0..7>
EOS = 1


def runs(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """(kept run lengths, noise run lengths) of a bool mask, in order."""
    edges = np.flatnonzero(np.diff(mask.astype(int))) + 1
    pieces = np.split(mask, edges)
    return [len(p) for p in pieces if not p[0]], [len(p) for p in pieces if p[0]]


# --------------------------------------------------------------------------- hand-worked examples


def test_hand_worked_example_of_the_t5_paper_sentence():
    words = "Thank you for inviting me to your party last week .".split()
    vocab = {w: i + 10 for i, w in enumerate(words)} | {"<X0>": 900, "<X1>": 901, "<X2>": 902, "</s>": EOS}
    names = {i: w for w, i in vocab.items()}
    # kept "Thank you" | noise "for inviting" | kept "me to your party" | noise "last" | kept "week" | noise "."
    mask = E.spans_noise_mask([2, 4, 1], [2, 1, 1])
    assert mask.tolist() == [False, False, True, True, False, False, False, False, True, False, True]
    inputs, targets = E.corrupt_spans([vocab[w] for w in words], mask, SENTINELS, EOS)
    assert " ".join(names[i] for i in inputs) == "Thank you <X0> me to your party <X1> week <X2> </s>"
    assert " ".join(names[i] for i in targets) == "<X0> for inviting <X1> last <X2> . </s>"


def test_hand_worked_example_with_integers_and_without_eos():
    mask = E.spans_noise_mask([2, 4], [2, 2])  # A B [C D] E F G H [I J]
    inputs, targets = E.corrupt_spans(list(range(10)), mask, SENTINELS, None)
    assert inputs == [0, 1, 900, 4, 5, 6, 7, 901]
    assert targets == [900, 2, 3, 901, 8, 9]


def test_a_mask_that_starts_with_noise_is_handled_too():
    mask = np.array([1, 1, 0, 1, 0], dtype=bool)  # not one T5 draws, but corrupt_spans takes any mask
    assert E.corrupt_spans([5, 6, 7, 8, 9], mask, SENTINELS, EOS) == ([900, 7, 901, 9, EOS], [900, 5, 6, 901, 8, EOS])


def test_counts_follow_t5s_rounding():
    assert E.noise_span_counts(128) == (19, 6)  # round(19.2) = 19; round(19 / 3) = 6
    assert E.noise_span_counts(256) == (38, 13)  # round(38.4) = 38; round(12.67) = 13
    assert E.noise_span_counts(10) == (2, 1)  # round(1.5) = 2 (half to even); round(0.67) = 1
    assert E.noise_span_counts(3) == (1, 1)  # round(0.45) = 0 is raised to 1 noise token
    assert E.noise_span_counts(1024) == (154, 51)  # round(153.6) = 154; round(51.33) = 51
    assert E.noise_span_counts(2, 0.9) == (1, 1)  # round(1.8) = 2 is lowered to length - 1


def test_segmentation_with_a_fixed_generator():
    lengths = E.random_segmentation(19, 6, np.random.default_rng(0))
    assert lengths.sum() == 19 and len(lengths) == 6 and lengths.min() >= 1
    assert E.random_segmentation(19, 6, np.random.default_rng(0)).tolist() == lengths.tolist()
    assert E.random_segmentation(5, 5, np.random.default_rng(0)).tolist() == [1] * 5
    assert E.random_segmentation(5, 1, np.random.default_rng(0)).tolist() == [5]


# --------------------------------------------------------------------------- the random mask


@pytest.mark.parametrize("length", [2, 3, 10, 57, 128, 256, 1024])
def test_mask_has_t5s_counts_and_starts_kept_and_ends_noisy(length):
    num_noise, num_spans = E.noise_span_counts(length)
    for seed in range(20):
        mask = E.random_spans_noise_mask(length, rng=seed)
        kept, noise = runs(mask)
        assert mask.shape == (length,) and mask.sum() == num_noise
        assert len(noise) == len(kept) == num_spans
        assert not mask[0] and mask[-1]


def test_same_seed_same_mask_other_seed_other_mask():
    a = E.random_spans_noise_mask(128, rng=7)
    assert (a == E.random_spans_noise_mask(128, rng=np.random.default_rng(7))).all()
    assert any((a != E.random_spans_noise_mask(128, rng=s)).any() for s in range(8, 12))


def test_density_and_mean_span_length_over_many_samples():
    """Pooled over 2000 blocks of random lengths in [64, 1024], density 0.15 and mean span 3.

    Tolerance: per block the counts are rounded (density off by at most 0.5 / length, the
    span count by 0.5), so the pooled density is within 0.002 of 0.15 and the pooled mean
    span length within 0.1 of 3; a broken count (e.g. floor, or spans = tokens / 2) misses both.
    """
    rng = np.random.default_rng(0)
    noise_tokens = total = spans = 0
    for length in rng.integers(64, 1025, size=2000):
        mask = E.random_spans_noise_mask(int(length), rng=rng)
        noise_tokens += mask.sum()
        total += length
        spans += len(runs(mask)[1])
    assert abs(noise_tokens / total - 0.15) < 0.002
    assert abs(noise_tokens / spans - 3.0) < 0.1


def test_span_lengths_are_a_uniform_random_segmentation():
    """Each way to cut 4 tokens into 2 spans ((1,3), (2,2), (3,1)) is drawn with probability 1/3.

    3000 draws: the standard error of each share is sqrt(2/9/3000) = 0.0086; the tolerance
    0.04 is 4.6 of them (a failure by chance has probability about 1e-5).
    """
    rng = np.random.default_rng(1)
    counts = Counter(tuple(E.random_segmentation(4, 2, rng).tolist()) for _ in range(3000))
    assert set(counts) == {(1, 3), (2, 2), (3, 1)}
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values()), counts


def test_span_length_one_has_the_segmentation_probability():
    """P(a noise span of a 128-block has length 1) = (s-1)/(n-1) = 5/18 for n = 19 tokens in s = 6 spans.

    12000 spans from 2000 blocks; the spans of one block are dependent, so the tolerance is
    a generous 0.03 (about 7 standard errors of independent draws).
    """
    rng = np.random.default_rng(2)
    lengths = [n for _ in range(2000) for n in runs(E.random_spans_noise_mask(128, rng=rng))[1]]
    assert abs(np.mean(np.array(lengths) == 1) - 5 / 18) < 0.03


# --------------------------------------------------------------------------- input and target


def test_every_token_appears_exactly_once_across_input_and_target():
    rng = np.random.default_rng(3)
    many = list(range(900, 1000))  # enough distinct sentinels for 300 tokens
    for _ in range(300):
        length = int(rng.integers(2, 300))
        tokens = rng.permutation(length) + 10  # distinct ids, none a sentinel or EOS
        inputs, targets = E.span_corrupt(tokens, many, EOS, rng=rng)
        n, s = E.noise_span_counts(length)
        assert len(inputs) == length - n + s + 1 and len(targets) == n + s + 1
        assert inputs[-1] == targets[-1] == EOS
        content = [t for t in inputs[:-1] + targets[:-1] if t not in many]
        assert sorted(content) == sorted(tokens.tolist())
        # Sentinels appear in order, once in each of input and target.
        assert [t for t in inputs if t in many] == [t for t in targets if t in many] == many[:s]
        # Read back: filling each sentinel of the input with its target span restores the text.
        spans, current = {}, None
        for t in targets[:-1]:
            if t in many:
                current = t
                spans[current] = []
            else:
                spans[current].append(t)
        restored = [u for t in inputs[:-1] for u in (spans[t] if t in many else [t])]
        assert restored == tokens.tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(length=100, noise_density=0.0), "noise_density"),
        (dict(length=100, noise_density=1.0), "noise_density"),
        (dict(length=100, noise_density=-0.1), "noise_density"),
        (dict(length=100, noise_density=1.5), "noise_density"),
        (dict(length=100, mean_noise_span_length=0.5), "mean_noise_span_length"),
        (dict(length=1), "at least 2 tokens"),
        (dict(length=10, noise_density=0.9, mean_noise_span_length=1.0), "too few to separate"),
    ],
)
def test_bad_density_or_lengths_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        E.random_spans_noise_mask(**kwargs, rng=0)


def test_bad_spans_and_too_few_sentinels_are_errors():
    with pytest.raises(ValueError, match="non-empty"):
        E.random_segmentation(3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="as many kept spans"):
        E.spans_noise_mask([2, 2], [1])
    with pytest.raises(ValueError, match=">= 1"):
        E.spans_noise_mask([2, 0], [1, 1])
    with pytest.raises(ValueError, match="only 2 sentinels"):
        E.span_corrupt(list(range(128)), SENTINELS[:2], EOS, rng=0)  # 6 spans
    with pytest.raises(ValueError, match="one length"):
        E.corrupt_spans([1, 2, 3], [True, False], SENTINELS, EOS)


# --------------------------------------------------------------------------- datasets and batches


def test_corrupted_blocks_are_deterministic_and_fresh_on_each_pass():
    blocks = [{"input_ids": torch.arange(10, 138)} for _ in range(3)]
    data = E.SpanCorruptedBlocks(blocks, SENTINELS, EOS, seed=0, passes=2)
    assert len(data) == 6
    assert all(torch.equal(data[j]["input_ids"], data[j]["input_ids"]) for j in range(6))
    assert not torch.equal(data[0]["labels"], data[3]["labels"])  # block 0, second pass: other spans
    assert {len(data[j]["input_ids"]) for j in range(6)} == {128 - 19 + 6 + 1}
    assert {len(data[j]["labels"]) for j in range(6)} == {19 + 6 + 1}
    other = E.SpanCorruptedBlocks(blocks, SENTINELS, EOS, seed=1)
    assert not torch.equal(data[0]["labels"], other[0]["labels"])
    with pytest.raises(IndexError):
        data[6]


def test_collator_pads_inputs_and_ignores_padded_labels_in_t5s_loss():
    collate = E.SpanCorruptionCollator(pad_id=0)
    examples = [E.span_corrupt(np.arange(10, 10 + n), SENTINELS, EOS, rng=n) for n in (30, 12)]
    examples = [{"input_ids": i, "labels": t} for i, t in examples]
    batch = collate(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    (i0, t0), (i1, t1) = [(e["input_ids"], e["labels"]) for e in examples]
    assert batch["input_ids"].shape == (2, len(i0)) and batch["labels"].shape == (2, len(t0))
    assert batch["input_ids"][1].tolist() == i1 + [0] * (len(i0) - len(i1))
    assert batch["attention_mask"][1].tolist() == [1] * len(i1) + [0] * (len(i0) - len(i1))
    assert batch["labels"][1].tolist() == t1 + [-100] * (len(t0) - len(t1))

    torch.manual_seed(0)
    config = T5Config(vocab_size=1000, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, dropout_rate=0.0,
                      pad_token_id=0, eos_token_id=EOS, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        together = model(**batch).loss
        alone = [model(**collate([e])).loss for e in examples]
    # T5's loss is the mean over the batch's real target tokens: padding changes nothing.
    expected = (alone[0] * len(t0) + alone[1] * len(t1)) / (len(t0) + len(t1))
    assert torch.allclose(together, expected, atol=1e-5)
