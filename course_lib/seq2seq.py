"""Chapter 04: an encoder-decoder and a decoder fine-tuned on one sequence-to-sequence task, and what T5 reads.

The steps, each a function a notebook can call on its own::

    data         translation_data(cfg)                 the world's translation pairs (en-ko and ko-en)
    examples     make_examples(tokenizer, pairs, ...)   token ids, with labels on the target tokens only
    fine-tune    finetune(name, model, ...)            course_lib.training.train, one budget for every model
    decode       translate(model, tokenizer, sources)  greedy decoding, for either kind of model
    score        evaluate_translation(...)             chrF and BLEU (sacrebleu) and the loss per target token
    look inside  CrossAttention, cross_attention_*     T5's encoder-decoder attention, from scratch and read out
    compare      compare_architectures                 t5 against base after the same fine-tuning
                 compare_objectives                    span corruption against single-token masking

Both kinds of model get the same information. T5 reads ``source </s>`` with its encoder and
writes ``target </s>`` with its decoder; the decoder-only model reads ``<|endoftext|> source \\n``
and continues with ``target <|endoftext|>``. In both the loss covers the target tokens and the
end token only (the prompt's labels are -100), so the losses are nats per target token of the
same tokenizer, and comparable.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from .config import Config, TrainConfig
from .training import read_metrics, train

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)
SEPARATOR = "\n"  # ends the source in the decoder-only model's prompt; the pretraining text is full of newlines


# --------------------------------------------------------------------------- data


def translation_data(cfg: Config) -> dict[str, list[dict]]:
    """The world's translation task as ``{split: [{"source", "target", "lang"}, ...]}``.

    Splits ``train``, ``test`` (facts never seen in ``train``) and ``test_template`` (sentence
    templates never seen in ``train``); ``lang`` is ``"en-ko"`` or ``"ko-en"``.
    """
    from .world import load

    tasks = load("tasks", cfg, task="translation")
    return {split: [{"source": r["question"], "target": r["answer"], "lang": r["lang"]} for r in tasks[split]]
            for split in tasks}


def _ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encoder_decoder_example(tokenizer: PreTrainedTokenizerFast, source: str, target: str) -> dict:
    """``{"input_ids": source </s>, "labels": target </s>}`` (1-D tensors) for a T5 model."""
    eos = tokenizer.eos_token_id
    return {"input_ids": torch.tensor(_ids(tokenizer, source) + [eos]),
            "labels": torch.tensor(_ids(tokenizer, target) + [eos])}


def decoder_prompt(tokenizer: PreTrainedTokenizerFast, source: str) -> list[int]:
    """The decoder-only model's prompt: ``<|endoftext|> source \\n`` as token ids."""
    return [tokenizer.eos_token_id] + _ids(tokenizer, source + SEPARATOR)


def decoder_example(tokenizer: PreTrainedTokenizerFast, source: str, target: str) -> dict:
    """``{"input_ids": prompt target <eos>, "labels": -100 over the prompt, then target <eos>}`` (1-D tensors).

    The model shifts the labels itself, so the prompt's last token (the separator) is
    trained to predict the target's first token; the prompt's own tokens are never scored.
    """
    prompt = decoder_prompt(tokenizer, source)
    answer = _ids(tokenizer, target) + [tokenizer.eos_token_id]
    return {"input_ids": torch.tensor(prompt + answer), "labels": torch.tensor([IGNORE_INDEX] * len(prompt) + answer)}


def make_examples(tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict], encoder_decoder: bool) -> list[dict]:
    """Examples of ``pairs`` (dicts with ``source`` and ``target``) for a T5 model or for a decoder."""
    make = encoder_decoder_example if encoder_decoder else decoder_example
    return [make(tokenizer, p["source"], p["target"]) for p in pairs]


