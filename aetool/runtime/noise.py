"""The one noise function of aetool, shared by training, evaluation and the CLI."""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("gaussian", "salt-pepper", "mask")
TEST_NOISE_SEED = 1234  # the noisy test set: training scores on it, export judges variants on it, evaluate's default


def check_level(level: float, kind: str) -> None:
    """Raise ``ValueError`` unless ``level`` is a noise level of ``kind``: a finite std ≥ 0, or a fraction 0–1."""
    if not (np.isfinite(level) and level >= 0):
        raise ValueError(f"noise level must be a finite number >= 0, got {level}")
    if kind != "gaussian" and level > 1:
        raise ValueError(f"the {kind} noise level is the fraction of pixels hit: 0 to 1, got {level}")


def add_noise(
    images: np.ndarray,
    level: float,
    kind: str = "gaussian",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Corrupt images with pixels in [0, 1]; returns float32 in [0, 1].

    - ``gaussian``: add N(0, level²) to every pixel, then clip to [0, 1] (the report's noise).
    - ``salt-pepper``: a fraction ``level`` of pixels set to 0 or 1 with equal odds.
    - ``mask``: a fraction ``level`` of pixels set to 0 (masking noise).
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    check_level(level, kind)
    rng = np.random.default_rng(rng)
    clean = np.asarray(images, dtype=np.float32)
    if kind == "gaussian":
        noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(level)
    elif kind == "salt-pepper":
        hit = rng.random(clean.shape, dtype=np.float32) < level
        salt = rng.random(clean.shape, dtype=np.float32) < 0.5
        noisy = np.where(hit, salt.astype(np.float32), clean)
    else:
        hit = rng.random(clean.shape, dtype=np.float32) < level
        noisy = np.where(hit, np.float32(0), clean)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32, copy=False)
