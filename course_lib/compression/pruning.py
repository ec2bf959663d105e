"""Unstructured magnitude pruning (비정형 가지치기): zero the smallest weights, store what is left in a sparse format.

A weight matrix ``W`` ``[out, in]`` keeps its shape; a mask of the same shape zeroes its
``round(sparsity * W.numel())`` smallest ``|w|``:

- layer-wise (``scope="layer"``): every linear layer loses the same share, its own smallest;
- global (``scope="global"``): one threshold over all the layers' weights together, so a
  layer with many small weights loses more than one with few.

The masks equal ``torch.nn.utils.prune``'s ``l1_unstructured`` (per layer) and
``global_unstructured`` with ``L1Unstructured`` (a test checks): the same count, the same
``torch.topk(..., largest=False)`` choice. The embedding table (tied to the output layer)
is left whole, as the quantization chapter leaves it in float.

A masked matrix multiplies as fast as a dense one (the zeros are still multiplied), so
the saving is storage only, and only in a sparse format: :func:`save_sparse` writes each
pruned matrix as CSR (row offsets, column indices, values) in safetensors. At sparsity s a
float32 weight costs about ``(1 - s) * (4 + 2)`` bytes per entry (value and int16 column)
instead of 4, so it saves space once more than a third of the weights are gone.
:func:`recover` fine-tunes the pruned model with its masks held fixed (the zeros stay zero),
directly or by distillation from the unpruned model.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

from ..config import Config
from ..training import train
from .calibration import SKIP, linear_layers

SCOPES = ("layer", "global")
SPARSE_FILE = "sparse.safetensors"


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` if it is a number in [0, 1), else a ``ValueError`` naming the setting (1 would remove everything)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"{name}={sparsity!r}: must be in [0, 1) (the share of weights set to zero)")
    return float(sparsity)


def prunable_weights(model: torch.nn.Module, skip=SKIP) -> dict[str, torch.nn.Parameter]:
    """The weights that pruning may zero: every linear layer's but ``skip``'s (the tied output layer), by layer name."""
    return {name: layer.weight for name, layer in linear_layers(model, skip).items()}


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A bool mask of ``weight``'s shape, False at its ``round(sparsity * numel)`` smallest ``|w|`` (ties as torch.topk)."""
    count = round(check_sparsity(sparsity) * weight.numel())
    mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    if count:
        mask[torch.topk(weight.detach().abs().reshape(-1), k=count, largest=False).indices] = False
    return mask.view_as(weight)


