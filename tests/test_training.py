"""Tests of the one training loop (course_lib.training) on tiny models.

Exact checks: hand-computed learning rates; equal parameters for equal seeds, for a
resumed vs an uninterrupted run, for gradient accumulation vs a bigger batch, and
for two torchrun processes vs one process accumulating two micro-batches.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from course_lib.config import Config
from course_lib.runs import latest_checkpoint, list_checkpoints, read_metrics
from course_lib.training import ShuffledStream, TrainResult, lr_schedule, plot_loss, set_seed, train
from ddp_worker import SEQ_LEN, counting_dataset, small_config, tiny_llama

REPO = Path(__file__).resolve().parent.parent
ACCELERATE_CONFIGS = REPO / "configs" / "accelerate"


pytestmark = pytest.mark.usefixtures("one_thread")


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same_params(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if atol == 0.0:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0.0, msg=name)


def train_losses(path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(path) if "loss" in r}


# --------------------------------------------------------------------------- schedule and sampler


def test_lr_schedule_hand_values():
    kw = dict(lr=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    warmup = [lr_schedule(s, **kw) for s in range(5)]
    assert warmup == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-12)  # (s + 1) / 5, peak at s = 4
    assert lr_schedule(9, **kw) == pytest.approx(0.55, abs=1e-12)  # half-way: 0.1 + 0.9 * (1 + cos(pi/2)) / 2
    assert lr_schedule(14, **kw) == pytest.approx(0.1, abs=1e-12)  # cos(pi): the floor
    assert lr_schedule(50, **kw) == pytest.approx(0.1, abs=1e-12)
    # No warmup: the first update uses the peak; the rate scales with lr.
    assert lr_schedule(0, lr=3e-3, warmup_steps=0, max_steps=10, min_lr_ratio=0.0) == pytest.approx(3e-3)
    assert lr_schedule(5, lr=3e-3, warmup_steps=0, max_steps=10, min_lr_ratio=0.0) == pytest.approx(1.5e-3)


def test_shuffled_stream_is_seeded_and_resumes_mid_epoch():
    def take(stream, n):
        it = iter(stream)
        return [next(it) for _ in range(n)]

    full = take(ShuffledStream(5, seed=3), 17)
    assert sorted(full[:5]) == sorted(full[5:10]) == list(range(5))  # each epoch is a permutation
    assert full[:5] != full[5:10]  # and a different one
    assert take(ShuffledStream(5, seed=3, start=7), 10) == full[7:]  # resume crosses an epoch boundary
    assert take(ShuffledStream(5, seed=4), 17) != full


# --------------------------------------------------------------------------- a whole run


@pytest.mark.slow
def test_loss_goes_down_and_run_folder_is_complete(tmp_path):
    cfg = small_config(max_steps=30, batch_size=8, warmup_steps=3, log_every=5, eval_every=10, eval_batches=2,
                       save_every=10, keep_checkpoints=2, progress=True)
    config = Config(train=cfg)
    model = tiny_llama()
    seen = []
    result = train(model, counting_dataset(256), cfg, output_dir=tmp_path, eval_dataset=counting_dataset(32, seed=1),
                   config=config, callbacks=[lambda step, row: seen.append((step, row["loss"]))])

    assert isinstance(result, TrainResult) and result.step == 30
    rows = read_metrics(result.metrics_path)
    train_rows = [r for r in rows if "loss" in r]
    eval_rows = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in eval_rows] == [10, 20, 30]
    assert set(train_rows[0]) == {"step", "loss", "lr", "grad_norm", "tokens", "elapsed_s"}
    assert set(eval_rows[0]) == {"step", "eval_loss", "elapsed_s"}
    for r in train_rows:
        assert r["tokens"] == r["step"] * 8 * SEQ_LEN  # no padding: every input token counts
        # The logged lr is the one update `step` used: its index is step - 1.
        assert r["lr"] == pytest.approx(
            lr_schedule(r["step"] - 1, lr=cfg.lr, warmup_steps=3, max_steps=30, min_lr_ratio=cfg.min_lr_ratio)
        )
    # ln(32) = 3.47 nats at the start; counting up is learnable.
    assert train_rows[0]["loss"] > 2.0 and result.train_loss < 0.5
    assert result.eval_loss == eval_rows[-1]["eval_loss"] < 0.5
    assert [s for s, _ in seen] == list(range(1, 31))  # a callback call per optimizer step
    assert seen[-1][1] == result.train_loss

    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config.to_dict()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000020", "step_00000030"]
    assert json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())["step"] == 30
    reloaded = AutoModelForCausalLM.from_pretrained(result.final_dir)
    assert_same_params(params(reloaded), params(model))


@pytest.mark.slow
def test_same_seed_same_parameters_other_seed_differs(tmp_path):
    cfg = small_config(max_steps=4)
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        model = tiny_llama(seed=0, dropout=0.1)
        train(model, counting_dataset(64), cfg, output_dir=tmp_path / name, seed=seed)
        runs[name] = params(model)
    assert_same_params(runs["a"], runs["b"])
    assert any(not torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted_run(tmp_path):
    # Dropout makes the RNG state part of what a checkpoint must restore.
    cfg = small_config(max_steps=8, save_every=3, keep_checkpoints=1)
    data = counting_dataset(40)  # 10 batches an epoch: the runs cross epoch boundaries
    straight = tiny_llama(dropout=0.1)
    train(straight, data, cfg, output_dir=tmp_path / "straight")

    class Crash(Exception):
        pass

    def crash_at_5(step, row):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        train(tiny_llama(dropout=0.1), data, cfg, output_dir=tmp_path / "resumed", callbacks=[crash_at_5])
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["step_00000003"]

    # A differently initialised model: the checkpoint's weights must replace its own.
    resumed = tiny_llama(seed=123, dropout=0.1)
    result = train(resumed, data, cfg, output_dir=tmp_path / "resumed")
    assert result.step == 8
    assert_same_params(params(resumed), params(straight))
    # The log holds each step once, with the uninterrupted run's losses.
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed")]
    assert steps == list(range(1, 9))
    assert train_losses(tmp_path / "resumed") == train_losses(tmp_path / "straight")


@pytest.mark.slow
def test_half_written_checkpoint_is_ignored(tmp_path):
    data = counting_dataset(32)
    train(tiny_llama(), data, small_config(max_steps=2), output_dir=tmp_path)
    # A save that crashed half-way: a temp folder, and a step folder with no state.json.
    half = tmp_path / "checkpoints" / ".tmp-step_00000004"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"truncated")
    (tmp_path / "checkpoints" / "step_00000003").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_00000002"

    steps = []
    train(tiny_llama(), data, small_config(max_steps=3), output_dir=tmp_path, callbacks=[lambda s, r: steps.append(s)])
    assert steps == [3]  # resumed after step 2
    assert not half.exists()


@pytest.mark.slow
def test_gradient_accumulation_equals_bigger_batch(tmp_path):
    # Equal-length sequences: the mean of two micro-batch means is the mean of the batch.
    runs = {}
    for name, batch_size, accum in [("accum", 2, 2), ("batch", 4, 1)]:
        model = tiny_llama()
        # No clipping: the logged gradient norms must then agree too (a missing 1/accum would double them).
        cfg = small_config(max_steps=4, batch_size=batch_size, grad_accum_steps=accum, max_grad_norm=0.0)
        train(model, counting_dataset(64), cfg, output_dir=tmp_path / name)
        runs[name] = params(model)
    assert_same_params(runs["accum"], runs["batch"], atol=1e-5)
    rows_accum, rows_batch = read_metrics(tmp_path / "accum"), read_metrics(tmp_path / "batch")
    assert [r["step"] for r in rows_accum] == [r["step"] for r in rows_batch] == [1, 2, 3, 4]
    for key in ("loss", "grad_norm"):
        assert [r[key] for r in rows_accum] == pytest.approx([r[key] for r in rows_batch], abs=1e-5)


@pytest.mark.slow
def test_two_torchrun_processes_equal_one_process_accumulating(tmp_path):
    steps = 4
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "ddp_worker.py"), str(tmp_path / "ddp"), str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # One process, two micro-batches of 2: the same 4 examples per step as 2 processes x 2.
    single = tiny_llama()
    cfg = small_config(max_steps=steps, batch_size=2, grad_accum_steps=2, eval_every=2, eval_batches=2, save_every=2)
    train(single, counting_dataset(64), cfg, output_dir=tmp_path / "single", eval_dataset=counting_dataset(8, seed=1))

    ddp = AutoModelForCausalLM.from_pretrained(tmp_path / "ddp" / "final")
    assert_same_params(params(ddp), params(single), atol=1e-5)
    rows_ddp, rows_single = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")
    assert [r["step"] for r in rows_ddp] == [r["step"] for r in rows_single]  # one log, by the main process only
    assert [r.get("tokens") for r in rows_ddp] == [r.get("tokens") for r in rows_single]
    for key in ("loss", "grad_norm", "eval_loss"):
        a = [r[key] for r in rows_ddp if key in r]
        assert a == pytest.approx([r[key] for r in rows_single if key in r], abs=1e-5)
    # Each process saved its own RNG state in the checkpoint.
    assert {p.name for p in latest_checkpoint(tmp_path / "ddp").glob("rng_state_*")} == {
        "rng_state_0.pt", "rng_state_1.pt"}


@pytest.mark.slow
def test_seq2seq_t5_trains_through_the_same_loop(tmp_path):
    set_seed(0)
    config = T5Config(vocab_size=32, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                      dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(config)
    # Copy task: the target is the source sequence itself.
    tokens = torch.randint(2, 32, (128, 8), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": t, "attention_mask": torch.ones_like(t), "labels": t.clone()} for t in tokens]
    result = train(model, data, small_config(max_steps=20, batch_size=8, log_every=1), output_dir=tmp_path)
    losses = train_losses(result.metrics_path)
    assert losses[20] < losses[1] - 0.5  # from ~ln(32) = 3.5 nats, visibly learning
    reloaded = T5ForConditionalGeneration.from_pretrained(result.final_dir)
    assert_same_params(params(reloaded), params(model))


def test_dataset_without_labels_fails_with_a_clear_error(tmp_path):
    data = [{"input_ids": x["input_ids"]} for x in counting_dataset(8)]
    with pytest.raises(ValueError, match="add 'labels' to the dataset"):
        train(tiny_llama(), data, small_config(max_steps=1), output_dir=tmp_path)


def test_plot_loss_draws_train_and_eval_curves():
    matplotlib.use("Agg")
    rows = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "eval_loss": 2.5}]
    ax = plot_loss(rows, title="tiny run")
    assert [line.get_label() for line in ax.get_lines()] == ["train", "eval"]
    assert list(ax.get_lines()[0].get_ydata()) == [3.0, 2.0]
    assert ax.get_xlabel() == "optimizer step" and "loss" in ax.get_ylabel() and ax.get_title() == "tiny run"


# --------------------------------------------------------------------------- accelerate launch configs


def _launch_args(config_file: Path):
    """The arguments ``accelerate launch --config_file config_file`` would run with."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "train.py"])
    _validate_launch_command(args)
    return args


