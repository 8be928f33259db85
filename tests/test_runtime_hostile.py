"""Hostile and odd model files from the field: each kind refused or handled in one line, never a traceback.

Every model here is written byte by byte (conftest's protobuf writer), so these tests run in the torch-free,
onnx-free venv too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    BOOL,
    FLOAT,
    INT64,
    _field,
    digit,
    graph,
    graph_attribute,
    int64_tensor,
    node,
    onnx_bytes,
    save,
    tensor,
    tensor_attribute,
    toy_metadata,
)

from aetool.errors import ModelFileError, TimedOut
from aetool.runtime import load
from aetool.runtime.batch import write_all
from aetool.runtime.onnxfile import MAX_GRAPH_NESTING, read_facts
from aetool.runtime.session import ort_message

CONV = ["N", 1, "H", "W"]
DENSE = ["N", 1, 28, 28]


def identity(shape: list = CONV, metadata: dict[str, str] | None = None, **versions: int) -> bytes:
    return onnx_bytes(
        {"image": shape},
        {"reconstruction": shape},
        [node("Identity", ["image"], ["reconstruction"])],
        metadata,
        **versions,
    )


def add_external(location: str) -> bytes:
    """image + w, where the one float w lives in "external data" at ``location``."""
    return onnx_bytes(
        {"image": CONV},
        {"reconstruction": CONV},
        [node("Add", ["image", "w"], ["reconstruction"])],
        initializers=[tensor("w", [1], FLOAT, location=location)],
    )


# ---- 1. external data outside the model's folder ----


@pytest.mark.parametrize(
    "location", ["../secret.bin", "/etc/hostname", "sub/../../secret.bin", "link.bin", "", "*/_ORT_MEM_ADDR_/*"]
)
def test_external_data_outside_the_models_folder_is_refused_before_onnxruntime_reads_it(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(np.float32(0.5).tobytes())
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    (folder / "m.onnx").write_bytes(add_external(location))
    with pytest.raises(ModelFileError, match=r"external data .* lies outside the model's folder") as caught:
        load(folder / "m.onnx")
    assert "\n" not in str(caught.value)


def test_external_data_beside_the_model_still_loads(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.float32(0.25).tobytes())
    (tmp_path / "m.onnx").write_bytes(add_external("w.bin"))
    assert np.allclose(load(tmp_path / "m.onnx").reconstruct(np.zeros((1, 1, 4, 4), np.float32)), 0.25)


def test_external_data_in_a_subgraph_or_constant_is_found(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4)
    constant = node("Constant", [], ["w"], [tensor_attribute("value", tensor("w", [1], FLOAT, location="../x.bin"))])
    branch = graph({}, {"w": [1]}, [constant])
    nested = onnx_bytes(
        {"image": CONV, "flag": []},
        {"reconstruction": CONV},
        [node("If", ["flag"], ["reconstruction"], [graph_attribute("then_branch", branch)])],
    )
    facts = read_facts(nested)
    assert facts.external_data == ("../x.bin",) and facts.ir_version == 8 and facts.opset == 13
    (tmp_path / "m.onnx").write_bytes(nested)
    with pytest.raises(ModelFileError, match=r"'\.\./x\.bin' lies outside"):
        load(tmp_path / "m.onnx")


def test_external_data_in_a_functions_default_attribute_is_found(tmp_path, monkeypatch):
    """A trial's file: a function's ``Constant`` takes its value from the function's attribute ``v``, whose default
    (``FunctionProto.attribute_proto``) was external data; unseen, the file went to onnxruntime as bytes, which read
    the location from the current folder into the output image."""
    onnx = pytest.importorskip("onnx", reason="builds a model function with onnx's helper")
    from onnx import TensorProto, helper

    def leaking(location: str) -> bytes:
        secret = TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[1], data_location=TensorProto.EXTERNAL)
        for key, value in (("location", location), ("offset", "0"), ("length", "4")):
            secret.external_data.add(key=key, value=value)
        constant = helper.make_node("Constant", [], ["c"])
        constant.attribute.add(name="value", ref_attr_name="v", type=onnx.AttributeProto.TENSOR)
        body = [constant, helper.make_node("Add", ["x", "c"], ["y"])]
        function = helper.make_function("local", "F", ["x"], ["y"], body, [helper.make_opsetid("", 20)])
        function.attribute_proto.append(helper.make_attribute("v", secret))
        io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, CONV) for name in ("image", "reconstruction")]
        model_graph = helper.make_graph(
            [helper.make_node("F", ["image"], ["reconstruction"], domain="local")], "g", *[[io[0]], [io[1]]]
        )
        opsets = [helper.make_opsetid("", 20), helper.make_opsetid("local", 1)]
        return helper.make_model(
            model_graph, opset_imports=opsets, ir_version=10, functions=[function]
        ).SerializeToString()

    assert read_facts(leaking("../secret.bin")).external_data == ("../secret.bin",)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(leaking("../secret.bin"))
    with pytest.raises(ModelFileError, match=r"'\.\./secret\.bin' lies outside"):
        load(tmp_path / "models" / "m.onnx")
    (tmp_path / "secret.bin").write_bytes(np.float32(0.5).tobytes())  # in the current folder, not the model's
    (tmp_path / "models" / "m.onnx").write_bytes(leaking("secret.bin"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError):  # looked for beside the model, where it is not
        load(tmp_path / "models" / "m.onnx").reconstruct(np.zeros((1, 1, 4, 4), np.float32))


@pytest.mark.parametrize("elem", ["STRING", "INT8", "BOOL"])
def test_an_output_that_is_not_float_is_refused_in_one_line(tmp_path, elem):
    """A trial's model returned its reconstruction as strings: every image command ended in a traceback."""
    pytest.importorskip("onnx", reason="builds the graph with onnx's helper")
    from onnx import TensorProto, helper
    from typer.testing import CliRunner

    from aetool.cli import app

    nodes = [
        helper.make_node("Cast", ["image"], ["reconstruction"], to=getattr(TensorProto, elem)),
        helper.make_node("Identity", ["image"], ["code"]),
    ]
    values = [("image", TensorProto.FLOAT), ("reconstruction", getattr(TensorProto, elem)), ("code", TensorProto.FLOAT)]
    infos = [helper.make_tensor_value_info(name, kind, CONV) for name, kind in values]
    model = helper.make_model(
        helper.make_graph(nodes, "g", infos[:1], infos[1:]), opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    )
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match=rf"its output 'reconstruction' is tensor\({elem.lower()}\)"):
        load(tmp_path / "m.onnx")
    save(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "a.png"), "-m", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "Traceback" not in result.output and "aetool reads float" in result.output


