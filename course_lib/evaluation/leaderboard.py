"""A leaderboard of the course's models, HELM's accuracy-vs-latency view, and prompt-template sensitivity.

- ``NgramLM``: a unigram or bigram language model with add-k smoothing, counted on the
  token stream ``base`` was pretrained on. It looks like a causal model to the harness:
  ``model(input_ids).logits`` is (B, T, V) and each row holds log-probabilities of the
  next token, so ``evaluate`` scores it with the same code paths as ``base``. It is the
  floor a trained model has to clear.
- ``leaderboard``: every model on every task, with the primary metric and the wall-clock
  time per item; ``summary`` averages it per ability group.
- ``plot_leaderboard`` / ``plot_accuracy_vs_latency``: the table as bars, and HELM's point
  that accuracy is one axis among several (here: efficiency) as a scatter.
- ``template_sensitivity``: the same items scored under several phrasings of the prompt;
  the spread between the best and the worst phrasing is a robustness measure (HELM).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import sparse
from tqdm.auto import tqdm

from .harness import evaluate
from .tasks import GROUPS, LOWER_IS_BETTER, Task, get_task, resolve_tasks

# --------------------------------------------------------------------------- n-gram baselines

# Add-k constant: of 1, 0.1, 0.01 and 0.001, 0.01 gives the bigram the best held-out token perplexity on the ci
# world and close to the best on the laptop world (about 17 against 13 for 0.001, 42 for 0.1, 182 for 1).
DEFAULT_K = 0.01


@dataclass
class NgramConfig:
    """What the harness reads from a model's config: its kind and context length."""

    order: int
    vocab_size: int
    k: float
    max_position_embeddings: int
    is_encoder_decoder: bool = False


def ngram_counts(tokens: Sequence[int], vocab_size: int, order: int):
    """Counts of a token stream: (V,) unigram counts, or a (V, V) sparse matrix ``C[prev, next]`` for a bigram."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}); got {tokens.min()}..{tokens.max()}")
    if order == 1:
        return np.bincount(tokens, minlength=vocab_size).astype(np.float32)
    if order == 2:
        ones = np.ones(max(tokens.size - 1, 0), dtype=np.float32)
        return sparse.csr_matrix((ones, (tokens[:-1], tokens[1:])), shape=(vocab_size, vocab_size))  # sums repeats
    raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}")


class NgramLM(torch.nn.Module):
    """Unigram (order 1) or bigram (order 2) language model with add-k smoothing.

    P(w) = (c(w) + k) / (N + kV)                     unigram: N tokens, V the vocabulary
    P(w | v) = (c(v, w) + k) / (c(v) + kV)            bigram: c(v) = number of pairs starting with v

    A bigram context never seen gets the uniform distribution 1/V. ``forward`` returns
    log-probabilities where a transformer returns logits; ``log_softmax`` leaves them unchanged.
    """

    def __init__(self, counts, *, order: int, k: float = DEFAULT_K, max_length: int = 2048):
        super().__init__()
        if k <= 0:
            raise ValueError(f"k must be > 0 (add-k smoothing), got {k}")
        if (order, len(counts.shape)) not in ((1, 1), (2, 2)):
            need = "(V,)" if order == 1 else "(V, V)"
            raise ValueError(f"order {order} needs counts of shape {need}, got shape {counts.shape}")
        vocab_size = counts.shape[0]
        self.config = NgramConfig(order, vocab_size, k, max_length)
        self.counts = counts
        if order == 1:
            logp = np.log(counts + k) - np.log(counts.sum() + k * vocab_size)  # (V,)
            self.register_buffer("unigram", torch.from_numpy(logp.astype(np.float32)))
        else:
            self.row_totals = np.asarray(counts.sum(axis=1)).ravel()  # c(v): (V,)
        self.register_buffer("_anchor", torch.zeros(0))  # gives the module a device

    @classmethod
    def from_tokens(cls, tokens: Sequence[int], vocab_size: int, *, order: int, k: float = DEFAULT_K,
                    max_length: int = 2048) -> "NgramLM":
        """Count ``tokens`` (a flat stream, documents separated by an end-of-text token) and build the model."""
        return cls(ngram_counts(tokens, vocab_size, order), order=order, k=k, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def log_probs(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, V) float32: log P(next token | token at t) (or log P(next) for a unigram)."""
        B, T = input_ids.shape
        V, k = self.config.vocab_size, self.config.k
        if self.config.order == 1:
            return self.unigram.expand(B, T, V)
        prev = input_ids.reshape(-1).cpu().numpy()
        rows = self.counts[prev].toarray()  # (B*T, V) bigram counts c(prev, w)
        out = np.log(rows + k) - np.log(self.row_totals[prev] + k * V)[:, None]
        return torch.from_numpy(out.astype(np.float32)).reshape(B, T, V).to(self.device)

    def forward(self, input_ids: torch.Tensor, attention_mask=None, **unused):
        """The harness's call: an object whose ``.logits`` are the (B, T, V) log-probabilities."""
        return _Output(self.log_probs(input_ids))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask=None, *, max_new_tokens: int, do_sample: bool = False,
                 pad_token_id: int | None = None, eos_token_id: int | None = None, stopping_criteria=None, **unused):
        """Greedy decoding with ``transformers``' conventions: returns prompt + new tokens, (B, T + new).

        A sequence that produced ``eos_token_id`` or met ``stopping_criteria`` is padded with
        ``pad_token_id`` from then on; the loop ends when every sequence is done.
        """
        if do_sample:
            raise ValueError("NgramLM.generate decodes greedily only (do_sample=False)")
        ids = input_ids
        done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            nxt = self.log_probs(ids[:, -1:])[:, -1].argmax(-1)  # an n-gram of order <= 2 needs one token back
            if pad_token_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if eos_token_id is not None:
                done |= nxt == eos_token_id
            if stopping_criteria is not None:
                done |= stopping_criteria(ids, None).to(done.device)
            if done.all():
                break
        return ids


