"""Reconstruction scores on the numpy side (no torch), for evaluation, export checks, detection and the report.

- MSE: the mean over all pixels (and channels) of the squared difference.
- PSNR: 10·log10(peak² / MSE) in dB, peak 1.0 (pixels in [0, 1]); infinite for identical images.
- SSIM: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004: an 11×11 Gaussian window of σ 1.5 (truncated at 3.5 σ, as scikit-image's
  ``gaussian_filter``), K1 0.01, K2 0.03, population (co)variances, the mean of the SSIM map over the window
  positions that lie inside the image, per channel and averaged over channels. A test holds it to scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.

:func:`mean_squared_error` scores a whole set a batch at a time, so memory stays flat however many images there are.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

SCORE_BATCH = 500  # images reconstructed and scored at once
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 σ + 0.5): an 11×11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03

Reconstruct = Callable[[np.ndarray], np.ndarray]  # N×C×H×W float32 in → the same shape out


def mean_squared_error(
    reconstruct: Reconstruct, inputs: np.ndarray, targets: np.ndarray, *, batch: int = SCORE_BATCH
) -> float:
    """Mean over all pixels of all images of (reconstruct(inputs) − targets)², summed in float64.

    ``inputs`` and ``targets`` have the same shape (N×C×H×W or N×H×W, float in [0, 1]); ``reconstruct`` is called
    on ``batch`` images at a time. Raises ``ValueError`` for an empty set or mismatched shapes.
    """
    if len(inputs) == 0 or inputs.shape != targets.shape:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} must be the same non-empty shape")
    squared = 0.0
    for start in range(0, len(inputs), batch):
        output = reconstruct(inputs[start : start + batch])
        squared += float(np.square(output - targets[start : start + batch], dtype=np.float64).sum())
    return squared / targets.size


def mse(output: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error of one image (any shape) against its target, in float64."""
    return float(np.square(output.astype(np.float64) - target).mean())


def psnr(mse_value: float) -> float:
    """PSNR in dB with peak 1.0 for an MSE of pixels in [0, 1]; ``inf`` for an MSE of 0."""
    return float("inf") if mse_value <= 0 else float(10 * np.log10(1.0 / mse_value))


@cache
def _gaussian_taps() -> np.ndarray:
    offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _filter_valid(image: np.ndarray) -> np.ndarray:
    """The Gaussian-weighted local means of an H×W image at every window position inside it ('valid')."""
    taps = _gaussian_taps()
    rows = np.lib.stride_tricks.sliding_window_view(image, len(taps), axis=0) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, len(taps), axis=1) @ taps


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM (Wang et al. 2004, see the module's docstring) of C×H×W or H×W images in [0, 1], averaged over channels.

    Raises ``ValueError`` for images of other shapes or smaller than the 11×11 window.
    """
    if output.shape != target.shape:
        raise ValueError(f"SSIM needs images of one shape, got {output.shape} and {target.shape}")
    planes_x = output.reshape(-1, *output.shape[-2:]).astype(np.float64)
    planes_y = target.reshape(-1, *target.shape[-2:]).astype(np.float64)
    if min(planes_x.shape[-2:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11×11 pixels, got {output.shape[-2]}×{output.shape[-1]}")
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    scores = []
    for x, y in zip(planes_x, planes_y, strict=True):
        mu_x, mu_y = _filter_valid(x), _filter_valid(y)
        var_x = _filter_valid(x * x) - mu_x**2
        var_y = _filter_valid(y * y) - mu_y**2
        cov = _filter_valid(x * y) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        scores.append(float((numerator / denominator).mean()))
    return float(np.mean(scores))
