"""How fast an exported model runs: latency and throughput in onnxruntime, beside PyTorch eager when asked.

Torch-free at import, like ``aetool.runtime``, so ``aetool bench`` works on the base install: torch is imported
only by :class:`TorchEager` (``--compare-torch``), OpenVINO only by :class:`OpenVINO` (``--compare openvino``, the
check extra), onnx only by :func:`flops_per_image` (and :func:`tensor_shapes`, which it uses).
Backends are timed in alternating rounds, so that load from other processes on a shared machine falls on them as
alike as it can; the fastest call is kept beside median and p95, being the closest to undisturbed speed.
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

import aetool
from aetool.errors import AetoolError, ModelFileError, first_line
from aetool.runtime import contract, tiles
from aetool.runtime.cpu import SIMD_FLAGS, cpu_facts, keep_freed_memory, usable_cores
from aetool.runtime.model import Model, pad_batch
from aetool.runtime.session import CPU, ort_errors
from aetool.runtime.spec import MAX_CONV_PIXELS

Call = Callable[[], object]
Backend = Callable[[np.ndarray], Call]  # binds a batch of images, returns the call to time
DEFAULT_SIZE = (28, 28)
MAX_BATCH = 4096  # random images and activations of larger batches can exhaust memory and say little more
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class Plan:
    """How to time: warm-up calls, then ``repeats`` rounds that give each backend ``seconds / repeats`` apiece."""

    warmup: int = 10
    repeats: int = 5
    seconds: float = 1.0  # per backend and batch size, all rounds together
    min_calls: int = 3  # per backend and round, however slow the call

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise AetoolError(f"--seconds must be a finite number of seconds, 0 or more; got {self.seconds}")


@dataclass(frozen=True)
class Timing:
    """The wall time of every timed call of one backend at one batch size."""

    batch_size: int
    seconds: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1e3

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.seconds, 95)) * 1e3

    @property
    def best_ms(self) -> float:
        """The fastest call: on a shared machine, the closest to what the code does undisturbed."""
        return min(self.seconds) * 1e3

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.seconds) * 1e3

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.seconds, 99)) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.seconds) * 1e3

    @property
    def images_per_s(self) -> float:
        """Images a second at the median batch time: the typical call's rate."""
        return self.batch_size / statistics.median(self.seconds)

    @property
    def sustained_images_per_s(self) -> float:
        """Images a second over all timed batches (the batch over the mean time): what a stream of them gets, slow
        calls included (under load a median rate overstated it: 16,249 against 7,215 images/s; trial 66)."""
        return self.batch_size / statistics.fmean(self.seconds)


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,256"`` → [1, 256]: ASCII whole numbers from 1 to ``MAX_BATCH``; raises ``AetoolError`` otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and 0 < int(p) <= MAX_BATCH for p in parts):
        raise AetoolError(
            f"--batch-sizes takes integers from 1 to {MAX_BATCH} separated by commas, e.g. 1,256; got {text!r}"
        )
    return [int(p) for p in parts]


def image_size(model: Model, size: tuple[int, int] | None) -> tuple[int, int]:
    """The size to time: ``size`` if given (checked against the model), else the model's fixed size, else 28×28
    rounded up to the model's multiple."""
    spec = model.input_spec
    chosen = size or spec.size or contract.rounded_up(DEFAULT_SIZE, spec.multiple_of)
    try:
        spec.check(*chosen)
    except ValueError as err:
        raise AetoolError(f"--size: {err}") from None
    return chosen


def random_images(batch: int, size: tuple[int, int], *, channels: int = 1, seed: int = 0) -> np.ndarray:
    """N×C×H×W float32 in [0, 1]: the dense kernels these models run on take as long whatever the pixels."""
    return np.random.default_rng(seed).random((batch, channels, *size), dtype=np.float32)


def ort_backend(model: Model) -> Backend:
    """``session.run`` for the reconstruction on prepared feeds, in the calls ``Model.reconstruct`` makes (a batch
    through a conv model in parts of 64 digits' worth, ``InputSpec.images_per_call``; a page of more than
    ``tiles.TILE``² pixels in its overlapping tiles, ``InputSpec.tiling``): onnxruntime's time, without our Python
    around it (nor the stitching of tiles). A file that fixes its batch B takes calls of B images, the last
    padded with black ones, as the runtime pads it."""
    session = model.session
    dtype = _INPUT_DTYPES[session.get_inputs()[0].type]
    spec = model.input_spec

    def calls_of(images: np.ndarray) -> Call:
        step = spec.images_per_call(*images.shape[-2:])
        if spec.batch:
            images = pad_batch(images, step)
        return split_calls(session, images.astype(dtype), step)

    def bind(images: np.ndarray) -> Call:
        tiling = spec.tiling(*images.shape[-2:])
        if tiling is None:
            return calls_of(images)
        parts = [calls_of(window) for window in tiles.windows(images, tile=tiling[0], margin=tiling[1])]
        return lambda: [call() for call in parts]

    return bind


