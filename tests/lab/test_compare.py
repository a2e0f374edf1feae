"""The lab's compare: determinism, resume, the table recomputed by hand, divergence."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from descend.lab import records
from descend.lab.compare import compare
from descend.lab.records import read_runs
from descend.lab.runner import execute
from descend.lab.spec import Grid, RunSpec
from descend.lab.tasks import Task, get_task

from .conftest import SMALL
from .helpers import numbers as _numbers


def test_same_seed_gives_identical_records(tmp_path, small_run):
    out, _ = small_run
    again = tmp_path / "again"
    compare("digits-logreg", out=again, **SMALL)
    assert _numbers(out) == _numbers(again)
    assert len(_numbers(out)) == 4


def test_same_initial_weights_and_batches_within_a_seed(small_run):
    out, _ = small_run
    runs = [r for r in read_runs(out) if r.spec.seed == 0]
    first_losses = {r.spec.optimizer: r.evals[0]["train_loss"] for r in runs}
    assert len(set(first_losses.values())) == 1  # same init for sgd and adam
    seeds = {r.spec.seed: r.evals[0]["train_loss"] for r in read_runs(out)}
    assert seeds[0] != seeds[1]


def test_resume_after_interruption_matches_an_uninterrupted_grid(tmp_path, small_run):
    out, _ = small_run
    grid = Grid(task="digits-logreg", optimizers=("sgd", "adam"), seeds=(0, 1), epochs=3,
                evals=4)
    task = get_task("digits-logreg")
    specs = grid.main_specs(task, {})
    interrupted = tmp_path / "interrupted"
    execute(specs[:2], interrupted)  # two runs finished before the "kill"
    # The third was killed mid-run: a spec line, one eval, and half a line.
    partial = records.run_path(interrupted, specs[2])
    full = records.run_path(out, specs[2]).read_text().splitlines()
    partial.write_text(full[0] + "\n" + full[1] + "\n" + full[2][: len(full[2]) // 2])
    assert not records.read_run(partial).finished
    assert execute(specs, interrupted) == 2  # the partial run and the untouched one
    assert _numbers(interrupted) == _numbers(out)


def test_table_numbers_recomputed_by_hand(small_run):
    out, cmp = small_run
    summary = records.read_json(out / "summary.json")
    by_label = {r["label"]: r for r in summary["rows"]}
    runs = list(read_runs(out))
    inits = []
    finals = {}
    for label in ("sgd", "adam"):
        group = [r for r in runs if r.spec.optimizer == label]
        accs = [r.evals[-1]["test_acc"] for r in group]
        row = by_label[label]
        assert row["final_mean"] == pytest.approx(statistics.fmean(accs))
        assert row["final_std"] == pytest.approx(statistics.pstdev(accs))
        best = [max(e["val_acc"] for e in r.evals) for r in group]
        assert row["best_mean"] == pytest.approx(statistics.fmean(best))
        val_means = [statistics.fmean(r.evals[i]["val_acc"] for r in group)
                     for i in range(len(group[0].evals))]
        inits.append(val_means[0])
        finals[label] = (val_means, [e["step"] for e in group[0].evals], group)
        # CPU time of the training thread by default (the summary keeps wall time too)
        assert row["step_time_ms"] == pytest.approx(
            statistics.median(r.summary["step_cpu_ms"] for r in group))
        assert all(r.summary["step_time_ms"] > 0 for r in group)
        assert row["state_bytes_per_param"] == {"sgd": 0.0, "adam": 8.0}[label]
        losses = [[e["train_loss"] for e in r.evals] for r in group]
        tv = [sum(abs(b - a) for a, b in zip(ls, ls[1:])) / (ls[0] - ls[-1]) - 1
              for ls in losses]
        assert row["oscillation"] == pytest.approx(statistics.fmean(tv))
    best_final = max(v[0][-1] for v in finals.values())
    target = statistics.fmean(inits) + 0.9 * (best_final - statistics.fmean(inits))
    assert summary["target"] == pytest.approx(target)
    for label, (val_means, steps, _group) in finals.items():
        reached = next((i for i, v in enumerate(val_means) if v >= target), None)
        expected = math.inf if reached is None else steps[reached]
        assert by_label[label]["steps_to_target"] == expected
        if reached is not None:
            assert by_label[label]["seconds_to_target"] == pytest.approx(
                statistics.fmean(r.evals[reached]["cpu"] for r in _group))


def test_divergence_is_reported_not_dropped(tmp_path):
    cmp = compare("linreg", ["sgd:lr=10", "sgd:lr=0.001"], seeds=[0], epochs=2, evals=4,
                  out=tmp_path, progress=False, jobs=1).comparison
    rows = {r.optimizer: r for r in cmp.rows}
    assert rows["sgd:lr=10"].diverged == 1
    assert rows["sgd:lr=0.001"].diverged == 0
    assert any("diverged in 1/1 seeds at lr=10" in line for line in cmp.lines)
    run = next(r for r in read_runs(tmp_path) if r.spec.optimizer == "sgd:lr=10")
    assert run.summary["diverged"] and run.summary["diverged_at"] is not None
    assert "diverged" in (tmp_path / "report.md").read_text()


def test_linear_regression_reports_distance_to_the_optimum(tmp_path):
    cmp = compare("linreg", ["adam:lr=0.05"], seeds=[0], epochs=30, evals=5, out=tmp_path,
                  progress=False, jobs=1).comparison
    run = next(iter(read_runs(tmp_path)))
    distances = run.series("distance")
    assert distances[-1] < 0.2 * distances[0]
    assert cmp.metric == "loss" and math.isfinite(cmp.rows[0].distance_mean)


def test_regimes_change_only_the_batch(tmp_path):
    task = get_task("digits-logreg")
    n = len(task.splits.x_train)
    assert RunSpec("t", "sgd", regime="full").batch(n) == n
    assert RunSpec("t", "sgd", regime="sgd").batch(n) == 1
    assert RunSpec("t", "sgd", regime="minibatch", batch_size=32).batch(n) == 32
    cmp = compare("digits-logreg", ["sgd"], regimes=["full", "minibatch"], seeds=[0],
                  steps=20, evals=2, out=tmp_path, progress=False, jobs=1).comparison
    assert {r.regime for r in cmp.rows} == {"full", "minibatch"}


def test_tuning_selects_on_validation_and_keeps_the_default(tmp_path):
    cmp = compare("linreg", ["sgd"], seeds=[0, 1], epochs=3, evals=2, tune_lr=True,
                  lr_grid=[1e-5, 1e-3, 10.0], out=tmp_path, progress=False, jobs=1).comparison
    sources = {r.lr_source: r for r in cmp.rows}
    assert set(sources) == {"default", "tuned"}
    assert sources["tuned"].lr == 1e-3 and sources["default"].lr == 0.1
    assert sources["tuned"].seeds == 2
    trials = next(iter(cmp.tuning.values()))
    assert [t[0] for t in trials] == [1e-5, 1e-3, 10.0]
    assert [t[2] for t in trials] == [False, False, True]  # lr=10 diverged
    assert any("diverged at lr >= 10" in line for line in cmp.lines)
    assert (tmp_path / "lr_sensitivity.png").stat().st_size > 5000


def test_users_own_model_and_data(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    loader = [(x[i:i + 50], y[i:i + 50]) for i in range(0, 300, 50)]
    task = Task.from_tensors("mine", lambda: torch.nn.Linear(5, 2),
                             torch.nn.functional.cross_entropy, loader, epochs=5)
    cmp = compare(task, ["adam:lr=0.05", "sgd"], seeds=[0], evals=3, out=tmp_path,
                  progress=False).comparison
    assert {r.optimizer for r in cmp.rows} == {"adam:lr=0.05", "sgd"}
    assert max(r.final_mean for r in cmp.rows) > 0.85


def test_corrupt_records_get_a_clear_error(tmp_path, small_run):
    out, _ = small_run
    bad = tmp_path / "bad"
    (bad / "runs").mkdir(parents=True)
    src = next((out / "runs").glob("*.jsonl")).read_text().splitlines()
    src[1] = "{not json"
    (bad / "runs" / "x.jsonl").write_text("\n".join(src) + "\n")
    with pytest.raises(records.RecordsError, match="line 2 is not valid JSON"):
        list(read_runs(bad))
    with pytest.raises(records.RecordsError, match="not a descend run directory"):
        list(read_runs(tmp_path / "nothing"))


def test_every_new_optimizer_runs_in_the_lab(tmp_path):
    """torch's other algorithms and the modern rules, by name, including the closure-driven
    L-BFGS and the schedule-free rules (evaluated at x, trained at y)."""
    from descend.lab.compare import compare

    names = ["nadam", "radam", "adamax", "adadelta", "asgd", "rprop", "lbfgs:lr=0.1",
             "schedulefree-sgd", "schedulefree-adamw", "ademamix", "prodigy",
             "adamw:state_dtype=bfloat16"]
    result = compare("digits-logreg", names, seeds=[0], out=tmp_path / "run", epochs=1,
                     progress=False)
    rows = {row.label: row for row in result.comparison.rows}
    assert len(rows) == len(names)


def test_mixed_regimes_label_every_row_and_state_each_budget(tmp_path):
    result = compare("digits-logreg", ["sgd"], regimes=["full", "sgd", "minibatch"],
                     seeds=[0], epochs=1, evals=2, out=tmp_path, progress=False, jobs=1)
    labels = {r.label for r in result.comparison.rows}
    assert labels == {"sgd (full)", "sgd (sgd)", "sgd (minibatch)"}
    md = (tmp_path / "report.md").read_text()
    assert "full: batch 1,222, 1 steps" in md and "sgd: batch 1, 1,222 steps" in md
    assert "minibatch: batch 64, 20 steps" in md and "| steps × batch |" in md
    assert (tmp_path / "loss_epochs.png").exists()  # regimes compared per pass over the data


def test_report_states_machine_load_validation_size_and_seed_noise(small_run):
    out, cmp = small_run
    md = (out / "report.md").read_text()
    assert "Machine:" in md and "1 torch thread" in md and "Load average" in md
    assert "216 validation" in md and "one example is 0.46 points of accuracy" in md
    assert "CPU s to target" in md and cmp.clock == "cpu"
    assert cmp.noise, "two seeds per row: the report says which rows it cannot tell apart"
    for run in read_runs(out):
        assert all("cpu" in e and e["cpu"] <= e["time"] + 0.05 for e in run.evals)
        assert run.summary["cpu_time"] > 0 and len(run.summary["load"]) == 2
