"""The ``course`` command: set-up check, configs, the zoo, training, notebooks, grading.

Every subcommand takes ``--profile NAME`` and ``--set section.key=value`` (repeatable).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from .config import ConfigError, available_profiles, config_dir, load_config, resolve_profile

REPO = Path(__file__).resolve().parent.parent


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The ``--profile`` and ``--set`` options shared by every subcommand."""
    parser.add_argument(
        "--profile",
        help=f"config profile ({', '.join(available_profiles())}); default $COURSE_PROFILE or laptop",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.max_steps=100 (repeatable)",
    )


def config_from_args(args: argparse.Namespace):
    return load_config(args.profile, args.overrides)


# --------------------------------------------------------------------------- subcommands


def cmd_env(args) -> int:
    """Print what the course will run with and whether it can run offline."""
    import accelerate
    import datasets
    import torch
    import transformers
    import trl

    from . import zoo

    cfg = config_from_args(args)
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)})"
    elif torch.backends.mps.is_available():
        device = "mps (Apple GPU)"
    else:
        device = "cpu"
    cache = zoo.cache_dir(cfg)
    cache_ok = _writable(cache)
    hub_offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    rows = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", torch.__version__),
        ("transformers", transformers.__version__),
        ("datasets", datasets.__version__),
        ("accelerate", accelerate.__version__),
        ("trl", trl.__version__),
        ("device", device),
        ("threads", f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs"),
        ("profile", f"{cfg.profile} (profiles in {config_dir()})"),
        ("cache dir", f"{cache} ({'writable' if cache_ok else 'NOT writable'})"),
        ("hub", "offline (HF_HUB_OFFLINE set)" if hub_offline else "online allowed; the defaults never use it"),
    ]
    # The defaults build every artifact from recipes in this repo; only a config
    # that names a hub model or dataset needs the network.
    needs_hub = cfg.data.source not in ("world",) and not Path(cfg.data.source).exists()
    offline_ok = cache_ok and not needs_hub
    rows.append(
        ("offline", "yes: every default artifact is built locally" if offline_ok
         else f"no: {'cache dir not writable' if not cache_ok else f'data.source {cfg.data.source!r} is not local'}")
    )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if offline_ok else 1


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


def cmd_config(args) -> int:
    """Print the resolved config (after validation) as YAML."""
    print(config_from_args(args).to_yaml(), end="")
    return 0


def cmd_zoo(args) -> int:
    from . import zoo

    cfg = config_from_args(args)
    if args.action == "list":
        print(f"cache: {zoo.cache_dir(cfg)}   profile: {cfg.profile}")
        for name, r in zoo.recipes().items():
            where = zoo.path(name, cfg)
            built = zoo.is_built(name, cfg)
            size = f"{zoo.directory_size(where) / 1e6:8.2f} MB" if built else "   not built"
            print(f"{name:<16} {size}  {where.name:<34} {r.description}")
        return 0
    if args.action == "build":
        for name in args.names or list(zoo.recipes()):
            print(f"{name}: {zoo.build(name, cfg, force=args.force)}")
        return 0
    removed = zoo.clean(cfg, names=tuple(args.names), everything=args.all)
    for entry in removed:
        print(f"removed {entry}")
    print(f"{len(removed)} removed")
    return 0


def cmd_train(args) -> int:
    """Train a recipe's model into run.output_dir/<what>, resumably; runs under torchrun or accelerate launch.

    ``base`` reads the ``tokenizer`` and ``pretrain-data`` artifacts: build them first
    (``course zoo build tokenizer pretrain-data``) so that the processes share them instead
    of each building its own.
    """
    from .pretraining import pretrain
    from .tour import train_tour

    trainers = {"tour": train_tour, "base": pretrain}
    cfg = config_from_args(args)
    out = Path(args.output_dir or Path(cfg.run.output_dir) / args.what)
    result = trainers[args.what](cfg, out, resume=not args.restart)
    if int(os.environ.get("RANK", "0")) == 0:
        eval_loss = "not evaluated" if result.eval_loss is None else f"{result.eval_loss:.4f}"
        print(f"step {result.step}: train loss {result.train_loss:.4f}, eval loss {eval_loss}; outputs in {out}")
    return 0


def cmd_lifecycle(args) -> int:
    """Run the lifecycle (or print its plan): every stage's artifacts in order, then the scorecard."""
    from . import zoo
    from .lifecycle import LifecycleError, format_plan, plan, run

    cfg = config_from_args(args)
    try:
        rows = plan(cfg, args.stages)
    except LifecycleError as err:
        print(f"course lifecycle: {err}", file=sys.stderr)
        return 2
    print(f"profile {cfg.profile}, seed {cfg.run.seed}, cache {zoo.cache_dir(cfg)}")
    print(format_plan(rows))
    if args.dry_run:
        return 0
    try:
        card = run(cfg, args.overrides, stages=args.stages, launcher=args.launcher)
    except (LifecycleError, zoo.ZooError) as err:
        print(f"course lifecycle: {err}", file=sys.stderr)
        return 1
    if (card / "scorecard.html").is_file():
        print(f"scorecard: {card / 'scorecard.html'} and {card / 'scorecard.json'}")
    return 0


def cmd_notebooks(args) -> int:
    from .notebooks import build_course

    cfg = config_from_args(args)
    report = build_course(out_dir=args.out, profile=cfg.profile, root=REPO)
    return 0 if report.ok else 1


