"""Chapter 09, distillation and pruning: Hinton's loss by hand and its T^2 scaling, the Distiller in the course loop,
cached teacher logits, masks equal to torch.nn.utils.prune's, CSR weights on disk, a genuinely smaller Llama that
loads with from_pretrained and computes what the masked model computes, the experiments' directions, bad input."""

import copy
import math

import pytest
import torch
from torch.nn.utils import prune
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from course_lib import zoo
from course_lib.compression import (Distiller, apply_masks, cache_teacher, check_sparsity, check_temperature, dense_bytes,
                                    importance, kd_loss, least_important, load_sparse, magnitude_importance,
                                    magnitude_masks, magnitude_prune, mask_structures, paired_interval,
                                    prunable_weights, recover, save_sparse, shrink, soft_loss, sparsity_of,
                                    structured_prune, taylor_importance)
from course_lib.config import TrainConfig
from course_lib.models import count_parameters
from course_lib.runs import FINAL_DIR
from course_lib.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_llama(seed: int = 0, vocab: int = 64, layers: int = 2, heads: int = 4) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=heads, max_position_embeddings=32, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def token_rows(n: int = 16, length: int = 16, vocab: int = 64, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, length), generator=g)
    return [{"input_ids": row, "labels": row.clone()} for row in ids]


# --------------------------------------------------------------------------- the KD loss, by hand

# One position, two tokens. Student logits [0, 0] -> p_s = [1/2, 1/2] at any T.
# Teacher logits [ln 3, 0]: at T = 1, p_t = [3/4, 1/4]; at T = 2, [sqrt 3, 1] / (sqrt 3 + 1).
# KL(p_t || p_s) = sum p_t ln(2 p_t). The true next token is 0: CE = ln 2.
def _kl_by_hand(p0: float) -> float:
    return p0 * math.log(2 * p0) + (1 - p0) * math.log(2 * (1 - p0))


