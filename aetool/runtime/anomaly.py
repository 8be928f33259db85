"""Anomaly scores of an autoencoder's reconstructions on the numpy side (no torch), and how a detector is measured.

An autoencoder trained on normal images reconstructs them well and other images badly, so how far a
reconstruction x̂ is from its input x scores how anomalous x is. The components, per image of N×C×H×W pixels in
[0, 1] (the error map e = the mean over channels of (x − x̂)², N×1×H×W):

- ``mse``: the mean of e.
- ``ssim``: 1 − SSIM(x̂, x), the structural score (Wang et al. 2004, as ``metrics.ssims`` computes it: 11×11
  Gaussian window of σ 1.5, 'valid' positions, the mean over channels); Bergmann et al., "Improving unsupervised
  defect segmentation by applying structural similarity to autoencoders", VISAPP 2019, use it for defects.
- ``smax``: the maximum of e smoothed by a 5×5 Gaussian of σ 1 (zero padding, 'same' size): a small defect that
  the means average away.
- ``wmse``: the mean of e / (v + 0.001), v the per-pixel mean of e over the training images: errors where the
  model is usually exact weigh more (models of one size only, since v has the model's size).

A detector's score standardises each of its components with the mean and standard deviation it has on held-out
normal images and sums them (the default ``ssim+smax+wmse``; ``ssim+smax`` for models of any size; chosen by
measurement on the one-class MNIST and Fashion-MNIST benchmark, see the README). Its threshold is the order statistic
of the score on normal images that lets at most the false-positive rate asked for of new normal images above it
(:func:`threshold_for`); an image scores anomalous above it. The
anomaly map, the smoothed error map, shows where.

The ONNX detector graph computes the same in float32 (``aetool.export.scores`` on the torch side); tests hold the
three to each other, SSIM to scikit-image, and :func:`auroc` and :func:`average_precision` to scikit-learn.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aetool.runtime.images import check_pixels
from aetool.runtime.metrics import gaussian_taps, ssims

COMPONENTS = ("mse", "ssim", "smax", "wmse")
FIXED_SIZE_SCORE = ("ssim", "smax", "wmse")  # the default for models of one size (dense, pca)
ANY_SIZE_SCORE = ("ssim", "smax")  # the default for models of any size: wmse's weights have one size
SMOOTH_SIGMA = 1.0
SMOOTH_RADIUS = 2  # a 5×5 window
WEIGHT_FLOOR = 1e-3  # added to the per-pixel training error v before dividing by it
DEFAULT_FPR = 0.01
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0)  # of the calibration scores, recorded
HISTOGRAM_BINS = 20
CONFORMAL_SLACK = 1e-9  # (n + 1)(1 − fpr) that is a whole number in exact arithmetic stays one in float64


def score_name(components: Sequence[str]) -> str:
    """How a score is named in files and messages: its components joined by ``+`` (``ssim+smax+wmse``)."""
    return "+".join(components)


def parse_score(text: str) -> tuple[str, ...]:
    """``"ssim+smax"`` → ("ssim", "smax"); raises ``ValueError`` naming the known components for anything else."""
    names = tuple(part.strip() for part in text.split("+"))
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"a score is one or more of {', '.join(COMPONENTS)} joined by + (each once), got {text!r}")
    return names


def parse_classes(classes: str | int | Sequence[str | int] | np.ndarray | None) -> tuple[str, ...] | None:
    """The normal classes as labels: ``--classes 3,5``'s text, one digit (``3``), or a list, tuple or 1-D array of
    labels or digits (``["3", "5"]``, ``(3, 5)``, ``np.array([3, 5])``) → ``("3", "5")``, each stripped; None
    stays None. Raises ``ValueError`` for another kind of value (a set's order is not kept; ``"35"`` is one label,
    ``35``) and for an empty or repeated label. Whether the labels are fit to train on (digits, for IDX data) is
    ``TrainConfig``'s to check."""
    if classes is None:
        return None
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        classes = classes.tolist()
    if isinstance(classes, str):
        labels = tuple(label.strip() for label in classes.split(","))
    elif _is_label(classes):  # one digit: 3 was refused as no label, by a message naming 3 (trial 88)
        labels = (str(classes),)
    elif isinstance(classes, tuple | list) and all(_is_label(label) for label in classes):
        labels = tuple(str(label).strip() for label in classes)
    else:
        labels = ()
    if not labels or "" in labels or len(set(labels)) != len(labels):
        raise ValueError(
            f"--classes takes labels separated by commas, each once (3 or 3,5), or a list of them, got {classes!r}"
        )
    return labels


