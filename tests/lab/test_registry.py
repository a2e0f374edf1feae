"""Every optimizer the lab names trains a task and draws (or refuses to draw) a path."""

from __future__ import annotations

import math

import pytest

from descend.lab import registry
from descend.lab.paths import paths
from descend.lab.spec import RunSpec
from descend.lab.tasks import get_task
from descend.lab.train import train


@pytest.mark.parametrize("name", list(registry.OPTIMIZERS))
def test_every_lab_optimizer_trains_the_default_task(name):
    task = get_task("digits-mlp")
    spec = RunSpec(task="digits-mlp", optimizer=registry.canonical_optimizer(name),
                   steps=12, evals=2, batch_size=32,
                   # the two meant for full batches get them, as their descriptions say
                   regime="full" if name in ("lbfgs", "rprop") else "minibatch")
    records: list[dict] = []
    summary = train(spec, task, records.append)
    losses = [r["train_loss"] for r in records]
    assert all(math.isfinite(v) for v in losses), (name, losses)
    assert losses[-1] < losses[0], (name, losses)
    assert not summary["diverged"]


def test_muon_routes_the_models_matrices_and_refuses_a_surface():
    opt = registry.build_optimizer("muon", get_task("digits-mlp").make_model())
    assert {g["use_muon"] for g in opt.param_groups} == {True, False}
    with pytest.raises(ValueError, match="acts on weight matrices"):
        paths("rosenbrock", ["muon"], steps=3)