@pytest.mark.parametrize("T, p0", [(1.0, 0.75), (2.0, math.sqrt(3) / (math.sqrt(3) + 1))])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_kd_loss_by_hand(T, p0, alpha):
    student = torch.zeros(1, 2, 2)  # [B, S, V]; the last position predicts nothing
    teacher = torch.tensor([[[math.log(3), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[-100, 0]])  # position 0 predicts token 0
    expected = alpha * T * T * _kl_by_hand(p0) + (1 - alpha) * math.log(2)
    assert kd_loss(student, teacher, labels, temperature=T, alpha=alpha).item() == pytest.approx(expected, rel=1e-6)


def test_top_k_teacher_with_every_token_is_the_full_kl():
    g = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(2, 5, 11, generator=g), torch.randn(2, 5, 11, generator=g)
    top = z_t.topk(11, dim=-1)
    assert soft_loss(z_s, (top.values, top.indices), 3.0).item() == pytest.approx(soft_loss(z_s, z_t, 3.0).item(),
                                                                                  rel=1e-5)
    few = z_t.topk(3, dim=-1)  # the teacher's 3 best tokens, renormalized: a different, positive number
    assert soft_loss(z_s, (few.values, few.indices), 3.0).item() > 0


def test_t_squared_keeps_the_soft_gradient_comparable_across_temperatures():
    """d soft / d z_s = T (p_s - p_t) tends to (z_s - z_t) / V for large T: without T^2 it shrinks like 1 / T^2."""
    g = torch.Generator().manual_seed(0)
    z_t = torch.randn(64, 100, generator=g)
    norms = {}
    for T in (4.0, 8.0, 16.0):
        z_s = torch.randn(64, 100, generator=torch.Generator().manual_seed(1)).requires_grad_()
        soft_loss(z_s, z_t, T).backward()
        norms[T] = z_s.grad.norm().item()
    assert 0.8 < norms[16.0] / norms[4.0] < 1.25
    assert (norms[16.0] / 16 ** 2) / (norms[4.0] / 4 ** 2) < 0.1  # the unscaled KL's gradient: 16 times smaller


def test_distiller_trains_the_student_in_the_course_loop(tmp_path):
    teacher, student = tiny_llama(0), tiny_llama(1, layers=1, heads=2)
    before = copy.deepcopy(teacher.state_dict())
    rows = token_rows()
    batch = {k: torch.stack([r[k] for r in rows[:4]]) for k in ("input_ids", "labels")}
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5)
    expected = kd_loss(student(input_ids=batch["input_ids"]).logits, teacher(input_ids=batch["input_ids"]).logits,
                       batch["labels"], temperature=2.0, alpha=0.5)
    assert distiller(**batch).loss.item() == pytest.approx(expected.item(), rel=1e-6)
    run = TrainConfig(max_steps=6, batch_size=4, lr=1e-2, warmup_steps=0, eval_every=0, progress=False)
    result = train(distiller, rows, run, output_dir=tmp_path, resume=False)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / FINAL_DIR)
    assert saved.config.num_hidden_layers == 1 and count_parameters(saved) == count_parameters(student)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # the teacher did not train
    assert all(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert result.step == 6


def test_cached_teacher_logits_give_the_on_the_fly_loss():
    teacher, student = tiny_llama(0), tiny_llama(1, layers=1, heads=2)
    rows = token_rows(n=4)
    cache = cache_teacher(teacher, rows, top_k=64)  # every token: only float16 rounding differs
    batch = {k: torch.stack([cache[i][k] for i in range(4)]) for k in cache[0]}
    cached = Distiller(student, None, temperature=2.0)(**batch).loss
    fly = Distiller(student, teacher, temperature=2.0)(**{k: batch[k] for k in ("input_ids", "labels")}).loss
    assert cached.item() == pytest.approx(fly.item(), rel=1e-3)
    assert cache.nbytes() == 4 * 16 * 64 * (2 + 2)  # float16 values, int16 indices


# --------------------------------------------------------------------------- unstructured pruning


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.75])
def test_masks_equal_torch_prune(sparsity):
    model = tiny_llama()
    layer_masks, global_masks = magnitude_masks(model, sparsity), magnitude_masks(model, sparsity, "global")
    reference = copy.deepcopy(model)
    layers = {name: reference.get_submodule(name) for name in prunable_weights(reference)}
    for layer in layers.values():
        prune.l1_unstructured(layer, "weight", amount=sparsity)
    assert all(torch.equal(layer_masks[n], m.weight_mask.bool()) for n, m in layers.items())
    reference = copy.deepcopy(model)
    layers = {name: reference.get_submodule(name) for name in prunable_weights(reference)}
    prune.global_unstructured([(m, "weight") for m in layers.values()], pruning_method=prune.L1Unstructured,
                              amount=sparsity)
    assert all(torch.equal(global_masks[n], m.weight_mask.bool()) for n, m in layers.items())
    assert sparsity_of(global_masks) == pytest.approx(sparsity, abs=1e-3)
    per_layer = [1 - m.float().mean().item() for m in global_masks.values()]
    assert sparsity == 0 or max(per_layer) - min(per_layer) > 0.01  # global: layers lose different shares


def test_sparse_file_round_trips_and_is_smaller_when_sparse_enough(tmp_path):
    model = tiny_llama(vocab=16)  # a small embedding table: the linear layers dominate the bytes
    ids = torch.randint(0, 16, (2, 12))
    sizes = {}
    for s in (0.1, 0.8):
        pruned, masks = magnitude_prune(model, s)
        sizes[s] = save_sparse(pruned, tmp_path / str(s), masks)
        loaded = load_sparse(tmp_path / str(s))
        assert torch.equal(loaded(input_ids=ids).logits, pruned(input_ids=ids).logits)
    dense = dense_bytes(model)
    assert sizes[0.8] < 0.6 * dense < dense < sizes[0.1]  # CSR pays 6 bytes a kept weight: a loss at 10%


def test_recovery_keeps_the_pruned_weights_at_zero(ci):
    model, masks = magnitude_prune(tiny_llama(), 0.5)
    recover(model, token_rows(), ci, masks=masks, steps=3)
    assert all(torch.all(model.get_submodule(n).weight[~m] == 0) for n, m in masks.items())
    assert any(torch.count_nonzero(model.get_submodule(n).weight[m]) for n, m in masks.items())


# --------------------------------------------------------------------------- structured pruning


