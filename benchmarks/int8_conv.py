"""Which static INT8 file of a convolutional model runs faster than its fp32 file: quantizer settings side by side.

    .venv/bin/python benchmarks/int8_conv.py runs/conv-deconv/model.onnx [MORE.onnx] --data-dir ../shared/data/mnist

Per fp32 file, writes one INT8 file per entry of ``VARIANTS`` with onnxruntime's ``quantize_static`` (calibrated on
256 training digits, activations uint8, weights 7-bit int8, as aetool's export does): operator format (QDQ, which
onnxruntime fuses into ``QLinearConv`` at load, or QOperator), per-channel or per-tensor weights, which operators
are quantized and which layers stay float. Every file is timed at batch 256 in alternating rounds with the fp32
file (``aetool.bench``) and scored on the 10,000 test digits (clean in, clean out: the report's conv models are
not denoisers). The issue's bar: ≥ 1.3× fp32 with ≤ 3 % test-MSE rise. ``op_profile.py --by-op`` on a written file
(--keep DIR, which lists the file of each row) shows where its time goes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from one_line_errors import run_script
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from aetool import bench
from aetool.errors import ModelFileError
from aetool.export import variants
from aetool.runtime import contract
from aetool.runtime.idx import load_split, resolve_data_dir
from aetool.runtime.session import open_session

BATCH = 256
CALIBRATION = 256  # training digits, as aetool's export (exporter.CALIBRATION_IMAGES)
BAR = {"speedup": 1.3, "mse_rise": 0.03}
QDQ, QOPERATOR = QuantFormat.QDQ, QuantFormat.QOperator

# name: (format, per-channel weights, operator types quantized (None: all the quantizer knows), layers left float)
# Layers left float: "aetool" = the convs sharing a weight and the unpooling's compare path (what the export leaves
# float, see variants.to_int8); "first stage" = those and every node before the second Conv (conv, ReLU, pooling
# of the 1-channel input).
VARIANTS: dict[str, tuple[QuantFormat, bool, list[str] | None, str]] = {
    "QDQ per-channel (aetool's --int8)": (QDQ, True, None, "aetool"),
    "QOperator per-channel": (QOPERATOR, True, None, "aetool"),
    "QDQ per-tensor": (QDQ, False, None, "aetool"),
    "QDQ per-channel, Conv only": (QDQ, True, ["Conv"], "aetool"),
    "QDQ per-channel, first stage float": (QDQ, True, None, "first stage"),
    "QOperator per-channel, first stage float": (QOPERATOR, True, None, "first stage"),
}


def left_float(model: onnx.ModelProto, which: str) -> list[str]:
    """Names of the nodes a variant leaves float."""
    kept = variants._convs_sharing_weights(model) + variants.compare_path(model)
    if which == "first stage":
        names = [node.name for node in model.graph.node]
        convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
        kept += names[: names.index(convs[1])] if len(convs) > 1 else []
    return kept


def quantize(fp32: Path, folder: Path, calibration: np.ndarray) -> dict[str, Path]:
    """Every variant of ``fp32``, written into ``folder``."""
    model = variants._fold_constants(onnx.load(fp32))
    source = folder / "fp32.onnx"
    onnx.save(model, source)
    files = {"fp32": source}
    for i, (name, (form, per_channel, ops, which)) in enumerate(VARIANTS.items()):
        files[name] = folder / f"int8-{i}.onnx"
        with variants._no_preprocessing_advice():
            quantize_static(
                source,
                files[name],
                variants._Batches(calibration, contract.INPUT),
                quant_format=form,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                reduce_range=True,
                op_types_to_quantize=ops,
                nodes_to_exclude=left_float(model, which),
            )
    return files


def test_mse(session: Any, images: np.ndarray) -> float:
    """Mean squared error over all pixels of all ``images`` reconstructed clean."""
    squared = 0.0
    for start in range(0, len(images), 500):
        batch = images[start : start + 500]
        squared += float(((session.run([contract.RECONSTRUCTION], {contract.INPUT: batch})[0] - batch) ** 2).sum())
    return squared / images.size


def study_digits(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first ``CALIBRATION`` training digits (static int8's calibration) and the test digits, N×1×28×28
    float32 in [0, 1]: what an INT8 study (this script's and int8_weights.py's) quantizes with and scores on."""
    train, _ = load_split(data_dir, "train")
    test, _ = load_split(data_dir, "test")
    return train[:CALIBRATION, None].astype(np.float32) / 255, test[:, None].astype(np.float32) / 255


