"""An instructor's path: hand out, collect and autograde chapter 00's exercises with nbgrader's own commands.

In a temporary nbgrader course folder (its own ``nbgrader_config.py`` and gradebook), ``nbgrader
generate_assignment`` makes the student copy from ``solutions/00_course_tour_exercises.ipynb``; three students
hand it in under ``submitted/<student>/<assignment>/``: one untouched, one with exercise 1 answered, one with the
solutions; ``nbgrader autograde`` runs them on the ``ci`` profile and the gradebook must hold, check by check,
exactly the points of the checks each student's answers pass. ``tests/test_notebooks.py`` covers ``course
release`` and ``course grade``; this file covers the nbgrader route of the README's "For instructors".
"""

import copy
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "solutions" / "00_course_tour_exercises.ipynb"  # the quickest exercises on the ci profile
STUDENT_COPY = REPO_ROOT / "notebooks" / SOURCE.name
ASSIGNMENT = "00_course_tour"
NOTEBOOK = SOURCE.stem
BIN = Path(sys.executable).parent  # nbgrader, and the alembic it calls to create the gradebook
SOLUTION_MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}

pytestmark = pytest.mark.slow


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def checks_by_exercise(nb) -> dict[str, dict[str, float]]:
    """``{solution cell's grade_id: {check's grade_id: points}}``: each autograder check under the answer it tests."""
    exercises: dict[str, dict[str, float]] = {}
    answer = None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            answer = meta["grade_id"]
            exercises[answer] = {}
        elif meta.get("grade") and cell.cell_type == "code":
            assert answer is not None, f"check {meta['grade_id']} comes before any answer cell"
            exercises[answer][meta["grade_id"]] = float(meta["points"])
    return exercises


def answered(student_copy, source, grade_ids: set[str]):
    """The student copy with the answer cells ``grade_ids`` filled in from the source (markers dropped)."""
    solutions = {nbgrader_meta(c).get("grade_id"): c.source for c in source.cells if nbgrader_meta(c).get("solution")}
    nb = copy.deepcopy(student_copy)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") in grade_ids:
            cell.source = "\n".join(line for line in solutions[nbgrader_meta(cell)["grade_id"]].splitlines()
                                    if line.strip() not in SOLUTION_MARKERS)
    return nb


def nbgrader(course: Path, *args: str) -> None:
    """Run ``nbgrader <args>`` in the course folder, as an instructor with the course's venv activated."""
    env = {**os.environ, "COURSE_PROFILE": "ci", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} exited with {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


def test_nbgrader_hands_out_collects_and_grades(tmp_path):
    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    gradebook = f"sqlite:///{course / 'gradebook.db'}"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'llm-course'\n"
        f"c.CourseDirectory.db_url = {gradebook!r}\n"
    )
    shutil.copy(SOURCE, course / "source" / ASSIGNMENT)

    # hand out
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = nbformat.read(course / "release" / ASSIGNMENT / SOURCE.name, as_version=4)
    assert release == nbformat.read(STUDENT_COPY, as_version=4), \
        f"nbgrader generate_assignment and `make release` disagree on {STUDENT_COPY.name}"

    # collect: what `nbgrader collect` would put in submitted/
    source = nbformat.read(SOURCE, as_version=4)
    exercises = checks_by_exercise(source)
    first = next(iter(exercises))  # exercise 1, the softmax
    submissions = {
        "stub": release,
        "first_only": answered(release, source, {first}),
        "solution": source,
    }
    for student, nb in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / SOURCE.name)

    # grade
    nbgrader(course, "autograde", ASSIGNMENT)
    nbgrader(course, "export")

    every_check = {check: points for checks in exercises.values() for check, points in checks.items()}
    expected = {
        "stub": dict.fromkeys(every_check, 0.0),
        "first_only": {check: points if check in exercises[first] else 0.0 for check, points in every_check.items()},
        "solution": every_check,
    }
    total = sum(every_check.values())
    assert total == 7 and sum(expected["first_only"].values()) == 3, "the tour's exercises are worth 3 + 3 + 1 points"
    with Gradebook(gradebook) as gb:
        for student, want in expected.items():
            graded = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
            got = {grade.name: grade.score for grade in graded.grades}
            assert got == want, f"{student}: gradebook scores {got}, expected {want}"
            submission = gb.find_submission(ASSIGNMENT, student)
            assert (submission.score, submission.max_score) == (sum(want.values()), total), student

    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}
    assert rows == {"stub": (0.0, total), "first_only": (3.0, total), "solution": (total, total)}
