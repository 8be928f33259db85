import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="training needs the train extra")

from conftest import cli_runner

from aetool.cli import app
from aetool.errors import AetoolError
from aetool.models import REGISTRY

runner = cli_runner()


def test_train_command_writes_a_run_with_a_verified_onnx(data_dir, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "ae64",
            "--epochs",
            "2",
            "--data-dir",
            str(data_dir),
            "--output",
            str(out),
            "--quiet",
            "--allow-trivial",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test MSE" in result.output
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    assert (out / "checkpoint.pt").is_file() and (out / "model.onnx").is_file()


def test_train_help_lists_every_registry_model():
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in REGISTRY:
        assert name in result.output


def test_unknown_model_and_missing_data_are_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["train", "resnet", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown model 'resnet'" in result.output
    result = runner.invoke(app, ["train", "ae64", "--data-dir", str(tmp_path / "none"), "--no-export"])
    assert result.exit_code == 2
    assert "does not exist; expected the four IDX files" in result.output
    assert "Traceback" not in result.output


TORCHRUN = shutil.which("torchrun", path=sys.prefix + "/bin") or shutil.which("torchrun")
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")


def torchrun_aetool(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m aetool ARGS``, on the CPU."""
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "aetool", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@needs_torchrun
def test_two_process_gloo_ddp_run(data_dir, tmp_path):
    out = tmp_path / "ddp"
    args = ["train", "ae64", "--epochs", "2", "--device", "cpu", "--data-dir", str(data_dir), "-o", str(out)]
    done = torchrun_aetool(*args, "--quiet", "--no-export", "--allow-trivial", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    assert done.stderr.count("after 2 epochs in") == 1  # only rank 0 reports and writes
    single = runner.invoke(
        app,
        [
            "train",
            "ae64",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "single"),
            "--quiet",
            "--no-export",
            "--allow-trivial",
        ],
    )
    assert single.exit_code == 0, single.output
    alone = json.loads((tmp_path / "single" / "metrics.json").read_text())["history"]
    # interleaved shards make DDP's global batches those of the single-process run
    assert history[-1]["test_mse"] == pytest.approx(alone[-1]["test_mse"], rel=1e-4)


@pytest.mark.parametrize("anomaly", [[], ["--anomaly"]])
def test_report_refuses_a_runs_folder_it_cannot_write_before_any_work(data_dir, tmp_path, anomaly):
    """It was refused once PCA had been fitted (and, without --data-dir, MNIST fetched)."""
    (tmp_path / "afile").write_text("mine")
    args = ["report", "--quick", "--data-dir", str(data_dir), "-o", str(tmp_path / "report"), "--runs"]
    result = runner.invoke(app, [*args, str(tmp_path / "afile"), "--quiet", *anomaly])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"aetool: error: --runs: cannot write into {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file\n"
    )
    assert not (tmp_path / "report").exists()


def test_report_command_reports_a_missing_data_folder_in_one_line(tmp_path):
    result = runner.invoke(
        app,
        [
            "report",
            "--quick",
            "--data-dir",
            str(tmp_path / "none"),
            "-o",
            str(tmp_path / "report"),
            "--runs",
            str(tmp_path / "runs"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2
    assert "does not exist; expected the four IDX files" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "report" / "index.html").exists()


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ae64"
    result = runner.invoke(
        app,
        ["train", "ae64", "--epochs", "1", "--data-dir", str(data_dir), "-o", str(out), "--quiet", "--allow-trivial"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_export_command_writes_verified_files_and_reports_them_once(trained_run, data_dir, tmp_path):
    target = tmp_path / "ae64.onnx"
    result = runner.invoke(
        app, ["export", str(trained_run), "-o", str(target), "--int8", "--data-dir", str(data_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    written = [tmp_path / "ae64.onnx", tmp_path / "ae64.decoder.onnx", tmp_path / "ae64.int8.onnx"]
    assert report["paths"] == [str(p) for p in written] and all(p.is_file() for p in written)
    assert report["parity"]["passed"] and report["variants"][0]["precision"] == "int8"
    assert result.stderr.count("wrote ") == 1


def test_export_command_refusals_exit_2_with_the_reason_and_write_nothing(trained_run, tmp_path):
    missing = runner.invoke(app, ["export", str(tmp_path / "no-run")])
    assert missing.exit_code == 2 and len(missing.stderr.strip().splitlines()) == 1
    strict = runner.invoke(app, ["export", str(trained_run), "-o", str(tmp_path / "strict.onnx"), "--atol", "1e-12"])
    assert strict.exit_code == 2 and "disagrees with PyTorch" in strict.stderr
    assert "Traceback" not in missing.output + strict.output and not list(tmp_path.glob("*.onnx"))


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="these file systems take no name that is not text")
def test_an_export_to_a_file_name_that_is_not_utf8_is_refused_before_any_work(trained_run, tmp_path):
    """ONNX metadata is UTF-8 and names the decoder's file: it was onnx's UnicodeEncodeError, a traceback."""
    target = tmp_path / os.fsdecode(b"m\xff.onnx")
    result = runner.invoke(app, ["export", str(trained_run), "-o", str(target)])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("aetool: error: cannot export to ")
    assert result.stderr.endswith(
        ": its name is not UTF-8 text, which ONNX metadata must be (it names the file's decoder); rename it\n"
    )
    assert os.listdir(tmp_path) == []


def test_write_errors_and_a_file_as_run_folder_are_one_line_exit_2(trained_run, data_dir, tmp_path, monkeypatch):
    from aetool.export import exporter

    def refuse(proto, path, **options):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(exporter.onnx, "save_model", refuse)
    result = runner.invoke(app, ["export", str(trained_run), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and f"error: cannot write {tmp_path / 'x.onnx'}: Permission denied" in result.stderr
    (tmp_path / "afile").write_text("mine")
    result = runner.invoke(
        app, ["train", "ae64", "--out", str(tmp_path / "afile"), "--data-dir", str(data_dir), "--quiet", "--no-export"]
    )
    assert result.exit_code == 2 and "it is a file" in result.stderr
    assert "Traceback" not in result.output and (tmp_path / "afile").read_text() == "mine"
    below = tmp_path / "afile" / "sub" / "run"  # it said "Not a directory: …/afile/sub/run"
    args = ["train", "ae64", "-o", str(below), "--data-dir", str(data_dir), "--quiet", "--no-export"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr == (
        f"aetool: error: cannot write into {below}: {tmp_path / 'afile'} is a file\n"
    )


@pytest.mark.skipif(importlib.util.find_spec("resource") is None, reason="file size limits are POSIX's")
def test_a_checkpoint_that_does_not_fit_is_one_line_and_leaves_no_run_folder(data_dir, tmp_path):
    """A full disk (here a file size limit, as `ulimit -f` sets) when the first checkpoint is written: torch.save's
    own "unexpected pos" RuntimeError was a traceback, and the empty run folder stayed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, hard))
    try:
        result = runner.invoke(
            app, ["train", "ae64", "-o", str(tmp_path / "run"), "--data-dir", str(data_dir), "--epochs", "1", "--quiet"]
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.splitlines()[-1]
        == f"aetool: error: cannot write {tmp_path / 'run' / 'checkpoint.pt'}: File too large"
    )
    assert not (tmp_path / "run").exists()


def test_a_run_over_an_earlier_one_that_cannot_be_written_is_refused_before_training(
    trained_run, data_dir, monkeypatch
):
    """A read-only file system (as root, no permission bit stops a write): --force trained every epoch, then failed."""
    from aetool.runtime import files

    def read_only(target):
        raise OSError(30, "Read-only file system", str(target))

    kept = (trained_run / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(files, "_create_temporary", read_only)
    monkeypatch.setattr("aetool.train.loop.Trainer", None)  # training would fail at once on it
    args = ["train", "ae64", "-o", str(trained_run), "--force", "--data-dir", str(data_dir), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr == f"aetool: error: cannot write into {trained_run}: Read-only file system (in {trained_run})\n"
    )
    assert (trained_run / "checkpoint.pt").read_bytes() == kept


def test_a_run_folder_on_a_read_only_file_system_is_said_before_the_data_are_read(data_dir, tmp_path, monkeypatch):
    """It said "Read-only file system: ro/run" once every image was decoded (trial 85)."""
    from aetool.runtime import files
    from aetool.train.run import RunFolder

    def read_only(*args, **options):
        raise OSError(30, "Read-only file system", str(args[0]))

    monkeypatch.setattr(files, "_create_temporary", read_only)
    monkeypatch.setattr("aetool.train.loop.load_training_data", None)  # reading the data would fail at once on it
    run = tmp_path / "new" / "run"
    result = runner.invoke(app, ["train", "ae64", "-o", str(run), "--data-dir", str(data_dir), "--quiet"])
    assert result.stderr == f"aetool: error: cannot write into {run}: Read-only file system (in {tmp_path})\n"
    assert result.exit_code == 2 and not (tmp_path / "new").exists()
    monkeypatch.setattr("aetool.train.run.make_folder", read_only)  # the library's own path: said alike
    with pytest.raises(AetoolError, match=rf"^cannot write into {run}: Read-only file system \(in {tmp_path}\)$"):
        RunFolder(run).create(new=True)


def test_a_source_date_epoch_the_export_cannot_take_is_refused_before_training(data_dir, tmp_path, monkeypatch):
    """It was read only by the export, after every epoch had been trained."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000.5")
    monkeypatch.setattr("aetool.train.loop.Trainer", None)  # training would fail at once on it
    args = ["train", "ae64", "-o", str(tmp_path / "run"), "--data-dir", str(data_dir), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    assert "SOURCE_DATE_EPOCH must be whole seconds since 1970-01-01 UTC, got '1700000000.5'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_into_a_new_folder_that_another_run_made_meanwhile_stops_and_leaves_it(data_dir, tmp_path, monkeypatch):
    """Two trainings started into one new folder at once both trained, and the later files replaced the earlier."""
    from aetool.train import loop

    load = loop.load_training_data

    def another_run_makes_the_folder(config):
        (tmp_path / "run").mkdir()
        return load(config)

    monkeypatch.setattr(loop, "load_training_data", another_run_makes_the_folder)
    args = ["train", "ae64", "-o", str(tmp_path / "run"), "--data-dir", str(data_dir), "--epochs", "1", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr == (
        f"aetool: error: {tmp_path / 'run'} was made by another run while this one loaded its data; "
        "give this one another folder (train's -o, report's --runs)\n"
    )
    assert (tmp_path / "run").is_dir()  # the other run's, empty as it still is, not removed


@pytest.mark.skipif(importlib.util.find_spec("resource") is None, reason="file size limits are POSIX's")
def test_a_forced_run_whose_checkpoint_does_not_fit_leaves_the_older_run_whole(trained_run, data_dir, tmp_path):
    """--force removed the older run's exported files before the new checkpoint failed to write."""
    import resource

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    assert {"model.onnx", "checkpoint.pt"} <= set(before)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, hard))
    try:
        args = ["train", "ae64", "-o", str(run), "--force", "--data-dir", str(data_dir), "--epochs", "1", "--quiet"]
        result = runner.invoke(app, args)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 2 and "checkpoint.pt: File too large" in result.stderr
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_a_skipped_file_is_warned_of_once_by_training_and_its_export(tmp_path):
    import numpy as np
    from conftest import save

    for i in range(6):
        save(tmp_path / "imgs" / f"{i}.png", np.random.default_rng(i).integers(0, 255, (28, 28), dtype=np.uint8))
    (tmp_path / "imgs" / "bad.png").write_text("not an image")
    (tmp_path / "imgs" / "zero.png").write_bytes(b"")
    args = ["train", "ae64", "--data", str(tmp_path / "imgs"), "--epochs", "1", "-o", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--quiet", "--allow-trivial"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("warning: skipped") == 2 and (tmp_path / "run" / "model.onnx").is_file()
    assert f"skipped {tmp_path / 'imgs' / 'zero.png'}: empty file" in result.stderr  # as denoise says it


def test_resume_without_a_run_says_it_starts_a_new_one(data_dir, tmp_path):
    args = ["train", "ae64", "--epochs", "1", "--data-dir", str(data_dir), "-q", "--no-export", "--allow-trivial"]
    result = runner.invoke(app, [*args, "--resume", "-o", str(tmp_path / "typo")])
    assert result.exit_code == 0, result.stderr
    assert f"{tmp_path / 'typo'} holds no run to resume: training a new one" in result.stderr
    assert "summed over its resumes" not in result.stderr  # a run that was never resumed (trial 93)


def test_resume_of_a_finished_run_says_nothing_is_left_to_train(data_dir, tmp_path):
    args = ["train", "ae64", "--epochs", "1", "--data-dir", str(data_dir), "-q", "--no-export", "--allow-trivial"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "run")])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    best = min(metrics["baselines"], key=metrics["baselines"].get)  # beside the test MSE, to weigh it against
    named = {"zeros": "the all-black output", "mean_image": "the mean training image"}[best]
    assert first.exit_code == 0 and f"({named}: {metrics['baselines'][best]:.5f}) after 1 epoch in" in first.stderr
    metrics["run"]["seconds"] = 1234.4  # the run's time, not the resume's (it said "in 2 s" of a 27 s run)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    again = runner.invoke(app, [*args, "--resume", "-o", str(tmp_path / "run")])
    assert again.exit_code == 0 and "has finished its 1 epoch: nothing left to train" in again.stderr
    assert "resuming" not in again.stderr and "after 1 epoch in 1234 s (summed over its resumes)" in again.stderr
    pca = ["train", "pca", "--data-dir", str(data_dir), "-q", "--no-export", "-o", str(tmp_path / "pca")]
    fitted = runner.invoke(app, pca)
    assert fitted.exit_code == 0 and ") fitted in closed form in " in fitted.stderr  # "after 0 epochs" (trial 102)
    kept = (tmp_path / "pca" / "checkpoint.pt").read_bytes()
    again = runner.invoke(app, [*pca, "--resume"])  # a fit in closed form has no optimizer state to go on with
    assert again.exit_code == 0 and "has finished its fit (PCA, in closed form): nothing left to train" in again.stderr
    assert (tmp_path / "pca" / "checkpoint.pt").read_bytes() == kept