def _is_label(value: object) -> bool:
    """A class label as given: text, or a whole number naming a digit (a bool is neither)."""
    return isinstance(value, str | numbers.Integral) and not isinstance(value, bool)


# ---- the components ----


def error_map(images: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """N×1×H×W float64: the mean over channels of the squared error of N×C×H×W ``outputs`` against ``images``
    (float pixels in [0, 1]). Raises ``ValueError`` for other shapes and for integer arrays (8-bit pixels were
    scored on the 0–255 scale; trial 100)."""
    images, outputs = np.asarray(images), np.asarray(outputs)
    if images.shape != outputs.shape or images.ndim != 4:
        raise ValueError(f"images {images.shape} and outputs {outputs.shape} must be one N×C×H×W shape")
    check_pixels(images, name="images")
    check_pixels(outputs, name="outputs")
    return np.square(images.astype(np.float64) - outputs, dtype=np.float64).mean(axis=1, keepdims=True)


def smooth(maps: np.ndarray) -> np.ndarray:
    """N×1×H×W maps convolved with the 5×5 Gaussian of σ 1, zero padded to keep their size (float64)."""
    taps, r = gaussian_taps(SMOOTH_SIGMA, SMOOTH_RADIUS), SMOOTH_RADIUS
    padded = np.pad(maps.astype(np.float64, copy=False), [(0, 0), (0, 0), (r, r), (r, r)])
    rows = np.lib.stride_tricks.sliding_window_view(padded, len(taps), axis=-2) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, len(taps), axis=-1) @ taps