class PadCollator:
    """Examples ``{"input_ids", "labels"}`` of any lengths -> a right-padded batch.

    ``input_ids`` are padded with ``pad_id`` (``attention_mask`` 0 there) and ``labels`` with -100,
    each to its own longest row: (B, S) inputs and mask, (B, T) labels. For a decoder the two
    widths are equal, since each example's labels are as long as its inputs.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        def stack(rows: list[list[int]], fill: int) -> torch.Tensor:
            width = max(len(r) for r in rows)
            return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

        inputs = [torch.as_tensor(e["input_ids"]).tolist() for e in examples]
        return {"input_ids": stack(inputs, self.pad_id),
                "attention_mask": stack([[1] * len(r) for r in inputs], 0),
                "labels": stack([torch.as_tensor(e["labels"]).tolist() for e in examples], IGNORE_INDEX)}


# --------------------------------------------------------------------------- fine-tuning


def finetune_config(cfg: Config, steps: int | None = None, lr: float | None = None) -> TrainConfig:
    """The fine-tuning budget: ``pretrain.train``'s batch and optimizer with ``steps`` steps and peak ``lr``.

    Defaults: a fifth of the pretraining steps (at least 20) and its peak learning rate; warmup
    is a tenth of the steps; no evaluation or intermediate checkpoints during the run.
    """
    t = cfg.pretrain.train
    steps = steps or max(20, t.max_steps // 5)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return dataclasses.replace(t, max_steps=steps, lr=lr or t.lr, warmup_steps=max(1, steps // 10),
                               eval_every=0, save_every=0, log_every=max(1, steps // 25))


@dataclass
class FinetuneRun:
    """A fine-tuned model, its tokenizer, its training log and how long the run took."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    metrics: list[dict]
    seconds: float


def finetune(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict],
             train_cfg: TrainConfig, output_dir: str | Path, *, seed: int = 0, config: Config | None = None,
             ) -> FinetuneRun:
    """Train ``model`` (in place) on the ``pairs`` with ``train_cfg``: T5 or decoder, found from its config."""
    examples = make_examples(tokenizer, pairs, model.config.is_encoder_decoder)
    start = time.perf_counter()
    train(model, examples, train_cfg, output_dir=output_dir, collate_fn=PadCollator(tokenizer.pad_token_id),
          seed=seed, resume=False, config=config)
    model.eval()
    return FinetuneRun(name, model, tokenizer, read_metrics(output_dir), time.perf_counter() - start)


# --------------------------------------------------------------------------- decoding and scoring


