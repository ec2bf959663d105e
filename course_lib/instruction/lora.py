"""LoRA, low-rank adaptation (Hu et al. 2021), written from scratch: tune a model by training a few small matrices.

Full fine-tuning updates every weight ``W`` (out x in) of the model. LoRA keeps ``W`` frozen
and learns only a low-rank change to it, ``delta W = (alpha / r) * B @ A``, with ``A`` of shape
(r x in) and ``B`` of shape (out x r) for a small rank ``r``. A layer then computes

    h = W x + (alpha / r) * B (A x)

so a 64 x 64 projection with ``r = 8`` trains 2 * 8 * 64 = 1,024 numbers instead of 4,096, and
a 4096 x 4096 one trains 65,536 instead of 16.8 million. ``B`` starts at zero, so the adapted
model starts *exactly* equal to the model it adapts; training moves it away from there.
After training, ``merge_lora`` folds ``B @ A`` into ``W``: the result is a plain model of the
original shape that runs as fast as the original.

- ``LoRALinear``: one ``nn.Linear`` with a LoRA adapter around it; ``merge()`` gives the plain layer back.
- ``apply_lora``: put adapters on the linear layers named in ``targets`` (``"q_proj"``, ``"v_proj"``, ...).
- ``merge_lora``: replace every adapter by its merged ``nn.Linear``.
- ``trainable_parameters``: (trainable, total), to see how few numbers LoRA trains.

The same computation in the industrial library is ``peft`` (``LoraConfig``, ``get_peft_model``,
``merge_and_unload``); ``tests/test_lora.py`` shows both give the same logits on the same weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import checks


def _check_hyperparameters(r, alpha, dropout) -> None:
    """Refuse a rank, scale or dropout that is no LoRA setting, naming the argument."""
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"r: expected an int (the adapter's rank), got {checks.type_name(r)} {r!r}")
    if r < 1:
        raise ValueError(f"r: the rank must be >= 1, got {r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha: expected a number, got {checks.type_name(alpha)} {alpha!r}")
    if not alpha > 0:  # `not >` also refuses NaN
        raise ValueError(f"alpha: the scale must be > 0, got {alpha}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout: expected a number, got {checks.type_name(dropout)} {dropout!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * B @ A @ dropout(x)``: a frozen ``nn.Linear`` plus a trainable low-rank update.

    Args:
        base: the layer to adapt, ``W`` of shape (out_features, in_features) and an optional bias.
            Its parameters are frozen (``requires_grad=False``); it is kept, not copied.
        r: the rank of the update, >= 1.
        alpha: the update's scale is ``alpha / r``, so changing ``r`` does not change how big a step of
            the same learning rate is (the LoRA paper's choice; peft's default too).
        dropout: probability of zeroing an entry of the adapter's input; the frozen path sees ``x`` whole.

    ``A`` (r, in_features) is initialised like the ``nn.Linear`` weight it mimics and like peft's
    default, kaiming-uniform with ``a = sqrt(5)``: uniform on ``[-1/sqrt(in_features), 1/sqrt(in_features)]``.
    ``B`` (out_features, r) starts at zero, so a new ``LoRALinear`` computes exactly what ``base`` does.
    A and B live on ``base``'s device, in its dtype.
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base: expected an nn.Linear, got {checks.type_name(base)}")
        _check_hyperparameters(r, alpha, dropout)
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        self.B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r)
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        # nn.Dropout(0) would still draw a random mask in training mode; skip it as peft does.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        # (x A^T) B^T: through the r-wide bottleneck, never forming the (out, in) matrix B A.
        update = self.dropout(x) @ self.A.T @ self.B.T  # (..., in) -> (..., r) -> (..., out)
        return self.base(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        """The change LoRA makes to ``W``: ``(alpha / r) * B @ A``, shape (out_features, in_features)."""
        return self.scaling * (self.B @ self.A)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain ``nn.Linear`` with weight ``W + (alpha / r) B A`` and ``base``'s bias.

        In eval mode (no dropout) it computes what this layer computes, up to float rounding. Its
        parameters are frozen like ``base``'s; call ``requires_grad_(True)`` on it to train it further.
        """
        base = self.base
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        merged.weight.copy_(base.weight + self.delta_weight())
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def _matches(name: str, target: str) -> bool:
    """peft's rule for a list of targets: ``"q_proj"`` names ``q_proj`` and ``model.layers.0.self_attn.q_proj``,
    but not ``qq_proj``: the match is on whole dotted parts."""
    return name == target or name.endswith("." + target)


