"""How fast onnxruntime's SGEMM runs the dense models' own matrix shapes: the ceiling of a dense model's % of peak.

    .venv/bin/python benchmarks/gemm_shapes.py --runs runs/ [--models deep ae128 ...] [--batch 256] [--seconds 2]

``run_all.py`` judges a dense model at batch 256 against a 1024² SGEMM (bar: 80 % of it). A model's products are
smaller (``deep``'s largest is 256 × 784 × 512). Per model, this times in the same alternating rounds: the model
through aetool's runtime (``session.run`` for the reconstruction), each of its ``Gemm``/``MatMul`` nodes alone (a
graph of that one node, its weights and attributes, on a batch × K input), and the 1024² SGEMM. It prints each
product's rate, the sum of the products alone against the model (what the rest of the graph costs) and the rate
of that sum against the peak: the % of peak no other part of the graph could lift the model above. Rates come from
median calls, the peak from the best call, as in ``run_all.py``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import roofline
from one_line_errors import run_script
from onnx import TensorProto, helper

from aetool import bench
from aetool.errors import ModelFileError
from aetool.runtime import load
from aetool.runtime.cpu import usable_cores
from aetool.runtime.session import CPU, session_options

DENSE = ["deep", "ae64", "ae128", "ae256", "sparse", "denoise-dense"]


def products(path: Path) -> list[tuple[onnx.NodeProto, list[onnx.TensorProto], int, int]]:
    """Each Gemm/MatMul node of the model with its weight initializers, K (inner) and N (output width)."""
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type not in ("Gemm", "MatMul"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        b = weights[node.input[1]]
        inner, width = (b.dims[1], b.dims[0]) if attrs.get("transB") else (b.dims[0], b.dims[1])
        found.append((node, [weights[name] for name in node.input[1:] if name in weights], inner, width))
    return found


def product_call(node: onnx.NodeProto, weights: list[onnx.TensorProto], batch: int, inner: int, threads: int):
    """A call of ``node`` alone on a random batch × inner input, in a session with aetool's options."""
    alone = helper.make_node(
        node.op_type, ["x", *node.input[1:]], ["y"], **{a.name: helper.get_attribute_value(a) for a in node.attribute}
    )
    graph = helper.make_graph(
        [alone],
        "product",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, inner])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=[CPU])
    feed = {"x": np.random.default_rng(0).random((batch, inner), dtype=np.float32)}
    return lambda: session.run(None, feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders with model.onnx")
    parser.add_argument("--models", nargs="*", default=DENSE)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--seconds", type=float, default=2.0, help="per call kind, all rounds together")
    args = parser.parse_args()
    missing = [name for name in args.models if not (args.runs / name / "model.onnx").is_file()]
    if (
        missing
    ):  # before anything is printed or timed (it was a traceback after the rows of the runs before it; trial 66)
        raise ModelFileError(
            f"no model.onnx in {', '.join(str(args.runs / name) for name in missing)}; train them first "
            f"(aetool train MODEL -o {args.runs}/MODEL), or name the ones there with --models"
        )
    plan = bench.Plan(seconds=args.seconds)
    images = bench.random_images(args.batch, bench.DEFAULT_SIZE)
    sgemm = roofline.sgemm_backend(args.threads)(images)
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, batch {args.batch}, load {bench.load_average()}")
    print("\n| model | product (M × K × N) | ms | GFLOP/s | % of peak |\n|---|---|---:|---:|---:|", flush=True)
    summary = []
    for name in args.models:
        path = args.runs / name / "model.onnx"
        found = products(path)
        calls = {"model": bench.ort_backend(load(path, threads=args.threads))(images), "sgemm": sgemm}
        for i, (node, weights, inner, _) in enumerate(found):
            calls[f"{i}"] = product_call(node, weights, args.batch, inner, args.threads)
        times = bench.interleaved(calls, plan)
        peak = roofline.SGEMM_FLOPS / min(times["sgemm"]) / 1e9
        alone = flops = 0.0
        for i, (_, _, inner, width) in enumerate(found):
            seconds, product = statistics.median(times[f"{i}"]), 2 * args.batch * inner * width
            alone, flops = alone + seconds, flops + product
            rate = product / seconds / 1e9
            print(
                f"| {name} | {args.batch} × {inner} × {width} | {seconds * 1e3:.3f} | {rate:.0f} | {100 * rate / peak:.1f} % |"
            )
        model_seconds = statistics.median(times["model"])
        summary.append((name, flops, alone, model_seconds, peak, bench.load_average()))
    print(
        "\n| model | products alone ms | model ms | products ÷ model | products % of peak | model % of peak | "
        "peak GFLOP/s | load |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, flops, alone, model_seconds, peak, load_after in summary:
        products_share = 100 * flops / alone / 1e9 / peak
        model_share = 100 * flops / model_seconds / 1e9 / peak
        print(
            f"| {name} | {alone * 1e3:.3f} | {model_seconds * 1e3:.3f} | {alone / model_seconds:.2f} | "
            f"{products_share:.1f} % | {model_share:.1f} % | {peak:.0f} | {load_after} |"
        )


if __name__ == "__main__":
    run_script(main)
