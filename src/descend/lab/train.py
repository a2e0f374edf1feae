"""One training run: a spec in, records out."""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from descend.schedules import controllers

from .machine import load_average
from .registry import build_optimizer, build_schedule, optimizer_lr
from .spec import RunSpec
from .tasks import Task

Progress = Callable[[int, int, float], None]


def flat_parameters(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(loss, accuracy) on a whole split; accuracy is NaN for regression."""
    model.eval()
    out = model(x)
    model.train()
    loss = float(task.loss(out, y))
    acc = float((out.argmax(1) == y).float().mean()) if task.classification else math.nan
    return loss, acc


@contextlib.contextmanager
def flushing_denormals(enabled: bool):
    """Flush subnormal floats to zero for the block, when asked and the CPU supports it
    (torch has no getter: the lab never turns it on elsewhere, so off is restored)."""
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _train_subset(task: Task) -> tuple[Tensor, Tensor]:
    """The training examples the training loss is evaluated on: all, or a fixed subset."""
    data = task.splits
    k = task.train_eval
    if k is None or k >= len(data.x_train):
        return data.x_train, data.y_train
    idx = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))[:k]
    return data.x_train[idx], data.y_train[idx]


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for s in optimizer.state.values()
               for v in s.values() if torch.is_tensor(v))


def train(spec: RunSpec, task: Task, write: Callable[[dict[str, Any]], None],
          progress: Progress | None = None) -> dict[str, Any]:
    """Train `task` under `spec`, calling `write` with each eval record; return the summary.

    Within a seed every optimizer starts from the same weights and sees the same batches:
    the model is built right after ``torch.manual_seed(seed)`` and batches come from a
    permutation generator seeded with the seed alone.

    Time is measured twice, evaluations excluded: `time` is wall-clock seconds, `cpu` the
    CPU seconds of this (the training) thread, which other processes on a shared machine
    do not inflate. Runs use one torch thread (`runner.one_thread`), so the training
    thread does all of the work.
    """
    with flushing_denormals(task.flush_denormal):
        return _train(spec, task, write, progress)


def _train(spec: RunSpec, task: Task, write: Callable[[dict[str, Any]], None],
           progress: Progress | None) -> dict[str, Any]:
    load_start = load_average()
    data = task.splits
    n = len(data.x_train)
    batch = spec.batch(n)
    per_epoch, total = spec.budget(n)
    torch.manual_seed(spec.seed)
    model = task.make_model()
    lr = optimizer_lr(spec.optimizer)
    schedule = build_schedule(spec.schedule, lr, total, per_epoch)
    opt = build_optimizer(spec.optimizer, model, schedule)
    reacts = bool(controllers(schedule))
    optimum = task.optimum() if task.optimum is not None else None
    gen = torch.Generator().manual_seed(spec.seed)
    eval_at = set(torch.linspace(0, total, min(spec.evals, total) + 1).round().long().tolist())

    step_times: list[float] = []
    step_cpu: list[float] = []
    batch_losses: list[float] = []
    grad_norm = update_norm = math.nan
    train_time = cpu_time = 0.0
    x_fit, y_fit = _train_subset(task)
    diverged_at: int | None = None

    last: dict[str, Any] = {}

    # Schedule-free optimizers train at one point and are evaluated at another (x, not y).
    switches = callable(getattr(opt, "eval", None)) and callable(getattr(opt, "train", None))
    # Closure-driven optimizers (L-BFGS) evaluate the batch's loss themselves, maybe often.
    closure_driven = bool(getattr(opt, "needs_closure", False))

    def record(step: int) -> float:
        if switches:
            opt.eval()
        train_loss, train_acc = evaluate(model, task, x_fit, y_fit)
        val_loss, val_acc = evaluate(model, task, data.x_val, data.y_val)
        test_loss, test_acc = evaluate(model, task, data.x_test, data.y_test)
        if switches:
            opt.train()
        rec = {"kind": "eval", "step": step, "epoch": step / per_epoch, "time": train_time,
               "cpu": cpu_time,
               "lr": opt.param_groups[0]["lr"], "train_loss": train_loss,
               "train_acc": train_acc, "batch_loss": statistics.fmean(batch_losses)
               if batch_losses else train_loss, "val_loss": val_loss, "val_acc": val_acc,
               "test_loss": test_loss, "test_acc": test_acc, "grad_norm": grad_norm,
               "update_norm": update_norm}
        if optimum is not None:
            rec["distance"] = float((flat_parameters(model) - optimum).norm())
        write(rec)
        last.update(rec)
        batch_losses.clear()
        return val_loss

    record(0)
    perm = torch.empty(0, dtype=torch.long)
    for step in range(total):
        start = time.perf_counter()
        start_cpu = time.thread_time()
        k = step % per_epoch
        if k == 0:
            perm = torch.randperm(n, generator=gen)
        idx = perm[k * batch:(k + 1) * batch]
        x_batch, y_batch = data.x_train[idx], data.y_train[idx]
        loss = task.loss(model(x_batch), y_batch)
        opt.zero_grad()
        loss.backward()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            diverged_at = step
            break
        # The norms go into the next evaluation's record: measure them only on the step
        # before one, so that other steps (and "seconds to target") carry no extra copies.
        # Parameters that turn non-finite show up in the next loss or evaluation.
        evaluating = step + 1 in eval_at
        before = flat_parameters(model) if evaluating else None
        t0, c0 = time.perf_counter(), time.thread_time()
        if closure_driven:
            # The step's first evaluation is at the current weights: the loss and gradients
            # just computed. Later ones (the line search) compute afresh.
            computed = [loss]

            def closure(x_batch=x_batch, y_batch=y_batch, computed=computed) -> Tensor:
                if computed:
                    return computed.pop()
                opt.zero_grad()
                batch_loss = task.loss(model(x_batch), y_batch)
                batch_loss.backward()
                return batch_loss

            opt.step(closure)
        else:
            opt.step()
        step_times.append(time.perf_counter() - t0)
        step_cpu.append(time.thread_time() - c0)
        if evaluating:
            grad_norm = float(torch.cat([p.grad.reshape(-1) for p in model.parameters()
                                         if p.grad is not None]).norm())
            update_norm = float((flat_parameters(model) - before).norm())
        batch_losses.append(loss_value)
        train_time += time.perf_counter() - start
        cpu_time += time.thread_time() - start_cpu
        if evaluating:
            val_loss = record(step + 1)
            if not math.isfinite(val_loss):
                diverged_at = step + 1
                break
            if reacts:
                opt.report(val_loss)
            if progress is not None:
                progress(step + 1, total, loss_value)

    n_params = sum(p.numel() for p in model.parameters())
    return {
        "steps": total if diverged_at is None else diverged_at,
        "planned_steps": total,
        "diverged": diverged_at is not None,
        "diverged_at": diverged_at,
        "step_time_ms": 1e3 * statistics.median(step_times) if step_times else math.nan,
        "step_cpu_ms": 1e3 * statistics.median(step_cpu) if step_cpu else math.nan,
        "train_time": train_time,
        "cpu_time": cpu_time,
        "host": socket.gethostname(),
        "load": [load_start, load_average()],
        "state_bytes_per_param": state_bytes(opt) / n_params,
        "n_params": n_params,
        "batch_size": batch,
        "n_train": n,
        "n_val": len(data.x_val),
        "n_test": len(data.x_test),
        "steps_per_epoch": per_epoch,
        "lr": lr,
        "reductions": [r.__dict__ for c in controllers(schedule) for r in c.reductions],
        "final_val_loss": last["val_loss"],
        "final_val_acc": last["val_acc"],
    }