def test_a_decoder_whose_output_is_not_float_is_refused_in_one_line(tmp_path, toy_dir):
    pytest.importorskip("onnx", reason="builds the graph with onnx's helper")
    from onnx import TensorProto, helper

    shutil.copy(toy_dir / "dense.onnx", tmp_path / "dense.onnx")
    code = helper.make_tensor_value_info("code", TensorProto.FLOAT, ["N", 784])
    out = helper.make_tensor_value_info("reconstruction", TensorProto.INT8, ["N", 784])
    cast = helper.make_node("Cast", ["code"], ["reconstruction"], to=TensorProto.INT8)
    decoder = helper.make_model(
        helper.make_graph([cast], "g", [code], [out]), opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    )
    (tmp_path / "dense.decoder.onnx").write_bytes(decoder.SerializeToString())
    with pytest.raises(ModelFileError, match=r"its output 'reconstruction' is tensor\(int8\)"):
        load(tmp_path / "dense.onnx").decode(np.zeros((1, 784), np.float32))


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"it is empty \(0 bytes\)"):
        load(tmp_path / "empty.onnx")


def test_graphs_nested_beyond_the_limit_are_not_walked_forever():
    assert MAX_GRAPH_NESTING <= 8  # onnxruntime 1.18 took 27 s to open 20 nested Ifs, time exponential in the depth
    body = graph({}, {}, [])
    for _ in range(MAX_GRAPH_NESTING + 1):
        body = graph({}, {}, [node("If", ["c"], [], [graph_attribute("then_branch", body)])])
    with pytest.raises(ValueError, match="nested more than"):
        read_facts(_field(1, 8) + _field(7, body))


@pytest.mark.parametrize("data", [b"this is not a model\n", b"\x08\x08:\xff\xff", identity()[:-7], b"\x08\x08"])
def test_bytes_that_are_not_onnx_are_one_line(tmp_path, data):
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(ModelFileError, match="is not a loadable ONNX model") as caught:
        load(tmp_path / "m.onnx")
    assert "\n" not in str(caught.value)


# ---- 2. files newer than the installed onnxruntime ----


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ({"ir_version": 99}, r"is ONNX IR version 99 \(opset 13\), but onnxruntime [\d.]+ reads IR versions up to \d+"),
        ({"opset": 99}, r"needs opset 99, but onnxruntime [\d.]+ supports ai.onnx up to opset \d+"),
    ],
)
def test_a_file_newer_than_onnxruntime_names_both_versions_and_the_fix(tmp_path, versions, message):
    (tmp_path / "m.onnx").write_bytes(identity(**versions))
    with pytest.raises(ModelFileError, match=message) as caught:
        load(tmp_path / "m.onnx")
    assert "upgrade onnxruntime" in str(caught.value) and "re-export" in str(caught.value)


