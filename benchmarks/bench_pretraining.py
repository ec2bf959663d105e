"""Pretraining throughput: the course (``transformers`` Llama + ``course_lib.training.train``) against a
minimal plain-PyTorch GPT of the same size, trained by the shortest honest loop.

Both models have the same shape (RMSNorm, rotary positions, SwiGLU, tied embeddings, no
biases, the same attention dropout; the parameter counts are printed and must match), see the same packed blocks of the
profile's pretraining corpus in the same order (each document attending only to itself), and use AdamW with the same
warmup + cosine schedule and clipping. Runs are interleaved (plain, course, plain, course, ...) so that
drifting machine load hits both alike; the table shows median tokens per second and the
ratio to plain PyTorch. ``course (loop)`` times the optimizer steps only (``elapsed_s`` of
the last step), ``course (call)`` the whole ``train`` call (Accelerator set-up, final save).

    python benchmarks/bench_pretraining.py --profile laptop --steps 30 --repeats 3
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import zoo
from course_lib.config import load_config
from course_lib.models import (apply_rotary, count_parameters, document_mask, llama_ff_width, new_decoder,
                               rotary_cos_sin)
from course_lib.training import set_seed

from bench_training_loop import course_loop, optimizer_and_schedule, print_rates  # this folder: run as a script


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d: int, n_head: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.attn_norm, self.mlp_norm = nn.RMSNorm(d, eps=1e-6), nn.RMSNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.gate_up = nn.Linear(d, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # (B, H, T, D); dropout on the attention weights, as Llama's attention_dropout
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class GPT(nn.Module):
    """A decoder-only language model in one screen; ``forward(ids, positions)`` returns the mean next-token loss.

    ``positions`` restart with every packed document (``PackedBlocks``' ``position_ids``),
    and a token attends only to earlier tokens of its own document, as in the course's model.
    """

    def __init__(self, vocab: int, d: int, n_layer: int, n_head: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, n_head, d_ff, dropout) for _ in range(n_layer))
        self.norm = nn.RMSNorm(d, eps=1e-6)
        self.head_dim = d // n_head
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, positions):
        cos, sin = rotary_cos_sin(ids.shape[1], self.head_dim)
        cos, sin = cos[positions][:, None], sin[positions][:, None]  # (B, 1, T, D): each document's own positions
        mask = document_mask(positions)[:, None]  # (B, 1, T, T): causal, and only within a document
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        logits = self.norm(x) @ self.embed.weight.T  # tied input and output embeddings
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def plain_loop(model, blocks, cfg) -> float:
    """Seconds for ``cfg.max_steps`` steps: batches in a fixed shuffled order, AdamW, schedule, clipping."""
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0)).tolist()
    optimizer, scheduler = optimizer_and_schedule(model, cfg)
    model.train()
    start = time.perf_counter()
    for step in range(cfg.max_steps):
        idx = [order[(step * cfg.batch_size + i) % len(order)] for i in range(cfg.batch_size)]
        ids = torch.stack([blocks[i]["input_ids"] for i in idx])
        loss = model(ids, torch.stack([blocks[i]["position_ids"] for i in idx]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the course loop reads the loss every step too
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop", help="sizes, batch and corpus come from this profile")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each loop")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.profile)
    m = cfg.model
    tokenizer = zoo.get("tokenizer", cfg)
    blocks = zoo.get("pretrain-data", cfg)["train"]
    train_cfg = cfg.pretrain.train
    train_cfg.max_steps, train_cfg.eval_every, train_cfg.log_every, train_cfg.progress = args.steps, 0, args.steps, False
    train_cfg.grad_accum_steps = 1

    def plain_model():
        set_seed(0)
        return GPT(len(tokenizer), m.d_model, m.n_layer, m.n_head, m.d_ff or llama_ff_width(m.d_model), m.dropout)

    sizes = (count_parameters(new_decoder(cfg, tokenizer)), count_parameters(plain_model()))
    if sizes[0] != sizes[1]:
        raise SystemExit(f"the two models differ in size: {sizes}")
    tokens = args.steps * train_cfg.batch_size * cfg.pretrain.block_size
    times = {"plain PyTorch": [], "course (loop)": [], "course (call)": []}
    for _ in range(args.repeats):
        times["plain PyTorch"].append(plain_loop(plain_model(), blocks, train_cfg))
        loop, call = course_loop(new_decoder(cfg, tokenizer), blocks, train_cfg)
        times["course (loop)"].append(loop)
        times["course (call)"].append(call)

    print(f"profile {args.profile}: {sizes[0] / 1e6:.2f}M parameters, {args.steps} steps x {train_cfg.batch_size} x "
          f"{cfg.pretrain.block_size} tokens, {args.repeats} interleaved repeats, torch threads {torch.get_num_threads()}")
    print_rates(times, tokens)


if __name__ == "__main__":
    main()
