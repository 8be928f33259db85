"""A model file's ``metadata_props`` decoded, and every field the runtime reads checked for type and range.

A model file may come from anyone, so its metadata is input like any other: JSON nested thousands deep, a parity
record whose ``passed`` is a list, an ``input_spec.multiple_of`` of 10**7 (a 28×28 digit padded to a page of
10**14 pixels). :func:`parse_metadata` decodes without ever raising (a value it cannot decode stays text);
:func:`check_metadata` then refuses the first field the runtime would misread, in one line naming it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aetool.errors import ModelFileError
from aetool.runtime import contract
from aetool.runtime.noise import NOISE_KINDS, Noise

MAX_MULTIPLE_OF = 64  # aetool's conv models use 4; padding to 64 adds at most 63 rows and columns of black
MAX_JSON_DEPTH = 20  # aetool's deepest record (parity) is 4 levels
MAX_VALUE_CHARS = 1 << 20  # one metadata value; aetool's longest (parity) is a few kB
MAX_NAME_CHARS = 200
KINDS = ("pca", "dense", "conv")
DATASETS = ("mnist", "fashion-mnist", "images")  # the two IDX datasets, or a folder or glob of your own
PRECISIONS = ("fp32", *contract.PRECISIONS)
JSON_KEYS = frozenset(
    {
        contract.ARCHITECTURE,
        contract.NOISE,
        contract.INPUT_SPEC,
        contract.PARITY,
        contract.VERSIONS,
        contract.VARIANT,
        contract.OPERATORS,
        contract.CHECKED_IN,
        contract.ANOMALY,
    }
)
NUMBER_KEYS = frozenset(
    {contract.EPOCHS, contract.TEST_MSE, contract.OPSET, contract.CONTRACT_VERSION, contract.CHANNELS}
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Undecoded(str):
    """A JSON or number field's text that did not decode (broken, nested too deep, or too long): kept as text so
    ``aetool info`` can still show it, and refused by :func:`check_metadata`."""


def parse_metadata(props: dict[str, str]) -> dict[str, Any]:
    """The file's ``metadata_props`` with JSON and numbers decoded; empty values become ``None``; a value that does
    not decode within the limits stays :class:`Undecoded` text. Never raises."""
    parsed: dict[str, Any] = {}
    for key, text in props.items():
        parsed[key] = text
        if key in JSON_KEYS | NUMBER_KEYS:
            parsed[key] = _decode(text) if text else None
    return parsed


def _decode(text: str) -> Any:
    if len(text) > MAX_VALUE_CHARS:
        return Undecoded(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the interpreter's stack
        return Undecoded(text)
    return value if json_depth(value) <= MAX_JSON_DEPTH else Undecoded(text)


def json_depth(value: Any) -> int:
    """How deep lists and objects nest in a decoded JSON value (0 for a scalar), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def check_metadata(path: object, metadata: dict[str, Any]) -> None:
    """Raise ``ModelFileError`` naming the first field the runtime reads that has the wrong type or range."""
    for key, value in metadata.items():
        if isinstance(value, Undecoded):
            raise _bad(
                path, key, f"valid JSON of at most {MAX_JSON_DEPTH} levels and {MAX_VALUE_CHARS:,} characters", value
            )
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise _bad(path, key, f"at most {MAX_VALUE_CHARS:,} characters", value)
    for key, check, wanted in _CHECKS:
        value = metadata.get(key)
        if value is not None and not check(value):
            raise _bad(path, key, wanted, value)


def check_input_spec(path: object, spec: Any, *, channels: int) -> tuple[int, str]:
    """``multiple_of`` and ``polarity`` of a metadata ``input_spec`` for a model of ``channels`` input channels
    (None: 1, and white-on-black for grey models, MNIST's world and round 1's files, as-is for colour ones, which
    no digit model is); raises ``ModelFileError`` for a spec that is not an object, a ``multiple_of`` outside
    1–``MAX_MULTIPLE_OF`` or an unknown polarity."""
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise _bad(path, contract.INPUT_SPEC, 'an object with "multiple_of" a positive integer or null', spec)
    multiple_of = spec.get("multiple_of")
    multiple_of = 1 if multiple_of is None else multiple_of
    if not _integer(multiple_of, 1, MAX_MULTIPLE_OF):
        raise ModelFileError(
            f'{path}: metadata {contract.INPUT_SPEC!r} must have "multiple_of" a positive integer up to '
            f"{MAX_MULTIPLE_OF} or null, got {_shown(multiple_of)}"
        )
    polarity = spec.get("polarity") or (contract.POLARITY if channels == 1 else contract.AS_IS)
    if polarity not in contract.POLARITIES:
        raise ModelFileError(
            f"{path}: metadata {contract.INPUT_SPEC!r} polarity must be one of {', '.join(contract.POLARITIES)}, "
            f"got {_shown(polarity)}"
        )
    return multiple_of, polarity


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable()


