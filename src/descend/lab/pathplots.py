"""Pictures of optimizer paths: static PNG, animated GIF (MP4 with ffmpeg), 3-D view, JSON.

Paths that coincide (EMA momentum and heavy-ball momentum trace the same points when
their lrs differ by 1/(1 - beta)) stay visible: every path has its own colour, dash
pattern and markers at its own offsets, and the legend says which path a path equals.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from . import plotstyle  # noqa: E402
from .paths import PathResult, PathsResult  # noqa: E402
from .records import write_json_atomic  # noqa: E402

Progress = Callable[[str, int, int], None]  # what, done, total

# The animation's size: 1200 x 560 pixels, fonts as in the static picture.
FRAME_SIZE = (12.0, 5.6)
FRAME_DPI = 100
# Fixed margins (fractions of the figure) leave room for the suptitle-free panel titles at
# the top and for the x labels above the caption at the bottom, whatever a frame shows.
MARGINS_2D = dict(left=0.055, right=0.985, top=0.93, bottom=0.2, wspace=0.2)


def _grid(result: PathsResult, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = result.surface.box
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys)
    pts = torch.tensor(np.stack([X, Y], -1), dtype=torch.float64)
    with torch.no_grad():
        Z = result.surface(pts).numpy()
    return X, Y, Z


def same_paths(result: PathsResult) -> dict[int, int]:
    """index -> the earlier path it coincides with (every point within a millionth of the
    view's width)."""
    span = max(hi - lo for lo, hi in result.surface.box)
    return plotstyle.coinciding({i: p.points for i, p in enumerate(result.paths)},
                                rtol=0.0, atol=1e-6 * span)


def _twins(result: PathsResult) -> dict[int, PathResult]:
    """index -> the earlier path it coincides with, as the path itself."""
    return {i: result.paths[j] for i, j in same_paths(result).items()}


def _label(path: PathResult, twin: PathResult | None = None) -> str:
    lr = "" if path.lr is None or "lr=" in path.label else f" (lr={path.lr:g})"
    text = path.label + lr + (" — diverged" if path.diverged else "")
    return text + (f" = {twin.label}'s path" if twin is not None else "")


def _styles(result: PathsResult) -> list[dict[str, Any]]:
    n = len(result.paths)
    longest = max(len(p.points) for p in result.paths)
    return [plotstyle.style(i, longest, n, markers=12) for i in range(n)]


def _caption(fig: plt.Figure, result: PathsResult, twins: bool, width: int = 170) -> None:
    text = result.caption()
    if twins:
        text += ("; paths marked '= X's path' coincide with X's (drawn with their own "
                 "dashes and markers)")
    fig.text(0.01, 0.01, textwrap.fill(text, width), fontsize=7.5, va="bottom", color="#333")


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


def _gaps(result: PathsResult, path: PathResult) -> np.ndarray:
    # The gap to the best known minimum, so that log scales work for surfaces whose
    # minimum is not 0; surfaces without a minimum (the saddle) plot f itself.
    offset = result.surface.min_value if result.surface.minima else 0.0
    return np.asarray(path.losses, dtype=float) - offset


def _loss_limits(result: PathsResult) -> tuple[str, tuple[float, float]]:
    """The loss panel's scale and y-limits, fixed for every frame: the range of the paths
    that did not diverge (a diverged path leaves through the top, marked)."""
    keep = [_gaps(result, p) for p in result.paths if not p.diverged] or \
        [_gaps(result, p)[:1] for p in result.paths]
    values = np.concatenate(keep)
    values = values[np.isfinite(values)]
    if len(values) and values.min() > 0:
        lo, hi = values.min(), values.max()
        return "log", (lo / 3, hi * 30)
    lo, hi = (values.min(), values.max()) if len(values) else (-1.0, 1.0)
    pad = 0.1 * (hi - lo or 1.0)
    return "symlog", (lo - pad, hi + pad)


def _loss_axes(ax: plt.Axes, result: PathsResult) -> tuple[float, float]:
    scale, (lo, hi) = _loss_limits(result)
    if scale == "log":
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_ylim(lo, hi)
    ax.set_xlim(0, result.steps)
    ax.set_xlabel("step")
    ax.set_ylabel("f − f_min" if result.surface.minima else "f")
    ax.set_title("loss against step")
    ax.grid(alpha=0.3)
    return lo, hi


def _clipped(values: np.ndarray, hi: float) -> np.ndarray:
    out = values.copy()
    out[~np.isfinite(out) | (out > hi)] = hi
    return out


def _loss_panel(ax: plt.Axes, result: PathsResult, styles: list[dict[str, Any]],
                legend: bool = False) -> None:
    """Loss against step. With `legend` (the 1-D figure, whose paths sit in panels of their
    own), each curve is named, and one that equals another is said to (two lrs whose
    factors 1 - 2 lr have the same size trace the same loss on x²)."""
    _, hi = _loss_axes(ax, result)
    labels = [_label(p) for p in result.paths]
    same = plotstyle.coinciding({lab: _gaps(result, p) for lab, p in zip(labels, result.paths)})
    for path, st, lab in zip(result.paths, styles, labels):
        values = _gaps(result, path)
        ax.plot(range(len(values)), _clipped(values, hi), lw=1.3,
                label=plotstyle.legend_label(lab, same), **st)
        if path.diverged:
            ax.plot(len(values) - 1, hi, "x", color=st["color"], markersize=10, mew=2,
                    clip_on=False)
    if legend:
        ax.legend(fontsize=7, loc="best")


def _curve_1d(ax: plt.Axes, result: PathsResult, path: PathResult, color: str,
              title: str) -> None:
    surf = result.surface
    xs = np.linspace(*surf.box[0], 400)
    with torch.no_grad():
        ys = surf(torch.tensor(xs[:, None], dtype=torch.float64)).numpy()
    ax.plot(xs, ys, color="k", lw=1.2)
    for m in surf.minima:
        ax.plot(m[0], surf.value(m), marker="*", color="gold", markersize=12,
                markeredgecolor="k", zorder=5)
    ax.set_xlim(*surf.box[0])
    # The curve's own range: points that leave the view go out of the picture (the loss
    # panel shows how far), instead of squashing the curve flat.
    pad = 0.05 * (ys.max() - ys.min() or 1.0)
    ax.set_ylim(ys.min() - pad, ys.max() + pad)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title(title, fontsize=9)


def _points_1d(ax: plt.Axes, result: PathsResult, path: PathResult, color: str,
               upto: int | None = None) -> None:
    pts = np.asarray(path.points[: upto if upto is not None else len(path.points)])[:, 0]
    vals = np.asarray(path.losses[: len(pts)])
    shade = np.linspace(0.25, 1.0, len(pts))
    ax.scatter(pts, vals, c=[(*matplotlib.colors.to_rgb(color), a) for a in shade], s=22,
               zorder=4, edgecolors="none")
    ax.plot(pts, vals, color=color, lw=0.6, alpha=0.6)


def draw_png(result: PathsResult, path: str | Path) -> Path:
    """Contour plot with one path per optimizer, start and minima marked, and a side panel
    of loss against step; for 1-D surfaces, the curve with each path's points."""
    path = Path(path)
    styles = _styles(result)
    twin = _twins(result)
    if result.surface.dim == 1:
        n = len(result.paths)
        cols = min(n, 3)
        rows = math.ceil(n / cols)
        fig = plt.figure(figsize=(4.2 * cols + 4.2, 3.4 * rows + 0.9))
        grid = fig.add_gridspec(rows, cols + 1)
        for i, (p, st) in enumerate(zip(result.paths, styles)):
            ax = fig.add_subplot(grid[i // cols, i % cols])
            _curve_1d(ax, result, p, st["color"], _label(p, twin.get(i)))
            _points_1d(ax, result, p, st["color"])
        _loss_panel(fig.add_subplot(grid[:, cols]), result, styles, legend=True)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(13, 5.8),
                                       gridspec_kw={"width_ratios": [1.35, 1]})
        _contour(ax, result)
        for i, (p, st) in enumerate(zip(result.paths, styles)):
            pts = np.asarray(p.points)
            ax.plot(pts[:, 0], pts[:, 1], lw=1.4, label=_label(p, twin.get(i)), **st)
            if p.diverged:
                ax.plot(pts[-1, 0], pts[-1, 1], "x", color=st["color"], markersize=12, mew=3)
        ax.legend(fontsize=8, loc="upper right")
        _loss_panel(side, result, styles)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    _caption(fig, result, bool(twin))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class _Frames:
    """The animation's figure. Everything that does not move (contours, curve, axes,
    legend, caption) is drawn once and kept as a bitmap; each frame restores it and draws
    only the artists that move (Matplotlib's blitting), several times faster than
    drawing the contours again for every frame."""

    def __init__(self, result: PathsResult) -> None:
        self.result = result
        self.styles = _styles(result)
        twin = _twins(result)
        n = len(result.paths)
        if result.surface.dim == 1:
            self.fig, axes = plt.subplots(1, n + 1, figsize=(3.4 * (n + 1), 4.2),
                                          squeeze=False)
            self.axes = list(axes[0])
            for i, (ax, p, st) in enumerate(zip(self.axes, result.paths, self.styles)):
                _curve_1d(ax, result, p, st["color"], _label(p, twin.get(i)))
            self.fig.subplots_adjust(left=0.05, right=0.99, top=0.9, bottom=0.27,
                                     wspace=0.42)
        else:
            self.fig, axes = plt.subplots(1, 2, figsize=FRAME_SIZE,
                                          gridspec_kw={"width_ratios": [1.35, 1]})
            self.axes = list(axes)
            _contour(self.axes[0], result)
            self.fig.subplots_adjust(**MARGINS_2D)
        self.loss_ax = self.axes[-1]
        self.lo, self.hi = _loss_axes(self.loss_ax, result)
        self.paths2d, self.heads, self.losses, self.crosses = [], [], [], []
        self.points1d: list[Any] = []
        for i, (p, st) in enumerate(zip(result.paths, self.styles)):
            if result.surface.dim == 2:
                (line,) = self.axes[0].plot([], [], lw=1.4, label=_label(p, twin.get(i)), **st)
                (head,) = self.axes[0].plot([], [], "o", color=st["color"], markersize=4)
                self.paths2d.append(line)
                self.heads.append(head)
            else:
                ax = self.axes[i]
                self.points1d.append((ax.scatter([], [], s=22, zorder=4, edgecolors="none"),
                                      ax.plot([], [], color=st["color"], lw=0.6,
                                              alpha=0.6)[0]))
            (loss,) = self.loss_ax.plot([], [], lw=1.3, label=_label(p), **st)
            (cross,) = self.loss_ax.plot([], [], "x", color=st["color"], markersize=10, mew=2,
                                         clip_on=False)
            self.losses.append(loss)
            self.crosses.append(cross)
        if result.surface.dim == 2:
            self.axes[0].legend(fontsize=8, loc="upper right")
        else:  # the curves' panels are apart: name the loss curves
            self.loss_ax.legend(fontsize=7, loc="lower left")
        _caption(self.fig, result, bool(twin), width=190)
        self.loss_ax.set_title("loss against step")
        self.counter = self.loss_ax.text(0.98, 0.97, "", transform=self.loss_ax.transAxes,
                                         ha="right", va="top", fontsize=9,
                                         bbox=dict(fc="white", ec="0.7", alpha=0.9))
        self.moving = [a for group in (self.paths2d, self.heads, self.losses, self.crosses)
                       for a in group] + [a for pair in self.points1d for a in pair]
        self.moving.append(self.counter)
        for artist in self.moving:
            artist.set_animated(True)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def show(self, k: int) -> None:
        for i, p in enumerate(self.result.paths):
            pts = np.asarray(p.points[:k])
            values = _clipped(_gaps(self.result, p)[:k], self.hi)
            self.losses[i].set_data(range(len(values)), values)
            ended = p.diverged and k >= len(p.points)
            self.crosses[i].set_data([len(values) - 1] if ended else [],
                                     [self.hi] if ended else [])
            if self.result.surface.dim == 2:
                self.paths2d[i].set_data(pts[:, 0], pts[:, 1])
                self.heads[i].set_data(pts[-1:, 0], pts[-1:, 1])
            else:
                scatter, line = self.points1d[i]
                vals = np.asarray(p.losses[: len(pts)])
                color = matplotlib.colors.to_rgb(self.styles[i]["color"])
                scatter.set_offsets(np.column_stack([pts[:, 0], vals]))
                scatter.set_facecolors([(*color, a) for a in np.linspace(0.25, 1, len(pts))])
                line.set_data(pts[:, 0], vals)
        self.counter.set_text(f"step {k - 1} of {self.result.steps}")

    def pixels(self) -> np.ndarray:
        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        for artist in self.moving:
            artist.axes.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _marks(result: PathsResult, frames: int) -> list[int]:
    longest = max(len(p.points) for p in result.paths)
    return sorted({max(1, round(i * longest / frames)) for i in range(1, frames + 1)})


def animate(result: PathsResult, path: str | Path, frames: int = 60, fps: int = 12,
            progress: Progress | None = None) -> Path:
    """Paths growing together. Writes a GIF (Pillow), or an MP4 (ffmpeg) for a path
    ending in .mp4. Frames are 1200 x 560 pixels; the GIF shares one palette across
    frames, so that Pillow stores each frame as its difference from the one before."""
    path = Path(path)
    if path.suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise RuntimeError("MP4 output needs ffmpeg on the PATH; use a .gif path instead")
    marks = _marks(result, frames)
    drawn = _Frames(result)
    images = []
    try:
        for n, k in enumerate(marks, start=1):
            drawn.show(k)
            images.append(drawn.pixels())
            if progress is not None:
                progress("frames", n, len(marks))
    finally:
        plt.close(drawn.fig)
    if path.suffix == ".mp4":
        _write_mp4(images, path, fps)
    else:
        _write_gif(images, path, fps)
    return path


def _write_gif(images: list[np.ndarray], path: Path, fps: int) -> None:
    """One palette for every frame (from the last frame, which holds every colour the
    animation uses), and every pixel that did not change since the previous frame written
    as transparent: long runs of one index, which GIF's LZW stores in a few bytes. Only
    the growing paths and the step counter cost space."""
    from PIL import Image

    palette = Image.fromarray(images[-1]).quantize(colors=255, method=Image.Quantize.MAXCOVERAGE)
    indexed = [np.asarray(Image.fromarray(a).quantize(palette=palette, dither=Image.Dither.NONE))
               for a in images]
    clear = 255  # the palette's unused last entry
    frames = []
    for k, arr in enumerate(indexed):
        if k:
            arr = np.where(arr == indexed[k - 1], clear, arr).astype(np.uint8)
        frame = Image.fromarray(arr, mode="P")
        frame.putpalette(palette.getpalette()[: 3 * 256])
        frames.append(frame)
    durations = [int(1000 / fps)] * (len(frames) - 1) + [2000]  # linger on the result
    tmp = path.with_name(f".{path.name}.tmp")
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                   duration=durations, loop=0, optimize=False, disposal=1,
                   transparency=clear)
    tmp.replace(path)


def _write_mp4(images: list[np.ndarray], path: Path, fps: int) -> None:
    from matplotlib import animation

    h, w, _ = images[0].shape
    fig = plt.figure(figsize=(w / FRAME_DPI, h / FRAME_DPI), dpi=FRAME_DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    shown = ax.imshow(images[0])

    def frame(i: int) -> list:
        shown.set_data(images[i])
        return [shown]

    anim = animation.FuncAnimation(fig, frame, frames=len(images), blit=False)
    anim.save(path, writer=animation.FFMpegWriter(fps=fps), dpi=FRAME_DPI)
    plt.close(fig)


def draw_3d(result: PathsResult, path: str | Path) -> Path:
    """The surface in 3-D with the paths lying on it (2-D surfaces only). A path that
    leaves the view box is drawn up to where it leaves, and marked there."""
    if result.surface.dim != 2:
        raise ValueError("a 3-D view needs a 2-D surface")
    path = Path(path)
    X, Y, Z = _grid(result, 120)
    log = result.surface.log_levels
    transform = (lambda z: np.log1p(np.maximum(z - Z.min(), 0))) if log else (lambda z: z)
    fig = plt.figure(figsize=(9, 7.2))
    # Paths lie on the surface and would be hidden under it half of the time: draw them
    # after (above) it, whatever their depth.
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    Zs = transform(Z)
    ax.plot_surface(X, Y, Zs, cmap="viridis", alpha=0.5, linewidth=0, zorder=1)
    (x0, x1), (y0, y1) = result.surface.box
    styles = _styles(result)
    twin = _twins(result)
    for i, (p, st) in enumerate(zip(result.paths, styles)):
        pts = np.asarray(p.points)
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        end = len(pts) if inside.all() else int(np.argmin(inside))
        zs = transform(np.asarray(p.losses[:end]))
        label = _label(p, twin.get(i)) + ("" if end == len(pts) else " (leaves the view)")
        ax.plot(pts[:end, 0], pts[:end, 1], zs, lw=2, label=label, zorder=5,
                **{k: v for k, v in st.items() if k != "markevery"},
                markevery=max(1, end // 12))
        if end < len(pts) and end > 0:
            ax.plot([pts[end - 1, 0]], [pts[end - 1, 1]], [zs[-1]], "x", color=st["color"],
                    markersize=10, mew=2, zorder=6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_zlim(float(Zs.min()), float(Zs.max()))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("log(1 + f − f_min)" if log else "f(x, y)")
    ax.set_title(f"{result.surface.name} in 3-D")
    ax.legend(fontsize=7, loc="upper left")
    fig.subplots_adjust(left=0.0, right=0.95, top=0.95, bottom=0.12)
    _caption(fig, result, bool(twin), width=130)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_json(result: PathsResult, path: str | Path) -> Path:
    return write_json_atomic(Path(path), result.to_json(), indent=1)


def save(result: PathsResult, out: Path, *, gif: bool = False, mp4: bool = False,
         three_d: bool = False, progress: Progress | None = None) -> list[Path]:
    """Every picture `descend paths` writes into `out`: paths.png and paths.json, and on
    request paths.gif, paths.mp4 and paths3d.png. `progress(what, done, total)` is told
    about each picture and each animation frame."""
    steps = 1 + gif + mp4 + three_d
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done, steps)

    files = [draw_png(result, out / "paths.png"), write_json(result, out / "paths.json")]
    step("paths.png")
    if gif:
        files.append(animate(result, out / "paths.gif", progress=progress))
        step("paths.gif")
    if mp4:
        files.append(animate(result, out / "paths.mp4", progress=progress))
        step("paths.mp4")
    if three_d:
        files.append(draw_3d(result, out / "paths3d.png"))
        step("paths3d.png")
    return files