def test_training_lines_and_bar_go_to_stderr_unwrapped(data_dir, tmp_path, monkeypatch):
    from aetool.cli import training

    monkeypatch.setattr(training, "training_bar", lambda quiet: not quiet)  # as on a terminal
    args = ["train", "ae64", "--epochs", "2", "--lr", "1e-12", "--data-dir", str(data_dir), "--no-export"]
    result = runner.invoke(app, [*args, "--limit", "2000", "-o", str(tmp_path / "run")])
    assert result.exit_code == 3 and result.stdout == ""
    trivial = [line for line in result.stderr.splitlines() if "learned nothing useful (yet" in line]  # said once
    assert len(trivial) == 1 and trivial[0].startswith("aetool: epoch   1: ") and len(trivial[0]) > 80
    assert trivial[0].endswith("the model has learned nothing useful (yet; the last epoch decides)")
    last = result.stderr.strip().splitlines()[-1]  # --no-export: nothing to say about exporting
    assert last.endswith(f"the run stays in {tmp_path / 'run'} (--resume --allow-trivial accepts it)")
    assert "export" not in last  # and as said, it works (--allow-trivial alone: "already holds a run"; trial 87)
    accepted = runner.invoke(
        app, [*args, "--limit", "2000", "-o", str(tmp_path / "run"), "--resume", "--allow-trivial"]
    )
    assert accepted.exit_code == 0, accepted.stderr


