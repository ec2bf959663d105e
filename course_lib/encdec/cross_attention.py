"""Cross-attention: T5's encoder-decoder attention written from scratch, read out of the model, and plotted."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ..tokenization import bytes_to_unicode
from .seq2seq import encoder_decoder_example


class CrossAttention(torch.nn.Module):
    """T5's encoder-decoder attention, one screen long: queries from the decoder, keys and values from the encoder.

    ``forward(x, memory, memory_mask)`` maps the (normalized) decoder states x (B, T, d) and the
    encoder's last hidden states (B, S, d) to (B, T, d); ``last_weights`` keeps the (B, H, T, S)
    weights of the last call. T5 neither scales the scores by 1/sqrt(D) (its initialization
    does that job) nor adds position biases here: where a source token sits reaches the
    decoder only through the encoder's states. ``from_t5`` copies a ``T5LayerCrossAttention``.
    """

    def __init__(self, d_model: int, n_head: int, d_kv: int):
        super().__init__()
        self.n_head, self.d_kv = n_head, d_kv
        self.q = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.k = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.v = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.o = torch.nn.Linear(n_head * d_kv, d_model, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        (B, T, _), S = x.shape, memory.shape[1]
        # Queries: what each output position asks; keys and values: what each source token offers.
        q = self.q(x).view(B, T, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, T, D)
        k = self.k(memory).view(B, S, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, S, D)
        v = self.v(memory).view(B, S, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, S, D)
        scores = q @ k.transpose(-2, -1)  # (B, H, T, S)
        if memory_mask is not None:  # (B, S), 1 at real source tokens: padding gets weight 0
            scores = scores.masked_fill(~memory_mask.bool()[:, None, None, :], float("-inf"))
        self.last_weights = torch.softmax(scores.float(), dim=-1).to(x.dtype)  # each row sums to 1 over the source
        out = (self.last_weights @ v).transpose(1, 2).reshape(B, T, self.n_head * self.d_kv)
        return self.o(out)

    @classmethod
    def from_t5(cls, layer) -> CrossAttention:
        """A copy of the attention of ``layer``, a ``T5LayerCrossAttention`` (``decoder.block[i].layer[1]``)."""
        attn = getattr(layer, "EncDecAttention", layer)
        if getattr(attn, "has_relative_attention_bias", False):
            raise ValueError("from_t5 copies a cross-attention layer; this one has relative position biases")
        new = cls(attn.d_model, attn.n_heads, attn.key_value_proj_dim)
        new.load_state_dict({k: attn.state_dict()[k] for k in ("q.weight", "k.weight", "v.weight", "o.weight")})
        return new


@contextmanager
def eager_attention(model: PreTrainedModel):
    """Run ``model`` with the plain ("eager") attention inside the block: SDPA cannot return its weights."""
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(old)


def _layer_index(model: PreTrainedModel, layer: int) -> int:
    n = len(model.decoder.block)
    if not -n <= layer < n:
        raise IndexError(f"layer {layer} is out of range for a decoder with {n} layers")
    return layer % n


@torch.no_grad()
def cross_attention_weights(model: PreTrainedModel, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                            layer: int = -1, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, T, S) weights of decoder layer ``layer``'s cross-attention, by a forward pass (teacher forcing).

    Row t of head h says how much decoder position t (reading ``decoder_input_ids[:, t]``, writing
    the next token) takes from each of the S source positions; it sums to 1 over them.
    """
    i = _layer_index(model, layer)
    model.eval()
    with eager_attention(model):
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                    output_attentions=True)
    return out.cross_attentions[i]