# ---- 3. hostile metadata ----


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("architecture", "[" * 5000 + "]" * 5000),
        ("parity", json.dumps({"passed": [], "cases": []})),
        ("input_spec", json.dumps({"multiple_of": 2048})),
        ("input_spec", json.dumps({"multiple_of": 10**7})),
        ("input_spec", json.dumps({"multiple_of": True})),
        ("noise", json.dumps({"level": "high", "kind": "gaussian"})),
        ("noise", json.dumps({"level": 0.5, "kind": "fire"})),
        ("test_mse", "-1"),
        ("test_mse", "1e999"),
        ("epochs", "1" * 5000),
        ("model_kind", "detector"),
        ("model_name", "\x1b[2J"),
        ("dataset", "../../etc"),
        ("precision", "fp64"),
        ("decoder", "a/b.onnx"),
        ("decoder_sha256", "not-a-digest"),
        ("checkpoint_sha256", "0" * 63),
        ("channels", "7"),
        ("versions", "[1, 2]"),
    ],
)
def test_every_metadata_field_is_checked_and_a_bad_one_is_named(tmp_path, field, value):
    (tmp_path / "m.onnx").write_bytes(identity(metadata={field: value}))
    with pytest.raises(ModelFileError, match=f"metadata '{field}'") as caught:
        load(tmp_path / "m.onnx")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize(
    ("field", "value"),
    [("architecture", "[" * 5000 + "]" * 5000), ("parity", '{"passed": []}'), ("input_spec", '{"multiple_of": 2048}')],
)
def test_hostile_metadata_is_one_line_in_denoise_and_named_by_info(cli, tmp_path, field, value):
    (tmp_path / "m.onnx").write_bytes(identity(metadata={field: value}))
    save(tmp_path / "ring.png", digit())
    result = cli("denoise", "ring.png", "--model", "m.onnx")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"metadata '{field}'" in result.stderr and not (tmp_path / "ring.denoised.png").exists()
    info = cli("info", "m.onnx")
    assert info.exit_code == 0 and f"✗ m.onnx: metadata '{field}' must" in info.stdout
    assert max(len(line) for line in info.stdout.splitlines()) < 400


VALID_ANOMALY = {"components": ["mse"], "mean": [0.01], "std": [0.005], "threshold": 1.5, "rule": {"fpr": 0.05}}


@pytest.mark.parametrize(
    "change",
    [{"threshold": "5"}, {"rule": [1]}, {"calibration": "x"}, {"threshold": [1]}, {"components": "mse"}],
)
def test_info_names_a_broken_detector_record_in_one_line(cli, tmp_path, change):
    """A trial's detector metadata (`"threshold": "5"`, `"rule": [1]`…) made `info` end in a traceback, where
    `detect` refused it in one line."""
    record = json.dumps({**VALID_ANOMALY, **change})
    (tmp_path / "m.onnx").write_bytes(identity(metadata={"anomaly": record}))
    info = cli("info", "m.onnx")
    assert info.exit_code == 0 and "Traceback" not in info.output
    line = next(line for line in info.stdout.splitlines() if line.startswith("detector"))
    assert ("✗ metadata 'anomaly'" in line) != (change == {"calibration": "x"})  # a calibration record is optional


def test_info_shows_a_detector_records_score_and_threshold(cli, tmp_path):
    record = json.dumps({**VALID_ANOMALY, "calibration": {"images": 40}})
    (tmp_path / "m.onnx").write_bytes(identity(metadata={"anomaly": record}))
    assert "detector score mse; anomalous above 1.5 (fpr 0.05 on 40 normal images)" in cli("info", "m.onnx").stdout


def test_info_escapes_the_target_and_operators_of_a_hostile_file(cli, tmp_path):
    metadata = {"target": "\x1b]0;pwned\x07portable", "operators": json.dumps(["\x1b]0;x\x07Conv", "Relu\n\nFAKE"])}
    (tmp_path / "m.onnx").write_bytes(identity(metadata=metadata))
    info = cli("info", "m.onnx")
    assert "\x1b" not in info.stdout and "\nFAKE" not in info.stdout and "\\x1b]0;pwned" in info.stdout


