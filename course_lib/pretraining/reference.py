"""A real pretrained model on chapter 03's tests: the scale story measured, not told.

    zoo.get("reference-icl")   {"model", "parameters", "induction", "fresh"}: the reference model
                               (``zoo.reference_model``, SmolLM2-135M-Instruct by default) on the
                               repeated-token test and on the fresh-passage curve

The reference model knows nothing of the course world, so the fair comparison with
``base`` is what needs no world knowledge: copying repeated tokens, and answering a
question from the passage before it. Its curve is cached as an artifact because a
135M-parameter model reads the prompts about 100 times slower than ``base`` does
(about a minute per ``k`` on 2 cores), too slow for the notebook's budget. English
only: its tokenizer has few Korean merges, so a Korean prompt is several times longer.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import zoo
from ..config import Config
from ..models import count_parameters, load_reference
from .icl import icl_accuracy
from .induction import repeated_tokens_loss

REFERENCE_SHOTS = (0, 1, 2, 4)
REFERENCE_QUESTIONS = 50


def reference_scores(cfg: Config, *, shots=REFERENCE_SHOTS, num_questions: int = REFERENCE_QUESTIONS) -> dict:
    """The reference model's induction test (ordinary tokens: ids above its special tokens) and fresh-passage curve."""
    ref = load_reference(cfg)
    special = ref.tokenizer.all_special_ids or [0]
    return {"model": cfg.zoo.reference_model, "parameters": count_parameters(ref.model),
            "induction": repeated_tokens_loss(ref.model, low=max(special) + 1),
            "fresh": icl_accuracy(ref.model, ref.tokenizer, cfg, facts="fresh", shots=shots,
                                  num_questions=num_questions, langs=("en",), batch_size=8)}


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / "scores.json").read_text(encoding="utf-8"))


@zoo.register(
    "reference-icl", load=_load, sections=("run", "world", "zoo"),
    description="a real pretrained model (zoo.reference_model) on the induction test and the fresh-passage curve",
)
def _build(cfg: Config, out: Path) -> None:
    (out / "scores.json").write_text(json.dumps(reference_scores(cfg), indent=2), encoding="utf-8")
