"""Write the shipped snapshot of the `laptop` world: ``python -m course_lib.world.snapshot [folder]``."""

from __future__ import annotations

import sys
import time

from course_lib.config import load_config

from .loading import SNAPSHOT_DIR, write_snapshot
from .world import build_world


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    world = build_world(load_config("laptop").world)
    folder = write_snapshot(world, argv[0] if argv else SNAPSHOT_DIR)
    print(f"wrote {folder} ({len(world.documents)} documents, {len(world.tasks)} tasks) "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
