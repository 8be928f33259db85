"""Large images through a conv model whole or in tiles: time, peak memory and the largest difference.

    .venv/bin/python benchmarks/tiles.py [MODEL ...] [--size 2000x3000] [--tiles 256,512,1024,whole] [--memory]

``Model.reconstruct`` runs an image of more than ``tiles.TILE``² pixels through a model of any size in tiles
(``aetool/runtime/tiles.py``). Per model (a bundled name or an .onnx file; default the bundled ``denoise`` and
``conv-unpool``), this times one random image of ``--size`` (height×width, grey or the model's channels) run
whole (one call) and with each tile side, in alternating rounds (``aetool.bench.interleaved``), prints the median
seconds, the speedup over the whole image, and the largest absolute difference from the whole image's output.
``--margins 4,8,…`` instead prints, per model, the largest difference from the whole image's output with each
tile margin (at the smallest ``--tiles`` side): where the margin falls short of the model's receptive field, the
seams show. ``--memory`` also runs each setting once in a fresh interpreter and prints its peak resident memory (the
process's high-water mark, interpreter and model included, from ``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from one_line_errors import run_script

from aetool import bench
from aetool.runtime import images as image_tools
from aetool.runtime import load, tiles
from aetool.runtime.cpu import usable_cores

WHOLE = 1 << 20  # a tile side larger than any image: one call


def tile_side(text: str) -> int:
    return WHOLE if text == "whole" else int(text)


def random_image(model_name: str, height: int, width: int, threads: int) -> tuple[object, np.ndarray]:
    model = load(model_name, threads=threads)
    padded = model.input_spec.padded(height, width, tiled=True)
    pixels = np.random.default_rng(0).random((model.input_spec.channels, height, width), dtype=np.float32)
    return model, image_tools.pad_to(pixels, padded)[None]


def reconstruct_with(model, image: np.ndarray, side: int) -> np.ndarray:
    tiles.TILE = side
    return model.reconstruct(image)


def child(model_name: str, side: int, height: int, width: int, threads: int) -> None:
    """Run one setting and print this process's peak resident memory in kB (``VmHWM``: the high-water mark of
    this program's memory; ``ru_maxrss`` would carry over what the forking parent held)."""
    model, image = random_image(model_name, height, width, threads)
    reconstruct_with(model, image, side)
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def peak_mb(model_name: str, side: int, height: int, width: int, threads: int) -> float:
    command = [sys.executable, __file__, model_name, "--child", str(side), "--size", f"{height}x{width}"]
    done = subprocess.run([*command, "--threads", str(threads)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["denoise", "conv-unpool"])
    parser.add_argument("--size", default="2000x3000", help="height×width of the image")
    parser.add_argument("--tiles", default="256,512,1024,whole", help="tile sides to compare; whole: one call")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per setting, all rounds")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--memory", action="store_true", help="also peak memory of each setting, run alone")
    parser.add_argument("--margins", help="tile margins to compare against the whole image, e.g. 4,8,12,16,20")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width = image_tools.parse_size(args.size) or (0, 0)
    if args.child is not None:
        child(args.models[0], args.child, height, width, args.threads)
        return
    sides = [tile_side(text) for text in args.tiles.split(",")]
    if args.margins:
        margins = [int(text) for text in args.margins.split(",")]
        print(f"one random {height}×{width} image in tiles of {min(sides)}: max abs difference from one call")
        print("| model | " + " | ".join(f"margin {margin}" for margin in margins) + " |")
        print("|---|" + "---:|" * len(margins))
        for model_name in args.models:
            model, image = random_image(model_name, height, width, args.threads)
            whole = reconstruct_with(model, image, WHOLE)
            cells = []
            for margin in margins:
                tiles.MARGIN = margin
                cells.append(f"{float(np.abs(reconstruct_with(model, image, min(sides)) - whole).max()):.1e}")
            print(f"| {model_name} | " + " | ".join(cells) + " |")
        return
    plan = bench.Plan(warmup=1, repeats=args.repeats, seconds=args.seconds, min_calls=1)
    print(
        f"{args.threads} threads, {usable_cores()} cores, load average {bench.load_average()} before; one random "
        f"{height}×{width} image; median seconds (speedup over one call), max abs difference from one call"
    )
    names = ["whole" if side == WHOLE else f"tiles of {side}" for side in sides]
    print("| model | " + " | ".join(names) + (" | peak MB, " + " / ".join(names) if args.memory else "") + " |")
    print("|---|" + "---:|" * (len(sides) + args.memory))
    for model_name in args.models:
        model, image = random_image(model_name, height, width, args.threads)
        whole = reconstruct_with(model, image, WHOLE)
        calls = {side: functools.partial(reconstruct_with, model, image, side) for side in sides}
        seconds = bench.interleaved(calls, plan)
        base = statistics.median(seconds[WHOLE]) if WHOLE in seconds else None
        cells = []
        for side in sides:
            median = statistics.median(seconds[side])
            difference = float(np.abs(reconstruct_with(model, image, side) - whole).max())
            speedup = f" ({base / median:.2f}×)" if base else ""
            cells.append(f"{median:.2f}{speedup}, {difference:.0e}")
        if args.memory:
            cells.append(" / ".join(f"{peak_mb(model_name, side, height, width, args.threads):.0f}" for side in sides))
        print(f"| {model_name} | " + " | ".join(cells) + " |")
    tiles.TILE = tile_side("1024")


if __name__ == "__main__":
    run_script(main)
