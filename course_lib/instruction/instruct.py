"""The ``instruct`` model: ``base`` fine-tuned on the task clusters and on reading exercises, in the chat format.

    zoo.get("instruct")   a TrainedModel: base + SFT (response-only loss) on
                          clusters.mix(instruction_examples(train)) + reading_conversations

Two kinds of training rows, both chat conversations (system, user, assistant):

- the task clusters' ``train`` rows (training facts, training templates), at most
  ``instruct.per_task_cap`` per task and language, mixed as FLAN mixes them;
- ``instruct.reading_examples`` reading exercises about *invented* people and events
  (``reading.py``): a passage or retrieved-passage lines, a question, the answer, which
  only the prompt holds; some need two statements composed. ``base`` never learned to
  copy from its prompt (chapter 03); this is where it learns, directly, what chapter 10's
  retrieval-augmented answers need. No invented name is a world name or one of the
  fresh names that evaluations ask about (``world.fresh_names``).

:func:`chat_answers` asks a model in the chat format (greedy, up to ``<|end|>``);
:func:`exact_match` scores rows by cluster and language.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from .. import zoo
from ..config import Config, is_offline
from ..models import TrainedModel
from .clusters import SYSTEM, instruction_examples, mix
from .external import external_conversations
from .formatting import END_TOKEN, add_chat_template, chat_example, render_chat
from .reading import READ, reading_conversations
from .sft import sft_own

logger = logging.getLogger(__name__)
# What the world's answers to false-premise and unanswerable questions say (world.tasks): a reply that says one of
# these corrects or declines; one that says neither answers.
DECLINES = {"en": ("false premise", "cannot be answered"), "ko": ("전제가 사실과 다릅니다", "답할 수 있는 자료가 없습니다")}


def training_conversations(cfg: Config) -> list[dict]:
    """``instruct``'s training rows: the clusters' mixture and the reading exercises (or ``instruct.source``'s rows)."""
    from ..world import build_world

    p = cfg.instruct
    if p.source:
        return external_conversations(p.source, offline=is_offline(cfg))
    tasks = mix(instruction_examples(cfg, split="train", per_task_cap=p.per_task_cap, seed=cfg.run.seed),
                cap=p.per_task_cap, seed=cfg.run.seed)
    reading = reading_conversations(build_world(cfg.world), p.reading_examples, seed=cfg.run.seed)
    return tasks + reading


@torch.no_grad()
def chat_answers(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int = 48,
                 batch_size: int = 32) -> list[str]:
    """The model's greedy reply to each conversation (its last turn is the user's), up to ``<|end|>``."""
    model.eval()
    stop = [tokenizer.convert_tokens_to_ids(END_TOKEN), tokenizer.eos_token_id]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    try:
        for i in range(0, len(conversations), batch_size):
            prompts = [render_chat(c, add_generation_prompt=True) for c in conversations[i : i + batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tokenizer.pad_token_id)
            out += [t.strip() for t in tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :],
                                                             skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return out


def exact_match(model, tokenizer, rows: list[dict], *, batch_size: int = 32, max_new_tokens: int = 48) -> list[dict]:
    """Each row asked without its assistant turn: ``{"id", "cluster", "lang", "answer", "output", "correct"}``.

    ``correct``: the reply, up to a final period, equals the row's answer or the row's own
    assistant turn (a template may wrap the answer: "The answer is X.").
    """
    outputs = chat_answers(model, tokenizer, [r["messages"][:-1] for r in rows], batch_size=batch_size,
                           max_new_tokens=max_new_tokens)
    strip = lambda text: text.strip().rstrip(".")
    return [{"id": r["id"], "cluster": r.get("cluster", "reading"), "lang": r["lang"], "answer": r["answer"],
             "output": o, "correct": strip(o) in (strip(r["answer"]), strip(r["messages"][-1]["content"]))}
            for r, o in zip(rows, outputs)]


def declines(reply: str, lang: str) -> bool:
    """Whether ``reply`` corrects a false premise or declines to answer (it says one of ``DECLINES[lang]``)."""
    return any(marker in reply for marker in DECLINES[lang])


def honesty(model, tokenizer, cfg: Config, split: str = "test", *, batch_size: int = 32) -> dict:
    """How often the model corrects or declines when it should, and answers when it can.

    ``declined``: the share of the ``premise_check`` cluster's rows (false premise,
    unanswerable) whose reply corrects or declines; ``answered``: the share of open-book
    questions (``qa_open``, the answer in the passage) whose reply does not, and
    ``answered_correctly`` the share answered with the right answer. Per language, with
    the scored rows (``rows``).
    """
    premise = instruction_examples(cfg, clusters=["premise_check"], split=split, seed=cfg.run.seed)
    answerable = [r for r in instruction_examples(cfg, clusters=["reading_comprehension"], split=split,
                                                  seed=cfg.run.seed) if r["task"] == "qa_open"]
    scored = exact_match(model, tokenizer, premise + answerable, batch_size=batch_size)
    for r, s in zip(premise + answerable, scored):
        s |= {"task": r["task"], "declined": declines(s["output"], s["lang"])}
    out: dict = {"rows": scored}
    for lang in ("en", "ko"):
        mine = [s for s in scored if s["lang"] == lang]
        should = [s["declined"] for s in mine if s["cluster"] == "premise_check"]
        can = [s for s in mine if s["task"] == "qa_open"]
        out[lang] = {"declined": sum(should) / max(1, len(should)), "n_premise": len(should),
                     "answered": sum(not s["declined"] for s in can) / max(1, len(can)),
                     "answered_correctly": sum(s["correct"] for s in can) / max(1, len(can)), "n_answerable": len(can)}
    return out


def fresh_reading_rows(cfg: Config, split: str = "test") -> list[dict]:
    """The fresh passages of the clusters' ``split`` (people held out of training), as reading exercises.

    The same prompt as ``reading_conversations`` (``READ``, the passage, the question), so
    the score says whether the model reads, not whether it knows a template.
    """
    from .clusters import task_sources

    rows = []
    for s in task_sources(cfg, "fresh_reading"):
        if s.split == split:
            messages = [{"role": "system", "content": SYSTEM[s.lang]},
                        {"role": "user", "content": f"{READ[s.lang]}\n{s.slots['context']}\n{s.slots['question']}"},
                        {"role": "assistant", "content": s.slots["answer"]}]
            rows.append({"id": f"fresh/{s.key}/{s.lang}", "lang": s.lang, "messages": messages,
                         "answer": s.slots["answer"]})
    return rows


def _load(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path)


@zoo.register(
    "instruct", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation", "instruct"),
    deps=("base",),
    description="base fine-tuned on the task clusters and on reading exercises, chat format (chapter 06)",
)
def _build(cfg: Config, out: Path) -> None:
    base = zoo.get("base", cfg)
    model, tokenizer = base.model, add_chat_template(base.tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    # a reply ends at <|end|>: every generate() call (the harness's too) stops there, as chat models' configs say
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(END_TOKEN), tokenizer.eos_token_id]
    rows, skipped = [], []
    for r in training_conversations(cfg):
        row = chat_example(tokenizer, r["messages"], r["id"])
        fits = len(row["input_ids"]) <= cfg.model.max_seq_len
        rows += [row] if fits else []
        skipped += [] if fits else [{"id": r["id"], "tokens": len(row["input_ids"])}]
    if skipped:  # longer than the model's context: listed, and said, not silently lost
        logger.warning("instruct: %d training rows longer than model.max_seq_len=%d left out (skipped.json)",
                       len(skipped), cfg.model.max_seq_len)
    (out / "skipped.json").write_text(json.dumps(skipped, indent=1), encoding="utf-8")
    sft_own(model, rows, cfg.instruct.train, output_dir=out, seed=cfg.run.seed, resume=False, config=cfg,
            tokenizer=tokenizer)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