@dataclass
class _Output:
    logits: torch.Tensor


def ngram_baseline(order: int, config=None, *, k: float = DEFAULT_K):
    """(NgramLM, tokenizer): a unigram or bigram counted on ``base``'s pretraining tokens (zoo ``pretrain-data``).

    Same documents, same tokenizer, same held-out split as ``base``; the context length is
    ``base``'s, so the harness truncates long items the same way.
    """
    from course_lib import zoo

    if config is None:
        from course_lib.config import load_config

        config = load_config()
    tokenizer = zoo.get("tokenizer", config)
    tokens = zoo.get("pretrain-data", config)["train"].tokens
    model = NgramLM.from_tokens(tokens, len(tokenizer), order=order, k=k, max_length=config.model.max_seq_len)
    return model.eval(), tokenizer


# --------------------------------------------------------------------------- the leaderboard


@dataclass(frozen=True)
class _LoadedTask(Task):
    """A task that loads its rows once per split, so that timing a model does not time reading the world."""

    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def rows(self, config, split: str = "test") -> list[dict]:
        if split not in self.cache:
            self.cache[split] = super().rows(config, split)
        return self.cache[split]


def _preloaded(task: Task, config, splits=("test", "train")) -> _LoadedTask:
    """``task`` with the rows of ``splits`` loaded from ``config``'s world."""
    loaded = task if isinstance(task, _LoadedTask) else _LoadedTask(
        **{f.name: getattr(task, f.name) for f in dataclasses.fields(Task)})
    for split in splits[:1] if task.kind == "perplexity" else splits:  # documents have no splits
        loaded.rows(config, split)
    return loaded



def _model_and_tokenizer(entry, name: str):
    if isinstance(entry, tuple) and len(entry) == 2:
        return entry
    if hasattr(entry, "model") and hasattr(entry, "tokenizer"):
        return entry.model, entry.tokenizer
    raise TypeError(f"model {name!r}: expected a (model, tokenizer) pair or an object with .model and .tokenizer, "
                    f"got {type(entry).__name__}")


