"""The artifact zoo: cached, deterministic artifacts built from registered recipes.

``get("tour-model")`` returns the artifact (a tokenizer, a trained model, a
dataset), building it on first use. The cache key hashes the recipe's code, the
config sections it reads and the keys of the artifacts it builds on, so editing a
recipe (or any course_lib function, class or constant it reaches) or changing its
config builds a new artifact.

A build writes into a temporary folder beside the cache entry and renames it into
place only when it is complete (a rename is atomic on one file system), so a build
that is killed midway leaves only a ``.tmp-*`` folder that ``get`` never loads and
``clean`` removes.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from .config import Config, ConfigError, load_config

CACHE_DIR_ENV = "COURSE_CACHE_DIR"
MANIFEST = "manifest.json"
LOCK_DIR = ".locks"  # one lock file per artifact folder, held while it builds
# Under a launcher (torchrun, accelerate launch), the artifact named here is built by every process together (its
# recipe trains with the course loop on all of them); any other artifact is built by one process while the others
# wait on its lock, as without a launcher.
TOGETHER_ENV = "COURSE_ZOO_BUILD_TOGETHER"
TOGETHER_TIMEOUT_S = 600.0  # how long the other ranks wait for rank 0 to put the finished artifact in place
# Modules whose import registers recipes; imported on first use of the registry.
RECIPE_MODULES = ("course_lib.tour", "course_lib.curation.effect", "course_lib.pretraining", "course_lib.encdec",
                  "course_lib.instruction", "course_lib.alignment", "course_lib.compression", "course_lib.retrieval",
                  "course_lib.lifecycle")


@dataclass(frozen=True)
class Recipe:
    """How to build and load one artifact.

    ``build(cfg, out_dir)`` writes the artifact into the empty folder ``out_dir``;
    ``load(path, cfg)`` returns it. ``sections`` are the config sections the recipe
    reads; ``deps`` are the artifacts it calls ``get`` on.
    """

    name: str
    build: Callable[[Config, Path], None]
    load: Callable[[Path, Config], Any]
    sections: tuple[str, ...]
    deps: tuple[str, ...] = ()
    description: str = ""


_RECIPES: dict[str, Recipe] = {}


class ZooError(RuntimeError):
    """A cache entry that must not be loaded (written by another recipe or version), or a build that could not be
    written (a full disk, a failing write): nothing half-written is ever kept."""


def register(
    name: str,
    *,
    load: Callable[[Path, Config], Any],
    sections: tuple[str, ...],
    deps: tuple[str, ...] = (),
    description: str = "",
):
    """Decorator that registers ``build`` as the recipe for artifact ``name``."""

    def decorate(build: Callable[[Config, Path], None]):
        _RECIPES[name] = Recipe(name, build, load, tuple(sections), tuple(deps), description)
        return build

    return decorate


def recipes() -> dict[str, Recipe]:
    """All registered recipes by name."""
    for module in RECIPE_MODULES:
        importlib.import_module(module)
    return dict(sorted(_RECIPES.items()))


def recipe(name: str) -> Recipe:
    known = recipes()
    if name not in known:
        raise KeyError(f"no zoo recipe named {name!r}; known artifacts: {', '.join(known)}")
    return known[name]


# --------------------------------------------------------------------------- paths and keys


def _resolve_config(profile: str | Config | None, overrides=()) -> Config:
    if isinstance(profile, Config):
        if overrides:
            raise ConfigError("pass overrides either in the Config or as overrides, not both")
        return profile
    return load_config(profile, overrides)


def cache_dir(cfg: Config) -> Path:
    """``$COURSE_CACHE_DIR``, else ``zoo.cache_dir`` (relative paths are relative to the repo)."""
    env = os.environ.get(CACHE_DIR_ENV)
    path = Path(env or cfg.zoo.cache_dir)
    if not path.is_absolute():
        path = Path(__file__).resolve().parent.parent / path
    return path


# The zoo's own plumbing and the config's code decide where an artifact lives, not what it is (the config's
# values are hashed through ``Config.fingerprint``).
_NOT_HASHED = ("course_lib.zoo", "course_lib.config")


def _ours(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return (module == "course_lib" or module.startswith("course_lib.")) and not module.startswith(_NOT_HASHED)


def _stable(value):
    """A repr of plain data that is the same in every process (sets sorted), or None for other objects.

    A mutable container counts only as the built-in type itself: a subclass (``pii._FOLD``, a ``dict`` whose
    ``__missing__`` fills it as text is folded) is a cache, and its contents say what the process has done so far.
    """
    if isinstance(value, (str, int, float, bool, type(None))):
        return repr(value)
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r}, {value.flags})"
    if isinstance(value, tuple) or type(value) is list:
        items = [_stable(v) for v in value]
        return None if None in items else f"{type(value).__name__}[{', '.join(items)}]"
    if isinstance(value, frozenset) or type(value) is set:
        items = [_stable(v) for v in value]
        return None if None in items else f"set[{', '.join(sorted(items))}]"
    if type(value) is dict:
        items = [(_stable(k), _stable(v)) for k, v in value.items()]
        return None if any(None in kv for kv in items) else "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    return None


def _code(obj) -> tuple[str, set[str], list[tuple[str, object]]]:
    """``obj``'s source without docstrings and comments, every name and attribute it mentions, and what it imports.

    Imports inside the code (``from .world import load``) are resolved, so a function that
    imports lazily still reaches what it imports.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    names: set[str] = set()
    imported = []
    package = obj.__module__.rpartition(".")[0] if obj.__module__ else ""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = "." * node.level + (node.module or "")
            module = importlib.import_module(importlib.util.resolve_name(target, package) if node.level else target)
            imported += [(a.asname or a.name, value) for a in node.names
                         if (value := _imported_name(module, a.name)) is not None]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    return ast.unparse(tree), names, imported


