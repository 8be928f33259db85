"""The denoising matrix of the blind denoiser: test MSE against the clean digits, inputs × methods, on MNIST.

    .venv/bin/python benchmarks/denoising.py --data-dir ../shared/data/mnist [--models denoise denoise-dense]

Inputs: the 10,000 MNIST test digits with Gaussian noise σ 0, 0.1, 0.3, 0.5, 0.8, salt-and-pepper 0.1 and 0.2,
and masking 0.25, each drawn with aetool's one noise function in one draw from seed 1234 (σ 0.5 is the report's
noisy test set). Methods: the noisy input itself, a 3×3 median filter (scipy, edges reflected) and each model
(bundled names or .onnx files) through aetool's runtime. Prints a Markdown table and the bars of the issue "a
denoiser people can use": the new default ≤ 0.002 at σ 0, below the median filter everywhere, below the dense DAE
everywhere but σ 0.5 (there within 10 %). Speed is `aetool bench` 's job (see the README).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from one_line_errors import run_script
from scipy import ndimage

from aetool.runtime import load
from aetool.runtime.idx import load_split
from aetool.runtime.metrics import mean_squared_error
from aetool.runtime.noise import TEST_NOISE_SEED, add_noise

CASES = [
    ("gaussian", 0.0),
    ("gaussian", 0.1),
    ("gaussian", 0.3),
    ("gaussian", 0.5),
    ("gaussian", 0.8),
    ("salt-pepper", 0.1),
    ("salt-pepper", 0.2),
    ("mask", 0.25),
]


def median3(images: np.ndarray) -> np.ndarray:
    return ndimage.median_filter(images, size=(1, 1, 3, 3), mode="reflect")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", nargs="*", default=["denoise", "denoise-dense"])
    args = parser.parse_args()
    clean = load_split(args.data_dir, "test")[0][:, None].astype(np.float32) / 255
    models = {name: load(name) for name in args.models}
    matrix: dict[str, dict[str, float]] = {}
    for kind, level in CASES:
        noisy = add_noise(clean, level, kind=kind, rng=TEST_NOISE_SEED) if level else clean
        row = {
            "noisy input": float(np.square(noisy - clean, dtype=np.float64).mean()),
            "median 3×3": float(np.square(median3(noisy) - clean, dtype=np.float64).mean()),
        }
        for name, model in models.items():
            row[name] = mean_squared_error(model.reconstruct, noisy, clean)
        matrix[f"{kind} {level:g}"] = row
        print(f"{kind} {level:g}: " + "  ".join(f"{k} {v:.5f}" for k, v in row.items()), flush=True)
    methods = list(next(iter(matrix.values())))
    print("\ntest MSE against the clean digits (pixels in [0, 1]), by input and method:")
    print("| input | " + " | ".join(methods) + " |")
    print("|---|" + "---:|" * len(methods))
    for case, row in matrix.items():
        print(f"| {case} | " + " | ".join(f"{row[m]:.5f}" for m in methods) + " |")
    if {"denoise", "denoise-dense"} <= set(models):
        clean_ok = matrix["gaussian 0"]["denoise"] <= 0.002
        median_ok = all(row["denoise"] < row["median 3×3"] for row in matrix.values())
        dense_ok = all(
            row["denoise"] < row["denoise-dense"]
            or (case == "gaussian 0.5" and row["denoise"] <= 1.1 * row["denoise-dense"])
            for case, row in matrix.items()
        )
        print(
            f"\nbars: σ 0 ≤ 0.002 {clean_ok}; beats the median everywhere {median_ok}; beats the dense DAE {dense_ok}"
        )
    print(json.dumps(matrix))


if __name__ == "__main__":
    run_script(main)
