"""The course decoders, and attention written from scratch equals the library's layer."""

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from course_lib.config import ModelConfig
from course_lib.models import (
    CausalSelfAttention,
    apply_rotary,
    build_decoder,
    causal_mask,
    count_parameters,
    rotary_cos_sin,
    scaled_dot_product_attention,
)


def test_causal_mask_is_the_lower_triangle():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_attention_of_one_query_is_a_softmax_average_of_values():
    q = torch.tensor([[[[1.0, 0.0]]]])  # (B=1, H=1, T=1, D=2)
    k = torch.tensor([[[[1.0, 0.0]]]])
    v = torch.tensor([[[[2.0, 4.0]]]])
    out, w = scaled_dot_product_attention(q, k, v)
    assert w.item() == 1.0 and out.tolist() == [[[[2.0, 4.0]]]]
    # Two keys with scores 0 and 2/sqrt(2): weights softmax([0, sqrt(2)]).
    k2 = torch.tensor([[[[0.0, 1.0], [2.0, 0.0]]]])
    v2 = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    _, w2 = scaled_dot_product_attention(q, k2, v2)
    assert w2[0, 0, 0].tolist() == pytest.approx(torch.softmax(torch.tensor([0.0, 2**0.5]), 0).tolist())


def test_scaled_dot_product_attention_equals_torchs_causal_kernel():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, causal_mask(7))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert torch.all(w.triu(1) == 0) and torch.allclose(w.sum(-1), torch.ones(2, 3, 7))


def test_rotary_tables_equal_llamas_and_rotations_keep_lengths():
    model = build_decoder(ModelConfig(n_layer=1, n_head=2, d_model=32, max_seq_len=16), 10)
    rope = LlamaRotaryEmbedding(model.config)
    x = torch.zeros(1, 5, 32)
    cos_ref, sin_ref = rope(x, torch.arange(5)[None])
    cos, sin = rotary_cos_sin(5, 16)
    torch.testing.assert_close(cos, cos_ref[0])
    torch.testing.assert_close(sin, sin_ref[0])
    v = torch.randn(1, 1, 5, 16)
    torch.testing.assert_close(apply_rotary(v, cos, sin).norm(dim=-1), v.norm(dim=-1))
    torch.testing.assert_close(apply_rotary(v, cos, sin)[..., 0, :], v[..., 0, :])  # position 0 does not turn


def test_from_scratch_attention_equals_llama_attention_on_copied_weights():
    torch.manual_seed(0)
    model = build_decoder(ModelConfig(n_layer=2, n_head=4, d_model=64, max_seq_len=32), 50).eval()
    layer = model.model.layers[1].self_attn
    seen = {}
    hook = layer.register_forward_hook(
        lambda mod, args, kwargs, out: seen.update(x=kwargs["hidden_states"], y=out[0]), with_kwargs=True
    )
    model(input_ids=torch.randint(0, 50, (3, 20)))
    hook.remove()
    mine = CausalSelfAttention.from_llama(layer, model.config)
    torch.testing.assert_close(mine(seen["x"]), seen["y"], rtol=1e-5, atol=1e-6)
    assert mine.last_weights.shape == (3, 4, 20, 20)


def test_build_decoder_sizes_and_parameter_count():
    cfg = ModelConfig(n_layer=2, n_head=2, d_model=64, max_seq_len=32)
    llama = build_decoder(cfg, 100)
    ff = 192  # 8/3 * 64 rounded up to a multiple of 32
    per_layer = 4 * 64 * 64 + 3 * 64 * ff + 2 * 64
    assert count_parameters(llama) == 100 * 64 + 2 * per_layer + 64  # tied embeddings count once
    assert build_decoder(ModelConfig(arch="gpt2", n_layer=1, n_head=2, d_model=32, max_seq_len=16), 10).config.n_embd == 32
