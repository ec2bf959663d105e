"""The shipped snapshot in data/world/ is exactly what the laptop profile regenerates."""

import hashlib
import time

from course_lib.config import load_config
from course_lib.world import generate_world
from course_lib.world.loading import SNAPSHOT_DIR, data_card, table_bytes


def test_snapshot_matches_regeneration():
    start = time.perf_counter()
    world = generate_world(load_config("laptop").world)
    assert time.perf_counter() - start < 30  # the design's budget for the laptop world
    sums = dict(line.split()[::-1] for line in (SNAPSHOT_DIR / "SHA256SUMS").read_text().splitlines())
    for table, blob in table_bytes(world).items():
        name = f"{table}.jsonl"
        fresh = hashlib.sha256(blob).hexdigest()
        assert sums[name] == fresh, f"{name} changed: run `python -m course_lib.world.snapshot`"
        assert hashlib.sha256((SNAPSHOT_DIR / name).read_bytes()).hexdigest() == fresh, name
    assert (SNAPSHOT_DIR / "README.md").read_text(encoding="utf-8") == data_card(world)
