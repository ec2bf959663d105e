"""The `course` command and the Makefile's install step."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    env = {k: v for k, v in os.environ.items() if k != "COURSE_CACHE_DIR"}
    return subprocess.run([sys.executable, "-m", "course_lib", *args], capture_output=True, text=True, cwd=REPO, env=env)


def test_help_lists_every_subcommand():
    proc = run("--help")
    assert proc.returncode == 0
    for sub in ["env", "config", "zoo", "train", "notebooks", "release", "grade", "eval"]:
        assert f"    {sub}" in proc.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "course"
    assert script.is_file()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "zoo" in proc.stdout


def test_env_reports_the_setup(tmp_path):
    proc = run("env", "--profile", "ci", "--set", f"zoo.cache_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip() and not line.startswith(("cache", "offline")))
    import torch, transformers, trl
    assert rows["torch"] == torch.__version__ and rows["transformers"] == transformers.__version__
    assert rows["trl"] == trl.__version__ and rows["device"] == "cpu"
    assert rows["profile"].startswith("ci ")
    assert re.search(rf"^cache dir +{tmp_path} \(writable\)$", proc.stdout, re.M)
    assert re.search(r"^offline +yes", proc.stdout, re.M)


def test_env_says_when_the_course_cannot_run_offline(tmp_path):
    proc = run("env", "--profile", "ci", "--set", "data.source=some-org/some-hub-dataset", "--set", f"zoo.cache_dir={tmp_path}")
    assert proc.returncode == 1
    assert re.search(r"^offline +no: data.source 'some-org/some-hub-dataset' is not local", proc.stdout, re.M)


def test_config_prints_the_resolved_profile():
    proc = run("config", "--profile", "ci", "--set", "train.max_steps=11")
    assert proc.returncode == 0 and "profile: ci" in proc.stdout and "max_steps: 11" in proc.stdout


def test_zoo_list_names_the_tour_artifacts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert main(["zoo", "list", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in ["tour-tokenizer", "tour-data", "tour-model"]:
        assert "not built" in rows[name]


def test_unknown_subcommand_fails():
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(["frobnicate"])
    assert err.value.code == 2


def test_second_make_installs_nothing():
    # `make -q venv` exits 0 only when .venv's install stamp is newer than the lock and pyproject.
    proc = subprocess.run(["make", "-q", "venv"], cwd=REPO)
    assert proc.returncode == 0, "make would reinstall .venv: is the stamp older than requirements.lock?"
