"""``aetool calibrate``: a trained run becomes an anomaly detector, one ONNX file that scores images by itself.

The file is the run's model graph with its anomaly score on top (``scores.AnomalyHead``): outputs ``score``,
``anomaly_map`` and ``score_components`` beside ``reconstruction`` and ``code``; the standardising constants and
the ``wmse`` weights are initializers, and the ``anomaly`` metadata key holds the score's name and constants, the
threshold, the rule that set it (a false-positive rate or a quantile), the normal classes and the score's
distribution on the calibration images. It is verified like every export (``exporter``), and its scores are held to
the numpy runtime's too.

Calibration, on normal images the model never trained on: by default the run's held-out images (a one-class run
holds out 20 % of its normal images; a run on a folder its validation images; an IDX run without classes the test
split), else a folder or glob of normal images. Each component's mean and standard deviation on them standardise
it; the threshold is the order statistic of the score on them that lets at most ``fpr`` of new normal images
above it (``anomaly.threshold_for``), or the ``--quantile`` asked for. ``wmse``'s per-pixel weights come from the
run's training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetool.console import Echo, check_echo
from aetool.errors import AetoolError, DataError
from aetool.export.exporter import (
    DEFAULT_TARGET,
    ExportData,
    ExportOptions,
    ExportResult,
    check_target,
    export_graph,
    run_facts,
    trivial_run,
)
from aetool.export.scores import Constants, Detector, check_score, default_score, error_map, raw_components
from aetool.models import Autoencoder
from aetool.runtime import anomaly, contract
from aetool.runtime.files import is_path, overlapping
from aetool.runtime.idx import resolve_data_dir
from aetool.runtime.metrics import SSIM_RADIUS
from aetool.runtime.noise import Noise
from aetool.train.config import TrainConfig
from aetool.train.data import ImageSet, TrainingData, folder_images, labelled_classes, load_training_data
from aetool.train.loop import scoring
from aetool.train.run import Run, RunFolder

PARITY_IMAGES = 64  # calibration images that join the parity cases
FEW_BEYOND = 5  # a threshold resting on fewer calibration images above it than this gets a note
# Calibration scores closer together than this are one score: the graph's float32 scores of those images land on
# either side of a threshold set at it (two photos whose standardised components cancel each scored 0, the
# threshold 0, and detect flagged both of them at 1e-4 and 5e-6).
SAME_SCORES = 1e-6


@dataclass(frozen=True)
class CalibrationOptions:
    """How ``aetool calibrate`` sets the threshold and where it finds normal images.

    ``fpr``: the share of normal images that may score above the threshold (default 0.01), or ``quantile``: the
    threshold's quantile of the calibration scores (give one); ``score``: the components (default: ``ssim+smax+wmse``
    for a model of one size, ``ssim+smax`` for one of any size); ``data``: a folder or glob of normal images (default:
    the run's held-out images); ``data_dir``: the IDX folder, where the run's has moved; ``atol`` and ``target``: the
    export's parity tolerance and target (``ExportOptions``). ``score`` may also be given as the command line spells
    it (``"ssim+smax"``, ``anomaly.parse_score``); it is kept as a tuple. Raises ``ValueError``, before any work,
    for a rule that is not one number in (0, 1), a score that is not known components each named once, an
    ``atol`` that is not a number, a ``data`` that is not a path or glob (text or a Path) or an unknown target.
    """

    fpr: float | None = None
    quantile: float | None = None
    score: tuple[str, ...] | None = None
    data: str | None = None
    data_dir: str | Path | None = None
    atol: float = 1e-5
    target: str = DEFAULT_TARGET

    def __post_init__(self) -> None:
        for name in ("fpr", "quantile", "atol"):
            value = getattr(self, name)
            if value is None and name != "atol":
                continue
            if not (isinstance(value, Real) and not isinstance(value, bool)):
                raise ValueError(f"--{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))  # numpy's float32 too, which the file's JSON cannot hold
        if self.data is not None and not is_path(self.data):
            raise ValueError(f"--data takes a folder or a glob (text or a Path), got {self.data!r}")
        anomaly.threshold_rule(fpr=self.fpr, quantile=self.quantile)
        if self.score is not None:
            object.__setattr__(self, "score", _score(self.score))
        ExportOptions(atol=self.atol, target=self.target)  # the export's own checks

    @property
    def rule(self) -> dict[str, float]:
        """``{"fpr": f}`` or ``{"quantile": q}``, as the file records it (:func:`anomaly.threshold_rule`)."""
        return anomaly.threshold_rule(fpr=self.fpr, quantile=self.quantile)


def _score(score: Any) -> tuple[str, ...]:
    """A score as ``anomaly.parse_score`` reads the command line's ``ssim+smax``, given as that text or as a
    sequence of component names; raises ``ValueError`` for unknown, repeated or no components."""
    if isinstance(score, str):
        text = score
    elif isinstance(score, tuple | list) and all(isinstance(name, str) and "+" not in name for name in score):
        text = anomaly.score_name(score)
    else:
        raise ValueError(f"--score takes components joined by + (ssim+smax) or a tuple of them, got {score!r}")
    try:
        return anomaly.parse_score(text)
    except ValueError as err:
        raise ValueError(f"--score: {err}") from None


@dataclass
class Calibration:
    """What ``calibrate`` wrote and measured: the export, the detector's record, and its scores on the calibration
    images (float64, in the order they were read)."""

    export: ExportResult
    spec: anomaly.AnomalySpec
    scores: np.ndarray
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"export": self.export.to_dict(), "anomaly": self.spec.to_record(), "source": self.source}


def _run_data(run: Run, data_dir: str | Path | None) -> TrainingData:
    """The run's training and held-out images, read as training read them; ``DataError`` when they are gone."""
    config = run.config
    if config.dataset != "images":
        folder = resolve_data_dir(data_dir, config.dataset) or resolve_data_dir(config.data_dir, config.dataset)
        config = replace(config, data_dir=str(folder) if folder else None)
    try:
        return load_training_data(config, warn=False)[0]  # training warned of skipped files
    except DataError as err:
        raise DataError(
            f"calibration reads the run's images (for its held-out images or wmse's weights): {err}"
        ) from None


def _check_held_out_unchanged(run: Run, data: TrainingData) -> None:
    """Refuse held-out images that are not the ones the run held out: the folder changed since training (files
    added, removed or renamed), so the split drawn again may hold images the model trained on, which score low and
    set the threshold too low (a trial's 4 of 10). Runs that recorded no ``images_sha256`` are taken as they are,
    and so are runs validated on a ``--val-data`` folder, whose images are not drawn from the training ones."""
    if run.config.val_data:
        return
    record = run.folder.read_metrics().get("run")
    digests = record.get("images_sha256") if isinstance(record, dict) else None
    recorded = digests.get("test") if isinstance(digests, dict) else None
    if recorded is not None and recorded != data.test.names_sha256():
        raise AetoolError(
            f"the images of {run.config.data} are not the ones {run.path} was trained and "
            "validated on (files added, removed or renamed since), so its held-out images drawn again may be "
            "images it trained on; put them back as they were, or calibrate on normal images it never saw with --data"
        )


def _source(run: Run, data: TrainingData) -> str:
    """The run's held-out images in words, for the record (``--limit`` named where it cut them)."""
    config, held_out, cut = run.config, data.test, data.test_limited
    share = f"{config.held_out:.0%}" + (f", cut to --limit {config.limit}" if cut else "")
    images = f"{len(held_out)} held-out image{'s' * (len(held_out) != 1)} ({share})"
    if config.val_data:  # held out by the user, not from the training images
        of = f" of class {','.join(config.classes)}" if config.classes else ""
        return f"the {len(held_out)} validation image{'s' * (len(held_out) != 1)}{of} in {config.val_data}"
    if config.classes:
        return f"{images} of the training images of class {','.join(config.classes)}"
    if config.dataset != "images":
        limited = f" (cut to --limit {config.limit})" if cut else ""
        return f"the {len(held_out)} images of the {config.dataset} test split{limited}"
    return f"{images} of {config.data}"


def _check_sizes(images: ImageSet, names: tuple[str, ...], *, multiple_of: int | None) -> None:
    """Refuse calibration images smaller than SSIM's window once padded to the model's multiple, for a score with
    ssim, as ``aetool detect`` fails them (a traceback before). Raises ``AetoolError`` naming the first and the
    count."""
    if "ssim" not in names:
        return
    window = 2 * SSIM_RADIUS + 1
    sizes = zip(images.names, images.sizes(), strict=True)
    small = [name for name, size in sizes if min(contract.rounded_up(size, multiple_of)) < window]
    if small:
        more = f" and {len(small) - 1} more" if len(small) > 1 else ""
        raise AetoolError(
            f"calibration image {small[0]}{more}: smaller than SSIM's {window}×{window} window, which the score's "
            "ssim needs; leave them out, or calibrate with --score smax, which takes any size"
        )


def _batches(images: ImageSet, net: Autoencoder, *, mirror: bool = False) -> list[np.ndarray]:
    """B×C×H×W float32 batches of the images, as training scores its test images (one size together; others one
    at a time, padded to the model's multiple as ``aetool detect`` pads them: with black, or by mirroring for an
    as-is model, ``mirror``)."""
    groups = scoring(images, noise=Noise(), multiple_of=net.multiple_of, mirror=mirror).groups
    return [inputs.numpy() for inputs, _ in groups]


def _pixel_range(batches: list[np.ndarray]) -> list[int]:
    """[fewest, most] pixels (H·W) of the images of B×C×H×W ``batches``: the sizes a threshold was set at, which
    ``detect`` compares each image with (``Detector.size_note``)."""
    pixels = [batch.shape[2] * batch.shape[3] for batch in batches]
    return [min(pixels), max(pixels)]


@torch.no_grad()
def wmse_weights(net: Autoencoder, train: ImageSet) -> np.ndarray:
    """1×H×W float32: 1 / (v + 0.001), v the per-pixel mean of the error map over the training images."""
    total, count = None, 0
    for batch in _batches(train, net):
        images = torch.from_numpy(batch)
        errors = error_map(images, net(images)[0]).double().sum(0)
        total = errors if total is None else total + errors
        count += len(batch)
    assert total is not None
    return (1 / (total / count + anomaly.WEIGHT_FLOOR)).float().numpy()


def trained_on(config: TrainConfig, data: str) -> bool:
    """Whether the images ``data`` names (a folder, glob or file) and the folder the run trained on (``config.data``,
    a folder or a glob's root; its subfolders of ``config.classes`` for a one-class run) overlap: one holds the
    other."""
    return config.data is not None and overlapping(data, config.data, classes=config.classes)


def calibrate_run(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    options: CalibrationOptions = CalibrationOptions(),
    echo: Echo = print,
) -> Calibration:
    """Write the run's detector to ``out`` (a file, or a folder to hold ``model.onnx``; default the run's
    ``model.onnx``, which it replaces: a detector still reconstructs) and its decoder beside it.

    ``options`` checked their own values when made (``ValueError`` for an unknown score component, say). Raises
    ``AetoolError`` for a run that cannot be read, a score the model cannot have (``wmse`` for a model of any size,
    ``ssim`` for images smaller than its window), calibration images that cannot set a threshold (fewer than two, or
    all scoring alike), a target that cannot be written; ``DataError`` when the images are gone; ``ParityError``
    (nothing written) when the graph or its scores disagree; ``TypeError`` for ``options`` that are not a
    ``CalibrationOptions`` and an ``echo`` that is not a function.
    """
    if not isinstance(options, CalibrationOptions):  # a dict, say: it failed on a missing attribute
        raise TypeError(f"calibrate_run's options are a CalibrationOptions(…), got {type(options).__name__}")
    check_echo(echo)
    folder = RunFolder.at(run_dir)
    with folder.in_use():  # no run trained into the folder while its detector is written
        return _calibrated(folder.load(), out=out, options=options, echo=echo)


def _calibrated(run: Run, *, out: str | Path | None, options: CalibrationOptions, echo: Echo) -> Calibration:
    """:func:`calibrate_run`'s work on the run read from the folder it holds in use."""
    net, config = run.net, run.config
    path = Path(out) if out is not None else run.folder.model_file
    check_target(path)
    names = options.score or default_score(net)
    try:
        check_score(net, names)
    except ValueError as err:
        raise AetoolError(f"--score {anomaly.score_name(names)}: {err}") from None
    needs_run_data = options.data is None or "wmse" in names
    data = _run_data(run, options.data_dir) if needs_run_data else None
    facts = run_facts(run)
    if options.data is not None:
        fixed_size = net.size if net.multiple_of is None else None
        white_on_black = facts.polarity == contract.POLARITY  # prepared as `aetool detect --resize` prepares them
        classes = labelled_classes(options.data, config.classes, option="--data")  # a test folder's good/ only
        images = folder_images(
            options.data, channels=net.channels, size=fixed_size, white_on_black=white_on_black, classes=classes
        )
        of = f" of class {','.join(classes)}" if classes else ""
        source = f"the {len(images)} image{'s' * (len(images) != 1)}{of} of {options.data}"
        if trained_on(config, options.data):
            echo(
                f"warning: {options.data} is where the run's training images are (--data {config.data}); a model "
                "reconstructs the images it learned better than new normal ones, so new normal images score above "
                "the threshold more often than --fpr says (its number need not look low: scores are standardised on "
                "the calibration images): calibrate on normal images it never saw"
            )
    else:
        assert data is not None
        _check_held_out_unchanged(run, data)
        images, source = data.test, _source(run, data)
    if len(images) < 2:
        raise AetoolError(
            f"calibration needs at least two normal images, and has {len(images)}: {source}; give more with --data"
        )
    _check_sizes(images, names, multiple_of=net.multiple_of)
    weights = wmse_weights(net, data.train) if data is not None and "wmse" in names else None
    batches = _batches(images, net, mirror=facts.polarity == contract.AS_IS)
    raw, peaks = raw_components(net, batches, Constants(names, weights))
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    if not (np.isfinite(std).all() and (std > 0).all()):
        flat = [name for name, value in zip(names, std, strict=True) if not value > 0]
        raise AetoolError(f"every calibration image scores the same {', '.join(flat)}: calibrate on varied images")
    scores = anomaly.standardised_sum(raw, mean, std)
    if np.ptp(scores) < SAME_SCORES:  # two images whose components cancel, say: each scores 0
        alike = round(float(scores.mean()), 6) + 0.0  # + 0.0: no "-0"
        raise AetoolError(
            f"the {len(scores)} calibration images all score {alike:g} ({anomaly.score_name(names)}): no threshold "
            "can part them from anomalies; calibrate on more, varied normal images"
        )
    rule = options.rule
    # The rule's threshold is a calibration image's own score (an order statistic); the file scores in float32,
    # a few hundred-thousandths off, and flagged that very image as anomalous (a trial's, at the highest score).
    # Lifted by the tolerance the export holds the file's scores to, it stays normal in the file too.
    threshold = anomaly.threshold_for(scores, **rule)
    threshold += options.atol * max(1.0, abs(threshold), anomaly.score_scale(mean, std))
    level = rule.get("quantile", 1 - rule.get("fpr", 0.0))
    if len(scores) * (1 - level) < FEW_BEYOND:
        above = int((scores > threshold).sum())
        rests = f"the threshold rests on the few highest scores ({above} of them above it)"
        if threshold >= scores.max():
            rests = "the threshold is their highest score"
            if "fpr" in rule and len(scores) < 1 / rule["fpr"] - 1:  # the rank is past the last score
                rests += f" (--fpr {rule['fpr']:g} holds as a bound from {math.ceil(1 / rule['fpr'] - 1)} images on)"
        echo(f"only {len(scores)} calibration images: {rests}; calibrate on more images for a steadier one")
    spec = anomaly.AnomalySpec(
        names,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in std),
        threshold,
        rule,
        config.classes,
        float(np.median(peaks)) or None,
        {"source": source, **anomaly.distribution(scores, threshold=threshold), "pixels": _pixel_range(batches)},
    )
    if trivial := trivial_run(run):  # said once the calibration is done, not before a refusal
        echo(
            f"warning: {trivial}; calibrated as asked, though its scores will tell little (aetool train calibrates "
            "such a run only with --allow-trivial)"
        )
    rule_text = f"fpr {rule['fpr']:g}" if "fpr" in rule else f"quantile {rule['quantile']:g}"
    echo(
        f"calibrated {spec.score} on {source}: threshold {threshold:.6g} ({rule_text}; "
        f"{spec.calibration['fpr']:.1%} of them above it)"
    )
    if spec.low_fence is not None and spec.low_fence <= spec.perfect_score:
        echo(
            f"note: the calibration scores spread so widely that their lower fence ({spec.low_fence:.4g}) is below "
            f"the score of a perfect reconstruction ({spec.perfect_score:.4g}): detect will mark no image unusually "
            "low, so blank or blurred frames pass as normal unseen; check such frames another way (their variance, "
            "sharpness) where they matter (common for digits or varied images; tiles of one texture keep the mark)"
        )
    detector = Detector(Constants(names, weights, spec.mean, spec.std), spec)
    result = export_graph(
        net,
        path,
        facts,
        options=ExportOptions(atol=options.atol, target=options.target),
        data=ExportData(test_images=batches[0][:PARITY_IMAGES]),
        echo=echo,
        detector=detector,
    )
    return Calibration(result, spec, scores, source)
