"""Chapter 00's addition task, its zoo recipes, and the `course train` entry point."""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from course_lib import tour, zoo
from course_lib.config import load_config


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


def test_split_holds_out_whole_pairs():
    train, test = tour.split_pairs(max_operand=9, seed=0)
    assert len(train) == 90 and len(test) == 10
    assert not set(train) & set(test)
    assert set(train) | set(test) == {(a, b) for a in range(10) for b in range(10)}
    assert tour.split_pairs(9, seed=0) == (train, test) and tour.split_pairs(9, seed=1) != (train, test)


def test_only_the_answer_and_end_token_carry_labels():
    tok = zoo.get("tour-tokenizer", "ci")
    row = tour.encode([(12, 7)], tok, max_operand=99)[0]
    assert tok.decode(row["input_ids"]) == "<s>12+7=19</s><pad><pad>"  # 11 = <s> 99+99= 198 </s>
    labelled = [t for t, label in zip(row["input_ids"].tolist(), row["labels"].tolist()) if label != -100]
    assert tok.decode(labelled) == "19</s>"
    assert row["attention_mask"].tolist() == [1] * 9 + [0] * 2


def test_test_split_never_appears_in_training():
    cfg = load_config("ci")
    data = zoo.get("tour-data", cfg)
    tok = zoo.get("tour-tokenizer", cfg)
    as_text = lambda ds: {tok.decode(r, skip_special_tokens=True) for r in ds["input_ids"]}
    assert len(data["train"]) == cfg.tour.num_examples
    assert not as_text(data["train"]) & as_text(data["test"])


@pytest.mark.slow
def test_tour_model_learns_on_the_ci_profile():
    trained = zoo.get("tour-model", "ci")
    evals = [r["eval_loss"] for r in trained.metrics if "eval_loss" in r]
    assert evals[-1] < 0.6 * evals[0], evals
    assert trained.metrics[-1]["step"] == load_config("ci").tour.train.max_steps
    assert not (trained.path / "checkpoints").exists()  # optimizer state is not part of the artifact
    assert (trained.path / "config.yaml").is_file()


@pytest.mark.slow
def test_readme_torchrun_command_matches_one_process_with_double_accumulation(tmp_path):
    """`torchrun --nproc_per_node 2 -m course_lib train tour` == 1 process with grad_accum_steps=2."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--profile", "ci", "--set", "tour.train.max_steps=12", "--set", "tour.train.eval_every=0", "--restart"]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "course_lib", "train", "tour"]
    single = [sys.executable, "-m", "course_lib", "train", "tour", "--set", "tour.train.grad_accum_steps=2"]
    for cmd, out in [(ddp, "ddp"), (single, "single")]:
        proc = subprocess.run([*cmd, *common, "--output-dir", str(tmp_path / out)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(tmp_path / "ddp" / "final" / "model.safetensors")
    b = load_file(tmp_path / "single" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
    # ...and it really trained: the weights moved from their initialisation.
    init = tour.new_model(load_config("ci"), zoo.get("tour-tokenizer", "ci")).state_dict()
    assert any(not torch.allclose(a[n], init[n]) for n in a if n in init)
