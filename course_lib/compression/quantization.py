"""Integer quantization (양자화) exactly as the survey writes it (§6.1), at any bit width and granularity.

    x_q   = clip(round(s * x + z), -2^(b-1), 2^(b-1) - 1)      an integer code of b bits
    x_hat = (x_q - z) / s                                      its de-quantized value

``s`` (the scale, codes per unit of x) and ``z`` (the zero point, an integer) come from
the minimum and maximum of the values that share them:

- asymmetric: ``s = (2^b - 1) / (max - min)`` and ``z = -round(s * min) - 2^(b-1)``, so
  ``min`` lands on the lowest code and ``max`` on the highest;
- symmetric: ``z = 0`` and ``s = (2^(b-1) - 1) / max|x|``, so ``-max|x|`` and ``max|x|``
  land on ``-(2^(b-1) - 1)`` and ``2^(b-1) - 1`` (the code ``-2^(b-1)`` goes unused, as in
  LLM.int8's ``127 / absmax`` and torch's int8 weights with ``quant_min=-127``).

Granularity says which values share one ``(s, z)``: ``"tensor"`` (all of them),
``"channel"`` (each row, the output channel of a ``[out, in]`` weight) or ``"group"``
(each run of ``group_size`` consecutive values of a row, e.g. 32, 64 or 128).

Every value between min and max comes back within half a step: ``|x - x_hat| <= 1 / (2s)``.
``round`` is torch's, which sends ties to the even integer.

A zero range (``min == max``, or an all-zero group when symmetric) would divide by zero;
there ``s = 1`` and ``z = -min`` (an exact float, not rounded), so every code is 0 and
``x_hat = (0 - z) / 1 = min`` exactly: a constant group is stored without error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRANULARITIES = ("tensor", "channel", "group")
MIN_BITS, MAX_BITS = 2, 16


def check_bits(bits, setting: str = "bits") -> int:
    """``bits`` if it is an integer in [2, 16], else an error naming ``setting``."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{setting}: expected an int number of bits, got {type(bits).__name__} {bits!r}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{setting}={bits}: quantization needs {MIN_BITS} <= bits <= {MAX_BITS}")
    return bits


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` if every value is finite; NaN or infinity has no min/max to scale by, so it is an error naming ``name``."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name}: the tensor is empty")
    bad = ~torch.isfinite(x)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name}: {int(bad.sum())} values are NaN or infinite (the first, at index {where}, "
                         f"is {x[where].item()}); quantization needs finite values")
    return x


def code_range(bits: int) -> tuple[int, int]:
    """The b-bit signed codes ``(-2^(b-1), 2^(b-1) - 1)``: ``(-128, 127)`` at 8 bits, ``(-2, 1)`` at 2."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def grouped(x: torch.Tensor, granularity: str = "tensor", group_size: int = 128, name: str = "x") -> torch.Tensor:
    """``x`` viewed as ``[rows, groups, size]``: the values in ``[r, g, :]`` share one scale and zero point.

    ``"tensor"``: ``[1, 1, numel]``; ``"channel"``: ``[shape[0], 1, rest]``; ``"group"``:
    ``[numel / last, last / group_size, group_size]`` (groups run along the last dimension,
    the input features of a weight, so a group never mixes two output channels).
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r} for {name}: expected one of {', '.join(GRANULARITIES)}")
    x = x.contiguous()
    if granularity == "tensor":
        return x.reshape(1, 1, -1)
    if granularity == "channel":
        return x.reshape(x.shape[0] if x.dim() > 1 else 1, 1, -1)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size={group_size!r} for {name}: expected a positive int")
    last = x.shape[-1]
    if last % group_size:
        raise ValueError(f"group_size={group_size} does not divide the last dimension of {name} "
                         f"(shape {tuple(x.shape)}: {last} = {last // group_size} x {group_size} + {last % group_size})")
    return x.reshape(-1, last // group_size, group_size)


def scale_and_zero(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The survey's ``(s, z)`` for values in ``[lo, hi]`` (tensors of one shape, ``lo <= hi``).

    A zero range gets ``s = 1, z = -lo``, which reconstructs the constant ``lo`` exactly (see the module).
    """
    bits = check_bits(bits)
    lo, hi = lo.float(), hi.float()
    if symmetric:
        m = torch.maximum(lo.abs(), hi.abs())
        s = (2 ** (bits - 1) - 1) / m
        z = torch.zeros_like(m)
        flat = m == 0
    else:
        s = (2**bits - 1) / (hi - lo)
        z = -torch.round(s * lo) - 2 ** (bits - 1)
        flat = hi == lo
    # A range so small that s overflows to infinity is a zero range too (never divide by it).
    flat = flat | ~torch.isfinite(s) | ~torch.isfinite(z)
    s = torch.where(flat, torch.ones_like(s), s)
    z = torch.where(flat, -lo, z)
    return s, z


def quantize(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, bits: int) -> torch.Tensor:
    """``x_q = clip(round(s * x + z), -2^(b-1), 2^(b-1) - 1)`` as int8 (b <= 8) or int16 (b <= 16) codes."""
    low, high = code_range(check_bits(bits))
    q = torch.clamp(torch.round(s * x.float() + z), low, high)
    return q.to(torch.int8 if bits <= 8 else torch.int16)


def dequantize(x_q: torch.Tensor, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``x_hat = (x_q - z) / s`` in float32."""
    return (x_q.float() - z) / s


@dataclass
class QuantizedTensor:
    """Integer codes with the scale and zero point of each group, and what it takes to rebuild the tensor.

    ``q``: ``[rows, groups, size]`` int8/int16 codes; ``scale`` and ``zero``: ``[rows, groups, 1]``
    float32; ``shape`` is the original tensor's shape.
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    bits: int
    symmetric: bool
    shape: torch.Size

    def dequantize(self) -> torch.Tensor:
        """``x_hat`` in the original shape, float32."""
        return dequantize(self.q, self.scale, self.zero).reshape(self.shape)

    def step(self) -> torch.Tensor:
        """``1 / s`` of each value, in the original shape: the grid spacing, twice the round-trip bound."""
        return (1 / self.scale).expand_as(self.q).reshape(self.shape)

    def storage_bits(self, scale_bits: int = 16) -> int:
        """Bits to store it packed: ``bits`` per code plus ``scale_bits`` per scale (and per zero point if asymmetric)."""
        per_group = scale_bits * (1 if self.symmetric else 2)
        return self.q.numel() * self.bits + self.scale.numel() * per_group


def quantize_tensor(x: torch.Tensor, bits: int = 8, *, symmetric: bool = True, granularity: str = "channel",
                    group_size: int = 128, name: str = "x") -> QuantizedTensor:
    """Quantize ``x`` with ``(s, z)`` from the min and max of each tensor, channel or group (see the module).

    ``name`` (a layer's weight, an activation) is what an error message names.
    """
    check_bits(bits, f"bits for {name}")
    view = grouped(check_finite(x, name), granularity, group_size, name).float()
    lo, hi = view.amin(dim=-1, keepdim=True), view.amax(dim=-1, keepdim=True)
    s, z = scale_and_zero(lo, hi, bits, symmetric)
    return QuantizedTensor(quantize(view, s, z, bits), s, z, bits, symmetric, x.shape)


def fake_quantize(x: torch.Tensor, bits: int = 8, *, symmetric: bool = True, granularity: str = "channel",
                  group_size: int = 128, name: str = "x") -> torch.Tensor:
    """``x_hat``: ``x`` quantized and de-quantized, in ``x``'s shape and dtype (what the model then computes with)."""
    qt = quantize_tensor(x, bits, symmetric=symmetric, granularity=granularity, group_size=group_size, name=name)
    return qt.dequantize().to(x.dtype)


def fake_quantize_range(x: torch.Tensor, lo, hi, bits: int = 8, *, symmetric: bool = False) -> torch.Tensor:
    """``x`` quantized with ``(s, z)`` from a given range ``[lo, hi]`` (calibrated, clipped): values outside it clip.

    ``lo`` and ``hi`` are floats or tensors that broadcast against ``x`` (per token: ``[..., 1]``).
    """
    lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
    s, z = scale_and_zero(lo, hi, bits, symmetric)
    return dequantize(quantize(x, s, z, bits), s, z).to(x.dtype)


def quantization_error(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """Mean squared error, largest absolute error and signal-to-quantization-noise ratio (dB) of ``x_hat``."""
    x, x_hat = x.float(), x_hat.float()
    mse = torch.mean((x - x_hat) ** 2).item()
    power = torch.mean(x**2).item()
    sqnr = float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(power / mse)).item()
    return {"mse": mse, "max_abs": (x - x_hat).abs().max().item(), "sqnr_db": sqnr}
