"""Export end to end: convert, verify, annotate, add variants, and write all the files or none of them."""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from torch import nn

from aetool.errors import AetoolError, os_reason
from aetool.export import metadata, variants
from aetool.export.onnx_export import (
    MULTIPLE_OF,
    Decoder,
    Graph,
    check_onnx,
    decoder_graph,
    has_decoder,
    is_conv,
    model_graph,
    to_onnx,
)
from aetool.export.parity import (
    Case,
    ParityReport,
    as_images,
    check_parity,
    code_cases,
    cpu_session,
    image_cases,
    torch_reference,
)
from aetool.export.variants import TestSet, VariantReport
from aetool.models import get_spec
from aetool.runtime import contract
from aetool.runtime.idx import load_split, resolve_data_dir
from aetool.runtime.noise import TEST_NOISE_SEED, add_noise
from aetool.train.run import ONNX, load_run

CALIBRATION_DIGITS = 256

Echo = Callable[[str], Any]


@dataclass
class ExportResult:
    """What an export wrote, and the evidence that each file computes what the PyTorch model computes."""

    path: Path
    parity: ParityReport
    decoder_path: Path | None = None
    decoder_parity: ParityReport | None = None
    variants: list[VariantReport] = field(default_factory=list)
    variant_paths: list[Path] = field(default_factory=list)

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
        }


