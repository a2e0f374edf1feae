"""The benchmark suite: workloads and targets, scoring from records, the suite end to end,
resume and extension, and its command line."""

from __future__ import annotations

import json
import math

import pytest

from descend.lab import scoring
from descend.lab.cli import main
from descend.lab.records import Run, read_runs
from descend.lab.spec import RunSpec
from descend.lab.suite import SUITES, get_suite, run_suite
from descend.lab.tasks import SIZES
from descend.lab.workloads import WORKLOADS, load_targets, validation_text

from .conftest import TINY_SUITE

# -- scoring, on records made by hand --------------------------------------------------------


def _run(seed: int, values: list[float], *, metric: str = "val_loss", step: int = 10,
         cpu: float = 0.5, diverged: bool = False) -> Run:
    spec = RunSpec("linreg", "sgd", seed=seed, steps=step * (len(values) - 1), epochs=None)
    evals = [{"kind": "eval", "step": i * step, "time": 2 * cpu * i, "cpu": cpu * i,
              metric: v} for i, v in enumerate(values)]
    return Run(spec, evals, {"kind": "summary", "diverged": diverged})


def test_time_to_target_is_the_first_evaluation_and_never_costs_the_budget():
    reached = scoring.run_time(_run(0, [3.0, 2.0, 0.9, 0.5]), "val_loss", 1.0, False, 30)
    assert reached.reached and reached.steps == 20 and reached.cpu == 1.0
    assert reached.wall == 2.0 and reached.final == 0.5
    never = scoring.run_time(_run(1, [3.0, 2.0, 1.5, 1.2]), "val_loss", 1.0, False, 300)
    # charged the budget's limit: 300 steps, at its own CPU time per step (0.05 s)
    assert not never.reached and never.steps == 300 and never.cpu == pytest.approx(15.0)
    acc = scoring.run_time(_run(2, [0.1, 0.5, 0.8], metric="val_acc"), "val_acc", 0.8, True, 20)
    assert acc.reached and acc.steps == 20
    broken = scoring.run_time(_run(3, [3.0, 0.5], diverged=True), "val_loss", 0.1, False, 10)
    assert not broken.reached and broken.diverged and math.isnan(broken.final)


def test_rows_take_the_median_and_reach_with_a_majority_of_seeds():
    runs = [scoring.run_time(_run(s, v), "val_loss", 1.0, False, 30) for s, v in
            enumerate([[3, 2, 0.9, 0.5], [3, 0.8, 0.7, 0.6], [3, 2, 1.5, 1.2]])]
    row = scoring.Row("w", "sgd", "sgd:lr=0.1", "constant", 4, runs, 30)
    assert row.reached_seeds == 2 and row.reached
    assert row.steps == 20  # median of 20, 10 and the budget's 30
    assert row.span("steps") == (10, 30)
    lonely = scoring.Row("w", "adam", "adam", "constant", 4, runs[1:], 30)
    assert lonely.reached_seeds == 1 and not lonely.reached  # 1 of 2 is not a majority
    assert lonely.time("steps") == math.inf


def test_profiles_and_score_follow_the_definition():
    def row(opt: str, steps: float) -> scoring.Row:
        values = [3.0, 0.5] if math.isfinite(steps) else [3.0, 2.0]
        t = scoring.run_time(_run(0, values, step=int(steps) if math.isfinite(steps) else 10),
                             "val_loss", 1.0, False, 10_000)
        return scoring.Row("w", opt, opt, "constant", 1, [t], 10_000)

    table = {"w1": [row("a", 100), row("b", 200), row("c", math.inf)],
             "w2": [row("a", 300), row("b", 100), row("c", 350)]}
    ratios = scoring.ratios(table["w1"], "steps")
    assert ratios == {"a": 1.0, "b": 2.0, "c": math.inf}
    rho = scoring.profiles(table, "steps", [1.0, 2.0, 3.0, 4.0])
    assert rho["a"] == [0.5, 0.5, 1.0, 1.0] and rho["b"] == [0.5, 1.0, 1.0, 1.0]
    assert rho["c"] == [0.0, 0.0, 0.0, 0.5]  # never on w1: never counts
    score = scoring.score(table, "steps")
    # exact: (4 - r) / 3 per workload, averaged; numerically, the area under rho
    assert score["a"] == pytest.approx(((4 - 1) / 3 + (4 - 3) / 3) / 2)
    assert score["b"] == pytest.approx(((4 - 2) / 3 + 1) / 2)
    assert score["c"] == pytest.approx((4 - 3.5) / 3 / 2)
    taus = [1 + 3 * i / 30000 for i in range(30001)]
    dense = scoring.profiles(table, "steps", taus)
    for opt in "abc":
        area = sum((dense[opt][i] + dense[opt][i + 1]) / 2 * (taus[i + 1] - taus[i])
                   for i in range(len(taus) - 1)) / 3
        assert area == pytest.approx(score[opt], abs=1e-3)


