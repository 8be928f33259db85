"""Every registry model on this CPU: onnxruntime fp32, int8 and fp16 against PyTorch eager and OpenVINO; size, test
MSE, FLOPs, fraction of the CPU's SGEMM peak, roofline floor.

    .venv/bin/python benchmarks/run_all.py --runs runs/ --data-dir ../shared/data/mnist [--quick] [--threads 2]

Uses the runs in --runs, training any that is missing (--quick: 2,000 images, 1 epoch) and exporting model.onnx
with its int8 and fp16 variants where they are missing or older than the checkpoint (a variant the exporter
refuses for its MSE rise is still exported, into RUN/over-limit/, so the table can show why). Per model, all
backends are timed by ``aetool.bench`` in alternating rounds, so every ratio comes from one run under one load:
batch-1 latency and batch-256 throughput. OpenVINO (where installed: the check extra) runs the fp32 file as
``aetool bench --compare openvino`` does; where it cannot, the table gives its reason. Every file is scored on the
10,000 test digits by ``aetool.runtime.evaluate``; the batch-256 GFLOP/s are set against onnxruntime's own SGEMM
peak, and the batch-256 time against a roofline floor (FLOPs ÷ that peak, least memory traffic ÷ the bandwidth of
a copy timed in the same rounds); one training epoch on --train-limit images is timed per model. Writes Markdown and JSON to --out. Cold start of the CLI
(``aetool --help``, ``aetool denoise one.png``) is benchmarks/cold_start.py's job.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import roofline
from one_line_errors import run_script

import aetool
from aetool import bench
from aetool.export import ExportOptions, ParityError, export_run
from aetool.models import REGISTRY, get_spec
from aetool.runtime import contract, load
from aetool.runtime.cpu import SIMD_FLAGS, cpu_facts, usable_cores
from aetool.runtime.evaluate import evaluate
from aetool.runtime.idx import resolve_data_dir
from aetool.train import RunFolder, TrainConfig, train
from aetool.train.run import ONNX

OUT = Path(__file__).resolve().parent / "results"
OVER_LIMIT = "over-limit"
VARIANTS = ("fp32", "int8", "fp16")
BATCHES = (1, 256)
QUICK = {"limit": 2000, "epochs": 1}
BARS = {
    "b1_vs_torch": 3.0,
    "b256_vs_torch": 2.0,
    "vs_openvino": 1.0,
    "conv_vs_floor": 2.0,
    "int8_vs_fp32": 1.5,
    "int8_mse_rise": 0.10,
}
PEER = "openvino"


def silent(line: str) -> None:
    """Swallow the exporter's and trainer's progress lines; the table says what matters."""


def files_in(folder: Path) -> dict[str, Path]:
    fp32 = folder / ONNX
    return {"fp32": fp32, **{p: contract.variant_path(fp32, p) for p in VARIANTS[1:]}}


def prepare(name: str, runs: Path, data_dir: Path, quick: bool) -> tuple[Path, dict[str, Path]]:
    """The run folder of ``name`` (trained if missing) and its fp32, int8 and fp16 files (exported if missing)."""
    folder = RunFolder(runs / name)
    run_dir = folder.path
    if not folder.holds_run():
        print(f"{name}: no run in {run_dir}; training it{' (quick)' if quick else ''}", flush=True)
        overrides = QUICK if quick and get_spec(name).kind != "pca" else {}
        train(
            TrainConfig(name, data_dir=str(data_dir), device="cpu", **overrides),
            run_dir=run_dir,
            progress=False,
            echo=silent,
        )
    for place in (run_dir, run_dir / OVER_LIMIT):
        if folder.export_is_current(model_file=place / ONNX, precisions=VARIANTS[1:]):
            return run_dir, files_in(place)
    print(f"{name}: exporting fp32, int8 and fp16 files", flush=True)
    try:
        export_run(run_dir, options=ExportOptions(precisions=VARIANTS[1:], data_dir=data_dir), echo=silent)
        return run_dir, files_in(run_dir)
    except ParityError as err:
        print(f"{name}: {err}; exporting it anyway into {run_dir / OVER_LIMIT} to measure it", flush=True)
    (run_dir / OVER_LIMIT).mkdir(exist_ok=True)
    export_run(
        run_dir,
        out=run_dir / OVER_LIMIT / ONNX,
        options=ExportOptions(precisions=VARIANTS[1:], max_mse_rise=math.inf, data_dir=data_dir),
        echo=silent,
    )
    return run_dir, files_in(run_dir / OVER_LIMIT)


def train_speed(name: str, data_dir: Path, limit: int) -> dict[str, Any]:
    """One epoch on ``limit`` images: the time between train()'s end-of-epoch lines 1 and 2, so no set-up counts."""
    config = TrainConfig(name, data_dir=str(data_dir), device="cpu", limit=limit, epochs=2)
    ends: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        train(config, run_dir=folder, progress=False, echo=lambda line: ends.append(time.perf_counter()))
    seconds = ends[1] - ends[0]
    return {"images": limit, "seconds": seconds, "images_per_s": limit / seconds}


