"""``aetool check``: a model file run in every installed runtime, each held to onnxruntime; torch-free, so it runs
in the base install too (onnxruntime alone there; the ONNX reference evaluator, OpenCV and OpenVINO where installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from aetool import check
from aetool.check import Runtime, cases_for, check_file, tie_images, tolerance
from aetool.cli import app
from aetool.runtime import contract
from aetool.runtime.registry import BUNDLED_DIR


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize(
    "file", ["denoise.onnx", "denoise-dense.onnx", "denoise-dense.decoder.onnx", "deep.onnx", "conv-unpool.onnx"]
)
def test_the_bundled_files_agree_in_every_installed_runtime(file):
    report = check_file(BUNDLED_DIR / file)
    installed = [r.runtime for r in report.results if r.installed]
    assert installed[0] == "onnxruntime" and report.results[0].ok
    if importlib.util.find_spec("onnx") is not None:
        assert "onnx-reference" in installed
    assert report.passed, report.lines()
    for result in report.results:
        assert result.installed == (importlib.util.find_spec(check_module(result.runtime)) is not None)
        if result.installed and result.runtime != "onnxruntime":
            assert result.ok and 0 <= result.max_abs <= 1e-4 * 20 and not result.error  # codes run up to ~20
    image = "decoder" not in file
    assert (report.outputs == ["reconstruction", "code"]) == image
    assert ("ties b4" in report.cases) == (file in ("conv-unpool.onnx", "denoise.onnx"))  # the models of any size


def check_module(runtime: str) -> str:
    return {r.name: r.module for r in check.runtimes()}[runtime]


def test_fixed_inputs_cover_sizes_ties_and_codes():
    conv = {case.name: case.inputs.shape for case in cases_for(["N", 3, "4*h", "4*w"], contract.INPUT, 4)}
    assert conv == {"random b4": (4, 3, 28, 28), "random b1": (1, 3, 28, 28), "ties b4": (4, 3, 28, 28)} | {
        "random 32×48 b2": (2, 3, 32, 48)
    }
    dense = {case.name: case.inputs.shape for case in cases_for(["N", 1, 28, 28], contract.INPUT, None)}
    assert dense == {"random b4": (4, 1, 28, 28), "random b1": (1, 1, 28, 28)}
    decoder = {case.name: case.inputs.shape for case in cases_for(["N", 32, "h", "w"], contract.CODE, None)}
    assert decoder == {
        "random code b4": (4, 32, 7, 7),
        "random code b1": (1, 32, 7, 7),
        "random code 8×12 b2": (2, 32, 8, 12),
    }
    assert {case.name: case.inputs.shape for case in cases_for(["N", 30], contract.CODE, None)}["random code b4"] == (
        4,
        30,
    )
    odd = {case.name: case.inputs.shape for case in cases_for(["N", 1, "h", "w"], contract.INPUT, 5)}
    assert odd == {"random b4": (4, 1, 30, 30), "random b1": (1, 1, 30, 30), "random 35×50 b2": (2, 1, 35, 50)}
    ties = tie_images(channels=3)
    assert (ties[0] == 0).all() and (ties[1] == 1).all() and (ties[2, :, ::2, ::2] == ties[2, :, 1::2, 1::2]).all()
    np.testing.assert_array_equal(
        cases_for(["N", 1, 28, 28], contract.INPUT, None)[0].inputs,
        cases_for(["N", 1, 28, 28], contract.INPUT, None)[0].inputs,
    )


def test_tolerance_grows_with_the_outputs_magnitude():
    assert tolerance(1e-4, np.array([0.0, 0.5, -1.0])) == 1e-4
    assert tolerance(1e-4, np.array([3.0, -20.0])) == pytest.approx(2e-3)


def _onnxruntime_plus(offset: float):
    """A runtime that returns onnxruntime's outputs plus ``offset``."""

    def load(path, input_name, outputs):
        real = check._onnxruntime(path, input_name, outputs)
        return lambda x: {name: value + offset for name, value in real(x).items()}

    return load


def _refuses(path, input_name, outputs):
    raise RuntimeError("Exception from src/frontend.cpp:12:\n-- No conversion rule found for operations: Col2Im-18")


@pytest.fixture
def fake_runtimes(monkeypatch):
    """onnxruntime, one runtime within the tolerance, one off by 1e-3, one that cannot load, one not installed."""
    real = check.runtimes()[0]
    fakes = [
        real,
        Runtime("close", "numpy", _onnxruntime_plus(5e-5), lambda: "1.0"),
        Runtime("off", "numpy", _onnxruntime_plus(1e-3), lambda: "2.0"),
        Runtime("refuses", "numpy", _refuses, lambda: "3.0"),
        Runtime("absent", "aetool_no_such_module", _refuses, lambda: "4.0"),
    ]
    monkeypatch.setattr(check, "runtimes", lambda: fakes)