def split_calls(session: Any, images: np.ndarray, step: int) -> Call:
    """The batch ``images`` through ``session`` for the reconstruction, in calls of ``step`` images (the last takes
    what is left), the feeds prepared beforehand."""
    feeds = [{contract.INPUT: images[start : start + step]} for start in range(0, len(images), step)]
    return lambda: [session.run([contract.RECONSTRUCTION], feed) for feed in feeds]


class TorchEager:
    """A run's PyTorch model in eager mode under ``inference_mode``, on ``threads`` threads: the baseline to beat."""

    def __init__(self, run_dir: str | Path, threads: int) -> None:
        import torch

        from aetool.train import load_run

        torch.set_num_threads(threads)
        self.kept_freed_memory = keep_freed_memory()
        run = load_run(run_dir)
        self.name = run.config.model
        self.net = run.net.eval()
        self.version = torch.__version__

    def __call__(self, images: np.ndarray) -> Call:
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(images, np.float32))

        def call() -> object:
            with torch.inference_mode():
                return self.net(batch)

        return call


class OpenVINO:
    """The same file in OpenVINO on the CPU: the runtime an x86 edge user would pick instead of aetool's.

    Given its best case: f32 (asked for and checked: a bf16-capable CPU would otherwise compute in less), the
    latency hint, ``threads`` threads, compiled for each batch's static shape (onnxruntime's session keeps the
    file's dynamic batch), inputs and outputs shared rather than copied. Raises ``RuntimeError`` (OpenVINO's) when
    it cannot convert or compile the file.
    """

    def __init__(self, path: str | Path, threads: int) -> None:
        from aetool.check import imported

        self.core = imported("openvino").Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
        }
        self.model = self.core.read_model(str(path))
        self.dtype = self.model.input(0).get_element_type().to_dtype()
        self._compile(self.model)  # a file OpenVINO cannot run fails here, before any timing

    def _compile(self, model: Any) -> Any:
        from aetool.check import imported

        ov = imported("openvino")
        compiled = self.core.compile_model(model, "CPU", self.config)
        precision = compiled.get_property("INFERENCE_PRECISION_HINT")
        if precision != ov.Type.f32:
            raise RuntimeError(f"OpenVINO runs in {precision}, not f32")
        return compiled

    def __call__(self, images: np.ndarray) -> Call:
        model = self.model.clone()
        model.reshape({model.input(0).get_any_name(): list(images.shape)})
        compiled = self._compile(model)
        request = compiled.create_infer_request()
        output = compiled.output(contract.RECONSTRUCTION)
        feed = {0: np.ascontiguousarray(images, self.dtype)}

        def call() -> object:
            return request.infer(feed, share_inputs=True, share_outputs=True)[output]

        return call


@dataclass(frozen=True)
class Peer:
    """Another runtime timed on the same file (``--compare``): its backend, or why it cannot run the file."""

    name: str
    version: str
    backend: Backend | None
    error: str | None = None  # the line of its message that says what is wrong


PEERS = ("openvino",)


def load_peer(name: str, path: str | Path, threads: int) -> Peer:
    """The peer runtime ``name`` on the file at ``path``. Raises ``AetoolError`` for an unknown or missing one."""
    if name not in PEERS:
        raise AetoolError(f"--compare takes {', '.join(PEERS)}; got {name!r}")
    if importlib.util.find_spec("openvino") is None:
        raise AetoolError(
            "aetool bench --compare openvino needs OpenVINO: install the check extra, see the README "
            "(pip install 'aetool[check]', or '.[check]' in a clone)"
        )
    from aetool.check import failure_reason, module_version

    version = module_version("openvino")()
    try:
        return Peer(name, version, OpenVINO(path, threads))
    except RuntimeError as err:
        return Peer(name, version, None, failure_reason(err))