def test_info_escapes_control_characters_alone_and_keeps_other_letters(cli, tmp_path):
    """One tab made it write the whole value as ASCII escapes (M\\xfcller caf\\xe9)."""
    (tmp_path / "m.onnx").write_bytes(identity(metadata={"target": "Müller café\tv2\u2028漢字"}))
    info = cli("info", "m.onnx")
    assert "Müller café\\tv2\\u2028漢字" in info.stdout


@pytest.mark.parametrize(
    "entry",
    [
        {"file": 5},
        {"file": "/etc/passwd"},
        {"file": "../m.onnx"},
        {"file": "m.onnx", "precision": {"a": 1}},
        {"file": "m.onnx", "decoder": "../d.onnx"},
        {"file": "m.onnx", "test_mse": "low"},
    ],
)
def test_a_models_index_naming_paths_or_odd_values_is_one_line(cli, tmp_path, monkeypatch, entry):
    """A trial's `$AETOOL_MODEL_DIR/models.json`: `"file": 5` and `"precision": {…}` ended `models` in a traceback,
    and `"file": "/etc/passwd"` or `"../m.onnx"` were opened outside the folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "m.onnx").write_bytes(identity())
    (folder / "m.onnx").write_bytes(identity())
    (folder / "models.json").write_text(json.dumps({"x": entry}))
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(folder))
    save(tmp_path / "a.png", digit())
    for args in (["models"], ["info", "x"], ["reconstruct", "a.png", "-m", "x", "-o", "out.png"]):
        result = cli(*args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, args
        assert "models.json: model 'x': " in result.stderr and not (tmp_path / "out.png").exists()


# ---- 4. a model that never finishes ----


def loop_forever() -> bytes:
    """A Loop whose condition never turns false: each iteration passes the image through unchanged."""
    body = graph(
        {"i": [], "cond_in": [], "v_in": None},
        {"cond_out": [], "v_out": None},
        [node("Identity", ["cond_in"], ["cond_out"]), node("Identity", ["v_in"], ["v_out"])],
        types={"i": INT64, "cond_in": BOOL, "cond_out": BOOL},
    )
    return onnx_bytes(
        {"image": CONV},
        {"reconstruction": CONV},
        [node("Loop", ["", "go", "image"], ["reconstruction"], [graph_attribute("body", body)])],
        initializers=[tensor("go", [], BOOL, raw=b"\x01")],
        opset=17,
    )


def test_a_timeout_stops_a_call_that_never_ends_and_the_next_call_runs(tmp_path, toy_dir):
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    model = load(tmp_path / "loop.onnx")
    model.timeout = 0.5
    started = time.perf_counter()
    with pytest.raises(TimedOut, match=r"ran longer than the 0.5 s of its timeout \(--timeout\)"):
        model.reconstruct(np.zeros((1, 1, 8, 8), np.float32))
    assert time.perf_counter() - started < 5
    page = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(load(toy_dir / "conv.onnx").reconstruct(page), page)  # the worker thread is free again


def test_ctrl_c_as_a_call_is_handed_to_the_worker_still_stops_the_call(tmp_path, toy_dir, monkeypatch):
    """A SIGINT right after the call is queued (before the main thread waits for it) must stop it too: a process
    that exits while onnxruntime runs in the worker thread aborts ("terminate called without an active
    exception", exit 134) when that call returns during the interpreter's shutdown."""
    from aetool.runtime import session as session_module

    handed_over = session_module._start

    def interrupted_start(call):
        handed_over(call)
        os.kill(os.getpid(), signal.SIGINT)  # Python raises it on the main thread's next bytecode, still in here

    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    endless = load(tmp_path / "loop.onnx")
    monkeypatch.setattr(session_module, "_start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        endless.reconstruct(np.zeros((1, 1, 8, 8), np.float32))
    monkeypatch.setattr(session_module, "_start", handed_over)
    toy = load(toy_dir / "conv.onnx")
    toy.timeout = 5  # the worker is free again: the endless call was stopped, not left running
    page = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(toy.reconstruct(page), page)


def test_an_exception_from_a_programs_own_signal_handler_stops_the_call_too(tmp_path, toy_dir):
    """A service whose SIGTERM handler calls sys.exit left the call running: the process aborted on its way out
    ("terminate called without an active exception", exit 134, in 2 of 5 runs), or the next call waited behind it
    (trial 65). Only Ctrl-C stopped the call."""

    class Shutdown(Exception):
        pass

    def handler(signum, frame):
        raise Shutdown

    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    endless = load(tmp_path / "loop.onnx")
    before = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGUSR1)).start()
        with pytest.raises(Shutdown):
            endless.reconstruct(np.zeros((1, 1, 8, 8), np.float32))
    finally:
        signal.signal(signal.SIGUSR1, before)
    toy = load(toy_dir / "conv.onnx")
    toy.timeout = 5  # the worker is free again: the endless call was stopped, not left running
    page = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(toy.reconstruct(page), page)


