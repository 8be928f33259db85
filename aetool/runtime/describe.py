"""What a model file holds, and which models are bundled: the data behind ``aetool info`` and ``aetool models``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aetool.errors import ModelFileError
from aetool.runtime import contract
from aetool.runtime.metadata import parse_metadata
from aetool.runtime.onnxfile import OnnxFacts, read_facts
from aetool.runtime.registry import bundled_index, models_dir, resolve
from aetool.runtime.session import open_session, read_model
from aetool.runtime.spec import check_contract, contract_version, decoder_file

DECODER = "decoder"  # ModelInfo.contract of a decoder graph (input ``code``), which follows the decoders' contract


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, shape (symbolic dimensions by name) and element type."""

    name: str
    shape: list[int | str | None]
    type: str


@dataclass(frozen=True)
class ParitySummary:
    """An export's parity record in three facts: whether it passed, its worst max-abs difference, its case count."""

    passed: bool | None
    worst_max_abs: float | None
    cases: int | None


@dataclass(frozen=True)
class DecoderInfo:
    """The decoder graph beside a model; ``matches``: whether its SHA-256 is the one the model records (None when
    the model records none, as files exported before aetool recorded it); ``missing``: the model's metadata names
    a decoder that is not beside it (a model copied away from its decoder), ``size_bytes`` then None."""

    file: str
    size_bytes: int | None
    matches: bool | None = None
    missing: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """What ``aetool info`` shows of a model file; ``to_dict`` is its ``--json``."""

    file: str
    size_bytes: int  # the file's alone
    external_data: dict[str, int | None]  # each external data file the graph names, beside it: its size (None: gone)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    contract: str  # "ok", DECODER for a decoder graph, or why the file does not follow aetool's contract
    contract_version: int | None  # 1 for files that name none; None when the file names one this aetool cannot read
    input_spec: dict[str, Any] | None  # size, multiple_of, polarity, channels
    colour_space: str | None  # "gray" or "srgb"
    opset: Any
    precision: str | None
    decoder: DecoderInfo | None
    parity: ParitySummary | None
    target: str | None  # "portable" or "onnxruntime"; None for files exported before targets; a variant's (int8,
    # fp16) is that of its fp32 graph: whether its own operators run elsewhere, checked_in says
    operators: list[str] | None  # the graph's operator types, as the export recorded them
    graph_changed: bool  # the file's operators are not the ones its export recorded: another tool rewrote it
    checked_in: dict[str, Any] | None  # the export's runs in other runtimes (contract.CHECKED_IN)
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_changed(metadata: dict[str, Any], facts: OnnxFacts) -> bool:
    """Whether the file's graph holds other operators than its export recorded (``metadata`` parsed): a tool
    (onnxruntime's quantization or saved optimisations, a version converter) rewrote it and kept the metadata, whose
    precision, target, parity and runs-in records then describe aetool's graph, not this one. False where no
    operators are recorded (files of other tools, and aetool's before operators were)."""
    recorded = metadata.get(contract.OPERATORS)
    return isinstance(recorded, list) and sorted(map(str, recorded)) != list(facts.operators)


def _size_of(path: Path) -> int | None:
    """The size of a file in bytes, None when it is not there."""
    return path.stat().st_size if path.is_file() else None


def describe(model: str | Path) -> ModelInfo:
    """Inputs, outputs, metadata, parity summary, size and decoder of a model file, even one off the contract.

    ``model`` is a path or a bundled model's name. Raises ``ModelFileError`` for a file that is missing or will not
    load in onnxruntime (one that loads but breaks the contract is described, with the reason in ``contract``).
    """
    path = resolve(model)
    data = read_model(path)  # read once: for the session and for the graph's own facts
    session = open_session(path, data=data)
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map)
    spec, problem = None, None
    if not is_decoder(session):
        try:
            spec = check_contract(session, path, metadata)
        except ModelFileError as err:
            problem = str(err)
    facts = read_facts(data)
    try:
        version: int | None = contract_version(path, metadata)
    except ModelFileError:
        version = None
    return ModelInfo(
        file=str(path),
        size_bytes=path.stat().st_size,
        external_data={name: _size_of(path.parent / name) for name in dict.fromkeys(facts.external_data)},
        inputs=[_tensor(t) for t in session.get_inputs()],
        outputs=[_tensor(t) for t in session.get_outputs()],
        contract=problem or ("ok" if spec else DECODER),
        contract_version=version,
        input_spec=None if spec is None else asdict(spec),
        colour_space=None if spec is None else spec.colour_space,
        opset=facts.opset or metadata.get(contract.OPSET),  # the graph's own, also where a tool converted it
        precision=metadata.get(contract.PRECISION),
        decoder=_decoder(path, metadata),
        parity=summarise_parity(metadata.get(contract.PARITY)),
        target=metadata.get(contract.TARGET),
        operators=_strings(metadata.get(contract.OPERATORS)),
        graph_changed=graph_changed(metadata, facts),
        checked_in=checked if isinstance(checked := metadata.get(contract.CHECKED_IN), dict) else None,
        metadata=metadata,
    )