def time_calls(call: Call, seconds: float, min_calls: int) -> list[float]:
    """Wall time of each call made in about ``seconds``, and of at least ``min_calls`` calls."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    end = 0.0
    while len(times) < min_calls or end < deadline:
        start = time.perf_counter()
        call()
        end = time.perf_counter()
        times.append(end - start)
    return times


def interleaved(calls: dict[str, Call], plan: Plan) -> dict[str, tuple[float, ...]]:
    """Per-call seconds of each backend; rounds alternate the order, so outside load and warm caches fall alike."""
    for call in calls.values():
        for _ in range(plan.warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(plan.repeats):
        for name in list(calls) if round_ % 2 == 0 else list(calls)[::-1]:
            times[name] += time_calls(calls[name], plan.seconds / plan.repeats, plan.min_calls)
    return {name: tuple(t) for name, t in times.items()}


def measure(
    backends: dict[str, Backend], batch_sizes: Sequence[int], size: tuple[int, int], plan: Plan, *, channels: int = 1
) -> dict[int, dict[str, Timing]]:
    """Time every backend on the same random ``channels``-channel images at each batch size:
    ``{batch: {backend: Timing}}``."""
    results = {}
    for batch in batch_sizes:
        images = random_images(batch, size, channels=channels)
        seconds = interleaved({name: bind(images) for name, bind in backends.items()}, plan)
        results[batch] = {name: Timing(batch, t) for name, t in seconds.items()}
    return results


@dataclass(frozen=True)
class BatchResult:
    """One batch size as ``aetool bench`` reports it: onnxruntime, PyTorch and the peer runtime (when timed) and
    their ratios to onnxruntime."""

    batch_size: int
    ort_ms: float  # median
    ort_p95_ms: float
    ort_best_ms: float
    images_per_s: float  # at the median
    calls: int
    ort_mean_ms: float
    ort_p99_ms: float
    ort_max_ms: float
    sustained_images_per_s: float  # over the mean
    gflop_per_s: float | None = None  # at the median; only where the FLOPs are known (onnx installed)
    sustained_gflop_per_s: float | None = None  # over the mean, as sustained_images_per_s (the table's)
    torch_ms: float | None = None
    torch_p95_ms: float | None = None
    torch_best_ms: float | None = None
    torch_images_per_s: float | None = None
    torch_calls: int | None = None
    speedup_vs_torch: float | None = None  # torch median ÷ onnxruntime median
    peer_ms: float | None = None
    peer_p95_ms: float | None = None
    peer_best_ms: float | None = None
    peer_images_per_s: float | None = None
    peer_calls: int | None = None
    speedup_vs_peer: float | None = None  # peer median ÷ onnxruntime median

    def to_dict(self) -> dict[str, Any]:
        """The JSON record; fields that were not measured are left out."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def _compared(prefix: str, other: Timing, ort: Timing) -> dict[str, Any]:
    """The :class:`BatchResult` fields of a backend timed beside onnxruntime (``torch_ms``, …, ``speedup_vs_torch``
    for ``prefix`` "torch")."""
    return {
        f"{prefix}_ms": other.median_ms,
        f"{prefix}_p95_ms": other.p95_ms,
        f"{prefix}_best_ms": other.best_ms,
        f"{prefix}_images_per_s": other.images_per_s,
        f"{prefix}_calls": len(other.seconds),
        f"speedup_vs_{prefix}": other.median_ms / ort.median_ms,
    }


def batch_result(
    batch: int, ort: Timing, *, torch: Timing | None = None, flops: int | None = None, peer: Timing | None = None
) -> BatchResult:
    """The :class:`BatchResult` of one batch size from its timings (and FLOPs per image, when known)."""
    result = BatchResult(
        batch,
        ort.median_ms,
        ort.p95_ms,
        ort.best_ms,
        ort.images_per_s,
        len(ort.seconds),
        ort.mean_ms,
        ort.p99_ms,
        ort.max_ms,
        ort.sustained_images_per_s,
    )
    if flops is not None:
        result = replace(
            result,
            gflop_per_s=flops * ort.images_per_s / 1e9,
            sustained_gflop_per_s=flops * ort.sustained_images_per_s / 1e9,
        )
    for prefix, other in (("torch", torch), ("peer", peer)):
        if other is not None:
            result = replace(result, **_compared(prefix, other, ort))
    return result


