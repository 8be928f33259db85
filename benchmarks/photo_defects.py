"""Anomaly detection on your own photos: how aetool's detectors do on defects drawn into tiles of a micrograph.

    .venv/bin/python benchmarks/photo_defects.py --photos ../shared/data/photos [--runs runs/photo-defects]
        [--models anomaly conv-unpool] [--epochs 0 150] [--out benchmarks/results/photo_defects] [--retrain]

The normal images are 64×64 tiles of ``rgb/train/immunohistochemistry.png`` (512×512), cut every 32 pixels: rows
whose tiles end by pixel 352 train (150 tiles), the row from 352 to 416 calibrates (15, ``--val-data``), the rows
from 416 down are the normal test tiles (30); no pixel is in two of the three. Each defect is drawn with Pillow into
every test tile: ``scratch`` (a 2-pixel white line), ``blotch`` (a dark 16-pixel disc), ``patch`` (24×24 pixels of
``astronaut.png`` pasted in), ``blur`` (Gaussian, radius 4), ``flat`` (the tile's mean colour everywhere: a blank
frame), ``invert`` and ``other`` (``astronaut.png`` itself, resized). Each model is trained and calibrated with the
defaults a user gets (``aetool train MODEL --data train/ --val-data val/``, then ``aetool calibrate RUN``: fpr
0.01 on the 15 calibration tiles), once per ``--epochs`` (0: the model's default, whose 30 or so optimizer steps
on 150 tiles ``train`` warns of; 150: the epochs that warning names), and every image is scored by the torch-free
runtime, as ``aetool detect`` does.

Prints, per model and kind: how many are flagged at the threshold, how many normal verdicts are ``unusually low``
(below the calibration scores' lower fence), and the AUROC of that kind against the normal test tiles. Writes
OUT/photo_defects.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from one_line_errors import run_script
from PIL import Image, ImageDraw, ImageFilter, ImageOps, ImageStat

from aetool.errors import AetoolError

TILE, STRIDE = 64, 32
TRAIN_END, VAL_END = 352, 416  # pixel rows: train tiles end by 352, calibration tiles by 416, test tiles after
KINDS = ("scratch", "blotch", "patch", "blur", "flat", "invert", "other")


def defect(tile: Image.Image, kind: str, other: Image.Image) -> Image.Image:
    """``tile`` with the defect ``kind`` drawn in (see the module's docstring)."""
    out = tile.copy()
    if kind == "scratch":
        ImageDraw.Draw(out).line([(5, 10), (58, 50)], fill=(255, 255, 255), width=2)
    elif kind == "blotch":
        ImageDraw.Draw(out).ellipse([20, 20, 36, 36], fill=(20, 20, 20))
    elif kind == "patch":
        out.paste(other.crop((200, 100, 224, 124)), (30, 30))
    elif kind == "blur":
        out = tile.filter(ImageFilter.GaussianBlur(4))
    elif kind == "flat":
        out = Image.new("RGB", tile.size, tuple(round(v) for v in ImageStat.Stat(tile).mean))
    elif kind == "invert":
        out = ImageOps.invert(tile)
    elif kind == "other":
        out = other.resize(tile.size, Image.Resampling.LANCZOS)
    return out


def make_data(photos: Path, folder: Path) -> None:
    """The tiles and defects of the module's docstring, as PNGs under ``folder``."""
    source = Image.open(photos / "rgb" / "train" / "immunohistochemistry.png").convert("RGB")
    other = Image.open(photos / "rgb" / "train" / "astronaut.png").convert("RGB")
    for top in range(0, source.height - TILE + 1, STRIDE):
        part = "train" if top + TILE <= TRAIN_END else "val" if top + TILE <= VAL_END and top >= TRAIN_END else None
        part = part or ("test" if top >= VAL_END else None)
        if part is None:  # a tile across two parts
            continue
        for left in range(0, source.width - TILE + 1, STRIDE):
            tile = source.crop((left, top, left + TILE, top + TILE))
            name = f"{top:03d}_{left:03d}.png"
            (folder / part).mkdir(parents=True, exist_ok=True)
            tile.save(folder / part / name)
            for kind in KINDS if part == "test" else ():
                (folder / kind).mkdir(parents=True, exist_ok=True)
                defect(tile, kind, other).save(folder / kind / name)


def scores_of(detector, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, anomalous verdicts and unusually-low marks of the images of ``folder``, as ``aetool detect``."""
    from aetool.runtime.detect import detect, plan_detection
    from aetool.runtime.files import collect

    found, failed = collect([str(folder)])
    assert not failed, failed
    records = list(detect(plan_detection(found, heatmaps=None)[0], detector))
    assert not any(r.error for r in records), [r.error for r in records if r.error]
    return (
        np.array([r.score for r in records]),
        np.array([bool(r.anomalous) for r in records]),
        np.array([r.unusually_low for r in records]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("AETOOL_PHOTOS", "../shared/data/photos")))
    parser.add_argument("--models", nargs="+", default=["anomaly", "conv-unpool"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[0, 150], help="0: the model's default")
    parser.add_argument("--runs", type=Path, default=Path("runs/photo-defects"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/photo_defects"))
    parser.add_argument("--retrain", action="store_true", help="train again (default: reuse finished runs)")
    args = parser.parse_args()

    from aetool.export.detector import calibrate_run
    from aetool.runtime import anomaly, load
    from aetool.runtime.detect import Detector
    from aetool.train import TrainConfig, train

    data = args.runs / "data"
    if not (data / "test").is_dir():
        if not (args.photos / "rgb" / "train").is_dir():  # a FileNotFoundError traceback on its first photo
            raise AetoolError(
                f"--photos {args.photos} holds no rgb/train/ folder of photographs (../shared/data/photos)"
            )
        make_data(args.photos, data)
    results: dict[str, dict] = {}
    for name, epochs in ((name, epochs) for name in args.models for epochs in args.epochs):
        config = TrainConfig(name, data=str(data / "train"), val_data=str(data / "val"), epochs=epochs or None)
        run = args.runs / f"{name}-{config.epochs}"
        if args.retrain or not (run / "model.onnx").is_file():
            trained = train(config, run_dir=run, force=True, progress=False, echo=lambda line: None)
            calibrate_run(run, echo=lambda line: None)
            seconds = round(trained.seconds, 1)
        else:
            seconds = None
        detector = Detector(load(run / "model.onnx"))
        normal, flagged, low = scores_of(detector, data / "test")
        rows = {"normal": {"n": len(normal), "flagged": int(flagged.sum()), "unusually_low": int(low.sum())}}
        for kind in KINDS:
            scores, flagged, low = scores_of(detector, data / kind)
            labels = np.r_[np.zeros(len(normal), bool), np.ones(len(scores), bool)]
            rows[kind] = {
                "n": len(scores),
                "flagged": int(flagged.sum()),
                "unusually_low": int(low.sum()),
                "auroc": anomaly.auroc(np.r_[normal, scores], labels),
            }
        key = f"{name}, {config.epochs} epochs"
        results[key] = {"train_seconds": seconds, "threshold": detector.threshold, "kinds": rows}

    lines = [
        "```",
        "python benchmarks/photo_defects.py --photos ../shared/data/photos --runs runs/photo-defects --retrain",
        "```",
        "",
        "| model | " + " | ".join(["normal", *KINDS]) + " |",
        "|---|" + "---:|" * (len(KINDS) + 1),
    ]
    for name, result in results.items():
        cells = []
        for row in result["kinds"].values():
            low = f" +{row['unusually_low']} low" if row["unusually_low"] else ""
            auroc = f", {row['auroc']:.0%}" if "auroc" in row else ""
            cells.append(f"{row['flagged']}/{row['n']}{low}{auroc}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "(flagged at the threshold / images; +k low: normal verdicts marked unusually low; %: AUROC against the "
        "normal test tiles)",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "photo_defects.md").write_text("\n".join(lines) + "\n")
    (args.out / "photo_defects.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main)