def _imported_name(module, name: str):
    """What ``from module import name`` gives: the module's attribute, else its submodule ``name`` (imported here, so
    that the answer does not depend on whether some earlier code of this process happened to import it), else None."""
    if hasattr(module, name):
        return getattr(module, name)
    if hasattr(module, "__path__"):  # a package: ``name`` may be a submodule not imported yet
        try:
            return importlib.import_module(f"{module.__name__}.{name}")
        except ModuleNotFoundError:
            return None
    return None


@functools.lru_cache(maxsize=None)
def code_fingerprint(fn: Callable) -> str:
    """Hash of ``fn``'s code and of the course_lib code and constants it reaches by name, transitively.

    Starting from ``fn``, every name the code mentions is looked up in its module: course_lib
    functions and classes are followed (their source, docstrings and comments left out),
    plain-data constants (template tables, thresholds) are hashed by value, and for a
    course_lib module used by name (``zoo.get``, ``P.train``) its members named in the code are
    followed. So editing ``new_t5_model`` changes ``t5``'s key, and editing a docstring changes
    nothing. Cached per process: the code does not change while it runs.
    """
    h = hashlib.sha256()
    todo, seen = [fn], set()
    while todo:
        obj = inspect.unwrap(todo.pop())
        ident = (getattr(obj, "__module__", None), getattr(obj, "__qualname__", repr(obj)))
        if ident in seen:
            continue
        seen.add(ident)
        try:
            source, names, imported = _code(obj)
        except (OSError, TypeError, SyntaxError):  # built in, or made at run time: nothing to read
            continue
        h.update(f"{ident}\n{source}\n".encode())
        scope = dict(vars(sys.modules[obj.__module__])) if obj.__module__ in sys.modules else {}
        scope.update(imported)
        for name in sorted(names):
            value = scope.get(name)
            if callable(value) and hasattr(value, "__wrapped__"):  # lru_cache, functools.wraps decorators
                value = inspect.unwrap(value)
            if inspect.ismodule(value):
                if value.__name__.startswith("course_lib.") and not value.__name__.startswith(_NOT_HASHED):
                    todo += [m for n, m in vars(value).items() if n in names and _ours(m)
                             and (inspect.isfunction(inspect.unwrap(m)) or inspect.isclass(m))]
            elif (inspect.isfunction(value) or inspect.isclass(value)) and _ours(value):
                todo.append(value)
            elif value is not None and not callable(value):
                data = _stable(value)
                if data is not None:
                    h.update(f"{obj.__module__}.{name} = {data}\n".encode())
    return h.hexdigest()


