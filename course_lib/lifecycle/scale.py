"""What the lifecycle's training stages cost at a profile's size, derived from its config (nothing is run).

    scale_table("gpu")          one row per training stage: parameters, tokens per step, steps, tokens,
                                training FLOPs, memory per GPU and hours on ASSUMED_GPU

The arithmetic, stated so it can be checked:

- parameters: the profile's decoder built on PyTorch's ``meta`` device (shapes, no memory);
- tokens per optimizer step: ``batch_size x grad_accum_steps x processes x sequence length``
  (a padded SFT or DPO row counts as the full length: an upper bound);
- training FLOPs: ``6 N T`` (forward 2, backward 4 per parameter and token; Kaplan et al. 2020);
  DPO adds the frozen reference's forward (``2 N T``) and reads a chosen and a rejected
  response per row (twice the tokens);
- memory per GPU: mixed-precision AdamW keeps 16 bytes per parameter (bf16 weights and
  gradients, fp32 master weights and two moments; ZeRO, Rajbhandari et al. 2020), DDP a full
  copy per GPU, FSDP ``1 / processes`` of it; activations of one micro-batch without
  recomputation ``s b h L (34 + 5 a s / h)`` bytes (Korthikanti et al. 2022); DPO's frozen
  reference adds 2 bytes per parameter;
- the largest micro-batch that fits ``ASSUMED_GPU``'s memory (raise ``grad_accum_steps`` by the same factor to
  keep the batch: the tokens, FLOPs and hours stay);
- hours: FLOPs over ``processes x peak x MFU`` with the GPU's dense bf16 peak and a model
  FLOPs utilisation of ``ASSUMED_MFU``, a typical figure for models of this size.
"""

from __future__ import annotations

import math

import torch

from ..config import Config, load_config

ASSUMED_GPU = {"name": "NVIDIA H100 SXM", "bf16_flops": 989e12, "memory_bytes": 80e9}
ASSUMED_MFU = 0.4
ADAM_BYTES_PER_PARAMETER = 16


def parameters(cfg: Config) -> int:
    """The profile's decoder's parameter count (tied embeddings once), built on the meta device."""
    from ..models import build_decoder

    with torch.device("meta"):
        model = build_decoder(cfg.model, vocab_size=cfg.pretrain.vocab_size)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def activation_bytes(cfg: Config, micro_batch: int, seq: int) -> float:
    """Korthikanti et al.'s activation memory of one micro-batch, no recomputation, 16-bit activations."""
    h, a, layers = cfg.model.d_model, cfg.model.n_head, cfg.model.n_layer
    return seq * micro_batch * h * layers * (34 + 5 * a * seq / h)


def stage_cost(cfg: Config, name: str, train, seq: int, *, processes: int, n_params: int, fsdp: bool = False,
               dpo: bool = False) -> dict:
    """One training stage's cost (see the module's docstring for every formula)."""
    tokens_per_step = train.batch_size * train.grad_accum_steps * processes * seq * (2 if dpo else 1)
    tokens = tokens_per_step * train.max_steps
    flops = (8 if dpo else 6) * n_params * tokens
    state = ADAM_BYTES_PER_PARAMETER * n_params / (processes if fsdp else 1) + (2 * n_params if dpo else 0)
    memory = state + activation_bytes(cfg, train.batch_size * (2 if dpo else 1), seq)
    hours = flops / (processes * ASSUMED_GPU["bf16_flops"] * ASSUMED_MFU) / 3600
    fitting = [b for b in range(train.batch_size, 0, -1)
               if state + activation_bytes(cfg, b * (2 if dpo else 1), seq) < ASSUMED_GPU["memory_bytes"]]
    return {"stage": name, "parameters": n_params, "processes": processes, "steps": train.max_steps,
            "tokens_per_step": tokens_per_step, "tokens": tokens, "flops": flops, "memory_gib_per_gpu": memory / 2**30,
            "micro_batch": train.batch_size, "largest_micro_batch_that_fits": fitting[0] if fitting else 0,
            "hours": hours, "gpu_hours": hours * processes}


def scale_table(profile: str | Config, processes: int = 1, fsdp: bool = False) -> list[dict]:
    """The training stages of the lifecycle at ``profile``'s size on ``processes`` GPUs (DDP, or FSDP)."""
    cfg = profile if isinstance(profile, Config) else load_config(profile)
    n = parameters(cfg)
    seq = cfg.model.max_seq_len
    rows = [stage_cost(cfg, "base (pretraining)", cfg.pretrain.train, cfg.pretrain.block_size, processes=processes,
                       n_params=n, fsdp=fsdp),
            stage_cost(cfg, "instruct (SFT)", cfg.instruct.train, seq, processes=processes, n_params=n, fsdp=fsdp),
            stage_cost(cfg, "aligned (DPO)", cfg.alignment.dpo, seq, processes=processes, n_params=n, fsdp=fsdp,
                       dpo=True),
            stage_cost(cfg, "aligned-student (sequence KD)", _sequence_train(cfg), seq, processes=processes,
                       n_params=math.ceil(n / 2), fsdp=fsdp)]
    return rows


def _sequence_train(cfg: Config):
    from ..compression.experiments import sequence_train_config

    return sequence_train_config(cfg)


def markdown_table(rows: list[dict]) -> str:
    """``scale_table``'s rows as the README's Markdown table (the test checks the README against it)."""
    def small(x: float, digits: str) -> str:
        return "< 0.01" if x < 0.005 else format(x, digits)

    several = rows[0]["processes"] > 1
    lines = ["| stage | parameters | steps | tokens per step | tokens | FLOPs | memory per GPU (micro-batch) | largest "
             f"micro-batch in {ASSUMED_GPU['memory_bytes'] / 1e9:.0f} GB | hours{' (GPU-hours)' if several else ''} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hours = small(r["hours"], ".2f") + (f" ({r['gpu_hours']:.2f})" if several else "")
        lines.append(f"| {r['stage']} | {r['parameters'] / 1e6:.0f}M | {r['steps']:,} | {r['tokens_per_step']:,} | "
                     f"{r['tokens'] / 1e9:.3g}B | {r['flops']:.2e} | {r['memory_gib_per_gpu']:.0f} GiB "
                     f"({r['micro_batch']}) | {r['largest_micro_batch_that_fits']} | {hours} |")
    return "\n".join(lines)
