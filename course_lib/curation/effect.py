"""The effect of curation on the model (Lee et al. 2021): the same small decoder, the same budget, raw vs curated data.

Two pieces:

- the zoo artifact ``curated``: the world's pretraining documents (``in_pretraining``)
  after chapter 02's default pipeline (``pipeline.from_config``), with the audit of
  every input document beside them. ``pretrain.corpus=curated`` trains on it.
- the experiment (``curation_effect``): two decoders of the ``model`` size, trained with
  ``pretrain.train`` (same steps, batch, block size, seed) on the raw and on the curated
  training documents, then measured on

  * held-out perplexity on the *same* text for both (``corpus_split``): the held-out
    documents the world labels clean and curation keeps, as curation leaves them (and, as a
    second number, as the raw corpus has them), at the end and at each evaluation of the run;
  * memorization of duplicated passages: a page that the raw corpus holds two or three
    times (the world's ``dup_cluster``) and the curated one once; prompted with a window
    of its tokens, does the model continue with the next ones exactly?
    (``passage_probes``; pages seen once by both models are the control);
  * regurgitation of resident registration numbers (주민등록번호) present in the raw
    training text (curation masks them, or drops their page): prompted with the text before a
    number, does the model write its 13 digits? Given its birth date, the last 7? And, more
    sensitive, their *exposure* (Carlini et al. 2019): how far above random serials does the
    model rank the true one (``rrn_exposure``)?

Both models use one tokenizer, the chapter 03 tokenizer trained on the *raw* training
documents, so the vocabulary is not a second difference between the runs: only the
training text differs. Held-out documents are chosen by ``world.is_held_out``,
which hashes the duplicate cluster, so no copy of a held-out page is trained on in
either run.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from pathlib import Path

import torch

from .. import zoo
from ..config import Config, TrainConfig
from ..models import new_decoder
from ..packing import PackedBlocks, perplexity, write_tokens
from ..runs import read_metrics
from ..training import train
from ..world.splits import is_held_out
from . import pipeline

DOCUMENTS_FILE = "documents.jsonl"
AUDIT_FILES = {"markdown": "audit.md", "json": "audit.json"}
CORPORA = ("raw", "curated")


# --------------------------------------------------------------------------- the curated corpus


def _corpus_cfg(cfg: Config, corpus: str) -> Config:
    """A copy of ``cfg`` reading the world's documents with ``pretrain.corpus=corpus``."""
    out = copy.deepcopy(cfg)
    out.pretrain.corpus = corpus
    out.data.source = "world"
    out.pretrain.source = ""
    out.pretrain.max_documents = 0
    return out


def raw_documents(cfg: Config) -> list[dict]:
    """The world's pretraining documents (``in_pretraining``), as chapter 03's raw corpus reads them."""
    from ..world import load

    return [d for d in load("documents", _corpus_cfg(cfg, "raw")) if d["in_pretraining"]]


def curate_world(cfg: Config) -> pipeline.Result:
    """Chapter 02's default pipeline (``pipeline.from_config``) over ``raw_documents``: kept documents and audit."""
    return pipeline.from_config(cfg).run(raw_documents(cfg))


