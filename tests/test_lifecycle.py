"""Chapter 11: the lifecycle in order, its plan, resuming after a kill, the scorecard, and the bad input it names."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from course_lib import lifecycle, zoo
from course_lib.config import load_config
from course_lib.lifecycle.stages import MEASURED_SECONDS

pytestmark = pytest.mark.usefixtures("one_thread")

COURSE = [sys.executable, "-m", "course_lib"]
# What the kill test starts from: the training stages as the uninterrupted run left them (that every stage rebuilds
# deterministically in a fresh process is what the scorecard's equality below also checks, for the evaluation stage).
FIRST_STAGES = ("curated", "tokenizer", "pretrain-data", "base", "instruct", "reward-models", "ppo-sweep", "aligned",
                "aligned-answers", "aligned-int8", "aligned-pruned", "aligned-student")


@pytest.fixture(scope="module")
def cfg():
    return load_config("ci")


@pytest.fixture(scope="module")
def card(cfg):
    """The uninterrupted run: the lifecycle on ci in the test session's cache, and its scorecard."""
    folder = lifecycle.run(cfg, progress=False)
    return json.loads((folder / lifecycle.JSON_FILE).read_text(encoding="utf-8"))


def figures(card: dict) -> dict:
    """The scorecard without what the clock and the machine decide (seconds, latency, resident bytes)."""
    measured = ("ms per token", "resident MB")
    return {"models": {m: {k: v for k, v in row.items() if k not in measured} for m, row in card["models"].items()},
            "arena": card["arena"], "stages": [[a["artifact"] for a in s["artifacts"]] for s in card["stages"]]}


def course(*args, cache=None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"COURSE_CACHE_DIR": str(cache)} if cache else {})}
    return subprocess.run(COURSE + list(args), capture_output=True, text=True, env=env, **kwargs)


# --------------------------------------------------------------------------- the plan and bad input


def test_dry_run_prints_the_plan_and_builds_nothing(tmp_path):
    done = course("lifecycle", "--profile", "ci", "--dry-run", cache=tmp_path / "empty")
    assert done.returncode == 0, done.stderr
    for stage in lifecycle.STAGES:
        for name in stage.artifacts:
            line = next(line for line in done.stdout.splitlines() if line.split()[1:2] == [name])
            assert line.split()[0] == stage.name and "to build" in line
    assert "run, model, world, data, pretrain, curation, instruct, alignment" in done.stdout  # the config each reads
    estimate = sum(MEASURED_SECONDS["ci"].values()) / 60
    assert f"19 artifacts, 19 to build; estimated {estimate:.1f} min" in done.stdout
    assert not (tmp_path / "empty").exists() or not any(p.name != zoo.LOCK_DIR for p in (tmp_path / "empty").iterdir())


def test_plan_says_what_is_cached(cfg, card):
    rows = lifecycle.plan(cfg)
    assert [r["artifact"] for r in rows] == [a for s in lifecycle.STAGES for a in s.artifacts]
    assert all(r["cached"] and r["estimate_seconds"] == 0 for r in rows)
    assert lifecycle.plan(cfg, "curation,scorecard")[0]["stage"] == "curation"


def test_unknown_stage_and_profile_are_named(tmp_path):
    with pytest.raises(lifecycle.LifecycleError, match="unknown stage 'pretrain'; the stages are curation, pretraining"):
        lifecycle.select("curation,pretrain")
    done = course("lifecycle", "--profile", "ci", "--stages", "curation,sft", "--dry-run", cache=tmp_path)
    assert done.returncode == 2 and "unknown stage 'sft'" in done.stderr
    done = course("lifecycle", "--profile", "tiny", "--dry-run", cache=tmp_path)
    assert done.returncode == 2 and "unknown profile 'tiny'" in done.stderr and "available profiles: ci" in done.stderr


