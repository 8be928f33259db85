"""How well a calibrated threshold holds its false-positive rate on new normal images, rule by rule.

    .venv/bin/python benchmarks/calibration_rules.py --runs runs/oneclass --data-dir ../shared/data [--fpr 0.01 0.05]

For each one-class run under RUNS/DATASET/class-C (``benchmarks/oneclass.py`` trains them), calibrates the run again
into a temporary file (its held-out images, as ``aetool calibrate`` does), scores the dataset's test split with that
detector, and prints, per class and ``--fpr``, the share of the normal class's test images above the threshold of
two rules on the same calibration scores: aetool's (``anomaly.threshold_for``, split conformal) and numpy's
interpolated (1 − fpr) quantile; then, per dataset, the means and how many classes are within ±1 point of the rate
asked for.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from one_line_errors import run_script

from aetool.errors import AetoolError

RULES = ("conformal", "interpolated")
TOLERANCE = 0.01  # the bar: within ±1 point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/oneclass"))
    parser.add_argument(
        "--data-dir", default=os.environ.get("AETOOL_DATA_DIR"), help="folder of mnist/, fashion-mnist/"
    )
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--fpr", type=float, nargs="+", default=[0.01, 0.05])
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("--data-dir (or AETOOL_DATA_DIR) names the folder of mnist/ and fashion-mnist/")

    from aetool.export.detector import CalibrationOptions, calibrate_run
    from aetool.runtime import load
    from aetool.runtime.anomaly import threshold_for
    from aetool.runtime.anomaly_evaluation import idx_scores
    from aetool.runtime.detect import Detector
    from aetool.runtime.idx import resolve_data_dir

    columns = [(rule, fpr) for fpr in args.fpr for rule in RULES]
    rates: dict[tuple[str, str, float], list[float]] = {}
    runs = {dataset: sorted((args.runs / dataset).glob("class-*")) for dataset in args.datasets}
    if not any(runs.values()):  # it printed a table's header and exited 0
        wanted = ", ".join(str(args.runs / dataset / "class-N") for dataset in args.datasets)
        raise AetoolError(f"no one-class runs under {args.runs} ({wanted}): benchmarks/oneclass.py writes them")
    print("FPR % (the share of the normal class's test images above the threshold), by rule and --fpr:")
    print(f"| dataset | class | calibration images | {' | '.join(f'{rule} {fpr:g}' for rule, fpr in columns)} |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    for dataset in args.datasets:
        data_dir = resolve_data_dir(args.data_dir, dataset)
        for run in sorted(runs[dataset], key=lambda path: int(path.name.split("-")[1])):
            normal = run.name.split("-")[1]
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "detector.onnx"
                options = CalibrationOptions(fpr=args.fpr[0], data_dir=data_dir)
                calibration = calibrate_run(run, out=path, options=options, echo=lambda line: None)
                scores, labels = idx_scores(Detector(load(path)), data_dir)
            normal_scores = scores[labels == normal]
            cells = []
            for fpr in args.fpr:
                thresholds = {
                    "conformal": threshold_for(calibration.scores, fpr=fpr),
                    "interpolated": float(np.quantile(calibration.scores, 1 - fpr)),
                }
                for rule in RULES:
                    rate = float((normal_scores > thresholds[rule]).mean())
                    rates.setdefault((dataset, rule, fpr), []).append(rate)
                    cells.append(f"{100 * rate:.2f}")
            print(f"| {dataset} | {normal} | {len(calibration.scores)} | {' | '.join(cells)} |", flush=True)
    for dataset in args.datasets:
        found = [rates[dataset, rule, fpr] for rule, fpr in columns if (dataset, rule, fpr) in rates]
        if not found:
            continue
        means = " | ".join(f"{100 * np.mean(values):.2f}" for values in found)
        within = " | ".join(
            f"{sum(abs(rate - fpr) <= TOLERANCE for rate in values)}/{len(values)}"
            for (_, fpr), values in zip(columns, found, strict=True)
        )
        print(f"| {dataset} mean | | | {means} |")
        print(f"| {dataset} within ±1 point | | | {within} |")


if __name__ == "__main__":
    run_script(main)
