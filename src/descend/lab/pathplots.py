"""Pictures of optimizer paths: static PNG, animated GIF (MP4 with ffmpeg), 3-D view, JSON."""

from __future__ import annotations

import math
import shutil
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import animation  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from .paths import PathResult, PathsResult  # noqa: E402
from .records import write_json_atomic  # noqa: E402

COLORS = [f"C{i}" for i in range(10)]


def _grid(result: PathsResult, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = result.surface.box
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys)
    pts = torch.tensor(np.stack([X, Y], -1), dtype=torch.float64)
    with torch.no_grad():
        Z = result.surface(pts).numpy()
    return X, Y, Z


def _label(path: PathResult) -> str:
    lr = "" if path.lr is None or "lr=" in path.label else f" (lr={path.lr:g})"
    return path.label + lr + (" — diverged" if path.diverged else "")


def _caption(fig: plt.Figure, result: PathsResult) -> None:
    fig.text(0.01, 0.005, textwrap.fill(result.caption(), 160), fontsize=7, va="bottom",
             color="#444")


def _contour(ax: plt.Axes, result: PathsResult) -> None:
    X, Y, Z = _grid(result)
    surf = result.surface
    if surf.log_levels:
        zmin = max(Z.min(), 1e-3) if Z.min() > 0 else 1e-3
        levels = np.logspace(math.log10(zmin), math.log10(Z.max()), 30)
        ax.contourf(X, Y, np.maximum(Z, zmin), levels=levels, norm=LogNorm(), cmap="Greys_r",
                    alpha=0.55)
        ax.contour(X, Y, np.maximum(Z, zmin), levels=levels, norm=LogNorm(), colors="k",
                   linewidths=0.3, alpha=0.5)
    else:
        ax.contourf(X, Y, Z, levels=30, cmap="Greys_r", alpha=0.55)
        ax.contour(X, Y, Z, levels=30, colors="k", linewidths=0.3, alpha=0.5)
    for m in surf.minima:
        ax.plot(*m, marker="*", color="gold", markersize=14, markeredgecolor="k", zorder=5)
    ax.plot(*result.start, marker="o", color="white", markeredgecolor="k", markersize=8,
            zorder=5)
    (x0, x1), (y0, y1) = surf.box
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(surf.name)


def _draw_path_2d(ax: plt.Axes, path: PathResult, color: str, upto: int | None = None) -> None:
    pts = np.asarray(path.points[: upto if upto is not None else len(path.points)])
    if len(pts) == 0:
        return
    ax.plot(pts[:, 0], pts[:, 1], "-", color=color, lw=1.4, label=_label(path))
    ax.plot(pts[-1, 0], pts[-1, 1], "o", color=color, markersize=4)
    if path.diverged and (upto is None or upto >= len(path.points)):
        ax.plot(pts[-1, 0], pts[-1, 1], "x", color=color, markersize=12, mew=3)


def _loss_panel(ax: plt.Axes, result: PathsResult, upto: int | None = None) -> None:
    # Plot the gap to the best known minimum, so that log scales work for surfaces whose
    # minimum is not 0; surfaces without a minimum (the saddle) get a symmetric log scale.
    offset = result.surface.min_value if result.surface.minima else 0.0
    gaps = []
    for path, color in zip(result.paths, COLORS):
        losses = path.losses[: upto if upto is not None else len(path.losses)]
        values = np.asarray(losses) - offset
        gaps.extend(values.tolist())
        ax.plot(range(len(values)), values, color=color, lw=1.3)
        if path.diverged and (upto is None or upto >= len(path.losses)):
            ax.plot(len(values) - 1, values[-1], "x", color=color, markersize=10, mew=2)
    if gaps and min(gaps) > 0:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlim(0, result.steps)
    ax.set_xlabel("step")
    ax.set_ylabel("f − f_min" if result.surface.minima else "f")
    ax.set_title("loss against step")
    ax.grid(alpha=0.3)


def _curve_1d(ax: plt.Axes, result: PathsResult, path: PathResult, color: str,
              upto: int | None = None) -> None:
    surf = result.surface
    xs = np.linspace(*surf.box[0], 400)
    with torch.no_grad():
        ys = surf(torch.tensor(xs[:, None], dtype=torch.float64)).numpy()
    ax.plot(xs, ys, color="k", lw=1.2)
    pts = np.asarray(path.points[: upto if upto is not None else len(path.points)])[:, 0]
    vals = np.asarray(path.losses[: len(pts)])
    shade = np.linspace(0.25, 1.0, len(pts))
    ax.scatter(pts, vals, c=[(*matplotlib.colors.to_rgb(color), a) for a in shade], s=22,
               zorder=4, edgecolors="none")
    ax.plot(pts, vals, color=color, lw=0.6, alpha=0.6)
    for m in surf.minima:
        ax.plot(m[0], surf.value(m), marker="*", color="gold", markersize=12,
                markeredgecolor="k", zorder=5)
    ax.set_xlim(*surf.box[0])
    ax.set_title(_label(path), fontsize=9)


