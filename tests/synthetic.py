"""Tiny synthetic MNIST look-alikes written as real gzipped IDX files, so tests never need the real data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def stroke_digits(n: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` white-on-black uint8 images of 1–3 thick random strokes, with labels = number of strokes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    labels = rng.integers(1, 4, n).astype(np.uint8)
    grid = np.mgrid[0:size, 0:size].transpose(1, 2, 0).astype(np.float32)
    for image, strokes in zip(images, labels, strict=True):
        for _ in range(strokes):
            a, b = rng.uniform(6, size - 6, (2, 2)).astype(np.float32)
            t = np.clip(((grid - a) @ (b - a)) / max(float((b - a) @ (b - a)), 1e-6), 0, 1)
            distance = np.linalg.norm(grid - (a + t[..., None] * (b - a)), axis=-1)
            image[:] = np.maximum(image, (255 * np.clip(2.0 - distance, 0, 1)).astype(np.uint8))
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    code = 0x08  # unsigned byte
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_dataset(folder: Path, n_train: int = 256, n_test: int = 64, seed: int = 0) -> Path:
    """A folder holding the four standard IDX files of a synthetic dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = stroke_digits(n, seed + offset)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder
