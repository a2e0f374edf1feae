"""Records: one JSON Lines file per run.

Layout of a run directory::

    RUN_DIR/grid.json            the grid that was asked for
    RUN_DIR/.descend.lock        held by the one process writing here (see `lock`)
    RUN_DIR/runs/<run_id>.jsonl  {"kind": "spec", ...}, then {"kind": "eval", ...} lines with
                                 increasing steps, then one {"kind": "summary", ...}

A run's file is written whole when the run finishes (a temporary file, fsync, rename) by
the single process that holds the folder, whichever process or machine trained it. So a
file is complete or absent, and a kill loses at most the runs in flight. Files left by
older versions or by hand are still read with care: an empty file, or one whose spec line
was cut short, is an unfinished run (run again); a truncated last line marks the run
unfinished; two summaries, steps out of order or a second spec line are corruption (two
writers at once) and raise `RecordsError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LabError
from .spec import RunSpec

# Fields that measure the machine rather than the computation: identical runs differ in
# them (wall and CPU time, the host, its load). Everything else in a record is reproducible.
MEASURED_EVAL = ("time", "cpu")
MEASURED_SUMMARY = ("step_time_ms", "step_cpu_ms", "train_time", "cpu_time", "host",
                    "load")


class RecordsError(LabError):
    """A results file is corrupt or not a descend results file."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf: write them as strings that `_restore` reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _restore(value: Any) -> Any:
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def encode_lines(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(_clean(r), separators=(",", ":")) + "\n" for r in records)


def write_run(run_dir: Path, spec: RunSpec, records: Sequence[dict[str, Any]]) -> Path:
    """Write a finished run's file in one piece: spec line, eval lines, summary line."""
    if not records or records[0].get("kind") != "spec" or records[-1].get("kind") != "summary":
        raise ValueError("a run's records start with its spec and end with its summary")
    return write_text_atomic(run_path(run_dir, spec), encode_lines(records), sync=True)


@dataclass
class Run:
    """The records of one run, read back."""

    spec: RunSpec
    evals: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def series(self, key: str) -> list[float]:
        return [e.get(key, math.nan) for e in self.evals]


def _corrupt(path: Path, problem: str) -> RecordsError:
    return RecordsError(f"{path}: {problem}; the file is corrupt (two writers at once, or "
                        "edited by hand): delete it to run that run again")


def read_run(path: Path) -> Run | None:
    """Read one run file; None when it holds no whole spec line yet (an empty file, or a
    spec line cut short by a kill): that run has not started as far as records go."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordsError(f"cannot read {path}: {e.strerror}") from None
    lines = data.split(b"\n")
    tail_cut = lines[-1] != b""  # no newline at the end: the last write was interrupted
    lines = lines[:-1]
    if not lines:
        return None
    records = []
    for i, line in enumerate(lines, start=1):
        try:
            records.append(_restore(json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _corrupt(path, f"line {i} is not valid JSON") from None
        if not isinstance(records[-1], dict):
            raise _corrupt(path, f"line {i} is not a record")
    if records[0].get("kind") != "spec":
        raise RecordsError(f"{path}: does not start with a spec record; not a descend "
                           "results file")
    head = {k: v for k, v in records[0].items() if k != "kind"}
    try:
        run = Run(RunSpec.from_json(head), path=path)
    except (TypeError, ValueError) as e:
        raise RecordsError(f"{path}: bad spec record ({e})") from None
    if path.suffix == ".jsonl" and path.stem != run.spec.run_id:
        raise _corrupt(path, f"it holds the records of run {run.spec.run_id}")
    last_step = -1
    for i, record in enumerate(records[1:], start=2):
        kind = record.get("kind")
        if run.summary is not None:
            raise _corrupt(path, f"line {i} ({kind}) follows the summary line "
                           + ("(two summaries)" if kind == "summary" else ""))
        if kind == "eval":
            step = record.get("step")
            if not isinstance(step, int) or step <= last_step:
                raise _corrupt(path, f"line {i}: step {step} after step {last_step} "
                               "(steps out of order)")
            last_step = step
            run.evals.append(record)
        elif kind == "summary":
            run.summary = record
        elif kind == "spec":
            raise _corrupt(path, f"line {i} is a second spec record")
        else:
            raise RecordsError(f"{path}: line {i} has unknown kind {kind!r}")
    if tail_cut:
        run.summary = None
    return run


def run_path(run_dir: Path, spec: RunSpec) -> Path:
    return Path(run_dir) / "runs" / f"{spec.run_id}.jsonl"


def check_run_dir(run_dir: str | Path) -> Path:
    """`run_dir`, after checking that 'descend compare' wrote it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RecordsError(f"{run_dir} does not exist or is not a folder; not a descend run "
                           "directory")
    if not (run_dir / "runs").is_dir():
        raise RecordsError(f"{run_dir} holds no runs/ folder; not a descend run directory")
    return run_dir


def read_runs(run_dir: str | Path) -> Iterator[Run]:
    """Every run file under `run_dir` that holds a spec, finished or not, in a stable
    order."""
    run_dir = check_run_dir(run_dir)
    for path in sorted((run_dir / "runs").glob("*.jsonl")):
        run = read_run(path)
        if run is not None:
            yield run


def finished(run_dir: Path, spec: RunSpec) -> Run | None:
    """The finished run of `spec` in `run_dir`, or None."""
    path = run_path(run_dir, spec)
    if not path.exists():
        return None
    run = read_run(path)
    return run if run is not None and run.finished else None


def write_text_atomic(path: Path, text: str, sync: bool = False) -> Path:
    """Write a whole file or nothing: a reader (or a kill) never sees half of it. The
    temporary file has a unique name, so two writers never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: Path, data: Any, indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(_clean(data), indent=indent))


def read_json(path: Path) -> Any:
    try:
        return _restore(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RecordsError(f"{path} is missing") from None
    except json.JSONDecodeError as e:
        raise RecordsError(f"{path} is corrupt: {e}") from None
