"""A photo denoiser at noise levels other than its training one: does it make a cleaner photo worse?

    .venv/bin/python benchmarks/photo_levels.py --photos ../shared/data/photos [--runs runs/photos] [--set rgb]
        [--levels 0,0.01,0.02,0.05,0.098,0.15,0.2] [--range 0:0.2] [--retrain]

Trains (or reuses, as ``benchmarks/photos.py`` does) two ``dncnn`` models on ``SET/train`` with the registry's
defaults: one at the registry's single Gaussian level, 25/255 (run ``SET``, the one ``photos.py`` trains), and one
on a range drawn per image (``--noise 0:0.2``, run ``SET-range``; DnCNN-B's blind range, σ 0–55 on the 0–255 scale,
Zhang et al. 2017). Then adds Gaussian noise of each level to ``SET/test`` (seed 1234, image by image in sorted
order, as ``aetool evaluate --data`` draws it) and prints the mean PSNR (dB, peak 1) of the noisy input itself, of
each model's output and of the best Gaussian blur for that level (σ searched from 0.3 to 2.0; level 0: none, the
input), and the photos' noise as ``estimate_sigma`` reads it (what ``denoise``'s note on the noise level judges by).
A model that scores under the input at a level makes such photos worse. Writes ``levels.json`` in --runs.
Needs scipy (the dev extra).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from one_line_errors import run_script
from photos import BLUR_SIGMAS, SIGMA, blur, trained

from aetool.runtime import load
from aetool.runtime.images import read_image, to_channels
from aetool.runtime.metrics import mse, psnr
from aetool.runtime.noise import TEST_NOISE_SEED, Noise, estimate_sigma


def mean_psnr(outputs: list[np.ndarray], cleans: list[np.ndarray]) -> float:
    """The mean over images of each image's PSNR (dB, peak 1); an exact output counts as 100 dB."""
    return float(np.mean([min(psnr(mse(out, clean)), 100.0) for out, clean in zip(outputs, cleans, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder with SET/train and SET/test")
    parser.add_argument("--runs", type=Path, default=Path("runs/photos"))
    parser.add_argument("--set", default="rgb", help="rgb or gray")
    parser.add_argument("--levels", default="0,0.01,0.02,0.05,0.098,0.15,0.2", help="Gaussian σ, comma-separated")
    parser.add_argument("--range", default="0:0.2", help="the second model's training noise (--noise RANGE)")
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()
    levels = [float(level) for level in args.levels.split(",")]
    models = {
        f"dncnn σ {SIGMA:.3f}": trained(args.photos, args.set, args.runs, args.retrain),
        f"dncnn σ {args.range}": trained(
            args.photos, args.set, args.runs, args.retrain, noise=args.range, run=f"{args.set}-range"
        ),
    }
    loaded = {name: load(model_file) for name, (model_file, _) in models.items()}
    channels = next(iter(loaded.values())).input_spec.channels
    paths = sorted((args.photos / args.set / "test").iterdir())
    cleans = [to_channels(read_image(path).pixels, channels)[0] for path in paths]
    rows = []
    for level in levels:
        rng = np.random.default_rng(TEST_NOISE_SEED)
        noisy = [Noise.single(level).apply(clean[None], rng)[0] if level else clean for clean in cleans]
        row = {"level": level, "input": mean_psnr(noisy, cleans)}
        estimates = [estimate_sigma(image) for image in noisy]  # what denoise's level note judges by
        row["estimated σ min"], row["estimated σ max"] = min(estimates), max(estimates)
        for name, model in loaded.items():
            row[name] = mean_psnr([model.reconstruct(image[None])[0] for image in noisy], cleans)
        if level:
            best = max(BLUR_SIGMAS, key=lambda s: mean_psnr([blur(y, s) for y in noisy], cleans))
            row["best blur"], row["blur σ"] = mean_psnr([blur(y, best) for y in noisy], cleans), float(best)
        rows.append(row)
        print(
            "  ".join(
                f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}" for key, value in row.items()
            )
        )
    trained_in = {name: seconds for name, (_, seconds) in models.items()}
    result = {
        "set": args.set,
        "images": [p.name for p in paths],
        "load": os.getloadavg(),
        "trained": trained_in,
        "rows": rows,
    }
    (args.runs / "levels.json").write_text(json.dumps(result, indent=2))
    names = list(loaded)
    print(f"\n{args.set}, {len(paths)} test photos, mean PSNR (dB)")
    print("| σ added | estimated σ | input | " + " | ".join(names) + " | best Gaussian blur |")
    print("|---:|---:|---:|" + "---:|" * (len(names) + 1))
    for row in rows:
        blurred = f"{row['best blur']:.2f} (σ {row['blur σ']:g})" if "best blur" in row else "—"
        shown = "∞" if row["input"] >= 100 else f"{row['input']:.2f}"
        estimated = f"{row['estimated σ min']:.3f}–{row['estimated σ max']:.3f}"
        print(
            f"| {row['level']:g} | {estimated} | {shown} | "
            + " | ".join(f"{row[n]:.2f}" for n in names)
            + f" | {blurred} |"
        )


if __name__ == "__main__":
    run_script(main)
