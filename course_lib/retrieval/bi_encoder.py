"""The course's bi-encoder (양방향 인코더): ``base`` trained contrastively on world (question, passage) pairs.

    zoo.get("bi-encoder")   an Encoder: base's decoder body (no LM head), pooled by
                            retrieval.pooling, trained with in-batch negatives

Training (DPR's recipe, Karpukhin et al. 2020): a batch holds B questions and, for each,
one passage that states its fact. The B x B matrix of cosines q_i . p_j / temperature is a
classification problem per row: passage i is the answer among the B passages, the other
B - 1 are negatives that cost nothing to compute. A passage that also answers question i
(two questions about one fact, or a passage stating both facts) is masked out of row i
rather than pushed away. One encoder embeds questions and passages alike; the loop is the
course's own (``training.train``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import AutoModel, AutoTokenizer

from .. import zoo
from ..config import Config
from ..runs import FINAL_DIR
from ..training import train
from .corpus import training_pairs, world_corpus
from .dense import Encoder

RUN_DIR = "run"


class InBatchContrastive(torch.nn.Module):
    """The training wrapper: ``forward(query_ids, query_mask, input_ids, attention_mask, positives)`` returns ``.loss``.

    ``query_ids`` and ``query_mask`` (B, Tq): B questions; ``input_ids`` and ``attention_mask``
    (B, Tp): their B passages, padded apart from the short questions (so the training log's
    token count is the passages'). ``positives`` (B, B) bool: passage j answers question i
    (the diagonal is True). Loss: cross-entropy of each question's row of cosines /
    ``temperature`` against its own passage.
    """

    def __init__(self, encoder: Encoder, temperature: float):
        super().__init__()
        self.model, self.encoder, self.temperature = encoder.model, encoder, temperature

    def forward(self, query_ids, query_mask, input_ids, attention_mask, positives):
        q = self.encoder.embed(query_ids, query_mask)  # (B, d)
        p = self.encoder.embed(input_ids, attention_mask)  # (B, d)
        logits = q @ p.T / self.temperature  # (B, B)
        others = positives & ~torch.eye(len(q), dtype=torch.bool, device=q.device)
        logits = logits.masked_fill(others, float("-inf"))  # another right answer is not a negative
        return SimpleNamespace(loss=torch.nn.functional.cross_entropy(logits, torch.arange(len(q), device=q.device)))

    def save_pretrained(self, path, state_dict=None, is_main_process: bool = True):
        """Save the encoder's model alone (``AutoModel.from_pretrained`` reads it back)."""
        weights = {k.removeprefix("model."): v for k, v in (state_dict or self.state_dict()).items()
                   if k.startswith("model.")}
        self.model.save_pretrained(path, state_dict=weights, is_main_process=is_main_process)


def collate(rows: list[dict], encoder: Encoder) -> dict[str, torch.Tensor]:
    """A training batch from :func:`corpus.training_pairs` rows: questions, passages and ``positives``."""
    queries = encoder.batch([r["query"] for r in rows])
    batch = encoder.batch([r["passage"] for r in rows])
    batch["query_ids"], batch["query_mask"] = queries["input_ids"], queries["attention_mask"]
    batch["positives"] = torch.tensor([[c["passage_id"] in r["relevant"] for c in rows] for r in rows])
    return batch


def train_bi_encoder(cfg: Config, out: Path) -> Encoder:
    """``base``'s decoder body trained on the world's training pairs for ``retrieval.train``; saved under ``out``."""
    base = zoo.get("base", cfg)
    body = base.model.base_model  # LlamaModel: the decoder without its LM head
    body.config.use_cache = False
    encoder = Encoder(body, base.tokenizer, cfg.retrieval.pooling, name="course bi-encoder")
    rows = training_pairs(cfg, world_corpus(cfg), seed=cfg.run.seed)
    train(InBatchContrastive(encoder, cfg.retrieval.temperature), rows, cfg.retrieval.train,
          output_dir=out / RUN_DIR, collate_fn=lambda b: collate(b, encoder), seed=cfg.run.seed, resume=False,
          config=cfg, tokenizer=base.tokenizer)
    (out / "encoder.json").write_text(json.dumps({"pooling": cfg.retrieval.pooling, "pairs": len(rows)}),
                                      encoding="utf-8")
    encoder.model.eval()
    return encoder


def _load(path: Path, cfg: Config) -> Encoder:
    settings = json.loads((path / "encoder.json").read_text(encoding="utf-8"))
    final = path / RUN_DIR / FINAL_DIR
    return Encoder(AutoModel.from_pretrained(final), AutoTokenizer.from_pretrained(final), settings["pooling"],
                   name="course bi-encoder")


@zoo.register(
    "bi-encoder", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation", "retrieval"),
    deps=("base",), description="base's decoder trained as a bi-encoder with in-batch negatives (chapter 10)",
)
def _build(cfg: Config, out: Path) -> None:
    train_bi_encoder(cfg, out)
    shutil.rmtree(out / RUN_DIR / "checkpoints", ignore_errors=True)  # optimizer state is only for resuming