def test_a_second_ctrl_c_while_a_call_is_stopped_still_waits_for_it(tmp_path, toy_dir, monkeypatch):
    """Ctrl-C twice (or `timeout -s INT`, which signals the process and then its group): the second must not cut
    short the wait for the terminated call, or the process exits while onnxruntime runs and aborts (exit 134)."""
    import threading

    from aetool.runtime import session as session_module

    waits_for_the_stopped_call: list[bool] = []

    class SecondCtrlC(threading.Event):
        def wait(self, timeout=None):
            if timeout != session_module.STOP_WAIT:
                return super().wait(timeout)
            os.kill(os.getpid(), signal.SIGINT)  # the wait in _stop, after the first Ctrl-C
            waits_for_the_stopped_call.append(False)
            ended = super().wait(timeout)
            waits_for_the_stopped_call[-1] = ended  # not reached if the second Ctrl-C cut the wait short
            return ended

    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    endless = load(tmp_path / "loop.onnx")
    monkeypatch.setattr(session_module, "STOP_WAIT", 9.75)
    monkeypatch.setattr(threading, "Event", SecondCtrlC)
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT)).start()  # the first, during the endless call
    with pytest.raises(KeyboardInterrupt):
        endless.reconstruct(np.zeros((1, 1, 8, 8), np.float32))
    monkeypatch.undo()
    assert waits_for_the_stopped_call == [True]  # the call had ended before Ctrl-C left reconstruct
    toy = load(toy_dir / "conv.onnx")
    toy.timeout = 5  # the worker is free again: the endless call was stopped, not left running
    page = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(toy.reconstruct(page), page)


def test_ctrl_c_while_onnxruntime_is_imported_is_one_line_and_exit_130(bundled, tmp_path, monkeypatch, capsys):
    """A SIGINT inside onnxruntime's C extension initialisation surfaces as pybind11's ImportError
    ("initialization failed", caused by the KeyboardInterrupt), which printed a traceback and exited 1."""
    from aetool import cli
    from aetool.runtime import model as model_module

    def interrupted_import(path, **options):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise ImportError("initialization failed") from err

    save(tmp_path / "ring.png", digit())
    monkeypatch.setattr(model_module, "open_session", interrupted_import)
    monkeypatch.setattr(model_module, "_OPEN", {})  # not a model an earlier test opened: this one opens it
    monkeypatch.setattr(sys, "argv", ["aetool", "denoise", str(tmp_path / "ring.png"), "-o", str(tmp_path / "o.png")])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 130
    assert capsys.readouterr().err.strip() == "aetool: error: interrupted"
    assert not (tmp_path / "o.png").exists()


def test_ctrl_c_stops_a_model_that_never_ends_with_one_line_and_exit_130(tmp_path):
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    save(tmp_path / "ring.png", digit())
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "denoise", "ring.png", "--model", "loop.onnx"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    time.sleep(3)  # the interpreter starts, loads the model and enters the endless call
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert stderr.decode().strip() == "aetool: error: interrupted after 0 of 1 image (0 written)"
    assert not list(tmp_path.glob(".*"))  # no temporary left


def test_check_stops_a_model_that_never_ends_on_sigterm_and_at_its_timeout(cli, tmp_path):
    """check ran onnxruntime's call in the main thread, which SIGTERM never reached: a Loop that never ends held it
    to SIGKILL, and it had no --timeout (trial 99's fuzzing)."""
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "check", "loop.onnx"], cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:
        time.sleep(3)  # the interpreter starts, loads the model and enters the endless call
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()  # one that did not stop is not left running
    assert process.returncode == 143 and stderr.decode().strip() == "aetool: error: interrupted"
    from aetool.check import check_file

    for seconds in (0, -1, float("nan"), "5"):  # 0, -1 and NaN timed out at once, "5" was a TypeError (trial 104)
        with pytest.raises(ValueError, match=r"^timeout takes None \(no limit\) or a positive number of seconds"):
            check_file(tmp_path / "loop.onnx", timeout=seconds)  # type: ignore[arg-type]
    result = cli("check", str(tmp_path / "loop.onnx"), "--timeout", "0.3")
    assert result.exit_code == 124 and result.stderr.strip() == (
        "aetool: error: loop.onnx: a call of the model ran longer than the 0.3 s of its timeout (--timeout) and was "
        "stopped"
    )