@dataclass(frozen=True)
class BenchSummary:
    """Everything ``aetool bench`` reports: the setting, the machine's load, a :class:`BatchResult` per batch size."""

    model: str
    file: str
    precision: str | None
    providers: list[str]
    threads: int
    cores: int
    size: tuple[int, int]
    onnxruntime: str
    torch: str | None
    torch_kept_freed_memory: bool | None
    peer: str | None  # the runtime of --compare
    peer_version: str | None
    peer_error: str | None  # why the peer cannot run the file, which it then does not time
    warmup: int
    repeats: int
    seconds: float
    flops_per_image: int | None
    load_average: tuple[float | None, float | None]  # before and after timing
    results: list[BatchResult]
    aetool: str = aetool.__version__
    cpu: str = ""  # the CPU's model name (runtime.cpu.cpu_facts)
    cpu_flags: tuple[str, ...] = ()  # which of runtime.cpu.SIMD_FLAGS it has
    omp_wait_policy: str | None = None  # $OMP_WAIT_POLICY as timed: PyTorch's OpenMP threads spin or sleep by it

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        record = asdict(self)
        record.update(size=list(self.size), load_average=list(self.load_average), cpu_flags=list(self.cpu_flags))
        record["results"] = [result.to_dict() for result in self.results]
        return record


def run(
    model: Model,
    *,
    threads: int,
    batch_sizes: Sequence[int],
    size: tuple[int, int] | None,
    plan: Plan,
    eager: TorchEager | None = None,
    peer: Peer | None = None,
) -> BenchSummary:
    """Time ``model`` at each batch size on random images of ``size`` (default: the model's), beside ``eager`` and
    ``peer`` (where it can run the file).

    Raises ``AetoolError`` for a batch over the page limit, a run of another model or a detector file beside
    ``eager``, ``ModelFileError`` when onnxruntime fails on the images, ``TimedOut`` when a first call runs past the
    model's ``timeout``.
    """
    import onnxruntime

    size = image_size(model, size)
    largest = max(batch_sizes) * size[0] * size[1]
    if largest > MAX_CONV_PIXELS:  # a timed batch may hold what one page through a conv model may
        raise AetoolError(
            f"a batch of {max(batch_sizes)} images of {size[0]}×{size[1]} (height×width) is {largest:,} pixels, over "
            f"the {MAX_CONV_PIXELS:,} a timed batch may hold; use smaller --batch-sizes or --size"
        )
    backends: dict[str, Backend] = {"ort": ort_backend(model)}
    if eager is not None:
        if eager.name != model.name:
            raise AetoolError(
                f"the run trained {eager.name} but {model.path.name} is {model.name}; compare a model with its own run"
            )
        if contract.ANOMALY in model.metadata:
            raise AetoolError(
                f"{model.path.name} is an anomaly detector: onnxruntime would run its score head too, PyTorch eager "
                f"only the autoencoder; --compare-torch a plain export of the run (aetool export RUN -o plain.onnx)"
            )
        backends["torch"] = eager
    if peer is not None and peer.backend is not None:
        backends["peer"] = peer.backend
    # One call through the model first, which Ctrl-C and the model's timeout can stop (the timed calls go straight
    # to the session): a model that never finishes is stopped here, not in the untimed warm-up; one that fails on
    # an image, or returns values outside [0, 1] on the random images it is timed on, fails here in one line, before
    # its FLOPs are counted from a run of the graph.
    model.reconstruct(random_images(1, size, channels=model.input_spec.channels))
    flops = page_flops(model, size) if importlib.util.find_spec("onnx") is not None else None
    before = load_average()
    try:
        timings = measure(backends, batch_sizes, size, plan, channels=model.input_spec.channels)
    except ort_errors() as err:
        raise ModelFileError(
            f"{model.path.name} failed on random {size[0]}×{size[1]} (height×width) images: {first_line(err)}"
        ) from None
    return BenchSummary(
        model=model.name,
        file=str(model.path),
        precision=model.metadata.get(contract.PRECISION),
        providers=model.providers,
        threads=threads,
        cores=usable_cores(),
        size=size,
        onnxruntime=onnxruntime.__version__,
        torch=eager.version if eager else None,
        torch_kept_freed_memory=eager.kept_freed_memory if eager else None,
        peer=peer.name if peer else None,
        peer_version=peer.version if peer else None,
        peer_error=peer.error if peer else None,
        warmup=plan.warmup,
        repeats=plan.repeats,
        seconds=plan.seconds,
        flops_per_image=flops,
        load_average=(before, load_average()),
        cpu=cpu_facts()[0],
        cpu_flags=tuple(flag for flag in SIMD_FLAGS if flag in cpu_facts()[1]),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        results=[
            batch_result(batch, found["ort"], torch=found.get("torch"), flops=flops, peer=found.get("peer"))
            for batch, found in timings.items()
        ],
    )


# ---- arithmetic: how close a throughput comes to what the CPU can do (these need onnx, the train extra) ----


