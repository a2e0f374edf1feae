"""Worker processes never outlive the command, however it ends; Ctrl-C is quick and keeps
finished runs; a killed grid resumes to the same records."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from descend.lab.compare import compare
from descend.lab.records import read_runs

from .helpers import CLI, finished_files, numbers, session_members, wait_for

GRID = ["--task", "digits-mlp", "--optimizers", "sgd,adam,rmsprop", "--seeds", "2",
        "--epochs", "40", "--evals", "10"]
# Long enough that the grid is still running when Ctrl-C arrives, on a loaded machine too
# (GRID's 6 runs can all finish between the first record and the signal); later flags win.
LONG = [*GRID, "--seeds", "8", "--epochs", "100"]


def _as_from_a_terminal() -> None:
    # A command started by a terminal's shell takes Ctrl-C. A test runner started in the
    # background of a script inherits SIGINT ignored (and an ignored signal stays ignored
    # across exec), which would turn the Ctrl-C test into a test of the runner's shell.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out, jobs, grid=GRID):
    cmd = [*CLI, "compare", *grid, "--out", str(out), "--jobs", str(jobs), "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_terminal)
    return cmd, proc


@pytest.mark.slow
def test_kill_9_of_the_parent_leaves_no_worker_and_the_rerun_matches(tmp_path):
    out = tmp_path / "killed"
    cmd, proc = _start(out, jobs=2)
    assert wait_for(lambda: len(finished_files(out)) >= 1, 120), proc.stderr.read()
    members = session_members(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # the parent only, as the OOM killer would
    proc.wait()
    done_at_kill = len(finished_files(out))
    assert len(members) >= 3, members  # the parent and its two workers were running
    assert 1 <= done_at_kill < 6
    time.sleep(5)
    assert session_members(proc.pid) == []  # no worker, manager or tracker survives
    assert len(finished_files(out)) == done_at_kill  # and none wrote anything since
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0

    whole = tmp_path / "whole"
    compare("digits-mlp", ["sgd", "adam", "rmsprop"], seeds=[0, 1], epochs=40, evals=10,
            out=whole, jobs=1, progress=False)
    assert numbers(out) == numbers(whole) and len(numbers(out)) == 6


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_exits_within_3_seconds_keeping_finished_runs(tmp_path, jobs):
    out = tmp_path / f"jobs{jobs}"
    _, proc = _start(out, jobs, LONG)
    assert wait_for(lambda: len(finished_files(out)) >= 1, 120), proc.stderr.read()
    start = time.monotonic()
    assert proc.poll() is None, "the grid finished before Ctrl-C: make LONG longer"
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    code = proc.wait(timeout=30)
    elapsed = time.monotonic() - start
    stderr = proc.stderr.read()
    assert code == 130, stderr
    assert elapsed < 3.0, f"took {elapsed:.1f} s to exit"
    assert "interrupted; finished runs are kept" in stderr and "Traceback" not in stderr
    kept = list(read_runs(out))
    assert kept and all(r.finished for r in kept)  # nothing half-written
    assert wait_for(lambda: session_members(proc.pid) == [], 2)


def test_workers_die_with_their_parent():
    """The pool's hygiene without the CLI: a forked worker of a killed parent exits."""
    script = (
        "import os, sys, time\n"
        "from descend.lab.pool import LocalPool\n"
        "pool = LocalPool(2, {})\n"
        "pool.start()\n"
        "print(' '.join(str(w.process.pid) for w in pool.workers), flush=True)\n"
        "time.sleep(60)\n")
    proc = subprocess.Popen([CLI[0], "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.kill()
    proc.wait()

    def gone() -> bool:
        alive = {pid for pid, _ in session_members(proc.pid)}
        return not alive.intersection(pids)

    assert wait_for(gone, 5)
