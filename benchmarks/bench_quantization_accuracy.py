"""Held-out perplexity of a course model quantized every way chapter 08 teaches, each against fp32 in one run.

The model is a zoo artifact (``base`` or ``instruct``) of the profile; calibration is
``--calibration`` packed blocks of its training text, perplexity is on the held-out blocks
(``pretrain-data``'s ``eval``). Settings are ``course_lib.compression.study.SETTINGS``: int8
per channel; 4 and 3 bits per group of ``--group-size`` and per channel, by round to nearest
and by GPTQ; W8A8 with each calibration, and with LLM.int8's outlier features in float.

    python benchmarks/bench_quantization_accuracy.py --profile laptop --model base
"""

import argparse
import dataclasses

import torch

from course_lib import zoo
from course_lib.compression import calibration_batches
from course_lib.compression.study import SETTINGS, perplexity_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--model", default="base", help="zoo artifact: base or instruct")
    parser.add_argument("--calibration", type=int, default=32, help="calibration blocks of training text")
    parser.add_argument("--group-size", type=int, default=32, help="group size of the per-group settings")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = zoo.get(args.model, args.profile).model.eval()
    held_out = zoo.get("pretrain-data", args.profile)["eval"]
    calibration = calibration_batches(args.profile, args.calibration)
    settings = [dataclasses.replace(s, group_size=args.group_size) if s.group_size else s for s in SETTINGS]
    print(f"{args.model} ({args.profile}): {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"{len(held_out)} held-out blocks, {args.calibration} calibration blocks, {args.threads} threads")
    print(f"{'setting':<36}{'perplexity':>11}{'vs fp32':>9}{'quantize s':>12}")
    for row in perplexity_grid(model, held_out, calibration, settings):
        print(f"{row['setting']:<36}{row['perplexity']:>11.4f}{row['vs_fp32']:>9.4f}{row['seconds']:>12.1f}")


if __name__ == "__main__":
    main()
