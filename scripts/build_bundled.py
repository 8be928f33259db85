"""Rebuild the pretrained models that ship inside the package, from scratch, with aetool's own pipeline.

    python scripts/build_bundled.py --data-dir ../shared/data/mnist [--runs runs/bundled] [--retrain] [--models …]

Trains each bundled model with its registry defaults on full MNIST (reusing a finished run in --runs, a folder of
its own so that your runs in runs/ are neither shipped nor trained over, unless --retrain; each line says which),
exports it with verified parity (and the reduced-precision variant where one is shipped), copies the shipped
files into aetool/runtime/bundled/ and writes models.json, which `aetool models` and `load(name)` read (with
--models, only those are rebuilt; the other entries of models.json stay).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from aetool.export import ExportOptions, export_run
from aetool.models import get_spec
from aetool.train import RunFolder, TrainConfig, train

BUNDLED = Path(__file__).resolve().parents[1] / "aetool" / "runtime" / "bundled"
# name → (precision shipped, what it is for): fp32 keeps them all (with decoders) under 10 MB, exact to PyTorch; an
# "int8" or "fp16" here ships that variant instead, its test-MSE change measured and refused above 10 % at export
SHIPPED = {
    "denoise": (
        "fp32",
        "removes noise of any common kind (Gaussian, salt-and-pepper, masking) from digits and pages of any size, "
        "with no noise level to give, and leaves clean digits nearly alone; measured on the 10,000 MNIST test digits",
    ),
    "denoise-dense": (
        "fp32",
        "the report's dense denoising AE: 28×28 digits with Gaussian noise near σ 0.5; it makes clean or lightly "
        "noisy digits worse (use denoise); measured on MNIST's test digits at σ 0.5",
    ),
    "conv-unpool": (
        "fp32",
        "reconstructs digit images of any size (padded to multiples of 4); measured on clean MNIST test digits",
    ),
    "deep": (
        "fp32",
        "reconstructs 28×28 digits through a 30-number code; its decoder graph turns codes into digits; measured on "
        "clean MNIST test digits",
    ),
}


def finished_run(runs: Path, name: str, data_dir: str, retrain: bool) -> RunFolder:
    """A run of ``name`` trained with its registry defaults: reused when one stands in for them, else trained now."""
    folder = RunFolder(runs / name)
    config = TrainConfig(name, data_dir=data_dir)
    stored = folder.stored_config() if folder.holds_run() else None
    reusable = stored is not None and folder.is_finished() and not RunFolder.reuse_shortfalls(stored, config)
    if retrain or not reusable:
        over = " over the run there (--retrain, or not the registry's settings)" if folder.holds_run() else ""
        print(f"{name}: training {folder.path} with the registry defaults{over}")
        train(config, run_dir=folder.path, force=True)
    else:
        print(f"{name}: reusing the finished run in {folder.path}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of the MNIST IDX files")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs") / "bundled", help="folder of the runs (default: %(default)s)"
    )
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    parser.add_argument("--models", nargs="*", choices=list(SHIPPED), default=list(SHIPPED))
    args = parser.parse_args()
    kept = json.loads((BUNDLED / "models.json").read_text()) if (BUNDLED / "models.json").is_file() else {}
    index = {name: entry for name, entry in kept.items() if name in SHIPPED and name not in args.models}
    for name in args.models:
        precision, use = SHIPPED[name]
        folder = finished_run(args.runs, name, args.data_dir, args.retrain)
        options = ExportOptions(precisions=() if precision == "fp32" else (precision,), data_dir=args.data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            result = export_run(folder.path, out=Path(tmp) / f"{name}.onnx", options=options)
            model_file = result.path if precision == "fp32" else result.variant_paths[0]
            shipped = [model_file, *([result.decoder_path] if result.decoder_path else [])]
            for path in shipped:
                shutil.copyfile(path, BUNDLED / path.name)
        variant = result.variants[0].to_dict() if result.variants else None
        test_mse = variant["test_mse"] if variant else folder.load().test_mse
        index[name] = {
            "file": model_file.name,
            "decoder": result.decoder_path.name if result.decoder_path else None,
            "precision": precision,
            "summary": get_spec(name).summary,
            "use": use,
            "test_mse": test_mse,
            "bytes": sum((BUNDLED / p.name).stat().st_size for p in shipped),
        }
        print(f"{name}: {precision}, test MSE {test_mse:.5f}, {index[name]['bytes'] / 1e6:.2f} MB")
    ordered = {name: index[name] for name in SHIPPED if name in index}
    (BUNDLED / "models.json").write_text(json.dumps(ordered, indent=2) + "\n")
    total = sum(entry["bytes"] for entry in index.values())
    print(f"bundled {len(index)} models, {total / 1e6:.2f} MB in all → {BUNDLED}")


if __name__ == "__main__":
    main()