def test_a_trivial_detector_run_says_how_to_export_it_and_a_plain_export_does_not_stand_for_its_detector(
    data_dir, tmp_path
):
    """Exit 3 said "--allow-trivial exports it anyway" (no command takes that after the run); `aetool export RUN`
    then wrote a plain model without a word, and `train --resume --allow-trivial` took it for the run's export:
    "nothing to export", and no detector (trial 86)."""
    from aetool.runtime import contract, load

    run = tmp_path / "run"
    args = ["train", "anomaly", "--classes", "1", "--epochs", "1", "--lr", "1e-12", "--data-dir", str(data_dir)]
    result = runner.invoke(app, [*args, "-q", "-o", str(run)])
    last = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 3 and last.endswith(
        f"; not exported (the run stays in {run}; aetool calibrate {run} exports it anyway)"
    )
    plain = runner.invoke(app, ["export", str(run)])
    assert plain.exit_code == 0 and "note: anomaly runs end in a calibrated detector; this plain model has no " in (
        plain.stderr
    )
    again = runner.invoke(app, [*args, "-q", "-o", str(run), "--resume", "--allow-trivial"])
    assert again.exit_code == 0 and "nothing to export" not in again.stderr, again.stderr
    assert contract.ANOMALY in load(run / "model.onnx").metadata  # the detector, calibrated now


