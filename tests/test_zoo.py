"""The artifact zoo: caching, keys, atomic builds, clean."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import zoo
from course_lib.config import load_config

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import zoo_recipes  # noqa: E402  (registers the test-* recipes)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    zoo_recipes.BUILDS.clear()
    return tmp_path / "cache"


def entries(cache: Path) -> list[Path]:
    """The cache's artifact folders, finished or not (without the lock files)."""
    return sorted(p for p in cache.iterdir() if p.name != zoo.LOCK_DIR)


def test_get_builds_once_then_loads_from_cache(cache):
    assert not zoo.is_built("test-seed", "ci")
    assert zoo.get("test-seed", "ci") == "seed=0"
    assert zoo.get("test-seed", "ci") == "seed=0"
    assert zoo_recipes.BUILDS == ["test-seed"]
    assert zoo.is_built("test-seed", "ci")
    manifest = zoo.manifest("test-seed", "ci")
    assert manifest["name"] == "test-seed" and manifest["sections"]["run"]["seed"] == 0


def test_key_follows_the_recipe_sections_and_dependencies():
    base = zoo.path("test-child", "ci")
    assert zoo.path("test-child", "ci", ["train.max_steps=3"]) == base  # train is not read
    assert zoo.path("test-child", "ci", ["tour.max_operand=5"]) != base  # its own section
    assert zoo.path("test-child", "ci", ["run.seed=5"]) != base  # a dependency's section
    assert zoo.path("test-seed", "ci", ["run.seed=5"]) != zoo.path("test-seed", "ci")


def test_key_follows_the_recipe_source(monkeypatch):
    before = zoo.cache_key("test-seed", load_config("ci"))

    def _build_seed_edited(cfg, out):
        (out / "value.txt").write_text(f"seed is {cfg.run.seed}")

    monkeypatch.setitem(zoo._RECIPES, "test-seed", zoo.recipe("test-seed").__class__(
        "test-seed", _build_seed_edited, zoo_recipes._load, ("run",)))
    assert zoo.cache_key("test-seed", load_config("ci")) != before


@pytest.fixture
def fresh_fingerprints():
    zoo.code_fingerprint.cache_clear()
    yield
    zoo.code_fingerprint.cache_clear()  # after monkeypatch's undo: later keys see the real code again


def test_key_follows_the_code_a_recipe_reaches(monkeypatch, fresh_fingerprints):
    from course_lib.encdec import t5 as T5
    from course_lib.world import documents as D

    cfg = load_config("ci")
    t5, data = zoo.cache_key("t5", cfg), zoo.cache_key("pretrain-data", cfg)

    def new_t5_model(cfg, tokenizer):  # an edited copy of the function the t5 recipe calls (through pretrain_t5)
        return None

    new_t5_model.__module__ = "course_lib.encdec.t5"
    monkeypatch.setattr(T5, "new_t5_model", new_t5_model)
    zoo.code_fingerprint.cache_clear()
    assert zoo.cache_key("t5", cfg) != t5
    assert zoo.cache_key("pretrain-data", cfg) == data  # pretrain-data never calls it
    # a constant the world's documents are written from (reached through a lazy import in corpus_documents)
    monkeypatch.setattr(D, "_BOOK_FILLER", {**D._BOOK_FILLER, "en": ["It rained."]})
    zoo.code_fingerprint.cache_clear()
    assert zoo.cache_key("pretrain-data", cfg) != data


def test_docstrings_and_comments_are_not_code():
    def documented(x):
        """Twice x."""
        return 2 * x  # doubled

    def bare(x):
        return 2 * x

    def other(x):
        return 3 * x

    code = lambda f: zoo._code(f)[0].replace(f.__name__, "f")  # noqa: E731
    assert code(documented) == code(bare) != code(other)


def test_keys_are_the_same_in_every_process():
    script = ("from course_lib import zoo; from course_lib.config import load_config; "
              "print([zoo.cache_key(n, load_config('ci')) for n in ('base', 't5', 'curated')])")
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(keys) == 1 and keys.pop().count("'") == 6


