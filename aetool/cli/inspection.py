"""``models``, ``info`` and ``check``: what the bundled models and a model file are, and where a file runs."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

from aetool.cli.app import app
from aetool.cli.options import Json, ModelNamed, complete_model, timeout_option
from aetool.cli.output import emit, escape_controls, fail, note, reporting


def _dimension(dim: int | str | None) -> str:
    """A tensor dimension as ``info`` shows it: a number, a name the exporter gave (``N``, ``4*h``), or ``?`` for
    an unnamed one (None, or a symbol PyTorch's exporter made up, such as ``s39``)."""
    if dim is None or (isinstance(dim, str) and re.fullmatch(r"s\d+", dim)):
        return "?"
    return str(dim)


@app.command()
def models(as_json: Json = False) -> None:
    """List the bundled models: what each is for and was measured on, file size, precision and test MSE."""
    with reporting(results=True):
        from aetool.runtime.describe import bundled_models
        from aetool.runtime.registry import INDEX, where_bundled

        records = bundled_models()
        if as_json:
            emit(json.dumps([record.to_dict() for record in records], indent=2))
        elif not records:
            note(f"no bundled models (no {INDEX} in {where_bundled()})")
        else:
            rows = [("name", "file", "size", "precision", "test MSE")] + [
                (r.name, r.file, _size(r.size_bytes), r.precision or "?", _number(r.test_mse)) for r in records
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                emit("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
            for record in records:
                if record.use:
                    emit(f"{record.name}: {record.use}")
        for record in records:
            if record.problem:
                note(f"warning: {record.name}: {record.problem}")


def _one_model(given: str | None, option: str | None) -> str:
    """The model named as the argument or with ``-m``; a usage error when neither or two different ones."""
    if given is not None and option is not None and given != option:
        fail(f"two models named: {given} and -m {option}; give one")
    model = given if given is not None else option
    if model is None:
        fail("give a model: a file (.onnx) or a bundled model's name (see aetool models)")
    return model


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model file (.onnx) or bundled model name.",
            metavar="NAME|FILE",
            show_default=False,
            autocompletion=complete_model,
        ),
    ] = None,
    model_option: ModelNamed = None,
    as_json: Json = False,
) -> None:
    """Show a model file's inputs, outputs, metadata, parity record and decoder."""
    model = _one_model(model, model_option)
    with reporting(results=True):
        from aetool.runtime.describe import DECODER, describe

        record = describe(model)
        if as_json:
            emit(json.dumps(record.to_dict(), indent=2))
            return
        external = "".join(
            f" (+ {_size(size)} in {name})" if size is not None else f" (+ {name}, missing)"
            for name, size in record.external_data.items()
        )
        emit(
            f"{record.file}  {_size(record.size_bytes)}{external}, {record.precision or 'precision ?'}, "
            f"opset {record.opset or '?'}"
        )
        for title, tensors in (("inputs", record.inputs), ("outputs", record.outputs)):
            for i, tensor in enumerate(tensors):
                shape = "×".join(_dimension(d) for d in tensor.shape)
                emit(f"{title if i == 0 else '':9}{tensor.name:18}{tensor.type:9}{shape}")
        version = f" (version {record.contract_version})" if record.contract_version else ""
        verdicts = {
            "ok": f"✓ follows the aetool ONNX contract{version}",
            DECODER: "✓ a decoder graph (code → reconstruction), which runs beside its model file",
        }
        emit(f"{'contract':9}" + verdicts.get(record.contract, f"✗ {record.contract}"))
        if record.graph_changed:
            emit(
                f"{'graph':9}✗ not the graph aetool exported: another tool rewrote it (its operators differ from the "
                "recorded ones), so the precision, parity, target and runs-in records below are that export's"
            )
        if record.input_spec:
            emit(f"{'images':9}{_image_spec(record.input_spec, record.colour_space)}")
        decoder = record.decoder
        mismatch = " ✗ not the decoder this model was exported with (SHA-256 differs)"
        if decoder is None:
            shown = "none"
        elif decoder.missing:
            shown = f"{decoder.file} ✗ missing: the metadata names it, but it is not beside the model (copy it there)"
        else:
            shown = f"{decoder.file} ({_size(decoder.size_bytes)}){mismatch if decoder.matches is False else ''}"
        emit(f"{'decoder':9}{shown}")
        parity = record.parity
        if parity:
            mark = {True: "✓ passed", False: "✗ FAILED"}.get(parity.passed, "? not recorded")  # type: ignore[arg-type]
            worst = f", worst max-abs {parity.worst_max_abs:.3g}" if parity.worst_max_abs is not None else ""
            emit(f"{'parity':9}{mark}{worst} ({parity.cases if parity.cases is not None else '?'} cases)")
        if record.target or record.operators:  # both from the file's metadata: escaped like every value of it
            operators = f": {_shown(', '.join(map(str, record.operators)), 1000)}" if record.operators else ""
            variant = record.precision not in (None, "fp32")
            of = f", of the fp32 graph this {record.precision} file was made from" if variant else ""
            emit(f"{'target':9}{_shown(record.target or '?')} (opset {record.opset or '?'}{of}){operators}")
        if record.checked_in:
            emit(f"{'runs in':9}{_checked_in(record.checked_in)}")
        if "anomaly" in record.metadata:
            emit(f"{'detector':9}{_detector_line(record.metadata['anomaly'])}")
        emit("metadata")
        for key, value in record.metadata.items():
            if key not in ("parity", "checked_in"):
                shown = json.dumps(value) if isinstance(value, (dict, list)) else value
                emit(f"  {_shown(key):17} {_shown(shown) if shown != '' else '(empty)'}")  # checkpoint_sha256: 17


