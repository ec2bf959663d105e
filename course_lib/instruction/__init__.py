"""Chapter 06, instruction tuning: task clusters, templates, the chat format, SFT and LoRA (survey §4).

Modules (being built): ``formatting`` (the chat template and the response-only loss
mask), ``sft`` (supervised fine-tuning with the course loop and with TRL's
``SFTTrainer``), ``lora`` (low-rank adapters from scratch, checked against ``peft``).
"""

from .formatting import (CHAT_TEMPLATE, IGNORE, ROLE_TOKENS, add_chat_template, chat_example, check_messages, render_chat,
                         to_prompt_completion)
from .lora import LoRALinear, apply_lora, merge_lora, trainable_parameters
from .sft import check_examples, course_order, pad_rows, sft_own, sft_rows, sft_trl

__all__ = ["CHAT_TEMPLATE", "IGNORE", "ROLE_TOKENS", "add_chat_template", "chat_example", "check_messages", "render_chat",
           "to_prompt_completion", "LoRALinear", "apply_lora", "merge_lora", "trainable_parameters", "check_examples",
           "course_order", "pad_rows", "sft_own", "sft_rows", "sft_trl"]