def study(fp32: Path, data_dir: Path, threads: int, plan: bench.Plan, keep: Path | None) -> list[dict[str, Any]]:
    """Each file's median batch-256 time, speed-up over fp32 and test MSE (rise), fp32 first."""
    calibration, digits = study_digits(data_dir)
    with tempfile.TemporaryDirectory() as scratch:  # sessions hold their models: the files may go after this
        folder = keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = quantize(fp32, folder, calibration)
        sessions = {name: open_session(path, threads=threads) for name, path in files.items()}
    images = bench.random_images(BATCH, bench.DEFAULT_SIZE)
    calls = {
        name: (lambda s=session: s.run([contract.RECONSTRUCTION], {contract.INPUT: images}))
        for name, session in sessions.items()
    }
    seconds = bench.interleaved(calls, plan)
    mse = {name: test_mse(session, digits) for name, session in sessions.items()}
    base = statistics.median(seconds["fp32"])
    return [
        {
            "file": name,
            "ms": statistics.median(seconds[name]) * 1e3,
            "speedup": base / statistics.median(seconds[name]),
            "test_mse": mse[name],
            "mse_rise": mse[name] / mse["fp32"] - 1,
            "path": str(files[name]),
        }
        for name in files
    ]


def study_parser(description: str, *, models: str, seconds: float) -> argparse.ArgumentParser:
    """The options of an INT8 study (this script's and int8_weights.py's): fp32 files, MNIST, threads, timing."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help=models)
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: $AETOOL_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=seconds, help="timed seconds per file, all rounds together")
    parser.add_argument("--repeats", type=int, default=6)
    return parser


def parse_study(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path, bench.Plan]:
    """The options given, the MNIST folder (refused in one line when there is none) and the timing plan; raises
    ``ModelFileError`` for a model file that is not there."""
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir, "mnist")
    if data_dir is None:
        parser.error("give --data-dir or set AETOOL_DATA_DIR: calibration and test MSE need MNIST")
    for path in args.models:  # before any is studied (a missing one was a traceback; trial 66)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
    return args, data_dir, bench.Plan(warmup=5, repeats=args.repeats, seconds=args.seconds)


def main() -> None:
    parser = study_parser(__doc__ or "", models="fp32 .onnx files of convolutional models", seconds=24.0)
    parser.add_argument("--keep", type=Path, default=None, help="write the INT8 files here (one folder per model)")
    args, data_dir, plan = parse_study(parser)
    for path in args.models:
        keep = args.keep / path.parent.name if args.keep else None
        print(f"\n{path}: batch {BATCH}, {args.threads} threads, median of {args.repeats} alternating rounds")
        print("| file | ms | ×fp32 | test MSE (rise) | bar |\n|---|---:|---:|---:|---|")
        rows = study(path, data_dir, args.threads, plan, keep)
        for row in rows:
            ok = row["speedup"] >= BAR["speedup"] and row["mse_rise"] <= BAR["mse_rise"]
            mark = "" if row["file"] == "fp32" else "✓" if ok else "✗"
            print(
                f"| {row['file']} | {row['ms']:.2f} | {row['speedup']:.2f} "
                f"| {row['test_mse']:.5f} ({row['mse_rise']:+.1%}) | {mark} |",
                flush=True,
            )
        if keep:
            print("\nwritten:\n" + "\n".join(f"  {row['path']}  {row['file']}" for row in rows))


if __name__ == "__main__":
    run_script(main)
