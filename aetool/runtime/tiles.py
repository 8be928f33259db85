"""Large images through a conv model in overlapping tiles, so that a call's memory is a tile's, not the image's.

A fully convolutional model's output at a pixel depends only on the input within its receptive field. Cut the
image into tiles, give each tile ``margin`` pixels of the image around it as context, run the window, and keep the
tile: where the margin is at least the receptive field's radius, the kept pixels are those the whole image gives
(the window's own edges, which the model pads with zeros, are cropped off with the margin; where a window meets
the image's edge, the model pads it as it pads the whole image). Windows start at multiples of the model's
``multiple_of``, so pooling and stride-2 layers see the windows the whole image gives them. The bundled and
registry conv models have receptive-field radii of about 20 pixels at most (the blind ``denoise``: a 3×3 conv, a
2×2 stride-2 conv, eight 3×3 convs at half resolution, an up-conv and a 3×3 conv; a margin of 16 leaves seams in
its output, 20 none: ``benchmarks/tiles.py --margins``), under ``MARGIN``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TILE = 1024  # side of a tile, in pixels: images of more pixels than TILE × TILE run tile by tile
MARGIN = 32  # context around a tile, in pixels on every side, cropped off after the call


def spans(length: int, *, tile: int, margin: int) -> list[tuple[slice, slice]]:
    """Along one axis of ``length`` pixels: for each tile, the window it runs (its pixels and up to ``margin`` on
    either side, within the image) and, within that window, the part kept (the tile itself). ``tile`` ≥ 1,
    ``margin`` ≥ 0; the tiles cover the axis once, in order."""
    if tile < 1 or margin < 0:
        raise ValueError(f"a tile takes at least 1 pixel and a margin at least 0, got {tile} and {margin}")
    result = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        first, last = max(0, start - margin), min(length, stop + margin)
        result.append((slice(first, last), slice(start - first, stop - first)))
    return result


def windows(images: np.ndarray, *, tile: int, margin: int) -> list[np.ndarray]:
    """The windows :func:`run_tiled` sends through the model for N×C×H×W ``images``, in its order (views)."""
    rows, columns = spans(images.shape[-2], tile=tile, margin=margin), spans(images.shape[-1], tile=tile, margin=margin)
    return [images[..., row_window, column_window] for row_window, _ in rows for column_window, _ in columns]


def run_tiled(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, *, tile: int, margin: int) -> np.ndarray:
    """``run`` (N×C×h×w float32 → the same shape, which ``run`` checks) over N×C×H×W ``images`` a tile at a time
    (see the module docstring): float32 N×C×H×W, each tile's pixels from the call of its window. ``tile`` and
    ``margin`` should be multiples of the model's ``multiple_of`` (and H, W too) for windows the model takes;
    raises what ``run`` raises."""
    out = np.empty(images.shape, np.float32)
    rows, columns = spans(images.shape[-2], tile=tile, margin=margin), spans(images.shape[-1], tile=tile, margin=margin)
    for row_window, row_kept in rows:
        for column_window, column_kept in columns:
            window = images[..., row_window, column_window]
            result = run(np.ascontiguousarray(window))
            rows_out = slice(row_window.start + row_kept.start, row_window.start + row_kept.stop)
            columns_out = slice(column_window.start + column_kept.start, column_window.start + column_kept.stop)
            out[..., rows_out, columns_out] = result[..., row_kept, column_kept]
    return out
