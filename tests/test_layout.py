"""The library's shape: infrastructure below the chapters, chapters in course order, no import circles.

Every ``import`` in ``course_lib`` (at the top of a module or inside a function) is an
arrow from the importing module to the imported one. The rooms and the direction the
arrows may point are listed here explicitly; a new module must be placed in one.
"""

import ast
import importlib.util
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parent.parent / "course_lib"

# Shared infrastructure, flat modules: they import each other and nothing else of the course.
INFRASTRUCTURE = {"config", "checks", "runs", "models", "tokenization", "packing", "training", "generation", "zoo",
                  "notebooks", "grading"}
# Chapters in course order: a chapter imports infrastructure, itself and earlier chapters.
CHAPTERS = {"tour": 0, "world": 1, "curation": 2, "pretraining": 3, "encdec": 4, "evaluation": 5,
            "instruction": 6, "alignment": 7, "compression": 8, "retrieval": 10, "lifecycle": 11}
# The command line sits on top: it imports any room, and no room imports it.
TOP = {"cli", "__main__"}
MAX_MODULE_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def room(module: str) -> str:
    """``course_lib.pretraining.icl`` -> ``pretraining``; the package itself is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The ``course_lib`` modules that ``module`` imports anywhere in its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself.
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m == "course_lib" or m.startswith("course_lib.")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, p, set(known)) - {m} for m, p in known.items()}


def upward(src: str, dst: str) -> str | None:
    """Why the arrow ``src -> dst`` breaks the layout, or None when it is allowed."""
    a, b = room(src), room(dst)
    for r, m in ((a, src), (b, dst)):
        if r not in INFRASTRUCTURE | set(CHAPTERS) | TOP | {"__init__"}:
            return f"{m} is in no room of the layout (tests/test_layout.py lists them)"
    if b in TOP and a not in TOP:
        return "nothing in the library imports the command line"
    if a in INFRASTRUCTURE and b in CHAPTERS:
        return f"infrastructure ({a}) imports a chapter ({b})"
    if a in CHAPTERS and b in CHAPTERS and CHAPTERS[b] > CHAPTERS[a]:
        return f"chapter {a} ({CHAPTERS[a]:02d}) imports a later chapter, {b} ({CHAPTERS[b]:02d})"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on_stack.discard(w)
                group.append(w)
            on_stack.discard(v)
            if group:
                groups.append(sorted(group + [v]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_every_import_resolves(graph):
    """Imports inside functions run only when the function does: check that each names a real module."""
    missing = [f"{src} imports {dst}" for src, dsts in sorted(graph.items()) for dst in sorted(dsts)
               if importlib.util.find_spec(dst) is None]
    assert not missing, "\n".join(missing)


def test_every_import_points_down(graph):
    bad = [f"{src} -> {dst}: {why}" for src, dsts in sorted(graph.items()) for dst in sorted(dsts)
           if (why := upward(src, dst))]
    assert not bad, "\n".join(bad)


def test_no_import_circles(graph):
    assert cycles(graph) == []


def test_the_checks_catch_what_they_are_for():
    assert upward("course_lib.evaluation.tasks", "course_lib.pretraining.data") is None  # 05 -> 03 is fine ...
    assert upward("course_lib.curation.effect", "course_lib.pretraining.data")  # ... 02 -> 03 is not
    assert upward("course_lib.training", "course_lib.tour")  # infrastructure -> chapter
    assert upward("course_lib.pretraining.base", "course_lib.cli")  # a chapter -> the command line
    assert upward("course_lib.cli", "course_lib.encdec") is None
    assert upward("course_lib.scratch", "course_lib.zoo")  # a module in no room
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_modules(tmp_path):
    known = {"course_lib.zoo", "course_lib.pretraining", "course_lib.pretraining.data", "course_lib.world"}
    path = tmp_path / "icl.py"
    path.write_text("from .. import zoo\nfrom .data import TOKEN_FILES\nfrom ..world import load\nimport torch\n")
    assert imports("course_lib.pretraining.icl", path, known) == {
        "course_lib.zoo", "course_lib.pretraining.data", "course_lib.world"}


def test_every_module_says_what_it_holds():
    bare = [m for m, p in modules().items() if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert not bare, f"these modules have no docstring: {bare}"


def test_modules_fit_on_a_few_screens():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


MAX_FUNCTION_LINES = 60


def function_lengths(path: Path) -> dict[str, int]:
    """Lines of code of each function in ``path``, its docstring left out."""
    lengths = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
            lengths[node.name] = node.end_lineno - body[0].lineno + 1
    return lengths


def test_functions_fit_on_a_screen():
    long = {f"{m}.{name}": n for m, p in modules().items() for name, n in function_lengths(p).items()
            if n > MAX_FUNCTION_LINES}
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines of code): {long}"
