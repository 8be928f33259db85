"""The compatibility matrix: every registry model's exported files × every ONNX runtime at hand, as Markdown.

    .venv/bin/python benchmarks/compat.py [--data-dir ../shared/data/mnist] [--out benchmarks/results/compat.md]

Exports each registry model (random weights, seed 0; PCA fitted on the calibration images) with ``aetool
export``'s default target and its fp16 and int8 variants (static int8 of the conv models calibrated on 256
training digits with --data-dir, else on random images), and the unpooling models also with ``--target
onnxruntime``. Each file runs on ``aetool check``'s fixed inputs (random batches of 4 and 1; ties and a 32×48
batch for conv models; codes for decoders) in every runtime installed here: the Python ones through
``aetool.check`` (``pip install 'aetool[check]'``), and onnxruntime-web through web/run_models.mjs: wasm in
Node and in headless Chromium, and WebGPU in Chromium (SwiftShader, a Vulkan on the CPU: correctness only; needs
``npm ci --prefix web`` and Debian's chromium). A cell is ✓ with the largest difference from onnxruntime, or ✗
with a numbered note saying why (the bound, as ``aetool check``'s: 1e-4 × max(1, max|output|) for fp32 files,
1e-2 × max(1, max|output|) for fp16 and int8 ones).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from one_line_errors import run_script

from aetool.check import ATOL, Case, Reference, check_file, compare_outputs, reference
from aetool.export import ExportOptions, ParityError, export_model
from aetool.export.metadata import ModelFacts
from aetool.models import PCA, REGISTRY, build_model, get_spec
from aetool.runtime import contract
from aetool.runtime.idx import load_split
from aetool.web import server

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
OUT = Path(__file__).resolve().parent / "results" / "compat.md"
WEB_RUNS = {  # column → (runner, execution provider, bundle)
    "ort-web wasm (Node)": ("node", "wasm", ""),
    "ort-web wasm (Chromium)": ("chromium", "wasm", "ort.wasm.min.js"),
    "ort-web WebGPU (Chromium)": ("chromium", "webgpu", "ort.min.js"),
}


def calibration_images(data_dir: str | None) -> np.ndarray:
    """256 N×1×28×28 float32 images: MNIST training digits, else uniform noise."""
    if data_dir:
        return load_split(data_dir, "train")[0][:256, None].astype(np.float32) / 255
    return np.random.default_rng(0).random((256, 1, 28, 28), dtype=np.float32)


def export_all(folder: Path, calibration: np.ndarray) -> dict[str, Path | str]:
    """``{row label: file}`` for every model, decoder and variant; a label maps to the reason when refused."""
    rows: dict[str, Path | str] = {}
    for name in REGISTRY:
        for target in contract.TARGETS:
            torch.manual_seed(0)
            net = build_model(name)
            unpool = getattr(net, "uses_indices", False)
            if target == contract.ONNXRUNTIME and not unpool:
                continue  # the same graph as the portable target's
            if isinstance(net, PCA):
                net.fit(torch.from_numpy(calibration))
            precisions = ("fp16", "int8") if target == contract.PORTABLE else ()
            label = name if target == contract.PORTABLE else f"{name}, onnxruntime target"
            try:
                result = export_model(
                    net,
                    folder / f"{name}.{target}.onnx",
                    facts=ModelFacts(name, get_spec(name).arch),
                    options=ExportOptions(precisions=precisions, target=target),
                    calibration=calibration,
                    echo=lambda line: None,
                )
            except ParityError as err:
                rows[label] = str(err)
                continue
            rows[label] = result.path
            if result.decoder_path:
                rows[f"{name} decoder"] = result.decoder_path
            for precision, path in zip(precisions, result.variant_paths, strict=True):
                rows[f"{name} {precision}"] = path
    return rows


def encoded(case: Case) -> dict:
    return {
        "name": case.name,
        "dims": list(case.inputs.shape),
        "data": base64.b64encode(case.inputs.tobytes()).decode(),
    }


def web_cells(refs: dict[str, Reference], folder: Path) -> tuple[dict[str, dict[str, str]], dict]:
    """``{column: {row: cell}}`` and ``{column: version}`` for the onnxruntime-web columns (empty without Node)."""
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir() or shutil.which("node") is None:
        print("no web/node_modules or node: onnxruntime-web columns left out (npm ci --prefix web)")
        return {}, {}
    root = Path(tempfile.mkdtemp())
    (root / "matrix.html").symlink_to(WEB / "matrix.html")
    (root / "ort").symlink_to(WEB / "node_modules" / "onnxruntime-web" / "dist")
    (root / "files").symlink_to(folder)
    httpd = server(root)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    columns, versions = {}, {}
    try:
        for column, (runner, ep, bundle) in WEB_RUNS.items():
            if runner == "chromium" and not Path("/usr/bin/chromium").is_file():
                continue
            where = f"http://127.0.0.1:{httpd.server_address[1]}"
            files = [
                {
                    "file": str(ref.path) if runner == "node" else f"{where}/files/{ref.path.name}",
                    "input": ref.input_name,
                    "cases": [encoded(case) for case in ref.cases],
                }
                for ref in refs.values()
            ]
            job = {
                "runner": runner,
                "ep": ep,
                "threads": 1,
                "url": f"{where}/matrix.html?bundle={bundle}",
                "files": files,
            }
            done = subprocess.run(
                ["node", str(WEB / "run_models.mjs")],
                input=json.dumps(job),
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode != 0:
                print(f"{column}: {done.stderr[-500:]}")
                continue
            answer = json.loads(done.stdout)
            versions[column] = answer["version"] + (f", adapter {answer['adapter']}" if answer.get("adapter") else "")
            columns[column] = web_column(refs, answer["results"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    return columns, versions


def web_column(refs: dict[str, Reference], results: list[dict]) -> dict[str, str]:
    """One onnxruntime-web column: per row ✓ with the largest difference, or ✗ and the first error (held to the
    tolerance ``aetool check`` uses for the file's precision)."""
    cells = {}
    for label, ref in refs.items():
        mine = [r for r in results if r["file"].endswith(ref.path.name)]
        errors = [r["error"] for r in mine if "error" in r]
        if errors:
            cells[label] = f"✗ {errors[0]}"
            continue
        got = [
            {
                name: np.frombuffer(base64.b64decode(value["data"]), np.float32).reshape(value["dims"])
                for name, value in r["outputs"].items()
            }
            for r in mine
        ]
        atol = ATOL.get(str(ref.metadata.get(contract.PRECISION)), ATOL["fp32"])
        worst, _, problem = compare_outputs(ref.cases, ref.want, got, atol)
        cells[label] = f"✗ {problem}" if problem else f"✓ {worst:.0e}"
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST IDX folder: calibrate static int8 on training digits")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    calibration = calibration_images(args.data_dir)
    folder = Path(tempfile.mkdtemp())
    rows = export_all(folder, calibration)
    refs = {label: reference(path) for label, path in rows.items() if isinstance(path, Path)}
    table: dict[str, dict[str, str]] = {label: {} for label in rows}
    versions: dict[str, str] = {}
    for label, path in rows.items():
        if not isinstance(path, Path):
            continue
        for result in check_file(path).results:
            if result.installed:
                versions[result.runtime] = f"{result.runtime} {result.version}"
                cell = f"✓ {result.max_abs:.0e}" if result.ok else f"✗ {result.error}"
                table[label][result.runtime] = "✓ reference" if result.runtime == "onnxruntime" else cell
    web, web_versions = web_cells(refs, folder)
    for column, cells in web.items():
        for label, cell in cells.items():
            table[label][column] = cell
    versions.update(web_versions)
    text = markdown(rows, table, list(versions), versions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    shutil.rmtree(folder)


def markdown(rows: dict[str, Path | str], table: dict[str, dict[str, str]], columns: list[str], versions: dict) -> str:
    """The matrix with ✗ reasons as lettered footnotes, the versions, and the fp32 pass count."""
    notes: dict[str, str] = {}
    lines = ["| file | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, path in rows.items():
        cells = []
        for column in columns:
            cell = table[label].get(column, "–") if isinstance(path, Path) else "refused"
            if cell.startswith("✗"):
                cell = f"✗ {notes.setdefault(cell[2:], str(len(notes) + 1))}"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    fp32 = [label for label in rows if not label.endswith(("fp16", "int8")) and "onnxruntime target" not in label]
    passed = sum(table[label].get(c, "").startswith("✓") for label in fp32 for c in columns)
    lines += [
        "",
        f"Default-target fp32 files (models and decoders): {passed} of {len(fp32) * len(columns)} pairs ✓.",
        "",
    ]
    lines += [f"{number}. {reason}" for reason, number in notes.items()]
    lines += ["", "Versions: " + "; ".join(versions[c] for c in columns) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run_script(main)
