"""Chapter 03, decoder pretraining: the course tokenizer, packed data, the ``base`` model and what it learned.

The pipeline, each step a function a notebook can call on its own::

    documents      corpus_documents(cfg)            world documents (in_pretraining) and/or a real corpus
    split          split_documents(docs, ...)       held-out documents for perplexity, by duplicate cluster
    tokenizer      zoo.get("tokenizer")             byte-level BPE on the training documents
    blocks         pack(token_lists, block_size)    documents + <|endoftext|>, concatenated, cut into blocks
    model          zoo.get("base")                  build_decoder(cfg.model) trained by training.train
    evaluation     perplexity, fact_recall, icl_accuracy, repeated_tokens_loss (induction heads)
    copying        learn_to_copy(cfg)               a tiny model on repeated random tokens: induction heads form

Chapter 04 adds T5's span corruption (``random_spans_noise_mask``, ``corrupt_spans``,
``SpanCorruptedBlocks``) and the ``t5`` encoder-decoder (``zoo.get("t5")``), pretrained
on the same packed blocks as ``base``.

``pretrain.corpus=curated`` reads chapter 02's curated documents (the zoo artifact
``curated``) instead of the raw ones. ``pretrain.source`` (else ``data.source``)
may name a local ``.jsonl`` file, a text folder or ``hf:<name>[:<config>]``, which is
streamed (the ``gpu`` profile's real corpus), read after the world's documents;
``pretrain.max_documents`` caps what is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5ForConditionalGeneration,
)

from . import zoo
from .config import Config, ConfigError
from .models import build_decoder, build_encoder_decoder
from .tokenization import tokens_per_character, train_tokenizer
from .tour import TrainedModel
from .training import train

TOKEN_FILES = {"train": "train.bin", "eval": "eval.bin"}


# --------------------------------------------------------------------------- documents


def _offline(cfg: Config) -> bool:
    return cfg.zoo.offline or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def stream_hf(source: str, *, offline: bool) -> Iterator[dict]:
    """Rows of the ``train`` split of ``hf:<name>[:<config>]``, streamed (nothing is downloaded whole).

    ``<name>`` may be a local folder of data files (JSON Lines, Parquet, ...), which is read
    even offline; a Hub name is refused while offline (``zoo.offline`` or ``HF_HUB_OFFLINE``).
    """
    import datasets

    from .world import WorldDataError
    from .world.hangul import detect_lang

    name, _, subset = source[3:].partition(":")
    if offline and not Path(name).expanduser().is_dir():
        raise WorldDataError(
            f"source {source!r} is a Hugging Face Hub dataset, but the course is offline "
            "(zoo.offline=true or HF_HUB_OFFLINE=1). Set zoo.offline=false to stream it, "
            "or point pretrain.source at a local .jsonl file, text folder or dataset folder."
        )
    stream = datasets.load_dataset(name, subset or None, split="train", streaming=True)
    for i, row in enumerate(stream):
        if "text" not in row:
            raise WorldDataError(f"source {source!r}: rows have no 'text' field ({sorted(row)})")
        yield {"id": str(row.get("id", f"{Path(name).name}-{i}")), "text": row["text"],
               "lang": row.get("lang") or detect_lang(row["text"]), "dup_cluster": "", "fact_ids": []}


def corpus_documents(cfg: Config) -> Iterator[dict]:
    """The pretraining documents as dicts with at least ``id``, ``text``, ``lang`` (lazy for streamed sources).

    The source is ``pretrain.source``, or ``data.source`` when that is empty:

    - ``world``: the world's documents with ``in_pretraining`` (news after the knowledge
      cutoff is excluded); with ``pretrain.corpus=curated``, chapter 02's curated ones
      (zoo artifact ``curated``) instead;
    - a ``.jsonl`` file or text folder: every document in it (``world.load_external``);
    - ``hf:<name>[:<config>]``: the dataset's ``train`` split, streamed.

    An external source comes after the world's documents when ``pretrain.with_world``.
    At most ``pretrain.max_documents`` documents in all (0: no limit).
    """
    from .world import load, load_external

    source = cfg.pretrain.source or cfg.data.source
    parts: list[Iterable[dict]] = []
    if source == "world" or cfg.pretrain.with_world:
        if cfg.pretrain.corpus == "curated":
            parts.append(zoo.get("curated", cfg))
        else:
            world_cfg = cfg if cfg.data.source == "world" else _with_world_source(cfg)
            parts.append(d for d in load("documents", world_cfg) if d["in_pretraining"])
    if source != "world":
        parts.append(stream_hf(source, offline=_offline(cfg)) if source.startswith("hf:")
                     else load_external(source, offline=_offline(cfg)))
    return itertools.islice(itertools.chain.from_iterable(parts), cfg.pretrain.max_documents or None)


def _with_world_source(cfg: Config) -> Config:
    import copy

    world_cfg = copy.deepcopy(cfg)
    world_cfg.data.source = "world"
    return world_cfg


def is_held_out(doc: dict, eval_fraction: float, seed: int = 0) -> bool:
    """Whether ``doc`` is held out for evaluation: a stable hash of its duplicate cluster (else its id).

    Hashing the cluster keeps every copy of a page on the same side, so no held-out
    text leaks into training through its duplicates.
    """
    key = doc.get("dup_cluster") or doc["id"]
    h = int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big")
    return h / 2**64 < eval_fraction


def split_documents(docs: Iterable[dict], eval_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, eval) lists of documents; see ``is_held_out``."""
    train_docs, eval_docs = [], []
    for doc in docs:
        (eval_docs if is_held_out(doc, eval_fraction, seed) else train_docs).append(doc)
    return train_docs, eval_docs


# --------------------------------------------------------------------------- packing


