"""Calibration (보정) of activation ranges on world text, and weight-only vs W8A8 quantization of linear layers.

A weight is known before inference, so its range is exact; an activation's range must be
estimated from sample text (calibration data) before it is fixed in a static scale:

- ``"minmax"``: the smallest and largest value seen; one outlier stretches the grid;
- ``"percentile"``: the ``percentile``-th and ``(100 - percentile)``-th percentiles, so
  the rare extremes clip;
- ``"mse"``: the range ``[a * min, b * max]`` whose fake-quantized values have the least
  mean squared error on the calibration values (a grid search over the clip ratios ``a``, ``b``).

``quantize_weights`` gives weight-only (W8A16-style) fake quantization; ``quantize_linears``
adds static per-tensor activation quantization with calibrated ranges (W8A8), or dynamic
per-token ranges. Fake quantization computes in float with de-quantized values, which is
exactly what the integers compute, so it measures accuracy; ``kernels`` measures speed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .. import zoo
from ..config import Config
from .quantization import check_bits, check_finite, fake_quantize, fake_quantize_range, quantization_error

RANGE_METHODS = ("minmax", "percentile", "mse")
SKIP = ("lm_head",)  # tied to the embedding table: kept in float, as GPTQ and LLM.int8 keep it


def linear_layers(model: torch.nn.Module, skip: Iterable[str] = SKIP) -> dict[str, torch.nn.Linear]:
    """The model's ``nn.Linear`` layers by name (``model.layers.0.mlp.up_proj``), leaving out the names in ``skip``."""
    skip = tuple(skip)
    return {name: m for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.rpartition(".")[2] not in skip and name not in skip}


def calibration_batches(cfg: Config | str | None = None, num_blocks: int = 32, batch_size: int = 8,
                        split: str = "train", start: int = 0) -> list[dict]:
    """``num_blocks`` packed blocks of world text (``pretrain-data``), as batches of ``{"input_ids", "position_ids"}``.

    ``split="train"`` is text the model has read (calibration data); ``"eval"`` is held out (for perplexity).
    """
    data = zoo.get("pretrain-data", cfg)[split]
    rows = [data[i] for i in range(start, min(start + num_blocks, len(data)))]
    return [{k: torch.stack([r[k] for r in rows[i:i + batch_size]]) for k in ("input_ids", "position_ids")}
            for i in range(0, len(rows), batch_size)]


def check_batches(batches, what: str = "calibration") -> list:
    """``batches`` as a list of at least one batch (a dict with ``input_ids``, or a token tensor)."""
    batches = list(batches) if batches is not None else []
    if not batches:
        raise ValueError(f"{what} needs at least one batch of text; got none")
    for i, b in enumerate(batches):
        ids = b["input_ids"] if isinstance(b, dict) else b
        if not torch.is_tensor(ids) or ids.numel() == 0:
            raise ValueError(f"{what} batch {i}: expected a non-empty tensor of token ids")
    return batches


class StopForward(Exception):
    """Raised by a hook once it has what it needs: the rest of the forward pass is not computed."""


@torch.no_grad()
def run_batches(model: torch.nn.Module, batches: list) -> None:
    """Forward every batch through ``model`` (outputs dropped: the hooks read what they need)."""
    model.eval()
    for b in batches:
        b = b if isinstance(b, dict) else {"input_ids": b}
        try:
            model(**{k: v.to(model.device) for k, v in b.items() if k in ("input_ids", "position_ids")},
                  use_cache=False)
        except StopForward:
            pass


@contextmanager
def captured_inputs(layers: dict[str, torch.nn.Module], stop: bool = False):
    """While open, every call of ``layers[name]`` appends its input, flattened to ``[tokens, in_features]``, to
    ``inputs[name]`` (the yielded dict). ``stop``: end the forward pass there (one layer's inputs cost only
    the layers below it)."""
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def hook(name, args):
        inputs[name].append(args[0].detach().reshape(-1, args[0].shape[-1]).float().cpu())
        if stop:
            raise StopForward

    hooks = [m.register_forward_pre_hook(lambda _m, args, n=name: hook(n, args)) for name, m in layers.items()]
    try:
        yield inputs
    finally:
        for h in hooks:
            h.remove()