def cache_key(name: str, cfg: Config) -> str:
    """Hash of the recipe's code (``code_fingerprint``), its config sections and its dependencies' keys."""
    r = recipe(name)
    h = hashlib.sha256()
    h.update(name.encode())
    h.update(code_fingerprint(r.build).encode())
    h.update(code_fingerprint(r.load).encode())
    h.update(cfg.fingerprint(*r.sections).encode() if r.sections else b"")
    for dep in r.deps:
        h.update(cache_key(dep, cfg).encode())
    return h.hexdigest()[:16]


def path(name: str, profile: str | Config | None = None, overrides=()) -> Path:
    """Where artifact ``name`` lives (or will live) in the cache."""
    cfg = _resolve_config(profile, overrides)
    return cache_dir(cfg) / f"{name}-{cache_key(name, cfg)}"


def is_built(name: str, profile: str | Config | None = None, overrides=()) -> bool:
    return (path(name, profile, overrides) / MANIFEST).is_file()


# --------------------------------------------------------------------------- build and get


def build(name: str, profile: str | Config | None = None, overrides=(), *, force: bool = False) -> Path:
    """Build artifact ``name`` unless it is cached (or ``force``); return its folder.

    Processes that share a cache (two test workers, two notebooks) take turns: the
    first builds while holding the artifact's lock file, the others wait for it and
    then load what it built.
    """
    cfg = _resolve_config(profile, overrides)
    final = path(name, cfg)
    if (final / MANIFEST).is_file() and not force:
        return _checked(final, name)
    r = recipe(name)
    for dep in r.deps:
        build(dep, cfg)
    if _world_size() > 1 and os.environ.get(TOGETHER_ENV) == name:
        return _build_distributed(r, cfg, final, force)
    (final.parent / LOCK_DIR).mkdir(parents=True, exist_ok=True)
    with FileLock(final.parent / LOCK_DIR / f"{final.name}.lock"):
        if (final / MANIFEST).is_file() and not force:  # built by another process while this one waited
            return _checked(final, name)
        _build_into(r, cfg, final, force)
    return final


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _build_distributed(r: Recipe, cfg: Config, final: Path, force: bool) -> Path:
    """Every process of a launcher (torchrun, accelerate launch) runs ``r.build`` together into one folder (only for
    the artifact that ``$COURSE_ZOO_BUILD_TOGETHER`` names: the lifecycle sets it for the stage it launches).

    The processes share a temporary folder named after their launcher's process (the parent of
    every local rank), so the training loop inside the build sees one output folder; the
    process of rank 0 writes the manifest and renames the folder into place, as one process
    would. No file lock: the ranks wait for each other inside the training loop instead.
    """
    rank = int(os.environ.get("RANK", "0"))
    tmp = final.parent / f".tmp-{final.name}-{os.getppid()}-ranks"
    tmp.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        _build_into(r, cfg, final, force, tmp=tmp, processes=_world_size())
        return final
    r.build(cfg, tmp)
    deadline = time.monotonic() + TOGETHER_TIMEOUT_S
    while not (final / MANIFEST).is_file():  # rank 0 writes the manifest and renames: then the artifact loads
        if time.monotonic() > deadline:
            raise ZooError(f"rank {rank}: {r.name!r} did not appear in {final.parent} within {TOGETHER_TIMEOUT_S:.0f} s "
                           f"of this rank's part of the build (did rank 0 fail?)")
        time.sleep(0.2)
    return final


