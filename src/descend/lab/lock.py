"""One writer per run folder.

`compare`, `tune` and `report` hold an advisory lock (``flock``) on ``RUN_DIR/.descend.lock``
while they write. The kernel drops the lock when its holder exits, however it exits
(``kill -9`` included), so a stale lock file never blocks anyone; the file's content
(PID, host, command) only serves the message that a second writer gets. The file is never
deleted: unlinking a lock file lets two processes lock two different inodes of one name.
Linux's NFS client maps ``flock`` onto NFS locks, so the lock also holds between machines
that share the folder over NFS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import LabError

LOCK_NAME = ".descend.lock"

# Lock descriptors held by this process. A forked child closes its copies at once: a
# flock belongs to the open file, so a child that kept one would hold the folder after
# its parent died.
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class FolderBusy(LabError):
    """Another process is writing into the folder."""


def command_line() -> str:
    """How this process was started, as a user would type it (``descend compare ...``)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name or argv[0]
    return shlex.join(argv)


def _holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def writable_folder(folder: str | Path, what: str = "--out") -> Path:
    """Create `folder` (and its parents) if needed, or explain in one line why not."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{what} {str(folder)!r} is a file, not a folder; give a folder "
                       "(it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise LabError(f"{what} {str(folder)!r}: a part of that path is a file, not a "
                       "folder") from None
    except OSError as e:
        raise LabError(f"{what} {str(folder)!r} cannot be created: {e.strerror}; choose a "
                       "folder you can write to") from None
    return folder


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "--out") -> Iterator[Path]:
    """Hold `folder` for writing, or raise `FolderBusy` at once naming the holder.

    Creates the folder if needed (after the caller has validated everything else)."""
    import fcntl

    folder = writable_folder(folder, what)
    path = folder / LOCK_NAME
    try:
        # Every file here is written through a new temporary file: check that one can be
        # made (the lock file itself may exist already in a folder that is now read-only).
        os.close(os.open(folder / f".probe.{os.getpid()}.tmp", os.O_WRONLY | os.O_CREAT, 0o644))
        os.unlink(folder / f".probe.{os.getpid()}.tmp")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        raise LabError(f"cannot write into {str(folder)!r}: {e.strerror}; choose a folder "
                       "you can write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
               f"({holder.get('command', '?')})" if holder else "another process")
        raise FolderBusy(f"{folder} is being written by {who}; wait for it to finish or "
                         f"stop it, or choose another {what}") from None
    except OSError as e:
        os.close(fd)
        raise LabError(f"cannot lock {str(path)!r}: {e.strerror}") from None
    _HELD.add(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        _clear_temporaries(folder)
        yield folder
    finally:
        _HELD.discard(fd)
        os.close(fd)  # closing the last descriptor releases the flock


def _clear_temporaries(folder: Path) -> None:
    """Half-written files of a writer that was killed: nobody else writes here now."""
    for pattern in (".*.tmp", "runs/.*.tmp"):
        for stale in folder.glob(pattern):
            with contextlib.suppress(OSError):
                stale.unlink()