def test_a_config_the_builds_cannot_rebuild_is_refused(cfg):
    changed = load_config("ci", ["lifecycle.harness_limit=2"])
    with pytest.raises(lifecycle.LifecycleError, match=r"the config differs from profile 'ci' with overrides \[\]"):
        lifecycle.run(changed, progress=False)


def test_a_failed_build_stops_the_run_with_its_name(cfg, tmp_path, monkeypatch):
    """A build that fails (here: a cache that cannot be written) stops the lifecycle naming the artifact."""
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(blocked / "cache"))
    with pytest.raises(lifecycle.LifecycleError, match=r"stage 'curation': building 'curated' failed \(exit status 1"):
        lifecycle.run(cfg, stages="curation", progress=False)


# --------------------------------------------------------------------------- the scorecard


def test_scorecard_has_every_figure_for_every_model(card, cfg):
    assert list(card["models"]) == list(lifecycle.MODELS)
    for name, row in card["models"].items():
        assert (row["profile"], row["seed"]) == ("ci", 0)
        for lang in ("en", "ko"):
            assert 0 <= row[f"harness all/{lang}"] <= 1
        assert row["perplexity"] > 1 and math.isfinite(row["gold reward"]) and row["KL to instruct"] >= 0
        assert row["disk MB"] > 0 and row["resident MB"] > 0 and row["ms per token"] > 0
        rag = [k for k in row if "EM" in k or k.startswith("invented")]
        if name in lifecycle.CHAT_MODELS:
            assert len(rag) == 9 and all(0 <= row[k] <= 1 for k in rag), name
        else:
            assert rag == [], "base is no chat reader"
    rows = card["models"]
    assert rows["instruct"]["KL to instruct"] == 0 and rows["aligned"]["KL to instruct"] > 0
    # the compressed models are what they say: int8 a quarter of fp32 on disk; half the weights pruned;
    # the student smaller
    assert rows["aligned-int8"]["disk MB"] < 0.35 * rows["aligned"]["disk MB"]
    assert rows["aligned-pruned"]["parameters"] == rows["aligned"]["parameters"]
    assert rows["aligned-pruned"]["nonzero parameters"] < 0.8 * rows["aligned"]["nonzero parameters"]
    assert rows["aligned-pruned"]["disk MB"] < rows["aligned"]["disk MB"]
    assert rows["aligned-student"]["parameters"] < 0.8 * rows["aligned"]["parameters"]


def test_scorecard_arena_and_stages(card, cfg):
    arena = card["arena"]
    n = len(lifecycle.MODELS)
    assert arena["battles"] == arena["prompts"] * n * (n - 1) // 2 and arena["prompts"] == 16
    for m, r in arena["bradley_terry"].items():
        assert r["low"] <= r["rating"] <= r["high"], m
    assert [s["stage"] for s in card["stages"]] == [s.name for s in lifecycle.STAGES if s.name != "scorecard"]
    for stage in card["stages"]:
        for a in stage["artifacts"]:
            assert a["seconds"] > 0 and a["peak_rss_bytes"] > 50 * 2**20 and a["processes"] == 1, a
    assert card["total_seconds"] == pytest.approx(sum(s["seconds"] for s in card["stages"]))


def test_scorecard_page(card, cfg):
    page = (zoo.path("scorecard", cfg) / lifecycle.HTML_FILE).read_text(encoding="utf-8")
    assert page.count("<img") == 4 and page.count("data:image/png;base64,") == 4
    for name in lifecycle.MODELS:
        assert f"<th>{name}</th>" in page
    assert "Bradley-Terry" in page and "peak MiB" in page


# --------------------------------------------------------------------------- killed and resumed