def _checked(folder: Path, name: str) -> Path:
    """``folder`` if its manifest says it is artifact ``name`` with the key in the folder's name, else a ``ZooError``."""
    key = folder.name.rsplit("-", 1)[1]
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ZooError(f"{folder}: unreadable manifest ({err}); remove the folder and build again") from err
    found = (manifest.get("name"), manifest.get("key"))
    if found != (name, key):
        raise ZooError(f"{folder}: its manifest says artifact {found[0]!r} with key {found[1]!r}, not {name!r} with key "
                       f"{key!r}: it was written by another version of the recipe (or copied in); remove it with "
                       f"`course zoo clean {name}` or by hand, and build again")
    return folder


def _peak_rss_bytes() -> int:
    """The largest resident memory this process has had (Linux reports kilobytes, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _build_into(r: Recipe, cfg: Config, final: Path, force: bool, tmp: Path | None = None, processes: int = 1) -> None:
    """Run ``r.build`` in a temporary folder, write its manifest last, and rename it to ``final``."""
    if tmp is None:
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    try:
        start = time.perf_counter()
        try:
            r.build(cfg, tmp)
        except OSError as err:  # a full disk, a failing write: say which artifact, keep nothing
            raise ZooError(f"building {r.name!r} into {final.parent} failed while writing: {err}; nothing was kept "
                           f"(free some space, or point COURSE_CACHE_DIR elsewhere, and build again)") from err
        manifest = {
            "name": r.name,
            "key": final.name.rsplit("-", 1)[1],
            "profile": cfg.profile,
            "sections": {s: cfg.to_dict()[s] for s in r.sections},
            "deps": {d: path(d, cfg).name for d in r.deps},
            "build_seconds": round(time.perf_counter() - start, 3),
            "peak_rss_bytes": _peak_rss_bytes(),  # of the building process (the lifecycle builds one per process)
            "processes": processes,  # that built it together (under a launcher, see _build_distributed)
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        # The manifest is written last: a folder without one is never loaded.
        try:
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        except OSError as err:
            raise ZooError(f"building {r.name!r}: writing its manifest failed: {err}; nothing was kept") from err
        if force and final.exists():
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a lost race with another builder
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def get(name: str, profile: str | Config | None = None, overrides=()) -> Any:
    """Artifact ``name`` for ``profile`` (a name, a ``Config`` or None for the default)."""
    cfg = _resolve_config(profile, overrides)
    return recipe(name).load(build(name, cfg), cfg)


def manifest(name: str, profile: str | Config | None = None, overrides=()) -> dict | None:
    """The manifest of a built artifact, or None when it is not built."""
    p = path(name, profile, overrides) / MANIFEST
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def clean(profile: str | Config | None = None, *, names: tuple[str, ...] = (), everything: bool = False,
          stale: bool = True) -> list[Path]:
    """Remove interrupted builds and stale entries (only interrupted builds when ``stale`` is False); with
    ``everything`` the whole cache.

    Stale means: a folder of a known recipe built for this profile whose key is not the current
    one (another profile's artifacts are left alone), or a folder with no manifest. Returns what
    was removed.
    """
    cfg = _resolve_config(profile)
    root = cache_dir(cfg)
    if not root.is_dir():
        return []
    wanted = set(names) or set(recipes())
    current = {path(n, cfg).name for n in recipes()}
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name == LOCK_DIR:  # lock files of builds, kept unless everything goes
            name, gone = LOCK_DIR, False
        elif entry.name.startswith(".tmp-"):
            # .tmp-<name>-<key>-<pid>-<nonce>: an interrupted build unless its process still runs.
            name, _key, pid, _nonce = entry.name[len(".tmp-"):].rsplit("-", 3)
            gone = not _process_alive(int(pid))
        else:
            name = entry.name.rsplit("-", 1)[0]
            gone = stale and (not (entry / MANIFEST).is_file()
                              or (entry.name not in current and _profile_of(entry) == cfg.profile))
        if everything or (gone and name in wanted):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _profile_of(entry: Path) -> str | None:
    """The profile an artifact folder was built for (its manifest says), or None when unreadable."""
    try:
        return json.loads((entry / MANIFEST).read_text(encoding="utf-8")).get("profile")
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def directory_size(folder: Path) -> int:
    """Total size in bytes of the files under ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
