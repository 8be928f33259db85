"""``aetool evaluate --anomaly`` with onnxruntime alone: how well a detector (:class:`~aetool.runtime.detect.Detector`)
tells normal from anomalous images, scored as ``aetool detect`` scores them, from an IDX split whose digits of some
classes are normal (:func:`evaluate_idx`), a folder or glob of normal images and one of anomalous ones
(:func:`evaluate_folders`), or a folder whose first-level subfolders label its images (:func:`evaluate_labelled`);
:func:`measure` turns the scores into an :class:`AnomalyEvaluation` (AUROC, AUPR and the rates at the detector's
threshold)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aetool.errors import AetoolError, DataError, checked_switch
from aetool.runtime import anomaly, contract, images
from aetool.runtime.detect import Detector, as_detector, detect
from aetool.runtime.evaluate import INVERTED, RESIZED, checked_limit, counted
from aetool.runtime.files import HEATMAP, Failure, Input, Job, collect_set, overlapping
from aetool.runtime.idx import dataset_folder, load_split
from aetool.runtime.metrics import SCORE_BATCH
from aetool.runtime.model import Model


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
