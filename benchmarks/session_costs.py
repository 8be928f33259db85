"""What two of the runtime's session settings cost and save, on the bundled models: the memory arena's shrinking
(``runtime.model.ARENA_KEEP_VALUES``) and the exact int8 products option (``session.x64quantprecision``).

1. Memory: each model in a fresh process, its resident set after one digit, after one 1024×1024 page, and after 200
   digits more, through ``Model.reconstruct`` (which shrinks the arena at the first small call after a large one)
   and through a plain session (whose arena keeps the page's memory).
2. Speed of the other ways to shrink: a 64-digit conv call and a 1024×1024 page, each through a session that keeps
   its arena and one that shrinks it after every call, in alternating rounds.
3. The exact int8 option on a file of 8-bit weights (``quantize_dynamic(per_channel=True)`` of the bundled ``deep``),
   batch 256, with and without it in alternating rounds, and how far apart their outputs are.

    .venv/bin/python benchmarks/session_costs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from one_line_errors import run_script

from aetool import bench
from aetool.runtime.cpu import has_vnni
from aetool.runtime.registry import resolve
from aetool.runtime.session import session_options

SHRINK = "memory.enable_memory_arena_shrinkage"
MEMORY = """
import sys, numpy as np, onnxruntime as ort
from aetool.runtime import load
from aetool.runtime.registry import resolve
from aetool.runtime.session import session_options
def rss(): return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) // 1024
digit, page = np.zeros((1, 1, 28, 28), np.float32), np.random.default_rng(0).random((1, 1, 1024, 1024), np.float32)
if sys.argv[2] == "runtime":
    run = load(sys.argv[1]).reconstruct
else:
    session = ort.InferenceSession(str(resolve(sys.argv[1])), session_options(None), providers=["CPUExecutionProvider"])
    run = lambda x: session.run(None, {"image": x})
run(digit); before = rss()
run(page); after_page = rss()
for _ in range(200): run(digit)
print(before, after_page, rss())
"""


def session(
    path: str, *, shrink: bool = False, exact: bool | None = None
) -> tuple[ort.InferenceSession, ort.RunOptions]:
    """A session with the runtime's options (``exact``: the int8 option forced on or off), and run options that
    shrink the arena after every call when ``shrink``."""
    options = session_options(None)
    if exact is not None:
        options.add_session_config_entry("session.x64quantprecision", "1" if exact else "0")
    run_options = ort.RunOptions()
    if shrink:
        run_options.add_run_config_entry(SHRINK, "cpu:0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]), run_options


def alternating_ms(calls: dict[str, tuple[ort.InferenceSession, ort.RunOptions]], x: np.ndarray, rounds: int) -> dict:
    """The median ms of each session on ``x``, over ``rounds`` alternating rounds of a few calls."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (sess, options) in calls.items():
            sess.run(None, {"image": x}, options)
            started = time.perf_counter()
            for _ in range(3):
                sess.run(None, {"image": x}, options)
            times[name].append((time.perf_counter() - started) / 3 * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, load average {bench.load_average()} before, VNNI: {has_vnni()}")
    print(
        "\n| model | path | MB after a digit | after a 1024×1024 page | after 200 digits more |\n|---|---|---:|---:|---:|"
    )
    for name in ("denoise", "conv-unpool"):
        for way in ("runtime", "plain session"):
            done = subprocess.run(
                [sys.executable, "-c", MEMORY, name, way], capture_output=True, text=True, check=True
            ).stdout.split()
            print(f"| {name} | {way} | {' | '.join(done)} |", flush=True)
    print("\n| model | input | keeps its arena, ms | shrinks after every call, ms | ratio |\n|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name, shape in (
        ("conv-unpool", (64, 1, 28, 28)),
        ("conv-unpool", (1, 1, 1024, 1024)),
        ("denoise", (1, 1, 1024, 1024)),
    ):
        path = str(resolve(name))
        ms = alternating_ms(
            {"keeps": session(path), "shrinks": session(path, shrink=True)}, rng.random(shape, np.float32), args.rounds
        )
        print(
            f"| {name} | {'×'.join(map(str, shape))} | {ms['keeps']:.2f} | {ms['shrinks']:.2f} | {ms['shrinks'] / ms['keeps']:.2f} |",
            flush=True,
        )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        int8 = str(Path(folder) / "deep.int8.onnx")
        quantize_dynamic(str(resolve("deep")), int8, weight_type=QuantType.QInt8, per_channel=True)
        calls = {"without": session(int8, exact=False), "with": session(int8, exact=True)}
        x = rng.random((256, 1, 28, 28), np.float32)
        outputs = [sess.run(None, {"image": x})[0] for sess, _ in calls.values()]
        ms = alternating_ms(calls, x, args.rounds * 4)
    print(
        "\n| file | without the exact option, ms | with it, ms | ratio | max abs between them |\n|---|---:|---:|---:|---:|"
    )
    print(
        f"| deep, 8-bit int8, batch 256 | {ms['without']:.2f} | {ms['with']:.2f} | {ms['with'] / ms['without']:.2f} | {np.abs(outputs[0] - outputs[1]).max():.3g} |"
    )
    print(f"\nload average after: {bench.load_average()}")


if __name__ == "__main__":
    run_script(main)
