"""What the portable export target costs in onnxruntime: each unpooling model in both targets, timed in one run.

    .venv/bin/python benchmarks/export_targets.py [--threads 2] [--repeats 9] [--seconds 6]

Exports conv-unpool and conv-unpool-deconv (random weights, seed 0) with ``--target onnxruntime`` and
``--target portable`` (verified parity, as ``aetool export`` does), loads each file with aetool's runtime and
times ``session.run`` with ``aetool.bench.measure``: the same random 28×28 images, batch 1 and 256, the targets
alternating within every round (``aetool.bench.interleaved``) so outside load falls on both alike. Prints the
median per call, the best call, the portable/onnxruntime ratio of the medians and the machine's load. The
portable target is the default while its ratio at batch 256 stays within 1.25.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from one_line_errors import run_script

from aetool import bench
from aetool.export import ExportOptions, export_model
from aetool.export.metadata import ModelFacts
from aetool.models import build_model, get_spec
from aetool.runtime import contract
from aetool.runtime.model import Model

MODELS = ("conv-unpool", "conv-unpool-deconv")
BATCHES = (1, 256)
BAR = 1.25


def exported(name: str, folder: Path) -> dict[str, Path]:
    """``name`` with random weights (seed 0), exported once per target: ``{target: file}``."""
    files = {}
    for target in contract.TARGETS:
        torch.manual_seed(0)
        path = folder / f"{name}.{target}.onnx"
        export_model(
            build_model(name),
            path,
            facts=ModelFacts(name, get_spec(name).arch),
            options=ExportOptions(target=target),
            echo=lambda line: None,
        )
        files[target] = path
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9, help="rounds; the targets alternate within each")
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per target and batch size")
    args = parser.parse_args()
    plan = bench.Plan(warmup=10, repeats=args.repeats, seconds=args.seconds)
    print(
        f"onnxruntime, {args.threads} threads, 28×28 random images, {args.repeats} interleaved rounds, "
        f"{args.seconds:g} s per target and batch size; ms per call: median (best)"
    )
    print(f"{'model':<20} {'batch':>5} {'onnxruntime':>18} {'portable':>18} {'ratio':>7} load avg")
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            files = exported(name, Path(folder))
            backends = {target: bench.ort_backend(Model(path, threads=args.threads)) for target, path in files.items()}
            before = bench.load_average()
            timings = bench.measure(backends, BATCHES, (28, 28), plan)
            after = bench.load_average()
            for batch, found in timings.items():
                fast, portable = found[contract.ONNXRUNTIME], found[contract.PORTABLE]
                ratio = portable.median_ms / fast.median_ms
                mark = (" ✓" if ratio <= BAR else " ✗") if batch == max(BATCHES) else "  "
                print(
                    f"{name:<20} {batch:>5} {fast.median_ms:>9.3f} ({fast.best_ms:.3f}) "
                    f"{portable.median_ms:>9.3f} ({portable.best_ms:.3f}) {ratio:>5.2f}{mark} {before} → {after}"
                )


if __name__ == "__main__":
    run_script(main)
