"""Where an ONNX model's time goes in onnxruntime: milliseconds per node per call, from onnxruntime's own profiler.

    .venv/bin/python benchmarks/op_profile.py MODEL.onnx [--batch 256] [--threads 2] [--calls 100] [--top 12] [--by-op]

Runs the model on random images with the file's channels (28×28, or the size a dense model fixes; after warm-up
calls) with profiling on and prints the nodes that took the most kernel time, with their op type and share of the
total (--by-op: the op types that did, summed over their nodes). The nodes are those of the graph onnxruntime runs,
after its optimizations (so ``ReorderInput``/``ReorderOutput`` of the NCHWc layout appear).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import onnxruntime as ort
from one_line_errors import run_script

from aetool import bench
from aetool.errors import AetoolError
from aetool.runtime import contract
from aetool.runtime.cpu import usable_cores
from aetool.runtime.model import load


def node_ms(path: str, batch: int, threads: int, calls: int, warmup: int = 10) -> dict[tuple[str, str], float]:
    """``{(node, op type): ms per call}`` over ``calls`` profiled calls after ``warmup`` calls."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    model = load(path)  # the contract's input: its channels, and a dense model's fixed size
    images = bench.random_images(batch, bench.image_size(model, None), channels=model.input_spec.channels)
    feed = {contract.INPUT: images}
    for _ in range(warmup + calls):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted(e["ts"] + e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    warm = runs[warmup - 1]  # the end of the last warm-up call
    total: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] > warm:
            total[(event["name"].removesuffix("_kernel_time"), event["args"]["op_name"])] += event["dur"]
    return {key: micros / calls / 1e3 for key, micros in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file following the aetool contract (input 'image')")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--by-op", action="store_true", help="sum the nodes of each op type")
    args = parser.parse_args()
    if not Path(args.model).is_file():  # onnxruntime's NoSuchFile was a traceback
        raise AetoolError(f"no model file {args.model}")
    times = node_ms(args.model, args.batch, args.threads, args.calls)
    if args.by_op:
        by_op: collections.Counter[tuple[str, str]] = collections.Counter()
        for (_, op), ms in times.items():
            by_op[(f"{sum(key[1] == op for key in times)} nodes", op)] += ms
        times = dict(by_op)
    total = sum(times.values())
    print(
        f"{args.model}: batch {args.batch}, {args.threads} threads, onnxruntime {ort.__version__}; "
        f"{total:.3f} ms of kernel time per call"
    )
    for (node, op), ms in sorted(times.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{ms:8.3f} ms {ms / total:6.1%}  {op:16} {node}")


if __name__ == "__main__":
    run_script(main)
