"""Does a model file compute the same numbers in every ONNX runtime installed here? The data behind ``aetool check``.

Each runtime loads the file and runs it on the same fixed inputs (:func:`cases_for`); every output is compared
with onnxruntime's, the runtime aetool itself runs on, within ``atol`` × max(1, max|output|) (the parity rule of
the export, with looser defaults: other runtimes sum in other orders, and compute fp16 files in half precision
where onnxruntime's CPU provider computes most fp16 nodes in float32). onnxruntime is always there; the ONNX
reference evaluator (``onnx``), OpenCV DNN (``opencv-python-headless``) and OpenVINO are checked where installed
(``pip install '.[check]'`` in a clone installs all three). Torch-free: the exporter records the same checks in each
file it writes (``checked_in``), and ``aetool check`` runs them on any file later.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import math
import numbers
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aetool.errors import AetoolError, ModelFileError, caused_by_interrupt, first_line
from aetool.runtime import contract
from aetool.runtime.describe import graph_changed
from aetool.runtime.files import is_utf8
from aetool.runtime.images import outside_unit_range
from aetool.runtime.metadata import parse_metadata
from aetool.runtime.onnxfile import read_facts
from aetool.runtime.registry import resolve
from aetool.runtime.session import open_session, ort_errors, read_model, run_stoppable
from aetool.runtime.spec import check_contract

ATOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": 1e-2}  # by the file's precision: a few steps of fp16's or int8's
TIE_SIZE = (28, 28)
NON_SQUARE = (32, 48)
CODE_SIZES = ((7, 7), (8, 12))  # a conv decoder's code: 28×28 and 32×48 images pooled twice
EXTRA = "pip install 'aetool[check]', or '.[check]' in a clone"

Outputs = dict[str, np.ndarray]
Runner = Callable[[np.ndarray], Outputs]  # one batch of inputs → every output, by name


def tie_images(*, channels: int = 1) -> np.ndarray:
    """4×C×28×28 images whose pooling windows hold equal values, where unpooling must pick PyTorch's (first) position.

    An all-black and an all-white image (every window of every channel ties), random levels on constant 2×2
    blocks, and on 8×8 blocks so that the second pooling stage ties too; each channel gets its own levels.
    """
    rng = np.random.default_rng(7)
    blocks2 = np.kron(rng.integers(0, 4, (channels, 14, 14)) / 3, np.ones((1, 2, 2)))
    blocks8 = np.kron(rng.integers(0, 4, (channels, 4, 4)) / 3, np.ones((1, 8, 8)))[:, :28, :28]
    flat = [np.zeros((channels, 28, 28)), np.ones((channels, 28, 28))]
    return np.stack([*flat, blocks2, blocks8]).astype(np.float32)


def tolerance(atol: float, want: np.ndarray) -> float:
    """The largest allowed absolute difference from ``want``: ``atol`` for outputs within [-1, 1] (images),
    growing with the output's magnitude beyond that (a code of size 20 holds float32 rounding differences of
    about 1e-5 that no runtime can avoid)."""
    return atol * max(1.0, float(np.abs(want).max(initial=0.0)))


@dataclass(frozen=True)
class Case:
    """One named batch of inputs (float32): what every runtime gets in ``aetool check``, and what ONNX and PyTorch
    must agree on in an export's parity check (``export.parity``)."""

    name: str
    inputs: np.ndarray


