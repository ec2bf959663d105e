"""Run, build, release and grade the course notebooks.

- ``walkthroughs`` / ``exercise_sources``: the notebooks of a checkout, in chapter order.
- ``execute``: run one notebook top to bottom in a fresh ``python3`` kernel under a
  config profile (``$COURSE_PROFILE`` is set for the kernel).
- ``build_course``: execute every walkthrough into ``build/``: executed copies, one
  HTML page each and an ``index.html`` with each notebook's wall time and status.
- ``release`` / ``release_all``: student copies ``notebooks/NN_slug_exercises.ipynb``
  made from ``solutions/NN_slug_exercises.ipynb`` by nbgrader's own
  generate-assignment preprocessors.
- ``grade``: run a notebook and report every autograder check (nbgrader test cell).

Committed notebooks carry no outputs: ``strip_outputs`` and ``has_outputs``.
"""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_lib.config import PROFILE_ENV, resolve_profile

REPO_ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 600  # same per-cell limit as pytest's --nbval-cell-timeout

_CHAPTER_NOTEBOOK = re.compile(r"^\d{2}_[A-Za-z0-9_-]+\.ipynb$")
_EXERCISES_SUFFIX = "_exercises.ipynb"


# --------------------------------------------------------------------------- finding notebooks


def walkthroughs(root: str | os.PathLike = REPO_ROOT) -> list[Path]:
    """The walkthroughs ``<root>/notebooks/NN_slug.ipynb`` in chapter order, without exercises."""
    return [p for p in _chapter_notebooks(Path(root) / "notebooks") if not p.name.endswith(_EXERCISES_SUFFIX)]


def exercise_sources(root: str | os.PathLike = REPO_ROOT) -> list[Path]:
    """The exercise sources ``<root>/solutions/NN_slug_exercises.ipynb`` in chapter order."""
    return [p for p in _chapter_notebooks(Path(root) / "solutions") if p.name.endswith(_EXERCISES_SUFFIX)]


def student_copy(source: str | os.PathLike, root: str | os.PathLike = REPO_ROOT) -> Path:
    """Where the student copy of exercise source ``source`` lives: ``<root>/notebooks/<same name>``."""
    return Path(root) / "notebooks" / Path(source).name


def _chapter_notebooks(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebook folder {folder}")
    return sorted(p for p in folder.iterdir() if _CHAPTER_NOTEBOOK.match(p.name))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} does not exist")
    return path


# --------------------------------------------------------------------------- outputs


def strip_outputs(nb: NotebookNode) -> NotebookNode:
    """Remove outputs, execution counts and run timings from every code cell, in place; returns ``nb``."""
    from nbconvert.preprocessors import ClearOutputPreprocessor

    # "execution" holds the timestamps nbclient records; they change on every run.
    clear = ClearOutputPreprocessor(remove_metadata_fields={"collapsed", "scrolled", "execution"})
    clear.preprocess(nb, {})
    return nb


def has_outputs(nb: NotebookNode) -> bool:
    """True if any code cell carries outputs or an execution count."""
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None) for c in nb.cells)


# --------------------------------------------------------------------------- execution


def execute(
    path: str | os.PathLike,
    *,
    profile: str | None = None,
    timeout: float = CELL_TIMEOUT_S,
    cwd: str | os.PathLike | None = None,
    allow_errors: bool = False,
) -> tuple[NotebookNode, float, str | None]:
    """Run the notebook at ``path`` top to bottom in a fresh ``python3`` kernel.

    ``profile`` (default: ``$COURSE_PROFILE``, else ``laptop``) is exported to the
    kernel as ``$COURSE_PROFILE``; ``timeout`` is seconds per cell; ``cwd`` is the
    kernel's working folder (default: the notebook's folder, as in Jupyter).
    Without ``allow_errors`` execution stops at the first failing cell.

    Returns the executed notebook (as far as it ran), the wall time in seconds and
    ``None`` or an error such as ``"cell 4: ValueError: bad shape"`` (cells counted
    from 1, markdown included).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, DeadKernelError

    path = _existing(path)
    nb = nbformat.read(path, as_version=4)
    started: list[int] = []
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=timeout,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd or path.parent)}},
        on_cell_start=lambda cell, cell_index: started.append(cell_index),
    )
    env = {**os.environ, PROFILE_ENV: resolve_profile(profile)}
    error = None
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except (CellControlSignal, DeadKernelError) as err:  # a cell error, a cell timeout, a dead kernel
        where = f"cell {started[-1] + 1}: " if started else ""
        if hasattr(err, "ename"):
            error = where + _error_text(err.ename, err.evalue)
        else:
            error = where + str(err).strip().splitlines()[0]
    return nb, time.perf_counter() - t0, error


def _error_text(ename: str, evalue: str) -> str:
    """``"ValueError: bad shape"``, or just the name for a bare ``assert``."""
    return f"{ename}: {evalue}" if evalue else ename


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook of a build: its name, wall time in seconds and error, if any."""

    name: str
    source: Path
    seconds: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BuildReport:
    """The outcome of ``build_course``; ``ok`` is False if any notebook failed."""

    out_dir: Path
    profile: str
    runs: list[NotebookRun]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    @property
    def failed(self) -> list[NotebookRun]:
        return [r for r in self.runs if not r.ok]

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)