def layer_inputs(model: torch.nn.Module, batches, layers: dict[str, torch.nn.Module] | None = None) -> dict:
    """The inputs ``[tokens, in_features]`` of each linear layer (default: ``linear_layers(model)``) on ``batches``.

    A single layer's forward passes stop at that layer.
    """
    batches = check_batches(batches)
    layers = linear_layers(model) if layers is None else layers
    with captured_inputs(layers, stop=len(layers) == 1) as inputs:
        run_batches(model, batches)
    return {name: torch.cat(xs) for name, xs in inputs.items()}


def _kth(x: torch.Tensor, q: float) -> float:
    k = min(max(int(round(q / 100 * x.numel())), 1), x.numel())
    return x.kthvalue(k).values.item()


def _least_squares_range(x: torch.Tensor, lo: float, hi: float, bits: int, symmetric: bool) -> tuple[float, float]:
    """Shrink the top end, then the bottom end, by the ratio (0.02, 0.04, ..., 1) with the least squared error.

    One end at a time: an outlier on one side must not pull in the other side's end.
    """
    def error(a, b):
        return torch.mean((x - fake_quantize_range(x, a, b, bits, symmetric=symmetric)) ** 2).item()

    ratios = torch.linspace(0.02, 1, 50).tolist()
    hi = min((r * hi for r in ratios), key=lambda b: error(lo, b))
    lo = min((r * lo for r in ratios), key=lambda a: error(a, hi))
    return lo, hi


