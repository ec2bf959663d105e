"""The reward model (보상 모델): a decoder with a scalar head, read at the last token of prompt and response.

TRL's ``RewardTrainer`` wants a sequence-classification model with one label; for the
course's Llama-style decoder that is ``LlamaForSequenceClassification``, whose backbone
is the decoder's (``model.model``) and whose head ``score`` maps the last real token's
hidden state to one number. :func:`reward_model_from` builds it from a causal LM (the
``instruct`` model, as InstructGPT and LLaMA-2 start their reward models from the
instruction-tuned policy), and :func:`last_token_rewards` reads it, written out.
"""

from __future__ import annotations

import copy
import warnings

import torch
from transformers import LlamaForSequenceClassification


def reward_model_from(decoder, *, seed: int = 0) -> LlamaForSequenceClassification:
    """A reward model with ``decoder``'s backbone weights (copied) and a fresh scalar head (``num_labels=1``).

    The head starts small (normal, std ``initializer_range``, seeded by ``seed``), so the
    first rewards are near 0. ``decoder`` must be a Llama-style causal LM with a pad token.
    """
    config = copy.deepcopy(decoder.config)
    if config.pad_token_id is None:
        raise ValueError("the decoder's config has no pad_token_id; the reward model finds each sequence's "
                         "last token by it")
    config.num_labels = 1
    config.architectures = ["LlamaForSequenceClassification"]
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    model.model.load_state_dict(decoder.model.state_dict())
    return model


def last_token_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """A sequence-classification model's scalar per sequence, ``(batch,)``, from its parts.

    The backbone's last hidden state at each sequence's last real token (right padding:
    the last position where ``attention_mask`` is 1) through the score head: the reward
    of the whole prompt and response.
    """
    hidden = model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    last = attention_mask.sum(1) - 1  # (batch,)
    return model.score(hidden[torch.arange(len(last)), last]).squeeze(-1)


# --------------------------------------------------------------------------- training on pairs with the course loop


def response_row(tokenizer, messages: list[dict], response: str, row_id) -> dict[str, torch.Tensor]:
    """A prompt and one response as ``{"input_ids", "completion_mask"}`` (``(seq,)`` longs), in the chat format.

    The ids are ``render_chat(messages + [assistant: response])``'s; ``completion_mask`` is 1
    on the response's tokens and its ``<|end|>``. An empty response is an error naming the row.
    """
    from ..instruction.formatting import IGNORE, chat_example

    row = chat_example(tokenizer, [*messages, {"role": "assistant", "content": response}], row_id)
    return {"input_ids": row["input_ids"], "completion_mask": (row["labels"] != IGNORE).long()}


def pair_rows(tokenizer, pairs: list[dict], *, max_len: int | None = None) -> list[dict]:
    """Preference pairs (``preferences.comparisons``) as rows ``{"chosen", "rejected", "margin", "flipped"}``.

    ``chosen`` and ``rejected`` are :func:`response_row` dicts. A pair whose responses are
    identical is an error naming its prompt; pairs longer than ``max_len`` tokens are left
    out (the model cannot read them whole), with a warning that counts them.
    """
    rows = []
    for i, p in enumerate(pairs):
        row_id = f"{p.get('prompt_id', i)}"
        if p["chosen"] == p["rejected"]:
            raise ValueError(f"pair {i} (prompt {row_id!r}): the chosen and rejected responses are identical")
        chosen = response_row(tokenizer, p["messages"], p["chosen"], row_id)
        rejected = response_row(tokenizer, p["messages"], p["rejected"], row_id)
        if max_len is not None and max(len(chosen["input_ids"]), len(rejected["input_ids"])) > max_len:
            continue
        rows.append({"chosen": chosen, "rejected": rejected, "margin": float(p.get("margin", 0.0)),
                     "flipped": bool(p.get("flipped", False))})
    if len(rows) < len(pairs):
        warnings.warn(f"pair_rows: {len(pairs) - len(rows)} of {len(pairs)} pairs are longer than max_len={max_len} "
                      "tokens and were left out", stacklevel=2)
    return rows


