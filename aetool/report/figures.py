"""The report's figures as labelled PNGs: image grids (torchvision's make_grid) and curves (matplotlib, Agg).

Figures are drawn on ``matplotlib.figure.Figure`` objects, never through pyplot, so no window or GUI backend
is ever involved and nothing global is left behind between figures.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

PAD = 2  # pixels between tiles
INCH_PER_PIXEL = 0.025  # a 28-pixel tile is 0.7 inch: digits stay legible beside their labels
DPI = 100
SCALES = ("fixed", "each", "symmetric")


def _tick_centres(count: int, tile: int) -> list[float]:
    return [PAD + i * (tile + PAD) + (tile - 1) / 2 for i in range(count)]


def image_grid(
    path: Path, tiles: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str, *, scale: str = "fixed"
) -> Path:
    """Save an R×C×h×w array of images as one grid with named rows and columns.

    ``scale``: ``fixed`` shows pixels in [0, 1] as they are; ``each`` stretches every tile to its own range
    (encoder filters); ``symmetric`` shows signed weights on one ±max scale, red positive, blue negative.
    """
    n_rows, n_cols, height, width = tiles.shape
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if (len(rows), len(columns)) != (n_rows, n_cols):
        raise ValueError(f"{len(rows)}×{len(columns)} labels for a {n_rows}×{n_cols} grid")
    flat = torch.from_numpy(np.ascontiguousarray(tiles, np.float32)).reshape(n_rows * n_cols, 1, height, width)
    if scale == "symmetric":
        limit = float(flat.abs().max()) or 1.0
        grid = make_grid(flat, nrow=n_cols, padding=PAD, pad_value=float("nan"))[0]  # gaps drawn grey, not as 0
        cmap: str | matplotlib.colors.Colormap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.7")
        low, high = -limit, limit
    else:
        grid = make_grid(
            flat.clamp(0, 1) if scale == "fixed" else flat,
            nrow=n_cols,
            padding=PAD,
            pad_value=1.0,
            normalize=scale == "each",
            scale_each=scale == "each",
        )[0]
        cmap, low, high = "gray", 0.0, 1.0
    inches = INCH_PER_PIXEL * max(1.0, 12 / min(height, width))  # small kernels drawn larger than digits
    label_inches = 0.09 * max(len(r) for r in rows) + 0.4
    figure_width = grid.shape[1] * inches + label_inches + 0.8
    figure = Figure(figsize=(figure_width, grid.shape[0] * inches + 1.0))
    axes = figure.subplots()
    shown = axes.imshow(grid.numpy(), interpolation="nearest", cmap=cmap, vmin=low, vmax=high)
    axes.set_yticks(_tick_centres(n_rows, height), labels=list(rows))
    crowded = n_cols * max(map(len, columns)) > 80
    axes.set_xticks(_tick_centres(n_cols, width), labels=list(columns), rotation=90 if crowded else 0)
    axes.tick_params(length=0, labelsize=8 if max(n_rows, n_cols) <= 16 else 6)
    axes.set_title(textwrap.fill(title, int(figure_width * 11)), fontsize=10)
    if scale == "symmetric":  # beside a tall grid, below a flat one (a row of kernels)
        flat_grid = n_rows <= 2
        figure.colorbar(
            shown,
            ax=axes,
            label="weight",
            location="bottom" if flat_grid else "right",
            shrink=0.4 if flat_grid else 0.8,
            pad=0.35 if flat_grid else 0.05,
        )
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def curves(path: Path, series: dict[str, list[dict]], keys: dict[str, str], title: str) -> Path:
    """Plot per-epoch values: one colour and marker shape per series (model), one line style and marker fill per
    key (e.g. train solid and filled, test dashed and hollow), so that neither colour nor lines alone (a run of one
    epoch has none) tell them apart."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    styles, fills, shapes = ["-", "--", ":"], ["full", "none", "left"], "osD^v<>ph*"
    for colour, (name, history) in enumerate(series.items()):
        for style, fill, (key, label) in zip(styles[: len(keys)], fills, keys.items(), strict=False):
            points = [(record["epoch"], record[key]) for record in history if key in record]
            axes.plot(
                *zip(*points, strict=True),
                style,
                marker=shapes[colour % len(shapes)],
                markersize=4,
                fillstyle=fill,
                color=f"C{colour}",
                label=f"{name}, {label}",
            )
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = {record["epoch"] for history in series.values() for record in history}
    if len(epochs) == 1:  # one point: the locator would fall back to fractional ticks around it
        axes.set_xticks(sorted(epochs))
    axes.set_ylabel("MSE per pixel")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path
