"""The `descend` command: thin subcommands over the lab's functions.

All output goes through one sink: rich tables for people, or JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from . import registry
from .spec import REGIMES
from .tasks import DEFAULT_TASK, TASKS

EPILOG = "Run 'descend COMMAND --help' for the options of each command."


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None


def _seeds(text: str) -> list[int]:
    """'3' means seeds 0, 1, 2; '0,5,7' lists them."""
    try:
        values = [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count or a list of seeds, got {text!r}") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError("the number of seeds must be >= 1")
        return list(range(values[0]))
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_compare(sub: Any) -> None:
    tasks = "; ".join(f"{name}" for name in TASKS)
    opts = ", ".join(registry.OPTIMIZERS)
    scheds = ", ".join(registry.SCHEDULES)
    p = sub.add_parser(
        "compare", help="train a task under several optimizers and report which descends best",
        description="Train a task under every optimizer x schedule x seed x regime, save the "
        "records, and write a report (report.html, report.md, PNG plots, summary.json) into "
        "--out. Re-running the same command skips finished runs, so an interrupted grid "
        "resumes. With no arguments: digits-mlp, seven optimizers, 3 seeds.",
        epilog="Optimizer specs: NAME[:key=value...], tuples with '/', e.g. "
        "'adam:lr=3e-4:betas=0.9/0.99'. Run 'descend list' for tasks, optimizers, schedules.")
    p.add_argument("--task", default=DEFAULT_TASK,
                   help=f"what to train (default {DEFAULT_TASK}); one of: {tasks}")
    p.add_argument("--optimizers", type=_csv, default=None,
                   help=f"comma-separated optimizer specs (default "
                   f"{','.join(registry.DEFAULT_OPTIMIZERS)}); names: {opts}")
    p.add_argument("--schedule", type=_csv, default=["constant"], dest="schedules",
                   help=f"comma-separated lr schedules, each NAME[:key=value...] "
                   f"(default constant); names: {scheds}")
    p.add_argument("--regime", type=_csv, default=["minibatch"], dest="regimes",
                   help=f"how much data makes each gradient, comma-separated: "
                   f"{', '.join(REGIMES)} (full = full-batch GD, sgd = one example per step; "
                   "default minibatch)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="mini-batch size for the minibatch regime (default: the task's)")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2],
                   help="a count (3 = seeds 0,1,2) or a comma-separated list (default 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive, default=None,
                        help="passes over the training data per run (default: the task's)")
    budget.add_argument("--steps", type=_positive, default=None,
                        help="optimizer steps per run, instead of --epochs")
    p.add_argument("--evals", type=_positive, default=50,
                   help="evaluations per run on train/val/test (default 50)")
    p.add_argument("--tune-lr", action="store_true",
                   help="first tune each optimizer's lr with the same budget (on the first "
                   "seed, selected on validation loss), then run both tuned and default lrs")
    p.add_argument("--lr-grid", type=_floats, default=[],
                   help="absolute lrs to try when tuning, the same for every optimizer "
                   "(default: --tune-points values from 1/30x to 30x of each default)")
    p.add_argument("--tune-points", type=_positive, default=7,
                   help="number of log-spaced lrs per optimizer when tuning (default 7)")
    p.add_argument("--target", type=float, default=None,
                   help="validation metric to reach for 'steps to target' (accuracy as a "
                   "fraction, or a loss); default: derived from the best run")
    p.add_argument("--out", default=None,
                   help="run directory for records and report (default runs/TASK)")
    p.add_argument("--jobs", type=_positive, default=None,
                   help="parallel runs (default: the number of CPU cores)")
    p.add_argument("--data-dir", default=None,
                   help="folder of IDX files for the mnist-* and fashion-* tasks")
    p.add_argument("--tune", type=_positive, default=0, dest="tune_trials", metavar="N",
                   help="first run an Optuna study of N trials over these optimizers (see "
                   "'descend tune'); its best configuration joins the comparison and its "
                   "plots join the report")
    p.add_argument("--config", default=None,
                   help="a best-configuration file from 'descend tune' (JSON or TOML): adds "
                   "its optimizer, and uses its schedule unless --schedule is given")
    p.add_argument("--json", action="store_true",
                   help="print the comparison as JSON instead of tables")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


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
    p.add_argument("--optimizers", type=_csv, default=["sgd", "momentum", "rmsprop", "adam"],
                   help="comma-separated optimizer specs, as for compare (default "
                   "sgd,momentum,rmsprop,adam with their lab-default lrs)")
    p.add_argument("--steps", type=_positive, default=200, help="steps per path (default 200)")
    p.add_argument("--start", type=_floats, default=None,
                   help="start point, e.g. '-1.5,2' (default: the surface's classic start)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="per-example gradient noise level (default 0: exact gradients)")
    p.add_argument("--regime", default="minibatch", choices=list(REGIMES),
                   help="how noisy each gradient is: full (no noise), sgd (noise), "
                   "minibatch (noise/sqrt(batch size)); default minibatch")
    p.add_argument("--batch-size", type=_positive, default=16,
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


def _add_lr_find(sub: Any) -> None:
    p = sub.add_parser(
        "lr-find", help="learning-rate range test: sweep the lr, plot the loss, suggest an lr",
        description="Train a task's model for a few hundred mini-batches while the lr grows "
        "from --start to --end, plot loss against lr with the suggestions of three rules "
        "(steepest descent, minimum/10, valley), and print the 'descend compare' arguments "
        "that train around the suggestion. The model and optimizer are restored afterwards.")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task (default {DEFAULT_TASK})")
    p.add_argument("--optimizer", default="adam",
                   help="optimizer spec, as for compare (default adam); its lr is swept")
    p.add_argument("--start", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=_positive, default=100,
                   help="mini-batches in the sweep (default 100)")
    p.add_argument("--mode", choices=["exp", "linear"], default="exp",
                   help="how the lr grows (default exp)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="mini-batch size (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and batches")
    p.add_argument("--schedule", default="onecycle",
                   help="schedule to suggest around the lr (onecycle or warmup-cosine; "
                   "default onecycle)")
    p.add_argument("--rule", default="valley", choices=["valley", "steepest", "minimum/10"],
                   help="which suggestion the emitted compare arguments use (default valley)")
    p.add_argument("--out", default=None, help="output directory (default runs/lr-find/TASK)")
    p.add_argument("--data-dir", default=None, help="IDX folder for mnist-*/fashion-* tasks")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_tune(sub: Any) -> None:
    from .tune import PRUNERS

    p = sub.add_parser(
        "tune", help="hyperparameter search with Optuna (one machine or many)",
        description="An Optuna study over the optimizer (categorical), its lr (log), "
        "momentum, betas, weight decay, and the schedule. Trials are lab runs that report "
        "validation loss at each evaluation, so bad trials are pruned. Storage: SQLite in "
        "the output directory by default; with --storage postgresql://USER:PASS@HOST/DB any "
        "number of workers on any number of machines join the same --study. A killed "
        "worker loses only its trial, which the others retry.",
        epilog="Ranges are LOW:HIGH. A space file (TOML or YAML) takes the same keys: "
        "optimizers, schedules, lr, momentum, beta1, beta2, weight_decay, warmup.")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task (default {DEFAULT_TASK})")
    p.add_argument("--space", default=None, help="search space file (TOML or YAML)")
    p.add_argument("--optimizers", type=_csv, default=None,
                   help="optimizers to choose from (default adam,sgd)")
    p.add_argument("--schedules", type=_csv, default=None,
                   help="schedules to choose from (default constant)")
    p.add_argument("--lr", default=None,
                   help="lr range LOW:HIGH, log scale (default: 1/30..30x each default)")
    p.add_argument("--momentum", default=None, help="momentum range (optimizers that have it)")
    p.add_argument("--beta1", default=None, help="beta1 range (Adam family, Lion)")
    p.add_argument("--beta2", default=None, help="beta2 range (Adam family, Lion)")
    p.add_argument("--weight-decay", default=None, help="weight decay range, log scale")
    p.add_argument("--warmup", default=None,
                   help="warmup fraction range for warmup-cosine and wsd")
    p.add_argument("--trials", type=_positive, default=20,
                   help="finished (complete or pruned) trials the study needs (default 20)")
    p.add_argument("--epochs", type=_positive, default=None,
                   help="epochs per trial (default: the task's)")
    p.add_argument("--batch-size", type=_positive, default=None, help="mini-batch size")
    p.add_argument("--evals", type=_positive, default=10,
                   help="evaluations per trial, the pruner's checkpoints (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    p.add_argument("--pruner", choices=list(PRUNERS), default="median",
                   help="median, halving (successive halving) or none (default median)")
    p.add_argument("--storage", default=None,
                   help="database URL (default: sqlite in --out); e.g. postgresql://...")
    p.add_argument("--study", default=None,
                   help="study name, to resume it or to join it from other workers "
                   "(default descend-TASK)")
    p.add_argument("--heartbeat", type=float, default=10.0,
                   help="seconds between worker heartbeats (default 10); a trial silent "
                   "for 3 heartbeats is failed and retried")
    p.add_argument("--out", default=None, help="output directory (default runs/tune/TASK)")
    p.add_argument("--data-dir", default=None, help="IDX folder for mnist-*/fashion-* tasks")
    p.add_argument("--json", action="store_true", help="print the best configuration as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="descend", epilog=EPILOG,
        description="descend's lab: train, compare and draw gradient-descent optimizers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_compare(sub)
    _add_report(sub)
    _add_list(sub)
    _add_paths(sub)
    _add_lr_find(sub)
    _add_tune(sub)
    return p


def _emit(args: argparse.Namespace, cmp: Any, report_path: Any) -> None:
    if args.json:
        print(json.dumps({**cmp.to_json(), "report": str(report_path)}, indent=2, default=str))
        return
    from .report import print_table

    print_table(cmp)
    print(f"\nreport: {report_path}")


def _compare(args: argparse.Namespace) -> None:
    from .compare import compare

    if args.config:
        from .tune import load_config

        config = load_config(args.config)
        args.optimizers = [*(args.optimizers or []), config["optimizer"]]
        if args.schedules == ["constant"]:
            args.schedules = [config["schedule"]]
    args.optimizers = args.optimizers or list(registry.DEFAULT_OPTIMIZERS)

    cmp = compare(args.task, args.optimizers, schedules=args.schedules, seeds=args.seeds,
                  regimes=args.regimes, batch_size=args.batch_size, epochs=args.epochs,
                  steps=args.steps, evals=args.evals, tune_lr=args.tune_lr,
                  lr_grid=args.lr_grid, tune_points=args.tune_points, target=args.target,
                  out=args.out, jobs=args.jobs, data_dir=args.data_dir,
                  progress=not (args.no_progress or args.json), tune_trials=args.tune_trials)
    from pathlib import Path
    out = Path(args.out or Path("runs") / args.task)
    _emit(args, cmp, out / "report.html")


def _report(args: argparse.Namespace) -> None:
    from .report import build_report

    cmp, path = build_report(args.run_dir, args.target)
    _emit(args, cmp, path)


def _list(args: argparse.Namespace) -> None:
    from .tasks import get_task

    tasks = {}
    for name in TASKS:
        try:
            tasks[name] = get_task(name).description
        except Exception as e:  # tasks that need --data-dir say so
            tasks[name] = str(e)
    optimizers = {k: f"{v.text} (lab default lr {v.lr:g})" for k, v in
                  registry.OPTIMIZERS.items()}
    schedules = {k: v.text + (f" (options: {', '.join(f'{o}={d}' for o, d in v.options.items())})"
                              if v.options else "") for k, v in registry.SCHEDULES.items()}
    if args.json:
        print(json.dumps({"tasks": tasks, "optimizers": optimizers, "schedules": schedules},
                         indent=2))
        return
    from rich.table import Table

    from .report import terminal

    console = terminal()
    for title, items in (("tasks", tasks), ("optimizers", optimizers),
                         ("schedules", schedules)):
        table = Table(title=title, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for k, v in items.items():
            table.add_row(k, v)
        console.print(table)


def _paths(args: argparse.Namespace) -> None:
    from pathlib import Path

    from . import pathplots
    from .paths import paths

    result = paths(args.surface, args.optimizers, steps=args.steps, start=args.start,
                   noise=args.noise, regime=args.regime, batch_size=args.batch_size,
                   seed=args.seed, clip=args.clip, tune_lr=args.tune_lr,
                   schedule=registry.canonical_schedule(args.schedule),
                   tolerance=args.tolerance)
    out = Path(args.out or Path("runs") / "paths" / result.surface.name)
    out.mkdir(parents=True, exist_ok=True)
    files = [pathplots.draw_png(result, out / "paths.png"),
             pathplots.write_json(result, out / "paths.json")]
    if args.animate:
        files.append(pathplots.animate(result, out / "paths.gif"))
    if args.mp4:
        files.append(pathplots.animate(result, out / "paths.mp4"))
    if args.three_d:
        files.append(pathplots.draw_3d(result, out / "paths3d.png"))
    rows = [{"optimizer": p.label, "lr": p.lr, "steps_to_tolerance": p.steps_to_tolerance,
             "final_distance": p.final_distance, "final_loss": p.final_loss,
             "diverged": p.diverged, "diverged_at": p.diverged_at} for p in result.paths]
    if args.json:
        print(json.dumps({"caption": result.caption(), "paths": rows,
                          "files": [str(f) for f in files]}, indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    from .report import terminal

    console = terminal()
    table = Table(title=f"descend paths — {result.surface.name}")
    for h in ("optimizer", "lr", f"steps to {args.tolerance:g} of a minimum",
              "final distance", "final loss", "diverged"):
        table.add_column(h, justify="left" if h == "optimizer" else "right")
    for r in rows:
        table.add_row(escape(r["optimizer"]), "—" if r["lr"] is None else f"{r['lr']:g}",
                      "never" if r["steps_to_tolerance"] is None else str(r["steps_to_tolerance"]),
                      f"{r['final_distance']:.4g}", f"{r['final_loss']:.4g}",
                      f"at step {r['diverged_at']}" if r["diverged"] else "no")
    console.print(table)
    console.print(escape(result.caption()), style="dim")
    for f in files:
        console.print(f"wrote {f}")


def _lr_find(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from .lrfind import lr_find, plot
    from .records import write_json_atomic
    from .registry import build_optimizer, canonical_optimizer, canonical_schedule
    from .tasks import get_task

    spec = canonical_optimizer(args.optimizer)
    canonical_schedule(args.schedule)
    task = get_task(args.task, **({"data_dir": args.data_dir} if args.data_dir else {}))
    torch.manual_seed(args.seed)
    model = task.make_model()
    opt = build_optimizer(spec, model.parameters())
    data = task.splits
    result = lr_find(model, task.loss, (data.x_train, data.y_train), opt,
                     start_lr=args.start, end_lr=args.end, steps=args.steps, mode=args.mode,
                     batch_size=args.batch_size or task.batch_size, seed=args.seed)
    out = Path(args.out or Path("runs") / "lr-find" / args.task)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(result, out / "lr_find.png", title=f"{args.task}, {spec}")
    compare_args = (result.schedule_args(spec, args.schedule, args.rule)
                    if result.suggestions else [])
    payload = {**result.to_json(), "optimizer": spec, "compare_args": compare_args,
               "plot": str(png)}
    write_json_atomic(out / "lr_find.json", payload, indent=1)
    if args.json:
        print(json.dumps({k: v for k, v in payload.items()
                          if k not in ("lrs", "losses", "smoothed")}, indent=2))
        return
    from rich.table import Table

    from .report import terminal

    console = terminal()
    table = Table(title=f"lr range test — {args.task}, {spec}")
    table.add_column("rule")
    table.add_column("suggested lr", justify="right")
    for name, lr in result.suggestions.items():
        table.add_row(name, f"{lr:.3g}")
    console.print(table)
    console.print(f"{len(result.lrs)} steps; stopped: {result.stop_reason}")
    if compare_args:
        console.print("train around it:  descend compare --task " + args.task + " "
                      + " ".join(compare_args))
    console.print(f"wrote {png} and {out / 'lr_find.json'}")


def _tune(args: argparse.Namespace) -> None:
    from .tune import Space, TuneSettings, parse_range, tune

    space = Space.from_file(args.space) if args.space else Space()
    if args.optimizers:
        space.optimizers = args.optimizers
    if args.schedules:
        space.schedules = args.schedules
    for name in ("lr", "momentum", "beta1", "beta2", "weight_decay", "warmup"):
        text = getattr(args, name)
        if text:
            setattr(space, name, parse_range(text, "--" + name.replace("_", "-")))
    space.__post_init__()
    settings = TuneSettings(task=args.task, space=space, trials=args.trials,
                            epochs=args.epochs, batch_size=args.batch_size, evals=args.evals,
                            seed=args.seed, pruner=args.pruner, storage=args.storage,
                            study=args.study, heartbeat=args.heartbeat, out=args.out,
                            data_dir=args.data_dir)
    best = tune(settings, progress=not (args.no_progress or args.json))
    if args.json:
        print(json.dumps(best, indent=2, default=str))
        return
    print(f"best: {best['optimizer']}  schedule {best['schedule']}  "
          f"final val loss {best['value']:.4g} (trial {best['trial']}); trials: "
          + ", ".join(f"{k} {v}" for k, v in best["trials"].items()))
    print(f"reuse it:  descend compare --task {args.task} --config "
          f"{(args.out or 'runs/tune/' + args.task)}/best.json")


COMMANDS = {"compare": _compare, "report": _report, "list": _list, "paths": _paths,
            "lr-find": _lr_find, "tune": _tune}


def main(argv: Sequence[str] | None = None) -> int:
    from .data import DataError
    from .records import RecordsError

    p = parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 2
    try:
        COMMANDS[args.command](args)
    except (ValueError, DataError, RecordsError, FileNotFoundError, RuntimeError) as e:
        print(f"descend {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descend {args.command}: interrupted; finished runs are kept, re-run to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
