"""Anomaly detection with onnxruntime alone: ``aetool detect`` over image files (``aetool evaluate --anomaly``, which
scores labelled images with the same detectors, is :mod:`aetool.runtime.anomaly_evaluation`).

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
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aetool.errors import AetoolError, ImageError, ModelFileError, TimedOut, no_memory_line
from aetool.runtime import anomaly, contract, images
from aetool.runtime.batch import Outcome, Ready, Reconstruct, read_chunks, run_groups
from aetool.runtime.files import HEATMAP, STDIN, Failure, Input, Job, file_in_the_way, plan, write_files
from aetool.runtime.metrics import SSIM_RADIUS
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


def as_detector(detector: Detector | Model | str | Path) -> Detector:
    """``detector`` itself, or a :class:`Detector` of a loaded ``Model`` or of a path or bundled name (loaded with
    :func:`~aetool.runtime.model.load`'s defaults). Raises as ``Detector`` does (``TypeError`` for another kind)."""
    return detector if isinstance(detector, Detector) else Detector(detector)


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
