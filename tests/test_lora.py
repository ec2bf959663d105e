"""LoRA from scratch (course_lib.instruction.lora) computes what peft computes, on the same weights.

Each comparison copies one tiny ``ci`` Llama, adapts one copy with ``apply_lora`` and the
other with peft's ``get_peft_model``, gives both the same ``A`` and a random non-zero ``B``
(with ``B = 0`` both would trivially equal the base model), and compares logits.
"""

import copy
import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from course_lib.instruction.lora import LoRALinear, apply_lora, merge_lora, train_token_rows, trainable_parameters
from course_lib.models import build_decoder

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 50
TARGETS = ["q_proj", "v_proj"]
R, ALPHA = 4, 8


@pytest.fixture
def base(ci):
    torch.manual_seed(0)
    return build_decoder(ci.model, vocab_size=VOCAB).eval()


@pytest.fixture
def ids():
    return torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(1))


def adapters(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def randomise_b(model, seed=2):
    """Give every adapter a random non-zero ``B``, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in adapters(model).values():
            m.B.copy_(torch.randn(m.B.shape, generator=g) * 0.5)


def peft_twin(base, ours):
    """``base`` (untouched copy) adapted by peft with the same targets, r, alpha, and ``ours``'s A and B."""
    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0)
    twin = get_peft_model(copy.deepcopy(base), config).eval()
    with torch.no_grad():
        for name, m in adapters(ours).items():
            layer = twin.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(m.A)  # peft's lora_A is nn.Linear(in, r): weight (r, in)
            layer.lora_B["default"].weight.copy_(m.B)  # lora_B is nn.Linear(r, out): weight (out, r)
    return twin


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def max_abs(a, b):
    return (a - b).abs().max().item()


def test_lora_layer_is_base_plus_scaled_low_rank_update():
    torch.manual_seed(0)
    linear = nn.Linear(6, 5)
    layer = LoRALinear(linear, r=2, alpha=3)
    with torch.no_grad():
        layer.B.copy_(torch.arange(10.0).reshape(5, 2) / 10)
    x = torch.randn(4, 6)
    expected = x @ linear.weight.T + linear.bias + (3 / 2) * x @ (layer.B @ layer.A).T
    torch.testing.assert_close(layer(x), expected)
    assert layer.A.shape == (2, 6) and layer.B.shape == (5, 2) and layer.scaling == 1.5
    assert not linear.weight.requires_grad and not linear.bias.requires_grad


def test_a_starts_like_peft_kaiming_uniform_and_b_at_zero(base):
    # kaiming_uniform with a = sqrt(5): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    bound = 1 / math.sqrt(base.config.hidden_size)
    twin = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj"]))
    ours = apply_lora(copy.deepcopy(base), ["q_proj"], r=8, alpha=16)
    for A, B in [(m.A, m.B) for m in adapters(ours).values()] + [
            (m.lora_A["default"].weight, m.lora_B["default"].weight) for m in twin.modules() if hasattr(m, "lora_A")]:
        # 512 draws: the largest lies above 0.95 * bound unless 0.95 ** 512 ~ 4e-12 strikes.
        assert 0.95 * bound < A.abs().max().item() <= bound
        assert A.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)
        assert B.abs().max().item() == 0


def test_a_fresh_lora_model_computes_exactly_what_the_base_model_computes(base, ids):
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA)
    assert len(adapters(ours)) == 2 * base.config.num_hidden_layers
    assert torch.equal(logits(ours, ids), logits(base, ids))


def test_logits_equal_peft_on_the_same_a_and_b(base, ids):
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA).eval()
    randomise_b(ours)
    twin = peft_twin(base, ours)
    assert max_abs(logits(ours, ids), logits(base, ids)) > 0.1  # the adapters change the model ...
    assert max_abs(logits(ours, ids), logits(twin, ids)) < 1e-6  # ... and both libraries change it alike


def test_merged_logits_equal_peft_merge_and_unload_and_the_unmerged_model(base, ids):
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA).eval()
    randomise_b(ours)
    twin = peft_twin(base, ours)
    unmerged = logits(ours, ids)
    merged, twin_merged = merge_lora(ours), twin.merge_and_unload()
    assert adapters(merged) == {} and type(merged.get_submodule("model.layers.0.self_attn.q_proj")) is nn.Linear
    assert [(n, p.shape) for n, p in merged.named_parameters()] == [(n, p.shape) for n, p in base.named_parameters()]
    assert max_abs(logits(merged, ids), logits(twin_merged, ids)) < 1e-6
    assert max_abs(logits(merged, ids), unmerged) < 1e-5
    assert max_abs(logits(merged, ids), logits(base, ids)) > 0.1


def test_merge_keeps_the_bias_and_adds_the_scaled_product():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), r=3, alpha=6)
    nn.init.normal_(layer.B)
    merged = layer.merge()
    torch.testing.assert_close(merged.weight, layer.base.weight + 2 * layer.B @ layer.A)
    assert torch.equal(merged.bias, layer.base.bias) and not merged.weight.requires_grad
    x = torch.randn(4, 6)
    torch.testing.assert_close(merged(x), layer(x), rtol=0, atol=1e-5)


