"""8-bit against 7-bit int8 weights: speed, test MSE and whether a plain onnxruntime session agrees with aetool's.

    .venv/bin/python benchmarks/int8_weights.py RUN/model.onnx [MORE.onnx] --data-dir ../shared/data/mnist

On x86 CPUs without VNNI (most AVX2 ones) onnxruntime multiplies uint8 activations by int8 weights with an
instruction that adds pairs of products in 16 bits, which 8-bit weights can saturate; aetool's sessions there set
``session.x64quantprecision`` so those products come out exact (and slower), and its int8 files hold 7-bit weights
(``reduce_range``), which cannot saturate. Per fp32 file this writes both int8 files the way aetool's export does
(``aetool.export.variants.to_int8``: dynamic for a dense model, static QDQ calibrated on 256 training digits for a
conv model), once with the quantizer's full 8-bit weights and once as exported (both per output column or
channel), and times each in aetool's session ("exact") and in a plain one ("plain"), batch 256 in alternating
rounds with the fp32 file, in the calls aetool's runtime makes; every file is scored on the first 2,000 test
digits, and the last column is how far each session lands from the same file in aetool's (a deployer's plain
session on an 8-bit file: far, without VNNI). On a CPU with VNNI both sessions compute the same.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
from int8_conv import (  # the sibling script: this folder is on the path when run
    BATCH,
    parse_study,
    study_digits,
    study_parser,
)
from one_line_errors import run_script

from aetool import bench
from aetool.export import variants
from aetool.runtime import contract
from aetool.runtime.session import session_options

TEST_DIGITS = 2000


def int8_files(fp32: Path, folder: Path, calibration: np.ndarray) -> dict[str, Path]:
    """The two int8 files of ``fp32``: "8-bit" (the quantizer's full-range weights) and "7-bit" (aetool's)."""
    model = onnx.load(fp32)
    conv = any(node.op_type == "Conv" for node in model.graph.node)
    call = variants.quantize_static if conv else variants.quantize_dynamic
    files = {}
    for name, reduce_range in (("8-bit", False), ("7-bit", True)):
        with (
            tempfile.TemporaryDirectory() as work,
            mock.patch.object(variants, call.__name__, _with_range(call, reduce_range)),
        ):
            proto = variants.to_int8(model, Path(work), calibration if conv else None)
        files[name] = folder / f"{fp32.parent.name}.int8.{name}.onnx"
        onnx.save(proto, files[name])
    return files


def _with_range(quantize: Any, reduce_range: bool) -> Any:
    """``quantize`` called with ``reduce_range`` set, whatever the export passes."""
    return lambda *args, **kwargs: quantize(*args, **{**kwargs, "reduce_range": reduce_range})


def session(path: Path, *, exact: bool, threads: int) -> ort.InferenceSession:
    """aetool's session (``exact``) or a plain one with the same threads."""
    options = session_options(threads) if exact else ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(run: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    """Reconstructions of N×1×28×28 ``images`` in the calls aetool's runtime makes: 64 digits a call for a conv model
    (padded to 32×32 and cropped back), 256 for a dense one."""
    conv = not isinstance(run.get_inputs()[0].shape[-1], int)
    inputs, per_call = (np.pad(images, ((0, 0), (0, 0), (0, 4), (0, 4))), 64) if conv else (images, 256)
    calls = [
        run.run([contract.RECONSTRUCTION], {contract.INPUT: inputs[i : i + per_call]})[0]
        for i in range(0, len(images), per_call)
    ]
    return np.concatenate(calls).reshape(len(images), 1, *inputs.shape[2:])[..., :28, :28]


def study(fp32: Path, data_dir: Path, threads: int, plan: bench.Plan) -> list[dict[str, Any]]:
    """Per file and session: median batch-256 ms, ×fp32, test MSE (rise) and its largest difference from the
    same file in aetool's session."""
    calibration, digits = study_digits(data_dir)
    digits = digits[:TEST_DIGITS]
    with tempfile.TemporaryDirectory() as scratch:
        files = {"fp32": fp32, **int8_files(fp32, Path(scratch), calibration)}
        runs = {"fp32": session(fp32, exact=True, threads=threads)}
        for name in ("8-bit", "7-bit"):
            runs[f"{name} exact"] = session(files[name], exact=True, threads=threads)
            runs[f"{name} plain"] = session(files[name], exact=False, threads=threads)
    results = {name: outputs(run, digits) for name, run in runs.items()}
    batch = digits[:BATCH]
    timed = {name: (lambda r=run: outputs(r, batch)) for name, run in runs.items()}
    seconds = bench.interleaved(timed, plan)
    mse = {name: float(((result - digits) ** 2).mean()) for name, result in results.items()}
    base = statistics.median(seconds["fp32"])
    rows = []
    for name in runs:
        exact = results[name.replace("plain", "exact")]
        rows.append(
            {
                "file": name,
                "ms": statistics.median(seconds[name]) * 1e3,
                "speedup": base / statistics.median(seconds[name]),
                "test_mse": mse[name],
                "mse_rise": mse[name] / mse["fp32"] - 1,
                "off_exact": float(np.abs(results[name] - exact).max()),
            }
        )
    return rows


def main() -> None:
    models = "fp32 model.onnx files of runs trained on MNIST"
    args, data_dir, plan = parse_study(study_parser(__doc__ or "", models=models, seconds=15.0))
    for path in args.models:
        print(f"\n{path}: batch {BATCH}, {args.threads} threads, median of {args.repeats} alternating rounds")
        print("| file, session | ms | ×fp32 | test MSE (rise) | max abs from the exact session |")
        print("|---|---:|---:|---:|---:|")
        for row in study(path, data_dir, args.threads, plan):
            print(
                f"| {row['file']} | {row['ms']:.2f} | {row['speedup']:.2f} | {row['test_mse']:.5f} "
                f"({row['mse_rise']:+.1%}) | {row['off_exact']:.3g} |",
                flush=True,
            )


if __name__ == "__main__":
    run_script(main)
