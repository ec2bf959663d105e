"""The scorecard: every model's figures in one table, the arena between them, and what each stage cost.

    zoo.get("scorecard")   {"profile", "seed", "models": {name: row}, "arena", "stages", "total_seconds"}

The ``scorecard`` artifact's folder also holds ``scorecard.html`` (the tables, and the plots
embedded as PNG): open it in a browser. A row of ``models`` flattens one
``scores-<model>`` artifact; ``arena``: every pair of models on every held-out preference
prompt, judged by the gold reward, with online Elo and Bradley-Terry ratings (bootstrap 95%
intervals), as Chatbot Arena reports them; ``stages``: per stage, the seconds and the peak
resident memory of each artifact's build, read from the manifests (a cached artifact keeps the
figures of the build that made it).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from .. import zoo
from ..config import Config
from .models import MODELS
from .stages import STAGES

HTML_FILE = "scorecard.html"
JSON_FILE = "scorecard.json"


def model_row(scores: dict) -> dict:
    """One flat row of the table from a ``scores-<model>`` artifact."""
    pref, foot, rag = scores["preference"], scores["footprint"], scores["rag"]
    row = {"model": scores["model"], "profile": scores["profile"], "seed": scores["seed"],
           **{f"harness {k}": v for k, v in scores["harness"].items() if k != "items_per_task"},
           "perplexity": scores["perplexity"], "gold reward": pref["gold"], "KL to instruct": pref["kl_to_instruct"],
           "declined pii": pref["declined_pii"], "declined fabricate": pref["declined_fabricate"],
           "correct answerable": pref["correct_answerable"], "parameters": foot["parameters"],
           "nonzero parameters": foot["nonzero"], "disk MB": foot["disk_bytes"] / 1e6,
           "resident MB": foot["resident_bytes"] / 1e6, "ms per token": foot["seconds_per_token"] * 1e3}
    if rag is not None:
        cut, hal, multi = rag["cutoff"], rag["hallucination"], rag["multi"]
        row |= {"closed-book EM before cutoff": cut["pre"]["closed_book"]["mean"],
                "RAG EM before cutoff": cut["pre"]["rag"]["mean"],
                "closed-book EM after cutoff": cut["post"]["closed_book"]["mean"],
                "RAG EM after cutoff": cut["post"]["rag"]["mean"],
                "invented closed-book": hal["closed_book"]["all"]["mean"], "invented RAG": hal["rag"]["all"]["mean"],
                "invented QASA": hal["qasa"]["all"]["mean"], "two-passage EM RAG": multi["rag"]["em"],
                "two-passage EM QASA": multi["qasa"]["em"]}
    return row


def arena(scores: dict[str, dict], cfg: Config) -> dict:
    """Every pair of models on every held-out preference prompt, judged by the gold reward: Elo and Bradley-Terry."""
    from ..alignment import arena as A

    names = list(scores)
    answers = {m: scores[m]["preference"]["rows"] for m in names}
    fights = A.battles(answers, lambda m, i: answers[m][i]["gold"])
    return {"judge": "gold reward", "prompts": len(answers[names[0]]), "battles": len(fights),
            "ties": sum(b["winner"] == "tie" for b in fights),
            "elo": A.elo_ratings(fights, names, seed=cfg.run.seed),
            "bradley_terry": A.bt_ratings(fights, names, resamples=cfg.alignment.bootstrap, seed=cfg.run.seed),
            "win_rates": A.win_rates(fights, names),
            "samples": [{"prompt_id": answers[names[0]][i]["id"], **{m: answers[m][i]["reply"] for m in names}}
                        for i in range(min(6, len(answers[names[0]])))]}


def stage_costs(cfg: Config) -> list[dict]:
    """Per stage: each artifact's build seconds, peak resident bytes and processes, from its manifest."""
    out = []
    for stage in STAGES:
        rows = []
        for name in stage.artifacts:
            m = zoo.manifest(name, cfg) if name != "scorecard" else None
            if m is not None:
                rows.append({"artifact": name, "key": m["key"], "seconds": m["build_seconds"],
                             "peak_rss_bytes": m.get("peak_rss_bytes"), "processes": m.get("processes", 1),
                             "created": m["created"]})
        if rows:
            peaks = [r["peak_rss_bytes"] for r in rows if r["peak_rss_bytes"] is not None]
            out.append({"stage": stage.name, "chapter": stage.chapter, "artifacts": rows,
                        "seconds": sum(r["seconds"] for r in rows), "peak_rss_bytes": max(peaks) if peaks else None})
    return out


def build_scorecard(cfg: Config) -> dict:
    scores = {m: zoo.get(f"scores-{m}", cfg) for m in MODELS}
    stages = stage_costs(cfg)
    return {"profile": cfg.profile, "seed": cfg.run.seed, "models": {m: model_row(s) for m, s in scores.items()},
            "harness_items_per_task": cfg.lifecycle.harness_limit, "rag_questions": cfg.lifecycle.rag_questions,
            "arena": arena(scores, cfg), "stages": stages, "total_seconds": sum(s["seconds"] for s in stages)}


# --------------------------------------------------------------------------- plots and the HTML page


