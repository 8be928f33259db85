"""Large images through a conv model in overlapping tiles: the same pixels as one call, memory of a tile."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import FLOAT, CountingSession, _field, node, onnx_bytes, tensor, toy_metadata

from aetool.runtime import load, tiles

BLURS = 3  # 3×3 box blurs in the toy model: a receptive field of radius 3


def box_blur(images: np.ndarray, times: int) -> np.ndarray:
    """``times`` 3×3 means over N×C×H×W images, zero-padded at the edges as a conv pads."""
    out = images.astype(np.float64)
    for _ in range(times):
        padded = np.pad(out, [(0, 0), (0, 0), (1, 1), (1, 1)])
        height, width = out.shape[-2:]
        out = sum(padded[..., dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)) / 9
    return out.astype(np.float32)


def ints_attribute(name: str, values: list[int]) -> bytes:
    return _field(1, name) + b"".join(_field(8, value) for value in values) + _field(20, 7)


def blur_model() -> bytes:
    """A grey conv model (any multiple of 4) whose reconstruction is ``BLURS`` 3×3 box blurs of the image."""
    shape = ["N", 1, "H", "W"]
    weight = tensor("w", [1, 1, 3, 3], FLOAT, raw=struct.pack("<9f", *[1 / 9] * 9))
    conv = [ints_attribute("kernel_shape", [3, 3]), ints_attribute("pads", [1, 1, 1, 1])]
    names = ["image", *(f"blur{index}" for index in range(1, BLURS)), "reconstruction"]
    nodes = [node("Conv", [names[i], "w"], [names[i + 1]], conv) for i in range(BLURS)]
    return onnx_bytes({"image": shape}, {"reconstruction": shape}, nodes, toy_metadata("blur", "conv", 4), [weight])


def test_the_tiles_cover_each_axis_once_and_their_windows_add_the_margin_within_it():
    assert tiles.spans(10, tile=4, margin=2) == [
        (slice(0, 6), slice(0, 4)),
        (slice(2, 10), slice(2, 6)),
        (slice(6, 10), slice(2, 4)),
    ]
    for length, tile, margin in [(1, 1, 0), (7, 3, 5), (4096, 1024, 32), (100, 128, 32)]:
        kept = [window.start + part.start for window, part in tiles.spans(length, tile=tile, margin=margin)]
        stops = [window.start + part.stop for window, part in tiles.spans(length, tile=tile, margin=margin)]
        assert kept == list(range(0, length, tile)) and stops == [*kept[1:], length]
    with pytest.raises(ValueError, match="at least 1 pixel"):
        tiles.spans(10, tile=0, margin=2)
    with pytest.raises(ValueError, match="a margin at least 0, got 4 and -1"):  # windows narrower than their tiles
        tiles.spans(10, tile=4, margin=-1)


def test_tiled_results_are_float32_as_a_whole_calls_are_whatever_the_images_float_type():
    """Float64 pages over the tile size came back float64, smaller ones float32 (trial 82)."""
    pages = np.random.default_rng(2).random((1, 1, 10, 12))
    result = tiles.run_tiled(lambda part: part.astype(np.float32), pages, tile=4, margin=2)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, pages, rtol=0, atol=1e-6)


@pytest.mark.parametrize("margin", [BLURS, BLURS + 2])
def test_tiles_with_a_margin_as_wide_as_the_receptive_field_give_the_whole_images_pixels(margin):
    images = np.random.default_rng(0).random((2, 1, 23, 31), dtype=np.float32)
    tiled = tiles.run_tiled(lambda part: box_blur(part, BLURS), images, tile=8, margin=margin)
    assert np.allclose(tiled, box_blur(images, BLURS), rtol=0, atol=1e-6)


def test_a_margin_narrower_than_the_receptive_field_shows_the_seams():
    images = np.random.default_rng(0).random((1, 1, 24, 24), dtype=np.float32)
    tiled = tiles.run_tiled(lambda part: box_blur(part, BLURS), images, tile=8, margin=BLURS - 1)
    assert np.abs(tiled - box_blur(images, BLURS)).max() > 1e-3


def test_a_large_image_runs_in_tiles_with_the_pixels_of_one_call(tmp_path, monkeypatch):
    (tmp_path / "blur.onnx").write_bytes(blur_model())
    model = load(tmp_path / "blur.onnx")
    images = np.random.default_rng(1).random((2, 1, 40, 52), dtype=np.float32)
    whole = model.reconstruct(images)
    assert np.allclose(whole, box_blur(images, BLURS), rtol=0, atol=1e-6)
    monkeypatch.setattr(tiles, "TILE", 10)  # rounded up to the model's multiple of 4: 12, with a margin of 4
    monkeypatch.setattr(tiles, "MARGIN", BLURS)
    monkeypatch.setattr(model, "session", CountingSession(model.session))
    tiled = model.reconstruct(images)
    assert np.allclose(tiled, whole, rtol=0, atol=1e-6)
    shapes = model.session.shapes
    assert len(shapes) == 4 * 5  # ceil(40 / 12) × ceil(52 / 12) tiles, each a call with both images
    assert all(shape[0] == 2 and shape[2] <= 12 + 2 * 4 and shape[3] <= 12 + 2 * 4 for shape in shapes)
    assert all(shape[2] % 4 == 0 and shape[3] % 4 == 0 for shape in shapes)  # windows the model takes


def test_bench_counts_the_flops_of_the_windows_a_tiled_page_runs(tmp_path, monkeypatch):
    pytest.importorskip("onnx")  # counting needs onnx, the train extra
    from aetool import bench

    (tmp_path / "blur.onnx").write_bytes(blur_model())
    model = load(tmp_path / "blur.onnx")
    assert bench.page_flops(model, (40, 52)) == 2 * BLURS * 9 * 40 * 52  # one call: the page itself
    monkeypatch.setattr(tiles, "TILE", 10)  # rounded up to 12, the margin to 4: windows of 16, 20, 20, 8 rows
    monkeypatch.setattr(tiles, "MARGIN", BLURS)  # by 16, 20, 20, 20, 8 columns
    windows = (16 + 20 + 20 + 8) * (16 + 20 + 20 + 20 + 8)
    assert bench.page_flops(model, (40, 52)) == 2 * BLURS * 9 * windows
