"""The `descend` command: thin subcommands over the lab's functions.

`compare`'s flags are generated from the fields of `spec.Grid` (what to train) and
`spec.Execution` (where), so a new option is declared once. All output goes through one
sink: rich tables for people (`console`), or JSON with --json. A bad input is reported in
one or two lines with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .errors import LabError
from .spec import (
    REGIMES,
    Execution,
    Grid,
    Option,
    flag_of,
    parse_csv,
    parse_floats,
    parse_positive,
)

EPILOG = "Run 'descend COMMAND --help' for the options of each command."


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in two lines instead of the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the "
                  "options.\n")


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A spec's parser as an argparse type: its ValueError message is shown as is."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def add_fields(p: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass `cls` that declares an `Option`. Flags that are
    not given stay out of the namespace, so the dataclass's own defaults apply."""
    for f in fields(cls):
        meta: Option | None = f.metadata.get("option")
        if meta is None:
            continue
        default = f.default_factory() if f.default is MISSING else f.default  # type: ignore
        help = meta.help
        if meta.default_text:
            help += f" (default: {meta.default_text})"
        elif default not in (None, (), False):
            help += f" (default: {_shown(default)})"
        flag = meta.flag or "--" + f.name.replace("_", "-")
        common = dict(dest=f.name, default=argparse.SUPPRESS, help=help.replace("%", "%%"))
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", **common)
        else:
            optional = {"nargs": "?", "const": meta.const} if meta.const is not None else {}
            p.add_argument(flag, type=_typed(meta.parse) if meta.parse else None,
                           metavar=meta.metavar, choices=meta.choices, **optional, **common)


def values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags given for `cls`'s fields (see `add_fields`)."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if "option" in f.metadata and hasattr(args, f.name)}


