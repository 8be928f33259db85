"""What aetool reads from an ONNX file's bytes before onnxruntime sees them, with no onnx package installed.

An ONNX file is a protobuf ``ModelProto``. This module walks its wire format (varints and length-delimited fields,
the same few rules ``tests/conftest.py`` writes files by) just far enough to learn what onnxruntime would do with
the file before it does it: the IR version and opsets the file declares, and every place whose tensor data lives
outside the file ("external data", in initializers, ``Constant`` attributes and sparse tensors, in subgraphs and
functions too). onnxruntime 1.17–1.23 reads external data from any path a file names, ``../../etc/hostname``
included, and a model's output can carry those bytes to whoever sent the file; aetool refuses such files (see
:func:`outside_folder` and ``session.inspect_model``) whatever onnxruntime is installed.

Why not ``onnx.load``: the onnx package would add 36 MB (onnx 1.23.2 with protobuf and ml_dtypes, measured in a
fresh venv) to an edge install of about 240 MB whose bar is 250 MB; this walk is about 100 lines and takes
0.4–2.3 ms for the bundled models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Subgraphs inside subgraphs (If, Loop, Scan bodies); aetool's own files have none. onnxruntime 1.18 took time
# exponential in the depth to open nested Ifs (8 deep 0.02 s, 12 0.09 s, 16 1.4 s, 20 27 s; 31, a 4 kB file,
# hours by that trend; README, Safety), while Ctrl-C and SIGTERM wait for it: 8 leaves what real models use.
MAX_GRAPH_NESTING = 8
# onnxruntime's marker for external data already in memory: the offset is read as a raw address (onnxruntime
# 1.18.0 crashed on offset 0; another offset reads the process's memory there into the weights).
MEMORY_ADDRESS_MARKER = "_ORT_MEM_ADDR_"
TRUNCATED = "its bytes end inside a field: a truncated file, or not ONNX at all"
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# Field numbers from onnx.proto3 of the messages that can hold tensors, and where those tensors sit.
_MODEL_GRAPH, _MODEL_IR, _MODEL_OPSET, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 1, 8, 20, 25
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE, _NODE_OP_TYPE, _NODE_DOMAIN = 1, 4, 7
# message kind → {field number: kind of the message in that field}
_CHILDREN: dict[str, dict[int, str]] = {
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "function": {7: "node", 11: "attribute"},  # 11: attribute_proto, the default values of its attributes
    "training": {1: "graph", 2: "graph"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


@dataclass(frozen=True)
class OnnxFacts:
    """What a ModelProto declares: its IR version, its opsets (domain → version; ``""`` is ONNX's own), the
    locations of the external data its tensors name, in the order they appear, and how many subgraphs (``If``,
    ``Loop`` and ``Scan`` bodies) its graphs hold; and the main graph's operator types, as an export records them
    (``export.metadata.operators``)."""

    ir_version: int
    opsets: dict[str, int]
    external_data: tuple[str, ...]
    subgraphs: int = 0
    operators: tuple[str, ...] = ()  # the main graph's operator types, sorted, other domains' as "domain:Op"

    @property
    def opset(self) -> int | None:
        """The version of the default (ONNX) domain, or None when the file imports none."""
        return self.opsets.get("", self.opsets.get("ai.onnx"))


def read_facts(data: bytes) -> OnnxFacts:
    """The :class:`OnnxFacts` of a serialized ModelProto; raises ``ValueError`` for bytes that are not one (a
    broken or truncated protobuf, a file without a graph, graphs nested more than ``MAX_GRAPH_NESTING`` deep)."""
    view = memoryview(data)
    ir_version, opsets, graph_found = 0, {}, False
    operators: set[str] = set()
    stack: list[tuple[str, memoryview, int]] = []
    for number, wire, value in _fields(view):
        if number == _MODEL_IR:
            ir_version = _int(value, wire, "ir_version")
        elif number == _MODEL_OPSET:
            domain, version = "", 0
            for field, field_wire, field_value in _fields(_message(value, wire, "opset_import")):
                if field == _OPSET_DOMAIN:
                    domain = _text(field_value, field_wire, "opset domain")
                elif field == _OPSET_VERSION:
                    version = _int(field_value, field_wire, "opset version")
            opsets[domain] = version
        elif number in (_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS):
            kind = {_MODEL_GRAPH: "graph", _MODEL_TRAINING: "training", _MODEL_FUNCTIONS: "function"}[number]
            graph_found |= number == _MODEL_GRAPH
            stack.append((kind, _message(value, wire, kind), 0))
            if number == _MODEL_GRAPH:
                operators |= set(_operators(stack[-1][1]))
    if not data:
        raise ValueError("it is empty (0 bytes)")
    if not graph_found:
        raise ValueError("it holds no graph")
    locations, subgraphs = _walk(stack)
    return OnnxFacts(ir_version, opsets, tuple(locations), subgraphs, tuple(sorted(operators)))


def _operators(graph: memoryview) -> Iterator[str]:
    """The operator type of each node of a GraphProto, ``domain:Op`` outside ONNX's own domain."""
    for number, wire, value in _fields(graph):
        if number != _GRAPH_NODE:
            continue
        op_type, domain = "", ""
        for field, field_wire, field_value in _fields(_message(value, wire, "node")):
            if field == _NODE_OP_TYPE:
                op_type = _text(field_value, field_wire, "node op_type")
            elif field == _NODE_DOMAIN:
                domain = _text(field_value, field_wire, "node domain")
        yield op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def _walk(stack: list[tuple[str, memoryview, int]]) -> tuple[list[str], int]:
    """The external-data locations of every tensor under the messages on ``stack``, and how many graphs are node
    attributes (subgraphs), walked without recursion."""
    locations: list[str] = []
    subgraphs = 0
    while stack:
        kind, data, depth = stack.pop()
        if kind == "tensor":
            locations += _tensor_location(data)
            continue
        nested = depth + (kind == "graph")
        if nested > MAX_GRAPH_NESTING:
            raise ValueError(f"its graphs are nested more than {MAX_GRAPH_NESTING} deep")
        children = _CHILDREN[kind]
        for number, wire, value in _fields(data):
            if number in children:
                stack.append((children[number], _message(value, wire, children[number]), nested))
                subgraphs += kind == "attribute" and children[number] == "graph"
    return locations, subgraphs


def _tensor_location(data: memoryview) -> Iterator[str]:
    """The external-data location a TensorProto names (``""`` when it is external but names none), if any."""
    location, external = None, False
    for number, wire, value in _fields(data):
        if number == _TENSOR_DATA_LOCATION:
            external = _int(value, wire, "data_location") == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA:
            key, text = "", ""
            for field, field_wire, field_value in _fields(_message(value, wire, "external_data")):
                if field == _ENTRY_KEY:
                    key = _text(field_value, field_wire, "external_data key")
                elif field == _ENTRY_VALUE:
                    text = _text(field_value, field_wire, "external_data value")
            if key == "location":
                location = text
    if external or location is not None:
        yield location or ""


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message: an int for varints, the bytes of
    length-delimited fields, 0 for the fixed-size ones (never needed here)."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("a protobuf field numbered 0")
        value: int | memoryview = 0
        if wire == _VARINT:
            value, position = _varint(data, position)
        elif wire == _BYTES:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire in (_FIXED64, _FIXED32):
            position += 8 if wire == _FIXED64 else 4
        else:
            raise ValueError(f"protobuf wire type {wire}, which ONNX files never use")
        if position > end:
            raise ValueError(TRUNCATED)
        yield number, wire, value


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    for _ in range(10):
        if position >= len(data):
            raise ValueError(TRUNCATED)
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
    raise ValueError("a protobuf varint longer than 10 bytes")


def _message(value: int | memoryview, wire: int, what: str) -> memoryview:
    if wire != _BYTES or not isinstance(value, memoryview):
        raise ValueError(f"its {what} is not a message")
    return value


def _int(value: int | memoryview, wire: int, what: str) -> int:
    if wire != _VARINT or not isinstance(value, int):
        raise ValueError(f"its {what} is not an integer")
    return value


def _text(value: int | memoryview, wire: int, what: str) -> str:
    try:
        return bytes(_message(value, wire, what)).decode()
    except UnicodeDecodeError:
        raise ValueError(f"its {what} is not UTF-8 text") from None


def outside_folder(model_path: Path, location: str) -> bool:
    """Whether external data at ``location`` (as a model file names it) lies outside the model's folder: an absolute
    path, a ``..`` step, an empty name, onnxruntime's in-memory address marker (``MEMORY_ADDRESS_MARKER``), or a link
    that leads out (judged by the real paths, links resolved)."""
    parts = location.replace("\\", "/").split("/")
    if (
        MEMORY_ADDRESS_MARKER in location
        or not location
        or location.startswith(("/", "\\"))
        or ".." in parts
        or ":" in parts[0]
        or "\0" in location
    ):
        return True
    folder = os.path.realpath(model_path.parent)
    target = os.path.realpath(os.path.join(folder, location))
    return os.path.commonpath([folder, target]) != folder
