"""descend tune: finds better configurations; several workers share one study; a killed
worker loses only its trial; storage errors are clear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from descend.lab.cli import main
from descend.lab.tune import Space, TuneSettings, database_url, load_config, tune

POSTGRES = os.environ.get("DESCEND_TEST_POSTGRES")


def test_tune_beats_a_deliberately_bad_default(tmp_path):
    from descend.lab.compare import compare

    bad = compare("digits-logreg", ["sgd:lr=1e-5"], seeds=[0], epochs=3, evals=3,
                  out=tmp_path / "bad", progress=False, jobs=1).comparison
    bad_val = [r for r in bad.rows][0]
    settings = TuneSettings(task="digits-logreg", space=Space(optimizers=["sgd"],
                            lr=(1e-5, 1.0)), trials=8, epochs=3, evals=3,
                            out=str(tmp_path / "tune"), pruner="none")
    best = tune(settings, progress=False)
    from descend.lab.records import read_runs
    run = next(iter(read_runs(tmp_path / "bad")))
    assert best["value"] < 0.5 * run.evals[-1]["val_loss"]
    assert bad_val.final_mean < 0.5
    config = load_config(tmp_path / "tune" / "best.toml")
    assert config["optimizer"] == best["optimizer"] and config["trials"]["complete"] == 8
    assert (tmp_path / "tune" / "optimization_history.png").exists()


def test_space_file_and_errors(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('optimizers = ["adam", "momentum"]\nlr = [1e-4, 1e-1]\n'
                    'momentum = [0.8, 0.99]\nschedules = ["constant", "warmup-cosine"]\n'
                    'warmup = [0.0, 0.2]\n')
    space = Space.from_file(path)
    assert space.optimizers == ["adam", "momentum"] and space.lr == (1e-4, 1e-1)
    path.write_text('optimizers = ["adam"]\nlearning_rate = [1, 2]\n')
    with pytest.raises(ValueError, match="unknown keys \\['learning_rate'\\]"):
        Space.from_file(path)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        Space(optimizers=["adamm"])


def test_unreachable_database_is_a_clear_error(tmp_path, capsys):
    code = main(["tune", "--task", "digits-logreg", "--trials", "1", "--out", str(tmp_path),
                 "--storage", "postgresql://nobody:secret@127.0.0.1:9/none"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach database '127.0.0.1:9/none'" in err and "secret" not in err
    assert "Traceback" not in err


def _storages(tmp_path):
    urls = [("sqlite", f"sqlite:///{tmp_path / 'shared.db'}")]
    if POSTGRES:
        urls.append(("postgres", POSTGRES))
    elif os.environ.get("CI"):
        pytest.fail("CI must provide DESCEND_TEST_POSTGRES (.ci/run starts PostgreSQL)")
    return urls


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_workers_share_a_study_and_a_kill_loses_only_one_trial(tmp_path, backend):
    import optuna

    urls = dict(_storages(tmp_path))
    if backend not in urls:
        pytest.skip("no PostgreSQL server (set DESCEND_TEST_POSTGRES)")
    url = urls[backend]
    study_name = f"shared-{backend}-{os.getpid()}-{time.time_ns()}"
    trials = 10
    cmd = [sys.executable, "-m", "descend.lab.cli", "tune", "--task", "digits-logreg",
           "--optimizers", "sgd,adam", "--lr", "1e-4:1", "--trials", str(trials),
           "--epochs", "30", "--evals", "10", "--storage", url, "--study", study_name,
           "--heartbeat", "1", "--pruner", "none", "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Workers share the study through the database; each writes its own output folder.
    a = subprocess.Popen([*cmd, "--out", str(tmp_path / "a")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    b = subprocess.Popen([*cmd, "--out", str(tmp_path / "b")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = optuna.storages.RDBStorage(database_url(url))
    victim = None
    deadline = time.time() + 180
    while victim is None and time.time() < deadline:
        time.sleep(0.05)
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            continue
        trials_now = study.get_trials(deepcopy=False)
        if not any(t.state.is_finished() for t in trials_now):
            continue
        for t in trials_now:
            # A trial of A's that has reported at most 3 of its 10 evaluations: the kill
            # lands in the middle of it rather than racing its end, however loaded the
            # machine is (a trial's evaluations slow down with it).
            if (t.state == optuna.trial.TrialState.RUNNING and
                    t.user_attrs.get("worker", "").endswith(f":{a.pid}") and
                    len(t.intermediate_values) <= 3):
                victim = t.number
                break
    assert victim is not None, "worker A never ran a trial"
    a.send_signal(signal.SIGKILL)
    a.wait()
    assert b.wait(timeout=300) == 0, b.stderr.read().decode()[-2000:]
    # A later worker resumes the study by name; it also fails any stale trial.
    time.sleep(3.5)
    rerun = subprocess.run([*cmd, "--out", str(tmp_path / "a"), "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    study = optuna.load_study(study_name=study_name, storage=storage)
    all_trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in all_trials]
    assert len(numbers) == len(set(numbers))
    killed = next(t for t in all_trials if t.number == victim)
    assert killed.state == optuna.trial.TrialState.FAIL
    retried = [t for t in all_trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retried) == 1 and retried[0].params == killed.params
    finished = [t for t in all_trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                     optuna.trial.TrialState.PRUNED)]
    assert len(finished) >= trials
    assert not [t for t in all_trials if t.state == optuna.trial.TrialState.RUNNING]
    best = json.loads(rerun.stdout)
    assert best["study"] == study_name and best["trials"]["fail"] == 1


def test_compare_with_tune_adds_the_best_row_and_the_plots(tmp_path):
    from descend.lab.compare import compare

    cmp = compare("digits-logreg", ["sgd"], seeds=[0], epochs=2, evals=2, out=tmp_path,
                  progress=False, jobs=1, tune_trials=4).comparison
    assert len(cmp.rows) == 2  # the default sgd and the study's best
    best = json.loads((tmp_path / "tune" / "best.json").read_text())
    assert best["optimizer"] in {r.optimizer for r in cmp.rows}
    html = (tmp_path / "report.html").read_text()
    assert "Optuna: optimization history" in html


def _params(study_dir, name="descend-digits-logreg"):
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")
    return study.get_trials(deepcopy=False)


def test_a_resumed_study_never_reruns_a_finished_configuration(tmp_path, monkeypatch):
    from descend.lab import tune as tune_module

    trained = []
    real_train = tune_module.train

    def counting_train(spec, task, write, progress=None):
        trained.append((spec.optimizer, spec.schedule))
        return real_train(spec, task, write, progress)

    monkeypatch.setattr(tune_module, "train", counting_train)
    settings = TuneSettings(task="digits-logreg", space=Space(optimizers=["sgd", "adam"]),
                            trials=3, epochs=1, evals=2, out=str(tmp_path), pruner="none")
    tune(settings, progress=False)
    assert len(trained) == 3
    settings.trials = 6  # the same study, resumed for three more trials
    tune(settings, progress=False)
    trials = _params(tmp_path)
    assert len(trials) == 6
    keys = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(keys)) == 6, "a resumed study repeated a finished configuration"
    assert len(set(trained)) == len(trained) == 6


def test_a_repeated_configuration_reuses_the_finished_trial(tmp_path):
    import optuna

    settings = TuneSettings(task="digits-logreg", space=Space(optimizers=["sgd"],
                            lr=(0.01, 0.1)), trials=1, epochs=1, evals=2, out=str(tmp_path),
                            pruner="none")
    tune(settings, progress=False)
    first = _params(tmp_path)[0]
    study = optuna.load_study(study_name="descend-digits-logreg",
                              storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.enqueue_trial(first.params)  # what a replaying sampler would propose
    settings.trials = 2
    tune(settings, progress=False)
    second = _params(tmp_path)[1]
    assert second.params == first.params
    assert second.user_attrs["same_as_trial"] == first.number
    assert second.value == first.value


def test_optuna_experimental_warnings_are_not_shown(tmp_path):
    done = subprocess.run([sys.executable, "-W", "default", "-m", "descend.lab.cli", "tune",
                           "--task", "digits-logreg", "--trials", "2", "--epochs", "1",
                           "--evals", "2", "--out", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ExperimentalWarning" not in done.stderr and "experimental" not in done.stderr


def test_a_second_tune_on_the_same_folder_refuses(tmp_path, capsys):
    from descend.lab.lock import folder_lock

    with folder_lock(tmp_path):
        assert main(["tune", "--task", "digits-logreg", "--trials", "1", "--out",
                     str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"being written by process {os.getpid()}" in err
