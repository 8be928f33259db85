"""Cold-start time and peak memory of the torch-free CLI, as a user meets them.

    python benchmarks/cold_start.py [--model denoise|FILE.onnx] [--runs 5] [--batch 2000]

Measures fresh processes of the ``aetool`` script: ``aetool --help``, ``aetool denoise one.png`` and
``aetool denoise`` over a folder of small and of many images (memory should stay flat as the batch grows).
Wall time is the median over runs; peak RSS comes from ``/usr/bin/time -v``, else from ``getrusage`` of a
wrapper process. Targets: --help ≤ 0.3 s; denoise ≤ 0.4 s and ≤ 120 MB.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from one_line_errors import run_script
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TIME = Path("/usr/bin/time")  # GNU time, for -v
RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def aetool() -> list[str]:
    """The installed ``aetool`` script beside this Python, else ``python -m aetool``."""
    script = Path(sys.executable).with_name("aetool")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "aetool"]


def default_model() -> str:
    """The bundled denoise model, as a user meets it right after install."""
    bundled = REPO / "aetool" / "runtime" / "bundled" / "models.json"
    if bundled.is_file() and "denoise" in json.loads(bundled.read_text()):
        return "denoise"
    sys.exit("no bundled 'denoise' model; run scripts/build_bundled.py or pass --model FILE.onnx")


def measure(command: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and the largest peak RSS (MB) of ``runs`` fresh runs of ``command``."""
    walls, peaks = [], []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
        peaks.append(peak_rss_mb(command))
    return statistics.median(walls), max(peaks)


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of one run, in MB."""
    if TIME.is_file():
        done = subprocess.run([str(TIME), "-v", *command], capture_output=True, text=True)
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        if found:
            return int(found.group(1)) / 1024
    done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True, text=True)
    return int(done.stdout.strip()) / 1024


def write_digits(folder: Path, count: int) -> Path:
    """``count`` random 28×28 PNGs."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="bundled name or .onnx file (default: denoise)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    model = args.model or default_model()
    cli = aetool()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = write_digits(work / "one", 1) / "00000.png"
        small, large = write_digits(work / "small", args.batch // 10), write_digits(work / "large", args.batch)
        rows = [
            ("aetool --help", *measure([*cli, "--help"], args.runs), "≤ 0.3 s"),
            (
                "aetool denoise one.png",
                *measure([*cli, "denoise", str(one), "--model", model, "-o", str(work / "out.png")], args.runs),
                "≤ 0.4 s, ≤ 120 MB",
            ),
            (
                f"aetool denoise ({len(list(small.iterdir()))} images)",
                *measure([*cli, "denoise", str(small), "--model", model, "-o", str(work / "out-small")], 1),
                "",
            ),
            (
                f"aetool denoise ({args.batch} images)",
                *measure([*cli, "denoise", str(large), "--model", model, "-o", str(work / "out-large")], 1),
                "RSS flat vs. the smaller batch",
            ),
        ]
    print(f"model: {model}   command: {' '.join(cli)}   runs: {args.runs} (median wall, max peak RSS)")
    print(f"{'command':34}{'wall s':>8}{'peak RSS MB':>13}  target")
    for name, wall, rss, target in rows:
        print(f"{name:34}{wall:8.3f}{rss:13.1f}  {target}")


if __name__ == "__main__":
    run_script(main)
