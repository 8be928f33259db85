"""How many images one onnxruntime call should take: a batch split into calls of each size, timed side by side.

    .venv/bin/python benchmarks/images_per_call.py FILE.onnx [MORE.onnx] [--batch 256] [--parts 32,48,64,96,128,256]

aetool's runtime sends a batch through a conv model 64 digits' worth at a time (``CONV_PIXELS_PER_CALL`` in
``aetool/runtime/spec.py``) and through a dense model 256 at a time. Per file, this times ``--batch`` random
28×28 images (at the model's size for a dense model) sent as calls of each ``--parts`` size (the last call takes
what is left), in alternating rounds (``aetool.bench.interleaved``), and prints the median time of the whole batch
and its speedup over the largest part size (one call, with the default sizes). The size the runtime picks is
marked.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from one_line_errors import run_script

from aetool import bench
from aetool.runtime import load
from aetool.runtime.cpu import usable_cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="aetool .onnx files (input 'image')")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--parts", type=bench.parse_batch_sizes, default=[32, 48, 64, 96, 128, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per part size, all rounds")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    plan = bench.Plan(warmup=3, repeats=args.repeats, seconds=args.seconds)
    print(
        f"{args.threads} threads, {usable_cores()} cores, load average {bench.load_average()} before; batch "
        f"{args.batch}, median ms of the whole batch (speedup over calls of {max(args.parts)})"
    )
    print("| file | " + " | ".join(f"{part} a call" for part in args.parts) + " |")
    print("|---|" + "---:|" * len(args.parts))
    for path in args.models:
        model = load(path, threads=args.threads)
        size = bench.image_size(model, None)
        images = bench.random_images(args.batch, size, channels=model.input_spec.channels)
        chosen = model.input_spec.images_per_call(*size)
        seconds = bench.interleaved({part: bench.split_calls(model.session, images, part) for part in args.parts}, plan)
        whole = statistics.median(seconds[max(args.parts)])
        cells = []
        for part in args.parts:
            ms = statistics.median(seconds[part])
            mark = " (runtime)" if part == min(chosen, args.batch) else ""
            cells.append(f"{ms * 1e3:.2f} ({whole / ms:.2f}×){mark}")
        print(f"| {path} | " + " | ".join(cells) + " |", flush=True)
    print(f"load average after: {bench.load_average()}")


if __name__ == "__main__":
    run_script(main)