def leaderboard(models: Mapping[str, object], tasks="all", config=None, *, limit: int | None = None,
                num_fewshot: int = 0, batch_size: int = 16, progress: bool = True):
    """Every model on every task: a ``pandas.DataFrame`` with one row per (model, task).

    Args:
        models: name -> (model, tokenizer) or a zoo artifact with ``.model`` and ``.tokenizer``.
        tasks: anything ``resolve_tasks`` accepts (names, groups, ``"all"``).
        limit, num_fewshot, batch_size: passed to ``evaluate``.

    Columns: ``model, task, group, lang, kind, metric`` (the task's primary metric),
    ``score``, ``higher_is_better``, ``n`` (items), ``seconds`` (wall clock for the task) and
    ``ms_per_item``. Each task is timed on its own, after one untimed warm-up call per model;
    the time is the model's (prompts, scoring, generation, metrics), not reading the data.
    """
    import pandas as pd

    if not isinstance(models, Mapping):
        raise TypeError(f"models: expected a mapping name -> (model, tokenizer), got {type(models).__name__} "
                        f"{models!r:.40}")
    if not models:
        raise ValueError("models: expected at least one model, got an empty mapping")
    if config is None:
        from course_lib.config import load_config

        config = load_config()
    task_list = [_preloaded(t, config) for t in resolve_tasks(tasks)]
    rows = []
    bar = tqdm(total=len(models) * len(task_list), desc="leaderboard", unit="task", disable=not progress)
    for name, entry in models.items():
        model, tokenizer = _model_and_tokenizer(entry, name)
        evaluate(model, tokenizer, task_list[:1], config=config, limit=1, batch_size=batch_size)  # warm-up
        for task in task_list:
            bar.set_postfix_str(f"{name}: {task.name}")
            start = time.perf_counter()
            result = evaluate(model, tokenizer, [task], config=config, limit=limit, num_fewshot=num_fewshot,
                              batch_size=batch_size)["results"][task.name]
            seconds = time.perf_counter() - start
            score = result[task.primary]
            rows.append({"model": name, "task": task.name, "group": task.group, "lang": task.lang, "kind": task.kind,
                         "metric": task.primary, "score": math.nan if score is None else float(score),
                         "higher_is_better": task.primary not in LOWER_IS_BETTER, "n": result["n"],
                         "seconds": seconds, "ms_per_item": 1000 * seconds / max(result["n"], 1)})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def summary(table):
    """Per model: the mean score of each ability group, their ``average``, ``bits_per_byte`` and ``ms_per_item``.

    A group's score is the mean primary metric of its higher-is-better tasks (as
    ``evaluate``'s group scores); ``average`` is the mean over groups; ``bits_per_byte`` the
    mean over the perplexity tasks (lower is better); ``ms_per_item`` is total time / total items.
    Rows keep the order of the models in ``table``.
    """
    import pandas as pd

    models = list(dict.fromkeys(table["model"]))
    better = table[table["higher_is_better"]]
    groups = better.pivot_table(index="model", columns="group", values="score", aggfunc="mean")
    groups = groups[[g for g in GROUPS if g in groups.columns]]
    out = groups.reindex(models)
    out["average"] = out.mean(axis=1)
    bpb = table[table["metric"] == "bits_per_byte"].groupby("model")["score"].mean()
    if len(bpb):
        out["bits_per_byte"] = bpb.reindex(models)
    totals = table.groupby("model")[["seconds", "n"]].sum().reindex(models)
    out["ms_per_item"] = 1000 * totals["seconds"] / totals["n"].clip(lower=1)
    return pd.DataFrame(out)


def plot_leaderboard(table, ax=None, *, title: str | None = None):
    """Grouped bars: the mean score per ability group (x) for each model (colour). Returns the axes."""
    import matplotlib.pyplot as plt

    s = summary(table)
    groups = [g for g in GROUPS if g in s.columns]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(s)
    x = np.arange(len(groups))
    for i, (model, row) in enumerate(s.iterrows()):
        ax.bar(x + (i - (len(s) - 1) / 2) * width, [row[g] for g in groups], width, label=model)
    ax.set_xticks(x, [g.replace("_", "\n", 1) for g in groups], fontsize=8)
    top = max(0.05, float(np.nanmax(s[groups].values)) * 1.15)
    ax.set(title=title or "Leaderboard: mean primary metric per ability group", xlabel="ability group",
           ylabel="mean score (fraction, higher is better)", ylim=(0, top))
    ax.legend(title="model", fontsize=8)
    return ax


