"""The cluster executor: Dask distributed (see docs/cluster.md for the choice and the setup).

The scheduler hands runs to workers and re-runs a run whose worker died; workers train and
send the records back; this process, the client, is the only writer of the run folder.
So records reach the folder exactly once whether or not the workers share a filesystem,
and a worker needs descend (the same version) and the task's data, nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import LabError
from .runner import Display, Records, load_task, run_spec, task_key
from .spec import RunSpec


def descend_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("descend")
    except PackageNotFoundError:
        return "unknown"


def remote_run(spec_json: dict[str, Any], client_version: str) -> Records:
    """What a Dask worker runs: one spec, its records returned. The task's data are loaded
    once per worker process and kept."""
    mine = descend_version()
    if mine != client_version:
        raise LabError(f"this worker has descend {mine}, the client {client_version}: "
                       "install the same version on every machine")
    spec = RunSpec.from_json(spec_json)
    return run_spec(spec, load_task(task_key(spec)))


class DaskCluster:
    """Runs specs on a Dask cluster, given its scheduler's address (``tcp://host:8786``)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise LabError("--cluster needs Dask distributed: pip install 'descend[lab]' "
                           "(or pip install distributed)") from None
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise LabError(f"cannot reach the Dask scheduler at {address!r}: {first}; start "
                           "one with 'dask scheduler' (see docs/cluster.md)") from None

    def run(self, specs: Sequence[RunSpec], show: Display) -> Iterator[tuple[RunSpec, Records]]:
        from distributed import as_completed

        version = descend_version()
        # The key names the run: a run submitted twice (by two clients) is computed once.
        futures = {self.client.submit(remote_run, spec.to_json(), version, pure=False,
                                      key=f"descend-run-{spec.run_id}"): spec
                   for spec in specs}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                spec = futures[future]
                try:
                    records = future.result()
                except LabError:
                    raise
                except Exception as e:
                    raise LabError(f"{spec.label} seed {spec.seed} (run {spec.run_id}) failed "
                                   f"on the cluster: {type(e).__name__}: {e}") from None
                yield spec, records
        finally:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=2)
