"""Structured pruning (정형 가지치기): remove whole attention heads, FFN neurons and layers, so the model gets smaller.

Each structure gets an importance score on calibration text, and the least important go:

- ``"taylor"`` (first-order Taylor, Michel et al. 2019; Molchanov et al. 2019): put a gate
  ``g = 1`` on the structure's output (a head's slice of the ``o_proj`` input, a neuron's
  input to ``down_proj``, a layer's addition to the residual stream) and score
  ``|dL/dg|``, summed over the batches: the loss change, to first order, of removing it;
- ``"magnitude"``: the L2 norm of the weights that carry the structure (a head's rows of
  ``q/k/v_proj`` and columns of ``o_proj``; a neuron's rows of ``gate/up_proj`` and column of
  ``down_proj``; a layer's ``o_proj`` and ``down_proj``), no data needed.

:func:`shrink` then builds a new, smaller ``LlamaForCausalLM`` (fewer ``num_attention_heads``
with the same ``head_dim``, a smaller ``intermediate_size``, fewer ``num_hidden_layers``) and
copies the kept rows and columns into it: it saves with ``save_pretrained`` and loads with
``from_pretrained`` like any other, and its outputs equal those of the original model with the
removed structures masked to zero (:func:`mask_structures`; a test checks). One Llama config
holds one head count and one FFN width for every layer, so each layer loses as many heads
(and neurons) as the others; which ones is each layer's own choice. ``LlamaConfig`` also requires
the head count to divide ``hidden_size`` (it refuses to save otherwise, although ``head_dim`` is
explicit), so of 4 heads on a width of 128 a model can keep 4, 2 or 1: :func:`shrink` names the
counts allowed, and :func:`structured_prune` keeps the largest allowed count at or below the share asked.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SCORES = ("taylor", "magnitude")


def check_llama(model) -> LlamaConfig:
    """``model.config`` if ``model`` is a ``LlamaForCausalLM`` with one key/value head per head, else a ``ValueError``."""
    config = model.config
    if not isinstance(model, LlamaForCausalLM):
        raise ValueError(f"structured pruning rebuilds Llama models; got {type(model).__name__}")
    if config.num_key_value_heads != config.num_attention_heads:
        raise ValueError("structured pruning here covers multi-head attention, not grouped-query attention")
    return config


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


@contextmanager
def _gates(model):
    """Gates ``g = 1`` (requiring grad) on every head, neuron and layer output while open: ``{"heads": [L, H],
    "neurons": [L, d_ff], "layers": [L]}``."""
    config = check_llama(model)
    L, H, D = config.num_hidden_layers, config.num_attention_heads, _head_dim(config)
    gates = {"heads": torch.ones(L, H, requires_grad=True), "neurons": torch.ones(L, config.intermediate_size,
             requires_grad=True), "layers": torch.ones(L, requires_grad=True)}

    def heads(i):
        return lambda _m, args: ((args[0].unflatten(-1, (H, D)) * gates["heads"][i].to(args[0])[:, None]).flatten(-2),)

    def neurons(i):
        return lambda _m, args: (args[0] * gates["neurons"][i].to(args[0]),)

    def layer(i):
        return lambda _m, args, out: args[0] + gates["layers"][i].to(out) * (out - args[0])

    hooks = []
    for i, block in enumerate(model.model.layers):
        hooks += [block.self_attn.o_proj.register_forward_pre_hook(heads(i)),
                  block.mlp.down_proj.register_forward_pre_hook(neurons(i)), block.register_forward_hook(layer(i))]
    try:
        yield gates
    finally:
        for h in hooks:
            h.remove()


def taylor_importance(model, batches) -> dict[str, torch.Tensor]:
    """``{"heads": [L, H], "neurons": [L, d_ff], "layers": [L]}``: ``|dL/dg|`` of each gate, summed over ``batches``.

    ``L`` is the next-token cross-entropy of each batch (``{"input_ids", "position_ids"}``) in
    eval mode (no dropout). The model's own gradients are cleared afterwards.
    """
    model.eval()
    scores = None
    with _gates(model) as gates, torch.enable_grad():
        for b in batches:
            b = b if isinstance(b, dict) else {"input_ids": b}
            ids = b["input_ids"].to(model.device)
            loss = model(input_ids=ids, position_ids=b.get("position_ids"), labels=ids, use_cache=False).loss
            grads = torch.autograd.grad(loss, list(gates.values()))
            step = {k: g.abs() for k, g in zip(gates, grads)}
            scores = step if scores is None else {k: scores[k] + step[k] for k in scores}
    if scores is None:
        raise ValueError("taylor importance needs at least one calibration batch")
    return scores


@torch.no_grad()
def magnitude_importance(model) -> dict[str, torch.Tensor]:
    """``{"heads": [L, H], "neurons": [L, d_ff], "layers": [L]}``: the L2 norm of the weights carrying each structure."""
    config = check_llama(model)
    H, D = config.num_attention_heads, _head_dim(config)
    heads, neurons, layers = [], [], []
    for block in model.model.layers:
        a, m = block.self_attn, block.mlp
        rows = sum(p.weight.unflatten(0, (H, D)).pow(2).sum((1, 2)) for p in (a.q_proj, a.k_proj, a.v_proj))
        heads.append((rows + a.o_proj.weight.unflatten(1, (H, D)).pow(2).sum((0, 2))).sqrt())
        neurons.append((m.gate_proj.weight.pow(2).sum(1) + m.up_proj.weight.pow(2).sum(1)
                        + m.down_proj.weight.pow(2).sum(0)).sqrt())
        layers.append((a.o_proj.weight.pow(2).sum() + m.down_proj.weight.pow(2).sum()).sqrt())
    return {"heads": torch.stack(heads), "neurons": torch.stack(neurons), "layers": torch.stack(layers)}


def importance(model, batches=None, score: str = "taylor") -> dict[str, torch.Tensor]:
    """Each head's, neuron's and layer's importance by ``score`` (``"taylor"`` needs calibration ``batches``)."""
    if score not in SCORES:
        raise ValueError(f"importance score {score!r}: expected one of {', '.join(SCORES)}")
    return taylor_importance(model, batches or []) if score == "taylor" else magnitude_importance(model)