def test_a_shrunk_llama_loads_and_computes_what_the_masked_one_does(tmp_path):
    model = tiny_llama(layers=3)
    heads, neurons, layers = {0: [1, 3], 1: [0, 2], 2: [2, 3]}, {i: [0, 5, 7, 40] for i in range(3)}, [1]
    small = shrink(model, heads, neurons, layers)
    small.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    c = loaded.config
    assert (c.num_attention_heads, c.intermediate_size, c.num_hidden_layers, c.head_dim) == (2, 44, 2, 8)
    assert count_parameters(loaded) < count_parameters(model)
    ids = torch.randint(0, 64, (2, 10))
    masked = mask_structures(model, heads, neurons, layers)
    assert torch.allclose(loaded(input_ids=ids).logits, masked(input_ids=ids).logits, atol=1e-5)
    assert not torch.allclose(model(input_ids=ids).logits, masked(input_ids=ids).logits, atol=1e-3)


def test_a_silent_head_scores_zero_and_goes_first():
    model = mask_structures(tiny_llama(), heads={0: [2], 1: [2]}, neurons={0: [9], 1: [9]})
    batches = [{"input_ids": torch.randint(0, 64, (4, 12))}]
    taylor = taylor_importance(model, batches)  # its output is zero: the loss does not depend on its gate
    assert taylor["heads"][:, 2].tolist() == [0, 0] and taylor["neurons"][:, 9].tolist() == [0, 0]
    with torch.no_grad():  # magnitude reads the weights in and out: zero them all
        for block in model.model.layers:
            for p in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj):
                p.weight[16:24] = 0
            block.mlp.gate_proj.weight[9] = block.mlp.up_proj.weight[9] = 0
    for scores in (taylor, magnitude_importance(model)):
        assert least_important(scores["heads"], 1) == [[2], [2]]
        assert least_important(scores["neurons"], 1) == [[9], [9]]
    smaller, removed = structured_prune(model, batches, head_share=0.25, neuron_share=0.5, layers=1)
    # a quarter of 4 heads is 1, but 3 heads do not divide the width 32: the next allowed count, 2, is kept
    assert all(len(h) == 2 and 2 in h for h in removed["heads"].values()) and len(removed["layers"]) == 1
    assert smaller.config.intermediate_size == 24 and smaller.config.num_hidden_layers == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("T", [0, -1.0, float("nan"), float("inf")])
def test_temperature_must_be_positive(T):
    with pytest.raises(ValueError, match="temperature T="):
        check_temperature(T)
    with pytest.raises(ValueError, match="temperature T="):
        Distiller(tiny_llama(), temperature=T)


def test_student_and_teacher_must_share_a_vocabulary():
    with pytest.raises(ValueError, match=r"student vocabulary \(32 tokens\) differs from the teacher's \(64\)"):
        Distiller(tiny_llama(vocab=32), tiny_llama(vocab=64))


@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5, True])
def test_sparsity_outside_zero_one(s):
    with pytest.raises(ValueError, match=r"sparsity=.*must be in \[0, 1\)"):
        magnitude_masks(tiny_llama(), s)
    with pytest.raises(ValueError, match=r"neuron_share=.*\[0, 1\)"):
        structured_prune(tiny_llama(), score="magnitude", neuron_share=s)
    check_sparsity(0.0)


