"""One writer per run folder; corrupt records are found and named; runs cut short by a kill
run again; nothing is written for an invalid grid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from descend.lab import records
from descend.lab.cli import main
from descend.lab.compare import compare
from descend.lab.lock import LOCK_NAME, command_line, folder_lock
from descend.lab.records import RecordsError, read_run, read_runs

from .conftest import SMALL
from .helpers import CLI, finished_files, numbers, wait_for


def _copy(small_run, tmp_path, name="copy"):
    out, _ = small_run
    dest = tmp_path / name
    shutil.copytree(out, dest)
    return dest


def test_a_second_writer_refuses_at_once_naming_the_first(tmp_path, capsys):
    out = tmp_path / "held"
    with folder_lock(out):
        code = main(["compare", "--task", "digits-logreg", "--optimizers", "sgd", "--seeds",
                     "1", "--epochs", "1", "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert f"being written by process {os.getpid()}" in err and command_line() in err
        assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err
        assert not (out / "runs").exists()
        assert main(["report", str(out)]) == 2  # not a run folder yet, and held anyway
    # Released on exit: the same folder can be written now.
    assert compare("digits-logreg", ["sgd"], seeds=[0], epochs=1, evals=2, out=out,
                   progress=False, jobs=1).ran == 1


@pytest.mark.slow
def test_two_concurrent_compares_one_refuses_and_records_stay_whole(tmp_path):
    out = tmp_path / "shared"
    cmd = [*CLI, "compare", "--task", "digits-mlp", "--optimizers", "adam,sgd,rmsprop",
           "--seeds", "2", "--epochs", "120", "--jobs", "1", "--out", str(out),
           "--no-progress", "--json"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / LOCK_NAME

    def held() -> bool:
        try:
            return json.loads(lock.read_text() or "{}").get("pid") == first.pid
        except (OSError, ValueError):
            return False

    assert wait_for(held, 60), "the first compare never took the folder"
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"being written by process {first.pid}" in second.stderr
    assert "compare --task digits-mlp" in second.stderr
    assert "Traceback" not in second.stderr
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert len(json.loads(stdout)["rows"]) == 3
    runs = list(read_runs(out))  # raises on two summaries or interleaved steps
    assert len(runs) == 6 and all(r.finished for r in runs)
    for run in runs:
        steps = [e["step"] for e in run.evals]
        assert steps == sorted(set(steps))


def test_duplicate_summaries_and_steps_out_of_order_are_corruption(small_run, tmp_path,
                                                                   capsys):
    doubled = _copy(small_run, tmp_path, "doubled")
    path = sorted((doubled / "runs").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[-1]]) + "\n")
    with pytest.raises(RecordsError, match="two summaries"):
        read_run(path)
    assert main(["report", str(doubled)]) == 2
    err = capsys.readouterr().err
    assert path.name in err and "two summaries" in err and "Traceback" not in err

    shuffled = _copy(small_run, tmp_path, "shuffled")
    path = sorted((shuffled / "runs").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]  # what two interleaved writers leave
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordsError, match=f"{path.name}.*steps out of order"):
        read_run(path)
    assert main(["compare", "--task", "digits-logreg", "--optimizers", "sgd,adam", "--seeds",
                 "2", "--epochs", "3", "--evals", "4", "--jobs", "1", "--out", str(shuffled),
                 "--no-progress"]) == 2
    assert "steps out of order" in capsys.readouterr().err


def test_empty_and_specless_files_left_by_a_kill_are_run_again(small_run, tmp_path):
    out, _ = small_run
    cut = _copy(small_run, tmp_path, "cut")
    files = sorted((cut / "runs").glob("*.jsonl"))
    files[0].write_bytes(b"")  # killed between open and the first write
    files[1].write_bytes(files[1].read_bytes()[:40])  # killed inside the spec line
    assert read_run(files[0]) is None and read_run(files[1]) is None
    assert len(list(read_runs(cut))) == 2  # the report reads around them
    result = compare("digits-logreg", out=cut, **SMALL)
    assert result.ran == 2
    assert numbers(cut) == numbers(out)
    assert len(finished_files(cut)) == 4


@pytest.mark.parametrize("bad", ["adam:lr=-1", "adam:betas=2", "sgd:momentum=2",
                                 "adam:lr=fast"])
def test_an_invalid_grid_writes_nothing(tmp_path, capsys, bad):
    out = tmp_path / "never"
    assert main(["compare", "--optimizers", f"sgd,{bad}", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"optimizer {bad!r}" in err
    assert not out.exists()


def test_a_schedule_that_cannot_fit_the_budget_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    # 0.6 warmup + 0.6 decay is more than the whole run.
    assert main(["compare", "--schedule", "wsd:warmup=0.6:decay=0.6", "--out", str(out)]) == 2
    assert "warmup + decay must be at most 1" in capsys.readouterr().err
    assert not out.exists()


def test_stale_temporary_files_of_a_killed_writer_are_removed(small_run, tmp_path):
    cut = _copy(small_run, tmp_path, "tmp")
    stale = cut / "runs" / ".abc.jsonl.x1y2.tmp"
    stale.write_text('{"kind":"spec"')
    compare("digits-logreg", out=cut, **SMALL)
    assert not stale.exists()
    assert records.finished(cut, next(iter(read_runs(cut))).spec) is not None
