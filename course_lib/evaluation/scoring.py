"""Scoring a model as lm-evaluation-harness (lm-eval) does: log-likelihoods, rolling windows, greedy generation.

Three requests cover every task (lm-eval's ``HFLM`` has the same three):

- ``loglikelihood(context, continuation)`` -> (log P(continuation | context), is_greedy).
  Multiple choice scores each choice this way; a cloze item scores its last word.
- ``loglikelihood_rolling(text)`` -> log P(text), for documents longer than the
  model's context: disjoint windows, each predicting new tokens with as much
  preceding text as fits (perplexity).
- ``generate_until(prompt, stop)`` -> greedy continuation cut at the first stop string.

The tokenization boundary is handled as lm-eval's ``_encode_pair`` does: spaces at the
end of the context move to the start of the continuation (``"Answer: " + "Paris"`` is
scored as ``"Answer:" + " Paris"``, because a BPE tokenizer makes " Paris" one token);
a causal model encodes context + continuation *together* and the continuation is
what follows the context's tokens, so a merge across the boundary is not split apart.
A seq2seq model encodes the two separately (the context goes to the encoder).
``tests/test_evaluation_lm_eval.py`` checks that per-item log-likelihoods equal lm-eval's.

An empty context is the prefix token (begin or end of text), as in lm-eval. An
empty continuation (no tokens to score) has log-likelihood 0 and is greedy: the
empty string follows any context with probability 1 (lm-eval refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from course_lib import checks

DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when neither the config nor the tokenizer gives a length
_TOKENIZER_INFINITY = int(1e30)  # what transformers stores as model_max_length when none is set


def is_seq2seq(model) -> bool:
    """True for an encoder-decoder model (T5), False for a decoder-only one."""
    return bool(getattr(model.config, "is_encoder_decoder", False))


def max_length(model, tokenizer) -> int:
    """The context length in tokens, found as lm-eval finds it.

    The first of the config's ``n_positions``, ``max_position_embeddings``, ``n_ctx``;
    else the tokenizer's ``model_max_length`` if set; else 2048.
    """
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit is not None and limit != _TOKENIZER_INFINITY else DEFAULT_MAX_LENGTH


def prefix_token_id(tokenizer) -> int:
    """The token that stands in for an empty context: begin-of-sequence, else end-of-text."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode(tokenizer, text: str, add_special_tokens: bool | None = None) -> list[int]:
    """Token ids of ``text`` as lm-eval's ``tok_encode``: the tokenizer's own special tokens unless told otherwise.

    A text that already starts with the prefix token's string gets no second one.
    """
    if add_special_tokens is None:
        add_special_tokens = not text.startswith(tokenizer.decode(prefix_token_id(tokenizer)))
    return tokenizer.encode(text, add_special_tokens=add_special_tokens)