def test_a_denoiser_that_learns_nothing_says_its_test_mse_is_on_noisy_inputs():
    """The report's row showed the test MSE on clean inputs beside a note quoting the one on noisy inputs, unnamed."""
    from aetool.train.loop import beaten

    said = beaten(0.07424, {"zeros": 0.1, "mean_image": 0.0672, "input": 0.09})
    assert said is not None and said.startswith(
        "test MSE on noisy inputs 0.07424 does not beat the mean training image"
    )
    assert (beaten(0.07424, {"zeros": 0.1, "mean_image": 0.0672}) or "").startswith("test MSE 0.07424 does not beat")


def test_a_run_that_learns_nothing_says_so_exits_3_and_is_not_exported(data_dir, tmp_path):
    args = ["train", "ae64", "--epochs", "1", "--lr", "1e-12", "--data-dir", str(data_dir), "--quiet"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "stuck")])
    last = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 3 and last.startswith("aetool: error: ae64: test MSE")
    assert "does not beat the mean training image" in last and f"aetool export {tmp_path / 'stuck'} exports it" in last
    assert "(yet; the last epoch decides)" not in result.stderr  # epoch 1 of 1 is the last: its line is the verdict
    assert (tmp_path / "stuck" / "checkpoint.pt").is_file() and not (tmp_path / "stuck" / "model.onnx").exists()
    baselines = json.loads((tmp_path / "stuck" / "metrics.json").read_text())["baselines"]
    assert set(baselines) == {"zeros", "mean_image"} and baselines["mean_image"] < baselines["zeros"]
    exported = runner.invoke(app, ["export", str(tmp_path / "stuck")])  # asked for by name: done, with a warning
    assert exported.exit_code == 0 and (tmp_path / "stuck" / "model.onnx").is_file()
    assert "warning: test MSE" in exported.stderr and "exported as asked" in exported.stderr
    accepted = runner.invoke(app, [*args, "-o", str(tmp_path / "kept"), "--allow-trivial"])
    assert accepted.exit_code == 0 and (tmp_path / "kept" / "model.onnx").is_file()
    assert "exported as asked" in accepted.stderr  # "all the same" read oddly after --allow-trivial (trial 60)


