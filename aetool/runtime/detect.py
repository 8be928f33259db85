"""Anomaly detection with onnxruntime alone: ``aetool detect`` over image files and ``aetool evaluate --anomaly``
on labelled images.

A :class:`Detector` is a model file seen as a detector. A file written by ``aetool calibrate`` computes its score
and anomaly map in its graph and carries its threshold (:class:`~aetool.runtime.anomaly.AnomalySpec`); any other
aetool model still scores images, by the MSE of its reconstruction and the smoothed error map computed here
(``runtime.anomaly``), with no threshold: it has not been calibrated.

:func:`detect` runs files through the batch pipeline's reading (``batch.read_chunks``: the one image loader,
channels and polarity carried into the model's world, conv models padded to their multiple, dense models refused
or with ``--resize`` fitted), a chunk at a time, so memory stays flat. Heatmaps: ``NAME.heatmap.png``, the map
coloured (matplotlib's *inferno*, its colours at nine stops joined linearly) and laid over the image, at its most
opaque (0.75) from the detector's ``map_scale`` up; and
``NAME.raw.heatmap.png``, the map itself as 16-bit grey (value / 65535 = the smoothed squared error, in [0, 1]),
both at the image's size.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aetool.errors import AetoolError, DataError, ImageError, ModelFileError, TimedOut, checked_switch, no_memory_line
from aetool.runtime import anomaly, contract, images
from aetool.runtime.batch import Outcome, Ready, Reconstruct, read_chunks, run_groups
from aetool.runtime.evaluate import INVERTED, RESIZED, checked_limit, counted
from aetool.runtime.files import (
    HEATMAP,
    STDIN,
    Failure,
    Input,
    Job,
    collect_set,
    file_in_the_way,
    overlapping,
    plan,
    write_files,
)
from aetool.runtime.idx import dataset_folder, load_split
from aetool.runtime.metrics import SCORE_BATCH, SSIM_RADIUS
from aetool.runtime.model import Model, loaded
from aetool.runtime.signals import interrupts_held

DETECTOR_OUTPUTS = (contract.SCORE, contract.ANOMALY_MAP, contract.SCORE_COMPONENTS)
OVERLAY_ALPHA = 0.75  # the heat colour's opacity over the image at full strength
# How far an image's pixel count may stray from the calibration images' before a score with smax gets a note: twice
# the largest (or half the smallest). A threshold set on 64×64 tiles held at them (0 of 10 normal tiles flagged) and
# flagged 2 of 10 normal crops at 128×128 and at 256×256, the median score −0.19 → 0.62 → 2.01 (trial 89's run and
# crops, calibrated and scored here: README, detect).
SIZE_SPREAD = 2
# matplotlib's inferno at 0, 1/8, …, 1 (dark purple → yellow), interpolated linearly: no matplotlib at runtime.
INFERNO = np.array(
    [
        (0.001, 0.000, 0.014),
        (0.129, 0.047, 0.291),
        (0.342, 0.062, 0.429),
        (0.541, 0.135, 0.415),
        (0.736, 0.216, 0.330),
        (0.894, 0.353, 0.194),
        (0.978, 0.558, 0.035),
        (0.975, 0.798, 0.206),
        (0.988, 0.998, 0.645),
    ]
)


def read_spec(model: Model) -> anomaly.AnomalySpec | None:
    """The detector record of a model file, or None for a plain autoencoder; raises ``ModelFileError`` for a file
    with only part of a detector (outputs without the record, or the reverse) or a broken record."""
    outputs = {o.name for o in model.session.get_outputs()}
    record = model.metadata.get(contract.ANOMALY)
    if record is None and not outputs & set(DETECTOR_OUTPUTS):
        return None
    if record is None or not outputs >= set(DETECTOR_OUTPUTS):
        raise ModelFileError(
            f"{model.path.name} is half a detector: a detector has the outputs {', '.join(DETECTOR_OUTPUTS)} and the "
            f"metadata {contract.ANOMALY!r}; write it again with aetool calibrate"
        )
    try:
        return anomaly.AnomalySpec.from_record(record)
    except ValueError as err:
        raise ModelFileError(f"{model.path.name}: metadata {contract.ANOMALY!r}: {err}") from None


@dataclass(frozen=True)
class Scored:
    """A batch scored: ``scores`` (N float64), ``maps`` (N×1×H×W float32), ``components`` (N×K float64, named by
    the detector) and ``reconstructions`` (N×C×H×W float32), whether the images came as N×C×H×W or N×H×W."""

    scores: np.ndarray
    maps: np.ndarray
    components: np.ndarray
    reconstructions: np.ndarray


class Detector:
    """A model file as an anomaly detector (see the module's docstring); ``threshold`` overrides the file's."""

    def __init__(self, model: Model | str | Path, *, threshold: float | None = None) -> None:
        """``model``: a loaded :class:`Model`, or a path or bundled name to load with the defaults of
        :func:`~aetool.runtime.model.load`. Raises ``AetoolError`` for a ``threshold`` that is not a finite number,
        ``ModelFileError`` for a model that will not load or a broken detector record."""
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)
        ):
            raise AetoolError(f"--threshold takes a finite number; got {threshold!r}")
        self.model = loaded(model)
        self.spec = read_spec(self.model)
        given = float(threshold) if threshold is not None else None  # numpy's float32 too: JSON records hold it
        self.threshold = given if given is not None else self.spec.threshold if self.spec else None

    @property
    def components(self) -> tuple[str, ...]:
        return self.spec.components if self.spec else ("mse",)

    @property
    def score_name(self) -> str:
        """``ssim+smax+wmse`` (each standardised) for a detector, ``mse`` for a plain autoencoder."""
        return self.spec.score if self.spec else "mse"

    @property
    def map_scale(self) -> float | None:
        """The map value from which a heatmap shows its strongest colour; None (each image its own maximum) for a
        plain model."""
        return self.spec.map_scale if self.spec else None

    def smallest(self) -> int:
        """The smallest height and width it scores: SSIM's window, else one pixel."""
        return 2 * SSIM_RADIUS + 1 if "ssim" in self.components else 1

    def run(self, batch: np.ndarray) -> Scored:
        """Score N×C×H×W float images in [0, 1] (N×H×W for a grey model, as ``Model.reconstruct`` takes them) that
        the model takes as they are (its size, or its multiple); the :class:`Scored` arrays are N×C×H×W (maps
        N×1×H×W) either way.

        Raises ``ModelFileError`` when the file fails on them or returns non-finite or misshapen values,
        ``ValueError`` for images it refuses: those ``Model.reconstruct`` refuses, those under :meth:`smallest`
        pixels high or wide, and pages over ``MAX_CONV_PIXELS`` (16.8 megapixels, which a detector scores in one
        call); ``OutOfMemory`` for a batch that does not fit in memory; ``TimedOut`` past the model's timeout.
        """
        batch = self.model.as_batch(batch)
        if batch.size and min(batch.shape[-2:]) < self.smallest():
            size = self.smallest()
            raise ValueError(
                f"expected images of at least {size}×{size} pixels, SSIM's window, which the score's ssim needs (a "
                f"detector calibrated with --score smax takes any size); got {batch.shape[-2]}×{batch.shape[-1]} "
                "(height×width)"
            )
        if self.spec is None:
            outputs = self.model.reconstruct(batch)
            values = anomaly.components(batch, outputs, ("mse",))
            maps = anomaly.anomaly_map(batch, outputs).astype(np.float32)
            return Scored(values[:, 0], maps, values, outputs)
        named = self.model.outputs(batch, [contract.RECONSTRUCTION, *DETECTOR_OUTPUTS])
        outputs, scores, maps, parts = (named[name] for name in (contract.RECONSTRUCTION, *DETECTOR_OUTPUTS))
        expected = {
            contract.SCORE: (len(batch),),
            contract.ANOMALY_MAP: (len(batch), 1, *batch.shape[2:]),
            contract.SCORE_COMPONENTS: (len(batch), len(self.components)),
        }
        got = {contract.SCORE: scores.shape, contract.ANOMALY_MAP: maps.shape, contract.SCORE_COMPONENTS: parts.shape}
        if got != expected:
            raise ModelFileError(
                f"{self.model.path.name} returned scores of shapes {got} for a batch of shape {batch.shape} (expected "
                f"{expected}); the detector file is broken"
            )
        return Scored(scores.astype(np.float64), maps, parts.astype(np.float64), outputs)

    def size_note(self, height: int, width: int) -> str | None:
        """A note for an image of ``height`` × ``width`` pixels (as scored: padded to the model's multiple) that has
        more than ``SIZE_SPREAD`` times the pixels of the largest calibration image, or less than the smallest's
        share, for a score with ``smax``: the largest value of the map grows with the area it is taken over, so a
        threshold set on 64×64 tiles flagged 2 of 10 normal 256×256 crops of the same micrograph (trial 89; 0 of
        10 tiles). None otherwise, and for a file that records no calibration sizes. Raises ``ValueError`` for a size
        without pixels (it was a ZeroDivisionError; trial 100)."""
        if height < 1 or width < 1:
            raise ValueError(f"size_note takes an image's height and width, each ≥ 1, got {height}×{width}")
        known = self.spec.calibration_pixels if self.spec else None
        if known is None or "smax" not in self.components:
            return None
        fewest, most = known
        pixels = height * width
        if fewest / SIZE_SPREAD <= pixels <= most * SIZE_SPREAD:
            return None
        ratio = f"{pixels / most:.3g}× the pixels of" if pixels > most else f"{fewest / pixels:.3g}× fewer pixels than"
        effect = (
            "normal images this large score above the threshold more often than its rule says"
            if pixels > most
            else "anomalies in images this small score lower and are missed more often"
        )
        return (
            f"scored at {width}×{height}, {ratio} the calibration images ({_pixels(fewest, most)}): the score's smax, "
            f"the map's largest value, grows with the image's area, so {effect}; calibrate on images of the size you "
            "detect on"
        )

    @property
    def low_fence(self) -> float | None:
        """``AnomalySpec.low_fence`` of the file (None for a plain model): a score below it is unusually low."""
        return self.spec.low_fence if self.spec else None

    def verdict(self, score: float) -> bool | None:
        """Whether a score is anomalous (above the threshold, or NaN: a score that cannot be shown normal); None
        without a threshold. Raises ``TypeError`` for a score that is not one number (text, an array)."""
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise TypeError(
                f"verdict takes one score (a number), got {type(score).__name__}; for an array of scores: "
                "(scores > detector.threshold) | np.isnan(scores)"
            )
        return None if self.threshold is None else bool(score > self.threshold or math.isnan(score))


def _pixels(fewest: int, most: int) -> str:
    """A range of pixel counts in words: "4,096 pixels", "4,096 to 65,536 pixels"."""
    return f"{fewest:,} pixels" if fewest == most else f"{fewest:,} to {most:,} pixels"


# ---- detect: files in, a record (and heatmaps) per file out ----


@dataclass
class Detection:
    """What ``aetool detect`` found in one image; ``record()`` is its JSON line.

    ``score`` is the detector's (``score_name``), ``threshold`` None when it has none, ``anomalous`` whether the
    score is above it, ``unusually_low`` whether it is not and below the calibration scores' lower fence
    (``Detector.low_fence``: normal by the threshold, yet an image unlike the normal ones can score low too, as a
    blank, flat or blurred frame is easy to reconstruct; None where that cannot be judged: no fence, no score); ``components`` the raw components by name; ``mse`` the
    reconstruction's MSE and ``map_max`` the anomaly map's largest value, both over the image's region (a conv
    model's score also covers the padding up to its multiple, black or mirrored as ``InputSpec.mirror_padding``
    says, as calibration's did).
    """

    path: str
    score: float | None = None
    threshold: float | None = None
    anomalous: bool | None = None
    unusually_low: bool | None = None
    score_name: str | None = None
    components: dict[str, float] = field(default_factory=dict)
    mse: float | None = None
    map_max: float | None = None
    heatmap: str | None = None  # the map over the image, PNG
    raw_heatmap: str | None = None  # the map as 16-bit grey, PNG
    input_size: tuple[int, int] | None = None  # (width, height)
    fitted_size: tuple[int, int] | None = None  # (width, height) the model ran it at, when resized to fit
    inverted: bool = False
    converted: str | None = None
    notes: list[str] = field(default_factory=list)
    ms: float = 0.0
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


def plan_detection(found: Iterable[Input], *, heatmaps: str | None) -> tuple[Iterable[Job], list[Failure]]:
    """A job per image: with ``heatmaps`` (a folder) its target is the folder mirroring the inputs' layout,
    ``FOLDER/…/NAME.png``, whose two heatmap names :func:`heatmap_paths` derives; without, no target. An image
    whose heatmaps another one's already take (``photo.png`` and ``photo.jpg``) is scored all the same, its job
    without a target, and comes back as a :class:`Failure` too: the clash to report beside its score. Inputs that
    are not a sequence (standard input's images as they arrive, whose names cannot clash) are planned as they come
    (:func:`~aetool.runtime.files.plan`). Raises ``AetoolError`` when ``heatmaps`` names something that is not a
    folder."""
    if heatmaps is None:
        jobs: Iterable[Job] = (Job(item.label, item.source, None, "PNG") for item in found)
        return (list(jobs) if isinstance(found, Sequence) else jobs), []
    if not heatmaps:
        raise AetoolError("--heatmaps is an empty name; give a folder (. for the current one)")
    if heatmaps == STDIN:  # it made a folder named "-" (a trial)
        raise AetoolError(
            "--heatmaps - : heatmaps are files in a folder, not standard output; give a folder (./- for one named -)"
        )
    folder = Path(heatmaps)
    blocking = file_in_the_way(folder)
    if blocking is not None:  # below a file: each image was scored, then failed its maps
        where = "is a file" if blocking == folder else f"is below {blocking}, a file"
        raise AetoolError(f"--heatmaps {heatmaps} {where}; it takes a folder (made if missing)")
    # force: the target itself is never written, only the .heatmap files beside it, so it may name an input
    jobs, clashes = plan(
        found,
        output=str(Path(heatmaps)) + "/",
        suffix=HEATMAP,
        fmt="png",
        force=True,
        shown=lambda target: heatmap_paths(target)[0],
        option="--heatmaps",
    )
    targets: dict[str, Path] = {}
    owners: dict[Path, str] = {}  # each heatmap file and the image it is of: a.raw.png's colour map is a.png's raw
    if not isinstance(found, Sequence):
        return jobs, clashes
    for job in jobs:
        paths = heatmap_paths(job.target) if job.target is not None else ()
        taken = next((path for path in paths if path in owners), None)
        if taken is not None:
            clashes.append(Failure(job.label, f"{taken} is already the output of {owners[taken]}"))
        elif job.target is not None:
            targets[job.label] = job.target
        owners.update(dict.fromkeys(paths, job.label))
    return [Job(item.label, item.source, targets.get(item.label), "PNG") for item in found], clashes


def heatmap_paths(target: Path) -> tuple[Path, Path]:
    """``FOLDER/NAME.png`` → (``NAME.heatmap.png``, ``NAME.raw.heatmap.png``) in that folder."""
    stem = target.name.removesuffix(target.suffix)
    return target.with_name(f"{stem}{HEATMAP}.png"), target.with_name(f"{stem}.raw{HEATMAP}.png")


def overlay(pixels: np.ndarray, amap: np.ndarray, scale: float) -> np.ndarray:
    """3×H×W in [0, 1]: the grey of C×H×W ``pixels`` with the H×W ``amap`` coloured over it (inferno, opacity
    growing to ``OVERLAY_ALPHA`` at ``scale`` and above)."""
    heat = np.clip(amap / scale, 0, 1) if scale > 0 else np.zeros_like(amap)
    stops = np.linspace(0, 1, len(INFERNO))
    colour = np.stack([np.interp(heat, stops, INFERNO[:, c]) for c in range(3)])
    alpha = OVERLAY_ALPHA * heat
    return (images.luma(pixels)[None] * (1 - alpha) + colour * alpha).astype(np.float32)


def encode_raw(amap: np.ndarray) -> bytes:
    """A 16-bit grey PNG of an H×W map in [0, 1] (value / 65535), compressed fast (``images.FAST_PNG``)."""
    from PIL import Image

    values = np.round(np.clip(amap, 0, 1) * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG", **images.FAST_PNG)
    return buffer.getvalue()


def detect(
    jobs: Iterable[Job],
    detector: Detector,
    *,
    invert: bool | None = None,
    resize: bool = False,
    stop: threading.Event | None = None,
    ready: Callable[[], bool] | None = None,
) -> Iterator[Detection]:
    """A :class:`Detection` per job, in order; heatmaps written for jobs with a target (see
    :func:`plan_detection`). ``invert`` and ``resize`` as the image commands take them (True or False; None for
    ``invert``: decide per image; else a ``TypeError``, and ``ValueError`` for True with a model that takes images
    as they are, before any image is read). An image that cannot be
    read, prepared, scored or written is a Detection with ``error`` set; the others are still done. When the model
    runs past its timeout, or Ctrl-C comes, the Detections already settled come first, then ``TimedOut`` or
    ``KeyboardInterrupt``: every heatmap written has its record. ``stop`` and ``ready`` as
    :func:`~aetool.runtime.batch.process` takes them."""
    # padded as calibration padded; a page's scores come from one call, so pages up to what a call can take
    step = Reconstruct(detector.model, resize=resize, border=False, tiled=False)
    for chunk in read_chunks(jobs, step, invert=invert, stop=stop, ready=ready):
        results: dict[int, Detection] = {}
        groups: dict[tuple[int, ...], list[tuple[int, Ready]]] = {}
        for index, item in enumerate(chunk):
            if isinstance(item, Outcome):
                results[index] = Detection(item.path, error=item.error, ms=item.ms)
            elif min(item.prepared.pixels.shape[1:]) < detector.smallest():
                size = detector.smallest()
                results[index] = Detection(
                    item.job.label,
                    error=f"smaller than SSIM's {size}×{size} window, which the score's ssim needs (a detector "
                    "calibrated with --score smax takes any size)",
                )
            else:
                groups.setdefault(item.prepared.pixels.shape, []).append((index, item))
        failed = partial(_failed, results)
        try:  # TimedOut stops the command, as for the image commands (below)
            for group, scored, share in run_groups(groups.values(), partial(_score, detector), failed=failed):
                for position, (index, item) in enumerate(group):
                    with interrupts_held():  # an image's heatmaps and its record, or neither
                        try:
                            results[index] = _finish(item, scored, position, detector, share)
                        except MemoryError as err:  # its heatmaps are written together or not at all
                            results[index] = Detection(item.job.label, error=no_memory_line(err))
        except (TimedOut, KeyboardInterrupt):  # the images settled so far are still reported
            yield from (results[index] for index in sorted(results))
            raise
        yield from (results[index] for index in range(len(chunk)))


def detect_image(
    detector: Detector | Model | str | Path,
    source: str | Path | bytes | bytearray | memoryview | BinaryIO,
    *,
    invert: bool | None = None,
    resize: bool = False,
) -> Detection:
    """One image file (a path, its bytes or a binary file object, as :func:`~aetool.runtime.images.read_image`
    takes them) through ``detector`` (a :class:`Detector`, a loaded model or a path)
    as ``aetool detect`` scores it: read, converted to the model's channels, inverted or resized as the command's
    ``--invert`` and ``--resize`` say, padded to the model's multiple, scored; no heatmap is written (the
    :class:`Detection`'s fields hold the score, verdict and components; ``Detector.run`` gives the maps of
    arrays). An image that cannot be read or scored is a Detection with ``error`` set, as a batch's is; raises
    ``TypeError`` for an ``invert`` or ``resize`` that is not True or False (or None, for ``invert``) and for a
    ``source`` of another type, and ``ValueError`` for ``invert`` True with a model that takes images as they are.
    :meth:`Detector.run` takes arrays of the model's own size and channels only (a 61×61 tile or a colour frame,
    which the command scores, was refused there; trial 98)."""
    try:
        image = images.image_source(source, reader="detect_image")
    except ImageError as err:  # an empty name: a Detection with its error, as a missing file's (trial 103)
        return Detection(str(source), error=str(err))
    job = Job(str(image) if isinstance(image, Path) else "bytes", image, None, "PNG")
    return next(detect([job], as_detector(detector), invert=invert, resize=resize))


def _score(detector: Detector, group: list[tuple[int, Ready]]) -> Scored:
    """The scores of a group of images of one shape (the model's and numpy's errors: the map's smoothing)."""
    return detector.run(np.stack([item.prepared.pixels for _, item in group]))


def _failed(results: dict[int, Detection], group: list[tuple[int, Ready]], reason: str) -> None:
    """Record that each image of a group failed, for ``reason``."""
    results.update((index, Detection(item.job.label, error=reason)) for index, item in group)


def _finish(item: Ready, scored: Scored, position: int, detector: Detector, share: float) -> Detection:
    """One image's record, and its heatmaps written when it has a target."""
    started = time.perf_counter()
    height, width = item.prepared.region
    amap = scored.maps[position, :, :height, :width]
    region = item.prepared.pixels[:, :height, :width]
    score = float(scored.scores[position])
    fence, verdict = detector.low_fence, detector.verdict(score)
    detection = Detection(
        item.job.label,
        score=score,
        threshold=detector.threshold,
        anomalous=verdict,
        unusually_low=None if fence is None else score < fence and verdict is not True,
        score_name=detector.score_name,
        components=dict(zip(detector.components, map(float, scored.components[position]), strict=True)),
        mse=float(np.square(scored.reconstructions[position, :, :height, :width] - region, dtype=np.float64).mean()),
        map_max=float(amap.max()),
        input_size=(int(item.image.shape[2]), int(item.image.shape[1])),
        fitted_size=(width, height) if item.prepared.restore is not None else None,
        inverted=item.inverted,
        converted=item.converted,
        notes=list(item.notes),
    )
    if note := detector.size_note(*item.prepared.pixels.shape[1:]):
        detection.notes.append(note)
    if item.job.target is not None:
        restored = item.prepared.restore(amap) if item.prepared.restore is not None else amap
        original = 1 - item.image if item.inverted else item.image
        scale = detector.map_scale or float(restored.max())
        picture, raw = heatmap_paths(item.job.target)
        try:
            write_files(
                {
                    picture: images.encode(overlay(original, restored[0], scale), "PNG", fast=True),
                    raw: encode_raw(restored[0]),
                }
            )
        except AetoolError as err:
            detection.error = str(err)
        else:
            detection.heatmap, detection.raw_heatmap = str(picture), str(raw)
    detection.ms = round((item.seconds + share + time.perf_counter() - started) * 1000, 3)
    return detection


# ---- evaluate --anomaly: labelled images in, AUROC, AUPR and the rates at the threshold out ----


@dataclass(frozen=True)
class AnomalyEvaluation:
    """How well a detector tells normal from anomalous images; ``to_dict`` is ``aetool evaluate --anomaly
    --json``. AUROC and AUPR (anomalies positive) are fractions; ``at_threshold`` holds the counts, precision,
    recall, F1 and false-positive rate at ``threshold`` (None when there is none)."""

    auroc: float
    aupr: float
    n_normal: int
    n_anomalous: int
    score: str
    threshold: float | None
    at_threshold: dict[str, Any] | None
    model: str
    file: str
    model_sha256: str  # of the file's bytes as loaded
    data: str  # the images scored: the IDX folder, --data, or the --anomalous folder (normal names the --normal one)
    normal: str  # what counted as normal: the classes, or the folder
    seconds: float
    failed: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was done to the images, once per kind, with a count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    detector: Detector,
    scores: np.ndarray,
    is_anomaly: np.ndarray,
    *,
    data: str,
    normal: str,
    started: float,
    failed: list[Failure] | None = None,
    done: Counter[str] | None = None,
) -> AnomalyEvaluation:
    """The evaluation of the finite ``scores`` (NaN: an image that failed, left out), with ``done`` (what was done
    to how many images) as its notes; ``DataError`` when the images scored are all of one kind (naming the first
    image that failed, when images failed)."""
    kept = np.isfinite(scores)
    scores, labels = scores[kept], np.asarray(is_anomaly, bool)[kept]
    _check_both_kinds(labels, failed=failed)
    at = anomaly.rates(scores, labels, detector.threshold) if detector.threshold is not None else None
    return AnomalyEvaluation(
        auroc=anomaly.auroc(scores, labels),
        aupr=anomaly.average_precision(scores, labels),
        n_normal=int((~labels).sum()),
        n_anomalous=int(labels.sum()),
        score=detector.score_name,
        threshold=detector.threshold,
        at_threshold=at.to_dict() if at else None,
        model=detector.model.name,
        file=str(detector.model.path),
        model_sha256=detector.model.sha256,
        data=data,
        normal=normal,
        seconds=round(time.perf_counter() - started, 3),
        failed=failed or [],
        notes=counted(done or Counter()),
    )


def normal_classes(detector: Detector, classes: str | int | Sequence[str | int] | None) -> tuple[str, ...]:
    """The classes that count as normal: those given (read by :func:`~aetool.runtime.anomaly.parse_classes`: ``"1,7"``,
    ``("1", "7")`` or ``(1, 7)``), else those the detector was trained on. Raises ``ValueError`` for classes given
    in another form, ``AetoolError`` when neither says."""
    if given := anomaly.parse_classes(classes):
        return given
    if detector.spec is not None and detector.spec.classes:
        return detector.spec.classes
    raise AetoolError("which classes are normal? pass --classes (the model file does not record them)")


def as_detector(detector: Detector | Model | str | Path) -> Detector:
    """``detector`` itself, or a :class:`Detector` of a loaded ``Model`` or of a path or bundled name (loaded with
    :func:`~aetool.runtime.model.load`'s defaults). Raises as ``Detector`` does (``TypeError`` for another kind)."""
    return detector if isinstance(detector, Detector) else Detector(detector)


def idx_inputs(model: Model, pixels: np.ndarray) -> np.ndarray:
    """N×H×W uint8 IDX digits as the model's N×C×H×W float32 input in [0, 1] (grey replicated for colour models;
    for a model of any size padded to its multiple as calibration and ``detect`` pad them: N×C×H'×W');
    ``DataError`` when the model cannot take their size."""
    spec = model.input_spec
    try:  # a model of one size takes only that size; one of any size takes them padded to its multiple
        padded = spec.padded(*pixels.shape[1:])
        spec.check(*padded)
    except ValueError as err:
        raise DataError(f"{model.path.name} cannot score these digits: {err}") from None
    digits = images.to_channels(pixels[:, None].astype(np.float32) / 255, spec.channels)[0]
    return images.pad_to(digits, padded, mirror=spec.mirror_padding)


def _check_both_kinds(is_anomaly: np.ndarray, *, failed: list[Failure] | None = None, scored: bool = True) -> None:
    """Raises ``DataError`` when the N bools ``is_anomaly`` (of the images ``scored``, else of those to be scored)
    are all of one kind, or none: AUROC needs both; names the first image of ``failed``, when images failed."""
    why = f"{len(failed)} could not be scored, the first {failed[0].label}: {failed[0].error}" if failed else ""
    if not len(is_anomaly):  # was "every scored image is normal (0)"
        raise DataError(f"no image was scored; {why or 'there were none'}")
    if is_anomaly.all() or not is_anomaly.any():
        kind = "anomalous" if is_anomaly.all() else "normal"
        raise DataError(
            f"every {'scored ' if scored else ''}image is {kind} ({len(is_anomaly)}); AUROC needs normal and "
            "anomalous images" + (f"; {why}" if why else "")
        )


def idx_scores(
    detector: Detector, data_dir: str | Path, *, split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The scores (N float64) and labels (N digits as text) of the first ``limit`` images of an IDX split, scored a
    batch at a time. Raises ``DataError`` for a folder without readable IDX files or digits the model cannot take,
    ``ModelFileError`` for a model that fails."""
    pixels, labels = _idx_split(data_dir, split=split, limit=limit)
    return _digit_scores(detector, pixels), labels


def _idx_split(data_dir: str | Path, *, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` N×H×W uint8 digits of an IDX split and their N labels as text (``idx.load_split``)."""
    count = checked_limit(limit)
    pixels, labels = load_split(data_dir, split)
    return pixels[:count], labels[:count].astype(str)


def _digit_scores(detector: Detector, pixels: np.ndarray) -> np.ndarray:
    """The N float64 scores of N×H×W uint8 digits, scored ``SCORE_BATCH`` at a time."""
    scores = [
        detector.run(idx_inputs(detector.model, pixels[i : i + SCORE_BATCH])).scores
        for i in range(0, len(pixels), SCORE_BATCH)
    ]
    return np.concatenate(scores)


def evaluate_idx(
    detector: Detector | Model | str | Path,
    data_dir: str | Path,
    *,
    dataset: str | None = None,
    classes: str | int | Sequence[str | int] | None = None,
    split: str = "test",
    limit: int | None = None,
) -> AnomalyEvaluation:
    """Score an IDX split (the first ``limit`` images), its digits in ``classes`` normal and the others anomalous,
    as ``aetool evaluate --anomaly --data-dir`` does.

    ``detector``: a :class:`Detector`, or what :func:`as_detector` makes one of; ``data_dir``: a folder of the four
    IDX files, or one holding them in a subfolder named after ``dataset`` (``mnist``, ``fashion-mnist``; default:
    the dataset the detector records, else ``mnist``), whose test images must be that dataset's
    (:func:`~aetool.runtime.idx.check_dataset`: an MNIST detector scored on Fashion-MNIST gave a meaningless
    AUROC without a word); ``classes``: as :func:`normal_classes` takes them (default: those the detector was
    trained on). Raises what :func:`normal_classes` and :func:`idx_scores` raise, and ``DataError`` for a folder of
    the other dataset, a class no digit there is labelled with and a split whose images are all of one kind, all
    before any digit is scored.
    """
    started = time.perf_counter()
    detector = as_detector(detector)
    classes = normal_classes(detector, classes)
    data_dir = dataset_folder(data_dir, dataset, recorded=detector.model.metadata.get(contract.DATASET))
    pixels, labels = _idx_split(data_dir, split=split, limit=limit)
    there = sorted(set(labels.tolist()), key=lambda label: (len(label), label))
    if unknown := [label for label in classes if label not in there]:  # a folder detector's "good", say
        raise DataError(
            f"no digit of {data_dir} ({split}) is labelled {' or '.join(unknown)}: its labels are {', '.join(there)}; "
            "name the normal ones with --classes"
        )
    is_anomaly = ~np.isin(labels, list(classes))
    _check_both_kinds(is_anomaly, scored=False)  # before scoring: --classes naming every digit there
    scores = _digit_scores(detector, pixels)
    normal = f"class {','.join(classes)}"
    return measure(detector, scores, is_anomaly, data=f"{data_dir} ({split})", normal=normal, started=started)


def _scores_of(
    detector: Detector, found: Iterable[Input], failed: list[Failure], done: Counter[str], **options: Any
) -> list[float]:
    """The scores of images (NaN where one failed, which is listed in ``failed``); what was done to the others on
    their way (channels converted, inverted, resized) is counted in ``done``, in ``aetool evaluate``'s words."""
    jobs = [Job(item.label, item.source, None, "PNG") for item in found]
    scores: list[float] = []
    for detection in detect(jobs, detector, **options):
        if detection.error or detection.score is None:
            failed.append(Failure(detection.path, detection.error or "not scored"))
            scores.append(math.nan)
            continue
        scores.append(detection.score)
        ways = {
            f"converted {detection.converted}": bool(detection.converted),
            INVERTED: detection.inverted,
            RESIZED: bool(detection.fitted_size),
        }
        done.update(what for what, happened in ways.items() if happened)
    return scores


def _found(source: str, option: str) -> list[Input]:
    return collect_set(source, named=f"{option} {source}", skip=HEATMAP)


def evaluate_folders(
    detector: Detector | Model | str | Path,
    normal: str,
    anomalous: str,
    *,
    invert: bool | None = None,
    resize: bool = False,
) -> AnomalyEvaluation:
    """Score the images of a folder (recursively) or glob of normal images and one of anomalous images.

    ``detector``: a :class:`Detector`, or what :func:`as_detector` makes one of. Images that cannot be read or
    scored are listed in ``failed`` and left out. ``invert`` and ``resize`` as :func:`detect` takes them. Raises
    ``DataError`` when a side holds no images, an image is on both sides, or none of one side could be scored,
    ``TypeError`` for an ``invert`` or ``resize`` that is not True or False (or None, for ``invert``), and
    ``ValueError`` for ``invert`` True with a model that takes images as they are.
    """
    started = time.perf_counter()
    invert, resize = _switches(invert, resize)
    detector = as_detector(detector)
    failed: list[Failure] = []
    done: Counter[str] = Counter()
    sides = [_found(normal, "--normal"), _found(anomalous, "--anomalous")]
    files = [{item.source.resolve(): item.label for item in side if isinstance(item.source, Path)} for side in sides]
    if both := [label for path, label in files[1].items() if path in files[0]]:  # one folder twice: AUROC 50 %
        many = f"{len(both)} images are" if len(both) > 1 else "1 image is"
        raise DataError(
            f"{many} both normal and anomalous (in --normal {normal} and --anomalous {anomalous}): {both[0]}"
        )
    scores = np.array(_scores_of(detector, [*sides[0], *sides[1]], failed, done, invert=invert, resize=resize))
    is_anomaly = np.r_[np.zeros(len(sides[0]), bool), np.ones(len(sides[1]), bool)]
    result = measure(
        detector, scores, is_anomaly, data=anomalous, normal=normal, started=started, failed=failed, done=done
    )
    return replace(result, notes=[*result.notes, *_trained_on(detector, normal, option="--normal")])


def evaluate_labelled(
    detector: Detector | Model | str | Path,
    data: str,
    *,
    classes: str | int | Sequence[str | int] | None = None,
    invert: bool | None = None,
    resize: bool = False,
) -> AnomalyEvaluation:
    """Score the images of a folder whose first-level subfolders are their labels (``test/good/``,
    ``test/scratch/``…), those of ``classes`` normal (as :func:`normal_classes` takes them; default: those the
    detector was trained on). Images directly in ``data``, in no subfolder, have no label: they are listed in
    ``failed`` and left out. Raises as :func:`evaluate_folders` and :func:`normal_classes` do."""
    started = time.perf_counter()
    invert, resize = _switches(invert, resize)
    detector = as_detector(detector)
    classes = normal_classes(detector, classes)
    failed: list[Failure] = []
    labels = Counter[str]()
    found, is_anomaly = [], []
    for item in _found(data, "--data"):
        label = _label(item)
        labels[label] += 1
        if not label:
            failed.append(Failure(item.label, "in no subfolder of --data, so it has no class label"))
            continue
        found.append(item)
        is_anomaly.append(label not in classes)
    if unknown := [label for label in classes if label not in labels]:  # one wrong among right ones too
        named = sorted(label for label in labels if label)
        has = f"it has {', '.join(named)}" if named else "it has no subfolders, whose names would label the images"
        raise DataError(f"no image of {data} is in a subfolder {' or '.join(unknown)}; {has}")
    done: Counter[str] = Counter()
    scores = np.array(_scores_of(detector, found, failed, done, invert=invert, resize=resize))
    normal = f"class {','.join(classes)}"
    result = measure(
        detector, scores, np.array(is_anomaly), data=data, normal=normal, started=started, failed=failed, done=done
    )
    return replace(result, notes=[*result.notes, *_trained_on(detector, data, option="--data")])


def _trained_on(detector: Detector, source: str, *, option: str) -> list[str]:
    """A note when the normal images ``source`` names overlap those the detector's run trained on, as the run folder
    holding the detector's file records them (``metrics.json`` beside it: its config's ``data`` and ``classes``);
    none for a file elsewhere (a bundled one, a copy), which records no training folder. A model reconstructs the
    images it learned better than new normal ones, so those score low and the measures look better than they are
    (``aetool calibrate`` warns alike; trial 85 found evaluate silent)."""
    metrics = Path(detector.model.path).parent / "metrics.json"
    try:
        config = json.loads(metrics.read_text())["config"]
        trained, classes = config["data"], config.get("classes")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return []
    if not isinstance(trained, str) or not (classes is None or isinstance(classes, list)):
        return []
    if not overlapping(source, trained, classes=[str(label) for label in classes or ()]):
        return []
    return [
        f"{option} {source} holds images the detector's run trained on (--data {trained}, in {metrics}): a model "
        "reconstructs the images it learned better than new normal ones, so FPR and AUROC look better here than "
        "on new images; evaluate on normal images it never saw"
    ]


def _switches(invert: object, resize: object) -> tuple[bool | None, bool]:
    """``invert`` and ``resize`` once checked (``errors.checked_switch``), before any image is found or scored."""
    return checked_switch(invert, name="invert", unset=True), checked_switch(resize, name="resize")


def _label(item: Input) -> str:
    """The first-level subfolder an image was found in ("" at the top)."""
    if not isinstance(item.source, Path) or item.root is None:
        return ""
    parts = item.source.relative_to(item.root).parts
    return parts[0] if len(parts) > 1 else ""
