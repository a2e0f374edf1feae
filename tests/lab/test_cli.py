"""The real `descend` entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from descend.lab.cli import main, parser


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for action in parser()._subparsers._group_actions[0].choices["compare"]._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help and action.help != "==SUPPRESS==" or action.dest == "help"


def test_unknown_names_list_what_exists(capsys):
    assert main(["compare", "--optimizers", "adamm", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown optimizer 'adamm'; available: sgd, momentum" in err
    assert main(["compare", "--schedule", "cosinus"]) == 2
    assert "unknown schedule 'cosinus'" in capsys.readouterr().err
    assert main(["compare", "--optimizers", "adam:lrr=1"]) == 2
    assert "has no hyperparameter 'lrr'; it takes: lr" in capsys.readouterr().err
    assert main(["report", "/nonexistent/dir"]) == 2
    assert "not a descend run directory" in capsys.readouterr().err


def test_compare_and_report_from_the_command_line(tmp_path, capsys):
    args = ["compare", "--task", "digits-logreg", "--optimizers", "sgd,adam:lr=3e-3",
            "--schedule", "cosine", "--seeds", "1", "--epochs", "2", "--evals", "3",
            "--out", str(tmp_path), "--jobs", "1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert {r["optimizer"] for r in result["rows"]} == {"sgd", "adam:lr=0.003"}
    assert (tmp_path / "report.html").exists()
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "adam:lr=0.003 [cosine]" in out and "report.html" in out


def test_list_names_tasks_optimizers_schedules(capsys):
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "digits-mlp" in listed["tasks"] and "adamw" in listed["optimizers"]
    assert "warmup-cosine" in listed["schedules"]


@pytest.mark.slow
def test_parallel_grid_and_kill_9_resume(tmp_path):
    """Two worker processes; kill -9 the whole command mid-grid; re-running finishes it."""
    import os
    import signal
    import time

    out = tmp_path / "grid"
    cmd = [sys.executable, "-m", "descend.lab.cli", "compare", "--task", "digits-mlp",
           "--optimizers", "sgd,adam,rmsprop", "--seeds", "2", "--epochs", "25",
           "--out", str(out), "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = [p for p in (out / "runs").glob("*.jsonl") if '"kind":"summary"' in p.read_text()]
        if done:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(done)
    assert 1 <= finished_before < 6
    rerun = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(json.loads(rerun.stdout)["rows"]) == 3
    assert len(list((out / "runs").glob("*.jsonl"))) == 6