def test_timeout_option_exits_124_in_one_line(cli, tmp_path):
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    save(tmp_path / "ring.png", digit())
    result = cli("denoise", str(tmp_path / "ring.png"), "--model", str(tmp_path / "loop.onnx"), "--timeout", "0.3")
    assert result.exit_code == 124 and len(result.stderr.strip().splitlines()) == 1
    assert "--timeout" in result.stderr and not (tmp_path / "ring.denoised.png").exists()
    assert result.stderr.strip().endswith(f"and was stopped, on {tmp_path / 'ring.png'}")  # said nowhere (trial 89)


def test_a_timeout_on_standard_input_names_it(cli, tmp_path):
    """ "… and was stopped, on -" read as a typo (trial 92)."""
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    png = save(tmp_path / "ring.png", digit()).read_bytes()
    model = str(tmp_path / "loop.onnx")
    result = cli("denoise", "-", "-o", "out.png", "--model", model, "--timeout", "0.3", stdin=png)
    assert result.exit_code == 124 and result.stderr.strip().endswith("and was stopped, on standard input")


def test_detect_stops_at_its_timeout_with_exit_124_as_the_image_commands_do(cli, tmp_path):
    (tmp_path / "loop.onnx").write_bytes(loop_forever())
    for name in ("ring.png", "second.png"):
        save(tmp_path / name, digit())
    images = [str(tmp_path / "ring.png"), str(tmp_path / "second.png")]
    result = cli("detect", *images, "--model", str(tmp_path / "loop.onnx"), "--timeout", "0.3", "--json")
    assert result.exit_code == 124 and len(result.stderr.strip().splitlines()) == 1
    assert "--timeout" in result.stderr and result.stdout == ""
    assert result.stderr.strip().endswith(f"and was stopped, on {images[0]} and 1 more image")  # one batch of two


# ---- 5. memory at load ----


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc")
def test_opening_a_tiny_file_that_folds_to_gigabytes_stays_small(tmp_path):
    """ConstantOfShape of 2**28 floats (1 GiB), reduced to one number: onnxruntime's constant folding computes it
    when the file is opened (2.1 GB peak). Opened by aetool, the process stays far below that."""
    shape = int64_tensor("shape", [2**28])
    one = tensor_attribute("value", tensor("v", [1], FLOAT, np.float32(1).tobytes()))
    (tmp_path / "bomb.onnx").write_bytes(
        onnx_bytes(
            {"image": CONV},
            {"reconstruction": CONV},
            [
                node("ConstantOfShape", ["shape"], ["big"], [one]),
                node("ReduceMax", ["big"], ["top"]),
                node("Add", ["image", "top"], ["reconstruction"]),
            ],
            initializers=[shape],
        )
    )
    assert len((tmp_path / "bomb.onnx").read_bytes()) < 300
    script = (  # VmHWM: this process's peak resident memory, unlike ru_maxrss not inherited across exec
        "import sys; from aetool.runtime.describe import describe; print(describe(sys.argv[1]).contract);"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bomb.onnx")], capture_output=True, text=True, timeout=120
    )
    contract, peak_kb = done.stdout.split()
    assert done.returncode == 0 and contract == "ok", done.stderr[-500:]
    assert int(peak_kb) < 500_000  # 2,150,000 kB when onnxruntime folds the constant


# ---- 6. fixed dimensions other than the contract's ----


@pytest.mark.parametrize("batch", [1, 4])
def test_a_file_with_a_fixed_batch_gets_exactly_that_many_images_a_call(tmp_path, batch):
    shape = [batch, 1, 28, 28]
    (tmp_path / "m.onnx").write_bytes(identity(shape, toy_metadata("fixed", "dense", None)))
    model = load(tmp_path / "m.onnx")
    assert model.input_spec.batch == batch
    images = np.random.default_rng(0).random((7, 28, 28), dtype=np.float32)
    assert np.array_equal(model.reconstruct(images), images)


def test_a_batch_of_images_through_a_file_of_batch_one(cli, tmp_path):
    (tmp_path / "one.onnx").write_bytes(identity([1, 1, 28, 28], toy_metadata("fixed", "dense", None)))
    for index in range(3):
        save(tmp_path / "in" / f"{index}.png", digit())
    result = cli("denoise", "in", "-o", "out", "--model", "one.onnx")
    assert result.exit_code == 0 and len(list((tmp_path / "out").iterdir())) == 3
    assert "3 done, 0 failed" in result.stderr