def test_a_runtime_that_disagrees_or_cannot_load_is_a_cross_with_the_reason(fake_runtimes):
    report = check_file(BUNDLED_DIR / "deep.onnx")
    results = {r.runtime: r for r in report.results}
    assert not report.passed and [r.runtime for r in report.failed] == ["off", "refuses"]
    assert results["close"].ok and results["close"].max_abs == pytest.approx(5e-5, rel=1e-2)
    assert results["off"].error.startswith("random b4: reconstruction max abs 1.00e-03 > 1.0e-04")
    assert results["refuses"].error == "cannot load: No conversion rule found for operations: Col2Im-18"
    assert not results["absent"].installed and results["absent"].ok is None
    lines = report.lines()
    assert lines[0].startswith(
        "deep.onnx (target portable, opset 20, fp32): reconstruction, code on random b4, random b1;"
    )
    assert any(line.startswith("  ✓ close") and "max abs 5.0e-05" in line for line in lines)
    assert any(line.startswith("  ✗ off") for line in lines) and any(line.startswith("  ✗ refuses") for line in lines)
    assert any(
        line.startswith("  – absent") and "pip install 'aetool[check]', or '.[check]' in a clone" in line
        for line in lines
    )


def test_check_command_prints_the_table_and_exits_1_when_a_runtime_fails(fake_runtimes):
    result = invoke("check", "deep")
    assert result.exit_code == 1 and "✗ off" in result.stdout and "✓ close" in result.stdout
    record = json.loads(invoke("check", "deep", "--json").stdout)
    assert record["passed"] is False and record["cases"] == ["random b4", "random b1"]
    assert {r["runtime"]: r["ok"] for r in record["runtimes"]} == {
        "onnxruntime": True,
        "close": True,
        "off": False,
        "refuses": False,
        "absent": None,
    }
    only = invoke("check", "deep", "--runtime", "close")
    assert only.exit_code == 0 and "off" not in only.stdout and "✓ close" in only.stdout
    assert invoke("check", "deep", "--runtime", "close", "--atol", "1e-6").exit_code == 1
    absent = invoke("check", "deep", "--runtime", "absent")  # asked for by name and not run: not a pass
    assert (
        absent.exit_code == 2
        and "--runtime absent is not installed here (pip install 'aetool[check]', or '.[check]'" in absent.stderr
    )


def test_opencv_classic_without_its_engine_is_said_to_be_missing_not_unknown(monkeypatch):
    """OpenCV 5.1 dropped the classic engine that --help and the README name: "unknown runtime" read as a typo."""
    monkeypatch.setattr(check, "_opencv_engines", lambda: [Runtime("opencv", "cv2", lambda *_: None, "5.1.0")])
    monkeypatch.setattr(check, "module_version", lambda module: lambda: "5.1.0")  # a function, as check's is: a
    # mock returning the text hid the message's missing call, which printed the function (trial 91)
    result = invoke("check", "deep", "--runtime", "opencv-classic")
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        "aetool: error: --runtime: opencv-classic: OpenCV 5.1.0 has no classic engine (OpenCV 5.0 has it beside the "
        "new one, 5.1 and later the new one alone); --runtime opencv checks the engine it has"
    ]


@pytest.mark.parametrize("atol", ["nan", "inf"])
def test_check_refuses_an_atol_that_is_no_finite_bound(atol):
    """nan failed every runtime and inf passed every one; export's --atol refused both already (trial 86)."""
    result = invoke("check", "deep", "--atol", atol)
    assert result.exit_code == 2 and result.stderr == f"aetool: error: --atol takes a finite number ≥ 0, got {atol}\n"
    with pytest.raises(ValueError, match=r"^--atol takes a finite number ≥ 0, got -1$"):
        check_file("deep", atol=-1)


def test_check_command_usage_errors_are_one_line_exit_2(tmp_path):
    for args in (("check", str(tmp_path / "missing.onnx")), ("check", "deep", "--runtime", "tensorflow")):
        result = invoke(*args)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and result.stdout == ""
    result = invoke("check", "deep", "--runtime", "tensorflow")
    assert "unknown runtime 'tensorflow'; known: onnxruntime, onnx-reference, opencv, opencv-classic, openvino" in (
        result.stderr
    )
    (tmp_path / "text.onnx").write_text("not a model")
    result = invoke("check", str(tmp_path / "text.onnx"))
    assert result.exit_code == 2 and "not a loadable ONNX model" in result.stderr


