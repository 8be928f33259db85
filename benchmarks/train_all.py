"""Train the report's ten models (`--models` for others) with their defaults, timing each: the ≤ 15-minute bar of the
training issue.

    python benchmarks/train_all.py --data-dir ../shared/data/mnist --runs runs/
Prints a Markdown table (model, epochs, wall seconds, images/s, test MSE, the report's MSE) and writes
runs/train_all.json. Runs already in --runs are refused (nothing is trained) unless ``--force``, which trains them
again from scratch. ``--keep-denormals`` trains without ``aetool.train.loop.flush_denormals`` (as before it
existed), to time what flushing denormal floats saves.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from unittest import mock

import aetool  # noqa: F401  first: it sets OMP_WAIT_POLICY by the load, read when torch loads OpenMP

# isort: split
import torch
from one_line_errors import run_script

from aetool.models import REGISTRY, REPORT_MODELS
from aetool.train import TrainConfig, train
from aetool.train.run import RunFolder

REPORT_MSE = {
    "pca": 0.0593,
    "deep": 0.00723,
    "conv-unpool": 0.00355,
    "conv-unpool-deconv": 0.00467,
    "conv-deconv": 0.0802,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--models", nargs="*", default=list(REPORT_MODELS), choices=list(REGISTRY))
    parser.add_argument("--keep-denormals", action="store_true", help="train without flushing denormal floats")
    parser.add_argument("--force", action="store_true", help="train again over runs already in --runs")
    args = parser.parse_args()
    existing = [name for name in args.models if RunFolder(Path(args.runs) / name).holds_run()]
    if existing and not args.force:
        parser.error(f"{args.runs} already holds runs of {', '.join(existing)}; pass --force to train them again")
    if args.keep_denormals:
        mock.patch("aetool.train.loop.flush_denormals", return_value=False).start()
    rows, total = [], 0.0
    for name in args.models:
        config = TrainConfig(name, data_dir=args.data_dir, device="cpu")
        result = train(config, run_dir=Path(args.runs) / name, force=True, progress=False, echo=lambda line: None)
        total += result.seconds
        images = 60_000 * max(config.epochs or 0, 1)
        row = {
            "model": name,
            "epochs": config.epochs,
            "seconds": round(result.seconds, 1),
            "images_per_s": round(images / result.seconds),
            "test_mse": result.test_mse,
            "report_mse": REPORT_MSE.get(name),
            "last": result.history[-1],
        }
        rows.append(row)
        print(
            f"{name:20s} {config.epochs:3d} epochs {result.seconds:7.1f} s  test MSE {result.test_mse:.5f}", flush=True
        )
    env = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "total_seconds": round(total, 1),
        "flush_denormals": not args.keep_denormals,
    }
    Path(args.runs, "train_all.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    print("\n| model | epochs | wall s | images/s | test MSE | report |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        report = f"{r['report_mse']:.5f}" if r["report_mse"] else "—"
        print(
            f"| {r['model']} | {r['epochs']} | {r['seconds']} | {r['images_per_s']} | {r['test_mse']:.5f} | {report} |"
        )
    print(f"\ntotal: {total:.0f} s on {env['threads']} threads, torch {env['torch']}")


if __name__ == "__main__":
    run_script(main)