def bench_model(
    name: str, run_dir: Path, files: dict[str, Path], data_dir: Path, threads: int, plan: bench.Plan, train_limit: int
) -> dict[str, Any]:
    """Timings of every backend of one model at batch 1 and 256, with size, test MSE and arithmetic.

    onnxruntime's SGEMM and a 256 MiB copy run in the same rounds, so the fraction of peak and the roofline floor
    (the larger of FLOPs ÷ SGEMM peak and least memory traffic ÷ copy bandwidth, at batch 256) compare times taken
    under one load.
    """
    models = {precision: load(path, threads=threads) for precision, path in files.items()}
    eager = bench.TorchEager(run_dir, threads)
    backends: dict[str, bench.Backend] = {p: bench.ort_backend(m) for p, m in models.items()}
    backends["torch"] = eager
    peer = bench.load_peer(PEER, files["fp32"], threads) if importlib.util.find_spec(PEER) else None
    if peer is not None and peer.backend is not None:
        backends[PEER] = peer.backend
        files = {**files, PEER: files["fp32"]}
    backends["sgemm"] = roofline.sgemm_backend(threads)
    backends["copy"] = roofline.copy_backend(threads)
    flops = bench.flops_per_image(files["fp32"], bench.DEFAULT_SIZE)
    assert flops is not None, "an fp32 export of aetool holds only operators the count knows"
    per_image, per_call = roofline.bytes_per_image(files["fp32"], bench.DEFAULT_SIZE)
    load_before = bench.load_average()
    timings = bench.measure(backends, BATCHES, bench.DEFAULT_SIZE, plan)
    load_after = bench.load_average()
    sgemm = timings[BATCHES[-1]].pop("sgemm").seconds + timings[BATCHES[0]].pop("sgemm").seconds
    peak = roofline.SGEMM_FLOPS / min(sgemm) / 1e9  # best call: a 10 ms call cannot dodge the load as short ones do
    copies = timings[BATCHES[-1]].pop("copy").seconds + timings[BATCHES[0]].pop("copy").seconds
    bandwidth = 2 * roofline.COPY_BYTES / min(copies) / 1e9  # GB/s, read and write
    images = BATCHES[-1]
    floor = {"compute_ms": flops * images / peak / 1e6, "memory_ms": (per_image * images + per_call) / bandwidth / 1e6}
    mse = {p: evaluate(m, data_dir).mse for p, m in models.items()}
    run_mse = models["fp32"].metadata.get("test_mse")
    rows = {}
    for backend in timings[BATCHES[0]]:
        row: dict[str, Any] = {
            "file": str(files[backend]) if backend in files else None,
            "size_bytes": files[backend].stat().st_size if backend in files else None,
            "test_mse": None if backend == PEER else mse.get(backend, run_mse),  # OpenVINO: not scored
            "mse_rise": mse[backend] / mse["fp32"] - 1 if backend in mse else None,
        }
        for batch in BATCHES:
            timing = timings[batch][backend]
            row[f"b{batch}"] = {
                "ms": timing.median_ms,
                "p95_ms": timing.p95_ms,
                "best_ms": timing.best_ms,
                "images_per_s": timing.images_per_s,
                "calls": len(timing.seconds),
                "vs_torch": timings[batch]["torch"].median_ms / timing.median_ms,
                "best_vs_torch": timings[batch]["torch"].best_ms / timing.best_ms,
                "vs_fp32": timings[batch]["fp32"].median_ms / timing.median_ms,
                "vs_openvino": timings[batch][PEER].median_ms / timing.median_ms if PEER in timings[batch] else None,
                "gflop_per_s": flops * timing.images_per_s / 1e9,
            }
        rows[backend] = row
    kind = get_spec(name).kind
    return {
        "model": name,
        "kind": kind,
        "run": str(run_dir),
        "flops_per_image": flops,
        "peak_gflops": peak,
        "fp32_b256_fraction_of_peak": rows["fp32"]["b256"]["gflop_per_s"] / peak,
        "bytes_per_image": per_image,
        "weight_bytes": per_call,
        "bandwidth_gb_s": bandwidth,
        "b256_floor": {**floor, "ms": max(floor.values())},
        "fp32_b256_vs_floor": rows["fp32"]["b256"]["ms"] / max(floor.values()),
        "load_average": [load_before, load_after],
        "openvino": {"version": peer.version, "error": peer.error} if peer else None,
        "backends": rows,
        "torch_kept_freed_memory": eager.kept_freed_memory,
        "training": train_speed(name, data_dir, train_limit) if train_limit and kind != "pca" else None,
    }


