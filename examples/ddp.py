"""Data-parallel training with a descend optimizer and a distributed checkpoint.

    torchrun --nproc-per-node 2 examples/ddp.py [--steps 200] [--checkpoint DIR] [--zero]

Each process trains the same small regression model on its own shard of a synthetic data
set; DDP averages the gradients, so every process takes the same optimizer step. Halfway
through, the model and optimizer (AdamW with a warmup-cosine learning rate) are saved with
torch.distributed.checkpoint, loaded into a freshly built model and optimizer, and training
continues from there: the schedule's clock and every moment travel in the checkpoint.
With --zero, ZeroRedundancyOptimizer shards the optimizer state across the processes
(consolidated on rank 0 for the checkpoint instead). Runs on CPU with the gloo backend, or
on one GPU per process with nccl.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

import descend
import descend.schedules as S


def build(args: argparse.Namespace, device: torch.device):
    torch.manual_seed(0)  # the same initial weights on every process
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 1)).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    lr = S.warmup_cosine(3e-3, warmup_steps=args.steps // 10, total_steps=args.steps)
    if args.zero:
        opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=descend.AdamW, lr=lr,
                                      weight_decay=0.01)
    else:
        opt = descend.AdamW(ddp.parameters(), lr=lr, weight_decay=0.01)
    return model, ddp, opt


def data(rank: int, world: int, n: int = 4096):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=gen)
    y = (x[:, :4].sin().sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=gen))
    return x[rank::world], y[rank::world]  # this process's shard


def train(ddp, opt, x, y, steps, batch=64):
    loss = torch.tensor(float("nan"))
    for step in steps:
        i = (step * batch) % (len(x) - batch)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(x[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()
    return float(loss.detach())


def save(args, model, opt, path):
    if args.zero:  # ZeRO: gather the shards on rank 0, save an ordinary state dict there
        opt.consolidate_state_dict(to=0)
        if dist.get_rank() == 0:
            torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, path)
        dist.barrier()
    else:  # every process writes its part; DCP can reload with a different process count
        model_sd, optim_sd = get_state_dict(model, opt)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=path)


def load(args, model, opt, path):
    if args.zero:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optim"])
    else:
        model_sd, optim_sd = get_state_dict(model, opt)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=path)
        set_state_dict(model, opt, model_state_dict=state["model"],
                       optim_state_dict=state["optim"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps in all")
    parser.add_argument("--checkpoint", default="runs/ddp-checkpoint",
                        help="where the halfway checkpoint is written")
    parser.add_argument("--zero", action="store_true",
                        help="shard the optimizer state with ZeroRedundancyOptimizer")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    x, y = (t.to(device) for t in data(rank, world))
    path = args.checkpoint + (".pt" if args.zero else "")

    model, ddp, opt = build(args, device)
    half = args.steps // 2
    loss = train(ddp, opt, x, y, range(half))
    save(args, model, opt, path)
    if rank == 0:
        print(f"step {half}: loss {loss:.4f}, checkpoint written to {path}")

    model, ddp, opt = build(args, device)  # as a restarted job would
    load(args, model, opt, path)
    loss = train(ddp, opt, x, y, range(half, args.steps))
    if rank == 0:
        lr = opt.param_groups[0]["lr"]
        print(f"resumed at step {half}; step {args.steps}: loss {loss:.4f}, lr now {lr:.2e}")
    # Leave together: a rank that tears its process group down while the other still
    # talks to it can hang or abort gloo's teardown.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
