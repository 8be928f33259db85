"""Smaller files for the edge: fp16 and int8 variants of a verified fp32 export, each measured against it.

- ``fp16``: weights and activations in half precision, input and outputs still float32 (``keep_io_types``).
- ``int8``: dense models get dynamic quantization (int8 weights, activations quantized on the fly); conv models
  get static QDQ quantization calibrated on training digits, because dynamic quantization turns Conv into
  ConvInteger, which onnxruntime's CPU provider cannot run.
A variant is judged by its test-set MSE against the fp32 file's: it is refused when the MSE rises too much.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript.optimizer
from onnx import helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from aetool.errors import AetoolError
from aetool.export.parity import Case, ParityError, cpu_session, run_session
from aetool.runtime import contract
from aetool.runtime.metrics import mean_squared_error

PRECISIONS = contract.PRECISIONS
CALIBRATION_BATCH = 32
FOLD_LIMIT = 1 << 24  # elements
# The operators of the unpooling models' first-max tests: the compares, the maxima (``Max``, or the exact selects
# a·c + b·(1 − c) of the portable graph: ``Mul``, ``Add``, ``Sub``, ``Cast``), the masks made from them and the
# ReLUs that feed them (see :func:`compare_path`).
COMPARE_PATH_OPS = frozenset({"GreaterOrEqual", "Cast", "Sub", "Mul", "Add", "Max", "Relu"})


def compare_path(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes whose values a window's first-max test compares or selects: every ``COMPARE_PATH_OPS``
    node joined to a ``GreaterOrEqual`` through a chain of such nodes. fp16 and int8 files leave them float32.

    A compare must see every value rounded alike and a select must copy a value exactly. In an fp16 file
    onnxruntime's CPU provider computes most fp16 nodes in float32 and drops the float32 → fp16 → float32 cast
    pairs between them, so a tensor would reach some consumers rounded to fp16 and others not (+456 % test MSE for
    conv-unpool when the compares were fp16); in an int8 file each quantized tensor gets its own scale, so equal
    values (a flat background) would stop being equal, and a quantized select would no longer copy its input.
    Empty for graphs without compares (the dense models, conv-deconv, dncnn).
    """
    nodes = [node for node in model.graph.node if node.op_type in COMPARE_PATH_OPS]
    producer = {tensor: node.name for node in nodes for tensor in node.output}
    consumers: dict[str, list[str]] = collections.defaultdict(list)
    for node in nodes:
        for tensor in node.input:
            consumers[tensor].append(node.name)
    by_name = {node.name: node for node in nodes}
    joined = {node.name for node in nodes if node.op_type == "GreaterOrEqual"}
    todo = list(joined)
    while todo:
        node = by_name[todo.pop()]
        around = [producer[t] for t in node.input if t in producer] + [c for t in node.output for c in consumers[t]]
        for name in around:
            if name not in joined:
                joined.add(name)
                todo.append(name)
    return [node.name for node in nodes if node.name in joined]