def test_a_bad_setting_is_one_line_that_keeps_its_quotes(tmp_path):
    result = runner.invoke(app, ["train", "deep", "--classes", "3,3", "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "each once (3 or 3,5), or a list of them, got '3,3'" in result.output and not (tmp_path / "run").exists()


def test_resume_alone_continues_a_run_with_its_own_settings_and_refuses_other_ones(data_dir, tmp_path):
    from aetool.errors import Interrupted
    from aetool.train import TrainConfig, train

    def interrupt_after_epoch_1(line):
        if line.startswith("epoch   1"):
            raise KeyboardInterrupt

    settings = {"data_dir": str(data_dir), "device": "cpu", "epochs": 3, "lr": 3e-3, "limit": 200, "batch_size": 32}
    with pytest.raises(Interrupted):
        train(TrainConfig("ae64", **settings), run_dir=tmp_path / "cut", progress=False, echo=interrupt_after_epoch_1)
    other = runner.invoke(app, ["train", "ae64", "--resume", "-o", str(tmp_path / "cut"), "--epochs", "5", "--quiet"])
    assert other.exit_code == 2 and "was trained with --epochs 3 (now 5)" in other.stderr
    for model in ("conv-unpool", "pca"):  # said --size or --epochs, --lr … does not apply: options never given
        another = runner.invoke(app, ["train", model, "--resume", "-o", str(tmp_path / "cut"), "--quiet"])
        assert another.exit_code == 2 and f"was trained with MODEL ae64 (now {model}); resume it" in another.stderr
    before = json.loads((tmp_path / "cut" / "metrics.json").read_text())["run"]["seconds"]
    args = ["train", "ae64", "--resume", "-o", str(tmp_path / "cut"), "--quiet", "--no-export", "--allow-trivial"]
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    assert metrics["run"]["seconds"] > before > 0  # the resumed epochs' time added to the first one's
    assert {key: metrics["config"][key] for key in settings} == settings


def test_export_creates_its_folder_and_a_new_export_removes_the_old_sets_variants(trained_run, data_dir, tmp_path):
    target = tmp_path / "new" / "folder" / "ae64.onnx"
    first = runner.invoke(app, ["export", str(trained_run), "-o", str(target), "--int8", "--data-dir", str(data_dir)])
    assert first.exit_code == 0, first.output
    int8 = tmp_path / "new" / "folder" / "ae64.int8.onnx"
    assert target.is_file() and int8.is_file()
    again = runner.invoke(app, ["export", str(trained_run), "-o", str(target)])
    assert again.exit_code == 0, again.output
    assert f"removed {int8}, left from an earlier export to ae64.onnx" in again.stderr
    assert target.is_file() and (tmp_path / "new" / "folder" / "ae64.decoder.onnx").is_file() and not int8.exists()
    (tmp_path / "afile").write_text("mine")
    under_a_file = runner.invoke(app, ["export", str(trained_run), "-o", str(tmp_path / "afile" / "x" / "m.onnx")])
    assert under_a_file.exit_code == 2 and f"{tmp_path / 'afile'} is a file" in under_a_file.stderr
    a_folder = runner.invoke(app, ["export", str(trained_run), "-o", str(tmp_path / "new" / "folder")])
    assert a_folder.exit_code == 2 and "it is a folder; name the file" in a_folder.stderr  # not folder/model.onnx


def test_a_new_export_removes_only_the_decoder_and_variants_an_export_wrote(trained_run, tmp_path):
    """Files that merely have a sibling's name (another export's model, a file of the user's) stay."""
    target = tmp_path / "a.onnx"
    first = runner.invoke(app, ["export", str(trained_run), "-o", str(target)])
    assert first.exit_code == 0, first.output
    other = runner.invoke(app, ["export", str(trained_run), "-o", str(tmp_path / "a.int8.onnx")])  # a model file
    assert other.exit_code == 0, other.output
    (tmp_path / "a.fp16.onnx").write_bytes(b"someone else's file")
    again = runner.invoke(app, ["export", str(trained_run), "-o", str(target)])
    assert again.exit_code == 0 and "removed" not in again.stderr, again.output
    assert (tmp_path / "a.fp16.onnx").read_bytes() == b"someone else's file" and (tmp_path / "a.int8.onnx").is_file()


@pytest.mark.parametrize("option", ["--max-mse-rise", "--atol"])
def test_export_refuses_a_negative_bound_before_any_work(option, tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), option, "-1"])
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("world", ["abc", "2"])
def test_stray_torchrun_variables_are_one_line(world, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", world)
    args = ["train", "ae64", "--epochs", "1", "--data-dir", str(data_dir), "-q", "--no-export", "--allow-trivial"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"WORLD_SIZE={world} asks for distributed training" in result.stderr and "unset WORLD_SIZE" in result.stderr


def test_calibrating_a_run_that_learned_nothing_warns_as_its_export_does(data_dir, tmp_path):
    args = ["train", "anomaly", "--classes", "1", "--epochs", "1", "--lr", "1e-12", "--data-dir", str(data_dir), "-q"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "stuck")]).exit_code == 3
    calibrated = runner.invoke(app, ["calibrate", str(tmp_path / "stuck"), "--fpr", "0.1"])
    assert calibrated.exit_code == 0 and (tmp_path / "stuck" / "model.onnx").is_file()
    assert "warning: test MSE" in calibrated.stderr and "calibrated as asked" in calibrated.stderr
    refused = runner.invoke(app, ["calibrate", str(tmp_path / "stuck"), "--data", str(tmp_path / "nowhere")])
    assert refused.exit_code == 2 and "calibrated as asked" not in refused.stderr  # it said so, then refused


def test_a_gaussian_std_on_the_0_255_scale_is_warned_of_before_training(tmp_path):
    result = runner.invoke(
        app,
        ["train", "dncnn", "--noise", "0:25", "--data", str(tmp_path), "-o", str(tmp_path / "run"), "--epochs", "1"],
    )  # a folder with no image: refused once the warning is out
    assert result.exit_code == 2 and "warning: Gaussian noise of std 25 on pixels in [0, 1]" in result.stderr


def test_an_export_that_fails_after_training_says_how_to_go_on(data_dir, tmp_path, monkeypatch):
    """The portable refusal says "export with --target onnxruntime", an option train does not have."""
    from aetool.export import exporter

    def foreign(proto):
        return ["Gelu"]

    monkeypatch.setattr(exporter, "foreign_operators", foreign)
    run = tmp_path / "run"
    args = ["train", "ae64", "--epochs", "1", "--limit", "500", "-o", str(run), "--data-dir", str(data_dir), "-q"]
    result = runner.invoke(app, [*args, "--allow-trivial"])
    assert result.exit_code == 2 and (run / "checkpoint.pt").is_file() and not (run / "model.onnx").exists()
    assert result.stderr.splitlines()[-1] == (
        "aetool: error: the portable model graph uses Gelu, which not every runtime implements; export with --target "
        f"onnxruntime (the run is complete; go on with: aetool export {run})"
    )


