"""Same world, same numbers: MNIST from a folder of PNGs against MNIST from its IDX files.

    .venv/bin/python benchmarks/own_images.py --data-dir ../shared/data/mnist [--models conv-unpool deep] [--epochs N]
        [--flat]

(default: each model's own epochs)

Writes the 60,000 training and 10,000 test digits as PNG files into a temporary folder, then trains each model
twice with the same seed and epochs, each run in a process of its own: from the IDX files (`--data-dir`) and from
the folders (`--data train/ --val-data test/`): a subfolder per label, as users keep labelled images (the folder
then lists the digits sorted by label, so the runs see them in another order than the IDX run and differ as two
seeds would), or with ``--flat`` all in one folder, named so that their sorted order is the IDX order. Prints, per model: the test MSE of both and their ratio, the
wall and CPU time of the second epoch (once the images are decoded; CPU seconds of all the process's threads, the
measure that holds on a shared, loaded machine), the time spent reading the data before the first
step, and each process's peak RSS. Bars (issue "own images"): MSE within 3 %, epoch time ≤ 1.3×, peak RSS < 2×.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from one_line_errors import run_script

RESULT = "RESULT "


def write_pngs(data_dir: Path, folder: Path, *, flat: bool) -> float:
    """MNIST's train and test splits as PNGs under folder/train and folder/test, in a subfolder per label (or all in
    one, ``flat``, so that the sorted file names keep the IDX order); the seconds it took."""
    from PIL import Image

    from aetool.runtime.idx import load_split

    started = time.perf_counter()
    for split, name in (("train", "train"), ("test", "test")):
        images, labels = load_split(data_dir, split)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            target = folder / name / ("" if flat else str(label)) / f"{i:05d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(image)).save(target)
    return time.perf_counter() - started


def one_run(model: str, source: str, args: argparse.Namespace) -> None:
    """Train one model from one source in this process and print its numbers as one JSON line."""
    from aetool.train import TrainConfig, train

    data = {"data_dir": args.data_dir} if source == "idx" else {"data": args.train, "val_data": args.test}
    ends: list[tuple[float, float]] = []  # (wall, CPU) seconds at the end of each epoch
    started = time.perf_counter()
    config = TrainConfig(model, epochs=args.epochs, device="cpu", seed=0, **data)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(
            config,
            run_dir=run_dir,
            progress=False,
            echo=lambda line: ends.append((time.perf_counter(), time.process_time())),
        )
    record = {
        "test_mse": result.test_mse,
        "first_epoch_s": ends[0][0] - started,
        "epoch_s": ends[1][0] - ends[0][0] if len(ends) > 1 else None,
        "epoch_cpu_s": ends[1][1] - ends[0][1] if len(ends) > 1 else None,
        "seconds": result.seconds,
    }
    print(RESULT + json.dumps(record), flush=True)


def measured(model: str, source: str, args: argparse.Namespace) -> dict:
    """Run one training in a child process; its printed numbers and its peak RSS (from wait4)."""
    command = [sys.executable, __file__, "--one", model, source, "--data-dir", args.data_dir]
    command += ["--epochs", str(args.epochs)] if args.epochs else []
    if source == "folder":
        command += ["--train", args.train, "--test", args.test]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{model} from {source} failed:\n{output}")
    record = json.loads(next(line for line in output.splitlines() if line.startswith(RESULT))[len(RESULT) :])
    record["peak_rss_mb"] = usage.ru_maxrss / 1024
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of the MNIST IDX files")
    parser.add_argument("--models", nargs="*", default=["conv-unpool", "deep"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the model's)")
    parser.add_argument("--flat", action="store_true", help="all PNGs in one folder per split, in the IDX order")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SOURCE"), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(*args.one, args)
        return
    with tempfile.TemporaryDirectory(prefix="mnist-png-") as folder:
        seconds = write_pngs(Path(args.data_dir), Path(folder), flat=args.flat)
        print(f"wrote 70,000 PNGs in {seconds:.0f} s to {folder}", flush=True)
        args.train, args.test = str(Path(folder) / "train"), str(Path(folder) / "test")
        header = "| model | source | test MSE | epoch s | epoch CPU-s | to first epoch s | peak RSS MB |"
        rows = [header, "|---|---|---:|---:|---:|---:|---:|"]
        for model in args.models:
            idx, png = measured(model, "idx", args), measured(model, "folder", args)
            for source, record in (("IDX", idx), ("PNG folder", png)):
                rows.append(
                    f"| {model} | {source} | {record['test_mse']:.5f} | {record['epoch_s'] or 0:.1f} | "
                    f"{record['epoch_cpu_s'] or 0:.1f} | {record['first_epoch_s']:.1f} | {record['peak_rss_mb']:.0f} |"
                )
            rows.append(
                f"| {model} | folder / IDX | {png['test_mse'] / idx['test_mse']:.3f} | "
                f"{(png['epoch_s'] or 0) / (idx['epoch_s'] or 1):.2f} | "
                f"{(png['epoch_cpu_s'] or 0) / (idx['epoch_cpu_s'] or 1):.2f} | | {png['peak_rss_mb'] / idx['peak_rss_mb']:.2f} |"
            )
            print("\n".join(rows[-3:]), flush=True)
        print("\n".join(rows))


if __name__ == "__main__":
    run_script(main)
