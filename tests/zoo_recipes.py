"""Small zoo recipes for the zoo tests (imported by the tests and by their subprocesses)."""

import os
import time

from course_lib import zoo

BUILDS = []  # names built in this process, in order


def _load(path, cfg):
    return (path / "value.txt").read_text()


@zoo.register("test-seed", load=_load, sections=("run",), description="writes the run seed")
def _build_seed(cfg, out):
    BUILDS.append("test-seed")
    (out / "value.txt").write_text(f"seed={cfg.run.seed}")


@zoo.register("test-child", load=_load, sections=("tour",), deps=("test-seed",), description="reads test-seed")
def _build_child(cfg, out):
    BUILDS.append("test-child")
    parent = zoo.get("test-seed", cfg)
    (out / "value.txt").write_text(f"{parent}+ops={cfg.tour.max_operand}")


@zoo.register("test-slow", load=_load, sections=("run",), description="sleeps midway through its build")
def _build_slow(cfg, out):
    (out / "value.txt").write_text("half written")
    print("BUILD STARTED", flush=True)
    time.sleep(float(os.environ.get("SLOW_BUILD_SECONDS", "0")))
    (out / "value.txt").write_text("complete")


@zoo.register("test-fails", load=_load, sections=(), description="raises during its build")
def _build_fails(cfg, out):
    (out / "value.txt").write_text("never finished")
    raise RuntimeError("recipe bug")


@zoo.register("test-disk-full", load=_load, sections=(), description="runs out of disk space midway through its build")
def _build_disk_full(cfg, out):
    import errno

    (out / "value.txt").write_text("half written")
    raise OSError(errno.ENOSPC, "No space left on device", str(out / "weights.bin"))