def build_course(
    out_dir: str | os.PathLike = "build",
    profile: str | None = None,
    *,
    root: str | os.PathLike = REPO_ROOT,
    timeout: float = CELL_TIMEOUT_S,
) -> BuildReport:
    """Execute every walkthrough of ``root`` in chapter order into ``out_dir``.

    Writes, per notebook, the executed ``NN_slug.ipynb`` (as far as it ran) and
    ``NN_slug.html``, then ``index.html`` listing each notebook with its wall time
    and status. A failing notebook does not stop the build; ``report.ok`` says
    whether all passed. ``profile`` defaults to ``$COURSE_PROFILE``, else ``laptop``;
    ``timeout`` is seconds per cell.
    """
    from nbconvert import HTMLExporter

    profile = resolve_profile(profile)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notebooks = walkthroughs(root)
    exporter = HTMLExporter()
    runs = []
    print(f"building {len(notebooks)} notebooks with profile {profile!r} into {out}/", flush=True)
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.stem} ...", end=" ", flush=True)
        nb, seconds, error = execute(path, profile=profile, timeout=timeout)
        nbformat.write(nb, out / path.name)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        print(f"ok in {seconds:.1f} s" if error is None else f"FAILED in {seconds:.1f} s: {error}", flush=True)
        runs.append(NotebookRun(path.stem, path, seconds, error))
    report = BuildReport(out, profile, runs)
    (out / "index.html").write_text(_index_html(report), encoding="utf-8")
    print(f"{len(runs) - len(report.failed)}/{len(runs)} notebooks ok in {report.seconds:.1f} s; see {out / 'index.html'}")
    return report


def _index_html(report: BuildReport) -> str:
    rows = []
    for i, r in enumerate(report.runs, 1):
        name = html.escape(r.name)
        status = "ok" if r.ok else "failed"
        error = f"<pre>{html.escape(r.error)}</pre>" if r.error else ""
        rows.append(
            f'<tr class="{status}"><td>{i}</td><td><a href="{name}.html">{name}</a> '
            f'(<a href="{name}.ipynb">ipynb</a>)</td><td>{status}</td>'
            f"<td>{r.seconds:.1f} s</td><td>{error}</td></tr>"
        )
    title = f"Course notebooks, profile {html.escape(report.profile)}"
    summary = f"{len(report.runs) - len(report.failed)} of {len(report.runs)} ok, {report.seconds:.1f} s in total"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            f'<html><head><meta charset="utf-8"><title>{title}</title>',
            "<style>body{font-family:sans-serif} td,th{padding:4px 10px;text-align:left;vertical-align:top}"
            " tr.failed td{background:#fdd} pre{margin:0;white-space:pre-wrap}</style></head><body>",
            f"<h1>{title}</h1><p>{summary}</p>",
            "<table><tr><th>#</th><th>Notebook</th><th>Status</th><th>Wall time</th><th>Error</th></tr>",
            *rows,
            "</table></body></html>",
            "",
        ]
    )


# --------------------------------------------------------------------------- release


def _release_preprocessors() -> list[type]:
    """nbgrader's generate-assignment pipeline, in its own order, without the gradebook step.

    ``SaveCells`` writes the cells into nbgrader's database; a course repo has none.
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import SaveCells

    pipeline = GenerateAssignment.class_traits()["preprocessors"].default()
    return [p for p in pipeline if p is not SaveCells]


def release(source_path: str | os.PathLike) -> NotebookNode:
    """The student copy of an exercise source: solutions replaced by stubs, outputs cleared.

    Uses nbgrader's preprocessors: solution regions (``### BEGIN SOLUTION`` ...
    ``### END SOLUTION``) become ``raise NotImplementedError()``, hidden tests and
    mark schemes are removed, graded cells are locked and checksummed.
    """
    path = _existing(source_path)
    nb = nbformat.read(path, as_version=4)
    if not any("nbgrader" in cell.metadata for cell in nb.cells):
        raise ValueError(
            f"{path} has no nbgrader cell metadata: mark its solution cells and autograder "
            "test cells (View > Cell Toolbar > Create Assignment in Jupyter)"
        )
    resources = {"metadata": {"path": str(path.parent), "name": path.stem}, "unique_key": path.stem}
    for preprocessor in _release_preprocessors():
        nb, resources = preprocessor()(nb, resources)
    return nb


def release_all(root: str | os.PathLike = REPO_ROOT, check: bool = False) -> list[Path]:
    """Write the student copy of every exercise source of ``root`` into ``<root>/notebooks/``.

    Returns the student copies that were missing or out of date: written, or with
    ``check=True`` only reported (nothing is written).
    """
    stale = []
    for source in exercise_sources(root):
        target = student_copy(source, root)
        nb = release(source)
        if target.is_file() and nbformat.read(target, as_version=4) == nb:
            continue
        stale.append(target)
        if not check:
            nbformat.write(nb, target)
    return stale


# --------------------------------------------------------------------------- grading


@dataclass(frozen=True)
class CheckResult:
    """One autograder check of a notebook: passed, or failed with the cell's error."""

    grade_id: str
    points: float
    passed: bool
    error: str | None


def grade(
    notebook_path: str | os.PathLike,
    *,
    profile: str = "ci",
    timeout: float = CELL_TIMEOUT_S,
    cwd: str | os.PathLike | None = None,
) -> list[CheckResult]:
    """Run a notebook, errors allowed, and report every autograder check in order.

    A check is a cell with nbgrader metadata ``grade: true, solution: false``; it
    passes if it ran without error. ``profile``, ``timeout`` (seconds per cell)
    and ``cwd`` are as in ``execute``.
    """
    nb, _, error = execute(notebook_path, profile=profile, timeout=timeout, cwd=cwd, allow_errors=True)
    results = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        if cell.get("execution_count") is None:
            failure = f"not run: {error}"
        else:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            failure = _error_text(errors[0].ename, errors[0].evalue) if errors else None
        results.append(CheckResult(meta["grade_id"], meta.get("points", 0), failure is None, failure))
    if not results:
        raise ValueError(f"{notebook_path} has no autograder test cells (nbgrader grade: true, solution: false)")
    return results