def activation_range(x: torch.Tensor, method: str = "minmax", bits: int = 8, *, percentile: float = 99.99,
                     symmetric: bool = False, name: str = "activation", max_values: int = 1 << 16) -> tuple[float, float]:
    """The calibrated ``(lo, hi)`` of the values in ``x`` by ``method`` (see the module).

    ``"mse"`` searches the clip ratio of each end on at most ``max_values`` evenly spaced values.
    """
    if method not in RANGE_METHODS:
        raise ValueError(f"range method {method!r} for {name}: expected one of {', '.join(RANGE_METHODS)}")
    x = check_finite(x, name).reshape(-1).float()
    lo, hi = x.min().item(), x.max().item()
    if method == "percentile":
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile={percentile} for {name}: expected 50 < percentile <= 100")
        lo, hi = _kth(x, 100 - percentile), _kth(x, percentile)
    elif method == "mse":
        sample = x[:: max(1, x.numel() // max_values)]
        lo, hi = _least_squares_range(sample, lo, hi, bits, symmetric)
    return lo, hi


def calibrate(model: torch.nn.Module, batches, method: str = "minmax", bits: int = 8, *, percentile: float = 99.99,
              outliers: dict[str, torch.Tensor] | None = None) -> dict[str, tuple[float, float]]:
    """``{layer name: (lo, hi)}``: the calibrated range of each linear layer's input on ``batches``.

    ``outliers`` (``{name: feature dims}``) leaves those input features out of the range: they stay in float.
    """
    check_bits(bits, "activation bits")
    ranges = {}
    for name, x in layer_inputs(model, batches).items():
        if outliers and name in outliers and len(outliers[name]):
            x = x.clone()
            x[:, outliers[name]] = 0
        ranges[name] = activation_range(x, method, bits, percentile=percentile, name=f"input of {name}")
    return ranges


def clip_share(x: torch.Tensor, lo: float, hi: float) -> float:
    """The share of ``x``'s values outside the calibrated range ``[lo, hi]`` (they clip to its ends)."""
    x = x.float()
    return ((x < lo) | (x > hi)).float().mean().item()


def static_error(x: torch.Tensor, lo: float, hi: float, bits: int = 8) -> dict:
    """``quantization_error`` of ``x`` on the static grid of ``[lo, hi]`` (clipping included)."""
    return quantization_error(x, fake_quantize_range(x.float(), lo, hi, bits))

class QuantLinear(torch.nn.Module):
    """A linear layer computing with fake-quantized weights and (optionally) fake-quantized inputs.

    ``act``: ``None`` (weight-only), ``(lo, hi)`` (static per-tensor range from calibration) or
    ``"token"`` (dynamic: each token's own min and max). ``keep_float``: input feature dims that
    bypass quantization, with their weight columns (LLM.int8's mixed-precision decomposition).
    """

    def __init__(self, linear: torch.nn.Linear, weight: torch.Tensor, act=None, act_bits: int = 8,
                 keep_float: torch.Tensor | None = None):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.act, self.act_bits = act, act_bits
        mask = torch.zeros(linear.in_features, dtype=torch.bool)
        if keep_float is not None:
            mask[keep_float] = True
        self.register_buffer("keep_float", mask, persistent=False)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is None:
            return x
        rest = x.masked_fill(self.keep_float, 0)
        if self.act == "token":
            lo, hi = rest.amin(dim=-1, keepdim=True), rest.amax(dim=-1, keepdim=True)
        else:
            lo, hi = self.act
        return torch.where(self.keep_float, x, fake_quantize_range(rest, lo, hi, self.act_bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantize_input(x), self.weight, self.bias)


def quantize_weight(weight: torch.Tensor, bits: int = 8, *, granularity: str = "channel", group_size: int = 128,
                    symmetric: bool = True, keep_float: torch.Tensor | None = None, name: str = "weight") -> torch.Tensor:
    """Round-to-nearest ``x_hat`` of a ``[out, in]`` weight; ``keep_float`` input columns stay as they are."""
    if keep_float is None or not len(keep_float):
        return fake_quantize(weight, bits, symmetric=symmetric, granularity=granularity, group_size=group_size, name=name)
    rest = weight.clone()
    rest[:, keep_float] = 0  # float columns must not set the scale of the integer ones
    w_hat = fake_quantize(rest, bits, symmetric=symmetric, granularity=granularity, group_size=group_size, name=name)
    w_hat[:, keep_float] = weight[:, keep_float]
    return w_hat


def quantize_linears(model: torch.nn.Module, bits: int = 8, *, granularity: str = "channel", group_size: int = 128,
                     symmetric: bool = True, act: dict | str | None = None, act_bits: int = 8,
                     keep_float: dict[str, torch.Tensor] | None = None, weights: dict | None = None,
                     skip: Iterable[str] = SKIP) -> torch.nn.Module:
    """A copy of ``model`` whose linear layers are ``QuantLinear``: weights at ``bits`` (round to nearest, or
    the ``x_hat`` given in ``weights[name]``, e.g. from GPTQ), and inputs as ``act`` says.

    ``act``: ``None`` (weight-only), ``"token"`` (dynamic per token) or ``calibrate``'s ``{name: (lo, hi)}``
    (static per-tensor; a layer missing from it is an error). ``model`` itself is left unchanged.
    """
    check_bits(bits, "weight bits")
    check_bits(act_bits, "activation bits")
    quantized = copy.deepcopy(model)
    keep_float = keep_float or {}
    for name, linear in linear_layers(quantized, skip).items():
        if isinstance(act, dict) and name not in act:
            raise KeyError(f"no calibrated activation range for layer {name}; calibrate the same model")
        w_hat = (weights or {}).get(name)
        if w_hat is None:
            w_hat = quantize_weight(linear.weight, bits, granularity=granularity, group_size=group_size,
                                    symmetric=symmetric, keep_float=keep_float.get(name), name=f"weight of {name}")
        layer_act = act[name] if isinstance(act, dict) else act
        parent_name, _, child = name.rpartition(".")
        setattr(quantized.get_submodule(parent_name) if parent_name else quantized, child,
                QuantLinear(linear, w_hat, layer_act, act_bits, keep_float.get(name)))
    return quantized


def quantize_weights(model: torch.nn.Module, bits: int = 8, **kwargs) -> torch.nn.Module:
    """Weight-only fake quantization: ``quantize_linears(model, bits, act=None, ...)``."""
    return quantize_linears(model, bits, act=None, **kwargs)