def pad_sequences(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """:func:`response_row` dicts padded on the right: ``input_ids``, ``attention_mask``, ``completion_mask``."""
    longest = max(len(r["input_ids"]) for r in rows)
    out = {"input_ids": torch.full((len(rows), longest), pad_token_id, dtype=torch.long),
           "attention_mask": torch.zeros(len(rows), longest, dtype=torch.long),
           "completion_mask": torch.zeros(len(rows), longest, dtype=torch.long)}
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        out["input_ids"][i, :n] = r["input_ids"]
        out["attention_mask"][i, :n] = 1
        out["completion_mask"][i, :n] = r["completion_mask"]
    return out


def collate_pairs(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """A batch of pair rows as one padded batch ``(2 * batch, seq)``: the chosen first, then the rejected."""
    batch = pad_sequences([r["chosen"] for r in rows] + [r["rejected"] for r in rows], pad_token_id)
    batch["margin"] = torch.tensor([r["margin"] for r in rows])
    return batch


class PairwiseRewardTrainer(torch.nn.Module):
    """A reward model and its pairwise loss, in the shape the course loop trains: ``forward(**batch).loss``.

    The batch is :func:`collate_pairs`'s; the loss is ``losses.reward_loss`` on the chosen
    and rejected rewards (minus the gold margin when ``use_margin``, LLaMA-2's variant).
    ``save_pretrained`` saves the reward model alone, so the run's ``final/`` loads as a
    ``LlamaForSequenceClassification``.
    """

    def __init__(self, reward_model, *, use_margin: bool = False):
        super().__init__()
        self.reward_model = reward_model
        self.use_margin = use_margin

    def forward(self, input_ids, attention_mask, completion_mask=None, margin=None):
        from types import SimpleNamespace

        from .losses import reward_loss

        rewards = last_token_rewards(self.reward_model, input_ids, attention_mask)
        chosen, rejected = rewards.chunk(2)
        loss = reward_loss(chosen, rejected, margin.clamp(min=0) if self.use_margin else None)
        return SimpleNamespace(loss=loss, chosen=chosen, rejected=rejected)

    def save_pretrained(self, path, state_dict=None, is_main_process: bool = True, **kwargs):
        prefix = "reward_model."
        weights = {k[len(prefix):]: v for k, v in (state_dict or self.state_dict()).items() if k.startswith(prefix)}
        self.reward_model.save_pretrained(path, state_dict=weights, is_main_process=is_main_process, **kwargs)


def train_reward_model(decoder, tokenizer, pairs: list[dict], train_cfg, *, output_dir, seed: int = 0,
                       use_margin: bool = False, max_len: int | None = None) -> tuple[LlamaForSequenceClassification, list]:
    """A reward model from ``decoder`` (:func:`reward_model_from`) trained on ``pairs`` with the course loop.

    Returns the model and the run's log rows (``training.train``'s ``metrics.jsonl``).
    """
    from ..runs import read_metrics
    from ..training import train

    rows = pair_rows(tokenizer, pairs, max_len=max_len)
    if not rows:
        raise ValueError("no preference pairs to train on (all longer than max_len?)")
    model = reward_model_from(decoder, seed=seed)
    model.config.pad_token_id = tokenizer.pad_token_id
    wrapper = PairwiseRewardTrainer(model, use_margin=use_margin)
    result = train(wrapper, rows, train_cfg, output_dir=output_dir, seed=seed, resume=False,
                   collate_fn=lambda b: collate_pairs(b, tokenizer.pad_token_id), tokenizer=tokenizer)
    model.eval()
    return model, read_metrics(result.metrics_path)


@torch.no_grad()
def score_responses(model, tokenizer, messages: list[list[dict]], responses: list[str], *,
                    batch_size: int = 32) -> torch.Tensor:
    """The reward model's score of each (conversation, response), ``(n,)``: the scalar at the response's last token."""
    model.eval()
    rows = [response_row(tokenizer, m, r, i) for i, (m, r) in enumerate(zip(messages, responses))]
    out = []
    for i in range(0, len(rows), batch_size):
        batch = pad_sequences(rows[i : i + batch_size], tokenizer.pad_token_id)
        out.append(last_token_rewards(model, batch["input_ids"], batch["attention_mask"]))
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def pair_accuracy(model, tokenizer, pairs: list[dict], *, batch_size: int = 32) -> dict:
    """How often the reward model scores a pair's ``chosen`` above its ``rejected``.

    ``accuracy``: against the pairs' labels as given (noisy labels included; a perfect
    model reaches ``1 - flipped share``); ``gold_accuracy``: against the rules' order
    (a flipped pair counts when the model prefers its ``rejected``); ``ceiling``: the share
    of unflipped pairs; ``n``.
    """
    if not pairs:
        raise ValueError("no pairs to score")
    chosen = score_responses(model, tokenizer, [p["messages"] for p in pairs], [p["chosen"] for p in pairs],
                             batch_size=batch_size)
    rejected = score_responses(model, tokenizer, [p["messages"] for p in pairs], [p["rejected"] for p in pairs],
                               batch_size=batch_size)
    right = (chosen > rejected).tolist()
    flipped = [bool(p.get("flipped", False)) for p in pairs]
    return {"accuracy": sum(right) / len(pairs), "gold_accuracy": sum(r != f for r, f in zip(right, flipped)) / len(pairs),
            "ceiling": 1 - sum(flipped) / len(pairs), "n": len(pairs)}


def check_same_tokenizer(policy_tokenizer, reward_tokenizer) -> None:
    """A reward model reads the policy's token ids: its tokenizer must be the policy's (same vocabulary)."""
    if policy_tokenizer.get_vocab() != reward_tokenizer.get_vocab():
        raise ValueError(f"the reward model's tokenizer (vocabulary of {len(reward_tokenizer)}) differs from the "
                         f"policy's ({len(policy_tokenizer)}): it would score other tokens than the policy wrote")
