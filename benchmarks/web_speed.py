"""The bundled models in the browser against native onnxruntime: per-image time at batch 1, and the warm-up cost.

    .venv/bin/python benchmarks/web_speed.py [--threads 1,2] [--rounds 3] [--seconds 3] [--profile conv-unpool]

Builds the site ``aetool web`` writes (needs ``npm ci --prefix web``), serves it cross-origin isolated (so the
page may use threads and ``performance.now()`` has 5 µs, not 100 µs, resolution) and times each bundled model in
headless Chromium (Debian's chromium) with the page's own ``aetool.time``, onnxruntime-web on the page's thread
(``?proxy=0``: its own speed, without the messages to the worker the page runs it in): 20 warm-up runs, then single runs of
one fixed 28×28 image for --seconds (at least 200); median per run. Native onnxruntime (this Python) runs the
same files the same way at the same thread count (intra-op threads, one inter-op thread). Rounds alternate
browser and native, so outside load falls on both; the table gives the median over rounds. Warm-up: the page's
first model's session creation includes fetching and compiling onnxruntime-web's 14 MB .wasm; the first run of
each session is timed apart. ``--profile NAME`` adds where the time goes, by operator type, in onnxruntime-web
(wasm in Node) and in native onnxruntime, from their profilers, at batch 1 (native onnxruntime runs its convs in
the NCHWc layout: ``Conv`` there with ``ReorderInput``/``ReorderOutput``, ``FusedConv`` in wasm). ``--pauses``
adds how long the page stops answering (its longest gap between 5 ms timer ticks) while a 512×512 photo-sized image
goes through every bundled model, with onnxruntime-web in the worker the page runs it in and on the page's thread
(``?proxy=0``), and the worker's cost per run at batch 1. ``--peak`` adds the ceiling a model made of products
meets: the GFLOP/s of a large MatMul and of stacks of 3×3 convolutions (16–128 channels at 28×28), and of the
bundled ``denoise``, in onnxruntime-web's wasm (Node) and native onnxruntime, from the same profilers.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from one_line_errors import run_script

from aetool.errors import AetoolError
from aetool.runtime.registry import BUNDLED_DIR
from aetool.web import build_site, server

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
BAR = 3.0
NAMES = ("denoise", "denoise-dense", "conv-unpool", "deep")


def native(path: Path, threads: int, seconds: float) -> dict:
    """Batch-1 time of ``path`` in onnxruntime, by the page's protocol, with the session's warm-up cost."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    started = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    created = time.perf_counter()
    feed = {"image": (np.arange(784) * 7919 % 1000 / 1000).astype(np.float32).reshape(1, 1, 28, 28)}
    session.run(None, feed)
    first = time.perf_counter()
    for _ in range(20):
        session.run(None, feed)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 200:
        begin = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - begin) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "create_ms": (created - started) * 1e3,
        "first_run_ms": (first - created) * 1e3,
    }


def page_calls(url: str, calls: list) -> list:
    """The results of ``calls`` on the page at ``url`` (``web/run_page.mjs``), in a fresh headless Chromium."""
    job = {"url": url, "calls": calls}
    done = subprocess.run(
        ["node", str(WEB / "run_page.mjs")], input=json.dumps(job), capture_output=True, text=True, timeout=1200
    )
    if done.returncode != 0:
        raise SystemExit(f"the page failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def browser(url: str, threads: int, seconds: float) -> list[dict]:
    """The page's ``aetool.time`` of each bundled model at ``threads`` threads, onnxruntime-web on its thread."""
    return page_calls(f"{url}?threads={threads}&proxy=0", [["time", name, seconds] for name in NAMES])


PAUSE = """(async () => {
  let last = performance.now(), longest = 0, ticking = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (ticking) setTimeout(tick, 5);
  };
  tick();
  const begun = performance.now();
  await window.aetool.open([['photo.png', BYTES]]);
  ticking = false;
  longest = Math.max(longest, performance.now() - last);
  return { total_ms: performance.now() - begun, longest_pause_ms: longest };
})()"""


def pauses(url: str, threads: int, seconds: float) -> dict[str, dict]:
    """The page's longest pause while it shows a 512×512 noise image (median of 3) and each bundled model's
    per-run time, with onnxruntime-web in its worker (``worker``) and on the page's thread (``page``)."""
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)).save(png, "PNG")
    call = ["js", PAUSE.replace("BYTES", json.dumps(list(png.getvalue())))]
    found = {}
    for side, query in (("worker", ""), ("page", "&proxy=0")):
        results = page_calls(f"{url}?threads={threads}{query}", [call] * 3 + [["time", n, seconds] for n in NAMES])
        found[side] = {
            "longest_pause_ms": statistics.median(r["longest_pause_ms"] for r in results[:3]),
            "total_ms": statistics.median(r["total_ms"] for r in results[:3]),
            **{timing["name"]: timing["median_ms"] for timing in results[3:]},
        }
    return found


