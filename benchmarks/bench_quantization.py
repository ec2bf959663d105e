"""Quantization's real saving: int8 against fp32 in seconds and bytes, on a profile's architecture with random weights.

The model is the profile's decoder (default ``gpu``: 12 layers, d_model 768, vocabulary
32768, ~110M parameters) built from its config with *random* weights: timing and bytes do
not depend on what the weights learned. Four ways to run its linear layers:

- ``fp32``: ``nn.Linear``;
- ``int8 torch``: ``quantize_dynamic``'s fbgemm/x86 kernels (per-channel int8 weights,
  dynamic int8 activations); ``lm_head``, tied to the embedding, stays fp32 as in the
  accuracy study;
- ``+lm_head``: the same with ``lm_head`` in int8 too (a quarter of the weights a token reads);
- ``int8 course``: ``Int8Linear`` (per-token int8 activations, ``torch._int_mm``), ``lm_head`` fp32.

It prints, each a median over interleaved repeats (fp32, torch, course, fp32, ...):
the seven linear layers of one decoder block alone, on 1 and 16 tokens; latency per
generated token (greedy, key/value cache, ``--new-tokens`` after an 8-token prompt,
prefill included) at batch 1 and 16; then the bytes on disk of fp32, bf16, int8
(per-channel, fp16 scales) and packed int4 (per group of ``--group-size``, fp16 scale and
zero point) weights, embedding included, and the resident memory each file takes when
loaded in a fresh process. Ratios are against fp32 in the same run.

    python benchmarks/bench_quantization.py --threads 2

With two threads, one core taken by another process stalls every parallel region of a
token's ~100 small operations: batch-1 decoding then slows several fold and its ratios
say more about the machine's load than about the kernels. Check the load, and compare
with ``--threads 1``.
"""

import argparse

import torch

from course_lib.compression import course_int8, torch_int8
from course_lib.compression.speed import random_decoder, time_generation, time_linears, weight_bytes

PATHS = ("fp32", "int8 torch", "+lm_head", "int8 course")


def print_times(title: str, rows: dict[str, dict[str, float]], unit: str) -> None:
    print(f"\n{title}")
    print(f"{'':<12}" + "".join(f"{p:>14}{'x fp32':>8}" for p in PATHS))
    for label, t in rows.items():
        print(f"{label:<12}" + "".join(f"{t[p] * 1e3:>11.2f} {unit}{t['fp32'] / t[p]:>8.2f}" for p in PATHS))


def print_bytes(model: torch.nn.Module, group_size: int) -> None:
    print(f"\nweights (embedding included; int4 per group of {group_size})")
    print(f"{'format':<8}{'disk MB':>10}{'x fp32':>8}{'resident MB':>13}{'x fp32':>8}")
    sizes = weight_bytes(model, group_size)
    for fmt, size in sizes.items():
        disk, rss = size["disk"], size["resident"]
        print(f"{fmt:<8}{disk / 1e6:>10.1f}{disk / sizes['fp32']['disk']:>8.3f}{rss / 1e6:>13.1f}"
              f"{rss / sizes['fp32']['resident']:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu", help="whose model architecture to build (random weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of each measurement")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per timed call")
    parser.add_argument("--group-size", type=int, default=128, help="int4 group size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fp32 = random_decoder(args.profile)
    models = {"fp32": fp32, "int8 torch": torch_int8(fp32), "+lm_head": torch_int8(fp32, skip=()),
              "int8 course": course_int8(fp32)}
    params = sum(p.numel() for p in fp32.parameters())
    print(f"profile {args.profile}: {params / 1e6:.1f}M parameters (random weights), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    print_times("seven linear layers of one block (ms per call)",
                {f"{n} token{'s' if n > 1 else ''}": time_linears(models, n, args.rounds, 20) for n in (1, 16)}, "ms")
    print_times(f"generation (ms per new token, {args.new_tokens} tokens after an 8-token prompt)",
                {f"batch {b}": time_generation(models, b, args.new_tokens, args.rounds) for b in (1, 16)}, "ms")
    print_bytes(fp32, args.group_size)


if __name__ == "__main__":
    main()
