"""Test-set MSE of an exported model with onnxruntime alone: the number a user can check against the report."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import AetoolError, DataError, ModelFileError
from aetool.runtime import contract
from aetool.runtime.idx import load_split
from aetool.runtime.metrics import mean_squared_error
from aetool.runtime.model import Model
from aetool.runtime.noise import NOISE_KINDS, TEST_NOISE_SEED, add_noise, check_level


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


@dataclass(frozen=True)
class Evaluation:
    """A model's test MSE and how it was measured; ``to_dict`` is ``aetool evaluate --json``."""

    mse: float
    n: int  # images scored
    model: str  # the model's registry name (or file stem)
    file: str
    noise: float  # noise level of the inputs (0: clean)
    noise_kind: str
    seed: int  # of the input noise
    split: str
    recorded_test_mse: float | None  # what the file's metadata records, for comparison
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    model: Model,
    data_dir: str | Path,
    *,
    noise: float | None = None,
    noise_kind: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    split: str = "test",
) -> Evaluation:
    """MSE between the clean images of ``split`` and the model's reconstruction of (optionally noisy) inputs.

    ``noise`` None uses the noise the model was trained with, as its metadata records it, so a denoising model
    is scored the way it was trained: ``seed`` None corrupts the test set as training did (``TEST_NOISE_SEED``), so
    the MSE is the one training recorded. ``limit`` scores only the first images. Raises ``AetoolError`` for a noise
    level that means nothing, ``DataError`` for a folder without readable IDX files or images the model cannot take,
    ``ModelFileError`` for a model that fails or has broken noise metadata.
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
    recorded = model.metadata.get(contract.TEST_MSE)
    return Evaluation(
        mse=mean_squared_error(model.reconstruct, inputs, clean),
        n=len(pixels),
        model=model.name,
        file=str(model.path),
        noise=level,
        noise_kind=kind,
        seed=seed,
        split=split,
        recorded_test_mse=float(recorded) if isinstance(recorded, (int, float)) else None,
        seconds=round(time.perf_counter() - started, 3),
    )