def test_confidence_intervals_and_noise_notes():
    mean, half = scoring.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(scoring.mean_ci([1.0])[1])

    def row(opt, finals, steps):
        runs = [scoring.RunTime(i, True, False, s, s / 10, s / 5, f, 0.1)
                for i, (f, s) in enumerate(zip(finals, steps))]
        return scoring.Row("w", opt, opt, "constant", 1, runs, 1000)

    rows = [row("a", [0.50, 0.52, 0.51], [100, 120, 110]),
            row("b", [0.51, 0.53, 0.52], [115, 140, 130]),
            row("c", [0.90, 0.91, 0.92], [500, 520, 510])]
    notes = scoring.noise_notes(rows, "steps", higher_is_better=False)
    assert notes[0].startswith("time to target: b within seed noise of the fastest, a")
    assert notes[1].startswith("final metric: b within seed noise of the best, a")
    assert not any("c" in n.split(":")[1].split("within")[0] for n in notes)


# -- workloads and targets --------------------------------------------------------------


def test_every_workload_has_a_budget_per_size_and_declared_targets():
    targets = load_targets()
    for name, w in WORKLOADS.items():
        assert set(w.budgets) == set(SIZES), name
        assert w.why
    for suite in ("test", "quick"):
        s = SUITES[suite]
        for name in s.workloads:
            entry = targets[name][s.size]
            assert math.isfinite(entry["target"]) and "Set from tuned reference runs" in \
                entry["how"], (name, s.size)
            ref = entry["reference"]
            assert ref["steps"] < ref["budget_steps"] and len(ref["values"]) == 3


def test_validation_sets_state_their_size_and_granularity():
    acc = validation_text(WORKLOADS["digits-mlp"], WORKLOADS["digits-mlp"].task("test"))
    assert "216 validation examples: one example is 0.46 points of accuracy" in acc
    lm = WORKLOADS["pydoc-gpt"]
    text = validation_text(lm, lm.task("test"))
    assert "validation windows of 32 bytes" in text and "predicted bytes" in text


def test_the_text_corpus_is_split_without_overlap():
    from descend.lab import textlm

    data = textlm.corpus()
    assert len(data) > 400_000 and "pydoc_data.topics of Python" in textlm.corpus_id()
    s = textlm.text_splits(32)
    assert s.x_train.shape[1] == 32 and s.y_train.dtype == s.x_train.dtype
    assert bool((s.x_train[:, 1:] == s.y_train[:, :-1]).all())  # targets are the next byte
    total = (len(s.x_train) + len(s.x_val) + len(s.x_test)) * 32
    assert 0.99 * len(data) < total <= len(data)


# -- the suite, end to end ----------------------------------------------------------------


TINY = TINY_SUITE  # the `tiny_suite` fixture's suite (conftest)


def test_suite_runs_trials_then_fresh_seeds_and_reports(tiny_suite):
    out, result = tiny_suite
    runs = list(read_runs(out))
    assert result.runs == len(runs) == 2 + 2 + 2  # sgd: 2 trials + 2 seeds; self-tuned: 2
    tune = [r for r in runs if r.spec.role == "tune"]
    assert {r.spec.seed for r in tune} == {0} and {r.spec.optimizer.split(":")[0]
                                                   for r in tune} == {"sgd"}
    main_runs = [r for r in runs if r.spec.role == "main"]
    assert {r.spec.seed for r in main_runs} == {1, 2}  # never the tuning seed
    sgd = {r.spec.optimizer for r in main_runs if r.spec.optimizer.startswith("sgd")}
    assert len(sgd) == 1 and sgd < {r.spec.optimizer for r in tune}  # the best trial again
    assert all(r.spec.schedule == "warmup-cosine" for r in tune)
    assert {r.spec.schedule for r in main_runs if "schedulefree" in r.spec.optimizer} == \
        {"constant"}
    for name in ("report.html", "report.md", "summary.json", "profile.png", "curves.png"):
        assert (out / name).stat().st_size > 1000, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["scores"]) == {"cpu", "steps", "wall"}
    row = summary["workloads"][0]["rows"][0]
    assert {"steps", "cpu", "wall", "final_mean", "final_ci", "reached_seeds"} <= set(row)
    md = (out / "report.md").read_text()
    for text in ("Machine:", "torch thread", "Load average", "200 validation examples",
                 "Optuna trials", "never the tuning seed", "Score across workloads"):
        assert text in md or text.lower() in md.lower(), text


