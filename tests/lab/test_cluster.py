"""The grid on a real Dask cluster: a scheduler and two workers as separate processes on
loopback; one worker is killed mid-grid; the grid still completes, each run once, with
the records of a local run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descend.lab.compare import compare
from descend.lab.records import read_run

from .helpers import CLI, finished_files, numbers, wait_for

DASK = Path(sys.executable).with_name("dask")
GRID = ["--task", "digits-mlp", "--optimizers", "sgd,adam,rmsprop", "--seeds", "2",
        "--epochs", "60", "--evals", "10"]


@contextlib.contextmanager
def local_cluster(tmp_path: Path, workers: int = 2):
    """`dask scheduler` and `dask worker` processes, as an operator would start them."""
    if not DASK.exists():
        pytest.skip("Dask distributed is not installed (the lab extra brings it)")
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, args: list[str]) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=tmp_path)
        procs.append(proc)
        return proc

    scheduler_file = tmp_path / "scheduler.json"
    try:
        start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--scheduler-file", str(scheduler_file), "--no-dashboard"])
        assert wait_for(scheduler_file.exists, 60), (logs / "scheduler.log").read_text()
        time.sleep(0.2)  # the file is written in one go, but give it a moment
        address = json.loads(scheduler_file.read_text())["address"]
        members = [start(f"worker{i}", ["worker", address, "--nthreads", "1", "--no-nanny",
                                        "--no-dashboard", "--host", "127.0.0.1",
                                        "--local-directory", str(tmp_path / f"w{i}"),
                                        "--name", f"w{i}"])
                   for i in range(workers)]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=90)
        yield address, members
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_a_grid_on_a_cluster_survives_a_killed_worker(tmp_path):
    out = tmp_path / "on-cluster"
    with local_cluster(tmp_path) as (address, workers):
        cmd = [*CLI, "compare", *GRID, "--out", str(out), "--cluster", address,
               "--no-progress", "--json"]
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        from distributed import Client

        in_flight: list[str] = []
        with Client(address, timeout=30) as observer:

            def w0_busy_after_a_first_result() -> bool:
                names = {a: w["name"] for a, w in observer.scheduler_info()["workers"].items()}
                keys = [k for a, ks in observer.processing().items() if names.get(a) == "w0"
                        for k in ks]
                in_flight[:] = [str(k) for k in keys]
                return bool(keys) and len(finished_files(out)) >= 1

            assert wait_for(w0_busy_after_a_first_result, 180, step=0.02), run.stderr
            workers[0].send_signal(signal.SIGKILL)  # mid-run: w0 was training in_flight
            workers[0].wait()
        done_at_kill = len(finished_files(out))
        stdout, stderr = run.communicate(timeout=300)
    assert done_at_kill < 6 and in_flight
    killed_runs = [k.removeprefix("descend-run-") for k in in_flight]
    assert run.returncode == 0, stderr[-3000:]
    result = json.loads(stdout)
    assert result["runs"] == 6 and result["ran"] == 6 and len(result["rows"]) == 3
    files = sorted((out / "runs").glob("*.jsonl"))
    assert len(files) == 6  # nothing lost
    for path in files:  # each written once: one spec, ordered steps, one summary
        assert read_run(path).finished
        assert path.read_text().count('"kind":"summary"') == 1
    assert all((out / "runs" / f"{run_id}.jsonl").exists() for run_id in killed_runs)

    local = tmp_path / "local"
    compare("digits-mlp", ["sgd", "adam", "rmsprop"], seeds=[0, 1], epochs=60, evals=10,
            out=local, jobs=1, progress=False)
    assert numbers(out) == numbers(local)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    done = subprocess.run([*CLI, "compare", "--cluster", "tcp://127.0.0.1:9", "--out",
                           str(tmp_path / "never")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "never").exists()