def plots(card: dict) -> dict:
    """``{title: matplotlib Figure}``: abilities by model, size against quality, the arena, the stages' costs."""
    import numpy as np
    from matplotlib.figure import Figure

    models = list(card["models"])
    rows = [card["models"][m] for m in models]
    figs = {}

    abilities = sorted({k for r in rows for k in r if k.startswith("harness ") and not k.startswith("harness all/")})
    fig = Figure(figsize=(11, 4))
    ax = fig.subplots()
    width = 0.8 / len(models)
    for i, (m, r) in enumerate(zip(models, rows)):
        ax.bar(np.arange(len(abilities)) + i * width, [r.get(a, np.nan) for a in abilities], width, label=m)
    ax.set_xticks(np.arange(len(abilities)) + 0.4 - width / 2, [a[len("harness "):] for a in abilities], rotation=60,
                  ha="right", fontsize=8)
    ax.set(ylabel="mean primary metric (0-1)", title=f"Chapter 05's harness by ability and language "
                                                     f"({card['harness_items_per_task']} items per task)")
    ax.legend(fontsize=8, ncol=3)
    figs["harness"] = fig

    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "gold reward", "gold reward (chapter 07's rules)"),
                           (axes[1], "perplexity", "held-out perplexity")):
        for m, r in zip(models, rows):
            ax.scatter(r["disk MB"], r[key], s=40)
            ax.annotate(m, (r["disk MB"], r[key]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set(xlabel="weights on disk (MB)", ylabel=label, title=f"{label} against size")
    axes[1].set_yscale("log")
    fig.tight_layout()
    figs["size"] = fig

    bt = card["arena"]["bradley_terry"]
    order = sorted(bt, key=lambda m: bt[m]["rating"])
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    y = np.arange(len(order))
    ax.errorbar([bt[m]["rating"] for m in order], y, fmt="o",
                xerr=[[bt[m]["rating"] - bt[m]["low"] for m in order], [bt[m]["high"] - bt[m]["rating"] for m in order]])
    ax.set_yticks(y, order)
    ax.set(xlabel="Bradley-Terry rating (Elo scale), 95% bootstrap interval",
           title=f"Arena: {card['arena']['battles']} battles judged by the gold reward")
    fig.tight_layout()
    figs["arena"] = fig

    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    names = [s["stage"] for s in card["stages"]]
    ax.barh(names, [s["seconds"] / 60 for s in card["stages"]])
    for i, s in enumerate(card["stages"]):
        if s["peak_rss_bytes"]:
            ax.annotate(f"peak {s['peak_rss_bytes'] / 2**30:.1f} GiB", (s["seconds"] / 60, i), fontsize=8,
                        xytext=(4, -3), textcoords="offset points")
    ax.invert_yaxis()
    ax.set(xlabel="build minutes (as recorded when each artifact was built)",
           title=f"The lifecycle's stages on the {card['profile']} profile")
    fig.tight_layout()
    figs["stages"] = fig
    return figs


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def render_html(card: dict, figs: dict) -> str:
    """The scorecard as one self-contained HTML page (plots embedded as PNG)."""
    models = list(card["models"])
    keys = list(dict.fromkeys(k for r in card["models"].values() for k in r if k != "model"))
    table = "".join(f"<tr><th>{html.escape(k)}</th>" + "".join(f"<td>{_cell(card['models'][m].get(k))}</td>"
                                                               for m in models) + "</tr>" for k in keys)
    stages = "".join(f"<tr><td>{s['stage']}</td><td>{s['chapter']}</td><td>{a['artifact']}</td><td>{a['seconds']:.1f}</td>"
                     f"<td>{_cell((a['peak_rss_bytes'] or 0) / 2**20)}</td><td>{a['processes']}</td></tr>"
                     for s in card["stages"] for a in s["artifacts"])
    bt = card["arena"]["bradley_terry"]
    arena_rows = "".join(f"<tr><td>{m}</td><td>{bt[m]['rating']:.0f}</td><td>[{bt[m]['low']:.0f}, {bt[m]['high']:.0f}]"
                         f"</td><td>{card['arena']['elo'][m]:.0f}</td></tr>"
                         for m in sorted(bt, key=lambda m: -bt[m]["rating"]))
    images = ""
    for title, fig in figs.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        images += f'<figure><img alt="{title}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"></figure>'
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{text-align:left;background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Scorecard ({card['profile']})</title>"
            f"<style>{style}</style></head><body><h1>The course's scorecard: profile {card['profile']}, seed "
            f"{card['seed']}</h1><h2>Models</h2><table><tr><th></th>{''.join(f'<th>{m}</th>' for m in models)}</tr>"
            f"{table}</table><h2>Arena</h2><table><tr><th>model</th><th>Bradley-Terry</th><th>95% interval</th>"
            f"<th>Elo</th></tr>{arena_rows}</table><h2>Stages</h2><table><tr><th>stage</th><th>chapter</th>"
            f"<th>artifact</th><th>seconds</th><th>peak MiB</th><th>processes</th></tr>{stages}</table>"
            f"<p>Total build time {card['total_seconds'] / 60:.1f} min.</p><h2>Plots</h2>{images}</body></html>")


def _load(path: Path, cfg: Config) -> dict:
    return json.loads((path / JSON_FILE).read_text(encoding="utf-8"))


@zoo.register("scorecard", load=_load, sections=("run", "model", "world", "data", "pretrain", "curation", "instruct",
                                                 "alignment", "compression", "lifecycle"),
              deps=tuple(f"scores-{m}" for m in MODELS),
              description="chapter 11: every model's figures, the arena and the stages' costs (JSON and HTML)")
def _build(cfg: Config, out: Path) -> None:
    card = build_scorecard(cfg)
    (out / JSON_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False, default=float), encoding="utf-8")
    (out / HTML_FILE).write_text(render_html(card, plots(card)), encoding="utf-8")