def tensor_shapes(path: str | Path, size: tuple[int, int]) -> tuple[dict[str, list[int]], int]:
    """The shape of every tensor of the graph for one call on B×C×H×W images (B the batch the file fixes, else 1;
    C as the graph's input declares, else 1), from one onnxruntime run exposing them all; and B.

    Static shape inference cannot follow shapes computed at run time (Shape → Reshape, as in the exporter's
    single-output conv); a run can.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    produced = {name for node in graph.node for name in node.output} - {info.name for info in graph.output}
    graph.output.extend(info for info in graph.value_info if info.name in produced)
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[CPU])
    dims = graph.input[0].type.tensor_type.shape.dim
    # onnxruntime takes a dimension below 1 for an unnamed one, so the file loads and runs: so does this count
    # (a negative batch was numpy's "negative dimensions are not allowed", a traceback; trial 99)
    batch = (dims[0].dim_value if dims and dims[0].dim_value > 0 else 0) or 1
    image = [batch, (dims[1].dim_value if len(dims) > 1 and dims[1].dim_value > 0 else 0) or 1, *size]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(graph.input[0].type.tensor_type.elem_type)  # a float16 input too
    values = session.run(None, {graph.input[0].name: np.zeros(image, dtype)})
    shapes = {info.name: list(value.shape) for info, value in zip(session.get_outputs(), values, strict=True)}
    shapes.update({tensor.name: list(tensor.dims) for tensor in graph.initializer})
    shapes[graph.input[0].name] = image
    return shapes, batch


UNCOUNTED = ("ConvInteger", "QLinearConv", "QLinearMatMul")  # products flops_per_image does not count


def flops_per_image(path: str | Path, size: tuple[int, int]) -> int | None:
    """2 × the multiply-adds of the Conv, ConvTranspose, Gemm and MatMul(Integer) nodes for one image of ``size``;
    None for a graph this count would get wrong: one holding an operator outside ONNX's own domain (a graph
    onnxruntime optimised and saved: ``com.microsoft`` FusedConv, NCHWc Conv) or an integer convolution or
    product this count leaves out (``ConvInteger``, ``QLinearConv``, ``QLinearMatMul``).

    A convolution counts the products by its nonzero weights only: the phase convolutions that stand for a
    transposed one (``export.phases``) hold taps that are zero by construction, which the model does not need.
    Elementwise ops, pooling, unpooling and Col2Im are left out: a rounding error in arithmetic, though not
    always in time.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    if any(node.domain not in ("", "ai.onnx") or node.op_type in UNCOUNTED for node in graph.node):
        return None
    shapes, batch = tensor_shapes(path, size)
    nonzero = {tensor.name: int(np.count_nonzero(numpy_helper.to_array(tensor))) for tensor in graph.initializer}
    macs = 0
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("Conv", "ConvTranspose"):
            # Conv: every output pixel of each output channel takes that channel's weights (Cin/groups × kh × kw);
            # ConvTranspose: every input pixel of each input channel, that channel's (Cout/groups × kh × kw).
            weight = shapes[node.input[1]]
            pixels = prod(shapes[node.output[0] if node.op_type == "Conv" else node.input[0]]) // weight[0]
            macs += pixels * nonzero.get(node.input[1], prod(weight))
        elif node.op_type in ("Gemm", "MatMul", "MatMulInteger"):
            a = shapes[node.input[0]]
            inner = a[-2] if attrs.get("transA") else a[-1]
            macs += prod(shapes[node.output[0]]) * inner
    return 2 * macs // batch


def page_flops(model: Model, size: tuple[int, int]) -> int | None:
    """:func:`flops_per_image` of the calls ``model`` runs an image of ``size`` (height, width) in: the image
    itself, or for a page that runs in tiles (``InputSpec.tiling``) its windows, margins included. A conv model's
    count grows with the pixels it runs, so it is counted on a 16 × ``multiple_of`` square and scaled to those
    pixels (exact for sizes the model takes): a run exposing every tensor of a megapixel page takes gigabytes."""
    spec = model.input_spec
    if spec.size is not None:
        return flops_per_image(model.path, size)
    tiling = spec.tiling(*size)
    page = np.broadcast_to(np.float32(0), (1, 1, *size))
    calls = [page] if tiling is None else tiles.windows(page, tile=tiling[0], margin=tiling[1])
    side = 16 * spec.multiple_of
    pixels = sum(call.shape[-2] * call.shape[-1] for call in calls)
    square = flops_per_image(model.path, (side, side))
    return None if square is None else square * pixels // (side * side)


def load_average() -> float | None:
    """The 1-minute load average to 2 decimals, to say how busy the machine was while it was timed (None where
    unknown)."""
    load = aetool.load_average()
    return None if load is None else round(load, 2)
