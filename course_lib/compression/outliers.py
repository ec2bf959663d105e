"""Outlier features (이상치 특성): LLM.int8's magnitude threshold, the damage they do to per-tensor activation
quantization, and the mixed-precision decomposition (혼합 정밀도 분해) that keeps them in floating point.

LLM.int8 (Dettmers et al., 2022) calls a hidden feature (a column of a linear layer's input
``X [tokens, features]``) an outlier when some token's value there reaches magnitude 6.0.
One such feature sets the scale of a per-tensor grid, so every ordinary value gets only a
few of the 255 codes. The decomposition splits the product along those features:

    X W^T = X[:, O] W[:, O]^T  (float)  +  X[:, R] W[:, R]^T  (int8, R = the other features)
"""

from __future__ import annotations

import torch

from .calibration import calibrate, layer_inputs, quantize_linears
from .quantization import check_finite, fake_quantize, quantization_error

THRESHOLD = 6.0  # LLM.int8's magnitude criterion


def outlier_dims(x: torch.Tensor, threshold: float = THRESHOLD, name: str = "activation") -> torch.Tensor:
    """The feature dims (last axis of ``x``, any leading shape) where some value has ``|x| >= threshold``."""
    x = check_finite(x, name)
    return torch.nonzero(x.reshape(-1, x.shape[-1]).abs().amax(dim=0) >= threshold).flatten()


def outlier_features(model: torch.nn.Module, batches, threshold: float = THRESHOLD) -> dict[str, torch.Tensor]:
    """``{linear layer name: its input's outlier feature dims}`` on the calibration ``batches``."""
    return {name: outlier_dims(x, threshold, f"input of {name}") for name, x in layer_inputs(model, batches).items()}


def outlier_table(model: torch.nn.Module, batches, threshold: float = THRESHOLD) -> list[dict]:
    """One row per linear layer: its input features, how many are outliers, the share of tokens that carry one,
    the largest magnitude and the median of the features' largest magnitudes (what an ordinary feature reaches)."""
    rows = []
    for name, x in layer_inputs(model, batches).items():
        peaks = x.abs().amax(dim=0)
        dims = torch.nonzero(peaks >= threshold).flatten()
        rows.append({"layer": name, "features": x.shape[1], "outliers": len(dims),
                     "token_share": (x[:, dims].abs() >= threshold).any(dim=1).float().mean().item() if len(dims) else 0.0,
                     "max_abs": peaks.max().item(), "median_peak": peaks.median().item()})
    return rows


def outlier_damage(x: torch.Tensor, dims: torch.Tensor, bits: int = 8) -> dict:
    """What a per-tensor grid does to the ordinary features of ``x [tokens, features]`` when the outlier
    ``dims`` share it (``"per_tensor"``) and when they are kept in float (``"decomposed"``).

    Each entry is ``quantization_error`` of the ordinary features only (SQNR in dB: higher is better).
    """
    x = check_finite(x, "activation").reshape(-1, x.shape[-1]).float()
    regular = torch.ones(x.shape[1], dtype=torch.bool)
    regular[dims] = False
    shared = fake_quantize(x, bits, symmetric=False, granularity="tensor")
    rest = x[:, regular]
    alone = fake_quantize(rest, bits, symmetric=False, granularity="tensor")
    return {"per_tensor": quantization_error(rest, shared[:, regular]), "decomposed": quantization_error(rest, alone)}


def int8_matmul_decomposed(x: torch.Tensor, weight: torch.Tensor, dims: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """LLM.int8's ``x @ weight^T``: vector-wise quantization (each token's row of ``x``, each output row of
    ``weight``, symmetric absmax) on the ordinary features, float on the outlier ``dims``.

    ``x``: ``[tokens, in]``; ``weight``: ``[out, in]``; returns ``[tokens, out]`` float32.
    """
    x, weight = x.float(), weight.float()
    regular = torch.ones(x.shape[-1], dtype=torch.bool)
    regular[dims] = False
    x_r = fake_quantize(x[:, regular], bits, symmetric=True, granularity="channel", name="input")
    w_r = fake_quantize(weight[:, regular], bits, symmetric=True, granularity="channel", name="weight")
    return x_r @ w_r.T + x[:, ~regular] @ weight[:, ~regular].T


def w8a8(model: torch.nn.Module, batches, *, method: str = "minmax", threshold: float | None = None,
         bits: int = 8) -> torch.nn.Module:
    """A W8A8 copy of ``model``: per-channel int8 weights, static per-tensor int8 inputs calibrated on ``batches``
    by ``method``; with a ``threshold``, each layer's outlier input features stay in float (decomposition)."""
    keep = outlier_features(model, batches, threshold) if threshold is not None else None
    ranges = calibrate(model, batches, method, bits, outliers=keep)
    return quantize_linears(model, bits, granularity="channel", act=ranges, act_bits=bits, keep_float=keep)

