"""The fixed cost of one call, the floor under every batch-1 latency: onnxruntime against PyTorch eager.

Times a graph that does nothing (``image`` → two ``Identity`` outputs, shaped as an aetool model) through
``InferenceSession.run`` for the reconstruction, as ``Model.reconstruct`` and ``aetool bench`` call it, and
``nn.Identity`` under ``inference_mode`` as aetool's benchmark calls PyTorch; then the same two call paths on a
run's model, if given. A chain of 9 ``Relu`` nodes against one gives the cost of each node beyond the first. A
model's batch-1 ratio cannot exceed torch time ÷ onnxruntime floor, so a model whose PyTorch call takes under 3×
the onnxruntime floor cannot reach 3×.

    .venv/bin/python benchmarks/call_overhead.py [--run runs/pca] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from one_line_errors import run_script
from onnx import TensorProto, helper

from aetool import bench
from aetool.runtime import contract, load
from aetool.runtime.cpu import keep_freed_memory, usable_cores


def median_us(call: Callable[[], object], seconds: float = 1.0) -> float:
    """Median wall time of ``call`` over about ``seconds``, after 500 warm-up calls."""
    for _ in range(500):
        call()
    return statistics.median(bench.time_calls(call, seconds, min_calls=3)) * 1e6


def identity_session(threads: int) -> ort.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node("Identity", [contract.INPUT], [name]) for name in (contract.RECONSTRUCTION, contract.CODE)],
        "identity",
        [helper.make_tensor_value_info(contract.INPUT, TensorProto.FLOAT, ["N", 1, 28, 28])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
            for name in (contract.RECONSTRUCTION, contract.CODE)
        ],
    )
    return cpu_session(graph, threads)


def relu_chain_session(nodes: int, threads: int) -> ort.InferenceSession:
    """``image`` → ``nodes`` Relu nodes in a row → ``reconstruction``, kept as they are (no graph optimizations)."""
    names = [contract.INPUT, *(f"relu{i}" for i in range(nodes - 1)), contract.RECONSTRUCTION]
    graph = helper.make_graph(
        [helper.make_node("Relu", [a], [b]) for a, b in itertools.pairwise(names)],
        "relu_chain",
        [helper.make_tensor_value_info(contract.INPUT, TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info(contract.RECONSTRUCTION, TensorProto.FLOAT, None)],
    )
    return cpu_session(graph, threads, optimize=False)


def cpu_session(graph: onnx.GraphProto, threads: int, optimize: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run folder whose model.onnx and checkpoint to time at batch 1 as well")
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    image = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    session = identity_session(args.threads)
    identity = torch.nn.Identity()
    batch = torch.from_numpy(image)

    def torch_identity() -> object:
        with torch.inference_mode():
            return identity(batch)

    print(f"{args.threads} threads, onnxruntime {ort.__version__}, torch {torch.__version__}; median µs per call")
    floor_us = median_us(lambda: session.run([contract.RECONSTRUCTION], {contract.INPUT: image}))
    print(f"floor, a graph that does nothing: onnxruntime {floor_us:.1f}, torch {median_us(torch_identity):.1f}")
    feed = {contract.INPUT: image}
    one, nine = (relu_chain_session(nodes, args.threads) for nodes in (1, 9))
    per_node = (median_us(lambda: nine.run(None, feed)) - median_us(lambda: one.run(None, feed))) / 8
    print(f"each node beyond the first (a chain of 9 Relu against 1): onnxruntime {per_node:.2f}")
    if args.run:
        model = load(f"{args.run}/model.onnx", threads=args.threads)
        ort_call = bench.ort_backend(model)(image)
        torch_call = bench.TorchEager(args.run, args.threads)(image)
        ort_us, torch_us = median_us(ort_call), median_us(torch_call)
        print(f"{args.run}: onnxruntime {ort_us:.1f}, torch {torch_us:.1f} ({torch_us / ort_us:.2f}×)")


if __name__ == "__main__":
    run_script(main)
