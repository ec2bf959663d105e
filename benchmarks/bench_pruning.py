"""Pruning's real saving: bytes on disk, resident memory and time per token, dense against pruned, in one run.

The model is a profile's decoder (default ``laptop``: 4 layers, d_model 128, vocabulary
4096) built from its config with *random* weights: bytes and time do not depend on what
the weights learned. At each ``--sparsity`` s it compares:

- ``dense``: the model as built;
- ``masked``: s of every block's linear weights zeroed by magnitude (layer-wise), still
  dense matrices run by the dense kernel (what unstructured pruning gives without a sparse
  format): stored dense it saves nothing, stored as CSR (``save_sparse``) it is ``csr``;
- ``csr kernel``: the same pruned weights as ``torch.sparse_csr`` matrices, each linear layer
  a sparse-dense product (``torch.sparse.mm``): torch's sparse kernel on this CPU;
- ``structured``: s of every layer's FFN neurons and of its heads (all but one at most)
  removed (magnitude score), a smaller Llama run by the dense kernel;
- ``layers``: s of the whole layers removed (rounded, all but one at most; magnitude score),
  a shallower Llama: fewer matrices per token, not only smaller ones.

Time per token: greedy generation at batch 1, ``--new-tokens`` after an 8-token prompt,
key/value cache, the median over interleaved rounds (dense, masked, csr, structured, ...).
Resident memory: growth of a fresh process's RSS when it loads the weights file and reads
every tensor. Ratios are against dense in the same run.

    python benchmarks/bench_pruning.py --threads 1 --sparsity 0.5 0.9
"""

import argparse
import copy
import tempfile
import warnings
from pathlib import Path

import torch

from course_lib.compression import (dense_bytes, magnitude_prune, nonzero_parameters, random_decoder, resident_bytes,
                                    save_sparse, structured_prune, time_generation)
from course_lib.compression.pruning import SPARSE_FILE
from course_lib.models import count_parameters


class CSRLinear(torch.nn.Module):
    """``y = x W^T + b`` with ``W`` a ``torch.sparse_csr`` matrix: ``(W @ x^T)^T`` by torch's sparse kernel."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias, self.out_features = linear.bias, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sparse.mm(self.weight, x.reshape(-1, x.shape[-1]).T).T.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def with_csr_kernels(model: torch.nn.Module, masks: dict) -> torch.nn.Module:
    sparse = copy.deepcopy(model)
    for name in masks:
        parent, _, child = name.rpartition(".")
        setattr(sparse.get_submodule(parent), child, CSRLinear(sparse.get_submodule(name)))
    return sparse


def disk_and_resident(models: dict, masks: dict, folder: Path) -> dict[str, tuple[int, int]]:
    """``{variant: (bytes on disk, resident bytes once loaded)}``: dense files, and the pruned weights as CSR."""
    out = {}
    for name in ("dense", "structured", "layers"):
        models[name].save_pretrained(folder / name)
        path = folder / name / "model.safetensors"
        out[name] = (path.stat().st_size, resident_bytes(path))
    out["masked"] = (dense_bytes(models["masked"]), out["dense"][1])  # the same dense file: zeros cost as much
    save_sparse(models["masked"], folder / "csr", masks)
    out["csr kernel"] = ((folder / "csr" / SPARSE_FILE).stat().st_size, resident_bytes(folder / "csr" / SPARSE_FILE))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop", help="whose model architecture to build (random weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the timing")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per timed call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dense = random_decoder(args.profile)
    print(f"profile {args.profile}: {count_parameters(dense) / 1e6:.2f}M parameters (random weights), torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), batch 1, {args.new_tokens} new tokens, "
          f"median of {args.rounds} interleaved rounds")
    for s in args.sparsity:
        masked, masks = magnitude_prune(dense, s)
        heads = dense.config.num_attention_heads
        structured, _ = structured_prune(dense, head_share=min(s, 1 - 1 / heads), neuron_share=s, score="magnitude")
        n_layers = dense.config.num_hidden_layers
        fewer_layers, _ = structured_prune(dense, layers=min(n_layers - 1, round(s * n_layers)), score="magnitude")
        models = {"dense": dense, "masked": masked, "csr kernel": with_csr_kernels(masked, masks),
                  "structured": structured, "layers": fewer_layers}
        times = time_generation(models, 1, args.new_tokens, args.rounds)
        with tempfile.TemporaryDirectory() as folder:
            sizes = disk_and_resident(models, masks, Path(folder))
        params = {"dense": count_parameters(dense), "masked": nonzero_parameters(masked),
                  "csr kernel": nonzero_parameters(masked), "structured": count_parameters(structured),
                  "layers": count_parameters(fewer_layers)}
        print(f"\nsparsity {s:.0%} of the blocks' linear weights (embedding and tied output layer dense)")
        print(f"{'variant':<12}{'params M':>10}{'disk MB':>9}{'x dense':>8}{'resident MB':>13}{'x dense':>8}"
              f"{'ms/token':>10}{'x dense':>8}")
        for name in models:
            disk, rss = sizes[name]
            print(f"{name:<12}{params[name] / 1e6:>10.3f}{disk / 1e6:>9.2f}{disk / sizes['dense'][0]:>8.2f}"
                  f"{rss / 1e6:>13.2f}{rss / sizes['dense'][1]:>8.2f}{times[name] * 1e3:>10.2f}"
                  f"{times[name] / times['dense']:>8.2f}")
    print("\nmasked: the disk column is the dense file (the csr row stores the same weights as CSR);"
          " resident is the dense file's")


if __name__ == "__main__":
    main()
