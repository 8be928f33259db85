"""Test-set MSE of an exported model with onnxruntime alone: the number a user can check against the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import AetoolError, DataError, ModelFileError
from aetool.runtime import contract
from aetool.runtime.idx import load_split
from aetool.runtime.model import Model
from aetool.runtime.noise import NOISE_KINDS, TEST_NOISE_SEED, add_noise, check_level

CHUNK = 1000  # images reconstructed and scored at once


def trained_noise(model: Model) -> tuple[float, str]:
    """The noise level and kind the model was trained with, from its metadata (none: 0, gaussian)."""
    recorded = model.metadata.get(contract.NOISE) or {}
    level, kind = (recorded.get("level", 0.0), recorded.get("kind")) if isinstance(recorded, dict) else (None, None)
    if not isinstance(level, (int, float)) or level < 0 or kind not in (None, *NOISE_KINDS):
        raise ModelFileError(
            f'{model.path.name}: metadata {contract.NOISE!r} must be {{"level": a number ≥ 0, '
            f'"kind": one of {", ".join(NOISE_KINDS)}}}, got {recorded!r}'
        )
    return float(level), kind or "gaussian"


def evaluate(
    model: Model,
    data_dir: str | Path,
    noise: float | None = None,
    noise_kind: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """MSE between the clean images and the model's reconstruction of (optionally noisy) inputs.

    ``noise`` None uses the noise the model was trained with, as its metadata records it, so a denoising model
    is scored the way it was trained: ``seed`` None corrupts the test set as training did (``TEST_NOISE_SEED``), so
    the MSE is the one training recorded.
    """
    seed = TEST_NOISE_SEED if seed is None else seed
    started = time.perf_counter()
    trained_level, trained_kind = trained_noise(model)
    level = trained_level if noise is None else noise
    kind = noise_kind or trained_kind
    try:
        check_level(level, kind)
    except ValueError as err:
        raise AetoolError(f"--noise: {err}") from None
    pixels, _ = load_split(data_dir, split)
    pixels = pixels[:limit]
    try:
        model.input_spec.check(*pixels.shape[1:])
    except ValueError as err:
        raise DataError(f"{model.path.name} cannot score {data_dir}: {err}") from None
    clean = pixels.astype(np.float32) / 255
    inputs = add_noise(clean, level, kind, seed) if level else clean  # in one draw, as training did
    squared = 0.0
    for start in range(0, len(pixels), CHUNK):
        recon = model.reconstruct(inputs[start : start + CHUNK])
        squared += float(np.square(recon - clean[start : start + CHUNK], dtype=np.float64).sum())
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
