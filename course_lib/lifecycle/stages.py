"""The lifecycle in order: every stage a set of zoo artifacts, each built in its own process, resumable.

    plan(cfg)                     the stages, their artifacts, which are cached, the config each reads, an estimate
    run(cfg)                      build what is missing, in order; the scorecard's folder

A stage's artifacts are built one process each (``python -m course_lib zoo build NAME``), so
each artifact's manifest records the peak resident memory of the process that built it alone,
and a launcher (``torchrun --nproc_per_node 2``, ``accelerate launch ...``) can run the
stages that train with the course loop on several processes. Killed at any point, a rerun
starts from the first artifact without a manifest: the zoo renames a build into place only
when it is complete, so nothing half-written is ever loaded, and nothing finished is repeated.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import zoo
from ..config import Config
from .models import MODELS


@dataclass(frozen=True)
class Stage:
    name: str
    chapter: str
    artifacts: tuple[str, ...]
    what: str
    launchable: tuple[str, ...] = ()  # artifacts whose build runs under a launcher (several processes)


STAGES = (
    Stage("curation", "02", ("curated",), "the world's raw documents filtered, deduplicated and de-identified"),
    Stage("pretraining", "03", ("tokenizer", "pretrain-data", "base"),
          "a byte-level BPE tokenizer, the packed token files, and base pretrained on them", launchable=("base",)),
    Stage("instruction", "06", ("instruct",), "base fine-tuned on the task clusters and reading exercises"),
    Stage("preference", "07", ("reward-models", "ppo-sweep", "aligned"),
          "reward models from instruct, PPO against them, and the better of PPO and DPO within a KL budget"),
    Stage("compression", "08-09", ("aligned-answers", "aligned-int8", "aligned-pruned", "aligned-student"),
          "aligned in int8, magnitude-pruned, and distilled into half its layers"),
    Stage("evaluation", "05, 07, 10", tuple(f"scores-{m}" for m in MODELS),
          "each model on the harness, perplexity, gold reward and KL, footprint, and as the reader of RAG and QASA"),
    Stage("scorecard", "11", ("scorecard",), "every figure in one table, the arena, the stages' times and memory"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)

# The dry run's estimate for an artifact never built in this cache (otherwise the manifest of its newest earlier
# build says): the wall seconds of each artifact's process (start-up included) in one run from an empty cache, on one
# thread of a 2-core machine while another lifecycle ran on the other core.
MEASURED_SECONDS: dict[str, dict[str, float]] = {
    # the preference stage's reward-models, ppo-sweep and aligned: their own builds (a zoo build of each, deps cached,
    # plus 5 s (ci) / 12 s (laptop) of start-up), measured later on 2 threads while a test run shared the machine
    "ci": {"curated": 13.3, "tokenizer": 8.5, "pretrain-data": 8.0, "base": 31.2, "instruct": 12.5, "reward-models": 35.0,
           "ppo-sweep": 33.0, "aligned": 9.2, "aligned-answers": 10.6, "aligned-int8": 9.6, "aligned-pruned": 11.6, "aligned-student": 10.9,
           "scores-base": 13.0, "scores-instruct": 17.2, "scores-aligned": 21.0, "scores-aligned-int8": 24.8,
           "scores-aligned-pruned": 21.9, "scores-aligned-student": 20.2, "scorecard": 18.3},
    # laptop: instruct's process was restarted midway; its figure is the build's own seconds plus the start-up
    "laptop": {"curated": 16.7, "tokenizer": 11.9, "pretrain-data": 10.1, "base": 641.0, "instruct": 510.0,
               "reward-models": 349.0, "ppo-sweep": 588.0, "aligned": 248.0, "aligned-answers": 26.0, "aligned-int8": 12.2, "aligned-pruned": 66.0,
               "aligned-student": 51.8, "scores-base": 30.3, "scores-instruct": 55.5, "scores-aligned": 60.6,
               "scores-aligned-int8": 168.2, "scores-aligned-pruned": 207.1, "scores-aligned-student": 79.6,
               "scorecard": 55.4},
}


class LifecycleError(ValueError):
    """A lifecycle that cannot run as asked: an unknown stage, a failed build."""


def select(stages: str | list[str] | None = None) -> list[Stage]:
    """The stages named (a comma-separated string or a list; all when None), in lifecycle order."""
    if stages is None:
        return list(STAGES)
    names = [s.strip() for s in stages.split(",")] if isinstance(stages, str) else list(stages)
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise LifecycleError(f"unknown stage {', '.join(map(repr, unknown))}; the stages are {', '.join(STAGE_NAMES)}")
    return [s for s in STAGES if s.name in names]


def _earlier_build_seconds(name: str, cfg: Config) -> float | None:
    """``build_seconds`` of the newest other build of ``name`` in the cache (another key), if any."""
    root = zoo.cache_dir(cfg)
    found = []
    for manifest in root.glob(f"{name}-*/{zoo.MANIFEST}") if root.is_dir() else []:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("name") == name and data.get("profile") == cfg.profile:
            found.append((data.get("created", ""), data.get("build_seconds")))
    return max(found)[1] if found else None


def plan(cfg: Config, stages: str | list[str] | None = None) -> list[dict]:
    """One row per artifact of the chosen stages: stage, artifact, cached, the config sections it reads, its
    dependencies, and the estimated seconds to build it (0 when cached; None when nothing measured says)."""
    rows = []
    for stage in select(stages):
        for name in stage.artifacts:
            r = zoo.recipe(name)
            cached = zoo.is_built(name, cfg)
            if cached:
                estimate, basis = 0.0, "cached"
            elif (seconds := _earlier_build_seconds(name, cfg)) is not None:
                estimate, basis = seconds, "an earlier build"
            elif name in MEASURED_SECONDS.get(cfg.profile, {}):
                estimate, basis = float(MEASURED_SECONDS[cfg.profile][name]), "measured on 2 cores"
            else:
                estimate, basis = None, "no measurement"
            rows.append({"stage": stage.name, "chapter": stage.chapter, "artifact": name, "cached": cached,
                         "sections": list(r.sections), "deps": list(r.deps), "estimate_seconds": estimate,
                         "basis": basis, "path": str(zoo.path(name, cfg))})
    return rows


def format_plan(rows: list[dict]) -> str:
    """The plan as a text table, with the total estimate."""
    width = max(len(r["artifact"]) for r in rows) + 1
    lines = [f"{'stage':<12} {'artifact':<{width}} {'status':<9} {'estimate':>9}  config sections"]
    for r in rows:
        est = "-" if r["estimate_seconds"] is None else f"{r['estimate_seconds']:.0f} s"
        lines.append(f"{r['stage']:<12} {r['artifact']:<{width}} {'cached' if r['cached'] else 'to build':<9} "
                     f"{est:>9}  {', '.join(r['sections'])}")
    todo = [r for r in rows if not r["cached"]]
    known = [r["estimate_seconds"] for r in todo if r["estimate_seconds"] is not None]
    unknown = len(todo) - len(known)
    total = f"estimated {sum(known) / 60:.1f} min" if known else "no estimate"
    lines.append(f"{len(rows)} artifacts, {sum(not r['cached'] for r in rows)} to build; {total}"
                 + (f" ({unknown} never built on this profile: no estimate for them)" if unknown else ""))
    return "\n".join(lines)


def build_command(name: str, cfg: Config, overrides=(), launcher: str | None = None) -> list[str]:
    """The command that builds artifact ``name`` in its own process (under ``launcher`` when given)."""
    args = ["-m", "course_lib", "zoo", "build", name, "--profile", cfg.profile]
    for o in overrides:
        args += ["--set", o]
    return (shlex.split(launcher) if launcher else [sys.executable]) + args


def run(cfg: Config, overrides=(), *, stages: str | list[str] | None = None, launcher: str | None = None,
        progress: bool = True, log=print) -> Path:
    """Build every missing artifact of ``stages`` in order, each in its own process; return the scorecard's folder.

    ``overrides`` are the ``--set`` strings ``cfg`` was made with (the child processes rebuild
    the same config from them). ``launcher`` runs the stages' ``launchable`` artifacts. A build
    that fails stops the run with a ``LifecycleError`` naming the artifact and its exit status;
    what was finished stays cached.
    """
    from tqdm.auto import tqdm

    from ..config import load_config

    if load_config(cfg.profile, overrides).to_dict() != cfg.to_dict():
        raise LifecycleError(f"the config differs from profile {cfg.profile!r} with overrides {list(overrides)}: the "
                             f"builds run in their own processes, which rebuild the config from the profile and the "
                             f"overrides, so pass every --set the config was made with")
    chosen = select(stages)
    zoo.clean(cfg, names=tuple(a for s in chosen for a in s.artifacts), stale=False)  # interrupted builds only
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for stage in chosen:
        zoo.code_fingerprint.cache_clear()  # keys from the code as it is now: the builds run in fresh processes
        todo = [a for a in stage.artifacts if not zoo.is_built(a, cfg)]
        bar = tqdm(total=len(stage.artifacts), initial=len(stage.artifacts) - len(todo), unit="artifact",
                   desc=f"{stage.name} (ch {stage.chapter})", disable=not progress)
        for name in todo:
            bar.set_postfix_str(name)
            launched = launcher if name in stage.launchable else None
            command = build_command(name, cfg, overrides, launched)
            start = time.perf_counter()
            done = subprocess.run(command, env={**env, zoo.TOGETHER_ENV: name} if launched else env)
            if done.returncode != 0:
                bar.close()
                raise LifecycleError(f"stage {stage.name!r}: building {name!r} failed (exit status {done.returncode}; "
                                     f"command: {shlex.join(command)}); the artifacts before it are cached, rerun "
                                     f"to resume")
            zoo.code_fingerprint.cache_clear()
            if not zoo.is_built(name, cfg):
                bar.close()
                built = sorted(p.name for p in zoo.cache_dir(cfg).glob(f"{name}-*")
                               if p.name.rsplit("-", 1)[0] == name and (p / zoo.MANIFEST).is_file())
                raise LifecycleError(f"stage {stage.name!r}: {name!r} finished, but not under the key this process "
                                     f"expects ({zoo.path(name, cfg).name}; the cache holds {', '.join(built) or 'none'})"
                                     f": was the code edited while it ran? then run again")
            log(f"{stage.name}: built {name} in {time.perf_counter() - start:.1f} s")
            bar.update(1)
        bar.close()
    return zoo.path("scorecard", cfg)