def test_pruning_every_head_of_a_layer_is_refused():
    with pytest.raises(ValueError, match="layer 1: pruning all 4 heads"):
        shrink(tiny_llama(), heads={1: [0, 1, 2, 3], 0: [0, 1, 2]})
    with pytest.raises(ValueError, match="layer 0: pruning all 2 heads"):
        structured_prune(tiny_llama(heads=2), score="magnitude", head_share=0.9)
    with pytest.raises(ValueError, match="remove as many from every layer"):
        shrink(tiny_llama(), heads={0: [1]})
    with pytest.raises(ValueError, match="dropping all 2 layers"):
        shrink(tiny_llama(), layers=[0, 1])
    with pytest.raises(ValueError, match=r"leaves 3, which does not divide hidden_size 32.*keep 1 or 2 or 4 heads"):
        shrink(tiny_llama(), heads={0: [1], 1: [0]})
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        apply_masks(tiny_llama(), {"nope": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="importance score 'l2'"):
        importance(tiny_llama(), score="l2")


# --------------------------------------------------------------------------- the experiments' directions (ci)


def test_paired_interval_by_hand():
    # gaps 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027: half width 4.3027 / sqrt 3 = 2.4841
    gap = paired_interval([2, 4, 6], [1, 2, 3])
    assert gap["mean"] == 2 and gap["low"] == pytest.approx(2 - 2.48414, abs=1e-4) and gap["n"] == 3


def test_distilled_students_beat_direct_ones_at_every_seed(ci):
    results = zoo.get("kd-students", ci)
    rows = results["comparison"]["rows"]
    assert len(rows) == ci.compression.seeds and all(r["distilled"] < r["direct"] for r in rows)
    assert results["comparison"]["gap"]["mean"] > 0
    sweep = {(r["alpha"], r["temperature"]): r["perplexity"] for r in results["temperatures"]}
    assert set(sweep) == {(a, T) for a in (0.5, 1.0) for T in ci.compression.temperatures}
    assert sweep[ci.compression.alpha, ci.compression.temperature] == rows[0]["distilled"]  # the seed-0 run, reused
    speed = results["speed"]["seconds_per_step"]
    assert speed["cached"] < speed["on_the_fly"]  # the teacher's forward pass is what caching saves


def test_structured_pruning_costs_more_quality_for_fewer_parameters(ci):
    rows = {(r["kind"], r["sparsity"]): r for r in zoo.get("pruning-sweep", ci)["rows"]}
    dense, unstructured, structured = rows["unstructured", 0.0], rows["unstructured", 0.5], rows["structured", 0.5]
    assert structured["parameters"] < dense["parameters"] == unstructured["parameters"]
    assert unstructured["nonzero"] < dense["nonzero"]
    assert structured["perplexity"] > unstructured["perplexity"] > dense["perplexity"]
    assert unstructured["recovered"] < unstructured["perplexity"] and structured["recovered"] < structured["perplexity"]


def test_smaller_models_sit_beside_unstructured_pruning_with_as_many_nonzero_parameters(ci):
    rows = zoo.get("pruning-sweep", ci)["rows"]
    dense = next(r for r in rows if r["kind"] == "unstructured" and r["sparsity"] == 0)
    layers = [r for r in rows if r["kind"] == "layers"]
    assert [r["layers"] for r in layers] == [ci.model.n_layer - k for k in ci.compression.drop_layers]
    for i, row in enumerate(rows):
        if row["kind"] in ("structured", "layers"):
            matched = rows[i + 1]
            assert matched["kind"] == "matched" and matched["matches"] == f"{row['kind']} {row['sparsity']:g}"
            assert matched["parameters"] == dense["parameters"]  # a masked model keeps every entry
            assert abs(matched["nonzero"] - row["nonzero"]) <= 0.002 * dense["parameters"]  # rounding of the share


def test_sequence_distillation_starts_from_instruct_with_half_its_layers(ci):
    results = zoo.get("kd-sequence", ci)
    assert len(results["removed_layers"]) == max(1, ci.model.n_layer // 2)
    assert results["student_parameters"] < results["teacher_parameters"]
    assert results["teacher_answered"] <= results["rows"] == min(ci.compression.sequence_rows, results["rows"])
    assert {"untuned", "true_answers", "teacher_answers"} <= set(results)


def test_sequence_distillation_counts_the_rows_it_leaves_out(ci):
    from course_lib.compression import sequence_distill
    from course_lib.instruction import add_chat_template, chat_example, training_conversations

    instruct = zoo.get("instruct", ci)
    tokenizer = add_chat_template(instruct.tokenizer)
    rows = training_conversations(ci)[:6]
    lengths = sorted(len(chat_example(tokenizer, r["messages"], r["id"])["input_ids"]) for r in rows)
    longer = sum(n > lengths[2] for n in lengths)
    assert longer > 0
    cfg = TrainConfig(max_steps=1, batch_size=2, eval_every=0, progress=False)
    with pytest.warns(UserWarning, match=rf"{longer} of 6 rows are longer than max_length={lengths[2]} tokens"):
        sequence_distill(copy.deepcopy(instruct.model), tokenizer, rows, cfg, max_length=lengths[2])
