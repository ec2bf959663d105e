"""Measured seconds and bytes: what quantization saves on a real CPU, not what a count of bits promises.

- ``random_decoder``: a profile's decoder architecture with *random* weights (timing and bytes
  do not depend on what the weights learned), e.g. the ``gpu`` profile's ~110M parameters;
- ``time_linears``: the seven linear layers of one decoder block alone, on a few tokens;
- ``time_generation``: seconds per generated token of greedy decoding with the key/value cache;
- ``weight_bytes``: bytes on disk of a model saved as fp32, bf16, int8 or packed int4, and the
  resident memory each file takes when a fresh process loads it (the tensors plus the loader's own
  ~2 MB, which dominate for a file of a few megabytes: compare formats within one model).

Every timing is the fastest of a few calls after a warm-up, and the median of ``rounds`` rounds
that take the models in turn (fp32, int8, fp32, int8, ...), so a burst of load from another
process hits each model alike. Ratios are only meaningful within one run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..config import Config, load_config
from ..models import build_decoder
from .kernels import FORMATS, save_quantized

RSS = """
import resource, sys, torch
from safetensors.torch import load_file
def rss(): return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
torch.zeros(4096, dtype=torch.uint8).max()  # the first tensor operation's one-time allocations, before measuring
before = rss()
state = load_file(sys.argv[1])
checksum = sum(t.view(torch.uint8).max().item() for t in state.values())  # read every page (max makes no copy)
print(rss() - before)
"""


def random_decoder(profile: str | Config = "gpu", seed: int = 0) -> torch.nn.Module:
    """The decoder of ``profile``'s config (layers, width, vocabulary) with random weights, in eval mode.

    It never stops early (no end-of-text token), so every timed generation has the same length.
    """
    cfg = profile if isinstance(profile, Config) else load_config(profile)
    torch.manual_seed(seed)
    model = build_decoder(cfg.model, cfg.pretrain.vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    model.generation_config.eos_token_id = None
    return model.eval()


def best_seconds(fn, repeats: int) -> float:
    """Wall-clock seconds of one ``fn()`` call: the fastest of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def block_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The seven linear layers of the first decoder block: q, k, v, o, gate, up, down."""
    layer = model.model.layers[0]
    a, m = layer.self_attn, layer.mlp
    return [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]


@torch.no_grad()
def time_linears(models: dict[str, torch.nn.Module], tokens: int, rounds: int = 5, calls: int = 20) -> dict[str, float]:
    """Median seconds of one pass through the seven linear layers of block 0 on ``tokens`` random rows, per model."""
    first = next(iter(models.values())).config
    x = {d: torch.randn(tokens, d) for d in (first.hidden_size, first.intermediate_size)}
    layers = {name: block_linears(m) for name, m in models.items()}
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, linears in layers.items():
            times[name].append(best_seconds(lambda: [lin(x[lin.in_features]) for lin in linears], calls))
    return {name: statistics.median(t) for name, t in times.items()}


@torch.no_grad()
def time_generation(models: dict[str, torch.nn.Module], batch: int, new_tokens: int = 16, rounds: int = 5,
                    prompt_tokens: int = 8) -> dict[str, float]:
    """Median seconds per generated token (a batch's step counts once) of greedy generation with the cache.

    Each call generates ``new_tokens`` after a random ``prompt_tokens``-token prompt; the prompt's
    forward pass (prefill) is included.
    """
    prompt = torch.randint(2, 1000, (batch, prompt_tokens), generator=torch.Generator().manual_seed(0))
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            run = lambda: model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                         do_sample=False, use_cache=True)
            times[name].append(best_seconds(run, 1) / new_tokens)
    return {name: statistics.median(t) for name, t in times.items()}


def resident_bytes(path: str | Path) -> int:
    """Growth of a fresh process's resident memory when it loads ``path`` with safetensors and reads every tensor."""
    out = subprocess.run([sys.executable, "-c", RSS, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def weight_bytes(model: torch.nn.Module, group_size: int = 128, formats=FORMATS) -> dict[str, dict[str, int]]:
    """``{format: {"disk": bytes, "resident": bytes}}`` of ``model`` saved by ``save_quantized`` in each format.

    One file at a time is on disk (a temporary folder); int4 is per group of ``group_size``.
    """
    sizes = {}
    with tempfile.TemporaryDirectory() as folder:
        for fmt in formats:
            path = Path(folder) / f"{fmt}.safetensors"
            sizes[fmt] = {"disk": save_quantized(model, path, fmt, group_size=group_size),
                          "resident": resident_bytes(path)}
            path.unlink()
    return sizes
