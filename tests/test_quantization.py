"""Chapter 08, quantization: the survey's formula by hand, its error bound, calibration, outliers, GPTQ,
int8 kernels against torch's, packed int4 bytes, and what bad input says."""

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from course_lib.compression import (Int8Linear, activation_range, calibrate, check_batches, code_range, course_int8,
                                    fake_quantize, fake_quantize_range, gptq_model, gptq_quantize, grouped, hessian,
                                    int8_matmul_decomposed, layer_error, layer_inputs, linear_layers, load_quantized,
                                    outlier_damage, outlier_dims, outlier_table, pack_int4, quantization_error,
                                    quantize_linears, quantize_tensor, quantize_weights, save_quantized, torch_int8,
                                    torch_weight, unpack_int4, w8a8)
from course_lib.config import load_config
from course_lib.world import load

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.tensor([-1.0, -0.25, 0.75, 3.0])  # min -1, max 3, max|x| 3


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer byte-level Llama: hidden 64, MLP 128, so groups of 32 and 64 divide every input."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def blocks():
    """The ci world's documents as UTF-8 bytes in blocks of 64: ``(train, held_out)``."""
    text = "\n".join(d["text"] for d in load("documents", load_config("ci")))
    data = torch.tensor(list(text.encode()), dtype=torch.long)
    rows = data[: len(data) // 64 * 64].reshape(-1, 64)
    return rows[:-64], rows[-64:]


@pytest.fixture(scope="module")
def trained(blocks):
    """The tiny Llama after 150 AdamW steps on world text (~10 s on one thread): a model with real structure."""
    train, _ = blocks
    model = tiny_llama().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = train[torch.randint(0, len(train), (16,), generator=g)]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def calibration(blocks):
    return [blocks[0][i:i + 16] for i in range(0, 128, 16)]


@torch.no_grad()
def perplexity(model, rows) -> float:
    return math.exp(model(input_ids=rows, labels=rows).loss.item())


# --------------------------------------------------------------------------- the formula, by hand

# x = [-1, -0.25, 0.75, 3]. Asymmetric: s = (2^b - 1) / 4, z = -round(s * -1) - 2^(b-1).
#   b=2: s = 0.75, z = 1 - 2 = -1; s x + z = [-1.75, -1.1875, -0.4375, 1.25] -> [-2, -1, 0, 1]; x_hat = (x_q + 1) / 0.75
#   b=4: s = 3.75, z = 4 - 8 = -4; s x + z = [-7.75, -4.9375, -1.1875, 7.25] -> [-8, -5, -1, 7]; x_hat = (x_q + 4) / 3.75
# Symmetric: z = 0, s = (2^(b-1) - 1) / 3.
#   b=2: s = 1/3; s x = [-0.33, -0.08, 0.25, 1] -> [0, 0, 0, 1]; x_hat = 3 x_q
#   b=4: s = 7/3; s x = [-2.33, -0.58, 1.75, 7] -> [-2, -1, 2, 7]; x_hat = 3 x_q / 7
HAND = [  # bits, symmetric, s, z, x_q, x_hat
    (2, False, 0.75, -1.0, [-2, -1, 0, 1], [-4 / 3, 0.0, 4 / 3, 8 / 3]),
    (4, False, 3.75, -4.0, [-8, -5, -1, 7], [-4 / 3.75, -1 / 3.75, 3 / 3.75, 11 / 3.75]),
    (2, True, 1 / 3, 0.0, [0, 0, 0, 1], [0.0, 0.0, 0.0, 3.0]),
    (4, True, 7 / 3, 0.0, [-2, -1, 2, 7], [-6 / 7, -3 / 7, 6 / 7, 3.0]),
]


@pytest.mark.parametrize("bits, symmetric, s, z, codes, x_hat", HAND)
def test_the_formula_by_hand(bits, symmetric, s, z, codes, x_hat):
    qt = quantize_tensor(X, bits, symmetric=symmetric, granularity="tensor")
    assert qt.scale.item() == pytest.approx(s) and qt.zero.item() == z
    assert qt.q.flatten().tolist() == codes
    assert qt.dequantize().tolist() == pytest.approx(x_hat, abs=1e-6)
    assert torch.all((X - qt.dequantize()).abs() <= 1 / (2 * s) + 1e-6)


def test_codes_span_the_signed_range():
    assert code_range(8) == (-128, 127) and code_range(3) == (-4, 3) and code_range(2) == (-2, 1)
    qt = quantize_tensor(torch.linspace(-5, 11, 1000), 3, symmetric=False, granularity="tensor")
    assert (qt.q.min().item(), qt.q.max().item()) == (-4, 3)  # min and max land on the end codes


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("granularity, group_size", [("tensor", 0), ("channel", 0), ("group", 32), ("group", 64),
                                                     ("group", 128)])
def test_round_trip_error_is_at_most_half_a_step(bits, symmetric, granularity, group_size):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(16, 256, generator=g) * torch.rand(16, 1, generator=g) * 3 + torch.rand(16, 1, generator=g)
    qt = quantize_tensor(x, bits, symmetric=symmetric, granularity=granularity, group_size=group_size or 128)
    err = (x - qt.dequantize()).abs()
    roundoff = 8 * torch.finfo(torch.float32).eps * x.abs().max()  # float32 arithmetic on x, s x + z and x_hat
    assert torch.all(err <= qt.step() / 2 + roundoff)  # |x - x_hat| <= 1 / (2s)
    assert qt.q.shape == grouped(x, granularity, group_size or 128).shape


def test_finer_granularity_and_more_bits_lower_the_error():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 256, generator=g) * torch.logspace(-2, 0, 64).unsqueeze(1)  # rows of very different scale
    error = {(bits, gran, size): quantization_error(w, fake_quantize(w, bits, granularity=gran, group_size=size))["mse"]
             for bits in (2, 4, 8) for gran, size in (("tensor", 128), ("channel", 128), ("group", 128), ("group", 32))}
    for bits in (2, 4, 8):
        assert error[bits, "tensor", 128] > error[bits, "channel", 128] > error[bits, "group", 128] > error[bits, "group", 32]
    assert error[2, "channel", 128] > error[4, "channel", 128] > error[8, "channel", 128]


def test_a_zero_range_is_stored_exactly():
    """min == max would divide by zero: s = 1, z = -min, every code 0, and x_hat = min exactly."""
    const = torch.full((3, 8), 0.37)
    asym = quantize_tensor(const, 4, symmetric=False, granularity="tensor")
    assert asym.scale.item() == 1.0 and asym.zero.item() == -const[0, 0].item() and asym.q.abs().max().item() == 0
    assert torch.equal(asym.dequantize(), const)
    zeros = quantize_tensor(torch.zeros(4, 4), 8, symmetric=True)  # symmetric: only max|x| = 0 is a zero range
    assert torch.equal(zeros.dequantize(), torch.zeros(4, 4)) and torch.all(zeros.scale == 1)
    mixed = torch.stack([torch.full((8,), -2.5), torch.linspace(-1, 1, 8)])  # one flat row among others
    out = fake_quantize(mixed, 3, symmetric=False, granularity="channel")
    assert torch.equal(out[0], mixed[0]) and torch.isfinite(out).all()
