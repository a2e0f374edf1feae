"""The lr range test: suggestions against a closed form, divergence stop, exact restore."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import descend
from descend.lab.cli import main
from descend.lab.lrfind import lr_find, lr_schedule, smooth
from descend.lab.registry import canonical_optimizer, canonical_schedule

from .helpers import first_axes_when_saved

L = 50.0  # largest curvature: plain GD is stable iff lr < 2 / L = 0.04


class Quadratic(nn.Module):
    """f(w) = (L w1^2 + (L/10) w2^2) / 2, whatever the data."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), 2)


def quadratic_loss(out, y):
    return (0.5 * (L * out[:, 0] ** 2 + L / 10 * out[:, 1] ** 2)).mean()


def test_suggestions_respect_the_stability_limit_of_gradient_descent():
    model = Quadratic()
    data = (torch.zeros(64, 1), torch.zeros(64))
    opt = descend.SGD(model.parameters(), lr=0.1)
    result = lr_find(model, quadratic_loss, data, opt, start_lr=1e-4, end_lr=10, steps=200,
                     batch_size=8)
    limit = 2 / L
    assert result.stopped_early and "above 4x its minimum" in result.stop_reason
    assert limit <= result.lrs[-1] <= 10 * limit  # the sweep stops once GD diverges
    for name, lr in result.suggestions.items():
        assert 1e-3 * limit < lr < limit, name


def test_linear_and_exponential_sweeps_and_bias_corrected_smoothing():
    assert lr_schedule(1e-3, 1.0, 4, "exp") == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert lr_schedule(0.1, 0.4, 4, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert smooth([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="0 < start < end"):
        lr_schedule(1.0, 0.1, 10, "exp")
    with pytest.raises(ValueError, match="mode must be"):
        lr_schedule(0.1, 1.0, 10, "cubic")


@pytest.mark.parametrize("make_opt", [
    lambda p: descend.Adam(p, lr=1e-3),
    lambda p: descend.Adam(p, lr=1e-3, backend="reference"),
    lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
], ids=["descend-auto", "descend-reference", "torch-sgd"])
def test_model_optimizer_and_rng_are_restored_bit_for_bit(make_opt):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    opt = make_opt(model.parameters())
    x, y = torch.randn(200, 10), torch.randint(0, 3, (200,))
    for _ in range(3):  # some optimizer state to restore
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = opt.state_dict()
    snapshot = {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                for i, s in state["state"].items()}
    lrs = [g["lr"] for g in opt.param_groups]
    rng = torch.get_rng_state()
    result = lr_find(model, nn.functional.cross_entropy, (x, y), opt, steps=30, batch_size=16)
    assert len(result.lrs) > 5
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert [g["lr"] for g in opt.param_groups] == lrs
    after = opt.state_dict()["state"]
    for i, s in snapshot.items():
        for k, v in s.items():
            assert torch.equal(after[i][k], v) if torch.is_tensor(v) else after[i][k] == v
    assert torch.equal(torch.get_rng_state(), rng)


def test_emitted_schedule_is_valid_for_compare():
    model = Quadratic()
    opt = descend.SGD(model.parameters(), lr=0.1)
    result = lr_find(model, quadratic_loss, (torch.zeros(32, 1), torch.zeros(32)), opt,
                     start_lr=1e-4, end_lr=10, steps=100, batch_size=8)
    args = result.schedule_args("sgd", "warmup-cosine")
    assert args[0] == "--optimizers" and args[2] == "--schedule"
    assert canonical_optimizer(args[1]).startswith("sgd:lr=")
    assert canonical_schedule(args[3]) == "warmup-cosine"


def test_lr_find_cli(tmp_path, capsys):
    assert main(["lr-find", "--task", "digits-logreg", "--optimizer", "sgd", "--steps", "60",
                 "--start", "1e-4", "--end", "100", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["suggestions"]) == {"steepest", "minimum/10", "valley"}
    assert out["compare_args"][0] == "--optimizers"
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000


def test_find_lr_from_python_writes_what_the_cli_prints(tmp_path):
    from descend.lab.lrfind import find_lr

    report = find_lr("digits-logreg", "sgd:lr=0.1", start=1e-4, end=100, steps=40,
                     out=tmp_path, schedule="warmup-cosine")
    assert report.plot == tmp_path / "lr_find.png" and report.plot.stat().st_size > 10_000
    saved = json.loads(report.json.read_text())
    assert saved["optimizer"] == "sgd:lr=0.1" and len(saved["lrs"]) == len(report.result.lrs)
    assert report.compare_args[:1] == ["--optimizers"] and "warmup-cosine" in report.compare_args
    with pytest.raises(ValueError, match="rule must be one of valley"):
        find_lr("digits-logreg", rule="best", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_valley_lies_on_the_steep_descent_not_on_a_slowly_sinking_plateau():
    import numpy as np

    from descend.lab.lrfind import steep_stretch, suggest

    lrs = list(np.logspace(-7, 1, 200))
    logs = np.log10(lrs)
    # a plateau that sinks by noise-level amounts for 6 decades, a steep fall between 1e-1
    # and 1, then divergence: fastai's longest-decreasing-run rule picked the plateau
    loss = 2.3 - 0.002 * (logs + 7) - 0.8 / (1 + np.exp(-(logs + 0.5) * 8)) + \
        np.where(logs > 0.3, (logs - 0.3) * 5, 0)
    s = suggest(lrs, list(loss))
    start, steepest, end = steep_stretch(lrs, loss)
    assert 0.05 < lrs[start] < lrs[steepest] < lrs[end] < 2
    for name in ("steepest", "valley"):
        assert 0.05 < s[name] < 2, (name, s)


def test_smoothing_has_no_lag_and_the_plot_shows_the_raw_loss(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from descend.lab import lrfind

    step = [2.0] * 50 + [1.0] * 50
    smoothed = lrfind.zero_lag(step, 4)
    assert smoothed[45] > 1.7 and smoothed[55] < 1.3  # the fall stays where it happened
    assert abs(smoothed.index(min(smoothed, key=lambda v: abs(v - 1.5))) - 50) <= 1
    causal = lrfind.smooth(step, 0.98)
    assert causal[60] > 1.7  # fastai's causal average is still near 2 ten steps later
    model = Quadratic()
    opt = descend.SGD(model.parameters(), lr=0.1)
    result = lr_find(model, quadratic_loss, (torch.zeros(32, 1), torch.zeros(32)), opt,
                     start_lr=1e-4, end_lr=10, steps=100, batch_size=8)
    limits = first_axes_when_saved(monkeypatch, lambda ax: {"y": ax.get_ylim()})
    lrfind.plot(result, tmp_path / "f.png")
    assert limits["y"][0] <= min(result.losses)


def test_help_and_output_explain_the_sweep_and_the_peak(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["lr-find", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--steps mini-batches (default 100)" in text and "a few hundred" not in text
    assert main(["lr-find", "--task", "digits-logreg", "--optimizer", "sgd", "--steps", "60",
                 "--start", "1e-4", "--end", "100", "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "peaks at the suggestion itself" in out and "fit_one_cycle" in out
    report = json.loads((tmp_path / "lr_find.json").read_text())
    lr = report["suggestions"]["valley"]
    assert report["compare_args"][1] == f"sgd:lr={float(f'{lr:.3g}'):g}"
