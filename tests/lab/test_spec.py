"""Specs, grids and the one lr sweep; the CLI bound to the grid's fields."""

from __future__ import annotations

import dataclasses

import pytest

from descend.lab import paths as paths_module
from descend.lab import registry
from descend.lab.cli import parser
from descend.lab.compare import compare
from descend.lab.spec import Execution, Grid, lr_sweep, sweep_factors
from descend.lab.tasks import get_task
from descend.lab.tune import Space, lr_range


def test_one_lr_sweep_for_compare_paths_and_tune():
    assert lr_sweep(1e-3) == [3.16e-05, 0.0001, 0.000316, 0.001, 0.00316, 0.01, 0.0316]
    grid = Grid(optimizers=("adam", "sgd"), tune_lr=True)
    assert grid.lrs_to_try("adam") == lr_sweep(1e-3)
    assert grid.lrs_to_try("sgd:lr=0.5") == lr_sweep(0.5)
    assert list(paths_module.TUNE_FACTORS) == sweep_factors(7)
    result = paths_module.paths("rosenbrock", ["adam"], steps=5, tune_lr=True)
    assert [lr for lr, _ in result.paths[0].lr_trials] == lr_sweep(registry.optimizer_lr("adam"))
    assert lr_range("adam") == tuple(lr_sweep(1e-3, 2))
    assert Space(optimizers=["adam"]).lr is None  # searched over lr_range by default


def test_every_compare_flag_is_a_grid_or_execution_field():
    compare_parser = parser()._subparsers._group_actions[0].choices["compare"]
    dests = {a.dest for a in compare_parser._actions} - {"help", "config", "json",
                                                          "no_progress"}
    from descend.lab.suite import SuiteChoice

    fields = {f.name for f in dataclasses.fields(Grid)} | {
        f.name for f in dataclasses.fields(Execution)} | {
        f.name for f in dataclasses.fields(SuiteChoice)}
    assert dests == fields


def test_flags_not_given_keep_the_grids_defaults():
    args = parser().parse_args(["compare", "--seeds", "2", "--schedule", "cosine,constant"])
    assert not hasattr(args, "epochs") and not hasattr(args, "optimizers")
    grid = Grid(seeds=args.seeds, schedules=args.schedules)
    assert grid.seeds == (0, 1) and grid.schedules == ("cosine", "constant")
    assert grid.optimizers == registry.DEFAULT_OPTIMIZERS


def test_compare_returns_what_it_wrote(tmp_path):
    result = compare("digits-logreg", ["sgd"], seeds=[0], epochs=1, evals=2, out=tmp_path,
                     progress=False, jobs=1)
    assert result.out == tmp_path and result.report == tmp_path / "report.html"
    assert result.report.exists() and (tmp_path / "summary.json").exists()
    assert result.runs == 1 and result.ran == 1
    assert result.comparison.rows[0].optimizer == "sgd"
    again = compare("digits-logreg", ["sgd"], seeds=[0], epochs=1, evals=2, out=tmp_path,
                    progress=False, jobs=1)
    assert again.ran == 0
    with pytest.raises(ValueError, match="unknown option 'epoch'; the options are: task,"):
        compare("digits-logreg", epoch=3)


def test_schedule_options_are_merged_with_their_defaults():
    # step:factor=... used to fail with "missing 1 required positional argument: 'every'".
    schedule = registry.build_schedule(registry.canonical_schedule("step:factor=0.5"), 1.0,
                                       100, 10)
    assert schedule(0) == 1.0 and schedule(100) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="final must be a number in \\(0, 1\\]"):
        registry.canonical_schedule("inverse-time:final=0")


def test_grid_checks_every_schedule_over_its_real_budget():
    task = get_task("digits-logreg")
    Grid(task="digits-logreg", schedules=("warmup-cosine:warmup=0.5",), steps=10).check(task)
    with pytest.raises(ValueError, match="at most 1"):
        Grid(task="digits-logreg", schedules=("wsd:warmup=0.5:decay=0.6",))


def test_every_tune_flag_is_a_settings_or_space_field():
    from descend.lab.tune import TuneSettings

    tune_parser = parser()._subparsers._group_actions[0].choices["tune"]
    dests = {a.dest for a in tune_parser._actions} - {"help", "space", "json", "no_progress"}
    fields = {f.name for f in dataclasses.fields(TuneSettings) if f.name != "space"} | {
        f.name for f in dataclasses.fields(Space)}
    assert dests == fields
    args = parser().parse_args(["tune", "--lr", "1e-4:1e-1", "--trials", "3"])
    assert args.lr == (1e-4, 1e-1) and args.trials == 3 and not hasattr(args, "epochs")