def cmd_release(args) -> int:
    from .notebooks import release_all

    stale = release_all(REPO, check=args.check)
    if args.check and stale:
        print("out of sync with solutions/ (run `make release`): " + ", ".join(map(str, stale)))
        return 1
    return 0


def cmd_grade(args) -> int:
    from .notebooks import grade

    cfg = config_from_args(args)
    results = grade(Path(args.notebook), profile=cfg.profile)
    total = sum(r.points for r in results)
    earned = sum(r.points for r in results if r.passed)
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        print(f"{mark}  {r.grade_id:<28} {r.points:>4g} pt" + ("" if r.passed else f"   {r.error}"))
    print(f"score: {earned:g} / {total:g}")
    return 0 if earned == total else 1


def cmd_eval(args) -> int:
    """Evaluate a model (a folder or a zoo name) on course tasks: print a table, write JSON."""
    import torch

    from .evaluation import evaluate, format_table, list_tasks, load_model, resolve_tasks, write_json

    if args.list:
        for t in list_tasks():
            print(f"{t.name:<22} {t.group:<26} {t.kind:<16} {t.primary:<14} {t.description}")
        return 0
    if not args.model:
        print("course eval: give --model PATH_OR_ZOO_NAME (or --list)", file=sys.stderr)
        return 2
    cfg = config_from_args(args)
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    try:
        tasks = resolve_tasks(args.tasks)
        model, tokenizer = load_model(args.model, cfg)
    except (KeyError, ValueError) as err:
        print(f"course eval: {err.args[0]}", file=sys.stderr)
        return 2
    if cfg.run.device in ("auto", "cuda") and torch.cuda.is_available():
        model.to("cuda")
    report = evaluate(model, tokenizer, tasks, config=cfg, split=args.split, limit=args.limit, batch_size=args.batch_size,
                      num_fewshot=args.num_fewshot, seed=args.seed, samples=args.samples, progress=True,
                      chat=args.chat, system=args.system)
    report["model"] = args.model
    print(format_table(report))
    out = Path(args.output or Path(cfg.run.output_dir) / "eval" / f"{Path(args.model).name}.json")
    print(f"wrote {write_json(report, out)}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="The LLM course's command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        add_config_args(p)
        p.set_defaults(func=func)
        return p

    add("env", cmd_env, "check the set-up: versions, device, threads, profile, cache, offline")
    add("config", cmd_config, "print the resolved config of a profile with overrides")
    p = add("zoo", cmd_zoo, "list, build or clean cached artifacts")
    p.add_argument("action", choices=["list", "build", "clean"])
    p.add_argument("names", nargs="*", help="artifacts (default: all)")
    p.add_argument("--force", action="store_true", help="build: rebuild even if cached")
    p.add_argument("--all", action="store_true", help="clean: remove the whole cache, not only stale entries")
    p = add("train", cmd_train, "train a model with the course loop (works under torchrun / accelerate launch)")
    p.add_argument("what", choices=["tour", "base"], help="what to train")
    p.add_argument("--output-dir", help="default: <run.output_dir>/<what>")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints in the output dir")
    p = add("eval", cmd_eval, "evaluate a model on the course world's tasks (a table and a JSON file)")
    p.add_argument("--model", help="a saved model folder or a zoo artifact name (e.g. base)")
    p.add_argument("--tasks", default="all", help="comma-separated tasks, groups or globs (default: all)")
    p.add_argument("--list", action="store_true", help="list the tasks and exit")
    p.add_argument("--split", default="test", choices=["test", "test_template", "train"])
    p.add_argument("--limit", type=int, help="items per task (default: all)")
    p.add_argument("--num-fewshot", type=int, default=0, help="solved examples before each question")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot draw")
    p.add_argument("--samples", action="store_true", help="also write every item's prompt and output")
    p.add_argument("--chat", action="store_true", help="ask in the tokenizer's chat format (an instruction-tuned model)")
    p.add_argument("--system", help="with --chat: a system message before each question")
    p.add_argument("--output", help="JSON file (default: <run.output_dir>/eval/<model>.json)")
    p = add("lifecycle", cmd_lifecycle, "the whole lifecycle, curation to RAG, as zoo artifacts in order, and the "
                                        "scorecard; resumes where it stopped")
    p.add_argument("--dry-run", action="store_true", help="print the plan (stages, cached or not, config, estimate) only")
    p.add_argument("--stages", help="comma-separated stages to run (default: all, in order)")
    p.add_argument("--launcher", help="run the stages that train with the course loop under this command, e.g. "
                                      "'torchrun --nproc_per_node 2' or 'accelerate launch --config_file ...'")
    p = add("notebooks", cmd_notebooks, "execute the walkthrough notebooks into an HTML report")
    p.add_argument("action", choices=["build"])
    p.add_argument("--out", default="build", help="output folder (default: build)")
    p = add("release", cmd_release, "write the student exercise notebooks from solutions/ with nbgrader")
    p.add_argument("--check", action="store_true", help="only report notebooks that are out of sync")
    p = add("grade", cmd_grade, "run an exercise notebook and report each graded check")
    p.add_argument("notebook", help="path to an exercise notebook")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.profile is None:
        args.profile = resolve_profile()
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"course: config error: {err}", file=sys.stderr)
        return 2
