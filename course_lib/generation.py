"""Decoding from scratch: greedy, temperature, top-k and top-p (nucleus) sampling.

``generate`` is the loop ``model.generate`` runs, written out: feed the prompt,
turn the last position's logits into a next token, append it, feed only that
token (the key/value cache remembers the rest), stop at ``max_new_tokens`` or
when every sequence has produced the end token. The filters are applied in
``transformers``' order (temperature, then top-k, then top-p) and sampling draws
with ``torch.multinomial`` from the global RNG, so with the same seed the tokens
equal ``model.generate``'s (a test checks it).
"""

from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Scaled and truncated logits (B, V): removed tokens get -inf.

    - temperature: divide by ``temperature`` (< 1 sharpens, > 1 flattens);
    - top-k: keep the ``top_k`` largest (0 keeps all); ties at the k-th value are kept;
    - top-p: keep the smallest set of most probable tokens whose probability reaches
      ``top_p``: sort ascending and drop tokens while the cumulative probability of
      what is dropped stays <= 1 - top_p; the most probable token always stays.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0; use greedy decoding for temperature 0")
    logits = logits / temperature if temperature != 1.0 else logits
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= 1 - top_p
        drop_sorted[..., -1] = False  # keep the most probable token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(
    logits: torch.Tensor, *, do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """(B,) next tokens from last-position logits (B, V): the argmax, or a draw from the filtered softmax."""
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, num_samples=1).squeeze(1)


@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> torch.Tensor:
    """Prompt (B, T) -> prompt + up to ``max_new_tokens`` tokens (B, T + N), with a key/value cache.

    A sequence that has produced ``eos_token_id`` continues with ``pad_token_id``
    (default: the end token) until all have ended. Prompts must not be padded.
    """
    model.eval()
    pad = eos_token_id if pad_token_id is None else pad_token_id
    ids = input_ids
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    out = model(input_ids=ids, use_cache=True)  # the whole prompt once
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float()  # (B, V): the prediction for the next position
        token = next_token(logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
        if eos_token_id is not None:
            token = torch.where(unfinished, token, torch.full_like(token, pad))
            unfinished &= token != eos_token_id
        ids = torch.cat([ids, token[:, None]], dim=1)
        if not unfinished.any():
            break
        out = model(input_ids=token[:, None], cache=out.cache, use_cache=True)
    return ids
