"""Chapter 06, instruction tuning: task clusters, templates, the chat format, SFT and LoRA (survey §4).

Modules: ``clusters`` and ``templates`` (FLAN-style task clusters from the world, ten
instruction templates per task and language, two held out; mixtures), ``formatting``
(the chat template and the response-only loss mask), ``sft`` (supervised fine-tuning
with the course loop and with TRL's ``SFTTrainer``), ``lora`` (low-rank adapters from
scratch, checked against ``peft``), ``instruct`` (the ``instruct`` recipe: clusters and
reading exercises about invented people; chat answers and exact match), ``external``
(``instruct.source``: a JSON Lines file or a Hugging Face dataset instead of the world),
``experiments`` (short SFT runs: cluster count, template diversity, cross-lingual
transfer, LoRA against full fine-tuning; base against instruct on chapter 05's harness).
"""

from .clusters import (
                          CLUSTER_OF,
                          CLUSTERS,
                          SYSTEM,
                          instruction_examples,
                          instruction_row,
                          mix,
                          task_sources,
)
from .experiments import (
                          HARNESS_TASKS,
                          cluster_count,
                          cross_lingual,
                          eval_rows,
                          harness_comparison,
                          lora_vs_full,
                          peak_step_memory,
                          short_sft,
                          template_diversity,
)
from .external import external_conversations
from .formatting import (
                          CHAT_TEMPLATE,
                          IGNORE,
                          ROLE_TOKENS,
                          add_chat_template,
                          chat_example,
                          check_messages,
                          render_chat,
                          to_prompt_completion,
)
from .instruct import (
                          DECLINES,
                          READ,
                          chat_answers,
                          declines,
                          exact_match,
                          fresh_reading_rows,
                          honesty,
                          reading_conversations,
                          training_conversations,
)
from .lora import LoRALinear, apply_lora, merge_lora, train_token_rows, trainable_parameters
from .sft import check_examples, course_order, pad_rows, sft_own, sft_rows, sft_trl
from .templates import HELD_OUT, Template, render, template, templates

__all__ = ["HARNESS_TASKS", "harness_comparison", "cluster_count", "cross_lingual", "eval_rows", "lora_vs_full", "peak_step_memory", "short_sft",
           "template_diversity", "DECLINES", "declines", "honesty", "external_conversations", "CLUSTER_OF", "CLUSTERS", "SYSTEM", "instruction_examples", "instruction_row", "mix", "task_sources",
           "HELD_OUT", "Template", "render", "template", "templates", "READ", "chat_answers", "exact_match", "fresh_reading_rows",
           "reading_conversations", "training_conversations", "CHAT_TEMPLATE", "IGNORE", "ROLE_TOKENS",
           "add_chat_template", "chat_example", "check_messages", "render_chat", "to_prompt_completion",
           "LoRALinear", "apply_lora", "merge_lora", "train_token_rows", "trainable_parameters", "check_examples", "course_order",
           "pad_rows", "sft_own", "sft_rows", "sft_trl"]
