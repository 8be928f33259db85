"""Hostile and odd files on the torch side: foreign checkpoints and run files, zip bombs and pickle payloads,
exports bound together by the decoder's digest, exports into folders that cannot be written."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="checkpoints and exports need the train extra")
pytest.importorskip("onnx", reason="exports need the train extra")


from conftest import cli_runner  # noqa: E402

from aetool.cli import app  # noqa: E402
from aetool.errors import AetoolError, ModelFileError  # noqa: E402
from aetool.export import ExportOptions, export_model, exporter  # noqa: E402
from aetool.export.metadata import ModelFacts  # noqa: E402
from aetool.models import build_model, get_spec  # noqa: E402
from aetool.runtime import contract, load  # noqa: E402
from aetool.train.run import RunFolder  # noqa: E402

runner = cli_runner()


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    """A finished one-epoch ae64 run (no export)."""
    out = tmp_path_factory.mktemp("run") / "ae64"
    result = runner.invoke(app, ["train", "ae64", *TRAIN, "--data-dir", str(data_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


TRAIN = [
    "--epochs",
    "1",
    "--quiet",
    "--no-export",
    "--allow-trivial",
]  # a one-epoch run on synthetic data learns little


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "run"
    shutil.copytree(run_dir, copied)
    return copied


def rewrite_checkpoint(run: Path, **changes) -> None:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, **changes}, run / "checkpoint.pt")


# ---- 13. foreign but harmless checkpoints and run files ----


CHECKPOINT_CASES = [
    ({"model": build_model("ae128").state_dict()}, r"weight .* is \(128, 784\), the model's is \(64, 784\)"),
    ({"model": {"w": torch.zeros(2)}}, r"its weights are another model's"),
    ({"epoch": "one"}, r"its epoch is 'one'"),
    ({"config": [1, 2]}, r"its config is \[1, 2\]"),
]


@pytest.mark.parametrize(("changes", "message"), [*CHECKPOINT_CASES, ({"optimizer": None}, "no optimizer state")])
def test_resume_on_a_foreign_checkpoint_is_one_line(run_dir, data_dir, tmp_path, changes, message):
    run = copy_run(run_dir, tmp_path)
    rewrite_checkpoint(run, **changes)
    result = runner.invoke(app, ["train", "ae64", *TRAIN, "--data-dir", str(data_dir), "-o", str(run), "--resume"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize(("changes", "message"), CHECKPOINT_CASES)
def test_export_of_a_foreign_checkpoint_is_one_line(run_dir, tmp_path, changes, message):
    run = copy_run(run_dir, tmp_path)
    rewrite_checkpoint(run, **changes)
    result = runner.invoke(app, ["export", str(run)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and not (run / "model.onnx").exists()


@pytest.mark.parametrize(
    "metrics",
    [
        [1, 2],
        {"history": {"epoch": 1}},
        {"config": [1], "history": []},
        {"history": [{"epoch": "1", "test_mse": 0.1}]},
        {"history": [{"epoch": 1, "test_mse": "low"}]},
        {"history": [1, 2]},
    ],
)
def test_a_metrics_file_of_another_shape_is_one_line(run_dir, data_dir, tmp_path, metrics):
    run = copy_run(run_dir, tmp_path)
    (run / "metrics.json").write_text(json.dumps(metrics))
    for args in (
        ["export", str(run)],
        ["train", "ae64", *TRAIN, "--data-dir", str(data_dir), "-o", str(run), "--resume"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "not an aetool metrics file" in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1


# ---- 14. zip bombs and pickle payloads ----


def test_a_zip_bomb_checkpoint_is_refused_before_loading(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    with zipfile.ZipFile(run / "checkpoint.pt", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (1 << 20))
    data = bytearray((run / "checkpoint.pt").read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (4_000_000_000).to_bytes(4, "little")  # declared size: 4 GB
    (run / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(AetoolError, match=r"declare 4,000,000,000 bytes unpacked"):
        RunFolder(run).read_checkpoint()


class Payload:
    """An object a pickle payload would construct (and so run code of) when loaded without weights_only."""


def test_a_pickle_payload_is_called_untrustworthy_in_full(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    rewrite_checkpoint(run, extra=Payload())
    with pytest.raises(AetoolError) as caught:
        RunFolder(run).read_checkpoint()
    message = str(caught.value)
    assert "is not a trustworthy aetool checkpoint" in message and "Payload" in message
    assert "weights_only=False" not in message and "\n" not in message


class SystemCall:
    """The classic payload: loading would call os.system, whose module PyTorch blocks by name."""

    def __reduce__(self):
        return os.system, ("true",)


def test_a_payload_of_a_blocked_module_is_named_too(run_dir, tmp_path):
    """PyTorch words that refusal otherwise ("whose module posix is blocked"), and the message named nothing (trial
    59)."""
    run = copy_run(run_dir, tmp_path)
    rewrite_checkpoint(run, extra=SystemCall())
    with pytest.raises(AetoolError, match=r"it holds Python objects \((posix|nt)\.system\) that loading would run"):
        RunFolder(run).read_checkpoint()


def test_a_text_file_as_checkpoint_is_not_a_zip_archive(tmp_path):
    (tmp_path / "checkpoint.pt").write_text("hello\n")
    with pytest.raises(AetoolError, match="not a readable checkpoint: not a zip archive"):
        RunFolder(tmp_path).read_checkpoint()


# ---- 10. the files of one export belong together ----


def export_ae64(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path = folder / "ae64.onnx"
    facts = ModelFacts("ae64", get_spec("ae64").arch)
    export_model(build_model("ae64"), path, facts=facts, options=ExportOptions(), echo=lambda line: None)
    return path


def test_a_decoder_of_another_export_is_refused_by_its_digest(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = export_ae64(tmp_path / "a", seed=0), export_ae64(tmp_path / "b", seed=1)
    decoder = contract.decoder_path(first)
    model = load(first)
    assert model.metadata[contract.DECODER_SHA256] == hashlib.sha256(decoder.read_bytes()).hexdigest()
    codes = model.encode(np.zeros((2, 28, 28), np.float32))
    assert model.decode(codes).shape == (2, 1, 28, 28)
    shutil.copy(contract.decoder_path(second), decoder)  # as a kill between two renames would leave them
    os.utime(first)  # a new model file for load()'s cache
    with pytest.raises(ModelFileError, match="not the file its model was exported with"):
        load(first).decode(codes)
    info = runner.invoke(app, ["info", str(first)])
    assert "✗ not the decoder this model was exported with" in info.stdout


# ---- 10b. an export into a folder that cannot be written ----


def test_an_export_into_a_read_only_folder_fails_before_the_parity_work(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    def no_work(*args, **kwargs):
        raise AssertionError("the parity work started")

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(exporter, "to_onnx", no_work)
    with pytest.raises(AetoolError, match=rf"^cannot write {folder / 'ae64.onnx'}: Read-only file system"):
        export_ae64(folder, seed=0)


# ---- 15. thread counts on the torch side ----


def test_torch_pools_and_parity_sessions_size_from_the_cpus_this_process_may_use(monkeypatch):
    from aetool.export.onnx_export import model_spec, to_onnx
    from aetool.export.parity import cpu_session
    from aetool.train.threads import size_torch_threads

    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # as under taskset -c 0
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert size_torch_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    session = cpu_session(to_onnx(model_spec(build_model("ae64").eval(), target="portable")))
    assert session.get_session_options().intra_op_num_threads == 1
