"""Reconstruction scores on the numpy side, for evaluation, export checks and the report (no torch).

:func:`mean_squared_error` scores a whole set a batch at a time, so memory stays flat however many images there are.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SCORE_BATCH = 500  # images reconstructed and scored at once

Reconstruct = Callable[[np.ndarray], np.ndarray]  # N×C×H×W float32 in → the same shape out


def mean_squared_error(
    reconstruct: Reconstruct, inputs: np.ndarray, targets: np.ndarray, *, batch: int = SCORE_BATCH
) -> float:
    """Mean over all pixels of all images of (reconstruct(inputs) − targets)², summed in float64.

    ``inputs`` and ``targets`` have the same shape (N×1×H×W or N×H×W, float in [0, 1]); ``reconstruct`` is called
    on ``batch`` images at a time. Raises ``ValueError`` for an empty set or mismatched shapes.
    """
    if len(inputs) == 0 or inputs.shape != targets.shape:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} must be the same non-empty shape")
    squared = 0.0
    for start in range(0, len(inputs), batch):
        output = reconstruct(inputs[start : start + batch])
        squared += float(np.square(output - targets[start : start + batch], dtype=np.float64).sum())
    return squared / targets.size