@pytest.mark.slow
@needs_torchrun
def test_a_torchrun_job_whose_rank_0_fails_ends_with_one_line_a_rank(data_dir, tmp_path):
    """Rank 0 failed alone (its run folder is a file) while rank 1 waited for it in a collective, and rank 0 then
    waited at the closing barrier: the job hung with no line until gloo's 30-minute timeout."""
    (tmp_path / "afile").write_text("mine")
    args = ["train", "ae64", "--device", "cpu", "--epochs", "1", "--limit", "300", "--data-dir", str(data_dir)]
    done = torchrun_aetool(*args, "-q", "--no-export", "--allow-trivial", "-o", str(tmp_path / "afile"))
    assert done.returncode != 0 and (tmp_path / "afile").read_text() == "mine"
    assert f"aetool: error: cannot use {tmp_path / 'afile'} as the run folder: it is a file" in done.stderr
    assert "aetool: error: rank 1: another rank of this job stopped, so this one stops too" in done.stderr
    assert "[rank1]: Traceback" not in done.stderr
    done = torchrun_aetool(*args, "--batch-size", "3", "-q", "-o", str(tmp_path / "odd"))  # each rank took 1 of 3
    assert done.returncode != 0 and not (tmp_path / "odd").exists()
    assert "--batch-size 3 does not split over the 2 ranks of this torchrun job" in done.stderr


def test_a_rank_waiting_for_peers_that_never_come_stops_on_sigterm(data_dir, tmp_path):
    """torch retries its wait for the other ranks on every interrupted system call, so aetool's SIGTERM handler
    never ran: the process outlived `timeout` by ten minutes, until SIGKILL."""
    import signal
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    command = [sys.executable, "-m", "aetool", "train", "ae64", "--data-dir", str(data_dir), "-o", str(tmp_path / "r")]
    rank = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _listening(port):  # it waits for its peer on that port
        time.sleep(0.2)
    rank.send_signal(signal.SIGTERM)
    try:
        assert rank.wait(timeout=20) == -signal.SIGTERM
    finally:
        rank.kill()
    assert not (tmp_path / "r").exists()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(importlib.util.find_spec("fcntl") is None, reason="folder locks are POSIX's flock")
def test_a_run_folder_in_training_is_not_started_over_or_resumed_by_another_run(data_dir, tmp_path):
    """A second `train --force` (or `--resume`) into a folder whose run was still training trained alongside it,
    each replacing the other's files every epoch; both exited 0."""
    import signal
    import time

    run = tmp_path / "run"
    args = ["train", "ae64", "--data-dir", str(data_dir), "--limit", "2000", "-q", "--no-export", "--allow-trivial"]
    first = subprocess.Popen(  # epochs enough to outlast the checks (200 ended first on a fast CPU)
        [sys.executable, "-m", "aetool", *args, "--epochs", "100000", "-o", str(run)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run / "checkpoint.pt").exists():
            time.sleep(0.2)
        for again in (["--force"], ["--resume"]):
            second = runner.invoke(app, [*args, "--epochs", "100000", *again, "-o", str(run)])
            assert second.exit_code == 2 and first.poll() is None
            assert second.stderr.strip().splitlines()[-1] == (
                f"aetool: error: {run} is in use by another aetool run (training it, or exporting or calibrating "
                "its model); wait for it to end, or give this one another folder (train's -o, report's --runs)"
            )
        for command in (["export", str(run)], ["calibrate", str(run), "-o", str(tmp_path / "detector.onnx")]):
            beside = runner.invoke(app, command)  # it wrote the old run's model over the new one's (trial 52)
            assert beside.exit_code == 2 and first.poll() is None, beside.stderr
            assert beside.stderr.strip().splitlines()[-1] == (
                f"aetool: error: {run} is being trained by another aetool run; run this again when that run ends"
            )
        assert not (run / "model.onnx").exists() and not (tmp_path / "detector.onnx").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert first.returncode == 130
    resumed = runner.invoke(app, [*args, "--epochs", "200", "--resume", "-o", str(run)], catch_exceptions=False)
    assert "in use by another" not in resumed.stderr  # the lock went with the run that held it


@pytest.mark.skipif(importlib.util.find_spec("fcntl") is None, reason="folder locks are POSIX's flock")
def test_a_run_folder_being_exported_is_not_trained_into(data_dir, tmp_path):
    """An export holds the folder's lock shared: a `train --force` into it meanwhile is refused (its new run got
    the export's model of the old one), while other exports go on."""
    run = tmp_path / "run"
    args = ["train", "ae64", "--data-dir", str(data_dir), "--limit", "600", "--epochs", "1", "-q", "--allow-trivial"]
    assert runner.invoke(app, [*args, "--no-export", "-o", str(run)]).exit_code == 0
    holder = subprocess.Popen(  # another process exporting: the shared lock export and calibrate take
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH); "
            "print('held', flush=True); time.sleep(60)",
            str(run),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        again = runner.invoke(app, [*args, "--force", "-o", str(run)])
        assert again.exit_code == 2 and "is in use by another aetool run" in again.stderr
        exported = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "copy.onnx")])
        assert exported.exit_code == 0, exported.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert runner.invoke(app, [*args, "--force", "-o", str(run)]).exit_code == 0  # the lock went with its holder


