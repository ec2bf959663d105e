"""Pytest set-up for the whole repository.

- Notebook kernels started by nbval inherit this process's environment, so the
  fast ``ci`` profile is exported here unless the caller chose another.
- Student copies ``notebooks/*_exercises.ipynb`` raise ``NotImplementedError`` by
  design, so nbval does not collect them; ``tests/test_notebooks.py`` grades them
  and proves every check fails on them.
- The longest file goes first: ``tests/test_instruct_laptop.py`` builds the laptop models
  (about 15 minutes on one core of a clean clone), so with ``--dist loadfile`` one worker
  starts it while the others run the rest of the suite (``--no-loadscope-reorder`` in
  pyproject's addopts: xdist would otherwise reorder files by their number of tests).
"""

import os
from pathlib import Path

os.environ.setdefault("COURSE_PROFILE", "ci")

_STUDENT_COPIES = Path(__file__).resolve().parent / "notebooks"


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path.name.endswith("_exercises.ipynb") and collection_path.resolve().parent == _STUDENT_COPIES:
        return True
    return None  # let pytest decide as usual


LONGEST_FIRST = ("tests/test_instruct_laptop.py",)


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # a stable sort: the rest keep their order