def _file_name(value: Any) -> bool:
    return _name(value) and "/" not in value and "\\" not in value and value not in (".", "..")


def noise_from_record(value: Any) -> Noise:
    """The training noise a ``noise`` record holds: ``{"level": float ≥ 0, "kind": one of NOISE_KINDS}`` (kind
    ``gaussian`` when absent or null; no noise at level 0) or ``{"mix": text}`` of ``Noise.parse`` (a range or mix,
    at most ``MAX_NAME_CHARS`` characters). Raises ``ValueError`` for a record of another shape."""
    if not isinstance(value, dict):
        raise ValueError("not an object")
    mix, level, kind = value.get("mix"), value.get("level", 0.0), value.get("kind") or "gaussian"
    if mix is not None:
        if not isinstance(mix, str) or len(mix) > MAX_NAME_CHARS:
            raise ValueError(f"mix must be noise text of at most {MAX_NAME_CHARS} characters")
        return Noise.parse(mix)
    if kind not in NOISE_KINDS or not _number(level):
        raise ValueError("level must be a finite number ≥ 0 and kind a noise kind")
    return Noise.single(float(level), kind=kind)


def _noise(value: Any) -> bool:
    try:
        noise_from_record(value)
    except ValueError:
        return False
    return True


def _parity(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("passed", False), bool)
        and isinstance(value.get("cases", []), list)
    )


_CHECKS = (
    (contract.MODEL_NAME, _name, f"a printable name of at most {MAX_NAME_CHARS} characters"),
    (contract.MODEL_KIND, lambda v: v in KINDS, f"one of {', '.join(KINDS)}"),
    (contract.DATASET, lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    (contract.PRECISION, lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    (contract.CHANNELS, lambda v: v in (1, 3) and not isinstance(v, bool), "1 or 3"),
    (contract.COLOUR_SPACE, lambda v: v in contract.COLOUR_SPACES.values(), "gray or srgb"),
    (contract.EPOCHS, lambda v: _integer(v, 0, 10**6), "a whole number of epochs, 0 to 1,000,000"),
    (contract.OPSET, lambda v: _integer(v, 1, 1000), "an opset number"),
    (contract.TEST_MSE, _number, "a finite number ≥ 0, or empty"),
    (
        contract.NOISE,
        _noise,
        f'{{"level": a finite number ≥ 0, "kind": one of {", ".join(NOISE_KINDS)}}} or {{"mix": noise text}}',
    ),
    (contract.PARITY, _parity, 'an object whose "passed" is true or false and "cases" a list'),
    (contract.DECODER, lambda v: v == "" or _file_name(v), "the name of a file beside the model"),
    (contract.DECODER_SHA256, lambda v: v == "" or bool(_SHA256.fullmatch(v)), "64 lowercase hex digits"),
    (contract.CHECKPOINT_SHA256, lambda v: v == "" or bool(_SHA256.fullmatch(v)), "64 lowercase hex digits"),
    (contract.ARCHITECTURE, lambda v: isinstance(v, dict), "an object"),
    (contract.VERSIONS, lambda v: isinstance(v, dict), "an object"),
    (contract.VARIANT, lambda v: isinstance(v, dict), "an object"),
)


def _bad(path: object, key: str, wanted: str, value: Any) -> ModelFileError:
    return ModelFileError(f"{path}: metadata {key!r} must be {wanted}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value for an error line: its repr, cut to 60 characters, so a hostile megabyte stays out of the line."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}… ({len(text):,} characters)"