def _tied_names(model: nn.Module) -> set[str]:
    """Names of the modules whose parameters are shared with another module (tied embeddings, ...)."""
    owners: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), set()).add(name.rpartition(".")[0])
    return {name for names in owners.values() if len(names) > 1 for name in names}


def _find_targets(model: nn.Module, targets: list[str]) -> list[str]:
    """Names of the ``nn.Linear`` modules that ``targets`` pick, checking that each target picks one."""
    adapted = {name for name, module in model.named_modules() if isinstance(module, LoRALinear)}
    linears = [name for name, module in model.named_modules()  # not the frozen layers inside adapters
               if isinstance(module, nn.Linear) and name.rpartition(".")[0] not in adapted]
    tied = _tied_names(model)
    chosen = []
    for target in targets:
        if any(_matches(name, target) for name in adapted):
            raise ValueError(f"targets: {target!r} already has a LoRA adapter; merge_lora it first")
        found = [name for name in linears if _matches(name, target)]
        if not found:
            short = sorted({name.rpartition(".")[2] for name in linears})
            raise ValueError(f"targets: {target!r} matches no nn.Linear module of the model; "
                             f"its linear modules are named {', '.join(short)}")
        if shared := [name for name in found if name in tied]:
            # Merging into a shared weight would change the other module too (peft does just that).
            raise ValueError(f"targets: {target!r} picks {shared[0]}, whose weight is shared with another module "
                             "(tied embeddings?); a LoRA on it could not be merged into that weight alone")
        chosen += [name for name in found if name not in chosen]
    return chosen


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` (``"model.layers.0.self_attn.q_proj"``) is."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def apply_lora(model: nn.Module, targets: list[str], r: int = 8, alpha: float = 16,
               dropout: float = 0.0) -> nn.Module:
    """Wrap every ``nn.Linear`` whose name ends with one of ``targets`` in a ``LoRALinear``; freeze the rest.

    ``targets`` are short module names, matched on whole dotted parts as peft matches a list:
    ``["q_proj", "v_proj"]`` adapts the query and value projections of every layer of a Llama model.
    Each target must pick at least one linear module (a ``ValueError`` lists the names there are),
    and not one whose weight another module shares (the tied ``lm_head``). The model is changed in
    place and returned; afterwards only the adapters' ``A`` and ``B`` have ``requires_grad=True``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {checks.type_name(model)}")
    targets = checks.texts("targets", targets)
    if not targets:
        raise ValueError("targets: expected at least one module name, such as 'q_proj'")
    _check_hyperparameters(r, alpha, dropout)
    names = _find_targets(model, targets)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), r=r, alpha=alpha, dropout=dropout))
    model.requires_grad_(False)
    for module in model.modules():  # every adapter trains, those of an earlier call too
        if isinstance(module, LoRALinear):
            module.A.requires_grad_(True)
            module.B.requires_grad_(True)
    return model


def train_token_rows(model: nn.Module, token_ids: list[int]) -> int:
    """Let training change the input-embedding rows of ``token_ids`` only (peft's ``trainable_token_indices``).

    Tokens that pretraining hardly saw, such as the chat format's role and end-of-turn tokens,
    have embeddings no adapter on a linear layer can fix. This makes the embedding matrix
    trainable with a gradient hook that zeroes every other row, so with AdamW and no weight
    decay (decay would shrink every row) only those rows move. Returns how many numbers train.
    """
    weight = model.get_input_embeddings().weight
    ids = sorted(set(token_ids))
    if not ids or min(ids) < 0 or max(ids) >= weight.shape[0]:
        raise ValueError(f"token_ids: expected ids in [0, {weight.shape[0]}), got {token_ids!r}")
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    keep[ids] = 1
    weight.requires_grad_(True)
    weight.register_hook(lambda grad: grad * keep)
    return len(ids) * weight.shape[1]


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every ``LoRALinear`` in ``model`` by its merged ``nn.Linear``, in place; return the model.

    The result has the original model's modules and shapes (it saves and loads like the original),
    and in eval mode computes what the adapted model computed, up to float rounding. A model
    without adapters is returned unchanged; a bare ``LoRALinear`` gives its ``merge()``. Like the base
    weights it replaces, the merged weights are frozen: ``model.requires_grad_(True)`` to train them all.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {checks.type_name(model)}")
    if isinstance(model, LoRALinear):
        return model.merge()
    adapters = [(name, module) for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name, module in adapters:
        _replace(model, name, module.merge())
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total): how many numbers training would change, and how many the model has.

    A parameter shared by two modules (tied input and output embeddings) counts once, as in
    peft's ``get_nb_trainable_parameters``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {checks.type_name(model)}")
    params = list(model.parameters())  # .parameters() yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
