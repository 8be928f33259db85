"""The one noise function of aetool, shared by training, evaluation and the CLI, and the noise a model trains on."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from aetool.runtime.images import check_pixels

NOISE_KINDS = ("gaussian", "salt-pepper", "mask")
FLOAT32_MAX = float(np.finfo(np.float32).max)
TEST_NOISE_SEED = 1234  # the noisy test set: training scores on it, export judges variants on it, evaluate's default


def check_level(level: float, kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of ``NOISE_KINDS`` and ``level`` a noise level of it: a finite
    std ≥ 0, or a fraction 0–1; ``TypeError`` for one that is not a number (text gave numpy's "ufunc 'isfinite' not
    supported", True a σ of 1)."""
    if kind not in NOISE_KINDS:  # Noise.single took any kind, refused only once noise was drawn (trial 100)
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise TypeError(f"noise level must be a number, got {level!r}")
    if not (np.isfinite(level) and level >= 0):
        raise ValueError(f"noise level must be a finite number >= 0, got {level}")
    if level > FLOAT32_MAX:  # the noise is drawn in float32 (numpy warned of an overflow in the cast)
        raise ValueError(f"noise level must be at most {FLOAT32_MAX:.4g}, float32's largest number; got {level:g}")
    if kind != "gaussian" and level > 1:
        raise ValueError(f"the {kind} noise level is the fraction of values hit: 0 to 1, got {level}")


def checked_seed(seed: object, *, name: str = "seed", generator: bool = False) -> None:
    """Raise ``TypeError`` unless ``seed`` is None, a whole number (not a bool) or, where ``generator``, a
    ``numpy.random.Generator``, and ``ValueError`` for a negative one, said with the parameter's ``name``
    (numpy said "SeedSequence expects int or sequence of ints", and took True as seed 1)."""
    if seed is None or (generator and isinstance(seed, np.random.Generator)):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        also = " (or a numpy Generator)" if generator else ""
        raise TypeError(f"{name} takes a whole number ≥ 0{also}, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} takes a whole number ≥ 0, got {seed}")


def scale_note(noise: Noise) -> str | None:
    """What to say of a Gaussian std above 1 in ``noise``: pixels are in [0, 1], so such noise leaves nothing of the
    image, and it is most likely a σ meant on the 0–255 scale (σ 25 → 25/255 = 0.098); else None."""
    high = max((term.high for term in noise.terms if term.kind == "gaussian"), default=0.0)
    if high <= 1:
        return None
    # a range or a mix is not one level: a single --noise was suggested for it (trial 103)
    advice = f"--noise {high / 255:.3g}" if noise.level is not None else f"{high / 255:.3g}: divide each level by 255"
    return (
        f"Gaussian noise of std {high:g} on pixels in [0, 1] leaves nothing of the image; a σ of {high:g} on the "
        f"0–255 scale is {advice}"
    )