def _add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="train a task under several optimizers and report which descends best",
        description="Train a task under every optimizer x schedule x seed x regime, save the "
        "records, and write a report (report.html, report.md, PNG plots, summary.json) into "
        "--out. Re-running the same command skips finished runs, so an interrupted grid "
        "resumes. One process writes a run folder at a time. With no arguments: digits-mlp, "
        "seven optimizers, 3 seeds.",
        epilog="Optimizer specs: NAME[:key=value...], tuples with '/', e.g. "
        "'adam:lr=3e-4:betas=0.9/0.99'. Run 'descend list' for tasks, optimizers, schedules.")
    add_fields(p, Grid)
    add_fields(p, Execution)
    p.add_argument("--config", default=None,
                   help="a best-configuration file from 'descend tune' (JSON or TOML): adds "
                   "its optimizer, and uses its schedule unless --schedule is given")
    p.add_argument("--json", action="store_true",
                   help="print the comparison as JSON instead of tables")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    from .suite import SuiteChoice

    add_fields(p.add_argument_group(
        "benchmark suites", "With --suite, compare times optimizers to each workload's "
        "validation target, with the same tuning budget for each (--tune N trials), over "
        "--seeds fresh seeds, and scores them across workloads with performance profiles "
        "(see the README). --optimizers, --seeds, --tune, --time, --out and --jobs apply; "
        "the task, schedule and budget flags do not (each workload fixes them)."),
        SuiteChoice)


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="redraw the report of a run directory from its records",
                       description="Recompute the comparison table and plots from the "
                       "records saved in RUN_DIR, without training.")
    p.add_argument("run_dir", help="a directory written by 'descend compare'")
    p.add_argument("--target", type=float, default=None,
                   help="validation metric for 'steps to target' (default: as compare chose)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list tasks, optimizers and schedules",
                       description="List what compare can run.")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _add_paths(sub: Any) -> None:
    from .surfaces import SURFACES

    p = sub.add_parser(
        "paths", help="draw optimizer paths on a loss surface",
        description="Run descend's optimizers on a 1-D or 2-D loss surface and draw their "
        "paths: a PNG (contours, paths, start and minima, loss against step), optionally an "
        "animated GIF (or MP4 with ffmpeg) and a 3-D view, and paths.json. Nothing is "
        "clipped or tuned unless asked, and the figure's caption says what was.",
        epilog="Gradient noise: N(0, (noise/sqrt(b))^2) per coordinate with b = 1 for "
        "--regime sgd, --batch-size for minibatch, and no noise for full; seeded.")
    p.add_argument("--surface", default="rosenbrock",
                   help=f"the loss surface (default rosenbrock); one of: {', '.join(SURFACES)}")
    p.add_argument("--optimizers", type=_typed(parse_csv),
                   default=["sgd", "momentum", "rmsprop", "adam"],
                   help="comma-separated optimizer specs, as for compare (default "
                   "sgd,momentum,rmsprop,adam with their lab-default lrs)")
    p.add_argument("--steps", type=_typed(parse_positive), default=200,
                   help="steps per path (default 200)")
    p.add_argument("--start", type=_typed(parse_floats), default=None,
                   help="start point, e.g. '-1.5,2' (default: the surface's classic start)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="per-example gradient noise level (default 0: exact gradients)")
    p.add_argument("--regime", default="minibatch", choices=list(REGIMES),
                   help="how noisy each gradient is: full (no noise), sgd (noise), "
                   "minibatch (noise/sqrt(batch size)); default minibatch")
    p.add_argument("--batch-size", type=_typed(parse_positive), default=16,
                   help="batch size for the minibatch noise model (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient noise (default 0)")
    p.add_argument("--clip", type=float, default=None,
                   help="clip gradients to this norm (default: no clipping); shown in the caption")
    p.add_argument("--tune-lr", action="store_true",
                   help="tune each optimizer's lr over its default x 1/30..30 (7 values) by "
                   "final loss, the same budget for all; shown in the caption")
    p.add_argument("--schedule", default="constant",
                   help="lr schedule for every optimizer, as for compare (default constant)")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="distance to a minimum that counts as reached (default 1e-3)")
    p.add_argument("--animate", action="store_true", help="also write paths.gif")
    p.add_argument("--mp4", action="store_true",
                   help="also write paths.mp4 (needs ffmpeg on the PATH)")
    p.add_argument("--3d", action="store_true", dest="three_d",
                   help="also write paths3d.png, the surface in 3-D (2-D surfaces)")
    p.add_argument("--out", default=None,
                   help="output directory (default runs/paths/SURFACE)")
    p.add_argument("--json", action="store_true", help="print the paths summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_lr_find(sub: Any) -> None:
    from .lrfind import RULES
    from .tasks import DEFAULT_TASK

    p = sub.add_parser(
        "lr-find", help="learning-rate range test: sweep the lr, plot the loss, suggest an lr",
        description="Train a task's model for --steps mini-batches (default 100) while the "
        "lr grows from --start to --end, plot loss against lr with the suggestions of three "
        "rules (steepest descent; minimum/10; valley: the middle of the steep descent), and "
        "print the 'descend compare' arguments that train with a schedule peaking at the "
        "suggestion. The model and optimizer are restored afterwards.")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task (default {DEFAULT_TASK})")
    p.add_argument("--optimizer", default="adam",
                   help="optimizer spec, as for compare (default adam); its lr is swept")
    p.add_argument("--start", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=_typed(parse_positive), default=100,
                   help="mini-batches in the sweep (default 100)")
    p.add_argument("--mode", choices=["exp", "linear"], default="exp",
                   help="how the lr grows (default exp)")
    p.add_argument("--batch-size", type=_typed(parse_positive), default=None,
                   help="mini-batch size (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and batches")
    p.add_argument("--schedule", default="onecycle",
                   help="schedule to suggest around the lr (onecycle or warmup-cosine; "
                   "default onecycle)")
    p.add_argument("--rule", default="valley", choices=list(RULES),
                   help="which suggestion the emitted compare arguments use (default valley)")
    p.add_argument("--out", default=None, help="output directory (default runs/lr-find/TASK)")
    p.add_argument("--data-dir", default=None, help="IDX folder for mnist-*/fashion-* tasks")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_tune(sub: Any) -> None:
    from .tune import Space, TuneSettings

    p = sub.add_parser(
        "tune", help="hyperparameter search with Optuna (one machine or many)",
        description="An Optuna study over the optimizer (categorical), its lr (log), "
        "momentum, betas, weight decay, and the schedule. Trials are lab runs that report "
        "validation loss at each evaluation, so bad trials are pruned. Storage: SQLite in "
        "the output directory by default; with --storage postgresql://USER:PASS@HOST/DB any "
        "number of workers on any number of machines join the same --study, each with an "
        "--out of its own. A killed worker loses only its trial, which the others retry; a "
        "resumed study never trains a configuration it already finished.",
        epilog="Ranges are LOW:HIGH. A space file (TOML or YAML) takes the same keys: "
        "optimizers, schedules, lr, momentum, beta1, beta2, weight_decay, warmup.")
    add_fields(p, TuneSettings)
    add_fields(p, Space)
    p.add_argument("--space", default=None,
                   help="search space file (TOML or YAML); flags override its keys")
    p.add_argument("--json", action="store_true", help="print the best configuration as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="descend", epilog=EPILOG,
               description="descend's lab: train, compare and draw gradient-descent optimizers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_compare(sub)
    _add_report(sub)
    _add_list(sub)
    _add_paths(sub)
    _add_lr_find(sub)
    _add_tune(sub)
    return p


def _emit(args: argparse.Namespace, cmp: Any, report_path: Any, extra: Any = None) -> None:
    if args.json:
        print(json.dumps(extra or {**cmp.to_json(), "report": str(report_path)}, indent=2,
                         default=str))
        return
    from .console import print_comparison

    print_comparison(cmp)
    print(f"\nreport: {report_path}")


SUITE_FLAGS = {"optimizers", "seeds", "tune_trials", "clock", "out", "jobs"}


def _suite(args: argparse.Namespace) -> None:
    from .suite import SuiteChoice, get_suite, run_suite

    given = {**values(args, Grid), **values(args, Execution)}
    if "cluster" in given:
        raise ValueError("--cluster does not apply to --suite yet: a suite runs on this "
                         "machine's pool (--jobs)")
    for name in given:
        if name not in SUITE_FLAGS:
            flag = flag_of(Grid if name in Grid.__dataclass_fields__ else Execution, name)
            raise ValueError(f"{flag} does not apply to --suite: each workload fixes its task, "
                             "budget and schedule (allowed: --optimizers, --seeds, --tune, "
                             "--time, --out, --jobs)")
    if args.config:
        raise ValueError("--config does not apply to --suite: a suite tunes every optimizer")
    choice = SuiteChoice(**values(args, SuiteChoice))
    suite = get_suite(choice.suite, workloads=choice.workloads, size=choice.size,
                      optimizers=given.get("optimizers"),
                      seeds=len(given["seeds"]) if "seeds" in given else None,
                      trials=given.get("tune_trials"))
    command = "descend " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else ""
    result = run_suite(suite, out=given.get("out"), jobs=given.get("jobs"),
                       measure=given.get("clock", "cpu"),
                       progress=not args.no_progress,
                       command=command or f"descend compare --suite {suite.name}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return
    from .console import print_suite

    print_suite(result.result)
    print(f"\nreport: {result.report}")


def _compare(args: argparse.Namespace) -> None:
    from .compare import Clock, run_grid

    if getattr(args, "suite", None) is not None:
        _suite(args)
        return
    for flag in ("size", "workloads"):
        if hasattr(args, flag):
            raise ValueError(f"--{flag} goes with --suite")
    if getattr(args, "clock", "cpu") == "steps":
        raise ValueError("--time steps goes with --suite (compare shows steps to target in a "
                         "column of its own; --time picks what its seconds measure)")
    clock = Clock()
    options = values(args, Grid)
    if args.config:
        from .tune import load_config

        config = load_config(args.config)
        options["optimizers"] = [*options.get("optimizers", []), config["optimizer"]]
        options.setdefault("schedules", [config["schedule"]])
    grid, where = Grid(**options), Execution(**values(args, Execution))
    clock.lap("validate")
    result = run_grid(grid, where, progress=not args.no_progress, clock=clock)
    _emit(args, result.comparison, result.report, result.to_json() if args.json else None)


def _report(args: argparse.Namespace) -> None:
    from .lock import folder_lock
    from .records import check_run_dir
    from .report import build_report
    from .suite import is_suite_folder

    if is_suite_folder(args.run_dir):
        from .suitereport import build_suite_report

        if args.target is not None:
            raise ValueError("--target does not apply to a suite: each workload declares its "
                             "own")
        with folder_lock(check_run_dir(args.run_dir), what="RUN_DIR") as run_dir:
            analysis, path = build_suite_report(run_dir)
        if args.json:
            print(json.dumps({**analysis.to_json(), "report": str(path)}, indent=2,
                             default=str))
            return
        from .console import print_suite

        print_suite(analysis)
        print(f"\nreport: {path}")
        return
    with folder_lock(check_run_dir(args.run_dir), what="RUN_DIR") as run_dir:
        cmp, path = build_report(run_dir, args.target)
    _emit(args, cmp, path)


def _list(args: argparse.Namespace) -> None:
    from . import registry
    from .tasks import TASKS, get_task

    tasks = {}
    for name in TASKS:
        try:
            tasks[name] = get_task(name).description
        except LabError as e:  # tasks that need --data-dir say so
            tasks[name] = str(e)
    optimizers = {k: f"{v.text} (lab default lr {v.lr:g})" for k, v in
                  registry.OPTIMIZERS.items()}
    schedules = {k: v.text + (f" (options: {', '.join(f'{o}={d}' for o, d in v.options.items())})"
                              if v.options else "") for k, v in registry.SCHEDULES.items()}
    if args.json:
        print(json.dumps({"tasks": tasks, "optimizers": optimizers, "schedules": schedules},
                         indent=2))
        return
    from .console import print_table, terminal

    console = terminal()
    for title, items in (("tasks", tasks), ("optimizers", optimizers),
                         ("schedules", schedules)):
        print_table(title, ["name", "what"], list(items.items()), console=console,
                    show_header=False, left=["what"])


def _paths(args: argparse.Namespace) -> None:
    from . import registry
    from .console import StepBar
    from .lock import writable_folder
    from .paths import paths

    with StepBar(enabled=not args.no_progress) as bar:
        result = paths(args.surface, args.optimizers, steps=args.steps, start=args.start,
                       noise=args.noise, regime=args.regime, batch_size=args.batch_size,
                       seed=args.seed, clip=args.clip, tune_lr=args.tune_lr,
                       schedule=registry.canonical_schedule(args.schedule),
                       tolerance=args.tolerance, progress=bar.update)
        out = writable_folder(args.out or Path("runs") / "paths" / result.surface.name)
        bar.update("drawing paths.png", 0, 1)
        from . import pathplots  # matplotlib: only once the paths are known to be valid

        files = pathplots.save(result, out, gif=args.animate, mp4=args.mp4,
                               three_d=args.three_d,
                               progress=lambda what, done, total: bar.update(
                                   f"drawing {what}", done, total))
    rows = [{"optimizer": p.label, "lr": p.lr, "steps_to_tolerance": p.steps_to_tolerance,
             "final_distance": p.final_distance, "final_loss": p.final_loss,
             "diverged": p.diverged, "diverged_at": p.diverged_at} for p in result.paths]
    if args.json:
        print(json.dumps({"caption": result.caption(), "paths": rows,
                          "files": [str(f) for f in files]}, indent=2, default=str))
        return
    from .console import print_table

    print_table(f"descend paths — {result.surface.name}",
                ["optimizer", "lr", f"steps to {args.tolerance:g} of a minimum",
                 "final distance", "final loss", "diverged"],
                [[r["optimizer"], "—" if r["lr"] is None else f"{r['lr']:g}",
                  "never" if r["steps_to_tolerance"] is None else str(r["steps_to_tolerance"]),
                  f"{r['final_distance']:.4g}", f"{r['final_loss']:.4g}",
                  f"at step {r['diverged_at']}" if r["diverged"] else "no"] for r in rows],
                notes=[result.caption(), *(f"wrote {f}" for f in files)])


def _lr_find(args: argparse.Namespace) -> None:
    from .console import StepBar
    from .lrfind import find_lr

    with StepBar(enabled=not args.no_progress) as bar:
        report = find_lr(args.task, args.optimizer, start=args.start, end=args.end,
                         steps=args.steps, mode=args.mode, batch_size=args.batch_size,
                         seed=args.seed, schedule=args.schedule, rule=args.rule,
                         out=args.out, data_dir=args.data_dir, progress=bar.update)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return
    from .console import print_table
    from .lrfind import PEAK_WHY

    result = report.result
    notes = [f"{len(result.lrs)} steps; stopped: {result.stop_reason}"]
    if report.compare_args:
        lr = result.suggestions[args.rule]
        notes.append(f"train around the {args.rule} suggestion ({lr:.3g}; {args.schedule}: "
                     f"{PEAK_WHY}):")
        notes.append("  descend compare --task " + args.task + " "
                     + " ".join(report.compare_args))
    notes.append(f"wrote {report.plot} and {report.json}")
    print_table(f"lr range test — {args.task}, {report.optimizer}", ["rule", "suggested lr"],
                [[name, f"{lr:.3g}"] for name, lr in result.suggestions.items()], notes=notes)


def _tune(args: argparse.Namespace) -> None:
    import dataclasses

    from .tune import Space, TuneSettings, tune

    space = Space.from_file(args.space) if args.space else Space()
    space = dataclasses.replace(space, **values(args, Space))  # validates again
    settings = TuneSettings(**values(args, TuneSettings), space=space)
    best = tune(settings, progress=not args.no_progress)
    if args.json:
        print(json.dumps(best, indent=2, default=str))
        return
    out = settings.out or f"runs/tune/{settings.task}"
    print(f"best: {best['optimizer']}  schedule {best['schedule']}  "
          f"final val loss {best['value']:.4g} (trial {best['trial']}); trials: "
          + ", ".join(f"{k} {v}" for k, v in best["trials"].items()))
    print(f"reuse it:  descend compare --task {settings.task} --config {out}/best.json")


COMMANDS = {"compare": _compare, "report": _report, "list": _list, "paths": _paths,
            "lr-find": _lr_find, "tune": _tune}


def _say(command: str, message: str) -> None:
    lines = [line for line in message.strip().splitlines() if line.strip()] or ["failed"]
    print(f"descend {command}: error: " + "\n  ".join(lines[:2]), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 2
    try:
        COMMANDS[args.command](args)
    except (LabError, ValueError) as e:
        _say(args.command, str(e))
        return 2
    except OSError as e:  # the filesystem said no: name the file and the reason
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        _say(args.command, f"{e.strerror or e}{where}")
        return 2
    except KeyboardInterrupt:
        print(f"descend {args.command}: interrupted; finished runs are kept, re-run to resume",
              file=sys.stderr)
        if argv is None:  # the command line, not a caller in Python
            # Runs are written, workers gone, the lock released: skip the interpreter's
            # teardown, which takes seconds with torch loaded, so that Ctrl-C is quick.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
