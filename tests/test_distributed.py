"""descend under torch's distributed wrappers: 2 processes over gloo on CPU, each scenario
comparing descend (default backend unless stated) with torch.optim under the same setup.
See dist_scenarios.py for the scenarios. Slow: each spawns two processes that import torch.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings
from pathlib import Path

import dist_scenarios
import pytest
import torch

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path: Path, scenario: str, **kwargs) -> list[dict]:
    try:
        dist_scenarios.spawn(scenario, str(tmp_path), _port(), **kwargs)
    except torch.multiprocessing.ProcessExitedException as e:
        # gloo's C++ threads abort a process at teardown now and then ("terminate called
        # without an active exception", seen once in CI). A process killed by a signal
        # produced no numbers to check, so run the scenario once more; an exception raised
        # by the scenario itself is a ProcessRaisedException, never retried.
        if e.signal_name is None:
            raise
        warnings.warn(f"{scenario}: a process died of {e.signal_name}; running it again",
                      stacklevel=2)
        for stale in tmp_path.glob("*.pt"):
            stale.unlink()
        dist_scenarios.spawn(scenario, str(tmp_path), _port(), **kwargs)
    return [torch.load(tmp_path / f"{rank}.pt", weights_only=True) for rank in range(2)]


def _close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("bucket_view", [False, True], ids=["grads", "grad-bucket-views"])
def test_ddp_with_no_sync_accumulation_matches_torch(tmp_path, bucket_view):
    ranks = _run(tmp_path, "ddp", bucket_view=bucket_view)
    for r in ranks:
        _close(r["descend"], r["torch"])
    assert _equal(ranks[0]["descend"], ranks[1]["descend"])


@pytest.mark.parametrize("bucket_view", [False, True], ids=["plain", "bucket-views"])
def test_zero_redundancy_optimizer_trains_consolidates_and_resumes_like_torch(tmp_path,
                                                                             bucket_view):
    """Regression: with parameters_as_bucket_view=True each rank trained only its own
    shard (the flat backend took the parameters out of ZeRO's buckets): ranks differed."""
    ranks = _run(tmp_path, "zero", bucket_view=bucket_view)
    for r in ranks:
        _close(r["descend"]["straight"], r["torch"]["straight"])
        _close(r["descend"]["resumed"], r["descend"]["straight"], rtol=1e-6, atol=1e-7)
    assert _equal(ranks[0]["descend"]["straight"], ranks[1]["descend"]["straight"])
    assert _equal(ranks[0]["descend"]["resumed"], ranks[1]["descend"]["resumed"])


def test_zero_carries_a_schedule_and_a_plateau_controller_through_consolidation(tmp_path):
    """The consolidated state dict loads with weights_only=True (no schedule objects in
    it) and the resumed run follows the same lrs, reductions included."""
    ranks = _run(tmp_path, "zero", bucket_view=True, scheduled=True)
    for r in ranks:
        d = r["descend"]
        assert d["resumed_lrs"] == d["lrs"]
        assert min(d["lrs"][3:]) < 0.6 * max(d["lrs"])  # the controller did reduce
        _close(d["resumed"], d["straight"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ["auto", "foreach", "reference"])
def test_fsdp2_and_distributed_checkpoints_match_torch(tmp_path, backend):
    """Regression: FSDP2's DTensor parameters crashed the default backend ("aten.copy_
    got mixed torch.Tensor and DTensor")."""
    ranks = _run(tmp_path, "fsdp2", backend=backend)
    for r in ranks:
        _close(r["descend"]["straight"], r["torch"]["straight"])
        _close(r["descend"]["resumed"], r["descend"]["straight"], rtol=1e-6, atol=1e-7)
        assert "DTensor" in r["descend"]["state_types"]
    if backend == "auto":
        # Resharding: the 2-process checkpoint continues in one process without FSDP.
        for name in ("descend", "torch"):
            one = dist_scenarios.reshard_to_one(tmp_path, name)
            _close(one, ranks[0][name]["straight"])


def test_dcp_state_initialisation_moves_nothing_and_continues_like_torch(tmp_path):
    """Regression (issue 16): get_optimizer_state_dict on a fresh optimizer runs one step at
    lr 0; with a scheduled lr descend overwrote the 0 and moved the weights (1e-3
    relative), and advanced the schedule."""
    ranks = _run(tmp_path, "dcp_init")
    for r in ranks:
        assert r["descend"]["unchanged"] and r["torch"]["unchanged"]
        assert r["descend"]["step"] == r["torch"]["step"] == 6  # torch counts the init step
        _close(r["descend"]["params"], r["torch"]["params"])


def test_the_ddp_example_runs_under_torchrun(tmp_path):
    example = Path(__file__).parents[1] / "examples" / "ddp.py"

    def torchrun(attempt: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
             "--master-port", str(_port()), str(example), "--steps", "20",
             "--checkpoint", str(tmp_path / f"ckpt{attempt}")],
            capture_output=True, text=True, timeout=120)

    try:
        done = torchrun(0)  # about 10 s
    except subprocess.TimeoutExpired as e:
        # Seen once in a CI run: both ranks had finished and printed, and the job hung in
        # gloo's teardown. A hang tells nothing about the numbers: run it once more.
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        warnings.warn(f"torchrun hung after printing {out[-200:]!r}; once more", stacklevel=1)
        done = torchrun(1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed" in done.stdout
