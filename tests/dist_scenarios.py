"""Scenarios run in 2 processes over gloo (CPU) by test_distributed.py.

Each scenario trains a tiny model under a torch distributed wrapper with descend and with
torch.optim under the same setup, and saves what the test compares to OUT/<rank>.pt.
Batches differ per rank; every rank computes the same full-batch reference where needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import descend
import descend.schedules as S

T = torch.optim


def spawn(scenario: str, out: str, port: int, **kwargs) -> None:
    torch.multiprocessing.spawn(_entry, args=(2, port, scenario, out, kwargs), nprocs=2)


def _entry(rank: int, world: int, port: int, scenario: str, out: str, kwargs: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        result = SCENARIOS[scenario](rank, world, Path(out), **kwargs)
        torch.save(result, Path(out) / f"{rank}.pt")
        # Both ranks leave together: a rank tearing gloo down while the other still has
        # DDP's threads talking to it is what aborts a process now and then.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def batch(step: int, rank: int, micro: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 * step + 10 * rank + micro)
    return torch.randn(8, 6, generator=gen)


def loss(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (m(x) - 0.5).square().mean()


def params(m: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


OPTIMIZERS = {
    "descend": lambda ps, **kw: descend.AdamW(ps, **kw),
    "torch": lambda ps, **kw: T.AdamW(ps, **kw),
}


# -- DDP ---------------------------------------------------------------------------------


def ddp(rank, world, out, bucket_view: bool):
    from torch.nn.parallel import DistributedDataParallel as DDP

    result = {}
    for name, make in OPTIMIZERS.items():
        m = DDP(model(), gradient_as_bucket_view=bucket_view)
        opt = make(m.parameters(), lr=1e-2, weight_decay=0.1)
        for step in range(4):
            opt.zero_grad()
            with m.no_sync():  # accumulate the first micro-batch locally
                loss(m, batch(step, rank, 0)).backward()
            loss(m, batch(step, rank, 1)).backward()
            opt.step()
        result[name] = params(m.module)
    return result


# -- ZeRO ---------------------------------------------------------------------------------


def zero(rank, world, out, bucket_view: bool, scheduled: bool = False):
    """Train 3 steps, consolidate, save; resume a fresh ZeRO from the save (weights_only)
    and train 3 more, next to the uninterrupted run. With `scheduled`, descend's lr is a
    warmup-cosine under a plateau controller fed through the local optimizer."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    def lr():
        if not scheduled:
            return 1e-2
        return S.reduce_on_plateau(S.warmup_cosine(1e-2, 2, 10), patience=0, factor=0.5)

    def build(cls, start=None):
        m = model()
        if start is not None:
            with torch.no_grad():
                for p, s in zip(m.parameters(), start):
                    p.copy_(s)
        ddp_model = DDP(m)
        opt = ZeroRedundancyOptimizer(ddp_model.parameters(), optimizer_class=cls,
                                      parameters_as_bucket_view=bucket_view, lr=lr())
        return m, ddp_model, opt

    def train(ddp_model, opt, steps, lrs):
        for step in steps:
            opt.zero_grad()
            loss(ddp_model, batch(step, rank)).backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if scheduled and step % 2 == 1:
                opt.optim.report(1.0)  # never improves: the controller halves the lr

    result = {}
    for name, cls in (("descend", descend.Adam), ("torch", T.Adam)):
        if scheduled and name == "torch":
            continue
        lrs: list[float] = []
        m, ddp_model, opt = build(cls)
        train(ddp_model, opt, range(3), lrs)
        opt.consolidate_state_dict(to=0)
        path = out / f"zero-{name}.pt"
        if rank == 0:
            torch.save({"p": params(m), "o": opt.state_dict()}, path)
        dist.barrier()
        saved = torch.load(path, weights_only=True)
        resumed_lrs = list(lrs)
        train(ddp_model, opt, range(3, 6), lrs)
        straight = params(m)
        m2, ddp2, opt2 = build(cls, saved["p"])
        opt2.load_state_dict(saved["o"])
        train(ddp2, opt2, range(3, 6), resumed_lrs)
        result[name] = {"straight": straight, "resumed": params(m2), "lrs": lrs,
                        "resumed_lrs": resumed_lrs}
    return result