@pytest.mark.slow
def test_killed_midway_resumes_and_gives_the_same_scorecard(card, cfg, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in FIRST_STAGES:  # the run starts where the uninterrupted one had its compressed models
        shutil.copytree(zoo.path(name, cfg), cache / zoo.path(name, cfg).name)
    key = {name: f"{name}-{zoo.cache_key(name, cfg)}" for s in lifecycle.STAGES for name in s.artifacts}
    finished = lambda: {n for n, k in key.items() if (cache / k / zoo.MANIFEST).is_file()}  # noqa: E731
    env = {**os.environ, "COURSE_CACHE_DIR": str(cache)}
    proc = subprocess.Popen(COURSE + ["lifecycle", "--profile", "ci"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while "scores-instruct" not in finished():  # midway: in the evaluation stage
        assert proc.poll() is None and time.monotonic() < deadline, "the first run ended before its evaluation stage"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the lifecycle and the build under way, as a power cut would
    proc.wait()
    done_before = {n: json.loads((cache / key[n] / zoo.MANIFEST).read_text()) for n in finished()}
    assert "scores-instruct" in done_before and "scorecard" not in done_before

    rerun = course("lifecycle", "--profile", "ci", cache=cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for n, manifest in done_before.items():  # nothing finished was built again
        assert json.loads((cache / key[n] / zoo.MANIFEST).read_text()) == manifest, n
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")]  # the killed build's folder is gone
    assert sorted(p.name for p in cache.iterdir() if p.name != zoo.LOCK_DIR) == sorted(key.values())
    resumed = json.loads((cache / key["scorecard"] / lifecycle.JSON_FILE).read_text(encoding="utf-8"))
    assert figures(resumed) == figures(card)


@pytest.mark.slow
def test_the_pretraining_stage_runs_on_two_processes(cfg, card, tmp_path, monkeypatch):
    """`--launcher` runs base's build under torchrun: two CPU processes (gloo) train it together, and the result is
    the one-process model with twice the gradient accumulation (each process reads its own half of every batch)."""
    import torch
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    for name in ("curated", "tokenizer", "pretrain-data"):
        shutil.copytree(zoo.path(name, cfg), cache / zoo.path(name, cfg).name)
    monkeypatch.delenv("COURSE_CACHE_DIR", raising=False)  # zoo.cache_dir below, not the environment's
    launcher = f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2"
    done = course("lifecycle", "--profile", "ci", "--stages", "pretraining", "--launcher", launcher, cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = cache / zoo.path("base", cfg).name
    assert json.loads((ddp / zoo.MANIFEST).read_text())["processes"] == 2
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    single = zoo.build("base", load_config("ci", ["pretrain.train.grad_accum_steps=2", f"zoo.cache_dir={cache}"]))
    a, b = load_file(ddp / "final" / "model.safetensors"), load_file(single / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)


# --------------------------------------------------------------------------- what it costs at scale


def test_scale_table_by_hand_and_in_the_readme(cfg):
    from pathlib import Path

    from course_lib.lifecycle.scale import markdown_table, parameters, scale_table

    base = zoo.get("base", cfg).model
    assert parameters(cfg) == sum(p.numel() for p in {id(p): p for p in base.parameters()}.values())
    gpu = load_config("gpu")
    (pre, sft, dpo, _) = scale_table(gpu, processes=1)
    n, t = pre["parameters"], gpu.pretrain.train
    assert 100e6 < n < 130e6  # the README's "~125M-parameter model on a GPU", 12 x 768 with a 32k vocabulary
    assert pre["tokens"] == t.max_steps * t.batch_size * t.grad_accum_steps * gpu.pretrain.block_size
    assert pre["flops"] == 6 * n * pre["tokens"] and dpo["flops"] == 8 * n * dpo["tokens"]
    assert pre["hours"] == pytest.approx(pre["flops"] / (989e12 * 0.4) / 3600)
    assert pre["memory_gib_per_gpu"] * 2**30 > 16 * n  # AdamW's states alone
    eight = scale_table("multi_gpu", processes=8, fsdp=True)
    assert eight[0]["largest_micro_batch_that_fits"] < eight[0]["micro_batch"]  # as configured, it does not fit
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert markdown_table(scale_table(gpu, 1)) in readme
    assert markdown_table(eight) in readme