def cases_for(shape: list[int | str | None], name: str, multiple_of: int | None) -> list[Case]:
    """Fixed inputs for a graph input ``name`` of ``shape`` (symbolic dimensions as strings or None).

    Images (``image``, N×C×H×W in [0, 1]): random at batch 4 and 1 of the fixed size, else 28×28 rounded up to
    ``multiple_of``; for models of any size also images with ties (see :func:`tie_images`) when 28×28 fits
    ``multiple_of``, and a non-square batch of 2 (32×48, rounded up to ``multiple_of``); a file that fixes its
    batch gets that many images in every case instead. Codes (``code``): standard normal at batch 4 and 1 (7×7 for
    a conv decoder, N×C×h×w), and 8×12 at batch 2 for a conv decoder.
    """
    rng = np.random.default_rng(0)
    dims = [d if isinstance(d, int) else None for d in shape[1:]]
    if name == contract.CODE:
        return _code_cases(dims, rng)
    channels = dims[0] or 1
    size = (dims[1], dims[2]) if dims[1:] and dims[1] and dims[2] else None
    fixed_or_any = size or contract.rounded_up(TIE_SIZE, multiple_of)
    fixed_batch = shape[0] if isinstance(shape[0], int) else None  # the legacy exporter's default: batch 1
    cases = [
        Case(f"random b{n}", rng.random((n, channels, *fixed_or_any), dtype=np.float32))
        for n in ((fixed_batch,) if fixed_batch else (4, 1))
    ]
    if size is None:
        if fixed_or_any == TIE_SIZE:
            ties = tie_images(channels=channels)
            ties = ties if fixed_batch is None else np.resize(ties, (fixed_batch, *ties.shape[1:]))  # cycled
            cases.append(Case(f"ties b{len(ties)}", ties))
        height, width = contract.rounded_up(NON_SQUARE, multiple_of)
        n = fixed_batch or 2
        cases.append(Case(f"random {height}×{width} b{n}", rng.random((n, channels, height, width), dtype=np.float32)))
    return cases


def _code_cases(dims: list[int | None], rng: np.random.Generator) -> list[Case]:
    """Standard normal codes: D per item, or C×h×w for a conv decoder (whose h and w are symbolic)."""
    if None not in dims:
        item = [d for d in dims if d is not None]
        return [Case(f"random code b{n}", rng.standard_normal((n, *item), dtype=np.float32)) for n in (4, 1)]
    channels = dims[0] or 1
    cases = [Case(f"random code b{n}", rng.standard_normal((n, channels, *CODE_SIZES[0]), np.float32)) for n in (4, 1)]
    height, width = CODE_SIZES[1]
    cases.append(
        Case(f"random code {height}×{width} b2", rng.standard_normal((2, channels, height, width), np.float32))
    )
    return cases


# ---- the runtimes: each loads a file and returns a runner, or raises with the reason ----


@dataclass(frozen=True)
class Runtime:
    """A runtime that can be checked: the module it needs, how to name its version, how to load a file."""

    name: str
    module: str
    load: Callable[[Path, str, list[str]], Runner]  # (file, input name, output names) → runner; raises its reason
    version: Callable[[], str]

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _onnxruntime(path: Path, input_name: str, outputs: list[str]) -> Runner:
    """onnxruntime's CPU provider, one thread: the reference (``aetool.runtime.session.open_session``)."""
    session = open_session(path, threads=1)
    return lambda x: dict(zip(outputs, session.run(outputs, {input_name: x}), strict=True))