def test_a_file_fixing_one_side_only_is_refused_at_load(tmp_path):
    (tmp_path / "m.onnx").write_bytes(identity(["N", 1, 28, "W"]))
    with pytest.raises(ModelFileError, match=r"fixes one side of its input only"):
        load(tmp_path / "m.onnx")


def test_onnxruntime_messages_keep_their_useful_part_on_one_line():
    raw = (
        "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: image for the following "
        "indices\n index: 0 Got: 3 Expected: 1\n Please fix either the inputs/the model."
    )
    assert ort_message(RuntimeError(raw)) == (
        "Got invalid dimensions for input: image for the following indices index: 0 Got: 3 Expected: 1 Please fix "
        "either the inputs/the model."
    )
    located = "[ONNXRuntimeError] : 1 : FAIL : /src/model.cc:256 onnxruntime::Model::Model(a&&, const b&) Bad IR"
    assert ort_message(RuntimeError(located)) == "Bad IR"
    inside = "Failed to load model with error: /src/utils.h:46 void ns::Check(const std::map<a, b>&, int) Opset 99"
    assert ort_message(RuntimeError(inside)) == "Failed to load model with error: Opset 99"


# ---- 9. paths the operating system can name ----


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes are a POSIX matter")
def test_a_model_and_images_under_names_that_are_not_utf8(tmp_path):
    folder = tmp_path / os.fsdecode(b"mod\xffels")
    folder.mkdir()
    model_path = folder / os.fsdecode(b"m\xfe.onnx")
    model_path.write_bytes(identity(CONV, toy_metadata("conv", "conv", 4)))
    images = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(load(model_path).reconstruct(images), images)
    inputs = tmp_path / "in"
    save(inputs / os.fsdecode(b"d\xe9j\xe0.png"), digit())
    save(inputs / "plain.png", digit())
    (inputs / os.fsdecode(b"bro\xefken.png")).write_text("not an image")
    model = os.fsencode(model_path)
    done = subprocess.run(
        [sys.executable, "-m", "aetool", "reconstruct", os.fsencode(inputs), "-o", "out", "--json", "--model", model],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # the broken image alone fails
    assert "Traceback" not in done.stderr.decode(errors="replace")
    assert os.fsencode(inputs) + b"/bro\xefken.png: not an image" in done.stderr  # was bro\udcefken.png
    assert sorted(os.listdir(os.fsencode(tmp_path / "out"))) == [b"d\xe9j\xe0.png", b"plain.png"]
    assert len(done.stdout.splitlines()) == 3
    info = subprocess.run(  # a strict UTF-8 standard output, where a name of other bytes cannot be encoded
        [sys.executable, "-m", "aetool", "info", model],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
    )
    assert info.returncode == 0 and info.stdout.startswith(os.fsencode(model_path)), info.stderr


# ---- 18. the Python API given pixels of another kind ----


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.full((1, 28, 28), 200, np.uint8), r"float images in \[0, 1\], got uint8 values; .* / 255"),
        (np.full((1, 28, 28), 200.0, np.float32), r"images in \[0, 1\], got values from 200.0 to 200.0"),
        (np.full((1, 28, 28), np.nan, np.float32), r"images in \[0, 1\], got 784 NaN values"),
    ],
)
def test_reconstruct_refuses_pixels_that_are_not_floats_in_0_1(toy_dir, images, message):
    with pytest.raises(ValueError, match=message):
        load(toy_dir / "dense.onnx").reconstruct(images)
    assert load(toy_dir / "dense.onnx").reconstruct(np.zeros(images.shape, np.float32)).shape == images.shape


@pytest.mark.parametrize("shape", [(1, 1, 0, 4), (2, 1, 0, 0), (1, 4, 0)])
def test_reconstruct_refuses_images_of_no_pixels_naming_them_not_the_model(toy_dir, shape):
    with pytest.raises(ValueError, match=r"expected images of at least 1×1 pixels, got \d×\d"):
        load(toy_dir / "conv.onnx").reconstruct(np.zeros(shape, np.float32))


# ---- 17. telemetry ----