def draw_png(result: PathsResult, path: str | Path) -> Path:
    """Contour plot with one coloured path per optimizer, start and minima marked, and a
    side panel of loss against step; for 1-D surfaces, the curve with each path's points."""
    path = Path(path)
    if result.surface.dim == 1:
        n = len(result.paths)
        cols = min(n, 3)
        rows = math.ceil(n / cols)
        fig = plt.figure(figsize=(4.2 * cols + 4.2, 3.4 * rows + 0.6))
        grid = fig.add_gridspec(rows, cols + 1)
        for i, (p, color) in enumerate(zip(result.paths, COLORS)):
            _curve_1d(fig.add_subplot(grid[i // cols, i % cols]), result, p, color)
        _loss_panel(fig.add_subplot(grid[:, cols]), result)
    else:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(13, 5.6),
                                       gridspec_kw={"width_ratios": [1.35, 1]})
        _contour(ax, result)
        for p, color in zip(result.paths, COLORS):
            _draw_path_2d(ax, p, color)
        ax.legend(fontsize=8, loc="upper right")
        _loss_panel(side, result)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _caption(fig, result)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def animate(result: PathsResult, path: str | Path, frames: int = 60, fps: int = 12) -> Path:
    """Paths growing together. Writes a GIF (Pillow); a path ending in .mp4 uses ffmpeg."""
    path = Path(path)
    if path.suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise RuntimeError("MP4 output needs ffmpeg on the PATH; use a .gif path instead")
    longest = max(len(p.points) for p in result.paths)
    marks = sorted({max(1, round(i * longest / frames)) for i in range(1, frames + 1)})
    if result.surface.dim == 1:
        n = len(result.paths)
        fig, axes = plt.subplots(1, n + 1, figsize=(3.6 * (n + 1), 3.6), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.8),
                                 gridspec_kw={"width_ratios": [1.35, 1]})

    def frame(k: int) -> list:
        for ax in axes:
            ax.clear()
        if result.surface.dim == 1:
            for ax, p, color in zip(axes, result.paths, COLORS):
                _curve_1d(ax, result, p, color, upto=k)
        else:
            _contour(axes[0], result)
            for p, color in zip(result.paths, COLORS):
                _draw_path_2d(axes[0], p, color, upto=k)
            axes[0].legend(fontsize=7, loc="upper right")
        _loss_panel(axes[-1], result, upto=k)
        axes[-1].set_title(f"loss against step (step {k - 1})")
        return []

    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _caption(fig, result)
    anim = animation.FuncAnimation(fig, frame, frames=marks, blit=False)
    writer = (animation.FFMpegWriter(fps=fps) if path.suffix == ".mp4"
              else animation.PillowWriter(fps=fps))
    anim.save(path, writer=writer, dpi=70)
    plt.close(fig)
    return path


def draw_3d(result: PathsResult, path: str | Path) -> Path:
    """The surface in 3-D with the paths lying on it (2-D surfaces only)."""
    if result.surface.dim != 2:
        raise ValueError("a 3-D view needs a 2-D surface")
    path = Path(path)
    X, Y, Z = _grid(result, 120)
    fig = plt.figure(figsize=(8, 6.4))
    ax = fig.add_subplot(projection="3d")
    Zs = np.log1p(Z - Z.min()) if result.surface.log_levels else Z
    ax.plot_surface(X, Y, Zs, cmap="viridis", alpha=0.6, linewidth=0)
    for p, color in zip(result.paths, COLORS):
        pts = np.asarray(p.points)
        zs = np.asarray(p.losses)
        zs = np.log1p(zs - Z.min()) if result.surface.log_levels else zs
        ax.plot(pts[:, 0], pts[:, 1], zs, color=color, lw=2, label=_label(p))
    ax.set_zlabel("log(1 + f − min)" if result.surface.log_levels else "f")
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _caption(fig, result)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_json(result: PathsResult, path: str | Path) -> Path:
    return write_json_atomic(Path(path), result.to_json(), indent=1)


def save(result: PathsResult, out: Path, *, gif: bool = False, mp4: bool = False,
         three_d: bool = False) -> list[Path]:
    """Every picture `descend paths` writes into `out`: paths.png and paths.json, and on
    request paths.gif, paths.mp4 and paths3d.png."""
    files = [draw_png(result, out / "paths.png"), write_json(result, out / "paths.json")]
    if gif:
        files.append(animate(result, out / "paths.gif"))
    if mp4:
        files.append(animate(result, out / "paths.mp4"))
    if three_d:
        files.append(draw_3d(result, out / "paths3d.png"))
    return files