def add_noise(
    images: np.ndarray,
    level: float,
    *,
    kind: str = "gaussian",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Corrupt images (any shape) of float pixels in [0, 1]; returns float32 in [0, 1]. ``rng``: a generator, or
    a seed for one (None: fresh entropy).

    - ``gaussian``: add N(0, level²) to every pixel, then clip to [0, 1] (the report's noise).
    - ``salt-pepper``: a fraction ``level`` of values set to 0 or 1 with equal odds.
    - ``mask``: a fraction ``level`` of values set to 0 (masking noise).

    Every value is drawn apart, the channels of a colour image too (as scikit-image's ``random_noise`` does): at
    ``level`` 0.1 a colour image has 1 − 0.9³ = 27 % of its pixels hit, most of them in one or two channels.

    Raises ``ValueError`` for an unknown kind, a level that means nothing, a negative seed, and images the model
    would refuse: integer or bool arrays (8-bit pixels: divide them by 255), values outside [0, 1] by more than
    0.001, NaN; ``TypeError`` for a level that is not a number and an ``rng`` that is neither a seed nor a generator.
    """
    check_level(level, kind)
    checked_seed(rng, name="rng", generator=True)
    images = np.asarray(images)
    check_pixels(images, scan=True)
    rng = np.random.default_rng(rng)
    clean = images.astype(np.float32, copy=False)
    if kind == "gaussian":
        with np.errstate(over="ignore"):  # σ near float32's largest: ±inf, which the clip below makes 0 or 1
            noisy = clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(level)
    elif kind == "salt-pepper":
        hit = rng.random(clean.shape, dtype=np.float32) < level
        salt = rng.random(clean.shape, dtype=np.float32) < 0.5
        noisy = np.where(hit, salt.astype(np.float32), clean)
    else:
        hit = rng.random(clean.shape, dtype=np.float32) < level
        noisy = np.where(hit, np.float32(0), clean)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32, copy=False)


ESTIMATE_ROWS = 1 << 20  # pixel values a block of rows holds while estimate_sigma filters it


def estimate_sigma(pixels: np.ndarray) -> float:
    """Immerkær's estimate of the standard deviation of additive white Gaussian noise in one image: C×H×W float
    pixels in [0, 1], at least 3×3; σ in the same units, the median over the channels.

    σ ≈ √(π/2) / (6 (H − 2)(W − 2)) · Σ |I ∗ N| over the image's inside, with N = [[1, −2, 1], [−2, 4, −2],
    [1, −2, 1]] (the difference of two Laplacians, which cancels most image structure; applied as the second
    difference along rows, then columns). Texture and edges add to it, so it reads above 0 on clean photos (the
    colour test photos of ``photos/``: 0.008–0.009) and close to σ on noisy ones (σ 0.05 added: 0.051–0.053;
    ``benchmarks/photo_levels.py``). Source: J. Immerkær, "Fast Noise Variance Estimation", Computer Vision and
    Image Understanding 64(2), 300–302, 1996. Raises ``ValueError`` for another shape (no channels too: it was
    NaN; trial 100) or integer pixels.
    """
    check_pixels(pixels, name="pixels")
    if pixels.ndim != 3 or min(pixels.shape[1:]) < 3 or not pixels.shape[0]:
        raise ValueError(f"estimate_sigma takes one C×H×W image of at least 3×3 pixels, got shape {pixels.shape}")
    height, width = pixels.shape[1:]
    rows = max(1, ESTIMATE_ROWS // width)
    sigmas = []
    for channel in pixels:
        total = 0.0
        for top in range(0, height - 2, rows):  # output rows top … top + rows − 1 read input rows up to 2 below
            block = channel[top : top + rows + 2].astype(np.float64)
            across = block[:, :-2] - 2 * block[:, 1:-1] + block[:, 2:]
            total += float(np.abs(across[:-2] - 2 * across[1:-1] + across[2:]).sum())
        sigmas.append(np.sqrt(np.pi / 2) * total / (6 * (height - 2) * (width - 2)))
    return float(np.median(sigmas))


@dataclass(frozen=True)
class NoiseTerm:
    """One kind of noise at a level drawn uniformly from [low, high] (low = high: one level; 0: clean), chosen with
    relative ``weight`` in a mix."""

    kind: str
    low: float
    high: float
    weight: float = 1.0

    def __str__(self) -> str:
        levels = f"{self.low:g}" if self.low == self.high else f"{self.low:g}:{self.high:g}"
        return f"{self.kind}={levels}" + (f"@{self.weight:g}" if self.weight != 1 else "")


@dataclass(frozen=True)
class Noise:
    """The noise a model trains on and is scored with: none, one kind at one level (the report's), or a mix in
    which each image gets one term, chosen by the terms' weights, at a level drawn uniformly from the term's range
    (a blind denoiser's training noise, in the spirit of DnCNN's blind model, Zhang et al. 2017).

    Written as text by :meth:`parse` and ``str()``: ``0.5`` (a level of the default kind), ``0:0.6`` (a range of
    it), or ``gaussian=0:0.6,salt-pepper=0:0.3,mask=0.25`` (several kinds, each a level or a range, chosen alike),
    with ``@WEIGHT`` after a term to choose it more or less often (``gaussian=0@0.1`` adds clean images a tenth as
    often as a term of weight 1).
    """

    terms: tuple[NoiseTerm, ...] = ()

    @classmethod
    def single(cls, level: float, *, kind: str = "gaussian") -> Noise:
        """One kind at one level (no noise for level 0); raises ``ValueError`` for an unknown kind and a level that
        means nothing."""
        check_level(level, kind)
        return cls((NoiseTerm(kind, level, level),) if level else ())

    @classmethod
    def parse(cls, text: str, *, default_kind: str = "gaussian") -> Noise:
        """The noise ``text`` names (see the class); raises ``ValueError`` naming what is wrong."""
        terms = []
        for part in text.split(","):
            term, _, weight_text = part.strip().partition("@")
            kind, _, levels = term.rpartition("=")
            kind = kind.strip() or default_kind
            if kind not in NOISE_KINDS:
                raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
            low_text, _, high_text = levels.partition(":")
            try:
                low, high = float(low_text), float(high_text or low_text)
                weight = float(weight_text) if weight_text else 1.0
            except ValueError:
                raise ValueError(
                    f"noise {part.strip()!r} is not a level (0.5), a range (0:0.6) or KIND=LEVEL|RANGE[@WEIGHT]"
                ) from None
            if not (np.isfinite(weight) and weight > 0):
                raise ValueError(f"noise {part.strip()!r}: a weight must be a positive number")
            if low > high:
                raise ValueError(f"noise range {part.strip()!r} runs backwards")
            check_level(low, kind)
            check_level(high, kind)
            terms.append(NoiseTerm(kind, low, high, weight))
        if len(terms) == 1 and terms[0].high == 0:
            return cls()
        return cls(tuple(terms))

    def __str__(self) -> str:
        return ",".join(str(term) for term in self.terms) or "0"

    def __bool__(self) -> bool:
        return bool(self.terms)

    @property
    def level(self) -> tuple[float, str] | None:
        """(level, kind) when this is one kind at one level, else None."""
        if len(self.terms) == 1 and self.terms[0].low == self.terms[0].high:
            return self.terms[0].low, self.terms[0].kind
        return None

    @property
    def masks(self) -> bool:
        """Whether any term is masking noise, whose masked pixels take the page's background: it is drawn on
        dark-on-light images inverted (``batch.Corrupt``)."""
        return any(term.kind == "mask" for term in self.terms)

    @property
    def gaussian_span(self) -> tuple[float, float] | None:
        """(lowest σ, highest σ) when every term is Gaussian noise of at least some σ > 0, so that the model never
        saw a clean image; else None (no noise, clean images among the training ones, or other kinds)."""
        if not self.terms or any(term.kind != "gaussian" or term.low <= 0 for term in self.terms):
            return None
        return min(term.low for term in self.terms), max(term.high for term in self.terms)

    def apply(self, images: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
        """Noisy float32 copies of N×… images of float pixels in [0, 1].

        One level of one kind is drawn in one go over the whole array (so the numbers of round 1 stay); a mix is
        drawn image by image: the term, then the level, then the noise, all from ``rng`` (a generator, or a seed
        for one; None: fresh entropy). Raises ``ValueError`` for images :func:`add_noise` refuses, even with no
        noise to add.
        """
        checked_seed(rng, name="rng", generator=True)
        rng = np.random.default_rng(rng)
        if not self.terms:
            images = np.asarray(images)
            check_pixels(images, scan=True)
            return images.astype(np.float32)  # a copy, as with noise: a caller may write into it (trial 88)
        if self.level is not None:
            return add_noise(images, self.level[0], kind=self.level[1], rng=rng)
        noisy = np.empty(np.shape(images), np.float32)
        weights = np.array([term.weight for term in self.terms], dtype=np.float64)  # NoiseTerm(…, 2): ints
        weights /= weights.max()  # first: weights near the float maximum summed to inf (trial 88)
        chances = weights / weights.sum()
        for i, image in enumerate(images):
            term = self.terms[int(rng.choice(len(self.terms), p=chances))]
            noisy[i] = add_noise(image, float(rng.uniform(term.low, term.high)), kind=term.kind, rng=rng)
        return noisy


# How far from its training σ an image's estimated noise may be before a denoiser is said to be the wrong one for it:
# a dncnn trained at σ 0.098 on photos/rgb/train made σ 0.02 test photos worse (32.08 dB against the input's
# 33.99; estimated σ 0.023–0.024) and helped at σ 0.05 (31.82 against 26.06; estimated 0.051–0.053), and fell under
# the best Gaussian blur at σ 0.15 (26.65 against 27.19; estimated 0.140–0.147, unnoted) and 0.2 (23.12 against
# 26.16; estimated 0.176–0.192): benchmarks/photo_levels.py.
LESS_NOISY, NOISIER = 1 / 3, 1.5


def level_note(pixels: np.ndarray, trained: Noise) -> str | None:
    """What to say of running one C×H×W image (float, in [0, 1]) through a denoiser trained on ``trained``: when
    that noise is Gaussian of at least some σ > 0 (:attr:`Noise.gaussian_span`), and the image's noise
    (:func:`estimate_sigma`) is under ``LESS_NOISY`` × its lowest σ or over ``NOISIER`` × its highest, a note
    saying so; else None (also for images under 3×3)."""
    span = trained.gaussian_span
    if span is None or min(pixels.shape[1:]) < 3:
        return None
    sigma, (low, high) = estimate_sigma(pixels), span
    levels = f"σ {low:.3g}" if low == high else f"σ {low:.3g} to {high:.3g}"
    advice = "a model trained on a range of levels (--noise 0:0.2) fits more images"
    if sigma < low * LESS_NOISY:
        return (
            f"looks less noisy (σ ≈ {sigma:.3f}, Immerkær's estimate) than the model's training noise ({levels}), "
            f"which smooths such an image and can make it worse; {advice}"
        )
    if sigma > high * NOISIER:
        return (
            f"looks noisier (σ ≈ {sigma:.3f}, Immerkær's estimate) than the model's training noise ({levels}), "
            f"which can leave more of it than a blur would; {advice}"
        )
    return None
