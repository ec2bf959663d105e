"""Chapter 06, instruction tuning: task clusters, templates, the chat format, SFT and LoRA (survey §4).

Modules (being built): ``formatting`` (the chat template and the response-only loss
mask), ``sft`` (supervised fine-tuning with the course loop and with TRL's
``SFTTrainer``), ``lora`` (low-rank adapters from scratch, checked against ``peft``).
"""