def magnitude_masks(model: torch.nn.Module, sparsity: float, scope: str = "layer", skip=SKIP) -> dict[str, torch.Tensor]:
    """``{layer name: mask}`` for the prunable weights at ``sparsity``, layer-wise or ``"global"`` (see the module)."""
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r}: expected one of {', '.join(SCOPES)}")
    weights = prunable_weights(model, skip)
    if scope == "layer":
        return {name: magnitude_mask(w, sparsity) for name, w in weights.items()}
    flat = magnitude_mask(torch.cat([w.detach().reshape(-1) for w in weights.values()]), sparsity)
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = flat[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


@torch.no_grad()
def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Zero ``model``'s weights where ``masks`` (``{layer name: bool mask}``) is False, in place; returns ``model``."""
    layers = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in layers:
            raise KeyError(f"no layer named {name!r} in the model; masks come from magnitude_masks of the same model")
        weight = layers[name].weight
        if mask.shape != weight.shape:
            raise ValueError(f"layer {name}: mask {tuple(mask.shape)} does not match its weight {tuple(weight.shape)}")
        weight.mul_(mask.to(weight.device, weight.dtype))
    return model


def magnitude_prune(model: torch.nn.Module, sparsity: float, scope: str = "layer") -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` with its prunable weights pruned to ``sparsity`` by magnitude, and the masks."""
    pruned = copy.deepcopy(model)
    masks = magnitude_masks(pruned, sparsity, scope)
    return apply_masks(pruned, masks), masks


def sparsity_of(masks: dict[str, torch.Tensor]) -> float:
    """The share of masked (zeroed) entries over all the masks together."""
    total = sum(m.numel() for m in masks.values())
    return 1 - sum(int(m.sum()) for m in masks.values()) / max(1, total)


# --------------------------------------------------------------------------- storage


def save_sparse(model: torch.nn.Module, path: str | Path, masks: dict[str, torch.Tensor]) -> int:
    """Write ``model`` to the folder ``path``: its config, and one safetensors file in which each masked weight is CSR.

    A weight ``name`` in ``masks`` becomes ``name.crow`` (int32 ``[out + 1]``: where each row's
    entries start), ``name.col`` (int16 when ``in < 32768``, else int32: each entry's column)
    and ``name.values`` (its dtype); the rest of the state dict is stored dense. Returns the
    file's size in bytes (what a disk holds).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name in masks:
        weight = state.pop(f"{name}.weight")
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the format itself is stable
            warnings.simplefilter("ignore", UserWarning)
            csr = (weight * masks[name].to(weight.dtype)).to_sparse_csr()
        column_type = torch.int16 if weight.shape[1] < 32768 else torch.int32
        state[f"{name}.crow"] = csr.crow_indices().to(torch.int32)
        state[f"{name}.col"] = csr.col_indices().to(column_type)
        state[f"{name}.values"] = csr.values().contiguous()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # the same numbers as the embedding table: stored once
    save_file(state, path / SPARSE_FILE, metadata={"masked": json.dumps(sorted(masks))})
    return (path / SPARSE_FILE).stat().st_size


def load_sparse(path: str | Path):
    """The model :func:`save_sparse` wrote in ``path``, dense again (zeros where the masks were False), in eval mode."""
    path = Path(path)
    state = load_file(path / SPARSE_FILE)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    for key in [k for k in state if k.endswith(".crow")]:
        name = key[: -len(".crow")]
        shape = model.get_submodule(name).weight.shape
        crow, col, values = state.pop(key), state.pop(f"{name}.col"), state.pop(f"{name}.values")
        state[f"{name}.weight"] = torch.sparse_csr_tensor(crow.long(), col.long(), values, size=shape,
                                                             check_invariants=True).to_dense()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{path}: missing weights {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.eval()


def dense_bytes(model: torch.nn.Module) -> int:
    """The size in bytes of ``model`` saved by ``save_pretrained`` (safetensors, tied weights once), measured."""
    with tempfile.TemporaryDirectory() as out:
        model.save_pretrained(out)
        return sum(f.stat().st_size for f in Path(out).glob("*.safetensors"))


def csr_bytes_estimate(numel: int, rows: int, sparsity: float, value_bytes: int = 4, column_bytes: int = 2) -> int:
    """The bytes CSR needs for a ``rows``-row matrix of ``numel`` entries at ``sparsity``: values, columns, row offsets."""
    kept = numel - round(check_sparsity(sparsity) * numel)
    return kept * (value_bytes + column_bytes) + 4 * (rows + 1)


# --------------------------------------------------------------------------- recovery


def keep_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]):
    """A ``training.train`` callback that re-applies ``masks`` after every optimizer step: pruned weights stay zero.

    (AdamW would otherwise move them: its gradients and weight decay reach every entry.)
    """
    def callback(_step: int, _row: dict) -> None:
        apply_masks(model, masks)

    return callback


def recover(model: torch.nn.Module, blocks, cfg: Config, *, masks: dict[str, torch.Tensor] | None = None,
            teacher=None, steps: int | None = None, seed: int = 0):
    """Fine-tune a pruned ``model`` in place on packed ``blocks`` for ``compression.recovery_steps`` steps.

    ``masks``: keep those weights at zero (unstructured pruning); ``teacher``: learn by
    distillation from it (``distillation.Distiller``, the ``compression`` section's T and
    alpha) instead of by cross-entropy alone. Returns the ``TrainResult`` (None when steps is 0).
    """
    from .distillation import Distiller

    c = cfg.compression
    steps = c.recovery_steps if steps is None else steps
    if steps == 0:
        return None
    run_cfg = replace(cfg.pretrain.train, max_steps=steps, lr=c.recovery_lr, warmup_steps=max(1, steps // 10),
                      eval_every=0, save_every=0, progress=False)
    wrapped = model if teacher is None else Distiller(model, teacher, temperature=c.temperature, alpha=c.alpha)
    callbacks = [keep_masks(model, masks)] if masks else []
    with tempfile.TemporaryDirectory() as out:
        return train(wrapped, blocks, run_cfg, output_dir=out, seed=seed, resume=False, callbacks=callbacks)


def nonzero_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters that are not zero (tied weights counted once): what pruning leaves."""
    unique = {id(p): p for p in model.parameters()}.values()
    return int(sum(int(torch.count_nonzero(p)) for p in unique))
