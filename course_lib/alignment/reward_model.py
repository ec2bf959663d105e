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