def _load_curated(path: Path, cfg: Config) -> list[dict]:
    with open(path / DOCUMENTS_FILE, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@zoo.register(
    "curated", load=_load_curated, sections=("world", "data", "curation"),
    description="the world's pretraining documents after chapter 02's pipeline (filtered, deduplicated, PII masked)",
)
def _build_curated(cfg: Config, out: Path) -> None:
    result = curate_world(cfg)
    with open(out / DOCUMENTS_FILE, "w", encoding="utf-8") as f:
        for doc in result.dataset.to_list():
            doc.pop("pii", None)  # the labels' offsets point into the raw text, not the masked one
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    (out / AUDIT_FILES["markdown"]).write_text(result.audit.markdown() + "\n", encoding="utf-8")
    audit = {"n_input": result.audit.n_input, "steps": result.audit.steps,
             "fate": {k: list(v) for k, v in result.audit.fate.items()}}
    (out / AUDIT_FILES["json"]).write_text(json.dumps(audit, indent=1, ensure_ascii=False), encoding="utf-8")


def curated_audit(cfg: Config) -> dict:
    """The audit of the ``curated`` artifact: ``n_input``, per-step rows and each document's ``fate``."""
    folder = zoo.build("curated", cfg)
    return json.loads((folder / AUDIT_FILES["json"]).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the two corpora


def corpus_split(cfg: Config) -> dict:
    """Training documents per corpus and the shared clean held-out set.

    ``{"raw": [...], "curated": [...], "held_out": [...], "held_out_raw_text": [...]}``.
    ``held_out`` is every held-out document that the world labels clean (no quality flag,
    no personal data) and that curation keeps, as curation leaves it (C4's line rule cuts
    a web page's title line, say); ``held_out_raw_text`` is the same documents as the raw
    corpus has them. Both models are scored on identical text.
    """
    frac, seed = cfg.pretrain.eval_fraction, cfg.run.seed
    raw = raw_documents(cfg)
    curated = zoo.get("curated", cfg)
    kept = {d["id"]: d for d in curated}
    clean = [d for d in raw if is_held_out(d, frac, seed) and d["id"] in kept
             and not d.get("quality_flags") and not d.get("pii")]
    return {
        "raw": [d for d in raw if not is_held_out(d, frac, seed)],
        "curated": [d for d in curated if not is_held_out(d, frac, seed)],
        "held_out": [kept[d["id"]] for d in clean],
        "held_out_raw_text": clean,
    }


def shared_tokenizer(cfg: Config):
    """Chapter 03's tokenizer trained on the raw corpus (``pretrain.corpus=raw``), used by both runs."""
    return zoo.get("tokenizer", _corpus_cfg(cfg, "raw"))


def _blocks(docs: list[dict], tokenizer, path: Path, block_size: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    write_tokens([d["text"] for d in docs], tokenizer, path)
    return PackedBlocks(path, block_size)


def train_on(cfg: Config, train_docs: list[dict], held_out: list[dict], tokenizer, output_dir: str | Path,
             train_cfg: TrainConfig | None = None):
    """A fresh ``model``-size decoder trained with ``train_cfg`` (default ``pretrain.train``) on ``train_docs``,
    evaluated on ``held_out``.

    Returns ``(model, TrainResult)``; the run folder holds the token files, ``metrics.jsonl``
    (its eval loss is on ``held_out``) and ``final/``.
    """
    out = Path(output_dir)
    block = cfg.pretrain.block_size
    train_blocks = _blocks(train_docs, tokenizer, out / "train.bin", block)
    eval_blocks = _blocks(held_out, tokenizer, out / "eval.bin", block)
    model = new_decoder(cfg, tokenizer)
    result = train(model, train_blocks, train_cfg or cfg.pretrain.train, output_dir=out,
                   eval_dataset=eval_blocks if len(eval_blocks) else None, seed=cfg.run.seed, resume=False, config=cfg)
    return model, result


def held_out_perplexity(model, tokenizer, held_out: list[dict], block_size: int, folder: str | Path) -> float:
    """Perplexity of ``model`` on ``held_out`` packed in ``block_size`` blocks (``packing.perplexity``)."""
    return perplexity(model, _blocks(held_out, tokenizer, Path(folder) / "held_out.bin", block_size))


# --------------------------------------------------------------------------- memorization probes


@torch.no_grad()
def greedy_ids(model, prompts: list[list[int]], max_new_tokens: int, pad_id: int,
               batch_size: int = 64) -> list[list[int]]:
    """Greedy continuations (``max_new_tokens`` token ids each) of token-id prompts, left-padded in batches."""
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i : i + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=model.device)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             min_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
        out += gen[:, width:].tolist()
    return out


def passage_probes(split: dict, tokenizer, prefix_tokens: int = 32, target_tokens: int = 16,
                   max_windows: int = 4) -> list[dict]:
    """Windows of training pages: ``prefix_tokens`` of prompt, then the ``target_tokens`` that follow.

    Windows are cut from each curated training page's tokens (from its start, after
    ``<|endoftext|>``; up to ``max_windows`` non-overlapping ones) and kept when their text
    is also in the raw version of the page, so both models trained on it. ``copies`` is how
    many documents of the page's duplicate cluster the raw training corpus holds (1 for a
    page without duplicates); the curated corpus holds one.
    Rows: ``doc_id, copies, prompt (ids), target (ids)``.
    """
    raw = {d["id"]: d for d in split["raw"]}
    copies = Counter(d["dup_cluster"] for d in split["raw"] if d.get("dup_cluster"))
    width = prefix_tokens + target_tokens
    rows = []
    for doc in split["curated"]:
        if doc["id"] not in raw:
            continue
        raw_text = raw[doc["id"]]["text"]
        stream = [tokenizer.eos_token_id] + tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        windows = [stream[i : i + width] for i in range(0, len(stream) - width + 1, width)]
        windows = [w for w in windows if tokenizer.decode(w, skip_special_tokens=True) in raw_text][:max_windows]
        for w in windows:
            rows.append({"doc_id": doc["id"], "copies": copies.get(doc.get("dup_cluster") or "", 1),
                         "prompt": w[:prefix_tokens], "target": w[prefix_tokens:]})
    return rows


def passage_memorization(model, tokenizer, probes: list[dict]) -> list[dict]:
    """Each probe with ``exact`` (the greedy continuation is the target, token for token) and ``token_match``."""
    if not probes:
        return []
    k = len(probes[0]["target"])
    outputs = greedy_ids(model, [p["prompt"] for p in probes], k, tokenizer.pad_token_id)
    rows = []
    for probe, got in zip(probes, outputs):
        same = [a == b for a, b in zip(got, probe["target"])]
        rows.append({**probe, "output": got, "exact": all(same), "token_match": sum(same) / k})
    return rows


RRN_TYPES = ("rrn", "rrn_post2020")  # the world's labels for resident registration numbers


def rrn_probes(split: dict) -> list[dict]:
    """Every labelled resident registration number in the raw training documents, as two prompts.

    ``prompt_full``: the document's text before the number (trailing spaces cut, as the
    tokenizer attaches a space to the digits after it), continued correctly by ``number``;
    ``prompt_date``: the text through its six birth-date digits, continued by ``rest`` (the
    separator and the last seven digits). ``in_curated``: whether the number (with or without
    its separator) occurs anywhere in the curated training text (it should not: curation masks
    it or drops its page).
    """
    curated_text = "\n".join(d["text"] for d in split["curated"])
    rows = []
    for doc in split["raw"]:
        for span in doc.get("pii", []):
            if span["type"] in RRN_TYPES:
                text, s, e = doc["text"], span["start"], span["end"]
                number = text[s:e]
                rows.append({"doc_id": doc["id"], "type": span["type"], "number": number,
                             "prompt_full": text[:s].rstrip(" "), "prompt_date": text[: s + 6], "rest": number[6:],
                             "in_curated": number in curated_text
                             or number.replace("-", "").replace(" ", "") in curated_text})
    return rows


def _last_tokens(tokenizer, text: str, n: int) -> list[int]:
    ids = [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-n:]


def rrn_regurgitation(model, tokenizer, probes: list[dict], context_tokens: int,
                      max_new_tokens: int = 12) -> list[dict]:
    """Each probe with the model's greedy outputs and ``full`` / ``date``: did it write the exact digits?

    Prompts keep their last ``context_tokens`` tokens (``<|endoftext|>`` first when the whole
    document prefix fits). ``full``: the continuation of ``prompt_full`` starts with the whole
    number; ``date``: the continuation of ``prompt_date`` starts with the separator and last
    seven digits.
    """
    if not probes:
        return []
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
    full = greedy_ids(model, [_last_tokens(tokenizer, p["prompt_full"], context_tokens) for p in probes],
                      max_new_tokens, tokenizer.pad_token_id)
    date = greedy_ids(model, [_last_tokens(tokenizer, p["prompt_date"], context_tokens) for p in probes],
                      max_new_tokens, tokenizer.pad_token_id)
    rows = []
    for p, f, d in zip(probes, full, date):
        out_full, out_date = decode(f), decode(d)
        rows.append({**p, "output_full": out_full, "output_date": out_date,
                     "full": out_full.lstrip().startswith(p["number"]), "date": out_date.startswith(p["rest"])})
    return rows


@torch.no_grad()
def continuation_nll(model, prompts: list[list[int]], targets: list[list[int]], pad_id: int,
                     batch_size: int = 64) -> list[float]:
    """Total negative log-likelihood (nats) of each ``target`` token list right after its ``prompt``."""
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        rows = [p + t for p, t in zip(prompts[i : i + batch_size], targets[i : i + batch_size])]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=model.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (p, t) in enumerate(zip(prompts[i : i + batch_size], targets[i : i + batch_size])):
            # position j predicts token j + 1: the target's tokens are read at len(p)-1 .. len(p)+len(t)-2
            pos = torch.arange(len(p) - 1, len(p) + len(t) - 1, device=model.device)
            out.append(-logp[row, pos, torch.tensor(t, device=model.device)].sum().item())
    return out


def rrn_exposure(model, tokenizer, probes: list[dict], context_tokens: int, candidates: int = 99,
                 seed: int = 0) -> list[dict]:
    """Carlini et al. (2019)'s *exposure* of each number's serial digits, given the text through its birth date.

    The true digits compete with ``candidates`` random ones that keep the separator and the
    gender/century digit (it tells only sex and century; the six-digit serial is the secret),
    seeded per number. ``rank`` is 1 + the number of candidates the model finds at least as
    likely, and ``exposure = log2(candidates + 1) - log2(rank)`` bits: about 1.4 on average
    for a model that never saw the number (rank uniform), up to log2(100) = 6.6 for one that
    memorized it. Each probe gains ``rank`` and ``exposure``.
    """
    rows = []
    for p in probes:
        rng = random.Random(f"{seed}|{p['number']}")
        head, serial = p["rest"][:-6], p["rest"][-6:]  # separator + gender digit, serial
        others = set()
        while len(others) < candidates:
            other = "".join(rng.choice("0123456789") for _ in range(6))
            if other != serial:
                others.add(other)
        prompt = _last_tokens(tokenizer, p["prompt_date"], context_tokens)
        texts = [head + serial] + [head + o for o in sorted(others)]
        targets = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        nll = continuation_nll(model, [prompt] * len(targets), targets, tokenizer.pad_token_id)
        rank = 1 + sum(x <= nll[0] for x in nll[1:])
        rows.append({**p, "rank": rank, "exposure": math.log2(candidates + 1) - math.log2(rank)})
    return rows


# --------------------------------------------------------------------------- the experiment


def _rate(rows: list[dict], key: str) -> float | None:
    return sum(r[key] for r in rows) / len(rows) if rows else None


def curation_effect(cfg: Config, output_dir: str | Path, *, prefix_tokens: int = 32, target_tokens: int = 16,
                    train_cfg: TrainConfig | None = None, memorization: bool = True) -> dict:
    """Train the ``model`` on raw and on curated world data with one budget and measure both.

    ``train_cfg`` (default ``pretrain.train``) is the budget of both runs: a shorter one (fewer
    ``max_steps``) gives a quick version of the experiment without changing the corpora, the
    tokenizer or their cache keys. ``memorization=False`` skips the memorization probes (a greedy
    continuation per passage window, and a hundred candidate serials scored per registration
    number: minutes on a CPU for the ``laptop`` world) and leaves their keys out of the rows.

    Returns ``{"setup": {...}, "raw": {...}, "curated": {...}}``; each corpus row holds
    ``train_documents, train_tokens, held_out_perplexity, final_train_loss``,
    ``dup_exact`` / ``dup_token_match`` (pages the raw corpus holds 2+ times),
    ``single_exact`` / ``single_token_match`` (pages both hold once: the control),
    ``rrn_full`` / ``rrn_date`` (numbers written exactly, of ``rrn_probes``), ``rrn_exposure``
    (mean bits, ``rrn_exposure``), ``held_out_loss`` (``{"step", "eval_loss"}`` at each of the
    run's evaluations, on the first ``train.eval_batches`` batches of the clean held-out blocks)
    and ``metrics`` (the whole training log). Run folders go under ``output_dir``.
    """
    out = Path(output_dir)
    split = corpus_split(cfg)
    tokenizer = shared_tokenizer(cfg)
    block = cfg.pretrain.block_size
    train_cfg = train_cfg or cfg.pretrain.train
    probes = passage_probes(split, tokenizer, prefix_tokens, target_tokens)
    rrns = rrn_probes(split)
    dup = [p for p in probes if p["copies"] > 1]
    single = [p for p in probes if p["copies"] == 1]
    results = {"setup": {"held_out_documents": len(split["held_out"]),
                         "held_out_tokens": sum(len(tokenizer(d["text"])["input_ids"]) for d in split["held_out"]),
                         "dup_probes": len(dup),
                         "dup_pages": len({p["doc_id"] for p in dup}), "single_probes": len(single),
                         "rrn_probes": len(rrns), "rrn_in_curated_text": sum(r["in_curated"] for r in rrns),
                         "prefix_tokens": prefix_tokens, "target_tokens": target_tokens,
                         "steps": train_cfg.max_steps, "batch_size": train_cfg.batch_size,
                         "block_size": block, "vocab_size": len(tokenizer)}}
    for corpus in CORPORA:
        run = out / corpus
        model, result = train_on(cfg, split[corpus], split["held_out"], tokenizer, run, train_cfg)
        metrics = read_metrics(result.metrics_path)
        row = {
            "train_documents": len(split[corpus]),
            "train_tokens": int((run / "train.bin").stat().st_size // 4),
            "held_out_perplexity": held_out_perplexity(model, tokenizer, split["held_out"], block, run),
            "held_out_perplexity_raw_text": held_out_perplexity(model, tokenizer, split["held_out_raw_text"], block,
                                                                run / "raw_text"),
            "final_train_loss": result.train_loss,
        }
        if memorization:
            dup_rows = passage_memorization(model, tokenizer, dup)
            single_rows = passage_memorization(model, tokenizer, single)
            rrn_rows = rrn_regurgitation(model, tokenizer, rrns, context_tokens=block - 16)
            exposure = rrn_exposure(model, tokenizer, rrns, context_tokens=block - 16, seed=cfg.run.seed)
            row |= {
                "dup_exact": _rate(dup_rows, "exact"), "dup_token_match": _rate(dup_rows, "token_match"),
                "single_exact": _rate(single_rows, "exact"), "single_token_match": _rate(single_rows, "token_match"),
                "rrn_full": sum(r["full"] for r in rrn_rows), "rrn_date": sum(r["date"] for r in rrn_rows),
                "rrn_exposure": _rate(exposure, "exposure"),
            }
        row["held_out_loss"] = [{"step": m["step"], "eval_loss": m["eval_loss"]} for m in metrics if "eval_loss" in m]
        row["metrics"] = metrics
        results[corpus] = row
    return results


def summary(results: dict) -> str:
    """The experiment's numbers as a markdown table, one column per corpus (the measures it holds)."""
    keys = ["train_documents", "train_tokens", "held_out_perplexity", "held_out_perplexity_raw_text", "dup_exact",
            "dup_token_match", "single_exact", "single_token_match", "rrn_full", "rrn_date", "rrn_exposure"]
    keys = [k for k in keys if k in results["raw"]]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| measure | raw | curated |", "|---|---|---|"]
    lines += [f"| {k} | {fmt(results['raw'][k])} | {fmt(results['curated'][k])} |" for k in keys]
    for raw, cur in zip(results["raw"]["held_out_loss"], results["curated"]["held_out_loss"]):
        lines.append(f"| held-out loss at step {raw['step']} | {raw['eval_loss']:.3f} | {cur['eval_loss']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.curation.effect --profile ci [--set key=value] [--output-dir DIR]``: print the table."""
    import argparse
    import tempfile

    from ..config import load_config

    parser = argparse.ArgumentParser(description="train on raw vs curated world data and compare")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    cfg = load_config(args.profile, args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        results = curation_effect(cfg, args.output_dir or tmp)
    print(json.dumps(results["setup"]))
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