def _batches(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@torch.no_grad()
def translate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sources: Sequence[str], *,
              max_new_tokens: int | None = None, batch_size: int = 32) -> list[str]:
    """Greedy outputs of ``model`` for ``sources``: the same text for the same inputs, every time.

    T5 gets right-padded ``source </s>``; a decoder gets left-padded prompts and its output is
    cut at the first newline. Decoding stops at the end token or after ``max_new_tokens``
    (default: twice the longest source of the batch, in tokens, plus 4).
    """
    model.eval()
    out = []
    for chunk in _batches(list(sources), batch_size):
        if model.config.is_encoder_decoder:
            rows = [encoder_decoder_example(tokenizer, s, "")["input_ids"].tolist() for s in chunk]
            batch = PadCollator(tokenizer.pad_token_id)([{"input_ids": r, "labels": []} for r in rows])
            batch.pop("labels")
        else:
            rows = [decoder_prompt(tokenizer, s) for s in chunk]
            width = max(map(len, rows))  # left padding: every prompt ends where generation starts
            batch = {"input_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows]),
                     "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])}
        batch = {k: v.to(model.device) for k, v in batch.items()}
        new = max_new_tokens or 2 * max(map(len, rows)) + 4
        ids = model.generate(**batch, max_new_tokens=new, do_sample=False, num_beams=1,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        if not model.config.is_encoder_decoder:
            ids = ids[:, batch["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        out += [t.split(SEPARATOR)[0].strip() for t in texts]
    return out


@torch.no_grad()
def target_loss(model: PreTrainedModel, examples: Sequence[dict], pad_id: int, batch_size: int = 32) -> float:
    """Mean cross-entropy (nats) per target token of ``examples`` (every token weighs the same)."""
    model.eval()
    total, count = 0.0, 0
    for chunk in _batches(list(examples), batch_size):
        batch = {k: v.to(model.device) for k, v in PadCollator(pad_id)(chunk).items()}
        labels = batch.pop("labels")
        if model.config.is_encoder_decoder:
            logits = model(**batch, labels=labels).logits  # (B, T, V): T5 shifts the labels into its decoder
        else:
            logits, labels = model(**batch).logits[:, :-1], labels[:, 1:]  # position t predicts token t + 1
        total += torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                                                   ignore_index=IGNORE_INDEX, reduction="sum").item()
        count += int((labels != IGNORE_INDEX).sum())
    if not count:
        raise ValueError("target_loss needs at least one target token")
    return total / count


def evaluate_translation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, pairs: Sequence[dict],
                         batch_size: int = 32) -> dict:
    """``{"chrF", "BLEU", "loss", "predictions"}`` of ``model`` on ``pairs`` (greedy outputs, corpus scores).

    chrF and BLEU are sacrebleu's corpus scores as fractions (0..1); chrF (character 6-grams)
    suits Korean, where a word carries its particles. ``loss`` is ``target_loss`` on the references.
    """
    from .evaluation.metrics import bleu, chrf

    if not pairs:
        raise ValueError("evaluate_translation needs at least one pair")
    predictions = translate(model, tokenizer, [p["source"] for p in pairs], batch_size=batch_size)
    references = [p["target"] for p in pairs]
    examples = make_examples(tokenizer, pairs, model.config.is_encoder_decoder)
    return {"chrF": chrf(predictions, references), "BLEU": bleu(predictions, references),
            "loss": target_loss(model, examples, tokenizer.pad_token_id, batch_size), "predictions": predictions}


# --------------------------------------------------------------------------- cross-attention


class CrossAttention(torch.nn.Module):
    """T5's encoder-decoder attention, one screen long: queries from the decoder, keys and values from the encoder.

    ``forward(x, memory, memory_mask)`` maps the (normalized) decoder states x (B, T, d) and the
    encoder's last hidden states (B, S, d) to (B, T, d); ``last_weights`` keeps the (B, H, T, S)
    weights of the last call. T5 neither scales the scores by 1/sqrt(D) (its initialization
    does that job) nor adds position biases here: where a source token sits reaches the
    decoder only through the encoder's states. ``from_t5`` copies a ``T5LayerCrossAttention``.
    """

    def __init__(self, d_model: int, n_head: int, d_kv: int):
        super().__init__()
        self.n_head, self.d_kv = n_head, d_kv
        self.q = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.k = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.v = torch.nn.Linear(d_model, n_head * d_kv, bias=False)
        self.o = torch.nn.Linear(n_head * d_kv, d_model, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        (B, T, _), S = x.shape, memory.shape[1]
        # Queries: what each output position asks; keys and values: what each source token offers.
        q = self.q(x).view(B, T, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, T, D)
        k = self.k(memory).view(B, S, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, S, D)
        v = self.v(memory).view(B, S, self.n_head, self.d_kv).transpose(1, 2)  # (B, H, S, D)
        scores = q @ k.transpose(-2, -1)  # (B, H, T, S)
        if memory_mask is not None:  # (B, S), 1 at real source tokens: padding gets weight 0
            scores = scores.masked_fill(~memory_mask.bool()[:, None, None, :], float("-inf"))
        self.last_weights = torch.softmax(scores.float(), dim=-1).to(x.dtype)  # each row sums to 1 over the source
        out = (self.last_weights @ v).transpose(1, 2).reshape(B, T, self.n_head * self.d_kv)
        return self.o(out)

    @classmethod
    def from_t5(cls, layer) -> CrossAttention:
        """A copy of the attention of ``layer``, a ``T5LayerCrossAttention`` (``decoder.block[i].layer[1]``)."""
        attn = getattr(layer, "EncDecAttention", layer)
        if getattr(attn, "has_relative_attention_bias", False):
            raise ValueError("from_t5 copies a cross-attention layer; this one has relative position biases")
        new = cls(attn.d_model, attn.n_heads, attn.key_value_proj_dim)
        new.load_state_dict({k: attn.state_dict()[k] for k in ("q.weight", "k.weight", "v.weight", "o.weight")})
        return new


@contextmanager
def eager_attention(model: PreTrainedModel):
    """Run ``model`` with the plain ("eager") attention inside the block: SDPA cannot return its weights."""
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(old)


def _layer_index(model: PreTrainedModel, layer: int) -> int:
    n = len(model.decoder.block)
    if not -n <= layer < n:
        raise IndexError(f"layer {layer} is out of range for a decoder with {n} layers")
    return layer % n


@torch.no_grad()
def cross_attention_weights(model: PreTrainedModel, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                            layer: int = -1, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, T, S) weights of decoder layer ``layer``'s cross-attention, by a forward pass (teacher forcing).

    Row t of head h says how much decoder position t (reading ``decoder_input_ids[:, t]``, writing
    the next token) takes from each of the S source positions; it sums to 1 over them.
    """
    i = _layer_index(model, layer)
    model.eval()
    with eager_attention(model):
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                    output_attentions=True)
    return out.cross_attentions[i]


@torch.no_grad()
def cross_attention_inputs(model: PreTrainedModel, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                           layer: int = -1, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """What decoder layer ``layer``'s cross-attention sublayer reads and writes in one forward pass.

    ``{"x": decoder states going in (B, T, d), "memory": the states its keys and values come
    from (B, S, d), "encoder_output": the encoder's last hidden states (B, S, d), "output":
    x plus the attention's output (B, T, d)}``. ``memory`` equals ``encoder_output``: that is
    the whole hand-off from encoder to decoder, in every decoder layer.
    """
    block = model.decoder.block[_layer_index(model, layer)].layer[1]  # self-attention, cross-attention, feed-forward
    seen = {}

    def before(module, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["memory"] = kwargs["key_value_states"].detach().clone()

    def after(module, args, kwargs, output):
        seen["output"] = output[0].detach().clone()

    hooks = [block.register_forward_pre_hook(before, with_kwargs=True),
             block.register_forward_hook(after, with_kwargs=True)]
    model.eval()
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    finally:
        for h in hooks:
            h.remove()
    return {**seen, "encoder_output": out.encoder_last_hidden_state}


@torch.no_grad()
def attention_while_generating(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, source: str, *,
                               layer: int = -1, max_new_tokens: int | None = None) -> dict:
    """Translate ``source`` greedily and keep decoder layer ``layer``'s cross-attention at every step.

    Returns ``{"source_ids": (S,), "output_ids": (T,) the generated tokens, "weights": (H, T, S)}``:
    row t is the attention while the decoder chose output token t (it reads token t - 1, or the
    start token for t = 0). Generation caches the keys and values the encoder's states give,
    so each step computes only its own query.
    """
    i = _layer_index(model, layer)
    source_ids = encoder_decoder_example(tokenizer, source, "")["input_ids"]
    model.eval()
    with eager_attention(model):
        out = model.generate(input_ids=source_ids[None].to(model.device),
                             max_new_tokens=max_new_tokens or 2 * len(source_ids) + 4, do_sample=False,
                             num_beams=1, return_dict_in_generate=True, output_attentions=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    weights = torch.cat([step[i][0] for step in out.cross_attentions], dim=1)  # steps x (H, 1, S) -> (H, T, S)
    return {"source_ids": source_ids, "output_ids": out.sequences[0, 1:].cpu(), "weights": weights.cpu()}


# --------------------------------------------------------------------------- token labels for plots

_LEADS = ["g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h"]
_VOWELS = ["a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we", "wi",
           "yu", "eu", "ui", "i"]
_TAILS = ["", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t", "t",
          "ng", "t", "t", "k", "t", "p", "t"]


def romanize(text: str) -> str:
    """Hangul syllables in Revised Romanization, letter by letter (no sound-change rules); other text unchanged.

    For plot labels: matplotlib's default font has no Hangul. ``romanize("들개릴")`` is ``"deulgaeril"``.
    """
    out = []
    for ch in unicodedata.normalize("NFC", text):
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            lead, rest = divmod(code, 21 * 28)
            vowel, tail = divmod(rest, 28)
            out.append(_LEADS[lead] + _VOWELS[vowel] + _TAILS[tail])
        else:
            out.append(ch)
    return "".join(out)


def token_labels(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int], romanized: bool = True) -> list[str]:
    """One readable label per token id: the characters whose first byte the token holds.

    A byte-level BPE token may hold part of a Hangul syllable (3 UTF-8 bytes); the syllable is
    shown on the token that holds its first byte, and a token holding only continuation bytes
    gets ``"·"``. Special tokens keep their names; Hangul is romanized unless ``romanized=False``.
    """
    from .tokenization import bytes_to_unicode

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    pieces: list[bytes] = []
    for t in ids:
        t = int(t)
        pieces.append(b"" if t in special else bytes(byte_of[c] for c in tokenizer.convert_ids_to_tokens(t)))
    data = b"".join(pieces)
    starts = np.cumsum([0] + [len(p) for p in pieces])  # byte offset where each token starts
    owner = np.searchsorted(starts, np.arange(len(data)), side="right") - 1  # token of each byte
    chars = [[] for _ in ids]
    pos = 0
    for ch in data.decode("utf-8", errors="replace"):
        width = len(ch.encode("utf-8")) if ch != "\ufffd" else 1
        if pos < len(data):
            chars[owner[pos]].append(ch)
        pos += width
    labels = []
    for t, cs in zip(ids, chars):
        if int(t) in special:
            labels.append(tokenizer.convert_ids_to_tokens(int(t)))
        else:
            text = "".join(cs).replace("\n", "\\n")
            labels.append((romanize(text) if romanized else text) or "·")
    return labels


def plot_cross_attention(weights: torch.Tensor, source_labels: Sequence[str], output_labels: Sequence[str], ax=None,
                         title: str = "Cross-attention"):
    """Heat map of (T, S) weights: one row per output token, one column per source token; returns the Axes."""
    import matplotlib.pyplot as plt

    w = torch.as_tensor(weights).float().numpy()
    if w.shape != (len(output_labels), len(source_labels)):
        raise ValueError(f"weights {w.shape} do not match {len(output_labels)} output labels "
                         f"and {len(source_labels)} source labels")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(source_labels) + 2.5, 0.35 * len(output_labels) + 1.8))
    im = ax.imshow(w, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(source_labels)), source_labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(output_labels)), output_labels, fontsize=8)
    ax.set(title=title, xlabel="source token (encoder position)", ylabel="output token (decoder step)")
    ax.figure.colorbar(im, ax=ax, label="attention weight (row sums to 1)")
    return ax


# --------------------------------------------------------------------------- experiment 1: t5 against base


@dataclass
class Comparison:
    """The rows of an experiment (one per model or objective and test split) and the fine-tuned runs."""

    rows: list[dict]
    runs: dict[str, FinetuneRun] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def _score_rows(run: FinetuneRun, data: dict[str, list[dict]], splits: Sequence[str], **extra) -> list[dict]:
    rows = []
    for split in splits:
        scores = evaluate_translation(run.model, run.tokenizer, data[split])
        rows.append({**extra, "split": split, "examples": len(data[split]), "chrF": scores["chrF"],
                     "BLEU": scores["BLEU"], "loss": scores["loss"], "finetune_seconds": run.seconds,
                     "predictions": scores["predictions"]})
    return rows


def _work_dir(work_dir: str | Path | None):
    """A context giving the folder for the runs: ``work_dir`` (kept), else a temporary one (removed after)."""
    if work_dir is None:
        return tempfile.TemporaryDirectory(prefix="seq2seq-")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return nullcontext(str(work_dir))


def compare_architectures(cfg: Config, *, steps: int | None = None, lr: float | None = None,
                          seeds: Sequence[int] | None = None, splits: Sequence[str] = ("test", "test_template"),
                          work_dir: str | Path | None = None) -> Comparison:
    """Fine-tune ``t5`` and ``base`` (zoo) on the world's translation pairs with one budget; score both.

    Same examples, steps, batch, learning rate and seed (``finetune_config``); each seed in
    ``seeds`` (default ``run.seed``) is one fine-tuning of each model from its pretrained
    weights. Rows ``{"model", "architecture", "parameters", "seed", "split", "examples", "chrF",
    "BLEU", "loss", "finetune_seconds", "predictions"}``; ``runs`` keeps the last seed's models.
    """
    from . import zoo
    from .models import count_parameters

    train_cfg = finetune_config(cfg, steps, lr)
    data = translation_data(cfg)
    seeds = list(seeds) if seeds is not None else [cfg.run.seed]
    rows, runs = [], {}
    with _work_dir(work_dir) as root:
        for seed in seeds:
            for name, architecture in (("t5", "encoder-decoder"), ("base", "decoder-only")):
                pretrained = zoo.get(name, cfg)
                run = finetune(name, pretrained.model, pretrained.tokenizer, data["train"], train_cfg,
                               Path(root) / f"{name}-seed{seed}", seed=seed, config=cfg)
                rows += _score_rows(run, data, splits, model=name, architecture=architecture,
                                    parameters=count_parameters(run.model), seed=seed)
                runs[name] = run
    return Comparison(rows, runs, {"finetune": dataclasses.asdict(train_cfg), "train_pairs": len(data["train"]),
                                   "seeds": seeds})


# --------------------------------------------------------------------------- experiment 2: spans or single tokens


class Chunks(torch.utils.data.Dataset):
    """Each row of ``blocks`` cut into ``pieces`` equal chunks: row j is chunk j % pieces of block j // pieces."""

    def __init__(self, blocks, pieces: int):
        if pieces < 1:
            raise ValueError(f"pieces must be >= 1, got {pieces}")
        self.blocks, self.pieces = blocks, pieces

    def __len__(self) -> int:
        return len(self.blocks) * self.pieces

    def __getitem__(self, j: int) -> dict:
        if not 0 <= j < len(self):
            raise IndexError(j)
        ids = self.blocks[j // self.pieces]["input_ids"]
        n = len(ids) // self.pieces
        piece = ids[(j % self.pieces) * n : (j % self.pieces + 1) * n]
        return {"input_ids": piece, "labels": piece.clone()}


def pieces_for_sentinels(block_size: int, num_sentinels: int, noise_density: float = 0.15,
                         mean_noise_span_length: float = 1.0) -> int:
    """The fewest equal chunks of a block whose noise spans each fit the tokenizer's sentinels.

    Span corruption needs one sentinel per noise span: single-token masking of a 256-token
    block at density 0.15 makes 38 spans. Cutting blocks into chunks keeps the spans per
    example within ``num_sentinels``, for every objective compared, so they see the same text.
    """
    from .pretraining import noise_span_counts

    for pieces in range(1, block_size // 2 + 1):
        length = block_size // pieces
        if length >= 2 and noise_span_counts(length, noise_density, mean_noise_span_length)[1] <= num_sentinels:
            return pieces
    raise ValueError(f"no chunking of {block_size}-token blocks fits {num_sentinels} sentinels")


@torch.no_grad()
def hidden_token_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, blocks,
                      mean_noise_span_length: float, *, noise_density: float = 0.15, seed: int = 0,
                      batch_size: int = 16) -> float:
    """Mean cross-entropy (nats) of the hidden tokens when T5 ``model`` denoises ``blocks``.

    Each block is span-corrupted (``pretraining.span_corrupt``, seeded by ``(seed, i)``); only the
    target's hidden text tokens count, not its sentinels or end token, so objectives with
    different numbers of sentinels compare on the same thing: how well a hidden token is
    recovered from what is left visible.
    """
    from .pretraining import SpanCorruptedBlocks, SpanCorruptionCollator, noise_span_counts, sentinel_ids

    length = len(blocks[0]["input_ids"])
    sentinels = sentinel_ids(tokenizer, noise_span_counts(length, noise_density, mean_noise_span_length)[1])
    data = SpanCorruptedBlocks(blocks, sentinels, tokenizer.eos_token_id, noise_density=noise_density,
                               mean_noise_span_length=mean_noise_span_length, seed=seed)
    skip = torch.tensor(sentinels + [tokenizer.eos_token_id])
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        rows = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batch = SpanCorruptionCollator(tokenizer.pad_token_id)(rows)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        labels = batch["labels"]
        logits = model(**batch).logits.float()  # (B, T, V)
        scored = (labels != IGNORE_INDEX) & ~torch.isin(labels, skip.to(labels.device))
        losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten(),
                                                   reduction="none")
        total += losses[scored.flatten()].sum().item()
        count += int(scored.sum())
    if not count:
        raise ValueError("hidden_token_loss needs at least one hidden token")
    return total / count


def held_out_chunks(cfg: Config, pieces: int):
    """The held-out ``pretrain-data`` blocks, each cut into ``pieces`` chunks (see ``Chunks``)."""
    from . import zoo
    from .pretraining import TOKEN_FILES, PackedBlocks

    return Chunks(PackedBlocks(zoo.build("pretrain-data", cfg) / TOKEN_FILES["eval"], cfg.pretrain.block_size), pieces)


OBJECTIVES = {"span corruption": 3.0, "single-token masking": 1.0}  # name -> mean noise span length (T5's 3)


def pretrain_objective(cfg: Config, mean_noise_span_length: float, steps: int, output_dir: str | Path, *,
                       noise_density: float = 0.15, pieces: int | None = None) -> tuple[PreTrainedModel, dict]:
    """A fresh T5 pretrained for ``steps`` steps by span corruption with the given mean span length.

    The data is ``pretrain-data``'s training blocks cut into ``pieces`` chunks (default: the
    fewest for which single-token masking fits the sentinels), ``pieces * pretrain.train.batch_size``
    chunks a step (the tokens per step of ``t5``) with ``pretrain.train``'s optimizer and
    schedule shortened to ``steps``. Returns the model and ``{"seconds", "input_tokens",
    "target_tokens", "final_loss"}`` (tokens per example, padding excluded).
    """
    from . import zoo
    from .pretraining import (
        TOKEN_FILES,
        PackedBlocks,
        SpanCorruptedBlocks,
        SpanCorruptionCollator,
        new_t5_model,
        noise_span_counts,
        sentinel_ids,
    )

    tokenizer = zoo.get("tokenizer", cfg)
    block = cfg.pretrain.block_size
    available = len(sentinel_ids(tokenizer))
    pieces = pieces or pieces_for_sentinels(block, available, noise_density)
    chunks = Chunks(PackedBlocks(zoo.build("pretrain-data", cfg) / TOKEN_FILES["train"], block), pieces)
    t = cfg.pretrain.train
    train_cfg = dataclasses.replace(t, max_steps=steps, batch_size=t.batch_size * pieces,
                                    warmup_steps=min(t.warmup_steps, max(1, steps // 10)), eval_every=0,
                                    save_every=0, log_every=max(1, steps // 25))
    n, s = noise_span_counts(block // pieces, noise_density, mean_noise_span_length)
    passes = max(1, -(-steps * train_cfg.batch_size // len(chunks)))  # fresh spans on every pass
    data = SpanCorruptedBlocks(chunks, sentinel_ids(tokenizer, s), tokenizer.eos_token_id, noise_density=noise_density,
                               mean_noise_span_length=mean_noise_span_length, seed=cfg.run.seed, passes=passes)
    model = new_t5_model(cfg, tokenizer)
    start = time.perf_counter()
    result = train(model, data, train_cfg, output_dir=output_dir,
                   collate_fn=SpanCorruptionCollator(tokenizer.pad_token_id), seed=cfg.run.seed, resume=False,
                   config=cfg)
    return model, {"seconds": time.perf_counter() - start, "input_tokens": block // pieces - n + s + 1,
                   "target_tokens": n + s + 1, "final_loss": result.train_loss, "pieces": pieces,
                   "metrics": read_metrics(output_dir)}


def compare_objectives(cfg: Config, *, pretrain_steps: int | None = None, finetune_steps: int | None = None,
                       lr: float | None = None, splits: Sequence[str] = ("test", "test_template"),
                       include_scratch: bool = True, work_dir: str | Path | None = None) -> Comparison:
    """Pretrain one T5 per objective in ``OBJECTIVES`` with one budget, fine-tune each alike, score on translation.

    Same model size, seed, data (chunked as ``pretrain_objective`` says), steps, batch and
    learning rate for both objectives; then the same fine-tuning (``finetune_config``) and
    greedy decoding. ``pretrain_steps`` defaults to a fifteenth of ``pretrain.train.max_steps``
    (the ``t5`` artifact trains for all of them, at least 20), so that the experiment fits a notebook.
    With ``include_scratch`` an unpretrained T5 is fine-tuned too, as the floor. Rows
    ``{"pretraining", "mean_span", "pretrain_steps", "pretrain_seconds", "input_tokens",
    "target_tokens", "pretrain_loss", "hidden_loss_span3", "hidden_loss_span1", "split", ...scores}``:
    ``hidden_loss_span<m>`` is ``hidden_token_loss`` of the pretrained model (before fine-tuning) on
    held-out chunks corrupted with mean span length m. ``settings["pretrain_metrics"]`` has each
    pretraining log.
    """
    from . import zoo
    from .pretraining import new_t5_model, sentinel_ids

    pretrain_steps = pretrain_steps or max(20, cfg.pretrain.train.max_steps // 15)
    train_cfg = finetune_config(cfg, finetune_steps, lr)
    data = translation_data(cfg)
    tokenizer = zoo.get("tokenizer", cfg)
    available = len(sentinel_ids(tokenizer))
    rows, runs, logs, pieces = [], {}, {}, None
    with _work_dir(work_dir) as root:
        todo = list(OBJECTIVES.items()) + ([("no pretraining", None)] if include_scratch else [])
        for name, mean_span in todo:
            if mean_span is None:
                model, info = new_t5_model(cfg, tokenizer), {"seconds": 0.0, "input_tokens": None,
                                                            "target_tokens": None, "final_loss": None}
            else:
                model, info = pretrain_objective(cfg, mean_span, pretrain_steps, Path(root) / f"pretrain-{mean_span:g}")
                logs[name], pieces = info.pop("metrics"), info["pieces"]
            held_out = held_out_chunks(cfg, pieces or pieces_for_sentinels(cfg.pretrain.block_size, available))
            hidden = {f"hidden_loss_span{m:g}": hidden_token_loss(model, tokenizer, held_out, m, seed=cfg.run.seed)
                      for m in OBJECTIVES.values()}  # before fine-tuning: how well each denoises either way
            run = finetune(name, model, tokenizer, data["train"], train_cfg, Path(root) / f"finetune-{mean_span}",
                           seed=cfg.run.seed, config=cfg)
            rows += _score_rows(run, data, splits, pretraining=name, mean_span=mean_span,
                                pretrain_steps=0 if mean_span is None else pretrain_steps,
                                pretrain_seconds=info["seconds"], input_tokens=info["input_tokens"],
                                target_tokens=info["target_tokens"], pretrain_loss=info["final_loss"], **hidden)
            runs[name] = run
    return Comparison(rows, runs, {"finetune": dataclasses.asdict(train_cfg), "pretrain_steps": pretrain_steps,
                                   "pieces": pieces, "chunk_tokens": cfg.pretrain.block_size // (pieces or 1),
                                   "pretrain_metrics": logs})