def anomaly_map(images: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """N×1×H×W float64: where the images are anomalous, the smoothed error map (what ``smax`` takes the max of);
    raises what :func:`error_map` raises."""
    return smooth(error_map(images, outputs))


def components(
    images: np.ndarray, outputs: np.ndarray, names: Sequence[str], *, weights: np.ndarray | None = None
) -> np.ndarray:
    """N×K float64: the components ``names`` (see the module's docstring) of N×C×H×W reconstructions ``outputs``
    of ``images``, pixels in [0, 1].

    ``weights`` (1×H×W, float) are the ``wmse`` weights 1 / (v + 0.001) as the detector file holds them. Raises
    ``ValueError`` for no name or an unknown one (one name is given as a sequence too: ``["mse"]``), ``wmse``
    without weights of the images' size, ``ssim`` on images smaller than its 11×11 window, and what
    :func:`error_map` raises.
    """
    if isinstance(names, str | bytes) or len(names) == 0:  # "mse" was read letter by letter: "… component 'm'"
        raise ValueError(f"names takes a sequence of score components ({', '.join(COMPONENTS)}), got {names!r}")
    errors = error_map(images, outputs)
    columns = []
    for name in names:
        if name == "mse":
            columns.append(errors.mean(axis=(1, 2, 3)))
        elif name == "ssim":
            columns.append(1 - ssims(outputs, images))
        elif name == "smax":
            columns.append(smooth(errors).max(axis=(1, 2, 3)))
        elif name == "wmse":
            if weights is None or weights.shape[-2:] != errors.shape[-2:]:
                raise ValueError(f"wmse needs weights of the images' size {errors.shape[-2:]}")
            columns.append((errors * weights.astype(np.float64)).mean(axis=(1, 2, 3)))
        else:
            raise ValueError(f"unknown score component {name!r}; choose from {', '.join(COMPONENTS)}")
    return np.stack(columns, axis=1)


def standardised_sum(values: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """N scores: the sum over the K columns of N×K ``values`` of (value − mean) / std; raises ``ValueError`` unless
    ``values`` are numbers, K ≥ 1 and ``mean`` and ``std`` hold K finite numbers each, every std above 0 (numpy's
    broadcasting error, inf, text taken as numbers; trials 100, 103)."""
    values, means, spreads = np.asarray(values), np.asarray(mean), np.asarray(std)
    numbers_only = all(array.dtype.kind in "iuf" for array in (values, means, spreads))  # "1" was taken as 1
    fits = (
        numbers_only
        and values.ndim == 2
        and values.shape[1] > 0
        and {means.shape, spreads.shape} == {(values.shape[1],)}
    )
    if not fits or not (np.isfinite(means).all() and np.isfinite(spreads).all() and (spreads > 0).all()):
        raise ValueError(
            f"standardised_sum takes N×K values and K means and stds (each std above 0), got {values.shape}, "
            f"{means.shape} and {spreads.shape}"
        )
    return ((values - means) / spreads).sum(axis=1)


# ---- what a detector file records ----


@dataclass(frozen=True)
class AnomalySpec:
    """A detector's score and calibration, as the ``anomaly`` metadata key of its file holds them.

    ``mean`` and ``std`` standardise the ``components`` (measured on held-out normal images); ``threshold`` is None
    for a detector not calibrated; ``rule`` is ``{"fpr": f}`` or ``{"quantile": q}``, how the threshold was set;
    ``classes`` the labels of the normal training images (None: all of them); ``map_scale`` the anomaly-map value
    a heatmap shows at full strength (the median over the calibration images of each one's largest map value: how
    bad a normal image's worst spot typically is);
    ``calibration`` how many images, from where, and the score's quantiles and histogram on them.
    """

    components: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float | None = None
    rule: dict[str, float] | None = None
    classes: tuple[str, ...] | None = None
    map_scale: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> str:
        return score_name(self.components)

    @property
    def perfect_score(self) -> float:
        """The score of a perfect reconstruction, the lowest any image can get: every component is an error that is
        0 there, so the score is the sum of −mean / std."""
        return float(sum(-mean / std for mean, std in zip(self.mean, self.std, strict=True)))

    @property
    def score_scale(self) -> float:
        """How much the score magnifies its components' rounding: :func:`score_scale` of its calibration."""
        return score_scale(self.mean, self.std)

    @property
    def calibration_pixels(self) -> tuple[int, int] | None:
        """The fewest and most pixels (H·W, padded as scored) of the calibration images, as ``calibration``
        records them; None for a file that records none (calibrated before aetool recorded them) or a broken
        record."""
        pixels = self.calibration.get("pixels")
        if not (isinstance(pixels, list) and len(pixels) == 2 and all(_is_count(value) for value in pixels)):
            return None
        return (pixels[0], pixels[1]) if pixels[0] <= pixels[1] else None

    @property
    def low_fence(self) -> float | None:
        """Tukey's lower fence of the calibration scores, Q1 − 1.5 × (Q3 − Q1) from the quartiles ``calibration``
        records (Tukey, "Exploratory Data Analysis", 1977): a score below it is unusually low for a normal image.
        None when no finite quartiles are recorded."""
        quantiles = self.calibration.get("quantiles") or {}
        try:
            first, third = float(quantiles["0.25"]), float(quantiles["0.75"])
        except (KeyError, TypeError, ValueError):  # no record, or one without numbers there
            return None
        return first - 1.5 * (third - first) if math.isfinite(first) and math.isfinite(third) else None

    def to_record(self) -> dict[str, Any]:
        """The JSON object of the ``anomaly`` key."""
        record = asdict(self)
        record["score"] = self.score
        record["smoothing_sigma"], record["weight_floor"] = SMOOTH_SIGMA, WEIGHT_FLOOR
        return record

    @classmethod
    def from_record(cls, record: Any) -> AnomalySpec:
        """The spec of an ``anomaly`` record; raises ``ValueError`` saying what is wrong with it."""
        if not isinstance(record, dict):
            raise ValueError(f"must be a JSON object, got {type(record).__name__}")
        names = record.get("components")
        if not isinstance(names, list) or not names or any(name not in COMPONENTS for name in names):
            raise ValueError(f"'components' must be a list of {', '.join(COMPONENTS)}, got {names!r}")
        constants = {key: record.get(key) for key in ("mean", "std")}
        for key, values in constants.items():
            if not (isinstance(values, list) and len(values) == len(names) and all(map(_is_finite, values))):
                raise ValueError(f"{key!r} must be {len(names)} finite numbers, got {values!r}")
        if any(value <= 0 for value in record["std"]):
            raise ValueError(f"'std' must be positive, got {record['std']!r}")
        threshold = record.get("threshold")
        if threshold is not None and not _is_finite(threshold):
            raise ValueError(f"'threshold' must be a finite number or null, got {threshold!r}")
        rule = record.get("rule")
        if rule is not None and not _is_rule(rule):
            raise ValueError(f"'rule' must be {{'fpr': f}} or {{'quantile': q}} with 0 < f, q < 1, got {rule!r}")
        classes, scale = record.get("classes"), record.get("map_scale")
        if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise ValueError(f"'classes' must be a list of labels or null, got {classes!r}")
        if scale is not None and not (_is_finite(scale) and scale > 0):
            raise ValueError(f"'map_scale' must be a positive number or null, got {scale!r}")
        return cls(
            tuple(names),
            tuple(float(v) for v in record["mean"]),
            tuple(float(v) for v in record["std"]),
            None if threshold is None else float(threshold),
            None if rule is None else {key: float(value) for key, value in rule.items()},
            None if classes is None else tuple(classes),
            None if scale is None else float(scale),
            calibration if isinstance(calibration := record.get("calibration"), dict) else {},
        )


def _is_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_fraction(value: Any) -> bool:
    return _is_finite(value) and 0 < value < 1


def _is_rule(rule: Any) -> bool:
    """Whether ``rule`` is ``{"fpr": f}`` or ``{"quantile": q}`` with a fraction in (0, 1)."""
    return (
        isinstance(rule, dict)
        and len(rule) == 1
        and {*rule} <= {"fpr", "quantile"}
        and all(map(_is_fraction, rule.values()))
    )


# ---- calibration ----


def score_scale(mean: Sequence[float], std: Sequence[float]) -> float:
    """Σ max(1, |mean|) / std over a score's components: how much the score magnifies their rounding. Parity
    holds each component to atol × max(1, |value|), so the score, their sum each divided by its spread, to atol ×
    this (or × max(1, |score|) where larger): a component's float32 rounding (SSIM's E[x²] − μ² cancels where
    strokes are flat) is magnified by 1 / std."""
    return float(sum(max(1.0, abs(m)) / s for m, s in zip(mean, std, strict=True)))


def threshold_for(scores: np.ndarray, *, fpr: float | None = None, quantile: float | None = None) -> float:
    """The threshold for normal ``scores`` (float64 in any order): with ``fpr``, the ⌈(n + 1)(1 − fpr)⌉-th
    smallest of the n scores, the split-conformal rule (Vovk et al., "Algorithmic Learning in a Random World",
    2005; Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction", 2021, §1): a new normal image
    exchangeable with the calibration images scores above it with probability at most ``fpr`` (the largest score
    where n is too small for that, fewer than 1 / fpr − 1 images); with ``quantile``, that quantile of the scores
    (numpy's linear interpolation between order statistics). Give one of the two, in (0, 1); raises ``ValueError``
    otherwise, and for scores that are no vector of finite numbers or none (a NaN gave a NaN threshold; trial 88)."""
    if (fpr is None) == (quantile is None):
        raise ValueError("give a false-positive rate or a quantile, not both or neither")
    ((name, given),) = threshold_rule(fpr=fpr, quantile=quantile).items()
    level = 1 - given if name == "fpr" else given
    scores = _score_vector(scores)
    if quantile is not None:
        return float(np.quantile(scores, level))
    rank = min(len(scores), math.ceil((len(scores) + 1) * level - CONFORMAL_SLACK))
    return float(np.partition(scores, rank - 1)[rank - 1])


def threshold_rule(*, fpr: float | None = None, quantile: float | None = None) -> dict[str, float]:
    """How a detector's threshold is set, as its file records it: ``{"fpr": f}`` (``DEFAULT_FPR`` when neither is
    given) or ``{"quantile": q}`` (:func:`threshold_for`). Raises ``ValueError`` for both, and for a value that is
    no fraction in (0, 1): checked here without PyTorch, so ``aetool calibrate`` refuses them at once."""
    if fpr is not None and quantile is not None:
        raise ValueError("--fpr and --quantile both set the threshold: give one")
    name, given = ("quantile", quantile) if quantile is not None else ("fpr", DEFAULT_FPR if fpr is None else fpr)
    if not _is_fraction(given):
        raise ValueError(f"--fpr and --quantile are fractions between 0 and 1, got {given!r}")
    return {name: float(given)}


def distribution(scores: np.ndarray, *, threshold: float | None = None) -> dict[str, Any]:
    """What a file records of the calibration scores: their count, quantiles (``QUANTILES``), a histogram of
    ``HISTOGRAM_BINS`` equal bins, and the share above ``threshold`` (the false-positive rate on them). Raises
    ``ValueError`` as :func:`threshold_for` does."""
    scores = _score_vector(scores)
    try:
        counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS)
    except (ValueError, IndexError):  # a span past float64's range: numpy 2 says "too many bins", 1.24 IndexError
        raise ValueError(f"scores span {scores.min():g} to {scores.max():g}, too wide to bin") from None
    record: dict[str, Any] = {
        "images": len(scores),
        "quantiles": {f"{q:g}": float(np.quantile(scores, q)) for q in QUANTILES},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }
    if threshold is not None:
        record["fpr"] = float((scores > threshold).mean())
    return record


def _score_vector(scores: np.ndarray) -> np.ndarray:
    """``scores`` as a float64 vector; raises ``ValueError`` for another shape, no scores, one not finite, and
    scores that are no numbers (text was converted: "0.9" scored as 0.9, where text labels are refused; trial 100)."""
    try:
        given = np.asarray(scores)
    except (TypeError, ValueError):  # a ragged list
        raise ValueError(f"scores must be a vector of numbers, got {type(scores).__name__}") from None
    if given.dtype.kind not in "iuf":
        raise ValueError(f"scores must be a vector of numbers, got {given.dtype} values")
    vector = given.astype(np.float64)
    if vector.ndim != 1 or len(vector) == 0:
        raise ValueError(f"scores must be a vector of one or more numbers, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError("scores must be finite")
    return vector


# ---- measuring a detector on labelled images ----


def _checked(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels as vectors of one length; labels are bools or 0 and 1 (anomalous: True or 1): -1 and 1
    (scikit-learn's outlier labels) or text were all taken as True, and 0.5 as anomalous (trial 88)."""
    scores, given = _score_vector(scores), np.asarray(is_anomaly)
    if given.dtype != bool and not (given.dtype.kind in "iuf" and np.isin(given, (0, 1)).all()):
        shown = ", ".join(map(str, np.unique(given)[:5])) if given.dtype.kind in "iufUS" else given.dtype
        raise ValueError(f"labels are True or 1 for an anomalous image, False or 0 for a normal one, got {shown}")
    labels = given.astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be two vectors of one length")
    if labels.all() or not labels.any():
        raise ValueError("measuring a detector needs both normal and anomalous images")
    return scores, labels


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """The area under the ROC curve, anomalies positive, higher scores more anomalous: the probability that an
    anomaly scores above a normal image, ties counting one half (Mann–Whitney U over the rank sum, tied scores
    given their average rank; Hanley & McNeil 1982). Raises ``ValueError`` for one class only or NaN scores."""
    scores, labels = _checked(scores, is_anomaly)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2)[inverse]  # 1-based, ties averaged
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """The area under the precision–recall curve, anomalies positive, as average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over
    the distinct scores from the highest down (scikit-learn's ``average_precision_score``; no interpolation).
    Raises ``ValueError`` as :func:`auroc` does."""
    scores, labels = _checked(scores, is_anomaly)
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], labels[order]
    last_of_ties = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last_of_ties]
    precision = true_positives / (last_of_ties + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Rates:
    """A detector's verdicts at one threshold against the truth: counts, and the rates people quote (fractions;
    None where undefined, e.g. precision when nothing scored anomalous)."""

    threshold: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    @property
    def recall(self) -> float:
        return self.true_positives / (self.true_positives + self.false_negatives)

    @property
    def f1(self) -> float:
        """2PR / (P + R), written 2TP / (2TP + FP + FN) so that it is 0, not undefined, when nothing is found."""
        found = 2 * self.true_positives
        return found / (found + self.false_positives + self.false_negatives)

    @property
    def fpr(self) -> float:
        return self.false_positives / (self.false_positives + self.true_negatives)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1, "fpr": self.fpr}


def rates(scores: np.ndarray, is_anomaly: np.ndarray, threshold: float) -> Rates:
    """The verdicts ``score > threshold`` (anomalous) against ``is_anomaly``; raises ``ValueError`` as
    :func:`auroc` does, and for a threshold that is no finite number (NaN called every image normal)."""
    if isinstance(threshold, np.ndarray) and threshold.ndim == 0:  # np.array(0.5): one number, taken before
        threshold = threshold.item()
    if not _is_finite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    threshold = float(threshold)  # numpy's float32 too, which the record's JSON cannot hold
    scores, labels = _checked(scores, is_anomaly)
    flagged = scores > threshold
    return Rates(
        threshold,
        int((flagged & labels).sum()),
        int((flagged & ~labels).sum()),
        int((~flagged & ~labels).sum()),
        int((~flagged & labels).sum()),
    )
