"""Knowledge distillation (지식 증류): a small student learns from a large teacher's output distribution.

Hinton et al. (2015): soften both models' next-token distributions with a temperature ``T``
and train the student on a mix of the teacher's soft targets and the true next token,

    loss = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

(``z_t``, ``z_s``: teacher and student logits, ``[..., vocab]``). A high ``T`` shows the
student the teacher's "dark knowledge": which wrong tokens are nearly right. The gradient
of the soft term with respect to ``z_s`` is ``(p_s - p_t) / T`` and shrinks like ``1 / T^2``
when the logits are large, so the ``T^2`` factor keeps its size comparable across ``T``.

Two ways to distil a language model, both with the course loop (``training.train``):

- *logit distillation* during pretraining: :class:`Distiller` wraps a student and its
  teacher so that ``forward(**batch).loss`` is the KD loss; the teacher's logits come on
  the fly (a teacher forward per step) or from :func:`cache_teacher`, which runs the teacher
  once over the blocks and keeps the ``top_k`` largest logits of each position;
- *sequence-level distillation* (Kim and Rush 2016): :func:`teacher_answers` replaces each
  chat row's answer with the teacher's own greedy answer, and the student is fine-tuned on
  those rows as on any others (:func:`sequence_distill`).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import replace

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..config import Config, TrainConfig
from ..models import new_decoder
from ..training import train

IGNORE = -100


def check_temperature(temperature: float) -> float:
    """``temperature`` if it is a finite number > 0, else a ``ValueError`` naming the setting."""
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature T={temperature!r}: must be a finite number > 0 (T = 1 is the plain softmax)")
    return float(temperature)


def check_alpha(alpha: float) -> float:
    """``alpha`` (the soft term's weight) if it is in [0, 1], else a ``ValueError`` naming the setting."""
    if not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r}: the soft-target weight must be in [0, 1]")
    return float(alpha)


def check_vocab(student, teacher) -> None:
    """A ``ValueError`` unless student and teacher predict over the same vocabulary (same size, same tokenizer).

    KD compares two distributions over the same tokens; across tokenizers it is not defined here.
    """
    s, t = student.config.vocab_size, teacher.config.vocab_size
    if s != t:
        raise ValueError(f"student vocabulary ({s} tokens) differs from the teacher's ({t}): KD compares "
                         "distributions over the same tokens, so the student must use the teacher's tokenizer")