def test_dependencies_are_built_first():
    assert zoo.get("test-child", "ci", ["run.seed=3"]) == "seed=3+ops=9"
    assert zoo_recipes.BUILDS == ["test-seed", "test-child"]


def test_unknown_artifact_names_the_known_ones():
    with pytest.raises(KeyError, match="no zoo recipe named 'nope'; known artifacts: .*test-seed"):
        zoo.get("nope", "ci")


def test_a_failing_build_leaves_nothing(cache):
    with pytest.raises(RuntimeError, match="recipe bug"):
        zoo.get("test-fails", "ci")
    assert not zoo.is_built("test-fails", "ci")
    assert entries(cache) == []


def test_killed_build_leaves_nothing_that_get_loads(cache):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SLOW_BUILD_SECONDS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import zoo_recipes; from course_lib import zoo; zoo.build('test-slow', 'ci')"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "BUILD STARTED"
        partial = entries(cache)
        assert len(partial) == 1 and partial[0].name.startswith(".tmp-test-slow-")
        assert (partial[0] / "value.txt").read_text() == "half written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not zoo.is_built("test-slow", "ci")
    assert zoo.clean("ci", names=("test-slow",)) == partial  # the dead build's folder
    assert zoo.get("test-slow", "ci") == "complete"  # rebuilt from scratch


def test_two_processes_asking_at_once_build_once(cache):
    """A build in one process and a get in another do not race: the second waits, then loads."""
    env = {**os.environ, "PYTHONPATH": str(TESTS), "SLOW_BUILD_SECONDS": "3"}
    script = "import zoo_recipes; from course_lib import zoo; print(zoo.get('test-slow', 'ci'), flush=True)"
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].splitlines() for p in procs]
    assert sorted(outputs) == [["BUILD STARTED", "complete"], ["complete"]]  # one built, the other waited
    assert [p.name for p in entries(cache)] == [zoo.path("test-slow", "ci").name]


def test_clean_keeps_current_entries_and_removes_stale_ones(cache):
    zoo.get("test-seed", "ci")
    zoo.get("test-seed", "ci", ["run.seed=1"])
    removed = zoo.clean("ci", names=("test-seed",))  # seed=1 is not the ci profile's current key
    assert [p.name for p in removed] == [zoo.path("test-seed", "ci", ["run.seed=1"]).name]
    assert zoo.is_built("test-seed", "ci")
    assert zoo.clean("ci", everything=True) == [cache / zoo.LOCK_DIR, zoo.path("test-seed", "ci")]
    assert not zoo.is_built("test-seed", "ci")


def test_cache_dir_defaults_to_the_repo_and_is_git_ignored(monkeypatch):
    monkeypatch.delenv("COURSE_CACHE_DIR")
    root = Path(zoo.__file__).resolve().parent.parent
    assert zoo.cache_dir(load_config("ci")) == root / ".course_cache"
    assert zoo.cache_dir(load_config("ci", ["zoo.cache_dir=/somewhere/else"])) == Path("/somewhere/else")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".course_cache/x"], cwd=root)
    assert ignored.returncode == 0


def test_a_full_disk_names_the_artifact_and_keeps_nothing(cache):
    with pytest.raises(zoo.ZooError, match=r"building 'test-disk-full' into .* failed while writing: .*No space left "
                                           r"on device.*nothing was kept"):
        zoo.get("test-disk-full", "ci")
    assert not zoo.is_built("test-disk-full", "ci")
    assert entries(cache) == []  # no half-written folder, finished or temporary


def test_a_failing_manifest_write_keeps_nothing(cache, monkeypatch):
    import errno

    write = Path.write_text

    def failing(self, *args, **kwargs):
        if self.name == zoo.MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write(self, *args, **kwargs)

    with monkeypatch.context() as mp:  # only the write fails; the cache folder of the fixture stays
        mp.setattr(Path, "write_text", failing)
        with pytest.raises(zoo.ZooError, match="building 'test-seed': writing its manifest failed: .*No space left"):
            zoo.get("test-seed", "ci")
    assert entries(cache) == [] and not zoo.is_built("test-seed", "ci")
    assert zoo.get("test-seed", "ci") == "seed=0"  # the next build, with room, completes


