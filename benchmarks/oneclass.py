"""The one-class benchmark: MNIST and Fashion-MNIST, one detector per class with the defaults a user gets.

    .venv/bin/python benchmarks/oneclass.py --data-dir ../shared/data [--threads 1] [--datasets mnist fashion-mnist]
        [--classes 0-9] [--fpr 0.01] [--runs runs/oneclass] [--out benchmarks/results/oneclass] [--retrain]

For each class c: ``aetool train anomaly --classes c`` (in-process, the same library calls), the detector it
exports, the test set scored by the torch-free runtime (see aetool/report/oneclass.py for the protocol). Writes
OUT/README.md (the table beside the published numbers, histograms, heatmaps), OUT/index.html, OUT/figures/ and
OUT/oneclass.json (every number, the load average before and after, the environment). Training and scoring use
``--threads`` threads (default 1: on a shared 2-core machine, two threads wait on each other); the load average is
recorded because other work on the machine slows every timing.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from one_line_errors import run_script


def class_list(text: str) -> list[int]:
    """``0-9`` or ``2,3,8`` → the class numbers."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            classes = list(range(low, high + 1))
        else:
            classes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes class numbers, 0-9 or 2,3,8; got {text!r}") from None
    if not classes or not all(0 <= number <= 9 for number in classes):
        raise argparse.ArgumentTypeError(f"takes class numbers 0 to 9, got {text!r}")
    return classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=os.environ.get("AETOOL_DATA_DIR"), help="folder of mnist/, fashion-mnist/"
    )
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=["mnist", "fashion-mnist"])
    parser.add_argument("--classes", type=class_list, default=list(range(10)))
    parser.add_argument("--fpr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: the anomaly model's (15)")
    parser.add_argument("--runs", type=Path, default=Path("runs/oneclass"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/oneclass"))
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train every class again (default: reuse finished runs with these settings, resume stopped ones)",
    )
    args = parser.parse_args()

    import torch

    from aetool.report.oneclass import build_oneclass_report

    torch.set_num_threads(args.threads)
    index, results = build_oneclass_report(
        args.out,
        data_dir=args.data_dir,
        runs=args.runs,
        datasets=args.datasets,
        classes=args.classes,
        fpr=args.fpr,
        epochs=args.epochs,
        threads=args.threads,
        retrain=True,  # runs/oneclass is the benchmark's own: runs with other settings are trained over
        train_again=args.retrain,
    )
    document = json.loads((args.out / "oneclass.json").read_text())
    print(json.dumps(document["summary"], indent=2))
    print(f"load average before {document['load_average_before']}, after {document['load_average_after']}")
    print(f"wrote {index} ({len(results)} class{'es' * (len(results) != 1)})")


if __name__ == "__main__":
    run_script(main)
