"""What a model file holds, and which models are bundled: the data behind ``aetool info`` and ``aetool models``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aetool.errors import ModelFileError
from aetool.runtime import contract
from aetool.runtime.model import check_contract, decoder_file, open_session, parse_metadata
from aetool.runtime.registry import bundled_index, models_dir, resolve


def describe(model: str | Path) -> dict[str, Any]:
    """Inputs, outputs, metadata, parity summary, size and decoder of a model file, even one off the contract."""
    path = resolve(model)
    session = open_session(path)
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map)
    try:
        spec = check_contract(session, path, metadata)
        problem = None
    except ModelFileError as err:
        spec, problem = None, str(err)
    decoder = decoder_file(path, metadata)
    return {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "inputs": [_tensor(t) for t in session.get_inputs()],
        "outputs": [_tensor(t) for t in session.get_outputs()],
        "contract": problem or "ok",
        "input_spec": None
        if spec is None
        else {"size": spec.size, "multiple_of": spec.multiple_of, "polarity": spec.polarity},
        "opset": metadata.get(contract.OPSET),
        "precision": metadata.get(contract.PRECISION),
        "decoder": {"file": str(decoder), "size_bytes": decoder.stat().st_size} if decoder.is_file() else None,
        "parity": summarise_parity(metadata.get(contract.PARITY)),
        "metadata": metadata,
    }


def _tensor(arg: Any) -> dict[str, Any]:
    return {"name": arg.name, "shape": arg.shape, "type": arg.type.removeprefix("tensor(").removesuffix(")")}


def summarise_parity(record: Any) -> dict[str, Any] | None:
    """The export's parity record in two facts: whether it passed, and the worst max-abs difference in it."""
    if not isinstance(record, dict):
        return None
    worst = max(_max_abs_values(record), default=None)
    cases = record.get("cases")
    return {
        "passed": record.get("passed"),
        "worst_max_abs": worst,
        "cases": len(cases) if isinstance(cases, list) else None,
    }


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


def bundled_models() -> list[dict[str, Any]]:
    """One record per bundled model: its index entry, file size, precision and test MSE (index, else metadata)."""
    records = []
    for name, entry in bundled_index().items():
        path = models_dir() / entry["file"]
        record = {"name": name, **entry, "path": str(path), "size_bytes": None}
        if path.is_file():
            record["size_bytes"] = path.stat().st_size
            missing = [key for key in (contract.PRECISION, contract.TEST_MSE) if record.get(key) is None]
            if missing:
                metadata = parse_metadata(open_session(path).get_modelmeta().custom_metadata_map)
                record.update({key: metadata.get(key) for key in missing})
        records.append(record)
    return records