def _outputs_behind_identity(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph outputs are produced by Identity nodes and consumed by nobody.

    ``convert_float_to_float16(keep_io_types=True)`` casts a graph output back to float32 where it is produced;
    when the graph also uses that output internally (the code feeds the decoder), the consumers would receive
    float32 beside float16 weights. An Identity per output keeps the internal tensor in float16.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    for output in graph.output:
        inner = f"{output.name}_inner"
        for node in graph.node:
            node.input[:] = [inner if name == output.name else name for name in node.input]
            node.output[:] = [inner if name == output.name else name for name in node.output]
        graph.node.append(helper.make_node("Identity", [inner], [output.name]))
    del graph.value_info[:]  # stale float32 types; the converter infers new ones
    return model


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision weights and activations, but float32 on the :func:`compare_path`; float32 input and outputs,
    so callers feed and read float32."""
    try:  # needed for fp16 only, so fp32 and int8 exports work without it
        from onnxconverter_common import float16
    except ImportError:
        raise AetoolError("fp16 export needs onnxconverter-common: pip install onnxconverter-common") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes on weights below fp16's range, clamped to its smallest value
        half = float16.convert_float_to_float16(
            _outputs_behind_identity(model),
            keep_io_types=True,
            node_block_list=compare_path(model),
        )
    return _casts_match_their_types(half)


def _casts_match_their_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make each ``Cast`` to float32 whose output the converter typed float16 cast to float16.

    The converter retypes every float tensor but leaves a ``Cast`` from a non-float input (a bool mask) casting to
    float32, so onnxruntime refuses the graph; the unpooling models' window masks are such casts.
    """
    half = {info.name for info in model.graph.value_info if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in half:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = onnx.TensorProto.FLOAT16
    return model


class _Batches(CalibrationDataReader):
    """Calibration images for static quantization, in small batches."""

    def __init__(self, images: np.ndarray, input_name: str) -> None:
        self._batches = iter(
            [{input_name: images[i : i + CALIBRATION_BATCH]} for i in range(0, len(images), CALIBRATION_BATCH)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


@contextlib.contextmanager
def _no_preprocessing_advice() -> Iterator[None]:
    """The quantizer logs advice to pre-process on the root logger; our graphs need none, so keep it off stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold weight-only subgraphs of any size (PCA's transposed basis), so the quantizer sees constant weights.

    The exporter folds only small constants; a MatMul fed by ``Transpose(weight)`` would stay float and keep the
    float weight in the int8 file.
    """
    return onnxscript.optimizer.optimize(model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)


def _convs_sharing_weights(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes whose weight another Conv also uses; static int8 leaves them float.

    Such convs compute one layer at different places (the unpooling models' first conv at each position of a
    pooling window), and their outputs are compared for the window maximum. Quantized, each output would get its
    own calibrated scale, so equal values (a flat background) would stop being equal and move the maxima.
    """
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    uses = collections.Counter(node.input[1] for node in convs)
    return [node.name for node in convs if uses[node.input[1]] > 1]


def to_int8(model: onnx.ModelProto, workdir: Path, calibration: np.ndarray | None) -> onnx.ModelProto:
    """Dynamic int8 without ``calibration``; static QDQ int8 (per-channel weights) calibrated on it otherwise, the
    :func:`compare_path` and the convs that share a weight left float.

    Weights are 7-bit (``reduce_range``: −64…64), per output column or channel. On x86 CPUs without VNNI,
    onnxruntime's u8×s8 products add pairs in 16 bits, which full 8-bit weights can saturate (255 · 128 · 2 >
    32,767) and 7-bit ones cannot (255 · 64 · 2 = 32,640): such files give the same numbers in any onnxruntime
    session there, at the saturating kernels' speed, where 8-bit weights were exact only with
    ``session.x64quantprecision`` (``runtime.session.session_options``), and slower; per-channel scales make up the
    lost bit (README, Round 2: INT8 on a CPU without VNNI)."""
    source, target = workdir / "fp32.onnx", workdir / "int8.onnx"
    folded = _fold_constants(model)
    onnx.save_model(folded, source)
    with _no_preprocessing_advice():
        if calibration is None:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        else:
            quantize_static(
                source,
                target,
                _Batches(calibration, contract.INPUT),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                reduce_range=True,
                nodes_to_exclude=_convs_sharing_weights(folded) + compare_path(folded),
            )
    return onnx.load_model(target)


def make(
    precision: str, fp32: onnx.ModelProto, *, workdir: Path, calibration: np.ndarray | None
) -> tuple[onnx.ModelProto, str]:
    """The ``precision`` variant of an fp32 graph, and a few words on how it was made.

    ``calibration`` (N×1×H×W float32) asks for static int8; without it int8 is dynamic. ``workdir`` holds the
    quantizer's files. Raises ``ValueError`` for an unknown precision.
    """
    if precision == "fp16":
        return to_fp16(fp32), "fp16 weights and activations, float32 input and outputs"
    if precision != "int8":
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if calibration is None:
        how = "dynamic int8: 7-bit int8 weights per output column, activations quantized per batch"
        return to_int8(fp32, workdir, None), how
    return (
        to_int8(fp32, workdir, calibration),
        f"static QDQ int8, 7-bit per-channel weights, calibrated on {len(calibration)} training images",
    )


@dataclass(frozen=True)
class TestSet:
    """Inputs and the clean images their reconstructions should match (N×1×H×W float32), and what they are."""

    inputs: np.ndarray
    targets: np.ndarray
    description: str


def reconstruction_mse(session: ort.InferenceSession, test: TestSet) -> float:
    """Mean squared error over all pixels of all test images, computed in batches."""
    return mean_squared_error(
        lambda images: run_session(session, images)[contract.RECONSTRUCTION], test.inputs, test.targets
    )


@dataclass
class VariantReport:
    """How far a variant strays from the fp32 file: worst output difference, and test MSE before and after."""

    precision: str
    file: str
    size_bytes: int
    max_abs: dict[str, float]
    ops: dict[str, int]
    max_mse_rise: float
    method: str
    test_set: str | None = None
    test_mse_fp32: float | None = None
    test_mse: float | None = None

    @property
    def mse_rise(self) -> float | None:
        """Relative rise of the test MSE over the fp32 file's (0.05 = 5 % worse); None without test images."""
        if self.test_mse is None or not self.test_mse_fp32:
            return None
        return self.test_mse / self.test_mse_fp32 - 1.0

    @property
    def passed(self) -> bool:
        return self.mse_rise is None or self.mse_rise <= self.max_mse_rise

    def lines(self) -> list[str]:
        mark = "✓" if self.passed else "✗"
        errors = ", ".join(f"{name} {value:.2e}" for name, value in self.max_abs.items())
        if self.mse_rise is None:
            mse = "test MSE not measured (no test images)"
        else:
            mse = (
                f"test MSE {self.test_mse:.5f} vs fp32 {self.test_mse_fp32:.5f} "
                f"({self.mse_rise:+.1%}, limit +{self.max_mse_rise * 100:.3g}%) on {self.test_set}"  # 1.5 % was +2 %
            )
        return [
            f"{self.precision} variant {self.file} ({self.size_bytes / 1e6:.2f} MB, {self.method}):",
            f"  {mark} max abs vs fp32: {errors}; {mse}",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "file": self.file,
            "size_bytes": self.size_bytes,
            "max_abs_vs_fp32": self.max_abs,
            "test_set": self.test_set,
            "test_mse_fp32": self.test_mse_fp32,
            "test_mse": self.test_mse,
            "mse_rise": self.mse_rise,
            "max_mse_rise": self.max_mse_rise,
            "passed": self.passed,
            "method": self.method,
            "ops": self.ops,
        }

    def raise_if_failed(self) -> None:
        rise = self.mse_rise
        if rise is not None and rise > self.max_mse_rise:
            raise ParityError(
                f"the {self.precision} variant raises the test MSE by {rise * 100:.3g}% "
                f"({self.test_mse_fp32:.6g} → {self.test_mse:.6g}), more than the allowed "
                f"{self.max_mse_rise * 100:.3g}%; nothing was written (the fp32 file neither: export without "
                f"--{self.precision} for it alone)"
            )


def measure(
    variant: onnx.ModelProto,
    fp32: ort.InferenceSession,
    *,
    precision: str,
    method: str,
    file: str,
    cases: list[Case],
    test: TestSet | None,
    max_mse_rise: float,
) -> VariantReport:
    """Run the variant on onnxruntime CPU beside the fp32 session: per-output worst difference and test MSE.

    ``precision``, ``method`` and ``file`` describe the variant in its report; ``cases`` are the parity inputs;
    ``test`` (when given) scores both files; ``max_mse_rise`` is the limit the report is judged by.
    """
    session = cpu_session(variant)
    max_abs: dict[str, float] = {}
    for case in cases:
        want, got = run_session(fp32, case.inputs), run_session(session, case.inputs)
        for name, value in want.items():
            diff = float(np.max(np.abs(got[name].astype(np.float64) - value)))
            max_abs[name] = max(max_abs.get(name, 0.0), diff)
    ops = dict(sorted(collections.Counter(node.op_type for node in variant.graph.node).items()))
    report = VariantReport(precision, file, variant.ByteSize(), max_abs, ops, max_mse_rise, method)
    if test is not None:
        report.test_set = test.description
        report.test_mse_fp32 = reconstruction_mse(fp32, test)
        report.test_mse = reconstruction_mse(session, test)
    return report
