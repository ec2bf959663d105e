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
from course_lib.compression.study import Setting, group_size_for, perplexity_grid, quantized, study_settings, task_settings
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


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bits, error, match", [(1, ValueError, "bits for w=1"), (17, ValueError, "bits for w=17"),
                                                (4.0, TypeError, "bits for w: expected an int")])
def test_bits_out_of_range_are_named(bits, error, match):
    with pytest.raises(error, match=match):
        quantize_tensor(torch.randn(4, 4), bits, name="w")


def test_a_group_size_that_does_not_divide_names_the_tensor():
    with pytest.raises(ValueError, match=r"group_size=128 does not divide the last dimension of weight of down_proj "
                                         r"\(shape \(8, 352\): 352 = 2 x 128 \+ 96\)"):
        quantize_tensor(torch.randn(8, 352), 4, granularity="group", group_size=128, name="weight of down_proj")
    with pytest.raises(ValueError, match="granularity='row' for x"):
        fake_quantize(torch.randn(4, 4), 4, granularity="row")


@pytest.mark.parametrize("bad, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")])
def test_non_finite_values_are_named(bad, shown):
    x = torch.randn(3, 4)
    x[1, 2] = bad
    with pytest.raises(ValueError, match=rf"weight of q_proj: 1 values are NaN or infinite \(the first, at index \(1, 2\), is {shown}\)"):
        quantize_tensor(x, 8, name="weight of q_proj")


def test_calibration_with_no_data_is_refused(trained):
    for empty in ([], None, iter([])):
        with pytest.raises(ValueError, match="calibration needs at least one batch of text; got none"):
            calibrate(trained, empty)
    with pytest.raises(ValueError, match="GPTQ calibration needs at least one batch"):
        gptq_model(trained, [], 4)
    with pytest.raises(ValueError, match="calibration batch 0: expected a non-empty tensor"):
        check_batches([torch.zeros(0, dtype=torch.long)])
    with pytest.raises(ValueError, match="range method 'max' for input of x"):
        activation_range(torch.randn(10), "max", name="input of x")


# --------------------------------------------------------------------------- calibration, weight-only and W8A8


def test_int8_per_channel_keeps_perplexity_within_one_percent(trained, blocks):
    held_out = blocks[1]
    fp32 = perplexity(trained, held_out)
    int8 = perplexity(quantize_weights(trained, 8, granularity="channel"), held_out)
    int3 = perplexity(quantize_weights(trained, 3, granularity="channel", symmetric=False), held_out)
    assert abs(int8 / fp32 - 1) < 0.01
    assert int3 > int8  # fewer bits, more loss
    assert isinstance(quantize_weights(trained, 8).model.layers[0].mlp.up_proj.weight, torch.nn.Parameter)


def test_calibrated_ranges_clip_the_rare_extremes():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100_000, generator=g)
    x[:5] = 40.0  # five extreme values stretch a min/max grid
    ranges = {m: activation_range(x, m, 4, percentile=99.9) for m in ("minmax", "percentile", "mse")}
    assert ranges["minmax"] == (x.min().item(), 40.0)
    assert ranges["percentile"][1] < 4 and ranges["mse"][1] < 40
    mse = {m: quantization_error(x, fake_quantize_range(x, *r, 4))["mse"] for m, r in ranges.items()}
    assert mse["mse"] <= mse["percentile"] < mse["minmax"]


def test_w8a8_adds_the_error_of_quantized_activations(trained, calibration, blocks):
    rows = blocks[1][:8]
    with torch.no_grad():
        reference = trained(input_ids=rows).logits
        error = {name: torch.mean((model(input_ids=rows).logits - reference) ** 2).item() for name, model in {
            "weight-only": quantize_weights(trained, 8),
            "w8a8": quantize_linears(trained, 8, act=calibrate(trained, calibration, "minmax")),
            "w8a4": quantize_linears(trained, 8, act=calibrate(trained, calibration, "mse", 4), act_bits=4),
        }.items()}
    assert error["weight-only"] < error["w8a8"] < error["w8a4"]
    with pytest.raises(KeyError, match="no calibrated activation range for layer model.layers.0.self_attn.q_proj"):
        quantize_linears(trained, 8, act={})


# --------------------------------------------------------------------------- outliers