@pytest.mark.skipif(importlib.util.find_spec("fcntl") is None, reason="folder locks are POSIX's flock")
def test_a_folder_that_cannot_be_locked_is_used_without_a_lock(tmp_path, monkeypatch):
    """A file system without flock (some network mounts: ENOLCK) or a folder that cannot be opened is no reason to
    refuse a run or an export: they go on unlocked, and whatever reads the folder says what is wrong with it."""
    import errno
    import fcntl

    from aetool.train import run as run_module

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    folder = run_module.RunFolder(tmp_path)
    with folder.in_use():
        assert run_module._LOCKS == {}
    folder.create(new=False)
    assert run_module._LOCKS == {}
    monkeypatch.setattr(os, "open", lambda *args: (_ for _ in ()).throw(PermissionError(errno.EACCES, "denied")))
    with folder.in_use():
        assert run_module._LOCKS == {}


def test_resume_takes_settings_and_history_from_the_checkpoint_and_refuses_a_gap(data_dir, tmp_path):
    """Without metrics.json, --resume took the defaults for the options left out (and refused the run's own
    --epochs/--limit, or downloaded MNIST); a checkpoint ahead of metrics.json (a stop between the two renames)
    resumed with a silent gap in the history (epochs 1, 3, 4)."""
    import torch

    run = tmp_path / "run"
    args = ["-q", "--no-export", "--allow-trivial", "-o", str(run)]
    first = ["train", "ae64", "--epochs", "3", "--limit", "600", "--data-dir", str(data_dir), *args]
    assert runner.invoke(app, first).exit_code == 0
    (run / "metrics.json").unlink()
    again = runner.invoke(app, ["train", "ae64", "--resume", *args])
    assert again.exit_code == 0 and "has finished its 3 epochs: nothing left to train" in again.stderr
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["history"]  # as a checkpoint of an earlier aetool, a run's history in metrics.json alone
    state["epoch"] = 2
    torch.save(state, run / "checkpoint.pt")
    metrics = {"config": state["config"], "history": [{"epoch": 1, "test_mse": 0.1}]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    gap = runner.invoke(app, ["train", "ae64", "--resume", *args])
    assert gap.exit_code == 2 and gap.stderr.strip().splitlines()[-1] == (
        f"aetool: error: {run / 'metrics.json'} records epochs up to 1, the checkpoint epoch 2: the run's history "
        "cannot go on from it; start over with --force"
    )
    (run / "metrics.json").unlink()  # it said "metrics.json records no epoch" of a file not there
    gone = runner.invoke(app, ["train", "ae64", "--resume", *args])
    assert gone.exit_code == 2 and gone.stderr.strip().splitlines()[-1] == (
        f"aetool: error: {run / 'metrics.json'} is gone and {run / 'checkpoint.pt'} holds no history, the "
        "checkpoint epoch 2: the run's history cannot go on from it; start over with --force"
    )
    (run / "metrics.json").write_text('{"broken')  # its settings were taken for the defaults: MNIST downloaded
    damaged = runner.invoke(app, ["train", "ae64", "--resume", *args])
    assert damaged.exit_code == 2 and damaged.stderr.strip().splitlines()[-1].startswith(
        f"aetool: error: {run / 'metrics.json'} is not readable JSON"
    )


def test_training_into_a_log_file_shows_no_bar_and_prefixes_every_line(data_dir, tmp_path):
    """Into a file the bar's last state was a line of box characters and the epoch lines had no "aetool:"."""
    args = ["train", "ae64", "--epochs", "2", "--data-dir", str(data_dir), "--no-export", "--allow-trivial"]
    result = runner.invoke(app, [*args, "--limit", "600", "-o", str(tmp_path / "run")])  # stderr: not a terminal
    assert result.exit_code == 0 and "━" not in result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("aetool: ")] == []
    assert "aetool: epoch   2  train_mse" in result.stderr


def test_epoch_lines_on_a_terminal_keep_their_prefix_above_the_bar(data_dir, tmp_path):
    """On a terminal the bar's own console printed them, without ``aetool:``; a second console would have written
    them onto the bar's line. Now the bar and the messages share one console."""
    import pty

    main, terminal = pty.openpty()
    args = ["train", "ae64", "--epochs", "2", "--limit", "600", "--data-dir", str(data_dir), "--no-export"]
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", *args, "--allow-trivial", "-o", str(tmp_path / "run")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert process.wait(timeout=120) == 0
    lines = seen.decode().replace("\r", "\n").split("\n")
    epochs = [line.split("\x1b[2K")[-1] for line in lines if "epoch   " in line and "train_mse" in line]
    assert len(epochs) == 2 and all(line.startswith("aetool: epoch   ") for line in epochs), epochs