def soft_loss(student_logits: torch.Tensor, teacher, temperature: float,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, the mean over positions (where ``mask`` is True).

    ``student_logits``: ``[..., vocab]``. ``teacher``: logits of the same shape, or a pair
    ``(values, indices)`` ``[..., k]`` of the teacher's top-k logits (:func:`cache_teacher`): then
    the teacher's distribution is the softmax over those k tokens and the sum runs over them
    (with k = vocab it is the full KL).
    """
    T = check_temperature(temperature)
    log_p_s = F.log_softmax(student_logits.float() / T, dim=-1)  # [..., V]
    if isinstance(teacher, (tuple, list)):
        values, indices = teacher
        log_p_t = F.log_softmax(values.float() / T, dim=-1)  # [..., k]
        log_p_s = log_p_s.gather(-1, indices.long())
    else:
        log_p_t = F.log_softmax(teacher.float() / T, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # [...]: KL(p_t || p_s) at each position
    if mask is not None:
        kl = kl[mask]
    return T * T * kl.mean()


def kd_loss(student_logits: torch.Tensor, teacher, labels: torch.Tensor | None, *, temperature: float = 2.0,
            alpha: float = 0.5) -> torch.Tensor:
    """Hinton's loss for next-token prediction: ``alpha * soft_loss + (1 - alpha) * CE``.

    ``student_logits`` ``[B, S, V]`` and ``teacher`` (logits or top-k pair) at the same positions;
    ``labels`` ``[B, S]`` as a causal LM takes them (``-100``: not scored; the shift is done
    here: position t predicts label t + 1). Both terms average over the scored positions.
    ``labels=None`` scores every position with the soft term alone (``alpha`` must be 1).
    """
    alpha = check_alpha(alpha)
    z_s = student_logits[:, :-1]
    teacher = tuple(t[:, :-1] for t in teacher) if isinstance(teacher, (tuple, list)) else teacher[:, :-1]
    if labels is None:
        if alpha != 1:
            raise ValueError(f"alpha={alpha}: the hard (cross-entropy) term needs labels; pass labels or alpha=1")
        return soft_loss(z_s, teacher, temperature)
    targets = labels[:, 1:]
    mask = targets != IGNORE
    soft = soft_loss(z_s, teacher, temperature, mask) if alpha else z_s.new_zeros(())
    hard = F.cross_entropy(z_s.reshape(-1, z_s.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE)
    return alpha * soft + (1 - alpha) * hard


class Distiller(torch.nn.Module):
    """A student and its frozen teacher as one model for ``training.train``: ``forward(**batch).loss`` is ``kd_loss``.

    The batch is a causal LM's (``input_ids``, ``labels``, optional ``position_ids`` and
    ``attention_mask``) and, when the teacher's logits were cached, ``teacher_values`` and
    ``teacher_indices`` (``[B, S, k]``). Without them the teacher runs on the batch (no
    gradient, always in eval mode: no dropout; it stays on its own device). Only the student's
    weights train, and ``save_pretrained`` saves the student alone, so the run's ``final/`` is the student.
    """

    def __init__(self, student, teacher=None, *, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__()
        self.temperature, self.alpha = check_temperature(temperature), check_alpha(alpha)
        if teacher is not None:
            check_vocab(student, teacher)
        self.student = student
        self._teacher = [teacher]  # in a list: not a submodule, so its weights are in no optimizer and no state dict
        self.config = student.config

    @property
    def teacher(self):
        return self._teacher[0]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, input_ids, labels=None, position_ids=None, attention_mask=None, teacher_values=None,
                teacher_indices=None, **kwargs) -> CausalLMOutputWithPast:
        inputs = dict(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, use_cache=False)
        logits = self.student(**inputs).logits  # [B, S, V]
        if teacher_values is not None:
            if teacher_values.shape[-1] > logits.shape[-1] or int(teacher_indices.max()) >= logits.shape[-1]:
                raise ValueError(f"cached teacher logits index tokens up to {int(teacher_indices.max())} but the "
                                 f"student's vocabulary has {logits.shape[-1]}: cache the teacher of this student")
            teacher = (teacher_values, teacher_indices)
        elif self.teacher is not None:
            with torch.no_grad():
                teacher = self.teacher(**inputs).logits
        else:
            raise ValueError("the batch has no cached teacher logits (teacher_values, teacher_indices) and the "
                             "Distiller has no teacher to compute them")
        loss = kd_loss(logits, teacher, labels, temperature=self.temperature, alpha=self.alpha)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def save_pretrained(self, path, state_dict=None, **kwargs) -> None:
        """Save the student (``state_dict``: the Distiller's, as ``train`` gathers it; the teacher's keys dropped)."""
        if state_dict is not None:
            state_dict = {k[len("student."):]: v for k, v in state_dict.items() if k.startswith("student.")}
        self.student.save_pretrained(path, state_dict=state_dict, **kwargs)


class TeacherCache(torch.utils.data.Dataset):
    """The rows of ``dataset`` with the teacher's top-k logits added (``teacher_values``, ``teacher_indices``)."""

    def __init__(self, dataset, values: torch.Tensor, indices: torch.Tensor):
        if len(values) != len(dataset):
            raise ValueError(f"{len(values)} cached rows for a dataset of {len(dataset)}")
        self.dataset, self.values, self.indices = dataset, values, indices

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "teacher_values": self.values[i].float(), "teacher_indices": self.indices[i].long()}

    def nbytes(self) -> int:
        """Bytes the cached logits take (values in float16, indices in int16 or int32)."""
        return self.values.nbytes + self.indices.nbytes


@torch.no_grad()
def cache_teacher(teacher, dataset, top_k: int = 32, batch_size: int = 16) -> TeacherCache:
    """Run ``teacher`` once over every row of ``dataset`` (packed blocks) and keep each position's ``top_k`` logits.

    Values are stored in float16 and indices in int16 when the vocabulary fits (else int32):
    ``4 * top_k`` bytes a position instead of ``4 * vocab``.
    """
    if not 1 <= top_k <= teacher.config.vocab_size:
        raise ValueError(f"top_k={top_k}: must be between 1 and the vocabulary size ({teacher.config.vocab_size})")
    teacher.eval()
    index_type = torch.int16 if teacher.config.vocab_size <= 32767 else torch.int32
    values, indices = [], []
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: torch.stack([r[k] for r in rows]).to(teacher.device) for k in ("input_ids", "position_ids")
                 if k in rows[0]}
        top = teacher(**batch, use_cache=False).logits.topk(top_k, dim=-1)  # [b, S, k]
        values.append(top.values.to(torch.float16).cpu())
        indices.append(top.indices.to(index_type).cpu())
    return TeacherCache(dataset, torch.cat(values), torch.cat(indices))


