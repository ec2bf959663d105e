"""Build the course's Transformer models from a config.

Models are plain Hugging Face ``transformers`` classes, so ``save_pretrained``,
``generate``, TRL and peft work on them unchanged. Sizes come from the profile's
``model`` section: the same function builds a 0.1M-parameter model for ``ci`` and
a ~125M one for ``gpu``.
"""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from .config import ConfigError, ModelConfig


def llama_ff_width(d_model: int) -> int:
    """Llama's SwiGLU width: 8/3 * d_model rounded up to a multiple of 32."""
    return 32 * -(-(8 * d_model // 3) // 32)


def build_decoder(
    cfg: ModelConfig,
    vocab_size: int,
    *,
    pad_token_id: int | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> PreTrainedModel:
    """A freshly initialised decoder-only language model described by ``cfg``.

    ``arch="llama"`` gives RMSNorm, rotary position embeddings and SwiGLU;
    ``arch="gpt2"`` gives LayerNorm, learned positions and GELU.
    """
    if cfg.d_model % cfg.n_head:
        raise ConfigError(f"'model.d_model' ({cfg.d_model}) must be divisible by 'model.n_head' ({cfg.n_head})")
    ids = dict(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    if cfg.arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.d_model,
            intermediate_size=cfg.d_ff or llama_ff_width(cfg.d_model),
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            max_position_embeddings=cfg.max_seq_len,
            attention_dropout=cfg.dropout,
            tie_word_embeddings=True,
            **ids,
        )
        return LlamaForCausalLM(config)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=cfg.d_model,
        n_inner=cfg.d_ff or 4 * cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_positions=cfg.max_seq_len,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        **ids,
    )
    return GPT2LMHeadModel(config)


def count_parameters(model: PreTrainedModel) -> int:
    """Number of distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