def plot_accuracy_vs_latency(table, ax=None, *, title: str | None = None):
    """HELM's view: average score (y) against milliseconds per item (x, log scale), one point per model."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    s = summary(table)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for model, row in s.iterrows():
        ax.scatter(row["ms_per_item"], row["average"], s=60)
        ax.annotate(model, (row["ms_per_item"], row["average"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, ... ms
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(title=title or "Accuracy vs latency (HELM: efficiency is a metric too)",
           xlabel="latency (ms per item, log scale)", ylabel="average score over ability groups")
    ax.grid(alpha=0.3)
    return ax


# --------------------------------------------------------------------------- template sensitivity

# Ways to ask a question, for tasks whose rows have a "question" (and possibly a "context"). The names are the
# same in both languages (and ASCII: matplotlib's default font has no Hangul).
PHRASINGS = {
    "en": {
        "Question/Answer": "Question: {question}\nAnswer:",
        "Q/A": "Q: {question}\nA:",
        "bare question": "{question}",
        "instruction": "Answer the question.\n\n{question}\nAnswer:",
        "the answer is": "{question} The answer is",
    },
    "ko": {
        "Question/Answer": "질문: {question}\n답:",
        "Q/A": "Q: {question}\nA:",
        "bare question": "{question}",
        "instruction": "다음 질문에 답하시오.\n\n{question}\n답:",
        "the answer is": "{question} 정답은",
    },
}


def with_template(task: Task, template: str | Callable[[dict, str], str]) -> Task:
    """A copy of ``task`` whose prompt is ``template``: a format string over the row's fields, or f(row, lang)."""
    if isinstance(template, str):
        def prompt(row: dict, lang: str, template=template) -> str:
            try:
                return template.format(**row)
            except KeyError as err:
                raise KeyError(f"template {template!r} names the field {err.args[0]!r}; rows of {task.name} have "
                               f"{sorted(row)}") from None
    else:
        prompt = template
    return dataclasses.replace(task, prompt=prompt)


def template_sensitivity(model, tokenizer, task: str | Task, phrasings: Mapping[str, str | Callable] | None = None, *,
                         config=None, split: str = "test", limit: int | None = None, metric: str | None = None,
                         num_fewshot: int = 0, batch_size: int = 16) -> dict:
    """Score the same items of ``task`` under each phrasing of the prompt.

    ``phrasings``: name -> template (see ``with_template``); default ``PHRASINGS[task.lang]``.
    Returns ``{"task", "metric", "ids", "scores": {name: score}, "min", "max", "mean", "std", "spread"}``
    (``std`` is the population standard deviation, ``spread`` is max - min); ``ids`` are the
    items every phrasing was scored on, in order.
    """
    if config is None:
        from course_lib.config import load_config

        config = load_config()
    task = _preloaded(get_task(task) if isinstance(task, str) else task, config, (split, "train"))
    phrasings = PHRASINGS[task.lang] if phrasings is None else phrasings
    if not phrasings:
        raise ValueError("phrasings is empty: give at least one name -> template")
    metric = metric or task.primary
    scores, ids = {}, None
    for name, template in phrasings.items():
        variant = with_template(task, template)
        report = evaluate(model, tokenizer, [variant], config=config, split=split, limit=limit, num_fewshot=num_fewshot,
                          batch_size=batch_size, samples=True)
        result = report["results"][task.name]
        if metric not in result:
            raise KeyError(f"task {task.name} has no metric {metric!r}; it has {list(task.metrics)}")
        item_ids = [item["id"] for item in report["samples"][task.name]]
        if ids is not None and item_ids != ids:
            raise RuntimeError(f"phrasing {name!r} was scored on other items than the first phrasing")
        ids, scores[name] = item_ids, result[metric]
    values = np.array(list(scores.values()), dtype=float)
    return {"task": task.name, "metric": metric, "ids": ids, "scores": scores, "min": float(values.min()),
            "max": float(values.max()), "mean": float(values.mean()), "std": float(values.std()),
            "spread": float(values.max() - values.min())}


def plot_template_sensitivity(results: Mapping[str, dict], ax=None, *, title: str | None = None):
    """Dots: each model's score (y) under each phrasing (x), from ``template_sensitivity`` per model name."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    first = next(iter(results.values()))
    names = list(first["scores"])
    for model, r in results.items():
        ax.plot(names, [r["scores"][n] for n in names], marker="o", label=f"{model} (spread {r['spread']:.2f})")
    ax.set(title=title or f"Template sensitivity: {first['task']}, {len(first['ids'])} items under each phrasing",
           xlabel="prompt phrasing", ylabel=f"{first['metric']} (fraction)")
    ax.tick_params(axis="x", labelrotation=15)
    ax.legend(fontsize=8)
    return ax