def encode_pair(tokenizer, context: str, continuation: str, *, seq2seq: bool = False) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) for scoring ``continuation`` after ``context`` (lm-eval's ``_encode_pair``).

    An empty context becomes the prefix token (begin or end of text).
    """
    if context == "":
        cont = encode(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:  # "Answer: " + "Paris" -> "Answer:" + " Paris"
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    if seq2seq:
        return encode(tokenizer, context), encode(tokenizer, continuation, add_special_tokens=False)
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context)
    return ctx, whole[len(ctx) :]


@torch.no_grad()
def loglikelihood_tokens(
    model, requests: Sequence[tuple[list[int], list[int]]], *, batch_size: int = 16, max_len: int | None = None
) -> list[tuple[float, bool]]:
    """(sum of log-probabilities of the continuation tokens, whether each is the argmax) per (context, continuation).

    Causal model: the input is context + continuation minus its last token, cut from the
    left to ``max_len`` tokens; the logits at the last len(continuation) positions predict
    the continuation. Seq2seq model: the context (last ``max_len`` tokens) feeds the
    encoder, the continuation is the decoder's labels. Requests are batched longest first,
    right-padded (padding after a token cannot change it in a causal model).
    """
    model.eval()
    seq2seq = is_seq2seq(model)
    max_len = max_len or DEFAULT_MAX_LENGTH
    # nothing to score: log 1 = 0, and greedy decoding produces the empty string too
    results: list[tuple[float, bool] | None] = [None if cont else (0.0, True) for _, cont in requests]
    # longest first (ties by token ids, as lm-eval orders them): padding stays small, and batches match lm-eval's
    order = sorted((i for i, r in enumerate(results) if r is None),
                   key=lambda i: (-len(requests[i][0] + requests[i][1]), tuple(requests[i][0] + requests[i][1])))
    for start in range(0, len(order), batch_size):
        batch = [requests[i] for i in order[start : start + batch_size]]
        if seq2seq:
            inputs = [ctx[-max_len:] for ctx, _ in batch]
            conts = [cont[-max_len:] for _, cont in batch]
            enc = _pad(inputs, model.device)
            logits = model(input_ids=enc, attention_mask=_pad([[1] * len(x) for x in inputs], model.device),
                           labels=_pad(conts, model.device)).logits  # (B, T_cont, V)
        else:
            inputs = [(ctx + cont)[-(max_len + 1) :][:-1] for ctx, cont in batch]
            logits = model(input_ids=_pad(inputs, model.device)).logits  # (B, T, V)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for j, ((_, cont), inp) in enumerate(zip(batch, inputs)):
            n = len(cont)
            # causal: positions len(inp)-n .. len(inp)-1 predict the continuation; seq2seq: the first n
            scored = logprobs[j, len(inp) - n : len(inp)] if not seq2seq else logprobs[j, :n]  # (n, V)
            target = torch.tensor(cont, device=scored.device)
            ll = scored.gather(-1, target[:, None]).sum().item()
            results[order[start + j]] = (ll, bool((scored.argmax(-1) == target).all()))
    return results


def _pad(rows: list[list[int]], device) -> torch.Tensor:
    """(B, T) long tensor of ``rows`` right-padded with 0."""
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out.to(device)


def loglikelihood(
    model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 16
) -> list[tuple[float, bool]]:
    """(log P(continuation | context), is_greedy) for each (context, continuation) string pair."""
    for i, pair in enumerate(checks.sequence("pairs", pairs, "(context, continuation) pairs")):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"pairs[{i}]: expected a (context, continuation) pair, got {checks.type_name(pair)}")
        checks.texts(f"pairs[{i}]", pair)
    seq2seq = is_seq2seq(model)
    requests = [encode_pair(tokenizer, ctx, cont, seq2seq=seq2seq) for ctx, cont in pairs]
    return loglikelihood_tokens(model, requests, batch_size=batch_size, max_len=max_length(model, tokenizer))


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (context, predicted) windows covering ``tokens``: each token is predicted exactly once.

    The first window predicts the first ``max_len`` tokens after the prefix token; each
    later one predicts the next ``max_len`` tokens (fewer at the end) given the tokens
    before them, so the last window still sees a full context. lm-eval's
    ``get_rolling_token_windows`` with ``context_len=1`` followed by ``make_disjoint_window``.
    """
    windows = []
    first = min(max_len, len(tokens))
    if tokens:
        windows.append(([prefix], tokens[:first]))
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        context = tokens[max(end - max_len - 1, 0) : end - 1]
        windows.append((context[: len(context) - (n - 1)], tokens[done:end]))
        done = end
    return windows


def loglikelihood_rolling(model, tokenizer, texts: Sequence[str], *, batch_size: int = 16) -> list[tuple[float, int]]:
    """(log P(text), number of tokens) per text, over disjoint rolling windows (no truncation)."""
    texts = checks.texts("texts", texts)
    limit = max_length(model, tokenizer)
    prefix = prefix_token_id(tokenizer)
    windows, owner, counts = [], [], []
    for i, text in enumerate(texts):
        tokens = encode(tokenizer, text)
        counts.append(len(tokens))
        for w in rolling_windows(tokens, prefix, limit):
            windows.append(w)
            owner.append(i)
    scores = loglikelihood_tokens(model, windows, batch_size=batch_size, max_len=limit)
    totals = [0.0] * len(texts)
    for i, (ll, _) in zip(owner, scores):
        totals[i] += ll
    return list(zip(totals, counts))


class _StopAtStrings(StoppingCriteria):
    """Marks a sequence done once its generated text contains a stop string."""

    def __init__(self, tokenizer, stops: Sequence[str], start: int):
        self.tokenizer, self.stops, self.start = tokenizer, list(stops), start

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        tails = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in tails], device=input_ids.device)


def end_tokens(model, tokenizer) -> list[int]:
    """The token ids that end a reply: the tokenizer's end token and the model's ``generation_config.eos_token_id``."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    return list(dict.fromkeys([tokenizer.eos_token_id, *configured]))


@torch.no_grad()
def generate_until(
    model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, stop: Sequence[str] = ("\n",),
    batch_size: int = 16,
) -> list[str]:
    """Greedy continuation of each prompt, cut before the first stop string (lm-eval's ``generate_until``).

    Prompts are left-padded in batches (and cut from the left to leave room for
    ``max_new_tokens``); a seq2seq model reads the prompt with its encoder and writes the
    continuation with its decoder. Generation stops early once every sequence of a batch
    has produced a stop string or an end token: the tokenizer's, and those of the model's
    ``generation_config`` (a chat model's end of turn).
    """
    prompts, stop = checks.texts("prompts", prompts), checks.texts("stop", stop)
    model.eval()
    seq2seq = is_seq2seq(model)
    room = max_length(model, tokenizer) - (0 if seq2seq else max_new_tokens)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    outputs = []
    try:
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[i : i + batch_size]), padding=True, return_tensors="pt")
            ids = batch["input_ids"][:, -room:].to(model.device)
            mask = batch["attention_mask"][:, -room:].to(model.device)
            start = 1 if seq2seq else ids.shape[1]  # where the new tokens begin in generate's output
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=end_tokens(model, tokenizer),
                stopping_criteria=StoppingCriteriaList([_StopAtStrings(tokenizer, stop, start)]),
            )
            for text in tokenizer.batch_decode(out[:, start:], skip_special_tokens=True):
                for s in stop:
                    text = text.split(s)[0]
                outputs.append(text)
    finally:
        tokenizer.padding_side = side
    return outputs