def least_important(scores: torch.Tensor, count: int) -> list[list[int]]:
    """For each row of ``scores`` ``[L, n]``, the ``count`` indices with the lowest score, in order."""
    if count == 0:
        return [[] for _ in range(scores.shape[0])]
    return [sorted(row.topk(count, largest=False).indices.tolist()) for row in scores]


def _kept(removed: dict[int, list[int]] | None, layers: int, total: int, what: str) -> list[list[int]]:
    """The indices each layer keeps, after checking ``removed`` (``{layer: indices}``): in range, the same count
    in every layer, and at least one left."""
    removed = {int(k): sorted(set(v)) for k, v in (removed or {}).items()}
    for layer, idx in removed.items():
        if not 0 <= layer < layers:
            raise ValueError(f"layer {layer}: the model has layers 0..{layers - 1}")
        if any(not 0 <= i < total for i in idx):
            raise ValueError(f"layer {layer}: {what} {idx} out of range 0..{total - 1}")
        if len(idx) == total:
            raise ValueError(f"layer {layer}: pruning all {total} {what} would leave it none; keep at least one "
                             f"(or drop the whole layer)")
    counts = {len(removed.get(layer, [])) for layer in range(layers)}
    if len(counts) > 1:
        raise ValueError(f"{what}: remove as many from every layer (one Llama config holds one count); "
                         f"got {[len(removed.get(layer, [])) for layer in range(layers)]}")
    return [[i for i in range(total) if i not in removed.get(layer, [])] for layer in range(layers)]


def head_counts(config) -> list[int]:
    """The head counts a Llama of this width may keep: those that divide ``hidden_size`` (LlamaConfig's rule)."""
    return [h for h in range(1, config.num_attention_heads + 1) if config.hidden_size % h == 0]


def _index(keep: list[int], width: int) -> torch.Tensor:
    """The rows (or columns) of the kept structures when each spans ``width`` consecutive ones (a head: head_dim)."""
    return torch.cat([torch.arange(k * width, (k + 1) * width) for k in keep])


def _check_layers(layers, count: int) -> list[int]:
    layers = sorted(set(int(i) for i in (layers or [])))
    if any(not 0 <= i < count for i in layers):
        raise ValueError(f"layers {layers}: the model has layers 0..{count - 1}")
    if len(layers) == count:
        raise ValueError(f"dropping all {count} layers would leave no model; keep at least one")
    return layers


