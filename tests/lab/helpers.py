"""Shared helpers of the lab's process-level tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from descend.lab.records import MEASURED_EVAL, MEASURED_SUMMARY, read_runs

CLI = [sys.executable, "-m", "descend.lab.cli"]


def numbers(run_dir: Path) -> dict[str, tuple]:
    """Every record of every run, without the fields that measure the machine (times,
    host, load), keyed by run id."""
    out = {}
    for run in read_runs(run_dir):
        evals = [{k: v for k, v in e.items() if k not in MEASURED_EVAL} for e in run.evals]
        summary = {k: v for k, v in run.summary.items() if k not in MEASURED_SUMMARY}
        out[run.spec.run_id] = (evals, summary)
    return out


def session_members(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session `sid`, as (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state != "Z":
            found.append((int(entry.name), cmdline))
    return found


def finished_files(run_dir: Path) -> list[Path]:
    """Run files with a summary line (files are written whole, so: every run file)."""
    runs = run_dir / "runs"
    if not runs.is_dir():
        return []
    return [p for p in runs.glob("*.jsonl") if b'"kind":"summary"' in p.read_bytes()]


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` unwritable, even for root (immutable attribute), for the block."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot make a folder read-only as root here (chattr +i failed)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def first_axes_when_saved(monkeypatch, read) -> dict:
    """What `read(axes)` returns for the first axes of every figure saved from now on: a
    way to check a plot as drawn, before it becomes pixels."""
    import matplotlib.pyplot as plt

    seen: dict = {}
    real = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen.update(read(fig.axes[0]))
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    return seen

