"""Real integer kernels and real bytes: int8 linear layers that compute in integers, and weights on disk at
8 and 4 bits (two 4-bit codes packed in each byte).

Two int8 paths, both per-channel symmetric weights (``s = 127 / max|w|`` per output row)
and dynamic per-token activations:

- ``Int8Linear``: the course's own, readable: the input's rows are quantized on the fly
  (``s = 127 / max|x|`` per token), ``torch._int_mm`` multiplies int8 by int8 into int32,
  and one division by both scales returns to float;
- ``torch_int8``: ``torch.ao.quantization.quantize_dynamic`` (fbgemm/x86 kernels), configured
  with the same weight grid (``quant_min=-127``), so its integer weights and scales equal
  ours (a test checks). torch 2.13 warns that ``torch.ao.quantization`` moves to torchao;
  the warning is silenced here because the API still works and is the fastest in eager mode.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .calibration import SKIP, linear_layers
from .quantization import QuantizedTensor, dequantize, quantize_tensor

FORMATS = ("fp32", "bf16", "int8", "int4")


class Int8Linear(torch.nn.Module):
    """``y = x W^T + b`` with int8 ``W`` (per output channel) and int8 ``x`` (per token), multiplied by ``torch._int_mm``.

    Buffers: ``weight_q`` int8 ``[out, in]`` (the codes; ``_int_mm`` reads its transposed view, which
    measured faster than a transposed copy at batch 1), ``weight_scale`` float32 ``[out]`` (the survey's
    ``s`` of each output row).
    """

    def __init__(self, linear: torch.nn.Linear, name: str = "weight"):
        super().__init__()
        qt = quantize_tensor(linear.weight.detach(), 8, symmetric=True, granularity="channel", name=name)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_q", qt.q.reshape(self.out_features, self.in_features))
        self.register_buffer("weight_scale", qt.scale.reshape(-1))
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, self.in_features).float()
        s_x = 127 / x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)  # [tokens, 1]; an all-zero row stays 0
        x_q = torch.round(s_x * x).clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(x_q, self.weight_q.T) / (s_x * self.weight_scale)  # int32 [tokens, out] -> float
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


def _replace(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def course_int8(model: torch.nn.Module, skip=SKIP) -> torch.nn.Module:
    """A copy of ``model`` whose linear layers (``skip`` left out) are ``Int8Linear``."""
    quantized = copy.deepcopy(model).eval()
    for name, linear in linear_layers(quantized, skip).items():
        _replace(quantized, name, Int8Linear(linear, f"weight of {name}"))
    return quantized


def torch_int8_qconfig():
    """torch's dynamic int8 config with the course's weight grid: per-channel symmetric, codes -127..127."""
    from torch.ao.quantization import PerChannelMinMaxObserver, QConfig
    from torch.ao.quantization.qconfig import per_channel_dynamic_qconfig

    weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                quant_min=-127, quant_max=127)
    return QConfig(activation=per_channel_dynamic_qconfig.activation, weight=weight)


def torch_int8(model: torch.nn.Module, skip=SKIP) -> torch.nn.Module:
    """A copy of ``model`` with its linear layers (``skip`` left out) made ``quantize_dynamic``'s int8 layers."""
    from torch.ao.quantization import quantize_dynamic

    config = {name: torch_int8_qconfig() for name in linear_layers(model, skip)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions", category=UserWarning)
        return quantize_dynamic(copy.deepcopy(model).eval(), config, dtype=torch.qint8)


def torch_weight(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The int8 codes ``[out, in]`` and the scale of each row as the survey writes it (``s = 1 / torch's scale``)
    of a ``quantize_dynamic`` layer."""
    w = layer.weight()
    return w.int_repr(), 1 / w.q_per_channel_scales().float()


# --------------------------------------------------------------------------- bytes: int8 and packed int4 on disk


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Two signed 4-bit codes (-8..7) per byte: ``[..., 2n]`` int8 -> ``[..., n]`` uint8 (even index in the low nibble)."""
    if codes.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last dimension, got shape {tuple(codes.shape)}")
    if codes.numel() and (codes.min() < -8 or codes.max() > 7):
        raise ValueError(f"pack_int4: codes must lie in -8..7, got {codes.min().item()}..{codes.max().item()}")
    nibbles = (codes.to(torch.int16) & 0xF).to(torch.uint8)
    return nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of ``pack_int4``: ``[..., n]`` uint8 -> ``[..., 2n]`` int8 codes."""
    low, high = (packed & 0xF).to(torch.int8), (packed >> 4).to(torch.int8)
    both = torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], -1)
    return torch.where(both > 7, both - 16, both)


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with tied tensors (embedding and ``lm_head``) once, under their first name."""
    seen, state = set(), {}
    for name, t in model.state_dict().items():
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            state[name] = t.detach().contiguous()
    return state


def quantized_state(model: torch.nn.Module, fmt: str = "int8", *, group_size: int = 128,
                    codes: dict[str, QuantizedTensor] | None = None) -> dict[str, torch.Tensor]:
    """The tensors to store ``model`` in ``fmt`` (one of ``FORMATS``).

    ``int8``: each matrix (linear layers and the embedding) as per-channel symmetric codes and
    a float16 scale per row; ``int4``: per-group (``group_size``) asymmetric codes packed two
    per byte, with a float16 scale and zero point per group. Vectors (norms) stay float32.
    ``codes`` (``{weight name: QuantizedTensor}``, e.g. GPTQ's) replace round to nearest.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    state = _unique_state(model)
    if fmt in ("fp32", "bf16"):
        return {k: v.to(torch.float32 if fmt == "fp32" else torch.bfloat16) for k, v in state.items()}
    out = {}
    for key, t in state.items():
        if t.dim() != 2 or not t.is_floating_point():
            out[key] = t
            continue
        qt = (codes or {}).get(key) or quantize_tensor(
            t, 8 if fmt == "int8" else 4, symmetric=fmt == "int8", granularity="channel" if fmt == "int8" else "group",
            group_size=group_size, name=key)
        out[key + ".q"] = qt.q.reshape(t.shape) if qt.bits == 8 else pack_int4(qt.q.reshape(t.shape))
        out[key + ".scale"] = qt.scale.reshape(t.shape[0], -1).half()
        if not qt.symmetric:
            out[key + ".zero"] = qt.zero.reshape(t.shape[0], -1).half()
    return out


def save_quantized(model: torch.nn.Module, path: str | Path, fmt: str = "int8", **kwargs) -> int:
    """Write ``quantized_state(model, fmt, ...)`` to the safetensors file ``path``; returns its size in bytes."""
    save_file(quantized_state(model, fmt, **kwargs), str(path), metadata={"format": fmt})
    return Path(path).stat().st_size


def load_quantized(path: str | Path) -> dict[str, torch.Tensor]:
    """The float32 state dict that a ``save_quantized`` file stores (codes de-quantized; tied names once)."""
    stored, state = load_file(str(path)), {}
    for key, t in stored.items():
        if key.endswith((".scale", ".zero")):
            continue
        if not key.endswith(".q"):
            state[key] = t.float() if t.is_floating_point() else t
            continue
        name = key[:-2]
        q = unpack_int4(t) if t.dtype == torch.uint8 else t
        s = stored[name + ".scale"].float()
        z = stored[name + ".zero"].float() if name + ".zero" in stored else torch.zeros_like(s)
        rows, groups = s.shape
        state[name] = dequantize(q.reshape(rows, groups, -1), s[..., None], z[..., None]).reshape(q.shape)
    return state


def tensor_bytes(tensors) -> int:
    """Bytes of a state dict's (or a module's parameters' and buffers') distinct tensors."""
    if isinstance(tensors, torch.nn.Module):
        tensors = {**dict(tensors.named_parameters()), **dict(tensors.named_buffers())}
    return sum(t.numel() * t.element_size() for t in {t.data_ptr(): t for t in tensors.values()}.values())