@torch.no_grad()
def cross_attention_inputs(model: PreTrainedModel, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                           layer: int = -1, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """What decoder layer ``layer``'s cross-attention sublayer reads and writes in one forward pass.

    ``{"x": decoder states going in (B, T, d), "memory": the states its keys and values come
    from (B, S, d), "encoder_output": the encoder's last hidden states (B, S, d), "output":
    x plus the attention's output (B, T, d)}``. ``memory`` equals ``encoder_output``: that is
    the whole hand-off from encoder to decoder, in every decoder layer.
    """
    block = model.decoder.block[_layer_index(model, layer)].layer[1]  # self-attention, cross-attention, feed-forward
    seen = {}

    def before(module, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["memory"] = kwargs["key_value_states"].detach().clone()

    def after(module, args, kwargs, output):
        seen["output"] = output[0].detach().clone()

    hooks = [block.register_forward_pre_hook(before, with_kwargs=True),
             block.register_forward_hook(after, with_kwargs=True)]
    model.eval()
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    finally:
        for h in hooks:
            h.remove()
    return {**seen, "encoder_output": out.encoder_last_hidden_state}


@torch.no_grad()
def attention_while_generating(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, source: str, *,
                               layer: int = -1, max_new_tokens: int | None = None) -> dict:
    """Translate ``source`` greedily and keep decoder layer ``layer``'s cross-attention at every step.

    Returns ``{"source_ids": (S,), "output_ids": (T,) the generated tokens, "weights": (H, T, S)}``:
    row t is the attention while the decoder chose output token t (it reads token t - 1, or the
    start token for t = 0). Generation caches the keys and values the encoder's states give,
    so each step computes only its own query.
    """
    i = _layer_index(model, layer)
    source_ids = encoder_decoder_example(tokenizer, source, "")["input_ids"]
    model.eval()
    with eager_attention(model):
        out = model.generate(input_ids=source_ids[None].to(model.device),
                             max_new_tokens=max_new_tokens or 2 * len(source_ids) + 4, do_sample=False,
                             num_beams=1, return_dict_in_generate=True, output_attentions=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    weights = torch.cat([step[i][0] for step in out.cross_attentions], dim=1)  # steps x (H, 1, S) -> (H, T, S)
    return {"source_ids": source_ids, "output_ids": out.sequences[0, 1:].cpu(), "weights": weights.cpu()}


# --------------------------------------------------------------------------- token labels for plots

_LEADS = ["g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h"]
_VOWELS = ["a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we", "wi",
           "yu", "eu", "ui", "i"]
_TAILS = ["", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t", "t",
          "ng", "t", "t", "k", "t", "p", "t"]


def romanize(text: str) -> str:
    """Hangul syllables in Revised Romanization, letter by letter (no sound-change rules); other text unchanged.

    For plot labels: matplotlib's default font has no Hangul. ``romanize("들개릴")`` is ``"deulgaeril"``.
    """
    out = []
    for ch in unicodedata.normalize("NFC", text):
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            lead, rest = divmod(code, 21 * 28)
            vowel, tail = divmod(rest, 28)
            out.append(_LEADS[lead] + _VOWELS[vowel] + _TAILS[tail])
        else:
            out.append(ch)
    return "".join(out)


def token_labels(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int], romanized: bool = True) -> list[str]:
    """One readable label per token id: the characters whose first byte the token holds.

    A byte-level BPE token may hold part of a Hangul syllable (3 UTF-8 bytes); the syllable is
    shown on the token that holds its first byte, and a token holding only continuation bytes
    gets ``"·"``. Special tokens keep their names; Hangul is romanized unless ``romanized=False``.
    """

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    pieces: list[bytes] = []
    for t in ids:
        t = int(t)
        pieces.append(b"" if t in special else bytes(byte_of[c] for c in tokenizer.convert_ids_to_tokens(t)))
    data = b"".join(pieces)
    starts = np.cumsum([0] + [len(p) for p in pieces])  # byte offset where each token starts
    owner = np.searchsorted(starts, np.arange(len(data)), side="right") - 1  # token of each byte
    chars = [[] for _ in ids]
    pos = 0
    for ch in data.decode("utf-8", errors="replace"):
        width = len(ch.encode("utf-8")) if ch != "\ufffd" else 1
        if pos < len(data):
            chars[owner[pos]].append(ch)
        pos += width
    labels = []
    for t, cs in zip(ids, chars):
        if int(t) in special:
            labels.append(tokenizer.convert_ids_to_tokens(int(t)))
        else:
            text = "".join(cs).replace("\n", "\\n")
            labels.append((romanize(text) if romanized else text) or "·")
    return labels


def plot_cross_attention(weights: torch.Tensor, source_labels: Sequence[str], output_labels: Sequence[str], ax=None,
                         title: str = "Cross-attention"):
    """Heat map of (T, S) weights: one row per output token, one column per source token; returns the Axes."""
    import matplotlib.pyplot as plt

    w = torch.as_tensor(weights).float().numpy()
    if w.shape != (len(output_labels), len(source_labels)):
        raise ValueError(f"weights {w.shape} do not match {len(output_labels)} output labels "
                         f"and {len(source_labels)} source labels")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(source_labels) + 2.5, 0.35 * len(output_labels) + 1.8))
    im = ax.imshow(w, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(source_labels)), source_labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(output_labels)), output_labels, fontsize=8)
    ax.set(title=title, xlabel="source token (encoder position)", ylabel="output token (decoder step)")
    ax.figure.colorbar(im, ax=ax, label="attention weight (row sums to 1)")
    return ax