def _write_all(files: dict[Path, onnx.ModelProto]) -> None:
    """Write every file under a temporary name beside its target, then rename them all into place.

    Nothing is renamed until every file is written, and the temporary files go on failure, so an export either
    leaves all its files or none (and never a half-written one).
    """
    staged = {path: path.with_name(f".{path.name}.tmp{os.getpid()}") for path in files}
    try:
        for path, model in files.items():
            try:
                onnx.save_model(model, staged[path], save_as_external_data=False)
            except OSError as err:
                raise AetoolError(f"cannot write {path}: {os_reason(err)}") from None
        for path, tmp in staged.items():
            os.replace(tmp, path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def _verified(
    graph: Graph, reference: nn.Module, cases: list[Case], *, atol: float, label: str, echo: Echo
) -> tuple[onnx.ModelProto, ParityReport]:
    """Convert one graph, check it, and hold it to PyTorch on every case; refuse (raise) if it disagrees."""
    model = to_onnx(graph)
    check_onnx(model)
    report = check_parity(
        cpu_session(model), torch_reference(reference, graph.output_names), cases, atol=atol, graph=label
    )
    for line in report.lines():
        echo(line)
    report.raise_if_failed()
    return model, report


def _test_set(images: np.ndarray, facts: metadata.ModelFacts) -> TestSet:
    """The test digits as training scored them: noisy inputs (same noise, same seed) for a denoising model."""
    if facts.noise_level == 0:
        return TestSet(images, images, "clean test digits")
    noisy = add_noise(images, facts.noise_level, facts.noise_kind, TEST_NOISE_SEED)
    return TestSet(noisy, images, f"test digits with {facts.noise_kind} noise {facts.noise_level:g}")


def _variant(
    precision: str,
    graph: onnx.ModelProto,
    session: ort.InferenceSession,
    name: str,
    cases: list[Case],
    *,
    test: TestSet | None,
    calibration: np.ndarray | None,
    max_mse_rise: float,
    echo: Echo,
) -> tuple[onnx.ModelProto, VariantReport]:
    """Make one fp16/int8 variant and measure it against the fp32 graph; refuse (raise) if it lost too much."""
    with tempfile.TemporaryDirectory() as workdir:
        variant, method = variants.make(precision, graph, Path(workdir), calibration)
    report = variants.measure(precision, method, name, variant, session, cases, test=test, max_mse_rise=max_mse_rise)
    for line in report.lines():
        echo(line)
    report.raise_if_failed()
    return variant, report


def _export(
    model: nn.Module,
    path: Path,
    facts: metadata.ModelFacts,
    *,
    test_images: np.ndarray | None,
    atol: float,
    echo: Echo,
    precisions: tuple[str, ...] = (),
    calibration: np.ndarray | None = None,
    max_mse_rise: float = 0.10,
) -> ExportResult:
    """Model graph, decoder graph and variants of a CPU model in eval mode, each verified before any is written."""
    if path.is_dir():
        raise AetoolError(f"cannot export to {path}: it is a folder; name the file, e.g. {path / 'model.onnx'}")
    if path.suffix != ".onnx":
        raise AetoolError(f"cannot export to {path}: the file name must end in .onnx")
    if not path.parent.is_dir():
        problem = "is a file" if path.parent.exists() else "does not exist"
        raise AetoolError(f"cannot export to {path}: {path.parent} {problem}")
    images = None if test_images is None else as_images(test_images)
    cases = image_cases(conv=is_conv(model), unpool=getattr(model, "uses_indices", False), test_images=images)
    graph, report = _verified(model_graph(model), model, cases, atol=atol, label="model", echo=echo)
    result = ExportResult(path, report)
    files = {path: graph}

    if has_decoder(model):
        spec = decoder_graph(model)
        decoder, result.decoder_parity = _verified(
            spec, Decoder(model), code_cases(tuple(spec.example.shape[1:])), atol=atol, label="decoder", echo=echo
        )
        result.decoder_path = contract.decoder_path(path)
        metadata.write(
            decoder,
            metadata.metadata(
                facts,
                decoder,
                spec=metadata.code_spec(decoder),
                precision="fp32",
                parity=result.decoder_parity.to_dict(),
                decoder="",
            ),
        )
        files[result.decoder_path] = decoder
    decoder_name = result.decoder_path.name if result.decoder_path else ""

    image_spec = metadata.image_spec(graph, MULTIPLE_OF if is_conv(model) else None)
    session = cpu_session(graph)
    test = None if images is None else _test_set(images, facts)
    for precision in precisions:
        target = contract.variant_path(path, precision)
        variant, report = _variant(
            precision,
            graph,
            session,
            target.name,
            cases,
            test=test,
            calibration=calibration if is_conv(model) else None,
            max_mse_rise=max_mse_rise,
            echo=echo,
        )
        metadata.write(
            variant,
            metadata.metadata(
                facts,
                variant,
                spec=image_spec,
                precision=precision,
                parity=None,
                decoder=decoder_name,
                variant=report.to_dict(),
            ),
        )
        result.variants.append(report)
        result.variant_paths.append(target)
        files[target] = variant

    metadata.write(
        graph,
        metadata.metadata(
            facts, graph, spec=image_spec, precision="fp32", parity=result.parity.to_dict(), decoder=decoder_name
        ),
    )
    _write_all(files)
    echo("wrote " + ", ".join(str(p) for p in result.paths))
    return result


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    model_name: str,
    arch: dict[str, Any],
    dataset: str = "mnist",
    noise_level: float = 0.0,
    noise_kind: str = "gaussian",
    epochs: int = 0,
    test_mse: float | None = None,
    test_images: np.ndarray | None = None,
    atol: float = 1e-5,
    echo: Echo = print,
) -> ExportResult:
    """Export ``model`` to ``path`` (and its decoder beside it), verified against PyTorch within ``atol``.

    ``model_name`` is the registry name; ``arch``, ``dataset``, noise, ``epochs`` and ``test_mse`` are recorded in
    the file's metadata. ``test_images`` (N×28×28, uint8 or floats in [0, 1]) adds real digits to the parity
    inputs. Raises ``ParityError``, and writes nothing, if any output of any case differs by more than ``atol``
    (scaled by the output's magnitude where that exceeds 1).
    """
    facts = metadata.ModelFacts(
        model_name, get_spec(model_name).kind, dict(arch), dataset, noise_level, noise_kind, epochs, test_mse
    )
    cpu_copy = copy.deepcopy(model).cpu().eval()  # leave the caller's model where and as it is
    return _export(cpu_copy, Path(path), facts, test_images=test_images, atol=atol, echo=echo)


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    int8: bool = False,
    fp16: bool = False,
    max_mse_rise: float = 0.10,
    atol: float = 1e-5,
    echo: Echo = print,
) -> ExportResult:
    """Export a training run's model, optionally with fp16 and int8 variants beside it.

    ``out`` is the file to write, or a folder to hold ``model.onnx`` (default: the run folder). Model name,
    architecture, dataset, noise and epochs come from the run's config, the test MSE from its history.
    With ``data_dir`` (MNIST-style IDX files) real test digits join the parity inputs, and each variant's test MSE
    is measured against the fp32 file's; a variant whose MSE rises by more than ``max_mse_rise`` (0.10 = 10 %) is
    refused. Static int8 for conv models calibrates on the first 256 training digits. Without ``data_dir`` (or
    ``$AETOOL_DATA_DIR``) the folder the run was trained on is used if it is still there; variants are refused
    when no test digits can be found, since their MSE could not be checked.
    """
    run = load_run(run_dir)
    data_dir = resolve_data_dir(data_dir, run.config.dataset)  # --data-dir or $AETOOL_DATA_DIR, per dataset
    trained_on = resolve_data_dir(run.config.data_dir, run.config.dataset) if run.config.data_dir else None
    if data_dir is None and trained_on is not None and trained_on.is_dir():
        data_dir = trained_on
    precisions = tuple(p for p, wanted in (("fp16", fp16), ("int8", int8)) if wanted)
    if precisions and data_dir is None:
        calibrated = " (and int8 conv files calibrated on training digits)" if int8 and is_conv(run.model) else ""
        raise AetoolError(
            f"{' and '.join(precisions)} files are checked on test digits{calibrated}: give the "
            "MNIST folder with --data-dir or $AETOOL_DATA_DIR"
        )
    test_images = calibration = None
    if data_dir is not None:
        test_images = load_split(data_dir, "test")[0]
        if int8 and is_conv(run.model):
            calibration = as_images(load_split(data_dir, "train")[0][:CALIBRATION_DIGITS])
    config = run.config
    facts = metadata.ModelFacts(
        config.model,
        get_spec(config.model).kind,
        config.arch,
        config.dataset,
        config.noise,
        config.noise_kind,
        run.epoch,
        run.test_mse,
    )
    path = Path(out) if out is not None else run.path
    path = path / ONNX if path.is_dir() else path
    return _export(
        run.model,
        path,
        facts,
        test_images=test_images,
        atol=atol,
        echo=echo,
        precisions=precisions,
        calibration=calibration,
        max_mse_rise=max_mse_rise,
    )