def test_a_copied_run_keeps_its_exports_which_follow_the_checkpoint_not_file_times(data_dir, tmp_path):
    """``cp -r`` gives new times in any order: a report over a copy of its runs exported them again and removed
    their variants, since model.onnx could now be older than checkpoint.pt."""
    import onnx

    from aetool.runtime import contract
    from aetool.train.run import RunFolder

    args = ["train", "ae64", "--epochs", "1", "--limit", "600", "--data-dir", str(data_dir), "--allow-trivial", "-q"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "run")]).exit_code == 0
    assert runner.invoke(app, [*args, "--seed", "1", "--no-export", "-o", str(tmp_path / "other")]).exit_code == 0
    copy = RunFolder(shutil.copytree(tmp_path / "run", tmp_path / "copy"))
    earlier = copy.checkpoint.stat().st_mtime - 60
    os.utime(copy.model_file, (earlier, earlier))
    assert copy.export_is_current()
    shutil.copy(tmp_path / "other" / "checkpoint.pt", copy.checkpoint)  # another run's weights
    later = copy.checkpoint.stat().st_mtime + 60
    os.utime(copy.model_file, (later, later))
    assert not copy.export_is_current()
    proto = onnx.load(copy.model_file)  # a file exported before the digest was recorded: judged by its time
    kept = [prop for prop in proto.metadata_props if prop.key != contract.CHECKPOINT_SHA256]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, copy.model_file)
    assert copy.export_is_current()
    earlier = copy.checkpoint.stat().st_mtime - 60
    os.utime(copy.model_file, (earlier, earlier))
    assert not copy.export_is_current()


def test_resuming_a_finished_exported_run_neither_trains_nor_exports_again(data_dir, tmp_path):
    """It showed a full progress bar with no time left, checked parity again and rewrote model.onnx."""
    run = tmp_path / "run"
    args = ["train", "ae64", "--epochs", "1", "--limit", "600", "--data-dir", str(data_dir), "--allow-trivial"]
    assert runner.invoke(app, [*args, "-q", "-o", str(run)]).exit_code == 0
    exported = (run / "model.onnx").stat().st_mtime_ns
    again = runner.invoke(app, [*args, "--resume", "-o", str(run)])
    assert again.exit_code == 0 and (run / "model.onnx").stat().st_mtime_ns == exported
    assert again.stderr.strip().splitlines()[-1] == (
        f"aetool: {run / 'model.onnx'} was exported from the run's last epoch: nothing to export"
    )
    assert "━" not in again.stderr and "parity" not in again.stderr


def trained_then_cut_back(run, data_dir, *, config=None, **state):
    """Train ae64 for 2 epochs into ``run``, then make it look stopped after its first (checkpoint and
    metrics.json), with ``config`` changed in both and ``state`` in the checkpoint; the checkpoint as trained."""
    import torch

    args = ["--epochs", "2", "--limit", "600", "--data-dir", str(data_dir), "-q", "--no-export", "--allow-trivial"]
    assert runner.invoke(app, ["train", "ae64", *args, "-o", str(run)]).exit_code == 0
    trained = torch.load(run / "checkpoint.pt", weights_only=True)
    cut = {**trained, "epoch": 1, "history": trained["history"][:1], **state}
    cut["config"] = {**trained["config"], **(config or {})}
    torch.save(cut, run / "checkpoint.pt")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["config"], metrics["history"] = {**metrics["config"], **(config or {})}, metrics["history"][:1]
    (run / "metrics.json").write_text(json.dumps(metrics))
    return trained


def test_a_run_trained_on_a_gpu_resumes_on_this_machines_device(data_dir, tmp_path):
    """--resume took the recorded --device cuda, and on a CPU machine said "--device cuda was asked for"."""
    run = tmp_path / "run"
    trained_then_cut_back(run, data_dir, config={"device": "cuda"})
    resumed = runner.invoke(app, ["train", "ae64", "--resume", "-q", "--no-export", "--allow-trivial", "-o", str(run)])
    assert resumed.exit_code == 0 and "after 2 epochs" in resumed.stderr, resumed.stderr


def test_resume_alone_keeps_a_runs_noise_range_and_a_noise_given_replaces_it(data_dir, tmp_path):
    """A range or mix is recorded as noise_mix, which no option of train is named after: --resume alone keeps it
    (the command line mapped it back to --noise to do so), and a --noise given stands for it."""
    run = tmp_path / "run"
    trained_then_cut_back(run, data_dir, config={"noise": 0.0, "noise_mix": "gaussian=0:0.3"})
    args = ["train", "ae64", "--resume", "-q", "--no-export", "--allow-trivial", "-o", str(run)]
    other = runner.invoke(app, [*args, "--noise", "0.2"])
    assert other.exit_code == 2 and "--noise gaussian=0:0.3 (now gaussian=0.2)" in other.stderr, other.stderr
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0 and "after 2 epochs" in resumed.stderr, resumed.stderr
    config = json.loads((run / "metrics.json").read_text())["config"]
    assert (config["noise"], config["noise_mix"]) == (0.0, "gaussian=0:0.3")


def test_a_run_resumed_by_another_number_of_ranks_says_what_differs(data_dir, tmp_path):
    """A 2-rank run resumed by one process (or the other way) went on without a word, though its noise is drawn per
    rank and its gradients summed in another order."""
    run = tmp_path / "run"
    trained = trained_then_cut_back(run, data_dir, ranks=2)  # as a 2-rank job stopped it
    assert trained["ranks"] == 1
    resumed = runner.invoke(app, ["train", "ae64", "--resume", "-q", "--no-export", "--allow-trivial", "-o", str(run)])
    assert resumed.exit_code == 0
    assert f"warning: {run} was trained by 2 torchrun ranks, resumed by 1 process: the batches" in resumed.stderr
