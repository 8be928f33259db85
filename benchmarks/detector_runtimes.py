"""One detector file, three runtimes, the same scores: onnxruntime, the ONNX reference evaluator and OpenVINO.

    PYTHONPATH=. /path/to/venv/bin/python benchmarks/detector_runtimes.py runs/oneclass/mnist/class-8/model.onnx \
        --data-dir ../shared/data/mnist [--reference 512] [--out benchmarks/results/detector_runtimes.json]

Runs the detector on the test digits of an IDX folder in onnxruntime (CPU), in OpenVINO (CPU, f32 inference
precision; skipped when ``openvino`` is not importable) and on the first ``--reference`` of them in
``onnx.reference.ReferenceEvaluator`` (pure Python, slow), and prints, per runtime and output, the largest
absolute difference from onnxruntime, that difference relative to max(1, |value|), and the AUROC of its scores
(the detector's ``classes`` normal). OpenVINO is not an aetool dependency: run this with a Python that has it (and
onnx, onnxruntime, numpy, Pillow), aetool imported from the working tree.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

OUTPUTS = ("score", "anomaly_map", "score_components")


def run_onnxruntime(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parts = [session.run(list(OUTPUTS), {"image": images[i : i + 500]}) for i in range(0, len(images), 500)]
    return {name: np.concatenate([part[k] for part in parts]) for k, name in enumerate(OUTPUTS)}


def run_reference(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(str(path))
    parts = [evaluator.run(list(OUTPUTS), {"image": images[i : i + 64]}) for i in range(0, len(images), 64)]
    return {name: np.concatenate([part[k] for part in parts]) for k, name in enumerate(OUTPUTS)}


def run_openvino(path: Path, images: np.ndarray) -> dict[str, np.ndarray] | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    parts = [compiled({"image": images[i : i + 500]}) for i in range(0, len(images), 500)]
    return {name: np.concatenate([part[compiled.output(name)] for part in parts]) for name in OUTPUTS}


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    rows = {}
    for name in OUTPUTS:
        a, b = got[name].astype(np.float64), want[name][: len(got[name])].astype(np.float64)
        difference = np.abs(a - b)
        rows[name] = {
            "max_abs": float(difference.max()),
            "max_relative": float((difference / np.maximum(1.0, np.abs(b))).max()),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reference", type=int, default=512, help="test images the reference evaluator runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import onnxruntime as ort

    from aetool.runtime.anomaly import auroc
    from aetool.runtime.idx import load_split

    pixels, labels = load_split(args.data_dir, "test")
    images = (pixels[:, None] / np.float32(255)).astype(np.float32)
    record = json.loads(ort.InferenceSession(str(args.model)).get_modelmeta().custom_metadata_map["anomaly"])
    is_anomaly = ~np.isin(labels.astype(str), record["classes"])

    results: dict[str, object] = {"model": str(args.model), "images": len(images), "runtimes": {}}
    started = time.perf_counter()
    base = run_onnxruntime(args.model, images)
    results["runtimes"]["onnxruntime"] = {  # type: ignore[index]
        "version": ort.__version__,
        "seconds": time.perf_counter() - started,
        "auroc": auroc(base["score"], is_anomaly),
    }
    runs = {"openvino": (run_openvino, images), "onnx": (run_reference, images[: args.reference])}
    for name, (runner, inputs) in runs.items():
        started = time.perf_counter()
        got = runner(args.model, inputs)
        if got is None:
            print(f"{name}: not installed, skipped")
            continue
        row: dict[str, object] = {"version": version(name), "seconds": time.perf_counter() - started}
        row["images"] = len(inputs)
        row.update(compare(got, base))
        if len(inputs) == len(images):
            row["auroc"] = auroc(got["score"], is_anomaly)
        results["runtimes"]["onnx.reference" if name == "onnx" else name] = row  # type: ignore[index]
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
