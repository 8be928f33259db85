"""Reconstruction scores on the numpy side (no torch), for evaluation, export checks, detection and the report.

- MSE: the mean over all pixels (and channels) of the squared difference.
- PSNR: 10·log10(peak² / MSE) in dB, peak 1.0 (pixels in [0, 1]); infinite for identical images.
- SSIM: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004: an 11×11 Gaussian window of σ 1.5 (truncated at 3.5 σ, as scikit-image's
  ``gaussian_filter``), K1 0.01, K2 0.03, population (co)variances, the mean of the SSIM map over the window
  positions that lie inside the image, per channel and averaged over channels. A test holds it to scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.

:func:`mean_squared_error` scores a whole set a batch at a time, and :class:`SetScores` sums all three over images
added a batch at a time, so memory stays flat however many images there are. A set's MSE is the mean over all
pixels of all its images, its PSNR that of this MSE, its SSIM the mean over images.

Every score compares float pixels in [0, 1] one to one: arrays of other shapes are refused, not broadcast, and so
are integer arrays (8-bit pixels: divide them by 255), with ``ValueError``. The range itself is not scanned (that
would cost about as much as the score): the model and the noise refuse inputs outside it, and outputs may stray.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from aetool.runtime.images import check_pixels

SCORE_BATCH = 500  # images reconstructed and scored at once
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 σ + 0.5): an 11×11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_VALUES = 1 << 20  # pixel values filtered at once: SSIM's float64 intermediates stay near 100 MB
MSE_CHUNK = 1 << 20  # pixel values squared at once in float64 by mse (8 MB a temporary)

Reconstruct = Callable[[np.ndarray], np.ndarray]  # N×C×H×W float32 in → the same shape out


def mean_squared_error(
    reconstruct: Reconstruct, inputs: np.ndarray, targets: np.ndarray, *, batch: int = SCORE_BATCH
) -> float:
    """Mean over all pixels of all images of (reconstruct(inputs) − targets)², summed in float64.

    ``inputs`` and ``targets`` have the same shape (N×C×H×W or N×H×W, float in [0, 1]); ``reconstruct`` is called
    on ``batch`` images at a time and returns their shape. Raises ``ValueError`` for an empty set, mismatched
    shapes (of the inputs and targets, or of a batch and its reconstruction), integer arrays and a ``batch`` that is
    no whole number ≥ 1 (-1 scored nothing and gave 0.0; trial 88).
    """
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise ValueError(f"batch takes a positive whole number of images a call, got {batch!r}")
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.ndim == 0 or len(inputs) == 0 or inputs.shape != targets.shape:
        raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} must be the same non-empty shape")
    check_pixels(inputs, name="inputs")
    check_pixels(targets, name="targets")
    squared = 0.0
    for start in range(0, len(inputs), batch):
        output = np.asarray(reconstruct(inputs[start : start + batch]))
        wanted = targets[start : start + batch]
        if output.shape != wanted.shape:
            raise ValueError(f"reconstruct returned {output.shape} for a batch of {wanted.shape}: not the same shape")
        check_pixels(output, name="reconstructions")
        squared += float(np.square(output - wanted, dtype=np.float64).sum())
    return squared / targets.size


def mse(output: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error of one image (any shape, float pixels in [0, 1]) against its target of the same shape, in
    float64. Raises ``ValueError`` for other shapes (nothing is broadcast), no pixels, and integer arrays."""
    output, target = np.asarray(output), np.asarray(target)
    if output.shape != target.shape:
        raise ValueError(f"output {output.shape} and target {target.shape} must have the same shape")
    if output.size == 0:
        raise ValueError(f"no pixels to compare: output and target have shape {output.shape}")
    check_pixels(output, name="output")
    check_pixels(target, name="target")
    squared = 0.0  # float64 a block of rows at a time: whole, a 24-megapixel photo's took 3 copies of it and more
    planes = zip(_planes(output), _planes(target), strict=True)
    for output_plane, target_plane in planes:
        step = max(1, MSE_CHUNK // output_plane.shape[1])
        for top in range(0, output_plane.shape[0], step):
            error = output_plane[top : top + step].astype(np.float64) - target_plane[top : top + step]
            squared += float(np.vdot(error, error))
    return squared / output.size


def _planes(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as a stack of 2-D planes (…×H×W → K×H×W), a view where the leading axes allow, as a crop's do."""
    return pixels.reshape(-1, *np.atleast_2d(pixels).shape[-2:]) if pixels.ndim >= 2 else pixels.reshape(1, 1, -1)


def psnr(mse_value: float) -> float:
    """PSNR in dB with peak 1.0 for an MSE of pixels in [0, 1]; ``inf`` for an MSE of 0. Raises ``ValueError`` for
    a negative, NaN or infinite MSE (no mean of squares of finite pixels is any of these), ``TypeError`` for
    anything but one number (an array of MSEs, or images: :func:`mse` gives theirs)."""
    if isinstance(mse_value, bool) or not isinstance(mse_value, numbers.Real):  # an array: numpy's "truth value"
        kind = type(mse_value)
        raise TypeError(
            f"psnr takes one MSE, a number (psnr(mse(output, target)) for images), got {kind.__module__}."
            f"{kind.__qualname__}"
        )
    if not 0 <= mse_value < float("inf"):
        raise ValueError(f"PSNR needs a finite MSE >= 0 (a mean of squares), got {mse_value}")
    return float("inf") if mse_value == 0 else -10 * math.log10(mse_value)  # 1 / 1e-320 would overflow to inf


@cache
def gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """The 2·radius + 1 taps of a Gaussian of ``sigma`` pixels, normalised to sum 1 (float64); a separable 2-D
    window is their outer product."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def _filter_valid(planes: np.ndarray) -> np.ndarray:
    """The Gaussian-weighted local means of P×H×W planes at every window position inside them ('valid')."""
    taps = gaussian_taps(SSIM_SIGMA, SSIM_RADIUS)
    rows = np.lib.stride_tricks.sliding_window_view(planes, len(taps), axis=-2) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, len(taps), axis=-1) @ taps


def _plane_ssims(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The mean of the SSIM map of each of P×H×W float64 planes: P values."""
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    var_x = _filter_valid(x * x) - mu_x**2
    var_y = _filter_valid(y * y) - mu_y**2
    cov = _filter_valid(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean(axis=(-2, -1))


def ssims(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """SSIM (see the module's docstring) of each of N×C×H×W or N×H×W images in [0, 1], averaged over channels: N
    float64 values (none for N = 0). Images go through ``SSIM_VALUES`` pixel values at a time, so memory stays
    bounded.

    Raises ``ValueError`` for outputs and targets of other shapes or ranks, integer arrays, images without channels
    and images smaller than the 11×11 window.
    """
    outputs, targets = np.asarray(outputs), np.asarray(targets)
    if outputs.shape != targets.shape:
        raise ValueError(f"SSIM needs images of one shape, got {outputs.shape} and {targets.shape}")
    if outputs.ndim not in (3, 4):
        raise ValueError(f"SSIM needs N×H×W or N×C×H×W images, got shape {outputs.shape}")
    check_pixels(outputs, name="outputs")
    check_pixels(targets, name="targets")
    height, width = outputs.shape[-2:]
    if min(height, width) < 2 * SSIM_RADIUS + 1:
        last = outputs.ndim == 4 and width in (1, 3) and height > width  # Pillow's and OpenCV's layout: H×W×C
        hint = "; channels last? move them first: transpose(2, 0, 1) for an image, (0, 3, 1, 2) for a batch"
        raise ValueError(
            f"SSIM needs images of at least 11×11 pixels, got {height}×{width} (height×width){hint if last else ''}"
        )
    if len(outputs) == 0:
        return np.zeros(0)
    if outputs.size == 0:
        raise ValueError(f"SSIM needs images with at least one channel, got shape {outputs.shape}")
    x = outputs.reshape(len(outputs), -1, height, width)
    y = targets.reshape(x.shape)
    step = max(1, SSIM_VALUES // (x[0].size or 1))
    scores = [
        _plane_ssims(x[i : i + step].astype(np.float64), y[i : i + step].astype(np.float64)).mean(axis=1)
        for i in range(0, len(x), step)
    ]
    return np.concatenate(scores) if scores else np.zeros(0)


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM (Wang et al. 2004, see the module's docstring) of C×H×W or H×W images in [0, 1], averaged over channels.

    Raises ``ValueError`` for images of other shapes or ranks, integer arrays, and images smaller than the 11×11
    window.
    """
    output, target = np.asarray(output), np.asarray(target)
    if output.shape != target.shape:
        raise ValueError(f"SSIM needs images of one shape, got {output.shape} and {target.shape}")
    if output.ndim not in (2, 3):
        raise ValueError(f"SSIM of one image needs C×H×W or H×W pixels, got shape {output.shape}")
    return float(ssims(output[None], target[None])[0])


@dataclass
class SetScores:
    """MSE, PSNR and SSIM of a set of images, summed as batches of outputs and targets are added."""

    squared: float = 0.0  # sum of squared differences, float64
    values: int = 0  # pixel values summed over
    ssim_sum: float = 0.0
    ssim_images: int = 0  # images SSIM was computed for (those of at least 11×11 pixels)
    images: int = 0

    def add(self, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Score a batch: N×C×H×W or N×H×W outputs against targets of the same shape, float pixels in [0, 1] (the
        range is not scanned; see the module's docstring). An empty batch (N = 0) adds nothing.

        Raises ``ValueError`` for mismatched shapes, other ranks and integer arrays.
        """
        outputs, targets = np.asarray(outputs), np.asarray(targets)
        if outputs.shape != targets.shape:
            raise ValueError(f"outputs {outputs.shape} and targets {targets.shape} must have the same shape")
        if outputs.ndim not in (3, 4) or (len(outputs) and not outputs.size):
            raise ValueError(f"expected N×C×H×W or N×H×W outputs and targets with pixels, got shape {outputs.shape}")
        check_pixels(outputs, name="outputs")
        check_pixels(targets, name="targets")
        self.squared += float(np.square(outputs - targets, dtype=np.float64).sum())
        self.values += targets.size
        self.images += len(targets)
        if min(targets.shape[-2:]) >= 2 * SSIM_RADIUS + 1:
            self.ssim_sum += float(ssims(outputs, targets).sum())
            self.ssim_images += len(targets)

    @property
    def mse(self) -> float:
        """The mean over all pixels of all images; raises ``ValueError`` when no image was added."""
        if not self.values:
            raise ValueError("no images were scored")
        return self.squared / self.values

    @property
    def psnr(self) -> float:
        """The PSNR (dB, peak 1.0) of :attr:`mse`; ``inf`` when it is 0."""
        return psnr(self.mse)

    @property
    def ssim(self) -> float | None:
        """The mean SSIM over the images of at least 11×11 pixels; ``None`` when there were none."""
        return self.ssim_sum / self.ssim_images if self.ssim_images else None