def is_decoder(session: Any) -> bool:
    """A decoder graph, as the exporter writes beside a model: one input ``code`` (N×D or N×C×h×w) and a
    ``reconstruction`` output."""
    inputs = session.get_inputs()
    outputs = [output.name for output in session.get_outputs()]
    return (
        len(inputs) == 1
        and inputs[0].name == contract.CODE
        and len(inputs[0].shape) in (2, 4)
        and contract.RECONSTRUCTION in outputs
    )


def _decoder(path: Path, metadata: dict[str, Any]) -> DecoderInfo | None:
    """The decoder beside a model, and whether it is the one the model was exported with; ``missing`` when the
    metadata names one that is not there (None when there is none and none is named, or the metadata names it
    wrongly, which the contract line says)."""
    try:
        decoder = decoder_file(path, metadata)
    except ModelFileError:
        return None
    if not decoder.is_file():
        return DecoderInfo(str(decoder), None, missing=True) if metadata.get(contract.DECODER) else None
    digest = metadata.get(contract.DECODER_SHA256)
    matches = hashlib.sha256(decoder.read_bytes()).hexdigest() == digest if isinstance(digest, str) and digest else None
    return DecoderInfo(str(decoder), decoder.stat().st_size, matches)


def _strings(value: Any) -> list[str] | None:
    return [str(item) for item in value] if isinstance(value, list) else None


def _tensor(arg: Any) -> TensorInfo:
    return TensorInfo(arg.name, list(arg.shape), arg.type.removeprefix("tensor(").removesuffix(")"))


def summarise_parity(record: Any) -> ParitySummary | None:
    """The export's parity record in three facts, or ``None`` when the file records none."""
    if not isinstance(record, dict):
        return None
    worst = max(_max_abs_values(record), default=None)
    cases = record.get("cases")
    passed = record.get("passed")
    return ParitySummary(
        passed if isinstance(passed, bool) else None, worst, len(cases) if isinstance(cases, list) else None
    )


def _max_abs_values(node: Any) -> Iterator[float]:
    if isinstance(node, dict):
        for key, value in node.items():
            if "max_abs" in key and isinstance(value, (int, float)):
                yield float(value)
            else:
                yield from _max_abs_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _max_abs_values(value)


@dataclass(frozen=True)
class BundledModel:
    """One bundled model as ``aetool models`` lists it (``size_bytes`` None when its file is missing)."""

    name: str
    file: str
    path: str
    size_bytes: int | None
    precision: str | None
    test_mse: float | None
    summary: str | None = None
    use: str | None = None  # what it is for, and what it was measured on
    decoder: str | None = None  # file name of its decoder graph
    bytes: int | None = None  # the shipped files together, decoder included
    problem: str | None = None  # why its file could not be read for the facts the index leaves out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bundled_models() -> list[BundledModel]:
    """One record per bundled model: its file, size, precision and test MSE (from the index, else the file; a
    file that will not load leaves them None and says why in ``problem``, so one broken file does not hide the
    others).

    Raises ``ModelFileError`` when the index is unreadable.
    """
    records = []
    for name, entry in bundled_index().items():
        path = models_dir() / entry["file"]
        facts = {key: entry.get(key) for key in (contract.PRECISION, contract.TEST_MSE)}
        size, problem = None, None
        if path.is_file():
            size = path.stat().st_size
            if None in facts.values():
                try:
                    metadata = parse_metadata(open_session(path).get_modelmeta().custom_metadata_map)
                except ModelFileError as err:
                    problem, metadata = str(err), {}
                metadata[contract.TEST_MSE] = contract.recorded_test_mse(metadata)  # a variant's own
                facts = {key: facts[key] if facts[key] is not None else metadata.get(key) for key in facts}
        test_mse = facts[contract.TEST_MSE]
        records.append(
            BundledModel(
                name=name,
                file=entry["file"],
                path=str(path),
                size_bytes=size,
                precision=facts[contract.PRECISION],
                test_mse=float(test_mse) if isinstance(test_mse, (int, float)) else None,
                summary=entry.get("summary"),
                use=entry.get("use"),
                decoder=entry.get("decoder"),
                bytes=entry.get("bytes"),
                problem=problem,
            )
        )
    return records
