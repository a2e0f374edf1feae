"""Records: one JSON Lines file per run, appended as the run goes.

Layout of a run directory::

    RUN_DIR/grid.json            the grid that was asked for
    RUN_DIR/runs/<run_id>.jsonl  {"kind": "spec", ...} then {"kind": "eval", ...} lines,
                                 then {"kind": "summary", ...} when the run finished

Each line goes out in one `write` on a file opened for appending, so a line is either
whole or (after a kill mid-write) a truncated tail. A run without a summary line is
unfinished: a re-run of the same grid starts it again and skips the finished ones, so a
`kill -9` loses at most the runs in flight.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import RunSpec


class RecordsError(Exception):
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


class RunWriter:
    """Appends the records of one run; starts the file afresh."""

    def __init__(self, path: Path, spec: RunSpec) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.write({"kind": "spec", **spec.to_json()})

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_clean(record), separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())

    def finish(self, summary: dict[str, Any]) -> None:
        self.write({"kind": "summary", **summary})
        os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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


def read_run(path: Path) -> Run:
    """Read one run file. A truncated last line (a kill mid-write) marks the run unfinished;
    anything else malformed raises `RecordsError` naming the file and line."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise RecordsError(f"cannot read {path}: {e}") from None
    tail_cut = lines[-1] != b""  # no newline at the end: the last write was interrupted
    lines = lines[:-1]
    records = []
    for i, line in enumerate(lines, start=1):
        try:
            records.append(_restore(json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RecordsError(f"{path}: line {i} is not valid JSON; the results file is "
                               "corrupt (delete it to re-run that run)") from None
    if not records or records[0].get("kind") != "spec":
        if tail_cut and not records:
            return Run(RunSpec(task="?", optimizer="?"), path=path)
        raise RecordsError(f"{path}: does not start with a spec record; not a descend "
                           "results file")
    head = {k: v for k, v in records[0].items() if k != "kind"}
    try:
        run = Run(RunSpec.from_json(head), path=path)
    except TypeError as e:
        raise RecordsError(f"{path}: bad spec record ({e})") from None
    for i, record in enumerate(records[1:], start=2):
        kind = record.get("kind")
        if kind == "eval":
            run.evals.append(record)
        elif kind == "summary":
            run.summary = record
        else:
            raise RecordsError(f"{path}: line {i} has unknown kind {kind!r}")
    if tail_cut:
        run.summary = None
    return run


def run_path(run_dir: Path, spec: RunSpec) -> Path:
    return run_dir / "runs" / f"{spec.run_id}.jsonl"


def read_runs(run_dir: str | Path) -> Iterator[Run]:
    """Every run file under `run_dir`, finished or not, in a stable order."""
    run_dir = Path(run_dir)
    if not (run_dir / "runs").is_dir():
        raise RecordsError(f"{run_dir} holds no runs/ folder; not a descend run directory")
    for path in sorted((run_dir / "runs").glob("*.jsonl")):
        yield read_run(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a whole file or nothing: a reader (or a kill) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
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
