"""Training throughput of ``course_lib.training.train`` against a minimal plain-PyTorch loop.

Both train the same tiny Llama on the same random tokens for the same steps, with
AdamW, the same warmup + cosine schedule and gradient clipping. The runs are
interleaved (plain, course, plain, course, ...) so that drifting machine load hits
both alike; the table shows the median tokens per second and the ratio to plain.

``course (loop)`` times the optimizer steps only (``elapsed_s`` of the last logged
step); ``course (call)`` times the whole ``train`` call, including building the
Accelerator and writing the final checkpoint and model.

    python benchmarks/bench_training_loop.py --steps 50 --d-model 64
"""

import argparse
import statistics
import tempfile
import time

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, RandomSampler
from transformers import LlamaConfig, LlamaForCausalLM, default_data_collator

from course_lib.config import TrainConfig
from course_lib.runs import read_metrics
from course_lib.training import lr_schedule, set_seed, train

VOCAB = 256


def make_model(d_model: int, layers: int, seq_len: int) -> LlamaForCausalLM:
    set_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=d_model,
        intermediate_size=4 * d_model,
        num_hidden_layers=layers,
        num_attention_heads=max(1, d_model // 32),
        max_position_embeddings=seq_len,
    )
    return LlamaForCausalLM(config)


def make_data(num_examples: int, seq_len: int) -> list[dict]:
    tokens = torch.randint(0, VOCAB, (num_examples, seq_len), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": t, "labels": t.clone()} for t in tokens]


def optimizer_and_schedule(model, cfg: TrainConfig) -> tuple[torch.optim.AdamW, LambdaLR]:
    """The course loop's optimizer, written plainly: AdamW (no decay on norms and biases), warmup + cosine."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
    )
    scheduler = LambdaLR(
        optimizer,
        lambda s: lr_schedule(
            s, lr=1.0, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio
        ),
    )
    return optimizer, scheduler


def print_rates(times: dict[str, list[float]], tokens: int) -> None:
    """Median tokens per second of each loop and its ratio to the first (plain PyTorch)."""
    base = tokens / statistics.median(next(iter(times.values())))
    print(f"{'loop':<16}{'tokens/s':>12}{'vs plain':>10}")
    for name, seconds in times.items():
        rate = tokens / statistics.median(seconds)
        print(f"{name:<16}{rate:>12,.0f}{rate / base:>10.2f}")


def plain_loop(model, data, cfg: TrainConfig) -> float:
    """Seconds for ``cfg.max_steps`` steps of the shortest honest PyTorch loop."""
    loader = DataLoader(
        data,
        batch_size=cfg.batch_size,
        sampler=RandomSampler(data, generator=torch.Generator().manual_seed(0)),
        collate_fn=default_data_collator,
        drop_last=True,
    )
    optimizer, scheduler = optimizer_and_schedule(model, cfg)
    model.train()
    start = time.perf_counter()
    batches = iter(loader)
    for _ in range(cfg.max_steps):
        loss = model(**next(batches)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the course loop reads the loss every step too
    return time.perf_counter() - start


def course_loop(model, data, cfg: TrainConfig) -> tuple[float, float]:
    """(seconds of the optimizer steps, seconds of the whole ``train`` call)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(model, data, cfg, output_dir=out, resume=False)
        call = time.perf_counter() - start
        loop = read_metrics(out)[-1]["elapsed_s"]
    return loop, call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per run")
    parser.add_argument("--d-model", type=int, default=64, help="hidden size of the Llama")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs of each loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 1 keeps timings steady on a busy CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        warmup_steps=max(1, args.steps // 10),
        eval_every=0,
        log_every=args.steps,
        progress=False,
    )
    data = make_data(args.steps * args.batch_size, args.seq_len)
    tokens = args.steps * args.batch_size * args.seq_len
    times = {"plain PyTorch": [], "course (loop)": [], "course (call)": []}
    for _ in range(args.repeats):
        times["plain PyTorch"].append(plain_loop(make_model(args.d_model, args.layers, args.seq_len), data, cfg))
        loop, call = course_loop(make_model(args.d_model, args.layers, args.seq_len), data, cfg)
        times["course (loop)"].append(loop)
        times["course (call)"].append(call)

    params = sum(p.numel() for p in make_model(args.d_model, args.layers, args.seq_len).parameters())
    print(f"{params / 1e6:.2f}M parameters, {args.steps} steps x {args.batch_size} x {args.seq_len} tokens, "
          f"{args.repeats} interleaved repeats, torch threads {torch.get_num_threads()}")
    print_rates(times, tokens)


if __name__ == "__main__":
    main()