def bars(record: dict[str, Any]) -> dict[str, Any]:
    """The issue's bars for one model: ORT fp32 against torch and OpenVINO (where it ran) at both batch sizes, int8
    against fp32 (dense)."""
    fp32, int8 = record["backends"]["fp32"], record["backends"]["int8"]
    result = {
        "b1_vs_torch": fp32["b1"]["vs_torch"] >= BARS["b1_vs_torch"],
        "b256_vs_torch": fp32["b256"]["vs_torch"] >= BARS["b256_vs_torch"],
    }
    if PEER in record["backends"]:
        for batch in BATCHES:
            result[f"b{batch}_vs_openvino"] = fp32[f"b{batch}"]["vs_openvino"] >= BARS["vs_openvino"]
    if record["kind"] == "conv":
        result["b256_vs_floor"] = record["fp32_b256_vs_floor"] <= BARS["conv_vs_floor"]
    else:
        result["int8_vs_fp32"] = int8["b256"]["vs_fp32"] >= BARS["int8_vs_fp32"]
        result["int8_mse_rise"] = int8["mse_rise"] <= BARS["int8_mse_rise"]
    return result


def _mark(ok: bool | None) -> str:
    return "" if ok is None else " ✓" if ok else " ✗"


def markdown(records: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """The tables: every backend of every model, then the bars and the training speed per model."""
    lines = [
        f"# aetool inference benchmark, {env['threads']} threads",
        "",
        f"CPU {env['cpu']} ({env['cores']} cores), onnxruntime {env['onnxruntime']}, torch {env['torch']}, "
        f"openvino {env['openvino'] or 'not installed'}. "
        f"Random 28×28 images; median (p95) of all timed "
        f"batches after {env['plan']['warmup']} warm-up ones (onnxruntime: in the calls aetool's runtime makes, 64 "
        f"images a call through a conv model), {env['plan']['repeats']} alternating rounds of "
        f"{env['plan']['seconds']} s per backend and batch size. Test MSE on the 10,000 test digits "
        "(torch: as recorded by training; openvino: the fp32 file, not scored). ×torch and ×fp32: speedup over "
        "that backend, same run. OpenVINO: f32, latency hint, compiled for each batch size's static shape. Peak: "
        "onnxruntime's SGEMM (1024² MatMul), best call in the same rounds. PyTorch runs with glibc keeping "
        "freed memory (aetool.runtime.cpu.keep_freed_memory) and OMP_WAIT_POLICY "
        f"{env['omp_wait_policy'] or 'unset (OpenMP spins before it sleeps: the machine was idle)'}.",
        "",
        "| model | backend | file | test MSE | b1 ms (p95) | b1 ×torch | b256 ms (p95) | b256 img/s "
        "| b256 ×torch | b256 ×fp32 | b256 GFLOP/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        for backend, row in record["backends"].items():
            size = f"{row['size_bytes'] / 1e6:.2f} MB" if row["size_bytes"] else "—"
            rise = f" ({row['mse_rise']:+.1%})" if row["mse_rise"] and backend != "fp32" else ""
            mse = "—" if row["test_mse"] is None else f"{row['test_mse']:.5f}{rise}"
            b1, b256 = row["b1"], row["b256"]
            lines.append(
                f"| {record['model']} | {backend} | {size} | {mse} "
                f"| {b1['ms']:.3f} ({b1['p95_ms']:.3f}) | {b1['vs_torch']:.2f} "
                f"| {b256['ms']:.2f} ({b256['p95_ms']:.2f}) | {b256['images_per_s']:,.0f} "
                f"| {b256['vs_torch']:.2f} | {b256['vs_fp32']:.2f} | {b256['gflop_per_s']:.1f} |"
            )
    lines += [
        "",
        f"Bars: fp32 ≥ {BARS['b1_vs_torch']:g}× torch at batch 1 and ≥ {BARS['b256_vs_torch']:g}× at 256, "
        f"≥ {BARS['vs_openvino']:g}× OpenVINO on the same file at both; "
        f"int8 ≥ {BARS['int8_vs_fp32']:g}× fp32 at 256 with ≤ {BARS['int8_mse_rise']:.0%} MSE rise (dense "
        "models), judged on medians; (best): the ratio of the fastest calls, what a quieter machine would show. "
        "Training: the second epoch of train() on --train-limit images, its test pass and checkpoint included "
        "(PCA is fitted, not trained).",
        "",
        "| model | MFLOP/image | fp32 b1 ×torch (best) | fp32 b256 ×torch (best) | fp32 b1 ×openvino "
        "| fp32 b256 ×openvino | int8 b256 ×fp32 | int8 MSE rise | peak GFLOP/s | fp32 b256 % of peak "
        "| train img/s | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        ok, fp32, int8 = record["bars"], record["backends"]["fp32"], record["backends"]["int8"]
        b1, b256 = fp32["b1"], fp32["b256"]
        training = f"{record['training']['images_per_s']:,.0f}" if record["training"] else "—"
        peer = [
            f"{b['vs_openvino']:.2f}{_mark(ok[f'b{batch}_vs_openvino'])}" if b["vs_openvino"] else "—"
            for batch, b in ((1, b1), (256, b256))
        ]
        lines.append(
            f"| {record['model']} | {record['flops_per_image'] / 1e6:.2f} "
            f"| {b1['vs_torch']:.2f}{_mark(ok['b1_vs_torch'])} ({b1['best_vs_torch']:.2f}) "
            f"| {b256['vs_torch']:.2f}{_mark(ok['b256_vs_torch'])} ({b256['best_vs_torch']:.2f}) "
            f"| {peer[0]} | {peer[1]} "
            f"| {int8['b256']['vs_fp32']:.2f}{_mark(ok.get('int8_vs_fp32'))} "
            f"| {int8['mse_rise']:+.1%}{_mark(ok.get('int8_mse_rise'))} "
            f"| {record['peak_gflops']:.0f} | {record['fp32_b256_fraction_of_peak']:.1%} | {training} "
            f"| {record['load_average'][0]} → {record['load_average'][1]} |"
        )
    lines += [
        "",
        "Roofline floor at batch 256: the larger of FLOPs ÷ the SGEMM peak and the least memory traffic (each Conv, "
        "ConvTranspose, Gemm and MatMul reading its input and writing its output once in float32, weights once a "
        "call) ÷ the bandwidth of a 256 MiB copy on all threads, both measured in the model's rounds (best call); "
        f"bar for conv models: fp32 within {BARS['conv_vs_floor']:g}× of it.",
        "",
        "| model | MFLOP/image | MB/image | peak GFLOP/s | copy GB/s | compute floor ms | memory floor ms "
        "| fp32 b256 ms | ×floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        floor = record["b256_floor"]
        lines.append(
            f"| {record['model']} | {record['flops_per_image'] / 1e6:.2f} | {record['bytes_per_image'] / 1e6:.3f} "
            f"| {record['peak_gflops']:.0f} | {record['bandwidth_gb_s']:.1f} | {floor['compute_ms']:.2f} "
            f"| {floor['memory_ms']:.2f} | {record['backends']['fp32']['b256']['ms']:.2f} "
            f"| {record['fp32_b256_vs_floor']:.2f}{_mark(record['bars'].get('b256_vs_floor'))} |"
        )
    failed = [record for record in records if record["openvino"] and record["openvino"]["error"]]
    if failed:
        lines += ["", f"OpenVINO {failed[0]['openvino']['version']} cannot run:"]
        lines += [f"- {record['model']}: {record['openvino']['error']}" for record in failed]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders, one per model")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: $AETOOL_DATA_DIR)")
    parser.add_argument("--models", nargs="*", default=list(REGISTRY), choices=list(REGISTRY))
    parser.add_argument("--quick", action="store_true", help="train missing runs on 2,000 images for 1 epoch")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per backend and batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-limit", type=int, default=10_000, help="images in the timed training epoch (0: skip)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for run_all.md and run_all.json")
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir, "mnist")
    if data_dir is None:
        parser.error("give --data-dir or set AETOOL_DATA_DIR: test MSE and int8 calibration need MNIST")
    plan = bench.Plan(repeats=args.repeats, seconds=args.seconds)
    started = time.perf_counter()
    env = {
        "cpu": cpu_facts()[0],
        "cpu_flags": [flag for flag in SIMD_FLAGS if flag in cpu_facts()[1]],
        "aetool": aetool.__version__,
        "cores": usable_cores(),
        "threads": args.threads,
        "onnxruntime": version("onnxruntime"),
        "openvino": version(PEER) if importlib.util.find_spec(PEER) else None,
        "torch": version("torch"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "plan": {"warmup": plan.warmup, "repeats": plan.repeats, "seconds": plan.seconds},
    }
    records = []
    for name in args.models:
        run_dir, files = prepare(name, args.runs, data_dir, args.quick)
        record = bench_model(name, run_dir, files, data_dir, args.threads, plan, args.train_limit)
        record["bars"] = bars(record)
        records.append(record)
        fp32 = record["backends"]["fp32"]
        print(
            f"{name}: fp32 {fp32['b1']['vs_torch']:.2f}× torch at batch 1, {fp32['b256']['vs_torch']:.2f}× at 256",
            flush=True,
        )
    env["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(records, env)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "run_all.md").write_text(table)
    (args.out / "run_all.json").write_text(json.dumps({"env": env, "models": records}, indent=2))
    print(f"wrote {args.out / 'run_all.md'} and run_all.json in {env['seconds']:.0f} s")


if __name__ == "__main__":
    run_script(main)