# -- FSDP2 and distributed checkpoints --------------------------------------------------------


def fsdp2(rank, world, out, backend: str = "auto"):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.fsdp import fully_shard

    def build(cls, **kw):
        m = model()
        for layer in (m[0], m[2]):
            fully_shard(layer)
        fully_shard(m)
        return m, cls(m.parameters(), lr=1e-2, weight_decay=0.1, **kw)

    def train(m, opt, steps):
        for step in steps:
            opt.zero_grad()
            loss(m, batch(step, rank)).backward()
            opt.step()

    def full(m):
        return [p.full_tensor().detach().clone() for p in m.parameters()]

    result = {}
    for name, cls, kw in (("descend", descend.AdamW, {"backend": backend}),
                          ("torch", T.AdamW, {})):
        m, opt = build(cls, **kw)
        train(m, opt, range(2))
        ckpt = out / f"dcp-{name}"
        msd, osd = get_state_dict(m, opt)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(ckpt))
        train(m, opt, range(2, 4))
        m2, opt2 = build(cls, **kw)
        msd2, osd2 = get_state_dict(m2, opt2)
        state = {"model": msd2, "optim": osd2}
        dcp.load(state, checkpoint_id=str(ckpt))
        set_state_dict(m2, opt2, model_state_dict=state["model"],
                       optim_state_dict=state["optim"])
        train(m2, opt2, range(2, 4))
        result[name] = {"straight": full(m), "resumed": full(m2),
                        "state_types": sorted({type(v).__name__ for s in opt.state.values()
                                               for v in s.values()})}
    return result


def reshard_to_one(out: Path, name: str) -> list[torch.Tensor]:
    """Load the 2-process checkpoint of `fsdp2` into one process without FSDP and train the
    same two steps on the union of both ranks' batches (FSDP averages the gradients)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    m = model()
    opt = (descend.AdamW if name == "descend" else T.AdamW)(m.parameters(), lr=1e-2,
                                                            weight_decay=0.1)
    msd, osd = get_state_dict(m, opt)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=str(out / f"dcp-{name}"))
    set_state_dict(m, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for step in range(2, 4):
        opt.zero_grad()
        x = torch.cat([batch(step, r) for r in range(2)])
        loss(m, x).backward()
        opt.step()
    return params(m)


# -- torch.distributed.checkpoint's state initialisation (issue 16) ---------------------------


def dcp_init(rank, world, out):
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
    from torch.nn.parallel import DistributedDataParallel as DDP

    schedule = S.cosine(1e-2, 20)
    result = {}
    for name in ("descend", "torch"):
        m = DDP(model())
        if name == "descend":
            opt = descend.AdamW(m.parameters(), lr=schedule, weight_decay=0.1)
            sched = None
        else:
            opt = T.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
            sched = T.lr_scheduler.LambdaLR(opt, lambda t: schedule(t) / 1e-2)
        before = params(m.module)
        get_optimizer_state_dict(m, opt)  # initialises the state with one zero-lr step
        unchanged = all(torch.equal(a, b) for a, b in zip(before, params(m.module)))
        for step in range(5):
            opt.zero_grad()
            loss(m, batch(step, rank)).backward()
            opt.step()
            if sched is not None:
                sched.step()
        result[name] = {"unchanged": unchanged, "params": params(m.module),
                        "step": int(opt.state[next(m.parameters())]["step"])}
    return result


SCENARIOS = {"ddp": ddp, "zero": zero, "fsdp2": fsdp2, "dcp_init": dcp_init}

if __name__ == "__main__":  # python dist_scenarios.py SCENARIO OUT PORT
    spawn(sys.argv[1], sys.argv[2], int(sys.argv[3]))
