"""Notebook hygiene, releases and assignments.

- No committed notebook carries outputs.
- Every student copy in notebooks/ is exactly what ``release`` makes of its source.
- Every autograder check passes on the solution and fails on the untouched stub.
- ``build_course`` writes executed copies, HTML pages and an index with wall times.
"""

import re
import subprocess

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib import notebooks
from course_lib.notebooks import CheckResult, REPO_ROOT

SOURCES = notebooks.exercise_sources(REPO_ROOT)
KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def repo_notebooks() -> list[str]:
    """Notebooks git tracks or would add (untracked and not ignored), relative to the repo root."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return sorted(set(out.split()))


def nbgrader_meta(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def fixture_source() -> nbformat.NotebookNode:
    """A tiny exercise source: one solution cell and two graded checks worth 1 and 2 points."""
    return new_notebook(
        metadata=KERNELSPEC,
        cells=[
            new_markdown_cell("# Exercise: double a number"),
            new_code_cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                metadata=nbgrader_meta("double", solution=True),
            ),
            new_code_cell(
                "assert double(2) == 4, 'double(2) should be 4'",
                metadata=nbgrader_meta("two", grade=True, locked=True, points=1),
            ),
            new_code_cell(
                "assert double(-1) == -2\n### BEGIN HIDDEN TESTS\nassert double(0) == 0\n### END HIDDEN TESTS",
                metadata=nbgrader_meta("minus_one", grade=True, locked=True, points=2),
            ),
        ],
    )


# --------------------------------------------------------------------------- (a) no outputs in git


def test_output_detector_flags_outputs_and_counts():
    nb = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("1 + 1")])
    assert not notebooks.has_outputs(nb)
    nb.cells[1].outputs = [new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    assert notebooks.has_outputs(nb)
    nb.cells[1].outputs = []
    assert notebooks.has_outputs(nb), "an execution count alone counts as output"
    nb.cells[1].metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    notebooks.strip_outputs(nb)
    assert not notebooks.has_outputs(nb)
    assert "execution" not in nb.cells[1].metadata


@pytest.mark.parametrize("relpath", repo_notebooks())
def test_committed_notebook_has_no_outputs(relpath):
    nb = nbformat.read(REPO_ROOT / relpath, as_version=4)
    code = [(i + 1, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    dirty = [n for n, c in code if c.outputs or c.execution_count is not None]
    assert not dirty, f"{relpath}: cells {dirty} carry outputs; strip them (Jupyter: Edit > Clear Outputs of All Cells)"


# --------------------------------------------------------------------------- (b) releases in sync


def test_there_are_exercise_sources():
    assert SOURCES, "no solutions/NN_slug_exercises.ipynb found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_copy_is_in_sync(source):
    copy = notebooks.student_copy(source)
    assert copy.is_file(), f"{source.name} has no student copy {copy}; run `make release`"
    assert nbformat.read(copy, as_version=4) == notebooks.release(source), f"{copy} is out of date; run `make release`"


def test_every_student_copy_has_a_source():
    copies = [p for p in (REPO_ROOT / "notebooks").glob("*_exercises.ipynb")]
    orphans = [p.name for p in copies if not (REPO_ROOT / "solutions" / p.name).is_file()]
    assert not orphans, f"student copies without a source in solutions/: {orphans}"


def test_release_replaces_solutions_and_hides_hidden_tests(tmp_path):
    source = tmp_path / "00_x_exercises.ipynb"
    nbformat.write(fixture_source(), source)
    nb = notebooks.release(source)
    assert nb.cells[1].source == "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert nb.cells[2].source == "assert double(2) == 4, 'double(2) should be 4'"
    assert nb.cells[3].source == "assert double(-1) == -2"
    assert nb.cells[2].metadata["editable"] is False and nb.cells[2].metadata["deletable"] is False
    assert "checksum" in nb.cells[2].metadata["nbgrader"]
    assert not notebooks.has_outputs(nb)


def test_release_all_writes_and_checks(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "solutions" / "00_x_exercises.ipynb"
    nbformat.write(fixture_source(), source)
    copy = tmp_path / "notebooks" / "00_x_exercises.ipynb"

    assert notebooks.release_all(tmp_path, check=True) == [copy], "a source without a student copy is out of sync"
    assert not copy.exists(), "check=True must not write"
    assert notebooks.release_all(tmp_path) == [copy]
    assert notebooks.release_all(tmp_path, check=True) == []

    nb = nbformat.read(source, as_version=4)
    nb.cells[2].source = "assert double(3) == 6"
    nbformat.write(nb, source)
    assert notebooks.release_all(tmp_path, check=True) == [copy]


def test_release_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope_exercises.ipynb does not exist"):
        notebooks.release(tmp_path / "nope_exercises.ipynb")
    plain = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")], metadata=KERNELSPEC), plain)
    with pytest.raises(ValueError, match="plain.ipynb has no nbgrader cell metadata"):
        notebooks.release(plain)


# --------------------------------------------------------------------------- (c, d) checks pass on solutions, fail on stubs


@pytest.mark.slow
def test_grade_reports_each_check(tmp_path):
    nb = fixture_source()
    nb.cells[1].source = "def double(x):\n    return 2 * x if x > 0 else x"
    path = tmp_path / "00_x_exercises.ipynb"
    nbformat.write(nb, path)
    assert notebooks.grade(path) == [
        CheckResult("two", 1, True, None),
        CheckResult("minus_one", 2, False, "AssertionError"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_check_passes_on_the_solution(source):
    results = notebooks.grade(source, cwd=REPO_ROOT / "notebooks")
    failed = [f"{r.grade_id}: {r.error}" for r in results if not r.passed]
    assert not failed, f"checks failing on the solution {source.name}:\n" + "\n".join(failed)


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_check_fails_on_the_stub(source, tmp_path):
    stub = tmp_path / source.name
    nbformat.write(notebooks.release(source), stub)
    results = notebooks.grade(stub, cwd=REPO_ROOT / "notebooks")
    passed = [r.grade_id for r in results if r.passed]
    assert not passed, f"checks passing on the untouched stub of {source.name} (they test nothing): {passed}"


# --------------------------------------------------------------------------- (e) build


@pytest.mark.slow
def test_build_course_reports_each_notebook(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    cells = {
        "00_ok": [new_markdown_cell("# OK"), new_code_cell("import os\nprint('profile', os.environ['COURSE_PROFILE'])")],
        "01_fails": [new_code_cell("x = 1"), new_code_cell("raise ValueError('boom')"), new_code_cell("y = 2")],
        "01_fails_exercises": [new_code_cell("raise NotImplementedError()")],
        "scratch": [new_code_cell("raise RuntimeError('not a chapter notebook')")],
    }
    for name, nb_cells in cells.items():
        nbformat.write(new_notebook(cells=nb_cells, metadata=KERNELSPEC), folder / f"{name}.ipynb")
    assert [p.name for p in notebooks.walkthroughs(tmp_path)] == ["00_ok.ipynb", "01_fails.ipynb"]

    out = tmp_path / "build"
    report = notebooks.build_course(out, "ci", root=tmp_path)

    assert [(r.name, r.ok) for r in report.runs] == [("00_ok", True), ("01_fails", False)]
    assert not report.ok and report.failed == [report.runs[1]]
    assert report.runs[1].error == "cell 2: ValueError: boom"
    assert all(r.seconds > 0 for r in report.runs)
    executed = nbformat.read(out / "00_ok.ipynb", as_version=4)
    assert executed.cells[1].outputs[0].text == "profile ci\n", "the kernel must see the build's profile"
    assert (out / "00_ok.html").is_file() and (out / "01_fails.html").is_file()
    assert "profile ci" in (out / "00_ok.html").read_text(encoding="utf-8")
    index = (out / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<a href="00_ok.html">00_ok</a>.*<td>ok</td><td>\d+\.\d s</td>', index)
    failed_row = r'<a href="01_fails.html">01_fails</a>.*<td>failed</td><td>\d+\.\d s</td><td><pre>cell 2: ValueError: boom'
    assert re.search(failed_row, index)
    assert "01_fails_exercises" not in index and "scratch" not in index
    assert "[2/2] 01_fails ... FAILED" in capsys.readouterr().out


def test_execute_names_a_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ipynb does not exist"):
        notebooks.execute(tmp_path / "missing.ipynb", profile="ci")


def test_walkthroughs_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook folder .*notebooks"):
        notebooks.walkthroughs(tmp_path)
