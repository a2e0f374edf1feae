"""Loss surfaces and optimizer paths."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import descend
from descend.lab import pathplots
from descend.lab.cli import main
from descend.lab.paths import noise_std, paths
from descend.lab.surfaces import SURFACES, Surface

from .helpers import first_axes_when_saved


@pytest.mark.parametrize("surface", list(SURFACES.values()), ids=list(SURFACES))
def test_gradient_matches_finite_differences(surface):
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        point = torch.tensor([lo + (hi - lo) * float(torch.rand(1, generator=gen))
                              for lo, hi in surface.box], dtype=torch.float64)
        grad = surface.gradient(point)
        h = 1e-6
        for i in range(surface.dim):
            e = torch.zeros(surface.dim, dtype=torch.float64)
            e[i] = h
            fd = (surface.value(point + e) - surface.value(point - e)) / (2 * h)
            assert grad[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("surface", [s for s in SURFACES.values() if s.minima],
                         ids=[n for n, s in SURFACES.items() if s.minima])
def test_minima_are_minima(surface):
    raw = ([[1.0], [-1.0]] if surface.dim == 1 else
           [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.7, 0.7], [-0.7, 0.7]])
    directions = [torch.tensor(d, dtype=torch.float64) for d in raw]
    for m in surface.minima:
        m = torch.tensor(m, dtype=torch.float64)
        assert surface.gradient(m).abs().max() < 1e-6
        for d in directions:
            assert surface.value(m + 1e-3 * d) > surface.value(m)


def test_plain_gd_on_the_parabola_follows_the_closed_form():
    lr, x0 = 0.1, 4.0
    result = paths("parabola", ["sgd:lr=0.1"], steps=30, start=[x0], regime="full", noise=5.0)
    xs = [p[0] for p in result.paths[0].points]
    assert result.noise_std == 0.0  # full batch: the noise level does not apply
    for t, x in enumerate(xs):
        assert x == pytest.approx((1 - 2 * lr) ** t * x0, rel=1e-12, abs=1e-300)


def test_paths_are_deterministic_for_a_seed_and_noise_follows_the_regime():
    kwargs = dict(steps=50, noise=1.0, regime="minibatch", batch_size=4)
    a = paths("ill-conditioned", ["sgd:lr=0.05", "adam:lr=0.1"], seed=3, **kwargs)
    b = paths("ill-conditioned", ["sgd:lr=0.05", "adam:lr=0.1"], seed=3, **kwargs)
    c = paths("ill-conditioned", ["sgd:lr=0.05", "adam:lr=0.1"], seed=4, **kwargs)
    assert [p.points for p in a.paths] == [p.points for p in b.paths]
    assert [p.points for p in a.paths] != [p.points for p in c.paths]
    assert noise_std(1.0, "minibatch", 4) == 0.5 and noise_std(1.0, "sgd", 4) == 1.0
    assert "N(0, 0.5²)" in a.caption()


def test_divergence_is_detected_and_reported():
    result = paths("parabola", ["sgd:lr=2", "sgd:lr=0.1"], steps=100)
    bad, good = result.paths
    assert bad.diverged and bad.diverged_at is not None and bad.diverged_at < 100
    assert not good.diverged and good.steps_to_tolerance is not None


def test_caption_discloses_clipping_and_tuning():
    result = paths("rosenbrock", ["sgd", "adam"], steps=20, clip=1.0, tune_lr=True)
    caption = result.caption()
    assert "gradients clipped to norm 1" in caption and "lr tuned per optimizer" in caption
    assert all(len(p.lr_trials) == 7 for p in result.paths)
    plain = paths("rosenbrock", ["adam"], steps=5).caption()
    assert "no clipping" in plain and "not tuned" in plain


def test_users_surface_and_own_recipe():
    surf = Surface.from_callable(lambda p: (p[..., 0] - 1) ** 2 + 3 * (p[..., 1] + 2) ** 2,
                                 box=[(-4, 4), (-4, 4)], start=[3, 3], minima=[(1, -2)])
    rule = descend.chain(descend.rules.scale_by_adam(), descend.rules.scale_by_learning_rate())
    mine = lambda params: descend.RuleOptimizer(params, rule, lr=0.1, betas=(0.9, 0.99),  # noqa: E731
                                                eps=1e-8)
    result = paths(surf, {"my adam": mine, "sgd": "sgd:lr=0.1"}, steps=300)
    assert all(p.final_distance < 1e-2 for p in result.paths)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        Surface.from_callable(lambda p: p.sum(-1), box=[(0, 1)] * 3, start=[0, 0, 0])


def test_png_and_gif_are_produced_and_non_trivial(tmp_path):
    result = paths("himmelblau", ["sgd:lr=0.01", "momentum:lr=0.01", "adam:lr=0.1"],
                   steps=40, noise=2.0, regime="sgd")
    png = pathplots.draw_png(result, tmp_path / "p.png")
    gif = pathplots.animate(result, tmp_path / "p.gif", frames=12)
    with Image.open(png) as im:
        assert im.size[0] >= 1000 and im.size[1] >= 400
        assert sum(1 for c in im.convert("L").histogram() if c) > 50
    with Image.open(gif) as im:
        assert im.n_frames == 12 and im.size[0] >= 500
    one_d = paths("double-well", ["sgd:lr=0.02", "adam:lr=0.1"], steps=30)
    with Image.open(pathplots.draw_png(one_d, tmp_path / "one.png")) as im:
        assert im.size[0] >= 800
    data = json.loads(pathplots.write_json(result, tmp_path / "p.json").read_text())
    assert len(data["paths"]) == 3 and len(data["paths"][0]["points"]) == 41


def test_paths_cli(tmp_path, capsys):
    args = ["paths", "--surface", "saddle", "--optimizers", "sgd:lr=0.05,adam:lr=0.05",
            "--steps", "30", "--out", str(tmp_path), "--json", "--3d"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["paths"]) == 2 and (tmp_path / "paths3d.png").exists()
    assert main(["paths", "--surface", "everest"]) == 2
    assert "unknown surface 'everest'; available: parabola" in capsys.readouterr().err
    assert main(["paths", "--surface", "quadratic", "--start", "1"]) == 2
    assert "start must have 2 coordinate(s)" in capsys.readouterr().err


def test_coinciding_paths_are_named_and_drawn_apart(tmp_path):
    # EMA momentum at lr and heavy-ball at lr (1 - beta) are the same method.
    result = paths("rosenbrock", ["momentum:lr=0.01", "heavyball:lr=0.001", "adam:lr=0.03"],
                   steps=60)
    assert pathplots.same_paths(result) == {1: 0}
    assert "= momentum:lr=0.01's path" in pathplots._label(result.paths[1], result.paths[0])
    styles = pathplots._styles(result)
    assert styles[0]["linestyle"] != styles[1]["linestyle"]
    assert styles[0]["markevery"] != styles[1]["markevery"]  # markers at other steps


def test_gif_frames_are_large_small_on_disk_and_progress_is_reported(tmp_path):
    result = paths("rosenbrock", ["sgd:lr=0.003", "momentum:lr=0.01", "heavyball:lr=0.001",
                                  "adam:lr=0.03"], steps=200)
    seen = []
    gif = pathplots.animate(result, tmp_path / "p.gif", frames=30,
                            progress=lambda what, done, total: seen.append((done, total)))
    assert seen[-1] == (30, 30)
    with Image.open(gif) as im:
        assert im.size == (1200, 560) and im.n_frames == 30
    assert gif.stat().st_size < 600_000  # unchanged pixels are transparent: cheap frames


def test_3d_view_has_labelled_axes_and_keeps_diverged_paths_in_the_box(tmp_path, monkeypatch):
    result = paths("rosenbrock", ["sgd:lr=0.01", "adam:lr=0.03"], steps=50)
    assert result.paths[0].diverged
    captured = first_axes_when_saved(monkeypatch, lambda ax: dict(
        x=ax.get_xlabel(), y=ax.get_ylabel(), z=ax.get_zlabel(), xlim=ax.get_xlim()))
    pathplots.draw_3d(result, tmp_path / "p3.png")
    assert (captured["x"], captured["y"]) == ("x", "y") and "f" in captured["z"]
    assert captured["xlim"] == pytest.approx((-2.0, 2.0))


def test_paths_command_reports_progress_of_every_part(tmp_path, monkeypatch):
    import descend.lab.console as console

    seen = []

    class Recorder(console.StepBar):
        def update(self, what, done, total):
            seen.append((what, done, total))
            super().update(what, done, total)

    monkeypatch.setattr(console, "StepBar", Recorder)
    assert main(["paths", "--surface", "quadratic", "--optimizers", "sgd,adam", "--tune-lr",
                 "--steps", "20", "--animate", "--3d", "--out", str(tmp_path)]) == 0
    whats = [w for w, _, _ in seen]
    assert ("paths: adam lr=0.0316", 14, 14) in seen  # 2 optimizers x 7 lr trials
    assert any(w == "drawing frames" for w in whats)
    assert whats[-1] == "drawing paths3d.png"