def test_ddp_launch_config_is_valid():
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(ACCELERATE_CONFIGS / "ddp.yaml"))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert (config.mixed_precision, config.num_processes) == ("bf16", 2)
    args = _launch_args(ACCELERATE_CONFIGS / "ddp.yaml")
    assert args.multi_gpu and not args.use_fsdp and args.mixed_precision == "bf16"


def test_fsdp_launch_config_builds_an_fsdp2_plugin(monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    config = load_config_from_file(str(ACCELERATE_CONFIGS / "fsdp.yaml"))
    assert config.distributed_type == DistributedType.FSDP and config.mixed_precision == "bf16"
    args = _launch_args(ACCELERATE_CONFIGS / "fsdp.yaml")
    for key in config.fsdp_config:  # a misspelt key would be silently ignored by accelerate
        assert hasattr(args, key), f"fsdp.yaml: unknown fsdp_config key {key!r}"
    # The plugin is what the launched script's Accelerator builds from the launcher's environment.
    for name, value in prepare_multi_gpu_env(args).items():
        if name.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(name, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.auto_wrap_policy is not None
    # The wrapped unit is the Llama block, the one transformers itself never splits.
    assert plugin.transformer_cls_names_to_wrap == LlamaForCausalLM._no_split_modules == ["LlamaDecoderLayer"]


def test_loop_gives_the_recorded_loss_curve():
    """The loop's numbers did not move when ``train`` was split into named helpers.

    ``data/fixtures/training/loop_curve.json`` is the metrics log of this run made by ``train``
    before the split (its commit is in the file): dropout, two accumulated micro-batches,
    clipping, evaluation and checkpoints. On a CPU with the same kernels (torch's CPU
    capability) every number must match to the last digit; on another CPU, float sums may
    round differently, so there the bound is 1e-5 relative.
    """
    recorded = json.loads((REPO / "data" / "fixtures" / "training" / "loop_curve.json").read_text())
    cfg = small_config(max_steps=30, grad_accum_steps=2, eval_every=10, eval_batches=2, save_every=10, log_every=1)
    with tempfile.TemporaryDirectory() as tmp:
        train(tiny_llama(dropout=0.1), counting_dataset(64), cfg, output_dir=tmp,
              eval_dataset=counting_dataset(8, seed=1), seed=3)
        rows = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_metrics(tmp)]
    same_kernels = (recorded["torch"], recorded["cpu_capability"]) == (
        torch.__version__, torch.backends.cpu.get_cpu_capability())
    assert len(rows) == len(recorded["rows"]) == 33  # 30 train lines and 3 eval lines
    if same_kernels:
        assert rows == recorded["rows"]
    else:
        for row, expected in zip(rows, recorded["rows"]):
            assert row == pytest.approx(expected, rel=1e-5)