@torch.no_grad()
def shrink(model, heads: dict[int, list[int]] | None = None, neurons: dict[int, list[int]] | None = None,
           layers: list[int] | None = None) -> LlamaForCausalLM:
    """A new, smaller Llama without the ``heads`` and ``neurons`` (``{layer: indices}``) and the ``layers`` given.

    Layer indices are the original model's. The kept weights are copied; ``model`` is unchanged.
    """
    config = check_llama(model)
    L, H, D, F = config.num_hidden_layers, config.num_attention_heads, _head_dim(config), config.intermediate_size
    keep_heads, keep_neurons = _kept(heads, L, H, "heads"), _kept(neurons, L, F, "neurons")
    if len(keep_heads[0]) not in head_counts(config):
        raise ValueError(f"removing {H - len(keep_heads[0])} of {H} heads leaves {len(keep_heads[0])}, which does not "
                         f"divide hidden_size {config.hidden_size} (LlamaConfig refuses to save such a model): keep "
                         f"{' or '.join(map(str, head_counts(config)))} heads")
    kept_layers = [i for i in range(L) if i not in _check_layers(layers, L)]
    small = copy.deepcopy(config)
    small.num_attention_heads = small.num_key_value_heads = len(keep_heads[0])
    small.head_dim, small.intermediate_size, small.num_hidden_layers = D, len(keep_neurons[0]), len(kept_layers)
    old = model.state_dict()
    state = {k: v for k, v in old.items() if not k.startswith("model.layers.")}
    for new, i in enumerate(kept_layers):
        rows = {"q_proj": _index(keep_heads[i], D), "k_proj": _index(keep_heads[i], D), "v_proj": _index(keep_heads[i], D),
                "gate_proj": torch.tensor(keep_neurons[i]), "up_proj": torch.tensor(keep_neurons[i])}
        columns = {"o_proj": _index(keep_heads[i], D), "down_proj": torch.tensor(keep_neurons[i])}
        for key, value in old.items():
            prefix = f"model.layers.{i}."
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            part = rest.split(".")[-2] if "." in rest else rest
            if part in rows:
                value = value.index_select(0, rows[part].to(value.device))
            elif part in columns and rest.endswith("weight"):
                value = value.index_select(1, columns[part].to(value.device))
            state[f"model.layers.{new}.{rest}"] = value.clone()
    smaller = LlamaForCausalLM(small).to(next(model.parameters()).dtype)
    smaller.load_state_dict(state, strict=True)
    smaller.generation_config = copy.deepcopy(model.generation_config)
    return smaller.train(model.training)


@torch.no_grad()
def mask_structures(model, heads: dict[int, list[int]] | None = None, neurons: dict[int, list[int]] | None = None,
                    layers: list[int] | None = None):
    """A copy of ``model`` of the same size in which the given structures output zero (the masked model).

    A head's ``o_proj`` columns, a neuron's ``down_proj`` column and a layer's whole ``o_proj``
    and ``down_proj`` are zeroed: a zeroed layer adds nothing to the residual stream, as if it
    were not there. :func:`shrink` with the same arguments computes the same outputs.
    """
    config = check_llama(model)
    D = _head_dim(config)
    masked = copy.deepcopy(model)
    blocks = masked.model.layers
    for i, idx in (heads or {}).items():
        blocks[i].self_attn.o_proj.weight[:, _index(list(idx), D)] = 0
    for i, idx in (neurons or {}).items():
        blocks[i].mlp.down_proj.weight[:, list(idx)] = 0
    for i in _check_layers(layers, config.num_hidden_layers):
        blocks[i].self_attn.o_proj.weight.zero_()
        blocks[i].mlp.down_proj.weight.zero_()
    return masked


def structured_prune(model, batches=None, *, head_share: float = 0.0, neuron_share: float = 0.0, layers: int = 0,
                     score: str = "taylor") -> tuple[LlamaForCausalLM, dict]:
    """A smaller copy of ``model`` without its least important structures, and what was removed.

    ``head_share`` and ``neuron_share`` of every layer's heads and FFN neurons go (rounded; for
    heads, then up to the next count :func:`head_counts` allows; a share that would remove
    every head of a layer is an error naming the layer), and the
    ``layers`` least important whole layers. Importance by ``score`` on ``batches``.
    Returns ``(smaller, {"heads": {layer: [...]}, "neurons": {...}, "layers": [...], "score": ...})``.
    """
    from .pruning import check_sparsity

    config = check_llama(model)
    check_sparsity(head_share, "head_share"), check_sparsity(neuron_share, "neuron_share")
    scores = importance(model, batches, score)
    keep = config.num_attention_heads - round(head_share * config.num_attention_heads)
    allowed = [h for h in head_counts(config) if h <= keep]  # none: every head would go, an error below
    n_heads = config.num_attention_heads - (max(allowed) if allowed else 0)
    n_neurons = round(neuron_share * config.intermediate_size)
    removed = {"heads": dict(enumerate(least_important(scores["heads"], n_heads))),
               "neurons": dict(enumerate(least_important(scores["neurons"], n_neurons))),
               "layers": sorted(scores["layers"].topk(layers, largest=False).indices.tolist()) if layers else [],
               "score": score}
    return shrink(model, removed["heads"], removed["neurons"], removed["layers"]), removed
