"""GPTQ (Frantar et al., 2023): quantize a weight column by column, pushing each column's rounding error onto the
columns not yet quantized, weighted by the inverse Hessian of the layer's calibration inputs.

For a linear layer with calibration inputs ``X [tokens, in]``, GPTQ minimizes the output error
``||X W^T - X Q^T||^2``, whose Hessian in each weight row is ``H = 2 X^T X / tokens``. Column ``i``
is rounded to the grid, and the error ``(w_i - q_i) / [H^-1]_ii`` is subtracted from the later
columns along row ``i`` of the (upper Cholesky factor of the) inverse Hessian: they then absorb
what rounding column ``i`` lost. Round-to-nearest (RTN) is the same loop with no update.

``gptq_model`` quantizes a model's linear layers in order, each on the inputs that the layers
quantized before it produce, so later layers also correct the error of earlier ones.
"""

from __future__ import annotations

import copy

import torch

from .calibration import check_batches, layer_inputs, linear_layers
from .quantization import QuantizedTensor, check_bits, check_finite, dequantize, quantize, scale_and_zero


def hessian(x: torch.Tensor, name: str = "input") -> torch.Tensor:
    """``H = 2 X^T X / tokens`` of calibration inputs ``x [tokens, in]`` (float32 ``[in, in]``)."""
    if x.numel() == 0:
        raise ValueError(f"{name}: GPTQ needs calibration tokens; got none")
    x = check_finite(x, name).reshape(-1, x.shape[-1]).float()
    return 2 * x.T @ x / x.shape[0]


def inverse_hessian(h: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """The upper Cholesky factor of ``(H + damp * mean(diag H) * I)^-1``: the rows GPTQ's update reads.

    Damping keeps ``H`` invertible when some inputs are (nearly) linearly dependent.
    """
    h = h.clone()
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0])
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def _group_params(w: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return scale_and_zero(w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True), bits, symmetric)


def gptq_quantize(weight: torch.Tensor, h: torch.Tensor, bits: int = 4, *, group_size: int | None = 128,
                  symmetric: bool = False, damp: float = 0.01, name: str = "weight") -> QuantizedTensor:
    """GPTQ codes of a ``[out, in]`` weight with Hessian ``h [in, in]``; ``group_size=None`` is per channel.

    A group's ``(s, z)`` comes from the min and max of its columns as updated when the loop reaches it.
    """
    check_bits(bits, f"bits for {name}")
    w = check_finite(weight, name).detach().float().clone()
    rows, cols = w.shape
    g = cols if group_size is None else group_size
    if cols % g:
        raise ValueError(f"group_size={group_size} does not divide the {cols} input features of {name}")
    dead = torch.diag(h) == 0  # an input that is always 0: its weights never matter
    h = h.clone()
    h[dead, dead] = 1
    w[:, dead] = 0
    h_inv = inverse_hessian(h, damp)
    q = torch.zeros(rows, cols, dtype=torch.int8 if bits <= 8 else torch.int16)
    scales, zeros = [], []
    for i in range(cols):
        if i % g == 0:  # a new group: its grid from the columns as they are now
            s, z = _group_params(w[:, i:i + g], bits, symmetric)
            scales.append(s)
            zeros.append(z)
        q[:, i:i + 1] = quantize(w[:, i:i + 1], s, z, bits)
        err = (w[:, i:i + 1] - dequantize(q[:, i:i + 1], s, z)) / h_inv[i, i]
        w[:, i + 1:] -= err @ h_inv[i:i + 1, i + 1:]
    return QuantizedTensor(q.reshape(rows, cols // g, g), torch.stack(scales, 1), torch.stack(zeros, 1),
                           bits, symmetric, weight.shape)


def layer_error(weight: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Relative output error ``||X W^T - X W_hat^T||^2 / ||X W^T||^2`` of a layer on inputs ``x [tokens, in]``."""
    x = x.reshape(-1, x.shape[-1]).float()
    y = x @ weight.float().T
    return (torch.sum((y - x @ w_hat.float().T) ** 2) / torch.sum(y**2)).item()


@torch.no_grad()
def gptq_model(model: torch.nn.Module, batches, bits: int = 4, *, group_size: int | None = 128,
               symmetric: bool = False, damp: float = 0.01, skip=("lm_head",)) -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` with every linear layer's weight replaced by its GPTQ ``x_hat``, and
    ``{name: QuantizedTensor}`` (the codes and scales).

    Layers go in model order; each one's Hessian comes from its inputs in the copy as
    quantized so far. ``group_size=None`` is per channel.
    """
    batches = check_batches(batches, "GPTQ calibration")
    quantized = copy.deepcopy(model).eval()
    codes = {}
    for name, linear in linear_layers(quantized, skip).items():
        x = layer_inputs(quantized, batches, {name: linear})[name]
        qt = gptq_quantize(linear.weight, hessian(x, f"input of {name}"), bits, group_size=group_size,
                           symmetric=symmetric, damp=damp, name=f"weight of {name}")
        linear.weight.copy_(qt.dequantize().to(linear.weight.dtype))
        codes[name] = qt
    return quantized, codes