def op_types(events: list[dict], skip: int = 50) -> dict[str, float]:
    """µs per run by operator type from an onnxruntime profile (the same JSON events in Python and in the browser
    build): each node's median duration after the first ``skip`` runs, summed per operator type. Medians, because on
    a shared machine a few pre-empted runs would dominate the means."""
    starts = sorted(e["ts"] for e in events if e["name"] == "model_run")
    durations: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["ts"] >= starts[skip] and event["name"].endswith("_kernel_time"):
            durations[(event["name"], event["args"]["op_name"])].append(event["dur"])
    totals: dict[str, float] = collections.defaultdict(float)
    for (_, op), values in durations.items():
        totals[op] += statistics.median(values)
    return totals


def op_types_wasm(path: Path, threads: int, runs: int = 300) -> dict[str, float]:
    """:func:`op_types` of onnxruntime-web (wasm, in Node), from web/profile_node.mjs."""
    done = subprocess.run(
        ["node", str(WEB / "profile_node.mjs"), str(path), str(runs), str(threads)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return op_types(json.loads(done.stdout[done.stdout.index("[") : done.stdout.rindex("]") + 1]))


def op_types_native(path: Path, threads: int, runs: int = 300) -> dict[str, float]:
    """:func:`op_types` of native onnxruntime on the same image, after 20 unprofiled runs in another session."""
    feed = {"image": (np.arange(784) * 7919 % 1000 / 1000).astype(np.float32).reshape(1, 1, 28, 28)}
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    warm = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(20):
        warm.run(None, feed)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    return op_types(json.loads(Path(session.end_profiling()).read_text()))


SETUP_OPS = ("Reshape", "Tile", "Slice")  # the probes' own input preparation, left out of their time


def product_probes(folder: Path) -> dict[str, Path]:
    """ONNX files of a 1×1×28×28 ``image`` whose time is all products, written into ``folder``: ``matmul``, the
    image flattened and tiled to 256×784, times a 784×784 matrix; ``conv C, S×S``, the image tiled to C channels
    (at S = 14 every second row and column of it), then four 3×3 C→C convolutions (padding 1) each with its ReLU:
    at 28×28 for C in 16, 32, 64, 128, and at 14×14 for C = 32, the width and half resolution of the bundled
    ``denoise``. Random weights (seeded), opset 20, IR 9 (onnxruntime-web 1.30 reads IR ≤ 13)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 28, 28])

    def save(name: str, nodes: list, constants: dict[str, np.ndarray], output: str) -> Path:
        inits = [numpy_helper.from_array(value, key) for key, value in constants.items()]
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        graph = helper.make_graph(nodes, name, [image], [out], inits)
        path = folder / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9), path)
        return path

    probes = {
        "matmul": save(
            "matmul",
            [
                helper.make_node("Reshape", ["image", "shape"], ["flat"]),
                helper.make_node("Tile", ["flat", "repeats"], ["rows"]),
                helper.make_node("MatMul", ["rows", "weight"], ["product"]),
            ],
            {
                "shape": np.array([1, 784], np.int64),
                "repeats": np.array([256, 1], np.int64),
                "weight": (rng.standard_normal((784, 784)) * 0.05).astype(np.float32),
            },
            "product",
        )
    }
    for channels, side in ((16, 28), (32, 28), (64, 28), (128, 28), (32, 14)):
        nodes = [helper.make_node("Tile", ["image", "repeats"], ["tiled"])]
        constants = {"repeats": np.array([1, channels, 1, 1], np.int64)}
        previous = "tiled"
        if side == 14:
            nodes.append(helper.make_node("Slice", ["tiled", "starts", "ends", "axes", "steps"], ["every_second"]))
            constants.update(
                starts=np.array([0, 0], np.int64),
                ends=np.array([28, 28], np.int64),
                axes=np.array([2, 3], np.int64),
                steps=np.array([2, 2], np.int64),
            )
            previous = "every_second"
        for layer in range(4):
            constants[f"w{layer}"] = (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
            constants[f"b{layer}"] = np.zeros(channels, np.float32)
            operands = [previous, f"w{layer}", f"b{layer}"]
            nodes.append(helper.make_node("Conv", operands, [f"c{layer}"], pads=[1] * 4))
            nodes.append(helper.make_node("Relu", [f"c{layer}"], [f"r{layer}"]))
            previous = f"r{layer}"
        probes[f"conv {channels}, {side}×{side}"] = save(f"conv{channels}_{side}", nodes, constants, previous)
    return probes


def product_rates(paths: dict[str, Path], threads: int, *, rounds: int = 3, runs: int = 150) -> dict[str, dict]:
    """Each file's MFLOP per run and its best GFLOP/s over ``rounds`` rounds (sides alternating) in native
    onnxruntime and in onnxruntime-web's wasm (Node): FLOPs by ``aetool.bench.flops_per_image`` at 28×28, time
    the sum of :func:`op_types` without :data:`SETUP_OPS`. Best, not median: a ceiling, on a shared machine
    whose other load only ever lowers a rate."""
    from aetool.bench import flops_per_image

    rates: dict[str, dict] = {}
    for name, path in paths.items():
        flops = flops_per_image(path, (28, 28))
        assert flops, f"{path}: no FLOP count"
        rates[name] = {"mflop": flops / 1e6, "native": 0.0, "wasm": 0.0}
        for round_ in range(rounds):
            sides = (("native", op_types_native), ("wasm", op_types_wasm))
            for side, profile in sides if round_ % 2 == 0 else sides[::-1]:
                micros = sum(us for op, us in profile(path, threads, runs).items() if op not in SETUP_OPS)
                rates[name][side] = max(rates[name][side], flops / micros / 1e3)
    return rates


def timed_runs(url: str, counts: list[int], *, rounds: int, seconds: float) -> dict[tuple[str, int], dict[str, list]]:
    """Each bundled model's timings per (name, thread count): the page at ``url`` in Chromium (``browser``) and
    onnxruntime in Python (``native``), ``rounds`` rounds whose order alternates, ``seconds`` timed seconds each."""
    runs: dict[tuple[str, int], dict[str, list]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for round_ in range(rounds):
        for threads in counts:
            order = ("browser", "native") if round_ % 2 == 0 else ("native", "browser")
            for side in order:
                if side == "browser":
                    for timing in browser(url, threads, seconds):
                        runs[(timing["name"], threads)]["browser"].append(timing)
                else:
                    for name in NAMES:
                        runs[(name, threads)]["native"].append(native(BUNDLED_DIR / f"{name}.onnx", threads, seconds))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model and round")
    parser.add_argument("--profile", metavar="NAME", help="a bundled model to break down by operator type")
    parser.add_argument("--pauses", action="store_true", help="the page's pauses on a large image, worker or not")
    parser.add_argument("--peak", action="store_true", help="GFLOP/s of products in wasm and native: the ceiling")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        try:
            site = build_site(folder, ort_web=WEB / "node_modules" / "onnxruntime-web")
        except AetoolError as err:
            parser.exit(2, f"web_speed.py: {err} (npm ci --prefix web installs them)\n")
        httpd = server(folder)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
            runs = timed_runs(url, counts, rounds=args.rounds, seconds=args.seconds)
            paused = {threads: pauses(url, threads, args.seconds) for threads in counts} if args.pauses else {}
        finally:
            httpd.shutdown()
    print(
        f"onnxruntime {ort.__version__} (Python) against onnxruntime-web {site.ort_web_version} wasm in headless "
        f"Chromium, batch 1, median per run over {args.rounds} rounds ({args.seconds:g} s each, after 20 warm-up "
        f"runs)\n\n| model | threads | native ms | browser ms | browser / native |\n|---|---:|---:|---:|---:|"
    )
    for (name, threads), found in runs.items():
        ours = statistics.median(t["median_ms"] for t in found["native"])
        theirs = statistics.median(t["median_ms"] for t in found["browser"])
        mark = "✓" if theirs / ours <= BAR else "✗"
        print(f"| {name} | {threads} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.2f} {mark} |")
    print("\nWarm-up (medians over rounds, ms): session creation and first run of each model")
    print("\n| model | threads | native create | native first run | browser create | browser first run |")
    print("|---|---:|---:|---:|---:|---:|")
    for (name, threads), found in runs.items():
        cells = [
            statistics.median(t[key] for t in found[side])
            for side in ("native", "browser")
            for key in ("create_ms", "first_run_ms")
        ]
        print(f"| {name} | {threads} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    loads = [t["load_all_ms"] for found in runs.values() for t in found["browser"]]
    print(
        f"\nThe page's whole warm-up (wasm fetch and compile, every session created and run once): "
        f"{statistics.median(loads):.0f} ms median ({min(loads):.0f}–{max(loads):.0f})."
    )
    if paused:
        print(
            "\nA 512×512 image through every bundled model: the page's longest pause and the whole (ms, median of 3), "
            "and each model's time per run at batch 1 (ms), onnxruntime-web in the page's worker and on its thread"
        )
        print(
            f"\n| threads | where | longest pause | whole | {' | '.join(NAMES)} |\n|---|---|"
            + "---:|" * (2 + len(NAMES))
        )
        for threads, found in paused.items():
            for side, got in found.items():
                cells = [got["longest_pause_ms"], got["total_ms"], *(got[name] for name in NAMES)]
                print(
                    f"| {threads} | {side} | " + " | ".join(f"{c:.3f}" if c < 10 else f"{c:.0f}" for c in cells) + " |"
                )
    if args.profile:
        path = BUNDLED_DIR / f"{args.profile}.onnx"
        wasm, cpu = op_types_wasm(path, counts[0]), op_types_native(path, counts[0])
        print(
            f"\n{args.profile}, batch 1, {counts[0]} thread(s): µs per run by operator type (the sum of each node's "
            "median time under the profiler)"
        )
        print("\n| operator | native µs | wasm (Node) µs | wasm / native |\n|---|---:|---:|---:|")
        for op in sorted(set(wasm) | set(cpu), key=lambda o: -wasm.get(o, 0.0)):
            ratio = f"{wasm[op] / cpu[op]:.1f}" if wasm.get(op) and cpu.get(op) else "–"
            print(f"| {op} | {cpu.get(op, 0.0):.1f} | {wasm.get(op, 0.0):.1f} | {ratio} |")
        print(
            f"| all | {sum(cpu.values()):.1f} | {sum(wasm.values()):.1f} | {sum(wasm.values()) / sum(cpu.values()):.1f} |"
        )

    if args.peak:
        with tempfile.TemporaryDirectory() as folder:
            paths = {**product_probes(Path(folder)), "denoise (bundled)": BUNDLED_DIR / "denoise.onnx"}
            rates = product_rates(paths, counts[0])
        print(
            f"\nProducts, batch 1, {counts[0]} thread(s): GFLOP/s over the profiled time of the graph's nodes "
            "(medians per node; the probes' Reshape, Tile and Slice left out)"
        )
        print("\n| file | MFLOP per run | native GFLOP/s | wasm (Node) GFLOP/s | wasm time / native |")
        print("|---|---:|---:|---:|---:|")
        for name, found in rates.items():
            ratio = found["native"] / found["wasm"]
            print(f"| {name} | {found['mflop']:.1f} | {found['native']:.1f} | {found['wasm']:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    run_script(main)
