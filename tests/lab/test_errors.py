"""Every bad input gets one or two lines naming what is wrong and what is allowed, exit code
2, no traceback, and nothing written, through the real entry point."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from descend.lab.cli import main

from .helpers import CLI, read_only

SMALL = ["--task", "digits-logreg", "--seeds", "1", "--epochs", "1", "--no-progress"]

# (arguments, what the message must say). OUT is replaced by a fresh folder that must not
# exist afterwards; FILE by an existing file.
CASES = [
    (["compare", "--optimizers", "adamm"], ["unknown optimizer 'adamm'", "available: sgd,"]),
    (["compare", "--optimizers", "adam:lrr=1"],
     ["optimizer 'adam' has no hyperparameter 'lrr'", "it takes: lr, betas"]),
    (["compare", "--optimizers", "adam:lr=-1"], ["optimizer 'adam:lr=-1'", "lr must be >= 0"]),
    (["compare", "--optimizers", "adam:betas=2"],
     ["optimizer 'adam:betas=2'", "betas is 2 numbers joined by '/' (e.g. betas=0.9/0.999)"]),
    (["compare", "--optimizers", "adam:lr=fast"], ["lr is a number, got 'fast'"]),
    (["compare", "--optimizers", "adam:amsgrad=maybe"], ["amsgrad is true or false"]),
    (["compare", "--optimizers", "sgd:momentum=1.5"],
     ["optimizer 'sgd:momentum=1.5'", "momentum must be in [0, 1)"]),
    (["compare", "--optimizers", "adam:lr"], ["options are written key=value, got 'lr'"]),
    (["compare", "--optimizers", "adam,adam"], ["optimizers (--optimizers) lists adam more"]),
    (["compare", "--schedule", "cosinus"], ["unknown schedule 'cosinus'", "available: const"]),
    # Regression: accepted by the spec check, refused only when the schedule was built.
    (["compare", "--schedule", "step:factor=2"], ["factor must be a number in (0, 1]"]),
    (["compare", "--schedule", "cosine:cycles=2"],
     ["schedule 'cosine' has no option 'cycles'", "it takes: floor"]),
    (["compare", "--schedule", "warmup-cosine:warmup=abc"],
     ["warmup must be a number in [0, 1), got 'abc'"]),
    (["compare", "--schedule", "step:every=0"], ["every must be a whole number >= 1"]),
    (["compare", "--schedule", "exponential:final=-1"], ["final must be a number in (0, 1]"]),
    (["compare", "--regime", "fullbatch"],
     ["unknown regime 'fullbatch'", "available: full, sgd, minibatch"]),
    (["compare", "--task", "cifar"], ["unknown task 'cifar'", "available: digits-mlp"]),
    (["compare", "--seeds", "0"], ["argument --seeds", "number of seeds must be >= 1"]),
    (["compare", "--seeds", "1,1"], ["seeds (--seeds) lists 1 more than once"]),
    (["compare", "--seeds", "a,b"], ["expected a count or a list of seeds"]),
    (["compare", "--epochs", "0"], ["argument --epochs", "whole number >= 1, got '0'"]),
    (["compare", "--epochs", "3", "--steps", "10"], ["give epochs (--epochs) or steps"]),
    (["compare", "--jobs", "two"], ["argument --jobs", "whole number >= 1"]),
    (["compare", "--tune-lr", "--lr-grid", "1e-3,-1"],
     ["lr_grid (--lr-grid) values must be finite numbers > 0"]),
    (["compare", "--lr-grid", "1e-3,fast"], ["expected comma-separated numbers"]),
    (["compare", "--tune-lr", "--tune-points", "1"], ["tune_points (--tune-points) must be"]),
    (["compare", "--target", "high"], ["argument --target", "expected a number"]),
    (["compare", "--task", "mnist-mlp128"], ["reads mnist IDX files: pass --data-dir"]),
    (["compare", "--task", "mnist-mlp128", "--data-dir", "/nonexistent/mnist"],
     ["data directory '/nonexistent/mnist' does not exist"]),
    (["compare", "--config", "/nonexistent/best.json"], ["config file", "does not exist"]),
    (["compare", "--jobs", "2", "--cluster", "tcp://127.0.0.1:9"],
     ["give jobs (--jobs) or a cluster (--cluster), not both"]),
    (["compare", "--out", "FILE"], ["is a file, not a folder"]),
    (["compare", "--out", "FILE/sub"], ["a part of that path is a file"]),
    (["report", "/nonexistent/run"], ["/nonexistent/run does not exist", "not a descend run"]),
    (["report", "--target", "x", "/tmp"], ["argument --target", "invalid float value"]),
    (["tune", "--lr", "1:abc"], ["argument --lr: must be written LOW:HIGH"]),
    (["tune", "--lr", "0:1"], ["lr range 0:1: values must be > 0"]),
    (["tune", "--momentum", "0.5:1.5"], ["momentum range 0.5:1.5: values must be in [0, 1)"]),
    (["tune", "--space", "/nonexistent/space.toml"], ["space file", "No such file"]),
    (["tune", "--pruner", "random"], ["invalid choice: 'random'", "'median'"]),
    (["tune", "--optimizers", "adamm"], ["unknown optimizer 'adamm'"]),
    (["tune", "--storage", "postgresql://nobody:secret@127.0.0.1:9/none"],
     ["cannot reach database '127.0.0.1:9/none'"]),
    (["paths", "--surface", "everest"], ["unknown surface 'everest'; available: parabola"]),
    (["paths", "--optimizers", "adam:betas=2"], ["betas is 2 numbers joined by '/'"]),
    (["lr-find", "--start", "10", "--end", "1"], ["need 0 < start < end"]),
    (["lr-find", "--schedule", "cosine"], ["schedule must be onecycle or warmup-cosine"]),
    (["lr-find", "--optimizer", "adam:lr=-1"], ["optimizer 'adam:lr=-1'"]),
]


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


def test_at_least_25_bad_inputs_each_get_a_short_clear_error(tmp_path, capsys):
    assert len(CASES) >= 25
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    for i, (argv, expected) in enumerate(CASES):
        out = tmp_path / f"out{i}"
        argv = [str(afile) + a[4:] if a.startswith("FILE") else a for a in argv]
        if argv[0] in ("compare", "tune", "paths", "lr-find") and "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        if argv[0] == "compare":  # a small grid, unless the case says otherwise (last wins)
            argv = [argv[0], *SMALL, *argv[1:]]
        code, err = _run(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2, (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert 1 <= len(lines) <= 2, (argv, err)
        for text in expected:
            assert text in err, (argv, err)
        assert not out.exists(), (argv, "wrote", list(out.rglob("*")))


def test_secrets_stay_out_of_messages(capsys):
    code, err = _run(["tune", "--storage", "postgresql://nobody:hunter2@127.0.0.1:9/x"], capsys)
    assert code == 2 and "hunter2" not in err


def test_unwritable_output_and_run_folders(small_run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    finished = tmp_path / "finished"
    shutil.copytree(small_run[0], finished)
    with read_only(locked), read_only(finished):
        code, err = _run(["compare", *SMALL, "--out", str(locked / "sub")], capsys)
        assert code == 2 and "cannot be created" in err and "Traceback" not in err
        code, err = _run(["compare", *SMALL, "--out", str(locked)], capsys)
        assert code == 2 and f"cannot write into {str(locked)!r}" in err
        code, err = _run(["report", str(finished)], capsys)
        assert code == 2 and f"cannot write into {str(finished)!r}" in err
        assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err


def test_a_corrupt_records_folder_names_the_file(small_run, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(small_run[0], bad)
    victim = sorted((bad / "runs").glob("*.jsonl"))[1]
    victim.write_text(victim.read_text().replace('"kind":"eval"', '"kind":"evil"', 1))
    code, err = _run(["report", str(bad)], capsys)
    assert code == 2 and victim.name in err and "unknown kind 'evil'" in err


@pytest.mark.parametrize("argv, expected", [
    (["compare", "--optimizers", "adam:betas=2"], "betas is 2 numbers joined by '/'"),
    (["compare", "--out", "FILE"], "is a file, not a folder"),
])
def test_bad_inputs_through_a_real_process(tmp_path, argv, expected):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    argv = [str(afile) if a == "FILE" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "never")]
    done = subprocess.run([*CLI, *argv, "--no-progress"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "never").exists()