def test_a_file_off_the_contract_is_refused_in_one_line(toy_dir):
    result = invoke("check", str(toy_dir / "flat.onnx"))
    assert result.exit_code == 2 and "one input 'image' (N×C×H×W) or 'code'" in result.stderr


def test_a_graph_another_tool_rewrote_is_said_to_be_one_and_held_to_the_loosest_bound(tmp_path):
    """onnxruntime's quantize_dynamic and saved optimisations keep the metadata: info and check named the export's
    fp32 precision, opset and portable target for a graph of DynamicQuantizeLinear or FusedGemm, and check held it
    to fp32's bound (trial 73)."""
    from conftest import node, onnx_bytes

    conv = ["N", 1, "H", "W"]
    recorded = {"operators": json.dumps(["Conv", "Sigmoid"]), "opset": "20", "precision": "fp32", "target": "portable"}
    nodes = [node("Identity", ["image"], ["reconstruction"])]
    (tmp_path / "rewritten.onnx").write_bytes(onnx_bytes({"image": conv}, {"reconstruction": conv}, nodes, recorded))
    report = check_file(tmp_path / "rewritten.onnx", only=["onnxruntime"])
    assert report.graph_changed and report.opset == 13 and report.atol == max(check.ATOL.values())
    assert report.lines()[0].startswith("rewritten.onnx (rewritten since aetool exported it, opset 13): ")
    shown = invoke("info", str(tmp_path / "rewritten.onnx")).stdout
    assert ", opset 13" in shown.splitlines()[0] and "graph    ✗ not the graph aetool exported" in shown
    (tmp_path / "same.onnx").write_bytes(
        onnx_bytes({"image": conv}, {"reconstruction": conv}, nodes, {**recorded, "operators": '["Identity"]'})
    )
    assert not check_file(tmp_path / "same.onnx", only=["onnxruntime"]).graph_changed
    assert "graph    ✗" not in invoke("info", str(tmp_path / "same.onnx")).stdout


def test_a_runtimes_reason_is_the_line_that_says_what_went_wrong_not_where():
    """OpenVINO's first line is only where it raised: check showed "cannot load: Exception from
    src/inference/src/cpp/core.cpp:132:" (trial 73)."""
    raised = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:132:\n"
        "[DepthToSpaceTransformation] While validating node 'opset1::Subtract': Argument shapes are inconsistent.\n"
    )
    assert check.failure_reason(raised).startswith("[DepthToSpaceTransformation] While validating node")


def test_a_file_that_fixes_its_batch_is_checked_at_that_batch(tmp_path):
    """The legacy exporter fixes batch 1: check fed batch 4 and called the file failing in onnxruntime (trial 70)."""
    from conftest import node, onnx_bytes

    one = [1, 1, "H", "W"]
    (tmp_path / "one.onnx").write_bytes(
        onnx_bytes({"image": one}, {"reconstruction": one}, [node("Identity", ["image"], ["reconstruction"])])
    )
    report = check_file(tmp_path / "one.onnx", only=["onnxruntime"])
    assert report.cases == ["random b1", "ties b1", "random 32×48 b1"] and report.passed


@pytest.mark.parametrize(
    ("nodes", "output", "said"),
    [
        (  # log(0): a file that the runtime's commands call broken; the other runtimes were blamed for it
            [("Sub", ["image", "image"], ["zero"]), ("Log", ["zero"], ["reconstruction"])],
            "reconstruction",
            "returns NaN or infinite reconstruction values in onnxruntime on random b4",
        ),
        ([("Identity", ["image"], ["other"])], "other", "does not follow the aetool contract: no output"),
        (  # values up to 2: passed, where the commands refuse the file (trial 72)
            [("Add", ["image", "image"], ["reconstruction"])],
            "reconstruction",
            "in onnxruntime on random b4, outside [0, 1]",
        ),
        (  # twice as tall: every image of reconstruct failed, check passed it
            [("Concat", ["image", "image"], ["reconstruction"])],
            "reconstruction",
            "returns reconstruction of shape (4, 1, 56, 28) in onnxruntime for images of shape (4, 1, 28, 28)",
        ),
    ],
)
def test_a_file_the_runtime_refuses_is_refused_by_check_alike(tmp_path, nodes, output, said):
    from conftest import int_attribute, node, onnx_bytes

    image = ["N", 1, "H", "W"]
    built = [node(op, i, o, [int_attribute("axis", 2)] if op == "Concat" else []) for op, i, o in nodes]
    (tmp_path / "odd.onnx").write_bytes(onnx_bytes({"image": image}, {output: ["N", 1, "h", "w"]}, built))
    result = invoke("check", str(tmp_path / "odd.onnx"))
    assert result.exit_code == 2 and said in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_file_of_float16_inputs_is_fed_float16(tmp_path):
    """It was fed float32 and called failing in onnxruntime (trial 70)."""
    from conftest import float16_input_model

    (tmp_path / "half.onnx").write_bytes(float16_input_model())
    assert check_file(tmp_path / "half.onnx", only=["onnxruntime"]).passed


