"""The chat format (대화 형식) of the course and the response-only loss: what an instruction-tuned model reads.

A conversation is a list of messages ``{"role": ..., "content": ...}`` with roles
``system``, ``user`` and ``assistant``. The course tokenizer (chapter 03) already holds
one special token per role and one that ends a turn, so a conversation is written as::

    <|system|>You answer briefly.<|end|><|user|>Where was Mira Kessel born?<|end|><|assistant|>In Lunport.<|end|>

Each turn is a role token, the content as it is, and ``<|end|>``. Nothing else is added:
no newline after the role token, no space before the content. The reason is the
tokenizer: it splits the text at special tokens *before* it applies any merge, so the
tokens of a conversation are exactly the tokens of its pieces put end to end. A newline
after ``<|assistant|>`` would sit in the same piece as the answer, and an answer that
starts with a newline or a space would merge with it into one token that is half prompt,
half response. With special tokens at every boundary no token ever straddles one, which
is what lets :func:`chat_example` mark the response tokens by counting pieces, and what
lets :func:`to_prompt_completion` cut a conversation into two strings that tokenize the
same apart as together.

Three forms of one example, all built here:

- the Jinja ``CHAT_TEMPLATE`` that ``tokenizer.apply_chat_template`` renders (what every
  Hugging Face tool, TRL included, uses), with the assistant turns inside
  ``{% generation %}`` so that ``return_assistant_tokens_mask=True`` marks them;
- :func:`chat_example`: token ids and labels for the course loop, with ``-100`` (not
  scored) on every token the model does not have to produce: system and user turns and
  the role tokens. Only the assistant's words and its ``<|end|>`` (so that it learns to
  stop) are scored: the *response-only loss*;
- :func:`to_prompt_completion`: the same conversation as two strings, everything up to
  the last answer and the answer, the prompt-completion form TRL's ``SFTTrainer`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .. import checks
from ..tokenization import CHAT_TOKENS, EOT, PAD

SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN, END_TOKEN = CHAT_TOKENS
ROLE_TOKENS = {"system": SYSTEM_TOKEN, "user": USER_TOKEN, "assistant": ASSISTANT_TOKEN}
IGNORE = -100  # the label of a token that is not scored (PyTorch's cross_entropy ignore_index)

# The Jinja twin of `render_chat`, written out so a learner can read it. `{% generation %}` marks the characters
# that `apply_chat_template(..., return_assistant_tokens_mask=True)` reports as the assistant's, and that TRL's
# `assistant_only_loss` trains on: the answer and its `<|end|>`, not the `<|assistant|>` that opens the turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "<|system|>{{ message['content'] }}<|end|>"
    "{%- elif message['role'] == 'user' -%}"
    "<|user|>{{ message['content'] }}<|end|>"
    "{%- elif message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "{{ raise_exception('unknown role ' ~ message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

# Text that the tokenizer would read as a special token: in a message it would end the turn early or forge a role.
_SPECIAL_TEXT = re.compile("|".join(re.escape(t) for t in (PAD, EOT, *CHAT_TOKENS)) + r"|<extra_id_\d+>")


def add_chat_template(tokenizer):
    """Set the course's ``CHAT_TEMPLATE`` on ``tokenizer`` (in place) and return it.

    The template writes the chat tokens as text; they must be special tokens of
    ``tokenizer`` (the course tokenizer has them), or they would be split into bytes.
    ``save_pretrained`` then stores the template with the tokenizer.
    """
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.all_special_tokens]
    if missing:
        raise ValueError(f"the tokenizer has no special token for {missing}; the chat template needs {CHAT_TOKENS}")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def check_messages(messages, row_id) -> list[Mapping]:
    """``messages`` as a list, after checking that it is a conversation the chat format can write.

    Each message is a mapping with a ``role`` in ``ROLE_TOKENS`` and a ``str`` ``content``
    that holds no special-token text (``"<|end|>"`` inside a message would end its turn);
    at least one turn is the assistant's, and no assistant turn is empty: a row without a
    response has nothing to learn from. Every error is a ``ValueError`` that names
    ``row_id`` (the row's id in its dataset), the message's index and the problem.
    """
    messages = checks.sequence(f"row {row_id!r}: messages", messages, "messages")
    if not messages:
        raise ValueError(f"row {row_id!r}: the conversation has no messages")
    for i, message in enumerate(messages):
        where = f"row {row_id!r}, message {i}"
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"{where}: expected a dict with 'role' and 'content', got {message!r:.60}")
        role, content = message["role"], message["content"]
        if role not in ROLE_TOKENS:
            raise ValueError(f"{where}: unknown role {role!r}; expected one of {', '.join(ROLE_TOKENS)}")
        if not isinstance(content, str):
            raise ValueError(f"{where} ({role}): content must be a str, got {checks.type_name(content)}")
        if found := _SPECIAL_TEXT.search(content):
            raise ValueError(f"{where} ({role}): content holds the special token {found.group()!r}")
        if role == "assistant" and not content.strip():
            raise ValueError(f"{where}: the assistant's response is empty")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"row {row_id!r}: no assistant turn; a row without a response has nothing to train on")
    return messages


def render_chat(messages, *, add_generation_prompt: bool = False) -> str:
    """The conversation as text, in plain Python: what ``CHAT_TEMPLATE`` renders (a test checks they agree).

    ``add_generation_prompt`` appends ``<|assistant|>``, the cue for a model to answer.
    ``messages`` are not checked here; :func:`check_messages` does that.
    """
    text = "".join(ROLE_TOKENS[m["role"]] + m["content"] + END_TOKEN for m in messages)
    return text + ASSISTANT_TOKEN if add_generation_prompt else text


def chat_example(tokenizer, messages, row_id) -> dict[str, torch.Tensor]:
    """One conversation as a training row for the course loop: ``{"input_ids", "labels"}``, both ``(seq,)`` longs.

    The ids are those of ``render_chat(messages)``, built piece by piece: the role token,
    the content's tokens, ``<|end|>``. ``labels`` copies the ids of the assistant's content
    and its ``<|end|>`` and is ``IGNORE`` (-100) everywhere else, so the loss averages over
    the response tokens only (every assistant turn of a multi-turn conversation counts).
    The causal LM shifts labels itself: the label at position ``t`` is predicted from ``<= t-1``.
    """
    messages = check_messages(messages, row_id)
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    input_ids, labels = [], []
    for message in messages:
        role_id = tokenizer.convert_tokens_to_ids(ROLE_TOKENS[message["role"]])
        body = tokenizer(message["content"], add_special_tokens=False)["input_ids"] + [end_id]
        input_ids += [role_id, *body]
        labels += [IGNORE, *(body if message["role"] == "assistant" else [IGNORE] * len(body))]
    return {"input_ids": torch.tensor(input_ids), "labels": torch.tensor(labels)}


def to_prompt_completion(messages, row_id=None) -> dict[str, str]:
    """The conversation as ``{"prompt", "completion"}`` strings: TRL's prompt-completion form of the same example.

    The completion is the last turn, which must be the assistant's: its content and
    ``<|end|>``. The prompt is everything before it, ending with ``<|assistant|>`` (the
    generation prompt), so ``prompt + completion == render_chat(messages)``.

    TRL joins the two as plain strings and tokenizes the join, then takes the completion
    to start where the tokens of the prompt alone stop matching. Where the cut falls
    matters: ``"Answer:"`` + ``" Paris"`` and ``"Answer: "`` + ``"Paris"`` join to the same
    text, but in the second the prompt's trailing space is a token of its own that the
    joined text merges into ``" Paris"``. Here the cut is just after a special token, so
    the answer keeps its own leading space (if any) and nothing merges across the cut.
    """
    messages = check_messages(messages, row_id)
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"row {row_id!r}: the last message is the {messages[-1]['role']}'s; the completion "
                         "is the assistant's response, so the conversation must end with it")
    return {"prompt": render_chat(messages[:-1], add_generation_prompt=True),
            "completion": messages[-1]["content"] + END_TOKEN}
