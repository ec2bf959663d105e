"""Profiles, overrides and validation errors that name the key."""

import subprocess
import sys

import pytest
import yaml

from course_lib.config import Config, ConfigError, available_profiles, load_config


def test_the_four_profiles_exist_and_load():
    assert {"ci", "laptop", "gpu", "multi_gpu"} <= set(available_profiles())
    for name in ("ci", "laptop", "gpu", "multi_gpu"):
        cfg = load_config(name)
        assert isinstance(cfg, Config) and cfg.profile == name


def test_profiles_scale_up():
    sizes = [load_config(p).model.d_model * load_config(p).model.n_layer for p in ("ci", "laptop", "gpu", "multi_gpu")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_profile_comes_from_argument_then_environment_then_laptop(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert load_config().profile == "laptop"
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    assert load_config().profile == "ci"
    assert load_config("gpu").profile == "gpu"


def test_dotted_overrides_are_typed():
    cfg = load_config("ci", ["train.max_steps=7", "train.lr=1e-4", "run.device=cpu", "tour.train.progress=true"])
    assert cfg.train.max_steps == 7
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.tour.train.progress is True
    assert load_config("ci", {"train.lr": 2}).train.lr == 2.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_stepz=3", "unknown key 'train.max_stepz' (did you mean 'max_steps'?)"),
        ("trian.lr=1", "unknown key 'trian'"),
        ("train.lr=fast", "'train.lr' must be float, got 'fast'"),
        ("train.max_steps=1.5", "'train.max_steps' must be int, got 1.5"),
        ("train.max_steps=0", "'train.max_steps' must be >= 1, got 0"),
        ("train.min_lr_ratio=2", "'train.min_lr_ratio' must be <= 1.0, got 2.0"),
        ("run.device=tpu", "'run.device' must be one of 'auto', 'cpu', 'cuda', 'mps', got 'tpu'"),
        ("train.progress=1", "'train.progress' must be bool, got 1"),
        ("train=3", "'train' is a section"),
        ("train.lr.x=1", "'train.lr' is a value, not a section"),
        ("profile=gpu", "'profile' cannot be overridden"),
        ("nokey", "must look like section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("ci", [override])
    assert message in str(err.value)


def test_unknown_key_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed keys in 'train': max_steps, batch_size"):
        load_config("ci", ["train.max_stepz=3"])


def test_bad_profile_file_names_the_key(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("train:\n  lr: 1e-3\n  warmup: 5\n")
    (tmp_path / "broken.yaml").write_text("train: [1, 2\n")
    monkeypatch.setenv("COURSE_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"profile 'bad': unknown key 'train.warmup' \(did you mean 'warmup_steps'\?\)"):
        load_config("bad")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("broken")
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*available profiles: bad, broken"):
        load_config("nope")


def test_scientific_notation_without_a_dot_is_a_float():
    # PyYAML (YAML 1.1) reads "1e-3" as a string; float fields accept it anyway.
    assert load_config("ci", ["train.lr=1e-3"]).train.lr == pytest.approx(1e-3)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("ci", ["train.max_steps=9"])
    saved = yaml.safe_load(cfg.save(tmp_path / "run" / "config.yaml").read_text())
    assert saved["profile"] == "ci" and saved["train"]["max_steps"] == 9
    assert saved == cfg.to_dict()


def test_fingerprint_tracks_only_the_named_sections():
    a, b = load_config("ci"), load_config("ci", ["train.max_steps=9"])
    assert a.fingerprint("tour") == b.fingerprint("tour")
    assert a.fingerprint("train") != b.fingerprint("train")
    with pytest.raises(ConfigError, match="unknown section 'nope'"):
        a.fingerprint("nope")


def test_fingerprint_ignores_threads_and_output_dir_but_not_the_device():
    a = load_config("ci")
    assert a.fingerprint("run") == load_config("ci", ["run.num_threads=2", "run.output_dir=elsewhere"]).fingerprint("run")
    assert a.fingerprint("run") != load_config("ci", ["run.seed=1"]).fingerprint("run")
    assert a.fingerprint("run") != load_config("ci", ["run.device=cuda"]).fingerprint("run")


def test_cli_bad_key_exits_nonzero_naming_the_key():
    proc = subprocess.run(
        [sys.executable, "-m", "course_lib", "config", "--profile", "ci", "--set", "train.max_stepz=3"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "unknown key 'train.max_stepz'" in proc.stderr