def test_suite_resumes_and_is_recomputed_from_records(tiny_suite, capsys):
    out, first = tiny_suite
    again = run_suite(get_suite("test", **TINY), out=out, jobs=1, progress=False)
    assert again.ran == 0
    assert again.result.scores == first.result.scores
    assert main(["report", str(out), "--json"]) == 0
    redrawn = json.loads(capsys.readouterr().out)
    assert redrawn["scores"] == json.loads(json.dumps(first.result.scores))


def test_a_suite_extended_with_an_optimizer_trains_only_its_rows(tiny_suite, tmp_path):
    import shutil

    out, _ = tiny_suite
    copy = tmp_path / "extended"
    shutil.copytree(out, copy)
    wider = get_suite("test", **{**TINY, "optimizers": ("sgd", "schedulefree-adamw", "adam")})
    result = run_suite(wider, out=copy, jobs=1, progress=False)
    assert result.ran == 2 + 2
    assert {r.optimizer for w in result.result.workloads for r in w.rows} == \
        {"sgd", "schedulefree-adamw", "adam"}


def test_suite_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", "--suite", "test", "--workloads", "linreg", "--optimizers",
                 "schedulefree-adamw", "--seeds", "1", "--tune", "1", "--out", str(out),
                 "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert "linreg" in text and "score across workloads" in text and "report.html" in text
    plan = json.loads((out / "suite.json").read_text())
    assert plan["command"].startswith("descend compare --suite test") or plan["command"]
    assert plan["targets"]["linreg"]["value"] > 0 and "machine" in plan


SUITE_ERRORS = [
    (["--suite", "nope"], ["unknown suite 'nope'; available: quick, full, test"]),
    (["--suite", "--task", "digits-mlp"], ["--task does not apply to --suite"]),
    (["--suite", "--epochs", "3"], ["--epochs does not apply to --suite"]),
    (["--suite", "test", "--optimizers", "adam:lr=1"], ["give names without options"]),
    (["--suite", "test", "--optimizers", "adamm"], ["unknown optimizer 'adamm'"]),
    (["--suite", "test", "--workloads", "imagenet"], ["unknown workload 'imagenet'"]),
    (["--suite", "test", "--tune", "0"], ["at least 1 tuning trial"]),
    (["--suite", "test", "--size", "large"], ["no declared target for", "at size 'large'",
                                               "benchmarks/set_targets.py"]),
    (["--suite", "test", "--config", "x.json"], ["--config does not apply to --suite"]),
    (["--suite", "test", "--cluster", "tcp://127.0.0.1:9"], ["--cluster does not apply"]),
    (["--size", "quick"], ["--size goes with --suite"]),
    (["--time", "steps"], ["--time steps goes with --suite"]),
]


def test_suite_errors_are_short_and_write_nothing(tmp_path, capsys):
    for i, (argv, expected) in enumerate(SUITE_ERRORS):
        out = tmp_path / f"out{i}"
        code = main(["compare", *argv, "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert "Traceback" not in err and 1 <= len(err.strip().splitlines()) <= 2, (argv, err)
        for text in expected:
            assert text in err, (argv, err)
        assert not out.exists(), argv


def test_report_refuses_a_target_for_a_suite(tiny_suite, capsys):
    out, _ = tiny_suite
    assert main(["report", str(out), "--target", "0.5"]) == 2
    assert "--target does not apply to a suite" in capsys.readouterr().err


# -- the transformer reaches its target (slow) ---------------------------------------------


@pytest.mark.slow
def test_the_transformer_reaches_its_target_with_tuned_adamw(tmp_path):
    """pydoc-gpt at the test size: AdamW tuned with the suite's own protocol (Optuna trials
    on seed 0, then fresh seeds) reaches the declared validation target within the step
    budget, on a majority of three fresh seeds."""
    suite = get_suite("test", workloads=("pydoc-gpt",), optimizers=("adamw",), trials=6,
                      seeds=3)
    result = run_suite(suite, out=tmp_path / "lm", jobs=2, progress=False)
    (w,) = result.result.workloads
    (row,) = w.rows
    assert row.reached, (row.config, [(r.reached, r.final) for r in row.runs], w.target)
    assert row.steps <= w.budget_steps and row.final_mean <= w.target