def test_outlier_features_ruin_a_per_tensor_grid_and_decomposition_repairs_it():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=g)
    x[:, 7] *= 30  # one systematic outlier feature, as LLM.int8 finds in large models
    dims = outlier_dims(x, 6.0)
    assert dims.tolist() == [7]
    damage = outlier_damage(x, dims, 8)
    assert damage["decomposed"]["sqnr_db"] > damage["per_tensor"]["sqnr_db"] + 15  # 30x range: ~30 dB lost
    w = torch.randn(32, 64, generator=g) / 8
    exact = x @ w.T
    plain = int8_matmul_decomposed(x, w, torch.tensor([], dtype=torch.long))
    mixed = int8_matmul_decomposed(x, w, dims)
    assert quantization_error(exact, mixed)["mse"] < quantization_error(exact, plain)["mse"] / 10


def test_outliers_of_the_trained_model_and_w8a8_with_decomposition(trained, calibration, blocks):
    table = outlier_table(trained, calibration, 6.0)
    assert [r["layer"] for r in table] == list(linear_layers(trained))
    assert all(r["max_abs"] >= 6.0 for r in table if r["outliers"]) and all(r["outliers"] == 0 for r in table if r["max_abs"] < 6)
    held_out = blocks[1]
    decomposed = perplexity(w8a8(trained, calibration, threshold=6.0), held_out)
    assert abs(decomposed / perplexity(trained, held_out) - 1) < 0.02


# --------------------------------------------------------------------------- GPTQ


def test_gptq_with_a_diagonal_hessian_is_round_to_nearest():
    """No correlation between inputs: nothing to push the error onto, so GPTQ rounds each weight to nearest."""
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    h = torch.diag(torch.rand(64, generator=torch.Generator().manual_seed(1)) + 0.5)
    gq = gptq_quantize(w, h, 4, group_size=32)
    rtn = quantize_tensor(w, 4, symmetric=False, granularity="group", group_size=32)
    assert torch.equal(gq.q, rtn.q) and torch.allclose(gq.scale, rtn.scale)


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_beats_round_to_nearest_on_calibration_outputs(trained, calibration, bits):
    quantized, codes = gptq_model(trained, calibration, bits, group_size=None)
    assert set(codes) == set(linear_layers(trained)) and codes["model.layers.0.mlp.down_proj"].bits == bits
    inputs = layer_inputs(trained, calibration)
    layers = linear_layers(trained)
    gptq = sum(layer_error(layers[n].weight, codes[n].dequantize(), inputs[n]) for n in layers)
    rtn = sum(layer_error(layers[n].weight, fake_quantize(layers[n].weight, bits, symmetric=False), inputs[n])
              for n in layers)
    assert gptq < 0.8 * rtn


def test_gptq_model_names_a_group_size_that_does_not_divide(trained, calibration):
    with pytest.raises(ValueError, match="group_size=48 does not divide the 64 input features of weight of "
                                         "model.layers.0.self_attn.q_proj"):
        gptq_model(trained, calibration[:1], 4, group_size=48)
    with pytest.raises(ValueError, match="input of x: GPTQ needs calibration tokens"):
        hessian(torch.zeros(0, 8), "input of x")


# --------------------------------------------------------------------------- int8 kernels and int4 bytes


def test_course_int8_weights_and_scales_equal_torchs(trained):
    ours, theirs = course_int8(trained), torch_int8(trained)
    for name in linear_layers(trained):
        layer = ours.get_submodule(name)
        codes, scale = torch_weight(theirs.get_submodule(name))
        assert isinstance(layer, Int8Linear) and torch.equal(layer.weight_q, codes), name
        assert torch.allclose(layer.weight_scale, scale, rtol=1e-6), name
        qt = quantize_tensor(trained.get_submodule(name).weight, 8, symmetric=True, granularity="channel")
        assert torch.equal(layer.weight_q, qt.q.reshape(codes.shape))  # the same codes as the formula's


def test_int8_linear_computes_in_integers_what_the_float_layer_computes():
    g = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(3, 5, 64, generator=g)
    layer = Int8Linear(linear)
    assert layer.weight_q.dtype == torch.int8 and layer(x).shape == (3, 5, 32)
    with torch.no_grad():
        assert quantization_error(linear(x), layer(x))["sqnr_db"] > 35  # int8 x int8: ~40 dB
        codes = torch.round(127 / x[0, :1].abs().max() * x[0, :1]).to(torch.int8)
        exact = (codes.int() @ layer.weight_q.int().T).float()  # the int32 sums _int_mm must give
        assert torch.equal(torch._int_mm(codes, layer.weight_q.T).float(), exact)