@app.command()
def check(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model file (.onnx), its decoder, or a bundled model name.",
            metavar="NAME|FILE",
            show_default=False,
            autocompletion=complete_model,
        ),
    ] = None,
    model_option: ModelNamed = None,
    atol: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Largest allowed |runtime - onnxruntime|, × max(1, max|output|). Default: 1e-4 for fp32 files, "
            "1e-2 for fp16 and int8 ones.",
            show_default=False,
        ),
    ] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Check only this runtime: onnx-reference, opencv, opencv-classic, openvino; repeat for more. "
            "Default: every one installed.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
    timeout: Annotated[
        float | None,
        timeout_option(
            "Stop an onnxruntime call that runs longer (exit 124), 0.001 up to about 292 years; the other "
            "runtimes' calls run unbounded (Ctrl-C and SIGTERM stop them once a call returns). Default: no limit."
        ),
    ] = None,
) -> None:
    """Run a model file in every ONNX runtime installed here (onnxruntime; the ONNX reference evaluator, OpenCV
    DNN and OpenVINO where installed: the check extra) on fixed inputs and compare each with
    onnxruntime. Exit 0 when every one agrees, 1 when some fail or cannot load it."""
    model = _one_model(model, model_option)
    with reporting(results=True):
        from aetool.check import EXTRA, check_file

        try:
            only = ["onnxruntime", *runtime] if runtime else None
            report = check_file(model, atol=atol, only=only, timeout=timeout)
        except ValueError as err:  # --atol or --runtime, named in the message
            fail(str(err))
    emit(json.dumps(report.to_dict(), indent=2) if as_json else "\n".join(report.lines()))
    absent = [result.runtime for result in report.results if runtime and not result.installed]
    if absent:  # asked for by name, and not run
        fail(f"--runtime {absent[0]} is not installed here ({EXTRA})")
    if not report.passed:
        raise typer.Exit(1)


def _image_spec(spec: dict[str, Any], colour_space: str | None) -> str:
    """What images a model takes, in words: ``3 channels (srgb), any size (padded to a multiple of 4 by the image
    commands), polarity as-is (…)`` (and ``, 1 a call (…)`` for a file that fixes its batch). Not "any size
    divisible by 4": that is the graph's, and read as the commands' it had users crop their images (trial 89)."""
    channels, size, polarity = spec["channels"], spec["size"], spec["polarity"]
    kind = f"{channels} channel{'s' if channels > 1 else ''} ({colour_space})"
    multiple = spec["multiple_of"]
    sizes = (
        f"{size[1]}×{size[0]} (width×height) only"
        if size
        else f"any size (padded to a multiple of {multiple} by the image commands)"
        if multiple > 1
        else "any size"
    )
    why = "fed as they are" if polarity == "as-is" else "dark-on-light images are inverted for it"
    batch = f", {spec['batch']} a call (the file fixes its batch)" if spec.get("batch") else ""
    return f"{kind}, {sizes}{batch}, polarity {polarity} ({why})"


def _detector_line(record: object) -> str:
    """What ``info`` says of a file's ``anomaly`` metadata: its score and threshold, or why ``detect`` refuses it."""
    from aetool.runtime.anomaly import AnomalySpec

    try:
        spec = AnomalySpec.from_record(record)
    except ValueError as err:
        return f"✗ metadata 'anomaly': {_shown(err)}"
    if spec.threshold is None:
        return f"score {spec.score}; not calibrated"
    rule = ", ".join(f"{key} {value:g}" for key, value in (spec.rule or {}).items())
    images = spec.calibration.get("images")
    source = f" on {_shown(images)} normal images" if images is not None else ""
    return f"score {spec.score}; anomalous above {spec.threshold:.6g} ({rule}{source})"


def _shown(value: object, limit: int = 200) -> str:
    """A metadata value as a line of text: control characters (a terminal's escape sequences) escaped, and cut
    at ``limit`` characters, since a model file may come from anyone."""
    text = escape_controls(str(value))
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def _checked_in(record: dict[str, Any]) -> str:
    """The runtimes an export ran the file in, as ``✓ openvino 2026.4.1 (2.1e-07), ✗ opencv 5.0.0 (reason)``."""
    runs = record.get("runtimes")
    if not isinstance(runs, dict):
        return "? (unreadable record)"
    cells = []
    for name, run in runs.items():
        if not isinstance(run, dict):
            continue
        mark = "✓" if run.get("ok") else "✗"
        detail = run.get("error") or (f"{run['max_abs']:.1e}" if isinstance(run.get("max_abs"), float) else "")
        detail = "" if name == "onnxruntime" and run.get("ok") else f" ({detail})" if detail else ""
        cells.append(_shown(f"{mark} {name} {run.get('version') or '?'}{detail}"))
    return ", ".join(cells) + " (against onnxruntime, at export)"


def _size(size: int | None) -> str:
    return "missing" if size is None else f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def _number(value: object) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "?"
