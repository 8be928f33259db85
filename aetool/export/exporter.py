"""Export end to end: convert, verify, annotate, add variants, and write all the files or none of them."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from torch import nn

from aetool.check import ATOL, CheckReport, check_bytes
from aetool.console import Echo, check_echo
from aetool.errors import AetoolError, DataError, checked_switch
from aetool.export import metadata, variants
from aetool.export.onnx_export import Decoder, ExportSpec, check_onnx, decoder_spec, model_spec, to_onnx
from aetool.export.parity import (
    Case,
    ParityError,
    ParityReport,
    as_images,
    check_module,
    check_parity,
    code_cases,
    cpu_session,
    float64_reference,
    image_cases,
    torch_reference,
)
from aetool.export.portable import foreign_operators
from aetool.export.scores import DETECTOR_OPS, Detector
from aetool.export.variants import TestSet, VariantReport
from aetool.models import Autoencoder, ConvAE
from aetool.runtime import contract
from aetool.runtime.files import check_folder, is_path, is_utf8, write_files
from aetool.runtime.idx import resolve_data_dir
from aetool.runtime.noise import TEST_NOISE_SEED
from aetool.train.data import ImageSet, find_images, load_training_data
from aetool.train.loop import trivial_line
from aetool.train.run import Run, RunFolder

CALIBRATION_IMAGES = 256
# The portable graph costs onnxruntime 1.1–1.2× the onnxruntime target's time at batch 256 (README, Export):
# within the 1.25× that makes one file that runs everywhere worth it as the default.
DEFAULT_TARGET = contract.PORTABLE


@dataclass(frozen=True)
class ExportOptions:
    """How an export is verified and which variants it adds (the options of ``aetool export``).

    ``atol``: the largest allowed |PyTorch − onnxruntime| of the fp32 graphs (scaled by an output's magnitude where
    that exceeds 1); ``precisions``: variants to write beside the fp32 file (``fp16``, ``int8``); ``max_mse_rise``:
    the largest allowed relative rise of a variant's test MSE (0.10 = 10 %); ``data_dir``: a folder of IDX files
    whose test digits join the parity inputs, score the variants and (train split) calibrate static int8;
    ``target``: ``portable`` (operators every major runtime implements) or ``onnxruntime`` (the graph onnxruntime
    runs fastest); one precision may be given as text (``"int8"``), several as any sequence (a repeat counts once).
    Numbers are kept as Python floats (numpy's float32 too). Raises ``ValueError`` for an unknown precision or
    target, an ``atol`` that is not a finite number ≥ 0 and a ``max_mse_rise`` that is not a number ≥ 0.
    """

    atol: float = 1e-5
    precisions: tuple[str, ...] = ()
    max_mse_rise: float = 0.10
    data_dir: str | Path | None = None
    target: str = DEFAULT_TARGET

    def __post_init__(self) -> None:
        if isinstance(self.precisions, str):  # one precision: its letters were taken for precisions
            object.__setattr__(self, "precisions", (self.precisions,))
        if not isinstance(self.precisions, Iterable):
            raise ValueError(f"precisions takes a sequence of fp16 and int8, got {self.precisions!r}")
        object.__setattr__(self, "precisions", tuple(dict.fromkeys(self.precisions)))  # a list, a repeat: once each
        for name in ("atol", "max_mse_rise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"--{name.replace('_', '-')} takes a number, got {value!r}")
            object.__setattr__(self, name, float(value))  # numpy's float32 too, which the file's JSON cannot hold
        unknown = [p for p in self.precisions if p not in contract.PRECISIONS]
        if unknown:
            raise ValueError(f"unknown precision {unknown[0]!r}; choose from {', '.join(contract.PRECISIONS)}")
        if self.data_dir is not None and not is_path(self.data_dir):
            raise ValueError(f"--data-dir takes a folder (text or a Path), got {self.data_dir!r}")
        if self.target not in contract.TARGETS:
            raise ValueError(f"unknown export target {self.target!r}; choose from {', '.join(contract.TARGETS)}")
        if not 0 <= self.atol < math.inf:  # NaN too: every comparison with it is false, so any parity would pass
            raise ValueError(f"--atol takes a finite number ≥ 0, got {self.atol}")
        if not self.max_mse_rise >= 0:  # math.inf: no limit (benchmarks/run_all.py)
            raise ValueError(f"--max-mse-rise takes a number ≥ 0 (inf: no limit), got {self.max_mse_rise}")


@dataclass(frozen=True)
class ExportData:
    """Images an export checks with: test images (N×H×W uint8 or float) and static-int8 calibration images;
    ``test_crops``: the test images are centre crops of images of several sizes (so their MSE is not the run's)."""

    test_images: np.ndarray | None = None
    calibration: np.ndarray | None = None
    test_crops: bool = False


@dataclass
class ExportResult:
    """What an export wrote, and the evidence that each file computes what the PyTorch model computes."""

    path: Path
    parity: ParityReport
    decoder_path: Path | None = None
    decoder_parity: ParityReport | None = None
    variants: list[VariantReport] = field(default_factory=list)
    variant_paths: list[Path] = field(default_factory=list)
    checked_in: dict[Path, CheckReport] = field(default_factory=dict)  # every file written, run in every runtime

    @property
    def paths(self) -> list[Path]:
        """Every file written: the model, its decoder (if any), then the variants."""
        return [self.path, *([self.decoder_path] if self.decoder_path else []), *self.variant_paths]

    def to_dict(self) -> dict[str, Any]:
        return {
            "paths": [str(p) for p in self.paths],
            "parity": self.parity.to_dict(),
            "decoder_parity": self.decoder_parity.to_dict() if self.decoder_parity else None,
            "variants": [v.to_dict() for v in self.variants],
            "checked_in": {str(path): check_record(report) for path, report in self.checked_in.items()},
        }


def _verified(
    spec: ExportSpec,
    reference: nn.Module,
    cases: list[Case],
    *,
    atol: float,
    target: str,
    label: str,
    echo: Echo,
    also: frozenset[str] = frozenset(),
    near_ties: bool = False,
) -> tuple[onnx.ModelProto, ParityReport]:
    """Convert one graph, check it, and hold it to PyTorch on every case (``near_ties``: a graph that max-unpools,
    see ``check_parity``); raises ``ParityError`` if it disagrees, ``AetoolError`` if a ``portable`` graph holds an
    operator outside ``portable.PORTABLE_OPS`` and ``also``."""
    proto = to_onnx(spec)
    check_onnx(proto)
    foreign = [op for op in foreign_operators(proto) if op not in also]
    if target == contract.PORTABLE and foreign:
        raise AetoolError(
            f"the portable {label} graph uses {', '.join(foreign)}, which not every runtime implements; "
            f"export with --target {contract.ONNXRUNTIME}"
        )
    report = check_parity(
        cpu_session(proto),
        torch_reference(reference, spec.output_names),
        cases,
        atol=atol,
        graph=label,
        scales=spec.scales,
        exact=float64_reference(reference, spec.output_names),
        near_ties=near_ties,
    )
    for line in report.lines():
        echo(line)
    report.raise_if_failed()
    return proto, report


def check_record(report: CheckReport) -> dict[str, Any]:
    """What a file's ``checked_in`` metadata keeps of a check: the tolerance, the cases, and per installed runtime
    its version, verdict, largest difference from onnxruntime and the reason for a ✗."""
    runtimes = {}
    for result in report.results:
        if result.installed:
            entry = {"version": result.version, "ok": result.ok, "max_abs": result.max_abs}
            runtimes[result.runtime] = entry | ({"error": result.error} if result.error else {})
    return {"against": "onnxruntime", "atol": report.atol, "cases": report.cases, "runtimes": runtimes}


def _run_everywhere(
    proto: onnx.ModelProto,
    path: Path,
    *,
    label: str,
    precision: str,
    multiple_of: int | None,
    strict: bool,
    echo: Echo,
) -> CheckReport:
    """Run a graph in every installed runtime against onnxruntime (``aetool.check``, within the tolerance of its
    ``precision``, on sizes in multiples of the net's ``multiple_of``); with ``strict`` (the portable target's fp32
    graphs) raise ``ParityError`` when one fails it. The report names ``path``, where the graph is to be written
    (it was checked in a temporary file)."""
    report = check_bytes(proto.SerializeToString(), atol=ATOL[precision], multiple_of=multiple_of)
    report.file = str(path)
    ran = ", ".join(
        f"{'✓' if r.ok else '✗'} {r.runtime}" + (f" {r.max_abs:.1e}" if r.ok and r.runtime != "onnxruntime" else "")
        for r in report.results
        if r.installed
    )
    echo(f"the {label} graph in every installed runtime, against onnxruntime: {ran}")
    for result in report.results:
        if not result.installed and result.error:  # a broken install: not a verdict on the graph, but said
            echo(f"  – {result.runtime}: {result.error}")
    for result in report.failed:
        echo(f"  ✗ {result.runtime} {result.version}: {result.error}")
    if strict and report.failed:
        first = report.failed[0]
        raise ParityError(
            f"the portable {label} graph fails in {first.runtime} {first.version}: {first.error}; nothing was written"
        )
    return report


def _test_set(images: np.ndarray, facts: metadata.ModelFacts, *, crops: bool = False) -> TestSet:
    """The test images as training scored them: noisy inputs (same noise, same seed) for a denoising model;
    ``crops``: they are centre crops of test images of several sizes, which the description says."""
    what = "test images" if facts.dataset == "images" else "test digits"
    if crops:
        what = f"{what} (centre crops {images.shape[2]}×{images.shape[3]} (height×width), the size all of them hold)"
    if not facts.noise:
        return TestSet(images, images, f"clean {what}")
    noisy = facts.noise.apply(images, np.random.default_rng(TEST_NOISE_SEED))
    return TestSet(noisy, images, f"{what} with noise {facts.noise}")


def _variant(
    precision: str,
    fp32: onnx.ModelProto,
    *,
    target: Path,
    cases: list[Case],
    test: TestSet | None,
    calibration: np.ndarray | None,
    max_mse_rise: float,
    echo: Echo,
) -> tuple[onnx.ModelProto, VariantReport]:
    """Make one fp16/int8 variant and measure it against the fp32 graph; raises ``ParityError`` if it lost too much."""
    with tempfile.TemporaryDirectory() as workdir:
        proto, method = variants.make(precision, fp32, workdir=Path(workdir), calibration=calibration)
    report = variants.measure(
        proto,
        cpu_session(fp32),
        precision=precision,
        method=method,
        file=target.name,
        cases=cases,
        test=test,
        max_mse_rise=max_mse_rise,
    )
    for line in report.lines():
        echo(line)
    report.raise_if_failed()
    return proto, report


def check_target(path: Path) -> None:
    """Refuse, before any work, a target that is a folder, not ``.onnx``, not named in UTF-8, or in a folder that
    cannot be written (tried by writing there, so a read-only file system is found too). Missing folders on the way
    are created when the files are written, so the nearest one that exists is tried instead."""
    if path.is_dir():
        raise AetoolError(f"cannot export to {path}: it is a folder; name the file, e.g. {path / 'model.onnx'}")
    if path.suffix != ".onnx":
        raise AetoolError(f"cannot export to {path}: the file name must end in .onnx")
    if not is_utf8(path.name):
        raise AetoolError(
            f"cannot export to {path}: its name is not UTF-8 text, which ONNX metadata must be (it names the "
            "file's decoder); rename it"
        )
    check_folder(path.parent, file=path.name)


def holds_detector(path: Path) -> bool:
    """Whether ``path`` is a model file with an anomaly record (a calibrated detector); False for no file, or one
    that is not a model."""
    if not path.is_file():
        return False
    try:
        proto = onnx.load(path, load_external_data=False)
    except (OSError, ValueError, DecodeError):
        return False
    return any(prop.key == contract.ANOMALY for prop in proto.metadata_props)


def export_graph(
    net: Autoencoder,
    path: Path,
    facts: metadata.ModelFacts,
    *,
    options: ExportOptions,
    data: ExportData,
    echo: Echo,
    detector: Detector | None = None,
) -> ExportResult:
    """Model graph, decoder graph and variants of a CPU network in eval mode, each verified before any is written.

    With a ``detector`` the model graph is the detector's (the model and its anomaly score), held to PyTorch and its
    scores also to the numpy runtime's; a portable detector may also use ``scores.DETECTOR_OPS``; it has no variants.
    """
    check_target(path)
    metadata.created()  # a $SOURCE_DATE_EPOCH it cannot take is refused before the work
    if detector is not None and options.precisions:
        raise AetoolError(f"a detector is written in fp32 only; leave out {', '.join(options.precisions)}")
    images = None if data.test_images is None else as_images(data.test_images)
    unpool = isinstance(net, ConvAE) and net.uses_indices
    cases = image_cases(
        channels=net.channels, size=net.size, unpool=unpool, multiple_of=net.multiple_of, test_images=images
    )
    check_module(net, cases, atol=options.atol)
    target, strict = options.target, options.target == contract.PORTABLE
    scored: dict[str, str] = {}  # the detector's metadata
    if detector is None:
        spec = model_spec(net, target=target)
        proto, report = _verified(
            spec, net, cases, atol=options.atol, target=target, label="model", echo=echo, near_ties=unpool
        )
    else:
        spec, head = detector.export_spec(net, target=target), detector.module(net)
        proto, report = _verified(
            spec,
            head,
            cases,
            atol=options.atol,
            target=target,
            label="detector",
            echo=echo,
            also=DETECTOR_OPS,
            near_ties=unpool,
        )
        scored = detector.metadata(proto, cases, atol=options.atol, echo=echo)
    result = ExportResult(path, report)
    # A detector records the runtimes it fails in (scores.DETECTOR_OPS says which) rather than being refused.
    graph, everywhere = ("model", strict) if detector is None else ("detector", False)
    result.checked_in[path] = _run_everywhere(
        proto, path, label=graph, precision="fp32", multiple_of=net.multiple_of, strict=everywhere, echo=echo
    )
    files = {path: proto}
    decoder_digest = ""

    if net.decodes_codes:
        spec = decoder_spec(net)
        code = code_cases(tuple(spec.example.shape[1:]))
        decoder, result.decoder_parity = _verified(
            spec, Decoder(net), code, atol=options.atol, target=target, label="decoder", echo=echo
        )
        result.decoder_path = contract.decoder_path(path)
        result.checked_in[result.decoder_path] = _run_everywhere(
            decoder, result.decoder_path, label="decoder", precision="fp32", multiple_of=None, strict=strict, echo=echo
        )
        props = metadata.metadata(
            facts,
            decoder,
            spec=metadata.code_spec(decoder),
            precision="fp32",
            parity=result.decoder_parity.to_dict(),
            decoder="",
            target=target,
            checked_in=check_record(result.checked_in[result.decoder_path]),
        )
        metadata.write(decoder, props)
        files[result.decoder_path] = decoder
        # onnx.save_model writes exactly these bytes: the model records their digest, so a crash between the renames
        # of one export (a new model beside an old decoder) is caught when the runtime opens the decoder
        decoder_digest = hashlib.sha256(decoder.SerializeToString()).hexdigest()
    decoder_name = result.decoder_path.name if result.decoder_path else ""

    image_spec = metadata.image_spec(proto, multiple_of=net.multiple_of, polarity=facts.polarity)
    test = None if images is None else _test_set(images, facts, crops=data.test_crops)
    for precision in options.precisions:
        target_path = contract.variant_path(path, precision)
        variant, variant_report = _variant(
            precision,
            proto,
            target=target_path,
            cases=cases,
            test=test,
            calibration=data.calibration if net.multiple_of is not None else None,
            max_mse_rise=options.max_mse_rise,
            echo=echo,
        )
        result.checked_in[target_path] = _run_everywhere(
            variant,
            target_path,
            label=precision,
            precision=precision,
            multiple_of=net.multiple_of,
            strict=False,
            echo=echo,
        )
        props = metadata.metadata(
            facts,
            variant,
            spec=image_spec,
            precision=precision,
            parity=None,
            decoder=decoder_name,
            target=target,
            checked_in=check_record(result.checked_in[target_path]),
            variant=variant_report.to_dict(),
            decoder_sha256=decoder_digest,
        )
        metadata.write(variant, props)
        result.variants.append(variant_report)
        result.variant_paths.append(target_path)
        files[target_path] = variant

    props = metadata.metadata(
        facts,
        proto,
        spec=image_spec,
        precision="fp32",
        parity=result.parity.to_dict(),
        decoder=decoder_name,
        decoder_sha256=decoder_digest,
        target=target,
        checked_in=check_record(result.checked_in[path]),
    )
    metadata.write(proto, props | scored)
    write_files({where: partial(onnx.save_model, file, save_as_external_data=False) for where, file in files.items()})
    echo("wrote " + ", ".join(str(p) for p in result.paths))
    stale = _remove_stale_siblings(path, written=set(files))
    if stale:
        echo(f"removed {', '.join(str(p) for p in stale)}, left from an earlier export to {path.name}")
    return result


def _remove_stale_siblings(path: Path, *, written: set[Path]) -> list[Path]:
    """Delete the decoder and variant files an earlier export to ``path`` wrote and this one did not (an old int8
    file would pair with the new decoder): one export, one set of files. Only files aetool's exporter wrote as a
    decoder graph or a variant (told by their metadata) go; a model of another export or a file of the user's that
    merely has such a name stays. Returns what was removed."""
    decoder = contract.decoder_path(path)
    siblings = [decoder, *(contract.variant_path(path, p) for p in contract.PRECISIONS)]
    stale = [
        sibling
        for sibling in siblings
        if sibling not in written
        and sibling.is_file()
        and _written_as(sibling) == ("decoder" if sibling == decoder else "variant")
    ]
    for sibling in stale:
        sibling.unlink()
    return stale


def _written_as(path: Path) -> str | None:
    """``"decoder"`` or ``"variant"`` for a file aetool's exporter wrote as one (its metadata says so), else None
    (a model file, another tool's file, one that cannot be read)."""
    try:
        props = metadata.read(onnx.load(path, load_external_data=False))
    except (OSError, ValueError, DecodeError):  # unreadable: not ours to remove
        return None
    if contract.VARIANT in props:
        return "variant"
    try:
        parity = json.loads(props.get(contract.PARITY) or "null")
    except ValueError:
        return None
    return "decoder" if isinstance(parity, dict) and parity.get("graph") == "decoder" else None


def export_model(
    net: Autoencoder,
    path: str | Path,
    *,
    facts: metadata.ModelFacts,
    options: ExportOptions = ExportOptions(),
    test_images: np.ndarray | None = None,
    calibration: np.ndarray | None = None,
    echo: Echo = print,
) -> ExportResult:
    """Export ``net`` to ``path`` (and its decoder beside it), verified against PyTorch within ``options.atol``.

    ``facts`` (registry name, architecture, dataset, noise, epochs, test MSE) go into the file's metadata.
    ``test_images`` (N×28×28, uint8 or floats in [0, 1]) add real digits to the parity inputs and score the
    variants ``options.precisions`` asks for; ``calibration`` (N×1×H×W float32) calibrates static int8 for conv
    models. Raises ``ParityError``, and writes nothing, if any output of any case differs by more than
    ``options.atol`` (scaled by the output's magnitude where that exceeds 1) or a variant's test MSE rises by more
    than ``options.max_mse_rise``; ``AetoolError`` for a target that cannot be written; ``TypeError`` for an
    ``echo`` that is not a function (it takes each line printed).
    """
    check_echo(echo)
    cpu_copy = copy.deepcopy(net).cpu().eval()  # leave the caller's network where and as it is
    data = ExportData(test_images, calibration)
    return export_graph(cpu_copy, Path(path), facts, options=options, data=data, echo=echo)


def _stacked(images: ImageSet, *, count: int, multiple_of: int | None, kind: str) -> np.ndarray:
    """Up to ``count`` images as one N×C×H×W uint8 array: as they are when they share a size the model takes, else
    centre crops to the largest size (a multiple of ``multiple_of``) that every one of them holds. Images smaller
    than one multiple are left out (a 1×1 one cropped every image to nothing: a traceback in the parity check);
    raises ``AetoolError`` naming ``kind`` (validation, training) when no image is that large."""
    step = multiple_of or 1
    usable = np.array([i for i, (h, w) in enumerate(images.sizes()) if min(h, w) >= step], dtype=np.int64)
    if not len(usable):
        raise AetoolError(
            f"no {kind} image of the run is at least {step}×{step} pixels, the smallest the model takes, so none can "
            "check the exported file; add larger ones"
        )
    chosen = images.subset(usable[:count])
    height = min(h for h, _ in chosen.sizes()) // step * step
    width = min(w for _, w in chosen.sizes()) // step * step
    if isinstance(chosen.images, np.ndarray) and chosen.images.shape[2:] == (height, width):
        return chosen.images
    crops = []
    for image in chosen.images:
        top, left = (image.shape[1] - height) // 2, (image.shape[2] - width) // 2
        crops.append(np.asarray(image)[:, top : top + height, left : left + width])
    return np.stack(crops)


def _run_data(run: Run, options: ExportOptions) -> ExportData:
    """Test images (and calibration images for static int8) for a run's export: the run's own test split or
    validation images, read as training read them, from ``options.data_dir``, ``$AETOOL_DATA_DIR`` or the data the
    run was trained on; raises ``AetoolError`` when variants need them and there are none."""
    config = run.config
    if config.dataset == "images":
        if options.data_dir is not None:
            raise AetoolError(
                f"--data-dir names a folder of IDX files, but {run.path} was trained on the images of {config.data}, "
                "which the export reads itself; leave --data-dir out"
            )
        found = config.data is not None and bool(find_images_or_none(config.data))
        settings = config
    else:
        data_dir = resolve_data_dir(options.data_dir, config.dataset)  # per dataset
        trained_on = resolve_data_dir(config.data_dir, config.dataset) if config.data_dir else None
        if data_dir is None and trained_on is not None and trained_on.is_dir():
            data_dir = trained_on
        found = data_dir is not None
        settings = replace(config, data_dir=str(data_dir)) if data_dir else config
    static_int8 = "int8" in options.precisions and run.net.multiple_of is not None
    if not found:
        if options.precisions:
            calibrated = " (and int8 conv files calibrated on training images)" if static_int8 else ""
            where = (
                f"the run's own images, which are no longer in {config.data}: put them back there (the run's split "
                "is drawn from them), or export without the variant"
                if config.dataset == "images"
                else "give the MNIST folder with --data-dir or $AETOOL_DATA_DIR"
            )
            raise AetoolError(
                f"{' and '.join(options.precisions)} files are checked on test images{calibrated}: {where}"
            )
        return ExportData()
    data, _ = load_training_data(settings, warn=False)  # training warned of skipped files
    test = _stacked(data.test, count=len(data.test), multiple_of=run.net.multiple_of, kind="validation")
    calibration = None
    if static_int8:
        train = _stacked(data.train, count=CALIBRATION_IMAGES, multiple_of=run.net.multiple_of, kind="training")
        calibration = as_images(train)
    return ExportData(test, calibration, test_crops=set(data.test.sizes()) != {test.shape[2:]})


def find_images_or_none(source: str) -> list[Path]:
    """The images a run was trained on, or none when they are gone."""
    try:
        return find_images(source, warn=False)[0]  # training warned of what the folder lacks
    except DataError:
        return []


def trivial_run(run: Run) -> str | None:
    """Why ``run`` learned nothing useful (its recorded test MSE does not beat a trivial output by a clear margin:
    ``train.loop.beaten``), or None when it does or was not scored."""
    return trivial_line(run.folder.read_metrics())


def run_facts(run: Run) -> metadata.ModelFacts:
    """What the metadata says of a trained run's model: its registry name, architecture, data, noise, epochs trained,
    test MSE, channels and the checkpoint's digest."""
    config = run.config
    return metadata.ModelFacts(
        config.model,
        config.arch,
        dataset=config.dataset,
        noise=config.noise_spec,
        epochs=run.epoch,
        test_mse=run.test_mse,
        channels=run.net.channels,
        checkpoint_sha256=run.folder.checkpoint_digest(),
    )


def export_run(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    options: ExportOptions = ExportOptions(),
    over_detector: bool = False,
    echo: Echo = print,
) -> ExportResult:
    """Export a training run's model, with the variants ``options.precisions`` asks for beside it.

    ``out`` is the file to write, or a folder to hold ``model.onnx`` (default: the run folder); a calibrated
    anomaly detector there is refused (its threshold and calibration would be lost) unless ``over_detector``.
    Model name, architecture, dataset, noise and epochs come from the run's config, the test MSE from its history.
    Real test digits (``options.data_dir``, else ``$AETOOL_DATA_DIR``, else the folder the run was trained on if it
    is still there) join the parity inputs, and each variant's test MSE is measured against the fp32 file's; static
    int8 for conv models calibrates on the first 256 training digits. Raises ``AetoolError`` for a run that cannot
    be read, a target that cannot be written or holds a detector, or variants without test digits (their MSE could
    not be checked), ``ParityError`` as :func:`export_model` does, and ``TypeError`` for ``options`` that are not
    an ``ExportOptions``, an ``echo`` that is not a function and an ``over_detector`` that is not True or False.
    """
    if not isinstance(options, ExportOptions):  # a dict, say: it failed on a missing attribute
        raise TypeError(f"export_run's options are an ExportOptions(…), got {type(options).__name__}")
    check_echo(echo)
    over_detector = checked_switch(over_detector, name="over_detector")
    folder = RunFolder.at(run_dir)
    with folder.in_use():  # no run trained into the folder while its model is written
        run = folder.load()
        facts = run_facts(run)
        path = Path(out) if out is not None else run.folder.model_file
        check_target(path)
        metadata.created()  # a $SOURCE_DATE_EPOCH it cannot take is refused before the work
        if not over_detector and holds_detector(path):
            raise AetoolError(
                f"{path} is a calibrated anomaly detector; the plain model written there would drop its threshold "
                "and calibration: export to another file (-o), or a detector again (--anomaly: calibrated anew at "
                "the defaults; aetool calibrate for your images and rate), or remove the file first"
            )
        data = _run_data(run, options)
        if trivial := trivial_run(run):
            echo(f"warning: {trivial}; exported as asked (aetool train exports such a run only with --allow-trivial)")
        if run.config.ends_in_detector:  # a plain model had no word of it (trial 86)
            echo(
                f"note: {run.config.model} runs end in a calibrated detector; this plain model has no score or "
                f"threshold: aetool calibrate {folder.path} (or export --anomaly) writes the detector"
            )
        return export_graph(run.net, path, facts, options=options, data=data, echo=echo)