def test_int8_models_generate_and_stay_close(trained, blocks):
    prompt = blocks[1][:2, :16]
    with torch.no_grad():
        reference = trained(input_ids=blocks[1][:4]).logits
        for model in (course_int8(trained), torch_int8(trained)):
            out = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
            assert out.shape == (2, 24) and torch.equal(out[:, :16], prompt)
            assert quantization_error(reference, model(input_ids=blocks[1][:4]).logits)["sqnr_db"] > 25


def test_pack_int4_stores_two_codes_per_byte():
    codes = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)  # every code, [3, 32]
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 16)
    assert packed[0, 0].item() == (-8 & 0xF) | ((-7 & 0xF) << 4)  # 0x8 | 0x9 << 4
    assert torch.equal(unpack_int4(packed), codes)
    with pytest.raises(ValueError, match="codes must lie in -8..7"):
        pack_int4(torch.tensor([[8, 0]], dtype=torch.int8))
    with pytest.raises(ValueError, match="even last dimension"):
        pack_int4(torch.zeros(2, 3, dtype=torch.int8))


def test_int8_and_int4_files_are_small_and_load_back(trained, tmp_path):
    size = {fmt: save_quantized(trained, tmp_path / f"{fmt}.safetensors", fmt, group_size=64)
            for fmt in ("fp32", "bf16", "int8", "int4")}
    assert size["bf16"] / size["fp32"] == pytest.approx(0.5, abs=0.01)
    assert size["int8"] <= 0.30 * size["fp32"] and size["int4"] <= 0.17 * size["fp32"]
    state = trained.state_dict()
    for fmt, bits in (("int8", 8), ("int4", 4)):
        loaded = load_quantized(tmp_path / f"{fmt}.safetensors")
        w = state["model.layers.1.mlp.down_proj.weight"]
        expected = fake_quantize(w, bits, symmetric=bits == 8, granularity="channel" if bits == 8 else "group",
                                 group_size=64)
        assert torch.allclose(loaded["model.layers.1.mlp.down_proj.weight"], expected, rtol=2e-3, atol=1e-6)  # fp16 scales
        model = tiny_llama(seed=1)
        model.load_state_dict(loaded, strict=False)  # lm_head is tied to the embedding, stored once
        assert torch.equal(model.lm_head.weight, loaded["model.embed_tokens.weight"])


def test_the_perplexity_grid_compares_each_setting_with_fp32(trained, calibration, blocks):
    held_out = [{"input_ids": row} for row in blocks[1][:16]]
    settings = [Setting(8), Setting(3, 32), Setting(3, 32, "gptq"), Setting(8, method="w8a8", threshold=6.0)]
    rows = perplexity_grid(trained, held_out, calibration, settings)
    assert [r["setting"] for r in rows] == ["fp32", "int8 channel RTN", "int3 g32 RTN", "int3 g32 GPTQ",
                                           "W8A8 minmax + float outliers >= 6"]
    fp32, int8, int3, gptq = (r["vs_fp32"] for r in rows[:4])
    assert fp32 == 1.0 and abs(int8 - 1) < 0.01
    # 3-bit rounding costs more than 8-bit, and GPTQ wins back part of it (this under-trained model is so noisy that
    # GPTQ's 3 bits can land a hair below fp32, within 0.2%, on some CPUs: the claims are relative to RTN)
    assert int3 > int8 + 0.005 and gptq < int3 - 0.005
    with pytest.raises(ValueError, match="method 'awq'"):
        quantized(trained, Setting(4, method="awq"), calibration)


def test_per_tensor_settings_and_extra_columns(trained, calibration, blocks):
    held_out = [{"input_ids": row} for row in blocks[1][:16]]
    seen = []
    rows = perplexity_grid(trained, held_out, calibration, [Setting(3, per_tensor=True), Setting(3)],
                           extra=lambda model, setting: seen.append(setting) or {"checked": setting is not None})
    assert [r["setting"] for r in rows] == ["fp32", "int3 tensor RTN", "int3 channel RTN"]
    assert rows[1]["perplexity"] > rows[2]["perplexity"]  # one grid for every row costs more than a grid per row
    assert seen == [None, Setting(3, per_tensor=True), Setting(3)] and [r["checked"] for r in rows] == [False, True, True]


def test_the_group_size_divides_every_layer():
    model = tiny_llama()  # inputs of 64 (attention, gate, up) and 128 (down)
    assert group_size_for(model) == 64 and group_size_for(model, (96, 32)) == 32
    with pytest.raises(ValueError, match=r"no group size in \(48,\) divides every layer's input features \[64, 128\]"):
        group_size_for(model, (48,))
    settings = study_settings(64)
    assert len({s.name for s in settings}) == len(settings) and task_settings(64) <= {s.name for s in settings}