def test_info_shows_the_target_its_operators_and_where_the_export_ran_the_file(toy_dir):
    text = invoke("info", "conv-unpool").stdout
    assert "target   portable (opset 20): Add, Cast, Concat, Conv, ConvTranspose, DepthToSpace," in text
    runs = next(line for line in text.splitlines() if line.startswith("runs in"))
    assert "✓ onnxruntime 1.32.0" in runs and "✓ openvino 2026.4.1 (" in runs and "✗" not in runs
    record = json.loads(invoke("info", "conv-unpool", "--json").stdout)
    assert record["target"] == "portable" and "MaxUnpool" not in record["operators"]
    assert set(record["checked_in"]["runtimes"]) == {
        "onnxruntime",
        "onnx-reference",
        "opencv",
        "opencv-classic",
        "openvino",
    }
    assert json.loads(invoke("info", str(toy_dir / "dense.onnx"), "--json").stdout)["target"] is None  # no target


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="the ONNX reference evaluator comes with onnx")
def test_the_reference_evaluator_runs_an_fp16_sigmoid_that_overflows_exp_without_a_warning(tmp_path):
    import warnings

    from onnx import TensorProto, helper, save_model

    nodes = [
        helper.make_node("Cast", ["x"], ["half"], to=TensorProto.FLOAT16),
        helper.make_node("Sigmoid", ["half"], ["squashed"]),
        helper.make_node("Cast", ["squashed"], ["y"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "fp16_sigmoid",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "half.onnx")
    run = check._reference(tmp_path / "half.onnx", "x", ["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in exp" would raise here
        outputs = run(np.array([[-20.0, 0.0, 20.0]], np.float32))
    np.testing.assert_array_equal(outputs["y"], [[0.0, 0.5, 1.0]])


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="the ONNX reference evaluator comes with onnx")
def test_the_reference_evaluator_sums_a_convolution_in_float64_and_rounds_once(tmp_path):
    """Its float32 Conv (numpy's BLAS) rounds equal patches differently by position on AVX2 CPUs, which broke
    unpooling's exact ties; with the sums in float64 every output is the float64 convolution rounded to float32."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    rng = np.random.default_rng(3)
    weights = rng.normal(size=(8, 32, 3, 3)).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8, 12, 12])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "conv.onnx")
    images = rng.normal(size=(2, 32, 12, 12)).astype(np.float32)
    images[:, :, :, 6:] = images[:, :, :, :6]  # right half repeats the left: equal patches at distant positions
    padded = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    exact = bias.astype(np.float64)[None, :, None, None] + sum(
        np.einsum("oc,nchw->nohw", weights[:, :, i, j].astype(np.float64), padded[:, :, i : i + 12, j : j + 12])
        for i in range(3)
        for j in range(3)
    )
    got = check._reference(tmp_path / "conv.onnx", "x", ["y"])(images)["y"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exact.astype(np.float32))
    np.testing.assert_array_equal(got[..., 1:5], got[..., 7:11])  # equal patches, equal outputs


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV (the check extra)")
@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="these file systems take no name that is not text")
def test_opencv_loads_a_file_whose_path_is_not_utf8(tmp_path):
    """OpenCV crashed (SIGSEGV, no line, exit 139) on such a path; it now gets the file's bytes."""
    folder = tmp_path / os.fsdecode(b"d\xff")
    folder.mkdir()
    (folder / "deep.onnx").write_bytes((BUNDLED_DIR / "deep.onnx").read_bytes())
    engines = [
        runtime.name for runtime in check.runtimes() if runtime.module == "cv2"
    ]  # OpenCV 5.0: two; 4 and 5.1: one
    report = check_file(folder / "deep.onnx", only=engines)
    assert report.passed and all(result.ok for result in report.results), report.lines()


def test_an_opencv_that_will_not_load_is_said_like_one_not_installed_not_a_traceback(tmp_path):
    """opencv-python without libGL.so.1 (a slim container image) raises ImportError at import."""
    (tmp_path / "cv2").mkdir()
    (tmp_path / "cv2" / "__init__.py").write_text('raise ImportError("libGL.so.1: cannot open shared object file")')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "aetool", "check", "deep"], capture_output=True, env=env, timeout=120)
    assert b"Traceback" not in done.stderr and done.returncode == 0, done.stderr  # the file is fine; OpenCV is not
    row = next(line for line in done.stdout.decode().splitlines() if line.startswith("  – opencv "))
    assert row.endswith(" installed, but cannot be imported: libGL.so.1: cannot open shared object file")


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV is in the check extra")
def test_opencv_is_checked_where_no_temporary_file_can_be_made(monkeypatch):
    def no_temporary_folder(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp']")

    monkeypatch.setattr(check.tempfile, "TemporaryFile", no_temporary_folder)
    report = check_file("deep", only=["opencv"])
    assert [(r.runtime, r.ok) for r in report.results] == [("opencv", True)]


OPENVINO_CHECKED = """
import sys
from aetool.check import check_file
[result] = check_file("deep", only=["openvino"]).results
print(result.ok, sys.modules.get("openvino_telemetry"), "openvino.tools.ovc.telemetry_stub" in sys.modules)
"""


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs OpenVINO (the check extra)")
def test_openvino_runs_without_its_telemetry():
    """OpenVINO's converter sent usage events from a forked process, and one stuck resolving the address kept a
    command from exiting for ten minutes (trial 37). Without openvino_telemetry OpenVINO takes its own stub."""
    done = subprocess.run([sys.executable, "-c", OPENVINO_CHECKED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "None", "True"]


def test_a_graph_with_control_flow_is_not_given_to_opencv(tmp_path):
    """OpenCV 5 ended the process (SIGSEGV, both engines) on a trial's model holding an `If`, so `aetool check`
    printed nothing; such a graph now gets a ✗ and the reason. Run in a child: a crash would take pytest with it."""
    pytest.importorskip("cv2", reason="needs OpenCV")
    pytest.importorskip("onnx", reason="builds the graph with onnx's helper")
    from onnx import TensorProto, helper

    def branch(name: str) -> object:
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
        return helper.make_graph([helper.make_node("Identity", ["image"], [name])], name, [], [out])

    flag = helper.make_tensor("c", TensorProto.BOOL, [], [True])
    nodes = [
        helper.make_node("Constant", [], ["flag"], value=flag),
        helper.make_node("If", ["flag"], ["reconstruction"], then_branch=branch("t"), else_branch=branch("e")),
        helper.make_node("Identity", ["image"], ["code"]),
    ]
    shape = ["N", 1, "H", "W"]
    infos = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("image", "reconstruction", "code")]
    graph = helper.make_graph(nodes, "g", infos[:1], infos[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    (tmp_path / "if.onnx").write_bytes(model.SerializeToString())
    for runtime in [runtime.name for runtime in check.runtimes() if runtime.module == "cv2"]:
        result = subprocess.run(
            [sys.executable, "-m", "aetool", "check", str(tmp_path / "if.onnx"), "--runtime", runtime],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1, (runtime, result.returncode, result.stderr)
        assert "control flow (If, Loop or Scan subgraphs)" in result.stdout


def test_an_import_ctrl_c_breaks_stops_the_check_it_is_not_a_runtime_that_will_not_load(tmp_path):
    """Ctrl-C or SIGTERM while OpenVINO's extension initialised made pybind11's "initialization failed": taken for a
    runtime that cannot be imported, and `check` (and `train`'s export) went on to exit 0 (trial 52)."""
    (tmp_path / "cv2").mkdir()
    (tmp_path / "cv2" / "__init__.py").write_text(
        "try:\n    raise KeyboardInterrupt\nexcept KeyboardInterrupt as err:\n"
        "    raise ImportError('initialization failed') from err\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "aetool", "check", "deep"], capture_output=True, env=env, timeout=120)
    assert done.returncode == 130 and done.stderr.decode().strip().splitlines() == ["aetool: error: interrupted"]


def test_a_full_temporary_folder_is_named_when_the_export_checks_its_graph(monkeypatch):
    """An export into a full $TMPDIR said only "No space left on device" (trial 52)."""
    import errno
    import pathlib

    from aetool.check import check_bytes
    from aetool.errors import AetoolError

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(
        AetoolError,
        match=r"cannot write a temporary copy of the model \(3 bytes\) into .*: No space "
        r"left on device; free space there, or set TMPDIR to another folder$",
    ):
        check_bytes(b"abc", atol=1e-4, multiple_of=None)