def _reference(path: Path, input_name: str, outputs: list[str]) -> Runner:
    """onnx's reference evaluator: every operator in plain numpy, as the ONNX specification defines it, except that
    ``Conv`` sums its products in float64 and rounds once to its input's type. The evaluator's own ``Conv`` is one
    float32 matrix product (im2col, then numpy's BLAS), and OpenBLAS's kernels for AVX2 CPUs round positions of
    equal inputs differently by where they fall in a block (1 ulp), which turns the exact ties of max-unpooling's
    windows into other picks (the bundled ``conv-unpool`` on ``tie_images``: reconstruction 0.21 off onnxruntime,
    3e-7 with the sums in float64). numpy's floating-point warnings are silenced: an fp16 ``Sigmoid`` overflows
    ``exp`` to inf for large negative inputs and rightly gives 0, which numpy would report as a bare "overflow
    encountered in exp" line."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops.op_conv import Conv

    class ConvInFloat64(Conv):
        op_domain = ""

        def _run(self, *inputs: Any, **attributes: Any) -> tuple[np.ndarray]:  # X, W and B, as onnx passes them
            wide = [None if a is None else a.astype(np.float64) for a in inputs]
            return (super()._run(*wide, **attributes)[0].astype(inputs[0].dtype),)

    ConvInFloat64.__name__ = "Conv"  # the evaluator takes a replacement by its class name
    evaluator = ReferenceEvaluator(str(path), new_ops=[ConvInFloat64])

    def run(x: np.ndarray) -> Outputs:
        with np.errstate(all="ignore"):
            return dict(zip(outputs, evaluator.run(outputs, {input_name: x}), strict=True))

    return run


def _opencv(engine: int | None) -> Callable[[Path, str, list[str]], Runner]:
    """OpenCV DNN's loader with ``engine`` (``cv2.dnn.ENGINE_NEW`` or ``ENGINE_CLASSIC``; None: OpenCV 4's only)."""

    def load(path: Path, input_name: str, outputs: list[str]) -> Runner:
        import cv2

        if read_facts(path.read_bytes()).subgraphs:  # not tried: OpenCV 5 ended the process (SIGSEGV) on an If
            raise RuntimeError("control flow (If, Loop or Scan subgraphs), which crashed OpenCV DNN: not tried")
        source: str | np.ndarray = str(path)
        if not is_utf8(str(path)):  # OpenCV crashes (SIGSEGV) on such a path; its bytes load the same graph
            source = np.fromfile(path, dtype=np.uint8)
        with _stderr_of_c_code() as log:
            net = cv2.dnn.readNetFromONNX(source) if engine is None else cv2.dnn.readNetFromONNX(source, engine)
        if net.empty():  # OpenCV 5's new engine returns an empty net, without raising, for a graph it cannot parse
            unsupported = re.search(r"Unsupported operations:\s*((?:\s*\w+)+)", log.getvalue())
            why = f": unsupported operations {', '.join(unsupported[1].split())}" if unsupported else ""
            raise RuntimeError(f"readNetFromONNX returned an empty network{why}")

        def run(x: np.ndarray) -> Outputs:
            with _stderr_of_c_code():
                net.setInput(x, input_name)
                return {name: np.asarray(value) for name, value in zip(outputs, net.forward(outputs), strict=True)}

        return run

    return load


@contextlib.contextmanager
def _stderr_of_c_code() -> Iterator[io.StringIO]:
    """Catch what C++ code writes to file descriptor 2 (OpenCV logs its parser's complaints there itself): the
    reason reaches the table, not the terminal. Where no temporary file can be made (no writable temporary folder),
    it is left on the terminal."""
    sys.stderr.flush()
    text = io.StringIO()
    try:
        held = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed by the with below)
    except OSError:
        yield text
        return
    saved = os.dup(2)
    with held as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text.write(caught.read().decode(errors="replace"))


def _openvino(path: Path, input_name: str, outputs: list[str]) -> Runner:
    """OpenVINO on the CPU in f32, asked for and checked: a bf16/fp16-capable CPU would otherwise compute in less."""
    ov = imported("openvino")

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    if precision != ov.Type.f32:
        raise RuntimeError(f"OpenVINO runs in {precision}, not f32")
    ports = {name: compiled.output(name) for name in outputs}

    def run(x: np.ndarray) -> Outputs:
        result = compiled({input_name: x})
        return {name: np.asarray(result[port]) for name, port in ports.items()}

    return run


# Modules kept from loading with a runtime aetool imports. OpenVINO's converter, imported with the package, sends
# usage events to Google Analytics from a forked process; one stuck resolving the address kept `aetool calibrate`
# from exiting for ten minutes after its work (trial 37: the fork had inherited aetool's SIGTERM handler, so
# OpenVINO's terminate() could not end it). Without its optional openvino_telemetry module OpenVINO takes its own
# stub, as when that package is not installed: nothing is sent, nothing forked.
UNWANTED = {"openvino": ("openvino_telemetry",)}


def imported(module: str) -> ModuleType:
    """``module``, imported without the modules ``UNWANTED`` names for it (unless this process loaded them first).
    Raises what its import raises."""
    for unwanted in UNWANTED.get(module, ()):
        sys.modules.setdefault(unwanted, None)  # type: ignore[arg-type]  # None: "import it" raises ImportError
    return importlib.import_module(module)


def module_version(module: str) -> Callable[[], str]:
    """A function giving ``module``'s version without build suffixes (OpenVINO's ``2026.4.1-22982-…``)."""

    def version() -> str:
        return str(imported(module).__version__).split("-")[0]

    return version


def _opencv_engines() -> list[Runtime]:
    """OpenCV DNN: one row per engine where it has two (OpenCV 5.0: new and classic), else one (OpenCV 4's engine;
    from OpenCV 5.1 the new one alone, its classic engine gone)."""
    version = module_version("cv2")
    try:
        import cv2
    except (ImportError, OSError) as err:  # not installed, or it will not load (no libGL.so.1 in a slim image)
        _stop_if_interrupted(err)
        return [Runtime(name, "cv2", _opencv(None), version) for name in ("opencv", "opencv-classic")]  # both ✗

    new, classic = getattr(cv2.dnn, "ENGINE_NEW", None), getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if new is None or classic is None:
        return [Runtime("opencv", "cv2", _opencv(None), version)]
    return [
        Runtime("opencv", "cv2", _opencv(new), version),
        Runtime("opencv-classic", "cv2", _opencv(classic), version),
    ]


RUNTIME_NAMES = ("onnxruntime", "onnx-reference", "opencv", "opencv-classic", "openvino")  # every one check knows


def runtimes() -> list[Runtime]:
    """Every runtime ``aetool check`` knows, onnxruntime (the reference) first, installed or not."""
    return [
        Runtime("onnxruntime", "onnxruntime", _onnxruntime, module_version("onnxruntime")),
        Runtime("onnx-reference", "onnx", _reference, module_version("onnx")),
        *_opencv_engines(),
        Runtime("openvino", "openvino", _openvino, module_version("openvino")),
    ]


# ---- the check ----


@dataclass(frozen=True)
class RuntimeResult:
    """One runtime on one file: ✓ with its largest difference from onnxruntime, ✗ with the reason, or absent."""

    runtime: str
    version: str | None
    installed: bool
    ok: bool | None  # None: not installed, so not checked
    max_abs: float | None = None
    worst: str | None = None  # "case output" of the largest difference
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    """Every runtime on one file, against onnxruntime's outputs on the same cases."""

    file: str
    atol: float
    cases: list[str]
    outputs: list[str]
    metadata: dict[str, Any]  # empty where another tool rewrote the graph aetool exported (graph_changed)
    opset: int | None  # the graph's own
    graph_changed: bool
    results: list[RuntimeResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every installed runtime gave onnxruntime's numbers."""
        return all(r.ok for r in self.results if r.installed)

    @property
    def failed(self) -> list[RuntimeResult]:
        return [r for r in self.results if r.ok is False]

    def lines(self) -> list[str]:
        """The ✓/✗ table for people: a line per runtime, the reason for each ✗, and how to add the missing."""
        target = self.metadata.get(contract.TARGET)
        about = ", ".join(
            part
            for part in (
                "rewritten since aetool exported it" if self.graph_changed else "",
                f"target {target}" if target else "",
                f"opset {self.opset}" if self.opset else "",
                self.metadata.get(contract.PRECISION) or "",
            )
            if part
        )
        lines = [
            f"{Path(self.file).name}{f' ({about})' if about else ''}: {', '.join(self.outputs)} on "
            f"{', '.join(self.cases)}; max abs against onnxruntime ≤ {self.atol:g} × max(1, max|output|)"
        ]
        width = max(len(r.runtime) for r in self.results)
        for result in self.results:
            version = result.version or ""
            if not result.installed:
                missing = result.error or f"not installed ({EXTRA})"
                lines.append(f"  – {result.runtime:<{width}}  {'':<10} {missing}")
            elif result.runtime == "onnxruntime":
                lines.append(f"  ✓ {result.runtime:<{width}}  {version:<10} the reference")
            elif result.ok:
                lines.append(f"  ✓ {result.runtime:<{width}}  {version:<10} max abs {result.max_abs:.1e}")
            else:
                lines.append(f"  ✗ {result.runtime:<{width}}  {version:<10} {result.error}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "passed": self.passed,
            "atol": self.atol,
            "cases": self.cases,
            "outputs": self.outputs,
            "target": self.metadata.get(contract.TARGET),
            "opset": self.opset,
            "precision": self.metadata.get(contract.PRECISION),
            "graph_changed": self.graph_changed,
            "runtimes": [result.to_dict() for result in self.results],
        }


def compare_outputs(
    cases: list[Case], want: list[Outputs], got: list[Outputs], atol: float
) -> tuple[float, str, str | None]:
    """The largest difference of ``got`` from ``want`` (onnxruntime's) over every case and output, where it is ("case
    output"), and why it fails (None when every output is within :func:`tolerance`)."""
    worst, where = 0.0, ""
    for case, expected, actual in zip(cases, want, got, strict=True):
        for name, value in expected.items():
            other = actual.get(name)
            if other is None or other.shape != value.shape:
                shape = "missing" if other is None else f"shape {tuple(other.shape)}"
                return math.inf, f"{case.name} {name}", f"{case.name}: {name} {shape}, onnxruntime gives {value.shape}"
            diff = float(np.max(np.abs(other.astype(np.float64) - value), initial=0.0))
            if not diff <= tolerance(atol, value):  # NaN fails too
                return (
                    diff,
                    f"{case.name} {name}",
                    f"{case.name}: {name} max abs {diff:.2e} > {tolerance(atol, value):.1e}",
                )
            if diff > worst:
                worst, where = diff, f"{case.name} {name}"
    return worst, where, None


def _run_all(runner: Runner, cases: list[Case]) -> list[Outputs]:
    return [runner(case.inputs) for case in cases]


def _stop_if_interrupted(err: BaseException) -> None:
    """Raise ``KeyboardInterrupt`` when ``err`` is an import that Ctrl-C or a stop signal broke: it was taken for a
    runtime that cannot be imported, and the command went on to exit 0 (a trial's ``check`` and ``train``)."""
    if caused_by_interrupt(err):
        raise KeyboardInterrupt from None


def _check_one(runtime: Runtime, ref: Reference, *, atol: float) -> RuntimeResult:
    """Load and run the file in ``runtime`` on the reference's cases, and hold its outputs to onnxruntime's. A
    runtime whose package is there but cannot be imported (a library it needs is missing: OpenVINO's libtbb,
    OpenCV's libGL) is not usable here, like one not installed: said, but no failure of the file."""
    try:
        imported(runtime.module)
    except (ImportError, OSError) as err:
        _stop_if_interrupted(err)
        return RuntimeResult(runtime.name, None, False, None, error=f"installed, but cannot be imported: {err}")
    version = None
    try:
        version = runtime.version()
        runner = runtime.load(ref.path, ref.input_name, ref.outputs)
    except Exception as err:  # whatever a runtime raises while loading is the reason it fails: reported, not hidden
        _stop_if_interrupted(err)
        return RuntimeResult(runtime.name, version, True, False, error=f"cannot load: {failure_reason(err)}")
    try:
        got = _run_all(runner, ref.cases)
    except Exception as err:  # likewise for running
        return RuntimeResult(runtime.name, version, True, False, error=f"fails to run: {failure_reason(err)}")
    max_abs, worst, problem = compare_outputs(ref.cases, ref.want, got, atol)
    if problem:
        return RuntimeResult(runtime.name, version, True, False, max_abs, worst, problem)
    return RuntimeResult(runtime.name, version, True, True, max_abs, worst)


_TELLING = (
    "No conversion rule",
    "parse error",
    "Can't create layer",
    "Unsupported",
    "not supported",
    "not implemented",
)
_OPENCV_PREFIX = re.compile(r"OpenCV\([^)]*\) \S+: error: ")  # "OpenCV(5.0.0) /io/…/importer.cpp:2591: error: "
_WHERE_ONLY = re.compile(r"Exception from \S+:\d+:?")  # OpenVINO's first line: "Exception from src/…/core.cpp:132:"


def failure_reason(err: BaseException) -> str:
    """The line of a runtime's (often multi-line) message that says what is wrong, without source paths."""
    lines = [_OPENCV_PREFIX.sub("", line).strip(" >-") for line in str(err).splitlines()]
    lines = [line for line in lines if line and not _WHERE_ONLY.fullmatch(line)]
    telling = [line for line in lines if any(word in line for word in _TELLING)]
    text = (telling or lines or [type(err).__name__])[0]
    return text if len(text) <= 200 else text[:199] + "…"


@dataclass(frozen=True)
class Reference:
    """A file's fixed inputs and onnxruntime's outputs on them: what every other runtime is held to."""

    path: Path
    input_name: str
    outputs: list[str]
    cases: list[Case]
    want: list[Outputs]  # per case, every output by name
    metadata: dict[str, Any]  # of an export whose graph another tool rewrote (graph_changed): that export's
    opset: int | None  # the graph's own
    graph_changed: bool = False  # ``runtime.describe.graph_changed``


def reference(model: str | Path, *, multiple_of: int | None = None, timeout: float | None = None) -> Reference:
    """Run a model or decoder file (a path, or a bundled model's name) in onnxruntime on :func:`cases_for` inputs,
    for a model of any size at multiples of ``multiple_of`` (default: the one its metadata records, else 1); each
    call stops on Ctrl-C, SIGTERM or after ``timeout`` seconds (None: no limit), as the runtime's do (a Loop that
    never ended held ``aetool check`` past SIGTERM; trial 99).

    Raises ``ModelFileError`` for a file that is missing, will not load or run in onnxruntime, or has no single
    ``image`` (N×C×H×W) or ``code`` (N×D or N×C×h×w) input; ``TimedOut`` for a call past ``timeout``.
    """
    path = resolve(model)
    data = read_model(path)  # read once: for the session and for the graph's own facts
    session = open_session(path, threads=1, data=data)
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map)
    inputs = session.get_inputs()
    ranks = {contract.INPUT: (4,), contract.CODE: (2, 4)}
    if len(inputs) != 1 or len(inputs[0].shape) not in ranks.get(inputs[0].name, ()):
        got = ", ".join(f"{i.name!r} {i.shape}" for i in inputs) or "none"
        raise ModelFileError(
            f"{path} is not an aetool model or decoder: one input 'image' (N×C×H×W) or 'code' (N×D or N×C×h×w) "
            f"expected, got {got}"
        )
    spec = metadata.get(contract.INPUT_SPEC)
    if multiple_of is None and isinstance(spec, dict) and isinstance(spec.get("multiple_of"), int):
        multiple_of = spec["multiple_of"]
    if inputs[0].name == contract.INPUT:  # what the runtime's commands refuse, refused alike
        check_contract(session, path, metadata)
    cases = cases_for(list(inputs[0].shape), inputs[0].name, multiple_of)
    if inputs[0].type == "tensor(float16)":  # every runtime gets the file's own input type
        cases = [Case(case.name, case.inputs.astype(np.float16)) for case in cases]
    outputs = [o.name for o in session.get_outputs()]
    try:
        run = partial(run_stoppable, session, outputs, timeout=timeout, name=path.name)
        want = _run_all(lambda x: dict(zip(outputs, run({inputs[0].name: x}), strict=True)), cases)
    except ort_errors() as err:
        raise ModelFileError(f"{path} fails in onnxruntime on {cases[0].name}: {first_line(err)}") from None
    for case, outputs_of_case in zip(cases, want, strict=True):
        for name, value in outputs_of_case.items():
            if not np.isfinite(value).all():
                raise ModelFileError(f"{path} returns NaN or infinite {name} values in onnxruntime on {case.name}")
        returned = outputs_of_case.get(contract.RECONSTRUCTION)
        if inputs[0].name != contract.INPUT or returned is None:
            continue
        if returned.shape != case.inputs.shape:
            raise ModelFileError(
                f"{path} returns {contract.RECONSTRUCTION} of shape {returned.shape} in onnxruntime for images of "
                f"shape {case.inputs.shape} ({case.name}); an aetool model returns them at their size"
            )
        if (outside := outside_unit_range(returned)) is not None:
            raise ModelFileError(
                f"{path} returns {contract.RECONSTRUCTION} values from {outside[0]:.6g} to {outside[1]:.6g} in "
                f"onnxruntime on {case.name}, outside [0, 1]: an aetool model reconstructs pixels in [0, 1]"
            )
    facts = read_facts(data)
    return Reference(path, inputs[0].name, outputs, cases, want, metadata, facts.opset, graph_changed(metadata, facts))