def new_student(cfg: Config, tokenizer, *, seed: int | None = None):
    """An untrained student of the ``compression`` section's size (layers, heads, width), the teacher's vocabulary.

    Everything else (architecture, context, dropout) is the teacher's ``model`` section;
    ``seed`` (default ``run.seed``) draws its initial weights.
    """
    c = cfg.compression
    model = replace(cfg.model, n_layer=c.student_layers, n_head=c.student_heads, d_model=c.student_d_model, d_ff=0)
    run = replace(cfg.run, seed=cfg.run.seed if seed is None else seed)
    return new_decoder(replace(cfg, model=model, run=run), tokenizer)


def student_train_config(cfg: Config) -> TrainConfig:
    """The student's run: ``compression.student_steps`` steps, otherwise ``pretrain.train``'s settings, quiet."""
    c = cfg.compression
    return replace(cfg.pretrain.train, max_steps=c.student_steps, eval_every=0, save_every=0, progress=False,
                   warmup_steps=min(cfg.pretrain.train.warmup_steps, c.student_steps // 10))


def train_student(cfg: Config, student, blocks, *, teacher=None, temperature: float | None = None,
                  alpha: float | None = None, seed: int = 0):
    """Train ``student`` in place on ``blocks`` for ``student_train_config(cfg)``; returns ``training.TrainResult``.

    ``blocks`` are packed rows, with cached teacher logits (a :class:`TeacherCache`) or without.
    With a teacher or a cache it learns by ``kd_loss`` (``temperature``, ``alpha``: default the
    ``compression`` section's); with neither, directly by cross-entropy, the same loop and data.
    """
    c = cfg.compression
    model = student
    if teacher is not None or isinstance(blocks, TeacherCache):
        model = Distiller(student, teacher, temperature=c.temperature if temperature is None else temperature,
                          alpha=c.alpha if alpha is None else alpha)
    with tempfile.TemporaryDirectory() as out:
        return train(model, blocks, student_train_config(cfg), output_dir=out, seed=seed, resume=False)


@torch.no_grad()
def teacher_answers(teacher, tokenizer, rows: list[dict], *, max_new_tokens: int = 48,
                    batch_size: int = 32) -> list[dict]:
    """Chat ``rows`` with the last (assistant) turn replaced by the teacher's own greedy answer.

    Rows whose answer comes back empty are left out: there is nothing to learn from them.
    """
    from ..instruction import chat_answers

    answers = chat_answers(teacher, tokenizer, [r["messages"][:-1] for r in rows], max_new_tokens=max_new_tokens,
                           batch_size=batch_size)
    return [{**r, "messages": r["messages"][:-1] + [{"role": "assistant", "content": a}], "teacher_answer": a}
            for r, a in zip(rows, answers) if a.strip()]


def sequence_distill(student, tokenizer, rows: list[dict], train_cfg: TrainConfig, *, seed: int = 0,
                     max_length: int | None = None, **train_kwargs):
    """Fine-tune ``student`` in place on chat ``rows`` (the teacher's answers, from :func:`teacher_answers`, or the
    true ones, for the comparison), response-only loss, with the course loop; returns the ``TrainResult``.

    Rows longer than ``max_length`` tokens are left out, with a warning that counts them. ``train_kwargs`` go to
    the loop (``callbacks``: e.g. ``pruning.keep_masks``, which holds a pruned model's zeros)."""
    from ..instruction import add_chat_template, chat_example, sft_own

    tokenizer = add_chat_template(tokenizer)
    student.config.pad_token_id = tokenizer.pad_token_id
    examples = [chat_example(tokenizer, r["messages"], r["id"]) for r in rows]
    kept = [e for e in examples if max_length is None or len(e["input_ids"]) <= max_length]
    if len(kept) < len(examples):
        warnings.warn(f"sequence_distill: {len(examples) - len(kept)} of {len(examples)} rows are longer than "
                      f"max_length={max_length} tokens and were left out", stacklevel=2)
    examples = kept
    with tempfile.TemporaryDirectory() as out:
        return sft_own(student, examples, train_cfg, output_dir=out, seed=seed, resume=False, **train_kwargs)