def test_trainable_count_equals_pefts_and_is_a_small_fraction(base, capsys):
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA)
    twin = peft_twin(base, ours)
    trainable, total = trainable_parameters(ours)
    assert (trainable, total) == twin.get_nb_trainable_parameters()
    twin.print_trainable_parameters()
    assert f"trainable params: {trainable:,} || all params: {total:,}" in capsys.readouterr().out
    d, layers = base.config.hidden_size, base.config.num_hidden_layers
    kv = base.config.num_key_value_heads * d // base.config.num_attention_heads
    assert trainable == layers * R * ((d + d) + (d + kv))  # q_proj: d -> d, v_proj: d -> kv; A and B each
    assert total == trainable_parameters(base)[1] + trainable
    assert trainable < 0.02 * total


def test_one_backward_step_reaches_only_a_and_b(base, ids):
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA)
    ours(ids, labels=ids).loss.backward()
    trained = {name for name, p in ours.named_parameters() if p.grad is not None}
    assert trained == {f"{name}.{ab}" for name in adapters(ours) for ab in "AB"}
    assert all(p.requires_grad == (name in trained) for name, p in ours.named_parameters())
    for m in adapters(ours).values():
        # dL/dA = scaling * B^T (dL/dh) x^T is zero while B = 0: the first step moves only B.
        assert m.A.grad.abs().max() == 0 and m.B.grad.abs().max() > 0
    ours.zero_grad(set_to_none=True)
    randomise_b(ours)
    ours(ids, labels=ids).loss.backward()
    assert all(m.A.grad.abs().max() > 0 for m in adapters(ours).values())


def test_dropout_reaches_the_adapter_input_only():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 8), r=2, alpha=2, dropout=0.5).train()
    x = torch.randn(16, 8)
    assert torch.equal(layer(x), layer.base(x))  # B = 0: dropout must not touch the frozen path
    nn.init.normal_(layer.B)
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    dropped = nn.functional.dropout(x, 0.5)
    torch.testing.assert_close(out, layer.base(x) + dropped @ layer.A.T @ layer.B.T)
    assert not torch.equal(out, layer.eval()(x))  # in eval mode the adapter sees x whole


def test_a_target_that_matches_nothing_is_named_with_the_names_there_are(base):
    with pytest.raises(ValueError, match=r"'qproj'.*q_proj.*v_proj"):
        apply_lora(base, ["q_proj", "qproj"])
    with pytest.raises(ValueError, match="'proj'"):  # whole dotted parts, as peft matches
        apply_lora(base, ["proj"])
    assert adapters(base) == {}  # nothing was changed before the bad target was found


def test_bad_arguments_are_named(base):
    for kwargs, error, name in [(dict(r=0), ValueError, "r"), (dict(r=-2), ValueError, "r"),
                                (dict(r=2.5), TypeError, "r"), (dict(alpha=0), ValueError, "alpha"),
                                (dict(alpha=-1.0), ValueError, "alpha"), (dict(dropout=1.0), ValueError, "dropout")]:
        with pytest.raises(error, match=f"^{name}:"):
            apply_lora(base, ["q_proj"], **kwargs)
        with pytest.raises(error, match=f"^{name}:"):
            LoRALinear(nn.Linear(4, 4), **kwargs)
    with pytest.raises(TypeError, match="^targets:.*wrap a single one in a list"):
        apply_lora(base, "q_proj")
    with pytest.raises(ValueError, match="^targets:"):
        apply_lora(base, [])
    with pytest.raises(TypeError, match="^base:"):
        LoRALinear(nn.Conv1d(4, 4, 1))


def test_tied_and_already_adapted_targets_are_refused(base):
    with pytest.raises(ValueError, match="'lm_head'.*shared"):  # tied to the input embeddings
        apply_lora(base, ["lm_head"])
    apply_lora(base, ["q_proj"])
    with pytest.raises(ValueError, match="'q_proj' already has a LoRA adapter"):
        apply_lora(base, ["q_proj"])
    apply_lora(base, ["v_proj"])  # a second call adds adapters and keeps the first ones trainable
    assert {name.rpartition(".")[2] for name in adapters(base)} == {"q_proj", "v_proj"}
    assert all(m.A.requires_grad and m.B.requires_grad for m in adapters(base).values())


def test_train_token_rows_moves_only_those_embedding_rows(base, ids):
    """The chat tokens' embeddings train beside the adapters; every other row stays as pretraining left it."""
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=R, alpha=ALPHA)
    rows = [3, 5]
    assert train_token_rows(ours, rows + [3]) == 2 * base.config.hidden_size
    weight = ours.get_input_embeddings().weight
    before = weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    batch = torch.cat([ids, torch.tensor([[3, 5, 3]]).expand(ids.shape[0], -1)], dim=1)
    for _ in range(3):
        ours(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    moved = (weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert moved == rows
    with pytest.raises(ValueError, match="token_ids: expected ids in"):
        train_token_rows(ours, [base.config.vocab_size])
