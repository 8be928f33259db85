"""``aetool bench`` and its library: the fields it promises, its errors, its arithmetic; never how fast it is.

Timings on a shared machine are noise, so no test here compares one; runs are kept short (--seconds 0.02).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest
from conftest import CountingSession, cli_runner, toy_metadata

import aetool
from aetool import bench
from aetool.cli import app
from aetool.runtime import load

FAST = ("--seconds", "0.02", "--repeats", "2", "--warmup", "1")
runner = cli_runner()


def invoke(*args: str):
    result = runner.invoke(app, ["bench", *args])
    assert "Traceback" not in result.stderr
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def ae64_run(tmp_path_factory) -> tuple[Path, Path]:
    """A random-weight ae64 as a run folder (checkpoint) and its verified ONNX export."""
    torch = pytest.importorskip("torch", reason="--compare-torch needs the train extra")
    from aetool.export import export_model
    from aetool.export.metadata import ModelFacts
    from aetool.models import build_model, get_spec
    from aetool.train import RunFolder, TrainConfig

    folder = tmp_path_factory.mktemp("ae64-run")
    torch.manual_seed(0)
    net = build_model("ae64")
    RunFolder(folder).save(net=net, optimizer=None, config=TrainConfig("ae64"), epoch=0, history=[])
    facts = ModelFacts("ae64", get_spec("ae64").arch)
    export_model(net, folder / "model.onnx", facts=facts, echo=lambda line: None)
    return folder, folder / "model.onnx"


def test_json_has_a_record_per_batch_size(toy_dir):
    result = invoke("--model", str(toy_dir / "dense.onnx"), "--batch-sizes", "1,8", "--threads", "1", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["threads"] == 1 and summary["providers"] == ["CPUExecutionProvider"]
    assert summary["size"] == [28, 28] and summary["torch"] is None
    assert [row["batch_size"] for row in summary["results"]] == [1, 8]
    for row in summary["results"]:
        assert row["ort_ms"] > 0 and row["ort_p95_ms"] >= row["ort_ms"] and row["calls"] >= 2 * 3
        assert row["images_per_s"] == pytest.approx(row["batch_size"] / row["ort_ms"] * 1e3)
        assert row["sustained_images_per_s"] == pytest.approx(row["batch_size"] / row["ort_mean_ms"] * 1e3)
        assert row["ort_best_ms"] <= row["ort_mean_ms"] <= row["ort_max_ms"] and row["ort_p99_ms"] <= row["ort_max_ms"]
        assert "speedup_vs_torch" not in row
    # what the times depend on, which a result file did not say (trial 66)
    assert summary["aetool"] == aetool.__version__ and summary["cpu"] and isinstance(summary["cpu_flags"], list)
    assert summary["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")


@pytest.mark.parametrize(("load", "busy"), [(0.1, False), (1.5, True)])
def test_bench_calls_the_times_unreliable_only_when_other_work_ran(toy_dir, monkeypatch, load, busy):
    """It said "a shared CPU makes the times unreliable" after every run, whatever the load (trial 66)."""
    monkeypatch.setattr(bench, "load_average", lambda: load)
    result = invoke("--model", str(toy_dir / "dense.onnx"), "--batch-sizes", "1", *FAST)
    assert result.exit_code == 0 and f"load average {load:.2f} before" in result.stderr
    assert ("unreliable" in result.stderr) is busy
    assert ("other work was running, which makes the times unreliable" in result.stderr) is busy


@pytest.mark.parametrize("name", ["rgb-conv.onnx", "rgb-dense.onnx"])
def test_a_colour_model_is_timed_on_colour_images(toy_dir, name):
    result = invoke("--model", str(toy_dir / name), "--batch-sizes", "2", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["results"][0]["ort_ms"] > 0
    assert summary["flops_per_image"] in (None, 0)  # identity graphs; None without onnx (the base install)


def test_table_names_provider_threads_and_each_batch_size(toy_dir):
    result = invoke("--model", str(toy_dir / "conv.onnx"), "--size", "32x48", "--threads", "2", *FAST)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "CPUExecutionProvider, 2 threads" in lines[0] and "32×48 (height×width) random images" in lines[0]
    assert lines[1].split()[:4] == ["batch", "ort", "ms", "(p95)"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "256"]
    assert "load average" in result.stderr and "PyTorch" not in result.stderr  # no PyTorch timed: none named
    one = invoke("--model", str(toy_dir / "conv.onnx"), "--threads", "1", *FAST)
    assert "CPUExecutionProvider, 1 thread;" in one.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--batch-sizes", "1,x"), "--batch-sizes takes integers from 1 to 4096"),
        (("--batch-sizes", "100000000"), "--batch-sizes takes integers from 1 to 4096"),
        (("--batch-sizes", "1,²"), "--batch-sizes takes integers from 1 to 4096"),  # a digit int() refuses
        (("--threads", "100000"), "--threads takes 1 to "),
        (("--model", "conv-unpool", "--size", "8192x8192"), "over the 16,777,216 a timed batch may hold"),
        (("--size", "28by28"), "--size takes HxW"),
        (("--size", "2²x3"), "--size takes HxW"),
        (("--size", "32x48"), "model takes 28×28 images"),
        (("--model", "missing.onnx"), "does not exist"),
        (("--compare", "tvm"), "--compare takes openvino; got 'tvm'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(toy_dir, args, message):
    result = invoke("--model", str(toy_dir / "dense.onnx"), *args, *FAST)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_compare_torch_adds_torch_times_and_ratios(ae64_run):
    run_dir, onnx_file = ae64_run
    result = invoke("--model", str(onnx_file), "--compare-torch", str(run_dir), "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["torch"] and summary["flops_per_image"] == 2 * 2 * 784 * 64
    for row in summary["results"]:
        assert row["torch_ms"] > 0 and row["gflop_per_s"] > 0
        assert row["speedup_vs_torch"] == pytest.approx(row["torch_ms"] / row["ort_ms"])
        # the table's GFLOP/s, over the mean as its images/s, is in the JSON too (only the median's was, trial 76)
        assert row["sustained_gflop_per_s"] == pytest.approx(row["sustained_images_per_s"] * 2 * 2 * 784 * 64 / 1e9)
    table = invoke("--model", str(onnx_file), "--compare-torch", str(run_dir), *FAST).stdout
    assert (
        "torch ms (p95)" in table and table.count("×") == 2 + 2
    )  # one per row, two in the header's size and its order
    for row in table.splitlines()[2:]:  # GFLOP/s at the images/s beside it: both over the mean (trial 67)
        images_per_s, gflop_per_s = float(row.split()[3].replace(",", "")), float(row.split()[4])
        assert gflop_per_s == pytest.approx(images_per_s * 2 * 2 * 784 * 64 / 1e9, rel=0.01, abs=0.06)


def test_compare_torch_refuses_a_folder_without_a_run_or_of_another_model(ae64_run, toy_dir, tmp_path):
    run_dir, _ = ae64_run
    for model, run, message in (
        (ae64_run[1], tmp_path, "no checkpoint at"),
        (toy_dir / "dense.onnx", run_dir, "the run trained ae64 but dense.onnx is denoise"),
    ):
        result = invoke("--model", str(model), "--compare-torch", str(run), *FAST)
        assert result.exit_code == 2 and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr


@pytest.fixture(scope="module")
def unpool_file(tmp_path_factory) -> Path:
    """A conv model of aetool's contract that OpenVINO has no conversion rule for (``MaxUnpool``)."""
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    shape = ["N", 1, "H", "W"]
    graph = helper.make_graph(
        [
            helper.make_node("MaxPool", ["image"], ["code", "indices"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("MaxUnpool", ["code", "indices"], ["reconstruction"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        "unpool",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("code", onnx.TensorProto.FLOAT, ["N", 1, "h", "w"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, toy_metadata("conv-unpool", "conv", 4))
    path = tmp_path_factory.mktemp("unpool") / "unpool.onnx"
    onnx.save(model, path)
    return path


def test_compare_openvino_adds_its_times_and_ratios(toy_dir):
    pytest.importorskip("openvino", reason="--compare openvino needs the check extra")
    args = ("--model", str(toy_dir / "conv.onnx"), "--compare", "openvino", *FAST)
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["peer"] == "openvino" and summary["peer_version"] and summary["peer_error"] is None
    for row in summary["results"]:
        assert row["peer_ms"] > 0 and row["peer_calls"] >= 2 * 3
        assert row["speedup_vs_peer"] == pytest.approx(row["peer_ms"] / row["ort_ms"])
    lines = invoke(*args).stdout.splitlines()
    assert f"vs openvino {summary['peer_version']};" in lines[0] and "openvino ms (p95)" in lines[1]
    assert "; speedup: the other's median over onnxruntime's (above 1: aetool faster);" in lines[0]  # trial 71
    assert all(line.endswith("×") for line in lines[2:])


def test_compare_openvino_says_why_it_cannot_run_a_file_and_times_onnxruntime(unpool_file):
    pytest.importorskip("openvino", reason="--compare openvino needs the check extra")
    result = invoke("--model", str(unpool_file), "--compare", "openvino", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["peer_error"] == "No conversion rule found for operations: MaxUnpool-13"
    assert all(row["ort_ms"] > 0 and "peer_ms" not in row for row in summary["results"])
    result = invoke("--model", str(unpool_file), "--compare", "openvino", *FAST)
    assert result.exit_code == 0 and "openvino ms" not in result.stdout
    assert f"cannot run unpool.onnx: {summary['peer_error']}" in result.stderr


BASE_INSTALL = (
    "import sys; sys.modules['torch'] = sys.modules['onnx'] = None; "  # as if never installed
    "from aetool.cli import main; sys.argv[0] = 'aetool'; main()"
)


def test_bench_runs_without_torch_and_says_compare_torch_needs_it(toy_dir, tmp_path):
    def aetool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", BASE_INSTALL, "bench", *args], capture_output=True, text=True, timeout=60
        )

    done = aetool("--model", str(toy_dir / "dense.onnx"), "--json", *FAST)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["flops_per_image"] is None  # counting needs onnx, the train extra
    done = aetool("--model", str(toy_dir / "dense.onnx"), "--compare-torch", str(tmp_path), *FAST)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "aetool: error: aetool bench --compare-torch needs PyTorch: install the train "
        "extra, see the README (pip install 'aetool[train]', or '.[train]' in a clone)"
    )


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch installed, the rest of its extra not")
@pytest.mark.parametrize("command", [["train", "deep"], ["export", "."], ["report", "--quick"]])
def test_a_missing_package_of_the_train_extra_besides_torch_is_one_line_and_exit_2(command, tmp_path):
    """torch installed alone (by hand, or a distro's package): pytorch-msssim or matplotlib missing was an
    ImportError traceback, exit 1 (trial 64)."""
    hidden = "import sys; sys.modules['pytorch_msssim'] = sys.modules['matplotlib'] = None; "
    (tmp_path / "checkpoint.pt").write_bytes(b"")  # export's run: a missing checkpoint is said before the extra
    done = subprocess.run(
        [sys.executable, "-c", hidden + BASE_INSTALL.split("; ", 2)[2], *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"aetool: error: aetool {command[0]} needs the train extra: matplotlib and pytorch-msssim are not installed; "
        "see the README (pip install 'aetool[train]', or '.[train]' in a clone)"
    )


def test_the_train_extras_packages_are_the_ones_the_cli_looks_for():
    import tomllib

    from aetool.cli.extras import TRAIN_EXTRA

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = [
        re.split(r"[<>=!~ ;\[]", requirement)[0]
        for requirement in pyproject["project"]["optional-dependencies"]["train"]
    ]
    assert sorted(declared) == sorted(TRAIN_EXTRA)


def test_compare_openvino_without_openvino_is_one_line_and_exit_2(toy_dir):
    hidden = BASE_INSTALL.replace("sys.modules['onnx'] = None", "sys.modules['onnx'] = sys.modules['openvino'] = None")
    done = subprocess.run(
        [sys.executable, "-c", hidden, "bench", "--model", str(toy_dir / "dense.onnx"), "--compare", "openvino", *FAST],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "aetool: error: aetool bench --compare openvino needs OpenVINO: install the check extra, see the README "
        "(pip install 'aetool[check]', or '.[check]' in a clone)"
    )


def test_timing_statistics():
    timing = bench.Timing(4, (0.001, 0.002, 0.003, 0.004, 0.100))
    assert timing.median_ms == pytest.approx(3.0)
    assert timing.p95_ms == pytest.approx(np.percentile([1, 2, 3, 4, 100], 95))
    assert timing.images_per_s == pytest.approx(4 / 0.003)
    # a stream of batches gets the mean's rate, slow calls included: the median's overstated it (trial 66)
    assert timing.mean_ms == pytest.approx(22.0) and timing.sustained_images_per_s == pytest.approx(4 / 0.022)
    assert timing.max_ms == pytest.approx(100.0) and timing.p99_ms == pytest.approx(
        np.percentile([1, 2, 3, 4, 100], 99)
    )


def test_rounds_alternate_the_backends_after_warm_up():
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "ab"}
    seconds = bench.interleaved(calls, bench.Plan(warmup=1, repeats=3, seconds=0, min_calls=2))
    assert order == list("ab" + "aabb" + "bbaa" + "aabb")
    assert {name: len(times) for name, times in seconds.items()} == {"a": 6, "b": 6}


def test_flops_count_conv_deconv_and_matrix_products_through_run_time_shapes_and_nonzero_weights(tmp_path):
    onnx = pytest.importorskip("onnx", reason="FLOP counting needs the train extra")
    from onnx import TensorProto, helper, numpy_helper

    def constant(name, array):
        return numpy_helper.from_array(np.asarray(array), name)

    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["a"], pads=[1, 1, 1, 1]),  # 1→4 channels, 3×3, 8×12
        helper.make_node("ConvTranspose", ["a", "w2"], ["b"], strides=[2, 2], pads=[1, 1, 1, 1]),  # 4→2, ×2
        helper.make_node("Shape", ["b"], ["shape"], end=2),  # N, C known only when the graph runs
        helper.make_node("Concat", ["shape", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["b", "target"], ["flat"]),  # N × 2 × 384
        helper.make_node("MatMul", ["flat", "w3"], ["m"]),  # 384 → 5 per channel
        helper.make_node("Flatten", ["m"], ["mflat"]),
        helper.make_node("Gemm", ["mflat", "w4"], ["code"], transB=1),
    ]  # 10 → 3
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("code", TensorProto.FLOAT, ["N", 3])],
        [
            constant("w1", np.ones((4, 1, 3, 3), np.float32) * np.float32([1, 1, 1, 0])[:, None, None, None]),
            constant("w2", np.ones((4, 2, 4, 4), np.float32) * np.float32([1, 1, 1, 0])[:, None]),
            constant("minus1", np.array([-1], np.int64)),
            constant("w3", np.zeros((16 * 24, 5), np.float32)),
            constant("w4", np.zeros((3, 10), np.float32)),
        ],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    # Zero weights (like the taps export.phases adds) are not counted: w1's last output channel, w2's last tap row.
    conv, deconv, matmul, gemm = 3 * 8 * 12 * 9, 4 * 8 * 12 * 2 * 12, 2 * 5 * 16 * 24, 3 * 10
    assert bench.flops_per_image(path, (8, 12)) == 2 * (conv + deconv + matmul + gemm)


def test_a_model_that_fails_at_a_batch_size_is_one_line(tmp_path):
    from conftest import int64_tensor, node, onnx_bytes

    digits = ["N", 1, 28, 28]  # a graph that splits off one image inside: a batch of 256 fails
    nodes = [
        node("Split", ["image", "one"], ["first"]),
        node("Shape", ["image"], ["shape"]),
        node("Reshape", ["first", "shape"], ["reconstruction"]),
    ]
    (tmp_path / "one.onnx").write_bytes(
        onnx_bytes({"image": digits}, {"reconstruction": digits}, nodes, initializers=[int64_tensor("one", [1])])
    )
    result = invoke("--model", str(tmp_path / "one.onnx"), "--batch-sizes", "1,256", *FAST)
    assert result.exit_code == 2 and result.stdout == ""
    assert (
        len(result.stderr.splitlines()) == 1
        and "one.onnx failed on random 28×28 (height×width) images" in result.stderr
    )


def test_a_model_whose_reconstructions_leave_0_1_is_refused_before_timing(tmp_path):
    """Checked on black images only, a ×2 (or ×255) model passed: black stays black (trial 72)."""
    from conftest import node, onnx_bytes

    image = ["N", 1, "H", "W"]
    (tmp_path / "twice.onnx").write_bytes(
        onnx_bytes({"image": image}, {"reconstruction": image}, [node("Add", ["image", "image"], ["reconstruction"])])
    )
    result = invoke("--model", str(tmp_path / "twice.onnx"), *FAST)
    assert (
        result.exit_code == 2
        and "returned reconstruction values from" in result.stderr
        and "outside [0, 1]" in result.stderr
    )


def test_a_file_that_fixes_its_batch_is_timed_in_calls_of_that_batch(tmp_path):
    from conftest import node, onnx_bytes

    five = [5, 1, 28, 28]  # a file exported for batch 5 only: 7 images are two calls, the second padded
    (tmp_path / "five.onnx").write_bytes(
        onnx_bytes({"image": five}, {"reconstruction": five}, [node("Identity", ["image"], ["reconstruction"])])
    )
    result = invoke("--model", str(tmp_path / "five.onnx"), "--batch-sizes", "1,7", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    assert [row["batch_size"] for row in json.loads(result.stdout)["results"]] == [1, 7]


def benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/NAME.py as a module, with the benchmarks folder on the path for its own imports."""
    folder = Path(__file__).parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_flops_of_a_file_that_fixes_its_batch_are_counted_per_image(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    for batch in ("N", 5, -5):  # -5: onnxruntime runs it as unnamed, the count was a traceback (trial 99)
        graph = helper.make_graph(
            [helper.make_node("Conv", ["image", "w"], ["reconstruction"], pads=[1, 1, 1, 1])],
            "g",
            [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [batch, 1, "H", "W"])],
            [helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, [batch, 1, "H", "W"])],
            [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "g.onnx")
        assert bench.flops_per_image(tmp_path / "g.onnx", (8, 12)) == 2 * 8 * 12 * 9
        assert benchmark("roofline", monkeypatch).bytes_per_image(tmp_path / "g.onnx", (8, 12))[0] == 4 * 2 * 8 * 12


def test_a_file_of_float16_inputs_is_timed_and_its_flops_counted(tmp_path):
    """Counting fed float32 zeros to a float16 input: a traceback from onnxruntime (trial 70)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["wide"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Conv", ["wide", "w"], ["reconstruction"], pads=[1, 1, 1, 1]),
        ],
        "g",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT16, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, np.float32), "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "half.onnx")
    result = invoke("--model", str(tmp_path / "half.onnx"), "--batch-sizes", "1,2", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["flops_per_image"] == 2 * 28 * 28 * 9


def test_flops_are_not_counted_for_a_graph_of_operators_the_count_does_not_know(tmp_path):
    """A graph onnxruntime optimised and saved (NCHWc Conv of com.microsoft.nchwc) was a KeyError traceback in
    bench, FusedConv and ConvInteger counted as nothing (trial 73): the count is None, not wrong."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    image = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", 1, "H", "W"])
    out = helper.make_tensor_value_info("reconstruction", onnx.TensorProto.FLOAT, ["N", 1, "H", "W"])
    for node in (
        helper.make_node("FusedConv", ["image", "w"], ["reconstruction"], domain="com.microsoft"),
        helper.make_node("ConvInteger", ["image", "w"], ["reconstruction"]),
    ):
        graph = helper.make_graph([node], "g", [image], [out])
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        onnx.save(helper.make_model(graph, opset_imports=opsets), tmp_path / "g.onnx")
        assert bench.flops_per_image(tmp_path / "g.onnx", (8, 12)) is None


def test_least_memory_traffic_counts_each_layer_input_output_and_weights_once(ae64_run, monkeypatch):
    per_image, per_call = benchmark("roofline", monkeypatch).bytes_per_image(ae64_run[1], (28, 28))
    assert per_image == 4 * (784 + 64 + 64 + 784)  # two layers: 784 → 64 → 784
    assert per_call == 4 * (784 * 64 + 64 + 64 * 784 + 784)  # their weights and biases


@pytest.mark.skipif(
    shutil.which("node") is None or not (Path(__file__).parents[1] / "web" / "node_modules").is_dir(),
    reason="needs Node and onnxruntime-web (npm ci --prefix web)",
)
def test_the_browser_benchmark_rates_products_in_wasm_and_natively(tmp_path, monkeypatch):
    """web_speed.py --peak: the probes hold the products they are named for, and each is rated in both runtimes."""
    pytest.importorskip("onnx", reason="the probes are written with onnx")
    web_speed = benchmark("web_speed", monkeypatch)
    probes = web_speed.product_probes(tmp_path)
    shapes = {f"conv {c}, 28×28": (1, c, 28, 28) for c in (16, 32, 64, 128)}
    shapes = {"matmul": (256, 784), **shapes, "conv 32, 14×14": (1, 32, 14, 14)}
    assert list(probes) == list(shapes)
    for name, path in probes.items():
        out = ort.InferenceSession(path).run(None, {"image": np.ones((1, 1, 28, 28), np.float32)})[0]
        assert out.shape == shapes[name]
    small = {"conv 32, 14×14": probes["conv 32, 14×14"]}
    rates = web_speed.product_rates(small, 1, rounds=1, runs=60)["conv 32, 14×14"]
    assert rates["mflop"] == 4 * 2 * 32 * 32 * 9 * 14 * 14 / 1e6  # four 3×3 convs, the Tile and Slice uncounted
    assert rates["native"] > 0 and rates["wasm"] > 0


def test_the_benchmark_times_the_calls_reconstruct_makes(toy_dir, monkeypatch):
    model = load(toy_dir / "conv.onnx")
    monkeypatch.setattr(model, "session", CountingSession(model.session))
    bench.ort_backend(model)(np.zeros((130, 1, 28, 28), np.float32))()
    assert model.session.batches == [64, 64, 2]


def test_a_page_larger_than_a_tile_is_timed_in_the_tiles_reconstruct_runs(toy_dir, monkeypatch):
    # bench sent a 2000×3000 page in one call (5 GB) where denoise runs it in tiles (0.8 GB)
    from aetool.runtime import tiles

    monkeypatch.setattr(tiles, "TILE", 10)  # rounded up to the model's multiple of 4: 12, with a margin of 4
    monkeypatch.setattr(tiles, "MARGIN", 3)
    model = load(toy_dir / "conv.onnx")
    images = np.zeros((2, 1, 40, 52), np.float32)
    monkeypatch.setattr(model, "session", CountingSession(model.session))
    model.reconstruct(images)
    made, model.session.shapes = model.session.shapes, []
    bench.ort_backend(model)(images)()
    assert model.session.shapes == made and len(made) == 4 * 5


def test_the_images_per_call_benchmark_marks_the_runtimes_choice(toy_dir):
    script = Path(__file__).parents[1] / "benchmarks" / "images_per_call.py"
    args = ["--batch", "128", "--parts", "64,128", "--seconds", "0.05", "--repeats", "1"]
    result = subprocess.run(
        [sys.executable, str(script), str(toy_dir / "conv.onnx"), str(toy_dir / "dense.onnx"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split(" | ")[0].strip("| ").rsplit("/", 1)[-1]: line for line in result.stdout.splitlines()}
    conv, dense = rows["conv.onnx"].split(" | ")[1:], rows["dense.onnx"].split(" | ")[1:]
    assert "(runtime)" in conv[0] and "(runtime)" not in conv[1]  # a conv model: 64 digits a call
    assert "(runtime)" in dense[1] and "(runtime)" not in dense[0]  # a dense one: the whole batch
    assert "(1.00×)" in conv[1] and "load average after" in result.stdout


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), -1.0])
def test_a_plan_refuses_seconds_that_are_not_a_finite_duration(seconds):
    from aetool.errors import AetoolError

    with pytest.raises(AetoolError, match="--seconds must be a finite number of seconds"):
        bench.Plan(seconds=seconds)


def test_the_int8_weights_benchmark_finds_7_bit_files_agree_in_a_plain_session(data_dir):
    """benchmarks/int8_weights.py on the bundled `deep` (a dense model: dynamic int8): five rows, and a plain
    onnxruntime session computes aetool's numbers from the 7-bit file, on any CPU."""
    pytest.importorskip("onnx", reason="the benchmark quantizes with onnx and onnxruntime's quantizer")
    from aetool.runtime.registry import BUNDLED_DIR

    script = Path(__file__).parents[1] / "benchmarks" / "int8_weights.py"
    args = [str(BUNDLED_DIR / "deep.onnx"), "--data-dir", str(data_dir), "--seconds", "0.05", "--repeats", "1"]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in result.stdout.splitlines()[4:]}
    assert list(rows) == ["fp32", "8-bit exact", "8-bit plain", "7-bit exact", "7-bit plain"]
    assert rows["7-bit plain"][-1].strip(" |") == "0" and float(rows["7-bit exact"][1]) > 0


def test_benchmark_scripts_end_a_usage_or_data_error_in_one_line(tmp_path, data_dir):
    """A missing data folder was a 10- to 26-line traceback, exit 1; calibration_rules.py found no runs and exited 0
    (trial 45); gemm_shapes.py and the two INT8 studies on a missing model file too (trial 66)."""
    scripts = Path(__file__).parents[1] / "benchmarks"
    cases = {"op_profile.py": [str(tmp_path / "nofile.onnx")]}  # the base install's: onnxruntime and aetool
    if importlib.util.find_spec("onnx") is not None:
        cases["gemm_shapes.py"] = ["--runs", str(tmp_path / "runs"), "--models", "deep"]
        for study in ("int8_conv.py", "int8_weights.py"):
            cases[study] = [str(tmp_path / "nofile.onnx"), "--data-dir", str(data_dir)]
    if importlib.util.find_spec("scipy") is not None:
        cases["denoising.py"] = ["--data-dir", str(tmp_path / "nodata")]
    if importlib.util.find_spec("torch") is not None:
        cases["calibration_rules.py"] = ["--runs", str(tmp_path / "nodata"), "--data-dir", str(tmp_path)]
        if importlib.util.find_spec("scipy") is not None:
            cases["photo_levels.py"] = ["--photos", str(tmp_path / "nodata"), "--runs", str(tmp_path / "runs")]
    for script, args in cases.items():
        result = subprocess.run(
            [sys.executable, str(scripts / script), *args], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, (script, result.stderr)
        assert result.stderr.startswith(f"{script}: error: ") and tmp_path.name in result.stderr
        assert script in ("denoising.py", "calibration_rules.py", "photo_levels.py") or result.stdout == ""