@pytest.mark.parametrize(("setting", "files"), [(None, 0), ("0", 2)])
def test_onnxruntime_telemetry_is_off_unless_turned_on(tmp_path, setting, files):
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path)
    if setting is not None:
        env["ORT_DISABLE_TELEMETRY"] = setting
    (tmp_path / "m.onnx").write_bytes(identity(CONV, toy_metadata("conv", "conv", 4)))
    done = subprocess.run([sys.executable, "-m", "aetool", "info", "m.onnx"], cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0
    written = [p for p in (tmp_path / ".cache").rglob("*") if p.is_file()] if (tmp_path / ".cache").exists() else []
    if files and not written:
        pytest.skip("this onnxruntime writes no telemetry files, even when asked to")
    assert len(written) == files  # onnxruntime's deviceid and onnxruntime.db when it is on


# ---- 12. pipes ----


def test_a_reader_that_goes_away_ends_the_batch_quietly_with_exit_141(tmp_path, toy_dir):
    for index in range(400):  # more JSON than a pipe buffers, so the writer meets the closed pipe mid-batch
        save(tmp_path / "in" / f"{index:03d}.png", digit())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aetool",
            "reconstruct",
            "in",
            "-o",
            "out",
            "--json",
            "--model",
            str(toy_dir / "conv.onnx"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(process.stdout.readline())["path"] == "in/000.png"
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141 and stderr == b""
    written = sorted((tmp_path / "out").iterdir())
    assert 0 < len(written) < 400 and all(not path.name.startswith(".") for path in written)


def test_an_image_larger_than_the_pipe_to_a_reader_that_goes_away_is_exit_141_when_unbuffered(tmp_path, toy_dir):
    # Under PYTHONUNBUFFERED standard output is a raw file: a write takes what the pipe has room for and says so
    # rather than raising, so the image was reported written (exit 0) with only its first 64 KiB sent
    noise = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)  # a PNG that does not compress
    save(tmp_path / "noise.png", noise)
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "reconstruct", "noise.png", "-o", "-", "--model", str(toy_dir / "conv.onnx")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(8) == b"\x89PNG\r\n\x1a\n"
    process.stdout.close()  # as `| head -c 8` does
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141 and stderr == b""


def test_image_data_is_written_whole_through_a_stream_that_takes_part_of_each_write():
    class Pipe:  # a raw file's write: at most what the pipe has room for, the count returned
        def __init__(self) -> None:
            self.received = bytearray()

        def write(self, data) -> int:
            self.received += bytes(data[:1000])
            return min(len(data), 1000)

        def flush(self) -> None:
            pass

    pipe, data = Pipe(), bytes(range(256)) * 20
    write_all(pipe, data)
    assert pipe.received == data


@pytest.mark.parametrize("args", [["--help"], ["denoise", "--help"]])
def test_help_to_a_reader_that_has_gone_is_exit_141_as_a_command_is(args):
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    process.stdout.close()  # gone before the help is written, as `| head -1` may be
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141 and stderr == b""  # Click's own handling said exit 1


def test_a_closed_standard_output_is_one_line_or_does_not_matter(tmp_path, toy_dir):
    save(tmp_path / "ring.png", digit())
    model = str(toy_dir / "conv.onnx")
    to_stdout = subprocess.run(
        f"'{sys.executable}' -m aetool denoise ring.png -o - --model '{model}' >&-",
        shell=True,
        cwd=tmp_path,
        capture_output=False,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert to_stdout.returncode == 2
    assert (
        to_stdout.stderr.decode().strip()
        == "aetool: error: standard output is closed; write the images to files with -o"
    )
    to_files = subprocess.run(
        f"'{sys.executable}' -m aetool denoise ring.png -o out/ --json --model '{model}' >&-",
        shell=True,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert to_files.returncode == 0 and (tmp_path / "out" / "ring.png").is_file()


# ---- 15. thread counts ----


def test_sessions_and_bench_size_their_pools_from_the_cpus_this_process_may_use(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # as under taskset -c 0
    (tmp_path / "fresh.onnx").write_bytes(identity(CONV, toy_metadata("conv", "conv", 4)))
    options = load(tmp_path / "fresh.onnx").session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    result = cli("bench", "--model", str(tmp_path / "fresh.onnx"), "--json", "--batch-sizes", "1", "--warmup", "0")
    assert result.exit_code == 0 and json.loads(result.stdout)["threads"] == 1


@pytest.mark.parametrize(
    "noise",
    [
        {"level": 0.5, "kind": "gaussian"},
        {"level": None, "kind": None, "mix": "gaussian=0:0.6,salt-pepper=0:0.3,mask=0.25"},
        {"level": 0.0, "kind": "gaussian"},
    ],
)
def test_the_noise_records_exports_write_pass_the_metadata_check(tmp_path, noise):
    (tmp_path / "m.onnx").write_bytes(identity(metadata={"noise": json.dumps(noise)}))
    assert load(tmp_path / "m.onnx").metadata["noise"] == noise
