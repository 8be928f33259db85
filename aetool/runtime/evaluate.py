"""Test-set MSE of an exported model with onnxruntime alone: the number a user can check against the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import DataError
from aetool.runtime import contract
from aetool.runtime.idx import load_split
from aetool.runtime.model import Model
from aetool.runtime.noise import add_noise

CHUNK = 1000  # images corrupted and scored at once


def evaluate(model: Model, data_dir: str | Path, noise: float | None = None, noise_kind: str | None = None,
             limit: int | None = None, seed: int = 0, split: str = "test") -> dict[str, Any]:
    """MSE between the clean images and the model's reconstruction of (optionally noisy) inputs.

    ``noise`` None uses the noise the model was trained with, as its metadata records it, so a denoising model
    is scored the way it was trained.
    """
    started = time.perf_counter()
    trained = model.metadata.get(contract.NOISE) or {}
    level = float(trained.get("level", 0.0) if noise is None else noise)
    kind = noise_kind or trained.get("kind") or "gaussian"
    pixels, _ = load_split(data_dir, split)
    pixels = pixels[:limit]
    try:
        model.input_spec.check(*pixels.shape[1:])
    except ValueError as err:
        raise DataError(f"{model.path.name} cannot score {data_dir}: {err}") from None
    rng = np.random.default_rng(seed)
    squared = 0.0
    for start in range(0, len(pixels), CHUNK):
        clean = pixels[start:start + CHUNK].astype(np.float32) / 255
        inputs = add_noise(clean, level, kind, rng) if level else clean
        squared += float(np.square(model.reconstruct(inputs) - clean, dtype=np.float64).sum())
    return {
        "mse": squared / pixels.size,
        "n": len(pixels),
        "model": model.name,
        "file": str(model.path),
        "noise": level,
        "noise_kind": kind,
        "seed": seed,
        "split": split,
        "recorded_test_mse": model.metadata.get(contract.TEST_MSE),
        "seconds": round(time.perf_counter() - started, 3),
    }