def pack(token_lists: Iterable[list[int]], block_size: int, eos_id: int) -> list[list[int]]:
    """Documents' tokens, each followed by ``eos_id``, concatenated and cut into blocks of ``block_size``.

    The last partial block is dropped. A block may start mid-document and hold
    several documents; ``<|endoftext|>`` tells the model where one ends. Example
    (``block_size=4``, eos 0): ``[[5, 6, 7], [8, 9], [3]]`` -> ``[[5, 6, 7, 0], [8, 9, 0, 3]]``.
    """
    stream = [t for tokens in token_lists for t in (*tokens, eos_id)]
    return [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def write_tokens(texts: Iterable[str], tokenizer, path: str | Path, *, batch_size: int = 512) -> int:
    """Append the tokens of ``texts`` (each followed by ``<|endoftext|>``) to the binary file ``path``.

    The file is a flat array of little-endian uint32 (as nanoGPT's ``train.bin``), so a
    corpus larger than memory is packed by reading it as a memory map (``PackedBlocks``).
    Returns the number of tokens written.
    """
    eos = tokenizer.eos_token_id
    total = 0
    with open(path, "ab") as f:
        for batch in _batched(texts, batch_size):
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            flat = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype="<u4")
            f.write(flat.tobytes())
            total += flat.size
    return total


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


def document_positions(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Position ids that restart at 0 at every ``eos_id``, along the last dimension.

    Each ``<|endoftext|>`` opens the next document, as it opens every prompt the course
    gives a model. Example (eos 0): ``[5, 6, 0, 7, 8, 0, 9]`` -> ``[0, 1, 0, 1, 2, 0, 1]``.
    """
    idx = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
    starts = torch.where(input_ids == eos_id, idx, torch.zeros_like(idx)).cummax(dim=-1).values
    return idx - starts


class PackedBlocks(torch.utils.data.Dataset):
    """Consecutive ``block_size`` blocks of a token file: row ``i`` is tokens ``[i*B, (i+1)*B)``.

    Each row is ``{"input_ids", "labels"}`` with ``labels == input_ids``: the model
    shifts them itself, so position t is trained to predict token t + 1. With ``eos_id``
    a row also has ``position_ids`` from ``document_positions``: positions restart with
    every document, and ``transformers`` then masks attention between the documents of a
    block (each token sees only earlier tokens of its own document, as Llama 3 trains).
    """

    def __init__(self, path: str | Path, block_size: int, eos_id: int | None = None):
        self.tokens = np.memmap(path, dtype="<u4", mode="r") if Path(path).stat().st_size else np.zeros(0, "<u4")
        self.block_size, self.eos_id = block_size, eos_id

    def __len__(self) -> int:
        return len(self.tokens) // self.block_size

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        block = torch.from_numpy(self.tokens[i * self.block_size : (i + 1) * self.block_size].astype(np.int64))
        row = {"input_ids": block, "labels": block.clone()}
        if self.eos_id is not None:
            row["position_ids"] = document_positions(block, self.eos_id)
        return row


def tokenizer_fragmentation(cfg: Config, vocab_size: int | None = None) -> list[dict]:
    """Tokens per character of held-out English and Korean text under two vocabularies of one size.

    ``english-only`` is a byte-level BPE trained on the English training documents,
    ``bilingual`` one trained on all of them. Rows ``{"vocabulary", "lang", "tokens_per_char"}``.
    Korean under the English-only vocabulary falls back to about three byte tokens per
    syllable (UTF-8 spends three bytes on each Hangul syllable).
    """
    vocab_size = vocab_size or cfg.pretrain.vocab_size
    train_docs, eval_docs = split_documents(corpus_documents(cfg), cfg.pretrain.eval_fraction, cfg.run.seed)
    held_out = {lang: [d["text"] for d in eval_docs if d["lang"] == lang] for lang in ("en", "ko")}
    corpora = {"english-only": [d["text"] for d in train_docs if d["lang"] == "en"],
               "bilingual": [d["text"] for d in train_docs]}
    rows = []
    for name, texts in corpora.items():
        tok = train_tokenizer(texts, vocab_size, num_sentinels=0)
        for lang, eval_texts in held_out.items():
            if eval_texts:
                rows.append({"vocabulary": name, "lang": lang, "tokens_per_char": tokens_per_character(tok, eval_texts)})
    return rows


# --------------------------------------------------------------------------- training


def new_model(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """An untrained decoder of the ``model`` size for ``tokenizer``'s vocabulary."""
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
    # PackedBlocks and let the documents of a block attend to each other.
    model.config.use_cache = False
    return model


def pretrain(cfg: Config, output_dir: str | Path, *, resume: bool = True, callbacks=()):
    """Train a fresh ``base`` model on the packed corpus with ``pretrain.train``; works under torchrun too."""
    tokenizer = zoo.get("tokenizer", cfg)
    data = zoo.get("pretrain-data", cfg)  # built on first use; each document attends only to itself
    return train(
        new_model(cfg, tokenizer),
        data["train"],
        cfg.pretrain.train,
        output_dir=output_dir,
        eval_dataset=data["eval"] if len(data["eval"]) else None,
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=callbacks,
        tokenizer=tokenizer,
    )


@torch.no_grad()
def perplexity(model: PreTrainedModel, dataset, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) over every block of ``dataset`` (tokens weigh equally).

    Rows with ``position_ids`` (``PackedBlocks`` with ``eos_id``) are read as they were
    trained: each document sees only itself.
    """
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        ids = torch.stack([r["input_ids"] for r in rows]).to(model.device)
        positions = None
        if "position_ids" in rows[0]:
            positions = torch.stack([r["position_ids"] for r in rows]).to(model.device)
        logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                 reduction="sum")
        total += loss.item()
        count += ids[:, 1:].numel()
    if not count:
        raise ValueError("perplexity needs at least one block")
    return float(np.exp(total / count))


# --------------------------------------------------------------------------- what the model learned


@torch.no_grad()
def complete(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches), cut at the first newline or end token."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    try:
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer([tokenizer.eos_token + p for p in prompts[i : i + batch_size]], return_tensors="pt",
                              padding=True, add_special_tokens=False).to(model.device)
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out += [t.split("\n")[0] for t in texts]
    finally:
        tokenizer.padding_side = side
    return out


def recall_probe(world, fact, lang: str) -> str | None:
    """The start of a statement of ``fact`` that stops right before its value, or None.

    Uses the first statement template whose value comes after the subject and whose
    cut-off start no other fact about the same subject shares ("X was born in" could
    end with a year or a city, so it is skipped for "X was born in the year").
    """
    from .world.templates import STATEMENTS

    g = world.graph

    def prefixes(f):
        out = []
        for template in STATEMENTS[f.relation][lang]:
            if "{o" not in template or "{s" not in template or template.index("{s") > template.index("{o"):
                out.append(None)
                continue
            cut = template[: template.index("{o")] + "{o}"
            out.append(g.fill(cut, f, lang, value_text="\0").split("\0")[0].rstrip())
        return out

    others = {p for f in g.facts_about(fact.subject, as_value=False) if f.relation != fact.relation
              for p in prefixes(f) if p}
    return next((p for p in prefixes(fact) if p and p not in others), None)


def _answer_matches(continuation: str, value: str) -> bool:
    text = continuation.strip()
    text = re.sub(r"^(a|an|the) ", "", text)  # "worked as an engineer"
    return text.startswith(value)


def fact_frequency(world, train_docs: Iterable[dict]) -> dict[tuple[str, str], int]:
    """(fact id, language) -> number of training documents in that language that state the fact."""
    counts: dict[tuple[str, str], int] = {}
    for doc in train_docs:
        for fid in doc.get("fact_ids", []):
            counts[fid, doc["lang"]] = counts.get((fid, doc["lang"]), 0) + 1
    return counts


def recall_context(world, fact, lang: str, n: int = 2) -> str:
    """Up to ``n`` true statements about ``fact``'s subject that neither state ``fact`` nor contain its value.

    Put before the probe, they set the scene the way a document about the subject
    would (a bare sentence right after ``<|endoftext|>`` looks like no training
    document), without giving the answer away.
    """
    value = world.graph.value_text(fact, lang)
    others = [f for f in world.graph.facts_about(fact.subject, as_value=False)
              if f.relation != fact.relation and not f.after_cutoff]
    sentences = [world.statement(f, lang) for f in others]
    return " ".join([s for s in sentences if value not in s][:n])


def fact_recall(model, tokenizer, cfg: Config, *, context: int = 2, max_facts: int | None = None,
                batch_size: int = 64) -> list[dict]:
    """Closed-book recall of every pre-cutoff world fact, in English and Korean.

    The prompt is ``context`` other true statements about the subject
    (``recall_context``), then the probe (``recall_probe``); the model must continue it
    with the value. Each row: ``fact_id, relation, lang, seen`` (training documents in
    that language stating the fact), ``prompt, answer, output, correct`` (the greedy
    continuation starts with the answer). ``max_facts`` keeps an evenly spread subset.
    """
    from .world import build_world

    world = build_world(cfg.world)
    train_docs, _ = split_documents(corpus_documents(cfg), cfg.pretrain.eval_fraction, cfg.run.seed)
    seen = fact_frequency(world, train_docs)
    facts = world.facts(after_cutoff=False)
    if max_facts is not None and len(facts) > max_facts:
        facts = facts[:: -(-len(facts) // max_facts)]
    rows = []
    for fact in facts:
        for lang in ("en", "ko"):
            probe = recall_probe(world, fact, lang)
            if probe is not None:
                scene = recall_context(world, fact, lang, context) if context else ""
                rows.append({"fact_id": fact.id, "relation": fact.relation, "lang": lang,
                             "seen": seen.get((fact.id, lang), 0), "prompt": f"{scene} {probe}".strip(),
                             "answer": world.graph.value_text(fact, lang)})
    # Enough new tokens for the longest answer, plus a couple for articles and spaces.
    longest = max(len(tokenizer(" " + r["answer"], add_special_tokens=False)["input_ids"]) for r in rows)
    outputs = complete(model, tokenizer, [r["prompt"] for r in rows], longest + 2, batch_size)
    for row, output in zip(rows, outputs):
        row["output"] = output
        row["correct"] = _answer_matches(output, row["answer"])
    return rows


FREQUENT = 6  # a fact stated in at least this many training documents (in the probe's language) is "frequent"


def recall_by_frequency(rows: list[dict], bins: Iterable[int] = (0, 1, 2, 4, 8, 16)) -> list[dict]:
    """Recall per frequency bin: ``{"min_seen", "max_seen", "facts", "recall"}``; bin i is [bins[i], bins[i+1])."""
    edges = list(bins) + [float("inf")]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        inside = [r for r in rows if lo <= r["seen"] < hi]
        if inside:
            out.append({"min_seen": lo, "max_seen": hi, "facts": len(inside),
                        "recall": sum(r["correct"] for r in inside) / len(inside)})
    return out


def frequent_recall(rows: list[dict], min_seen: int = FREQUENT) -> float:
    """Recall of the facts seen in at least ``min_seen`` training documents."""
    frequent = [r for r in rows if r["seen"] >= min_seen]
    if not frequent:
        raise ValueError(f"no fact is seen {min_seen} or more times")
    return sum(r["correct"] for r in frequent) / len(frequent)


# --------------------------------------------------------------------------- in-context learning

ICL_TASK = "qa_closed"  # the task family of the in-context learning curve; no task data is pretrained on
ICL_DESCRIPTIONS = {
    "en": "Answer each question about the world in a few words.",
    "ko": "세계에 관한 질문에 짧게 답하세요.",
}
ICL_LABELS = {"en": ("Question", "Choices", "Answer"), "ko": ("질문", "보기", "답")}


@torch.no_grad()
def answer_nll(model, tokenizer, prompts: list[str], answers: list[str], batch_size: int = 32) -> list[float]:
    """Mean negative log-likelihood (nats per token) of each ``" " + answer`` after its prompt.

    Prompt and answer are tokenized apart and joined, so the answer's tokens are the
    same whatever the prompt; batches are right-padded and padding is never scored.
    """
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for prompt, ans in zip(prompts[i : i + batch_size], answers[i : i + batch_size]):
            p = [tokenizer.eos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
            a = tokenizer(" " + ans, add_special_tokens=False)["input_ids"]
            rows.append(p + a)
            spans.append((len(p), len(p) + len(a)))
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows], device=model.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (start, end) in enumerate(spans):
            # position t predicts token t + 1: the answer's tokens start..end-1 are read at start-1..end-2
            target = ids[row, start:end]
            out.append(-logp[row, start - 1 : end - 1].gather(-1, target[:, None]).mean().item())
    return out


def icl_question(row: dict, lang: str) -> str:
    """A task row's question as the prompt shows it: after its passage (open-book rows), before its choices."""
    question = f"{row['context'].strip()}\n{row['question']}" if row.get("context") else row["question"]
    if row.get("choices"):
        return f"{question}\n{ICL_LABELS[lang][1]}: {' / '.join(row['choices'])}"
    return question


def icl_prompt(description: str, examples: list[tuple[str, str]], question: str, lang: str) -> str:
    """Task description, then ``k`` worked examples, then the question: GPT-3's few-shot prompt.

    ``k = 0`` (no examples) is zero-shot. No weight changes: the examples are only text.
    """
    q, _, a = ICL_LABELS[lang]
    shots = "".join(f"{q}: {x}\n{a}: {y}\n\n" for x, y in examples)
    return f"{description}\n\n{shots}{q}: {question}\n{a}:"


def icl_items(cfg: Config, lang: str, task: str = ICL_TASK) -> tuple[list[dict], list[dict]]:
    """(example pool, questions) of task family ``task`` in ``lang``, about pre-cutoff facts.

    Examples come from the ``train`` split; questions from ``test`` and ``test_template``
    first (held-out facts and phrasings), then ``train``. The task data is never part of
    pretraining, so the model meets the question-answer format only in the prompt.
    """
    from .world import load

    tasks = load("tasks", cfg, task=task)
    keep = lambda r: r["lang"] == lang and not r["after_cutoff"] and r["answerable"] and r["answer"]
    pool = [r for r in tasks["train"] if keep(r)]
    questions = [r for split in ("test", "test_template", "train") for r in tasks[split] if keep(r)]
    return pool, questions


def _question_kind(row: dict) -> str:
    """The relation a task row asks about, from its template id (``q/birth_place/en/1`` -> ``birth_place``)."""
    parts = row["template_id"].split("/")
    return parts[1] if len(parts) > 1 else ""


def icl_accuracy(model, tokenizer, cfg: Config, *, task: str = ICL_TASK, shots: Iterable[int] = (0, 1, 2, 4, 8),
                 num_questions: int = 100, langs: Iterable[str] = ("en", "ko"), same_kind: bool = True,
                 batch_size: int = 32) -> list[dict]:
    """In-context learning curve: how well answers come out against the number ``k`` of worked examples.

    Rows ``{"k", "lang", "questions", "accuracy", "answer_nll"}``: the exact-match
    accuracy of the greedy answer, and the mean per-token negative log-likelihood of the
    correct answer (lower is better; it moves before accuracy does). The first ``num_questions`` questions of
    ``task`` in each language are asked with every ``k``; each question's ``k`` examples
    are drawn (seeded by the question) from the train pool, about other facts, and with
    ``same_kind`` about the same relation (where was X born? -> a city), as a task's
    demonstrations would be. Where a prompt with its answer would not fit the model's context,
    its first examples are dropped; ``examples`` is the mean number the prompts kept. A question
    that does not fit even with no example is a ``ValueError`` (the model would read past the
    positions it was trained on).
    """
    rows = []
    shots = list(shots)
    context = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    for lang in langs:
        pool, items = icl_items(cfg, lang, task)
        questions = items[:num_questions]
        longest = max(len(tokenizer(" " + q["answer"], add_special_tokens=False)["input_ids"]) for q in questions)
        needed = lambda text: len(tokenizer(text)["input_ids"]) + longest + 3  # <eos>, the prompt, longest + 2 new tokens
        for k in shots:
            prompts, used = [], []
            for q in questions:
                rng = random.Random(f"{cfg.run.seed}|{q['id']}")
                others = [r for r in pool if r["fact_ids"] != q["fact_ids"]]
                if same_kind:  # worked examples of the same kind of question (same relation), if there are enough
                    kind = [r for r in others if _question_kind(r) == _question_kind(q)]
                    others = kind if len(kind) >= k else others
                examples = [(icl_question(r, lang), r["answer"]) for r in rng.sample(others, min(k, len(others)))]
                prompt = icl_prompt(ICL_DESCRIPTIONS[lang], examples, icl_question(q, lang), lang)
                while examples and needed(prompt) > context:
                    examples = examples[1:]  # too long for the model's context: drop the first example
                    prompt = icl_prompt(ICL_DESCRIPTIONS[lang], examples, icl_question(q, lang), lang)
                if needed(prompt) > context:
                    raise ValueError(f"{task} question {q['id']!r} ({lang}) needs {needed(prompt)} tokens with no "
                                     f"example, more than the model's context of {context}: ask a model with a "
                                     f"longer context, or another task")
                prompts.append(prompt)
                used.append(len(examples))
            outputs = complete(model, tokenizer, prompts, longest + 2, batch_size)
            correct = sum(o.strip().rstrip(".") == q["answer"] for o, q in zip(outputs, questions))
            nll = answer_nll(model, tokenizer, prompts, [q["answer"] for q in questions], batch_size)
            rows.append({"k": k, "lang": lang, "questions": len(questions), "examples": float(np.mean(used)),
                         "accuracy": correct / len(questions), "answer_nll": float(np.mean(nll))})
    return rows


@torch.no_grad()
def repeated_tokens_loss(model, *, length: int = 50, batch: int = 16, low: int = 0, seed: int = 0) -> dict:
    """Induction test (Olsson et al., 2022): loss on random tokens, then on the same tokens again.

    A sequence of ``length`` random token ids (from ``low`` up to the vocabulary size) is
    followed by itself. Nothing predicts the first copy, so its loss is at least about
    ln(vocabulary size); a model with *induction heads* (attend to the token after the earlier
    occurrence of the current token, copy it) predicts the second copy almost perfectly.
    Copying from the context is the simplest form of in-context learning. Returns
    ``{"first", "second"}``: mean nats per token over the first copy (its first token,
    which has no context, excluded) and over the second.
    """
    model.eval()
    vocab = model.config.vocab_size
    if not 0 <= low < vocab - 1:
        raise ValueError(f"low={low} leaves no token ids below the vocabulary size {vocab}")
    rows = RepeatedTokens(batch, length, vocab - low, seed=seed)
    ids = (torch.stack([rows[i]["input_ids"] for i in range(batch)]) + low).to(model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
    nll = -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # nll[:, t] is the loss of token t + 1
    return {"first": nll[:, : length - 1].mean().item(), "second": nll[:, length - 1 :].mean().item()}


class RepeatedTokens(torch.utils.data.Dataset):
    """``size`` rows of ``2 * length`` token ids in ``[0, vocab)``: random tokens, then the same tokens again.

    By default a row is ``length`` random ids followed by the same ids (the induction test's
    sequences). With ``min_period`` each row repeats its own random sequence of ``p`` ids,
    ``p`` drawn from ``min_period..length``, until the row is full: the copy now lies a
    different distance back in every row, so a model can only predict it by finding the earlier
    occurrence of what it just read (an induction head), not by looking a fixed number of
    positions back. Row ``i`` is drawn from a generator seeded by ``(seed, i)``, so every row is
    new to the model and the same in every run. Labels are the inputs (next-token loss everywhere).
    """

    def __init__(self, size: int, length: int, vocab: int, seed: int = 0, min_period: int | None = None):
        if size < 1 or length < 2 or vocab < 2:
            raise ValueError(f"RepeatedTokens needs size >= 1, length >= 2 and vocab >= 2, got {size}, {length}, {vocab}")
        if min_period is not None and not 1 <= min_period <= length:
            raise ValueError(f"RepeatedTokens needs 1 <= min_period <= length ({length}), got min_period={min_period}")
        self.size, self.length, self.vocab, self.seed = size, length, vocab, seed
        self.min_period = length if min_period is None else min_period

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.size:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        period = self.length if self.min_period == self.length else int(rng.integers(self.min_period, self.length + 1))
        x = torch.from_numpy(rng.integers(0, self.vocab, period))
        ids = x.repeat(-(-2 * self.length // period))[: 2 * self.length]
        return {"input_ids": ids, "labels": ids.clone()}


def learn_to_copy(cfg: Config, *, vocab: int = 64, length: int = 32, min_period: int = 4, steps: int = 600,
                  batch_size: int = 32, lr: float = 3e-3, eval_every: int = 50,
                  test_lengths: Iterable[int] = (8, 32)) -> tuple[PreTrainedModel, list[dict]]:
    """Train a tiny decoder (2 layers, 2 heads, width 64) on repeated random tokens only; watch it learn to copy.

    The data is ``RepeatedTokens`` with periods ``min_period..length`` over a
    ``vocab``-token vocabulary (a new sequence in every row), trained with the course loop
    (``pretrain.train``'s optimizer settings, ``steps`` steps of ``batch_size`` rows, peak
    ``lr``, no weight decay). Because the period changes from row to row, looking a fixed
    distance back does not work: the model has to find the earlier occurrence of the current
    token and copy what followed it. Every ``eval_every`` steps ``repeated_tokens_loss`` is
    measured on held-out sequences of each of ``test_lengths`` tokens. Returns the model and
    rows ``{"step", "length", "first", "second"}``: the second-copy loss falls only a little
    for a few hundred steps, then drops within about 150, at every length at once: the
    phase change of Olsson et al. (2022), when induction heads form. The first copy stays no
    better than ln(vocab). (With ``min_period=length`` every copy lies ``length`` tokens back,
    and the model learns that offset instead: the second copy then falls only at that length.)
    """
    test_lengths = list(test_lengths)
    if steps < 1 or eval_every < 1:
        raise ValueError(f"learn_to_copy needs steps >= 1 and eval_every >= 1, got steps={steps}, eval_every={eval_every}")
    if not test_lengths or not all(2 <= n <= length for n in test_lengths):
        raise ValueError(f"learn_to_copy needs test_lengths within 2..length ({length}), got {test_lengths}")
    model_cfg = dataclasses.replace(cfg.model, n_layer=2, n_head=2, d_model=64, d_ff=0, max_seq_len=2 * length,
                                    dropout=0.0)
    torch.manual_seed(cfg.run.seed)
    model = build_decoder(model_cfg, vocab)
    train_cfg = dataclasses.replace(cfg.pretrain.train, max_steps=steps, batch_size=batch_size, grad_accum_steps=1,
                                    lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0, eval_every=0,
                                    save_every=0, log_every=max(1, steps // 10), progress=False)
    held_out_seed = cfg.run.seed + 1  # test rows come from another seed than the training rows

    def measure(step: int) -> list[dict]:
        rows = [{"step": step, "length": n, **repeated_tokens_loss(model, length=n, batch=64, seed=held_out_seed)}
                for n in test_lengths]
        model.train()
        return rows

    rows = measure(0)

    def on_step(step: int, _metrics: dict) -> None:
        if step % eval_every == 0 or step == steps:
            rows.extend(measure(step))

    data = RepeatedTokens(steps * batch_size, length, vocab, seed=cfg.run.seed, min_period=min_period)
    with tempfile.TemporaryDirectory(prefix="copier-") as run_dir:
        train(model, data, train_cfg, output_dir=run_dir, seed=cfg.run.seed, resume=False, config=cfg,
              callbacks=(on_step,))
    model.eval()
    return model, rows


# --------------------------------------------------------------------------- zoo recipes


def _tokenizer_texts(cfg: Config) -> Iterator[str]:
    docs = (d for d in corpus_documents(cfg) if not is_held_out(d, cfg.pretrain.eval_fraction, cfg.run.seed))
    return (d["text"] for d in itertools.islice(docs, cfg.pretrain.tokenizer_documents or None))


def _load_tokenizer(path: Path, cfg: Config) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(path)


@zoo.register(
    "tokenizer", load=_load_tokenizer, sections=("run", "world", "data", "pretrain", "curation"),
    description="bilingual byte-level BPE with pad, end-of-text, chat and sentinel tokens",
)
def _build_tokenizer(cfg: Config, out: Path) -> None:
    p = cfg.pretrain
    train_tokenizer(_tokenizer_texts(cfg), p.vocab_size, num_sentinels=p.num_sentinels).save_pretrained(out)


def _load_data(path: Path, cfg: Config) -> dict:
    block, eos = cfg.pretrain.block_size, zoo.get("tokenizer", cfg).eos_token_id
    return {split: PackedBlocks(path / name, block, eos) for split, name in TOKEN_FILES.items()}


@zoo.register(
    "pretrain-data", load=_load_data, sections=("run", "world", "data", "pretrain", "curation"), deps=("tokenizer",),
    description="the pretraining corpus as token files (train.bin, eval.bin)",
)
def _build_data(cfg: Config, out: Path) -> None:
    tokenizer = zoo.get("tokenizer", cfg)
    counts = {"train": {"documents": 0, "tokens": 0}, "eval": {"documents": 0, "tokens": 0}}
    for split in TOKEN_FILES:
        (out / TOKEN_FILES[split]).touch()
    for batch in _batched(corpus_documents(cfg), 1024):
        for split in TOKEN_FILES:
            held = split == "eval"
            texts = [d["text"] for d in batch if is_held_out(d, cfg.pretrain.eval_fraction, cfg.run.seed) == held]
            counts[split]["documents"] += len(texts)
            counts[split]["tokens"] += write_tokens(texts, tokenizer, out / TOKEN_FILES[split])
    (out / "counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")


def _load_base(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path)


@zoo.register(
    "base", load=_load_base, sections=("run", "model", "world", "data", "pretrain", "curation"),
    deps=("tokenizer", "pretrain-data"),
    description="the course's base decoder, pretrained on the world (chapter 03)",
)
def _build_base(cfg: Config, out: Path) -> None:
    pretrain(cfg, out, resume=False)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # optimizer state is only for resuming


# --------------------------------------------------------------------------- span corruption (chapter 04)
#
# T5's pretraining objective, as the original code does it (``random_spans_noise_mask``,
# ``noise_span_to_unique_sentinel`` and ``nonnoise_span_to_unique_sentinel`` in
# google-research/text-to-text-transfer-transformer, ``t5/data/preprocessors.py``).
# The number of noise tokens is round(length * noise_density) and the number of noise
# spans round(noise tokens / mean span length), at least 1. The noise tokens are cut
# into that many non-empty spans at random, and so are the other tokens; the spans
# alternate, non-noise first, so the sequence starts with kept text and ends with a
# noise span. Each noise span becomes one sentinel in the input; the target lists each
# sentinel followed by the span it hides. T5's convention (``append_eos`` after
# ``denoise``) ends both the input and the target with EOS, and since the last span
# is always noise no final sentinel is needed:
#
#     tokens   A B C D E F G H I J          noise spans [C D] and [I J]
#     input    A B <X0> E F G H <X1> </s>
#     target   <X0> C D <X1> I J </s>
#
# (The T5 paper's figure ends the target with a third sentinel instead; the code does not.)

NOISE_DENSITY = 0.15  # T5's defaults: 15% of the tokens in spans of mean length 3
MEAN_NOISE_SPAN_LENGTH = 3.0


def random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths (``num_segments``,) of a uniformly random split of ``num_items`` items into non-empty runs.

    T5's ``_random_segmentation``: mark ``num_segments - 1`` of the ``num_items - 1`` gaps
    between items, at random, as segment starts. The lengths are >= 1 and sum to ``num_items``.
    """
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"cannot split {num_items} items into {num_segments} non-empty segments")
    starts = np.zeros(num_items - 1, dtype=bool)
    starts[: num_segments - 1] = True
    first_in_segment = np.concatenate([[False], rng.permutation(starts)])  # item 0 opens segment 0
    segment_id = np.cumsum(first_in_segment)  # (num_items,) in 0..num_segments-1
    return np.bincount(segment_id, minlength=num_segments)


def noise_span_counts(length: int, noise_density: float = NOISE_DENSITY,
                      mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> tuple[int, int]:
    """(noise tokens, noise spans) for a sequence of ``length`` tokens, as T5 computes them.

    noise tokens = round(length * density), kept within [1, length - 1]; spans =
    round(noise tokens / mean span length), at least 1. Python's ``round`` rounds half to
    even, as ``tf.round`` does. Raises ValueError for a density outside (0, 1), a mean span
    length below 1, a length below 2, or too few kept tokens to separate the spans.
    """
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if not mean_noise_span_length >= 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    if length - num_noise < num_spans:
        raise ValueError(
            f"{length} tokens with noise_density {noise_density} leave {length - num_noise} kept tokens, "
            f"too few to separate {num_spans} noise spans; lower the density or raise the mean span length"
        )
    return num_noise, num_spans


def spans_noise_mask(nonnoise_span_lengths, noise_span_lengths) -> np.ndarray:
    """The (length,) bool noise mask of alternating spans: kept span 0, noise span 0, kept span 1, ...

    The deterministic half of ``random_spans_noise_mask``: given the span lengths, the mask
    is fixed (handy for worked examples). Both lists have one length per noise span, each >= 1.
    """
    kept, noise = np.asarray(nonnoise_span_lengths, dtype=int), np.asarray(noise_span_lengths, dtype=int)
    if kept.shape != noise.shape or kept.ndim != 1 or not len(kept):
        raise ValueError(f"need as many kept spans as noise spans (>= 1), got {kept.tolist()} and {noise.tolist()}")
    if (kept < 1).any() or (noise < 1).any():
        raise ValueError(f"span lengths must be >= 1, got {kept.tolist()} and {noise.tolist()}")
    interleaved = np.stack([kept, noise], axis=1).reshape(-1)  # (2 * spans,): kept, noise, kept, noise, ...
    return np.repeat(np.arange(len(interleaved)) % 2 == 1, interleaved)


def random_spans_noise_mask(length: int, noise_density: float = NOISE_DENSITY,
                            mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                            rng: np.random.Generator | int | None = None) -> np.ndarray:
    """T5's noise mask: (length,) bool, True at the tokens that span corruption hides.

    Exactly ``noise_span_counts(length, ...)`` noise tokens in that many spans; the span
    lengths are random segmentations (noise tokens first, then kept tokens, from one
    ``rng``), so the mean span length is ``mean_noise_span_length`` on average. ``rng`` is
    a ``numpy.random.Generator`` or a seed: the same seed gives the same mask.
    """
    num_noise, num_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    rng = np.random.default_rng(rng)
    noise_lengths = random_segmentation(num_noise, num_spans, rng)
    kept_lengths = random_segmentation(length - num_noise, num_spans, rng)
    return spans_noise_mask(kept_lengths, noise_lengths)


def corrupt_spans(tokens, noise_mask, sentinel_ids: list[int], eos_id: int | None) -> tuple[list[int], list[int]]:
    """(input, target) token lists of span corruption with the given (length,) bool ``noise_mask``.

    The input is ``tokens`` with noise span i replaced by ``sentinel_ids[i]`` (T5's
    ``noise_span_to_unique_sentinel``); the target is each noise span's sentinel followed by
    the span (for T5's masks, which start with kept text, this is ``nonnoise_span_to_unique_sentinel``).
    Both end with ``eos_id`` unless it is None. Every token of ``tokens`` appears exactly once
    across input and target.
    """
    tokens, mask = np.asarray(tokens, dtype=np.int64), np.asarray(noise_mask, dtype=bool)
    if tokens.shape != mask.shape or tokens.ndim != 1:
        raise ValueError(f"tokens {tokens.shape} and noise_mask {mask.shape} must be 1-D of one length")
    first = mask & ~np.concatenate([[False], mask[:-1]])  # (length,): the first token of each noise span
    num_spans = int(first.sum())
    if num_spans > len(sentinel_ids):
        raise ValueError(f"{num_spans} noise spans but only {len(sentinel_ids)} sentinels; train the tokenizer with more")
    sentinels = np.asarray(sentinel_ids[:num_spans], dtype=np.int64)  # (spans,): <extra_id_0>, <extra_id_1>, ...
    inputs = tokens.copy()
    inputs[first] = sentinels  # a span's first token becomes its sentinel ...
    inputs = inputs[~mask | first]  # ... and the rest of the span is dropped
    # The target is the noise tokens with sentinel i inserted before span i's first token.
    span_starts = (np.cumsum(mask) - 1)[first]  # (spans,): where each span starts among the noise tokens
    targets = np.insert(tokens[mask], span_starts, sentinels)
    end = [] if eos_id is None else [eos_id]
    return inputs.tolist() + end, targets.tolist() + end


def sentinel_ids(tokenizer, num_spans: int | None = None) -> list[int]:
    """Token ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in the tokenizer (all of them, or the first ``num_spans``).

    The course tokenizer gives them consecutive ids after the chat tokens (T5's own
    vocabulary counts down from its end instead; only the strings matter).
    """
    from .tokenization import sentinel

    vocab = tokenizer.get_vocab()
    ids = []
    while sentinel(len(ids)) in vocab and (num_spans is None or len(ids) < num_spans):
        ids.append(vocab[sentinel(len(ids))])
    if num_spans is not None and len(ids) < num_spans:
        raise ValueError(f"the tokenizer has {len(ids)} sentinels, fewer than the {num_spans} needed")
    return ids


def span_corrupt(tokens, sentinel_ids: list[int], eos_id: int | None, *, noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                 rng: np.random.Generator | int | None = None) -> tuple[list[int], list[int]]:
    """(input, target) of T5 span corruption of ``tokens``: ``random_spans_noise_mask`` then ``corrupt_spans``.

    A block of L tokens with n noise tokens in s spans gives an input of L - n + s + 1 and a
    target of n + s + 1 tokens (with EOS): the same for every block of one length.
    """
    mask = random_spans_noise_mask(len(tokens), noise_density, mean_noise_span_length, rng)
    return corrupt_spans(tokens, mask, sentinel_ids, eos_id)


class SpanCorruptedBlocks(torch.utils.data.Dataset):
    """Span-corrupted packed blocks for a seq2seq model: row ``j`` is ``{"input_ids", "labels"}``.

    Row ``j`` corrupts block ``j % len(blocks)`` with a generator seeded by ``(seed, j)``, so
    a row is the same every time it is read (a resumed run sees the same data) while
    ``passes`` > 1 gives each pass over the blocks fresh noise spans: T5 sees each text
    once, and ``passes`` lets a small corpus imitate that. Every row of one block length
    has the same input and target lengths (see ``span_corrupt``).
    """

    def __init__(self, blocks, sentinel_ids: list[int], eos_id: int | None, *, noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH, seed: int = 0, passes: int = 1):
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.blocks, self.sentinel_ids, self.eos_id = blocks, list(sentinel_ids), eos_id
        self.noise_density, self.mean_noise_span_length = noise_density, mean_noise_span_length
        self.seed, self.passes = seed, passes

    def __len__(self) -> int:
        return len(self.blocks) * self.passes

    def __getitem__(self, j: int) -> dict:
        if not 0 <= j < len(self):
            raise IndexError(j)
        tokens = self.blocks[j % len(self.blocks)]["input_ids"]
        inputs, targets = span_corrupt(
            np.asarray(tokens), self.sentinel_ids, self.eos_id, noise_density=self.noise_density,
            mean_noise_span_length=self.mean_noise_span_length, rng=np.random.default_rng((self.seed, j)),
        )
        return {"input_ids": torch.tensor(inputs), "labels": torch.tensor(targets)}


class SpanCorruptionCollator:
    """Examples ``{"input_ids", "labels"}`` of any lengths -> a batch for ``T5ForConditionalGeneration``.

    Pads ``input_ids`` with ``pad_id`` (``attention_mask`` 0 there) and ``labels`` with -100,
    which the loss ignores; the model builds its decoder inputs by shifting the labels right
    behind ``decoder_start_token_id`` (T5's pad). Returns (B, S) ``input_ids`` and
    ``attention_mask`` and (B, T) ``labels``, S and T the longest input and target.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        def stack(rows, fill):
            width = max(len(r) for r in rows)
            return torch.tensor([list(r) + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

        inputs = [list(map(int, e["input_ids"])) for e in examples]
        return {
            "input_ids": stack(inputs, self.pad_id),
            "attention_mask": stack([[1] * len(r) for r in inputs], 0),
            "labels": stack([list(map(int, e["labels"])) for e in examples], -100),
        }


# --------------------------------------------------------------------------- the t5 model (chapter 04)


def new_t5_model(cfg: Config, tokenizer: PreTrainedTokenizerFast) -> T5ForConditionalGeneration:
    """An untrained T5 encoder-decoder of the ``model`` size for ``tokenizer``'s vocabulary.

    Without dropout, as T5 v1.1 pretrains: span corruption draws fresh spans on every pass
    over the corpus, so the data itself keeps the model from memorizing its inputs (the
    decoder ``base`` sees the same blocks each pass and keeps ``model.dropout``). On the CPU
    this also makes a T5 step about a third cheaper.
    """
    torch.manual_seed(cfg.run.seed)
    return build_encoder_decoder(
        dataclasses.replace(cfg.model, dropout=0.0), len(tokenizer),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def span_corruption_data(cfg: Config, *, noise_density: float = NOISE_DENSITY,
                         mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH):
    """(train, eval) ``SpanCorruptedBlocks`` of the packed corpus (``pretrain-data``) that ``base`` trains on.

    Each ``pretrain.block_size`` block becomes an input of about 0.9 and a target of about
    0.2 of its length (sentinels and EOS included). The train set has enough passes for
    ``pretrain.train`` to see every block with fresh spans each time (on one process); the
    eval set is one fixed corruption of the held-out blocks, so eval losses compare.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    data = zoo.build("pretrain-data", cfg)
    block = cfg.pretrain.block_size
    sentinels = sentinel_ids(tokenizer, noise_span_counts(block, noise_density, mean_noise_span_length)[1])
    t = cfg.pretrain.train
    train_blocks, eval_blocks = (PackedBlocks(data / TOKEN_FILES[s], block) for s in ("train", "eval"))
    passes = max(1, -(-t.max_steps * t.batch_size * t.grad_accum_steps // max(len(train_blocks), 1)))
    corrupt = dict(noise_density=noise_density, mean_noise_span_length=mean_noise_span_length, seed=cfg.run.seed)
    return (SpanCorruptedBlocks(train_blocks, sentinels, tokenizer.eos_token_id, passes=passes, **corrupt),
            SpanCorruptedBlocks(eval_blocks, sentinels, tokenizer.eos_token_id, **corrupt))


def pretrain_t5(cfg: Config, output_dir: str | Path, *, resume: bool = True, noise_density: float = NOISE_DENSITY,
                mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH, callbacks=()):
    """Train a fresh T5 by span corruption on ``base``'s packed corpus with ``pretrain.train``.

    The loss is the cross-entropy of the target tokens (sentinels, hidden spans and EOS),
    so it is not comparable with ``base``'s next-token loss over whole blocks.
    """
    tokenizer = zoo.get("tokenizer", cfg)
    train_data, eval_data = span_corruption_data(
        cfg, noise_density=noise_density, mean_noise_span_length=mean_noise_span_length
    )
    return train(
        new_t5_model(cfg, tokenizer),
        train_data,
        cfg.pretrain.train,
        output_dir=output_dir,
        eval_dataset=eval_data if len(eval_data) else None,
        collate_fn=SpanCorruptionCollator(tokenizer.pad_token_id),
        seed=cfg.run.seed,
        resume=resume,
        config=cfg,
        callbacks=callbacks,
        tokenizer=tokenizer,
    )


def _load_t5(path: Path, cfg: Config) -> TrainedModel:
    return TrainedModel.from_run(path, T5ForConditionalGeneration)


@zoo.register(
    "t5", load=_load_t5, sections=("run", "model", "world", "data", "pretrain", "curation"),
    deps=("tokenizer", "pretrain-data"),
    description="the course's T5 encoder-decoder, pretrained by span corruption on the world (chapter 04)",
)
def _build_t5(cfg: Config, out: Path) -> None:
    pretrain_t5(cfg, out, resume=False, noise_density=0.15, mean_noise_span_length=3.0)  # T5's settings
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # optimizer state is only for resuming


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.pretraining --profile gpu [--set key=value] [--output-dir DIR] [--restart]``.

    Pretrains ``base`` into a run folder (resumable), for long runs under
    ``accelerate launch`` or ``torchrun``: build the tokenizer and token files first
    (``course zoo build tokenizer pretrain-data --profile gpu``) so that the processes
    share them instead of each building its own.
    """
    import argparse

    from .cli import config_from_args

    parser = argparse.ArgumentParser(description="pretrain the base model")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output-dir", default=None, help="default: run.output_dir/base")
    parser.add_argument("--restart", action="store_true", help="start afresh instead of resuming")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    out = Path(args.output_dir or Path(cfg.run.output_dir) / "base")
    result = pretrain(cfg, out, resume=not args.restart)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"step {result.step}: train loss {result.train_loss:.4f}, eval loss {result.eval_loss}; outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