def check_file(
    model: str | Path,
    *,
    atol: float | None = None,
    only: list[str] | None = None,
    multiple_of: int | None = None,
    timeout: float | None = None,
) -> CheckReport:
    """Run a model or decoder file (a path, or a bundled model's name) in every installed runtime (or those named
    in ``only``) on :func:`cases_for` inputs (sizes as :func:`reference` picks them, by ``multiple_of``) and compare
    each with onnxruntime within ``atol`` × max(1, max|output|) (default: ``ATOL`` of the precision its metadata
    names, fp32's when it names none).

    Raises ``ModelFileError`` and ``TimedOut`` as :func:`reference` does (``timeout`` bounds its onnxruntime
    calls); ``ValueError`` for an ``atol`` that is not a finite number ≥ 0, a ``timeout`` that is no positive
    number of seconds (``session.checked_timeout``), an unknown runtime in ``only`` and ``opencv-classic`` where
    OpenCV has no classic engine.
    """
    if isinstance(atol, bool) or not (atol is None or (isinstance(atol, numbers.Real) and 0 <= atol < math.inf)):
        raise ValueError(f"--atol takes a finite number ≥ 0, got {atol!r}")  # nan failed every runtime, inf passed all
    known = runtimes()
    names = [r.name for r in known]
    unknown = set(only or ()) - set(names) - set(RUNTIME_NAMES)
    if unknown:
        raise ValueError(f"--runtime: unknown runtime {sorted(unknown)[0]!r}; known: {', '.join(RUNTIME_NAMES)}")
    if "opencv-classic" in (only or ()) and "opencv-classic" not in names:
        raise ValueError(
            f"--runtime: opencv-classic: OpenCV {module_version('cv2')()} has no classic engine (OpenCV 5.0 has it beside the new "
            "one, 5.1 and later the new one alone); --runtime opencv checks the engine it has"
        )
    ref = reference(model, multiple_of=multiple_of, timeout=timeout)
    if atol is None and ref.graph_changed:  # its recorded precision is that of another graph: the loosest bound
        atol = max(ATOL.values())
    elif atol is None:
        atol = ATOL.get(str(ref.metadata.get(contract.PRECISION)), ATOL["fp32"])
    recorded = {} if ref.graph_changed else ref.metadata  # the header names what holds of this graph only
    report = CheckReport(
        str(ref.path), atol, [case.name for case in ref.cases], ref.outputs, recorded, ref.opset, ref.graph_changed
    )
    for runtime in known if only is None else [r for r in known if r.name in only]:
        if not runtime.installed:
            report.results.append(RuntimeResult(runtime.name, None, False, None))
        elif runtime.name == "onnxruntime":
            report.results.append(RuntimeResult(runtime.name, runtime.version(), True, True, 0.0))
        else:
            report.results.append(_check_one(runtime, ref, atol=atol))
    return report


def check_bytes(model: bytes, *, atol: float, multiple_of: int | None) -> CheckReport:
    """:func:`check_file` for a serialized model that is not a file yet (the exporter's, before it writes, whose
    metadata does not record its ``multiple_of`` yet)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        try:
            path.write_bytes(model)
        except OSError as err:  # it said only "No space left on device", of a file the user never named
            raise AetoolError(
                f"cannot write a temporary copy of the model ({len(model):,} bytes) into {folder} to check it in "
                f"every runtime: {err.strerror or err}; free space there, or set TMPDIR to another folder"
            ) from None
        return check_file(path, atol=atol, multiple_of=multiple_of)