def test_an_entry_of_another_recipe_version_is_refused(cache):
    import json
    import shutil

    zoo.get("test-seed", "ci", ["run.seed=1"])
    other, current = zoo.path("test-seed", "ci", ["run.seed=1"]), zoo.path("test-seed", "ci")
    shutil.copytree(other, current)  # a folder under the current key whose manifest names another key
    with pytest.raises(zoo.ZooError, match=rf"its manifest says artifact 'test-seed' with key '{other.name[-16:]}', "
                                           rf"not 'test-seed' with key '{current.name[-16:]}'.*another version"):
        zoo.get("test-seed", "ci")
    manifest = json.loads((current / zoo.MANIFEST).read_text())
    (current / zoo.MANIFEST).write_text(json.dumps(manifest | {"key": current.name[-16:], "name": "test-child"}))
    with pytest.raises(zoo.ZooError, match="says artifact 'test-child'"):
        zoo.get("test-seed", "ci")


def test_the_manifest_records_the_build_cost():
    zoo.get("test-seed", "ci")
    manifest = zoo.manifest("test-seed", "ci")
    assert manifest["build_seconds"] >= 0 and manifest["processes"] == 1
    assert 10 * 2**20 < manifest["peak_rss_bytes"] < 64 * 2**30  # this Python process, at least tens of MB


def test_keys_do_not_depend_on_what_the_process_did_before(fresh_fingerprints):
    """Lookup tables that fill as they are used (pii's fold table, dedup's space table) are caches, not constants:
    running the code that fills them must not change a key (it once did: a build after curation got a new key)."""
    from course_lib.curation import dedup, pii

    cfg = load_config("ci")
    names = ("curated", "aligned", "scorecard")
    before = {n: zoo.cache_key(n, cfg) for n in names}
    pii.fold("Ｆｕｌｌ－ｗｉｄｔｈ 010－1234－5678 ")
    dedup.normalize_text("Hello, World! 안녕하세요 — ¿qué?")
    zoo.code_fingerprint.cache_clear()
    assert {n: zoo.cache_key(n, cfg) for n in names} == before


def test_clean_leaves_other_profiles_alone(cache):
    zoo.get("test-seed", "ci")
    zoo.get("test-seed", "laptop")  # another profile's artifact: not stale for ci
    zoo.get("test-seed", "ci", ["run.seed=1"])  # ci's, under a key that is not current: stale
    removed = zoo.clean("ci", names=("test-seed",))
    assert [p.name for p in removed] == [zoo.path("test-seed", "ci", ["run.seed=1"]).name]
    assert zoo.is_built("test-seed", "laptop") and zoo.is_built("test-seed", "ci")


def test_keys_do_not_depend_on_which_submodules_were_imported_first():
    """A recipe that imports a submodule lazily (``from ..alignment import arena as A`` in the scorecard's code)
    reaches the same code whether or not something earlier in the process imported that submodule (a test worker
    that ran chapter 07's tests first once computed another key than a fresh process: the lifecycle failed).
    Every key, in a fresh process and in one that imported every module of the library first."""
    script = ("import importlib, pkgutil, sys, course_lib; from course_lib import zoo; "
              "from course_lib.config import load_config; "
              "[importlib.import_module(m.name) for m in pkgutil.walk_packages(course_lib.__path__, 'course_lib.') "
              " if sys.argv[1:] and not m.name.endswith('__main__')]; "
              "print(sorted((n, zoo.cache_key(n, load_config('ci'))) for n in zoo.recipes()))")
    fresh, everything = (subprocess.run([sys.executable, "-c", script, *first], capture_output=True, text=True,
                                        check=True).stdout for first in ((), ("all",)))
    assert fresh == everything
    assert "'scorecard'" in fresh and "'arena'" in fresh
