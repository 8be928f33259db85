"""The roofline's yardsticks for ``run_all.py`` and ``gemm_shapes.py``: a model's least memory traffic, and the
CPU's SGEMM peak and memory bandwidth timed as backends in a model's own alternating rounds (``aetool.bench.interleaved``).
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np

from aetool.bench import Backend, tensor_shapes
from aetool.runtime.session import CPU


def bytes_per_image(path: str | Path, size: tuple[int, int]) -> tuple[int, int]:
    """The least memory traffic of one call, as (bytes per image, bytes per call): every Conv, ConvTranspose,
    Gemm and MatMul reads its input and writes its output once (float32; the operations between them fused into
    them), and the weights are read once a call.

    What a roofline floor needs: at batch 256 these activations (a 32-channel 28×28 map is 25.7 MB) outgrow the
    caches, so the time to stream them is a bound no kernel beats.
    """
    import onnx

    shapes, batch = tensor_shapes(path, size)
    model = onnx.load(str(path))
    weights = {tensor.name for tensor in model.graph.initializer}
    activations = used = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            activations += prod(shapes[node.input[0]]) + prod(shapes[node.output[0]])
            used += sum(prod(shapes[name]) for name in node.input[1:] if name in weights)
    return 4 * activations // batch, 4 * used


SGEMM_N = 1024  # square matrices of the peak measurement: large enough for MLAS to run at full speed
SGEMM_FLOPS = 2 * SGEMM_N**3


def sgemm_backend(threads: int) -> Backend:
    """onnxruntime's SGEMM (1024² MatMul, ignoring the images): timed in a model's rounds, the peak under its load."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.random((SGEMM_N, SGEMM_N), dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "sgemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [SGEMM_N, SGEMM_N])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [SGEMM_N, SGEMM_N])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[CPU])
    feed = {"a": rng.random((SGEMM_N, SGEMM_N), dtype=np.float32)}
    return lambda images: lambda: session.run(None, feed)


COPY_BYTES = 256 << 20  # per array: far beyond the caches, so a copy streams from and to memory


def copy_backend(threads: int) -> Backend:
    """A copy of 256 MiB split over ``threads`` threads (numpy releases the GIL): 2 × COPY_BYTES of memory traffic
    (read and write), the bandwidth a roofline floor divides by, timed in a model's rounds like the SGEMM."""
    from concurrent.futures import ThreadPoolExecutor

    source = np.ones(COPY_BYTES // 4, np.float32)
    target = np.empty_like(source)
    parts = list(zip(np.array_split(source, threads), np.array_split(target, threads), strict=True))
    pool = ThreadPoolExecutor(threads)

    def call() -> object:
        return list(pool.map(lambda pair: np.copyto(pair[1], pair[0]), parts))

    return lambda images: call
