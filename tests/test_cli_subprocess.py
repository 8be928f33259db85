"""The CLI as users run it, ``python -m aetool`` in a fresh interpreter: pipes, exit codes, and no torch."""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from conftest import REPO, digit, read, run_aetool, run_torch_free, save


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height``: what a decompression bomb looks like to Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


@pytest.fixture
def env(toy_dir) -> dict:
    return {"AETOOL_MODEL_DIR": str(toy_dir)}


def test_denoise_one_file(tmp_path, env):
    save(tmp_path / "ring.png", digit())
    done = run_aetool("denoise", "ring.png", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(read(tmp_path / "ring.denoised.png"), digit())
    assert done.stderr.decode().startswith("aetool: 1 done, 0 failed in ")


def test_a_pipe_through_stdin_and_stdout(tmp_path, env):
    ring = save(tmp_path / "ring.png", 255 - digit()).read_bytes()
    done = run_aetool("denoise", "-", cwd=tmp_path, stdin=ring, env=env)
    assert done.returncode == 0 and np.array_equal(read(done.stdout), 255 - digit())


@pytest.mark.parametrize(
    "command", [["denoise", "-", "--json", "-o", "out/"], ["detect", "-", "-m", "denoise", "--json"]]
)
def test_a_pipe_that_stays_open_has_each_image_done_as_it_arrives(tmp_path, env, command):
    """A camera's frames (ffmpeg -f image2pipe) on a pipe that stays open: standard input was read to its end
    before any frame was done, so nothing came out of a live stream. Now the first frame is done once the second
    arrives, and a later one as soon as it is whole and the writer pauses."""
    import select

    frames = [save(tmp_path / f"{n}.png", np.roll(digit(), n, axis=1)).read_bytes() for n in range(3)]
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", *command],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        bufsize=0,  # a raw pipe: select sees every byte not yet read
    )

    def record() -> dict:
        assert select.select([process.stdout], [], [], 60)[0], "no record while the pipe is open"
        return json.loads(process.stdout.readline())

    try:
        process.stdin.write(frames[0] + frames[1])
        process.stdin.flush()
        assert [record()["path"], record()["path"]] == ["-:1", "-:2"]
        process.stdin.write(frames[2])
        process.stdin.flush()
        assert record()["path"] == "-:3"
        process.stdin.close()
        assert process.wait(timeout=60) == 0 and process.stdout.read() == b""
    finally:
        process.kill()
        process.wait()
    if command[0] == "denoise":
        assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [f"stdin-00000{n}.png" for n in (1, 2, 3)]


def test_one_output_file_for_a_pipe_that_stays_open_is_refused_at_its_second_image(tmp_path, env):
    """``-o out.png`` takes standard input's only image, so the stream was read to its end first: a camera's
    never ends, and the command waited without a word. Now a second image ends it, exit 2."""
    frame = save(tmp_path / "a.png", digit()).read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "denoise", "-", "-o", "out.png"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        process.stdin.write(frame * 3)
        process.stdin.flush()
        assert process.wait(timeout=60) == 2
        said = "-o out.png names one image file, but standard input holds more than one image; give a folder"
        assert process.stderr.read().decode() == f"aetool: error: {said}\n"
    finally:
        process.kill()
        process.wait()
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (b"plain text", 1, "aetool: error: in.png: not an image Pillow can read"),
        (b"", 1, "aetool: error: in.png: empty file"),
        (png_claiming(20_000, 20_000), 1, "aetool: error: in.png: refused as a possible decompression bomb"),
        (png_claiming(10_000, 10_000), 1, "aetool: error: in.png: refused as a possible decompression bomb"),
    ],
)
def test_bad_images_are_one_line_each(tmp_path, env, content, code, message):
    (tmp_path / "in.png").write_bytes(content)
    done = run_aetool("denoise", "in.png", cwd=tmp_path, env=env)
    assert done.returncode == code and done.stderr.decode().splitlines()[0].startswith(message)
    assert b"Traceback" not in done.stderr and not (tmp_path / "in.denoised.png").exists()


def test_max_megapixels_after_the_command_says_where_it_goes(tmp_path, env):
    done = run_aetool("denoise", "--max-megapixels", "120", "in.png", cwd=tmp_path, env=env)
    assert done.returncode == 2 and done.stderr.decode().splitlines() == [
        "aetool: error: No such option: --max-megapixels; it goes before the command: aetool --max-megapixels MP "
        "COMMAND …"
    ]


@pytest.mark.parametrize("columns", ["0", "-3", "abc"])
def test_a_terminal_width_that_is_not_one_is_ignored(tmp_path, env, columns):
    """With COLUMNS=0 rich wrote every message as nothing (a missing file: exit 1, no line) and --help as one
    empty line (trial 52)."""
    done = run_aetool("denoise", "missing.png", cwd=tmp_path, env={**env, "COLUMNS": columns})
    assert done.returncode == 1 and done.stderr.decode().startswith(
        "aetool: error: missing.png: no such file or folder"
    )
    helped = run_aetool("--help", cwd=tmp_path, env={**env, "COLUMNS": columns})
    assert helped.returncode == 0 and b"denoise" in helped.stdout and len(helped.stdout) > 1000


def test_bad_model_and_usage_exit_2(tmp_path, toy_dir, env):
    save(tmp_path / "ring.png", digit())
    done = run_aetool("denoise", "ring.png", "--model", str(toy_dir / "text.onnx"), cwd=tmp_path, env=env)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1 and b"Traceback" not in done.stderr
    assert run_aetool("denoise", "ring.png", "--no-such-option", cwd=tmp_path, env=env).returncode == 2
    assert run_aetool("denoise", cwd=tmp_path, env=env).returncode == 2


@pytest.mark.parametrize("real_model", ["denoise-dense", "denoise", "conv-unpool"], indirect=True)
def test_real_models_from_the_command_line(tmp_path, real_model):
    save(tmp_path / "a.png", digit())
    save(tmp_path / "b.png", 255 - np.kron(digit(), np.ones((2, 2), np.uint8)))
    done = run_aetool("reconstruct", ".", "-o", "out", "--model", str(real_model), "--json", "--resize", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert read(tmp_path / "out" / "b.png").shape == (56, 56)
    dense = real_model.name == "denoise-dense.onnx"
    assert [json.loads(line)["resized"] for line in done.stdout.splitlines()] == [False, dense]


def test_help_and_denoise_never_import_torch(tmp_path, env):
    save(tmp_path / "ring.png", digit())
    ring, out = str(tmp_path / "ring.png"), str(tmp_path / "out.png")
    done = run_torch_free([["--help"], ["denoise", ring, "-o", out], ["info", "denoise"], ["models"]], env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().endswith("torch-free") and (tmp_path / "out.png").is_file()


def test_train_with_a_missing_data_folder_is_refused_before_torch_loads(tmp_path, env):
    """A mistyped --data or --val-data path was said after PyTorch loaded, 5-14 s later (trial 85)."""
    missing, val = str(tmp_path / "nosuch"), ["--val-data", str(tmp_path / "other")]
    done = run_torch_free(
        [["train", "deep", "--data", missing], ["train", "deep", "--data", str(tmp_path), *val]], env=env, exit_code=2
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().endswith("torch-free")
    said = done.stderr.decode().splitlines()
    assert said == [
        f"aetool: error: --data {missing}: no such file or folder",
        f"aetool: error: --val-data {val[1]}: no such file or folder",
    ]


def test_export_calibrate_and_a_missing_data_dir_are_refused_before_torch_loads(tmp_path, env):
    """calibrate's --fpr/--quantile/--score and a missing run, export's missing run, and a mistyped --data-dir of
    train and report were said after PyTorch loaded, 5-12 s later; report first said it was fitting PCA (trial 102)."""
    run, nope = str(tmp_path / "nosuchrun"), str(tmp_path / "nope")
    report = ["report", "--data-dir", nope, "-o", str(tmp_path / "report"), "--runs", str(tmp_path / "runs")]
    commands = [
        ["calibrate", run],
        ["calibrate", run, "--fpr", "1.5"],
        ["calibrate", run, "--fpr", "0.1", "--quantile", "0.5"],
        ["calibrate", run, "--score", "foo"],
        ["export", f"{run}/checkpoint.pt"],
        ["train", "deep", "--data-dir", nope, "-o", str(tmp_path / "r")],
        report,
        ["export", str(tmp_path / "empty")],  # a folder without a checkpoint, a file, missing calibration data:
        ["export", str(tmp_path / "afile")],  # said after PyTorch loaded too (trial 103)
        ["calibrate", str(tmp_path / "fake"), "--data", nope],
        ["calibrate", str(tmp_path / "fake"), "--data-dir", nope],
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "checkpoint.pt").write_bytes(b"")
    done = run_torch_free(commands, env=env, exit_code=2)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().endswith("torch-free")
    missing = (
        f"aetool: error: data folder {nope} does not exist; expected the four IDX files train-images-idx3-ubyte.gz"
    )
    said = done.stderr.decode().splitlines()
    assert said[:4] == [
        f"aetool: error: no checkpoint at {run}/checkpoint.pt",
        "aetool: error: --fpr and --quantile are fractions between 0 and 1, got 1.5",
        "aetool: error: --fpr and --quantile both set the threshold: give one",
        "aetool: error: a score is one or more of mse, ssim, smax, wmse joined by + (each once), got 'foo'",
    ]
    assert said[4] == f"aetool: error: no checkpoint at {run}/checkpoint.pt"
    assert said[5].startswith(missing) and said[6].startswith(missing) and said[10].startswith(missing)
    assert said[7:10] == [
        f"aetool: error: no checkpoint at {tmp_path / 'empty' / 'checkpoint.pt'}",
        f"aetool: error: cannot use {tmp_path / 'afile'} as a run folder: it is a file",
        f"aetool: error: --data {nope}: no such file or folder",
    ]
    assert len(said) == 11


CHECK_AND_WEB = textwrap.dedent("""
    import sys
    from aetool.cli import main
    for argv in (["check", "conv-unpool"], ["web", "-o", sys.argv[1], "--ort-web", sys.argv[2]]):
        sys.argv = ["aetool", *argv]
        try:
            main()
        except SystemExit as done:
            assert done.code in (0, None), (argv, done.code)
    assert "torch" not in sys.modules  # check may import onnx (its reference evaluator), never torch
    print("torch-free")
""")


def test_check_and_web_never_import_torch(tmp_path):
    ort_web = tmp_path / "ort"
    ort_web.mkdir()
    for name in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        (ort_web / name).write_bytes(b"\0asm" if name.endswith(".wasm") else b"")  # a module's first bytes
    done = subprocess.run(
        [sys.executable, "-c", CHECK_AND_WEB, str(tmp_path / "site"), str(ort_web)], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().endswith("torch-free") and (tmp_path / "site" / "index.html").is_file()


def test_the_runtime_imports_only_onnxruntime_numpy_pillow():
    code = (
        "import sys, pkgutil, importlib, aetool.runtime as r\n"
        "for m in pkgutil.iter_modules(r.__path__): importlib.import_module('aetool.runtime.' + m.name)\n"
        "import onnxruntime, PIL.Image\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'onnx', 'onnxscript', 'typer') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[]"


def test_json_records_stream_while_the_batch_runs(tmp_path, env):
    for i in range(200):  # more than three pipeline chunks
        save(tmp_path / "digits" / f"{i:03d}.png", digit())
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "denoise", "digits", "-o", "out", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    first = process.stdout.readline()
    unfinished = sum(1 for _ in (tmp_path / "out").iterdir()) < 200  # the first record came before the last file
    rest = process.stdout.read()  # not communicate(): it would skip what readline() already buffered
    process.wait(timeout=120)
    assert process.returncode == 0 and first.startswith(b'{"path": "digits/000.png"')
    assert unfinished and len(rest.splitlines()) == 199


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--level", "-1"), "got -1.0"),
        (("--noise", "-1"), "got -1.0"),
        (("--noise", "nan"), "got nan"),  # was "Input should be greater than or equal to 0"
        (("--noise", "1e308"), "must be at most 3.403e+38, float32's largest number; got 1e+308"),  # numpy warned
    ],
)
def test_a_noise_level_that_means_nothing_is_one_line_saying_why(tmp_path, env, args, said):
    done = run_aetool("add-noise", "in.png", *args, cwd=tmp_path, env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("aetool: error: --noise: noise level ")
    assert lines[0].endswith(said), lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("denoise", "in.png", "--threads", "0"), "aetool: error: Invalid value for '--threads'"),
        (("evaluate", "--limit", "0"), "aetool: error: Invalid value for '--limit'"),
        # Python's locks wait at most threading.TIMEOUT_MAX s: 1e10 overflowed (a traceback), 1e300 aborted (134)
        (("denoise", "in.png", "--timeout", "inf"), "aetool: error: Invalid value for '--timeout'"),
        (("denoise", "in.png", "--timeout", "1e300"), "aetool: error: Invalid value for '--timeout'"),
        (("detect", "in.png", "-m", "m.onnx", "--timeout", "nan"), "aetool: error: Invalid value for '--timeout'"),
        (("bench", "conv-unpool", "--timeout", "1e10"), "aetool: error: Invalid value for '--timeout'"),
        (("denoise",), "aetool: error: Missing argument 'IMAGES'"),
        (("reconstruct", "in.png", "--bogus"), "aetool: error: No such option: --bogus"),
    ],
)
def test_a_usage_error_is_one_line_exit_2(tmp_path, env, args, message):
    done = run_aetool(*args, cwd=tmp_path, env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(message), lines
    assert "--help" in lines[0]


def test_no_arguments_show_the_help(tmp_path, env):
    done = run_aetool(cwd=tmp_path, env=env)
    shown = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 2 and "Usage:" in shown and "--help" in shown and "Traceback" not in shown


def run_closing(
    *args: str, closed: tuple[int, ...] = (), stdout=subprocess.PIPE, **where
) -> subprocess.CompletedProcess:
    """``python -m aetool ARGS`` with the file descriptors ``closed`` shut, as ``<&-`` and ``2>&-`` leave them, and
    standard output to ``stdout``."""
    return subprocess.run(
        [sys.executable, "-m", "aetool", *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: [os.close(fd) for fd in closed],
        timeout=300,
        **where,
    )


def test_a_closed_standard_input_for_dash_is_one_line_exit_2(tmp_path, env):
    done = run_closing("denoise", "-", closed=(0,), cwd=tmp_path, env={**os.environ, **env})
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert (
        done.stderr.decode()
        == "aetool: error: - reads standard input, which is closed (<&-); give a file, or pipe the image in\n"
    )


def test_a_closed_standard_error_leaves_other_runtimes_loading_files(tmp_path):
    """OpenCV cannot load a model with file descriptor 2 closed (its log capture needs it): check marked it ✗,
    and every export refused its portable graph."""
    from aetool.runtime.registry import BUNDLED_DIR

    done = run_closing("check", str(BUNDLED_DIR / "deep.onnx"), closed=(2,), cwd=tmp_path)
    assert done.returncode == 0, done.stdout.decode()
    assert "✓ onnxruntime" in done.stdout.decode() and "✗" not in done.stdout.decode()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["denoise", "--help"]])
def test_help_to_a_full_device_is_one_line_exit_1(tmp_path, args):
    with open("/dev/full", "wb") as full:
        done = run_closing(*args, stdout=full, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode() == "aetool: error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [["models"], ["info", "denoise"], ["detect", "ring.png", "-m", "denoise"]])
def test_results_for_a_closed_standard_output_are_refused_not_lost(tmp_path, env, args):
    """Python has no stream for a standard output closed from the start (>&-): every line vanished, exit 0."""
    save(tmp_path / "ring.png", digit())
    done = run_closing(*args, closed=(1,), cwd=tmp_path, env={**os.environ, **env})
    assert done.returncode == 2
    assert (
        done.stderr.decode() == "aetool: error: standard output is closed (>&-), and this command's results go there\n"
    )


@pytest.mark.parametrize(("args", "what"), [([], "the help"), (["--help"], "--help"), (["--version"], "--version")])
def test_help_for_a_closed_standard_output_is_refused_not_lost(tmp_path, args, what):
    """Click printed the help into nothing and exited 0 (plain `aetool`: 2, with an empty line)."""
    done = run_closing(*args, closed=(1,), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode() == f"aetool: error: standard output is closed (>&-), and {what} writes there\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [["models"], ["info", "denoise"], ["detect", "ring.png", "-m", "denoise"]])
def test_results_to_a_full_device_are_one_line_naming_standard_output(tmp_path, env, args):
    """The line said only "No space left on device", exit 2, naming no file."""
    save(tmp_path / "ring.png", digit())
    with open("/dev/full", "wb") as full:
        done = run_closing(*args, stdout=full, cwd=tmp_path, env={**os.environ, **env})
    assert done.returncode == 1
    assert (
        done.stderr.decode().splitlines()[0]
        == "aetool: error: cannot write to standard output: No space left on device"
    )


def test_a_current_folder_that_was_removed_is_one_line_exit_2(tmp_path, env):
    """train and export died in PyTorch's MKL ("Intel oneMKL FATAL ERROR: Cannot load … libtorch_cpu.so")."""
    gone = tmp_path / "gone"
    gone.mkdir()

    def enter_and_remove() -> None:
        os.chdir(gone)
        gone.rmdir()

    done = subprocess.run(
        [sys.executable, "-m", "aetool", "models"],
        capture_output=True,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        preexec_fn=enter_and_remove,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.decode() == "aetool: error: the current folder has been removed; cd to a folder that exists\n"


AT_EXIT = """
import atexit, os, signal, sys, time
stop = getattr(signal, sys.argv[1])
def late():  # as PyTorch's callbacks after an export, with a Ctrl-C while they run
    os.kill(os.getpid(), stop)
    time.sleep(2)
    print("went on")
atexit.register(late)
from aetool.cli import main
sys.argv = ["aetool", "models"]
main()
"""


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_the_interpreter_shuts_down_says_so_and_ends_by_the_signal(tmp_path, env, stop):
    """One in the last instant of an export printed "Exception ignored in atexit callback … KeyboardInterrupt", exit
    0; then it ended by the signal without a word after "wrote …", though the files were whole (trial 86)."""
    done = subprocess.run(
        [sys.executable, "-c", AT_EXIT, stop], capture_output=True, cwd=tmp_path, env={**os.environ, **env}, timeout=120
    )
    assert done.returncode == -getattr(signal, stop) and "went on" not in done.stdout.decode(), done.stderr.decode()
    assert done.stderr.decode().endswith(
        "aetool: interrupted while exiting; the command had ended (exit 0), its files are whole\n"
    )


WITH_TORCH = """
import sys
import torch
class Teardown:
    def __del__(self):
        print("torn down", flush=True)
kept = Teardown()
from aetool.cli import main
sys.argv = ["aetool", "models"]
main()
"""


def test_a_command_that_imported_pytorch_ends_without_the_interpreters_teardown(tmp_path, env):
    """The teardown took 2.7 s after an export's last line, and a Ctrl-C in it ended the command by the signal with
    no word (trial 86): the process ends once the atexit callbacks ran, its output flushed."""
    pytest.importorskip("torch", reason="needs the train extra")
    done = subprocess.run(
        [sys.executable, "-c", WITH_TORCH], capture_output=True, cwd=tmp_path, env={**os.environ, **env}, timeout=120
    )
    assert done.returncode == 0 and "denoise" in done.stdout.decode(), done.stderr.decode()
    assert "torn down" not in done.stdout.decode()  # an object the teardown would have collected


BROKEN_BY_A_SIGNAL = """
import sys
from aetool import cli

@cli.app.command("half-loaded")
def half_loaded():
    try:
        raise KeyboardInterrupt  # the signal, in the middle of an import
    except KeyboardInterrupt:
        raise RecursionError("maximum recursion depth exceeded")  # what the half-loaded module then did

sys.modules["aetool.runtime.files"] = None  # and its importers fail: "cannot load module more than once"
sys.argv = ["aetool", "half-loaded"]
cli.main()
"""


def test_a_stop_signal_that_breaks_an_import_is_one_line_and_130(tmp_path, env):
    """Ctrl-C or SIGTERM during the first numpy import: a 60-line RecursionError from onnx's import of it, and the
    "interrupted" line itself failed importing numpy again, a traceback with exit 1 (trial 52)."""
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_BY_A_SIGNAL],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=120,
    )
    assert done.returncode == 130 and done.stderr.decode() == "aetool: error: interrupted\n", done.stderr.decode()


FORKED = """
import os, signal, sys
from aetool import cli
from aetool.cli import process
sys.argv = ["aetool", "models"]
try:
    cli.main()
except SystemExit:
    pass
child = os.fork()
if child == 0:
    os._exit(0 if all(signal.getsignal(n) is signal.SIG_DFL for n in (signal.SIGTERM, signal.SIGHUP)) else 1)
print(  # the parent keeps its handlers: once the command is over, those that say so (_stopped_while_exiting)
    os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]),
    all(signal.getsignal(n).func is process._stopped_while_exiting for n in (signal.SIGTERM, signal.SIGHUP)),
)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_a_process_forked_from_the_cli_is_killed_by_sigterm_and_sighup_again(tmp_path, env):
    """A library's forked helper inherited the CLI's Python SIGTERM handler (and SIGHUP's), which a child stuck in C never runs:
    OpenVINO's terminate() could not end its telemetry fork, and the command waited ten minutes at exit (trial 37)."""
    done = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, cwd=tmp_path, env={**os.environ, **env}, timeout=120
    )
    assert done.returncode == 0 and done.stdout.decode().splitlines()[-1] == "0 True", done.stderr.decode()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_batch_whose_messages_cannot_be_written_is_still_done(tmp_path, env):
    """Standard error on a full device: the first message stopped the batch (exit 1 after some of the images)."""
    for i in range(100):  # more than a chunk of images read at once (it stopped at the second)
        save(tmp_path / "in" / f"{i:03d}.png", digit())
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "aetool", "denoise", "missing.png", "in", "-o", "out"],
            stdout=subprocess.PIPE,
            stderr=full,
            cwd=tmp_path,
            env={**os.environ, **env},
            timeout=120,
        )
    assert done.returncode == 1 and len(list((tmp_path / "out").iterdir())) == 100


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "ascii"])
def test_output_in_an_encoding_without_every_character_is_escaped_not_a_traceback(encoding):
    """A Latin-1 locale, or Windows' cp1252 into a pipe: ✓ and σ have no byte there."""
    shown = run_aetool("info", "deep", env={"PYTHONIOENCODING": encoding})
    assert shown.returncode == 0 and b"Traceback" not in shown.stderr, shown.stderr
    assert b"parity   \\u2713 passed" in shown.stdout


def test_a_glob_the_shell_expanded_for_an_option_is_said_to_need_quotes(tmp_path):
    """``--data photos/*.png`` unquoted gave "Got unexpected extra argument(s) (…16 paths…)" and no more."""
    for name in ("a.png", "b.png", "c.png"):
        save(tmp_path / name, digit())
    done = run_aetool("train", "dncnn", "--data", "a.png", "b.png", "c.png", cwd=tmp_path)
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1
    assert lines[0].endswith(
        "; a glob for an option (--data 'photos/*.jpg') must be quoted, or the shell gives its files"
    )
    for number in range(100):
        save(tmp_path / "big" / f"{number:03d}.png", digit())
    many = sorted(str(path.relative_to(tmp_path)) for path in (tmp_path / "big").iterdir())
    done = run_aetool("train", "dncnn", "--data", *many, cwd=tmp_path)  # the line listed every file (trial 86)
    said = done.stderr.decode()
    assert "(big/001.png big/002.png big/003.png … and 96 more) (see aetool train --help); a glob" in said
    assert len(said) < 300 and said.count("\n") == 1
    other = run_aetool("models", "extra", cwd=tmp_path)  # not a file: no such hint
    assert other.returncode == 2 and b"quoted" not in other.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes are a POSIX file system's")
def test_results_print_a_file_names_bytes_as_they_are_in_an_ascii_locale_as_messages_do(tmp_path):
    """Under LC_ALL=C results printed a name's bytes as ``?`` (Click's echo) while messages printed the bytes."""
    from aetool.runtime.registry import BUNDLED_DIR

    names = ["m\u00e9 \u03c3.onnx".encode(), b"b\xe9.onnx"]  # one in UTF-8, one not
    for name in names:
        shutil.copy(BUNDLED_DIR / "deep.onnx", os.path.join(bytes(tmp_path), name))
    for name in names:
        shown = run_aetool("info", os.fsdecode(name), cwd=tmp_path, env={"LC_ALL": "C", "PYTHONUTF8": "0"})
        assert shown.returncode == 0 and shown.stdout.startswith(name + b"  "), shown.stdout[:60]
        missing = run_aetool("info", os.fsdecode(b"gone-" + name), cwd=tmp_path, env={"LC_ALL": "C", "PYTHONUTF8": "0"})
        assert b"gone-" + name in missing.stderr


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_or_sighup_stops_a_batch_as_ctrl_c_does_with_exit_128_plus_its_number(tmp_path, env, name, code):
    """docker stop, Kubernetes and a CI cancel send SIGTERM, a closed terminal or SSH session SIGHUP: what was
    written is reported, nothing half-written (SIGHUP killed the process: a temporary left, files without records)."""
    import signal
    import time

    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")

    for index in range(3000):
        save(tmp_path / "in" / f"{index:04d}.png", digit())
    process = subprocess.Popen(
        [sys.executable, "-m", "aetool", "denoise", "in", "-o", "out", "--json"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "out").is_dir() or len(os.listdir(tmp_path / "out")) < 20:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(getattr(signal, name))
    stdout, stderr = process.communicate(timeout=60)
    written = sorted(os.listdir(tmp_path / "out"))
    assert process.returncode == code, stderr
    assert stderr.decode().splitlines()[-1].startswith("aetool: error: interrupted after "), stderr
    assert all(name.endswith(".png") and not name.startswith(".") for name in written)  # no temporary left
    assert 20 <= len(written) < 3000 and len(stdout.decode().splitlines()) == len(written)  # a record per file


TYPO_BEFORE_TORCH = textwrap.dedent("""
    import sys
    from aetool.cli import main

    sys.argv = ["aetool", *sys.argv[1:]]
    try:
        main()
    except SystemExit as stop:
        print(stop.code, "torch" in sys.modules)
""")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("train", "nosuch"), "aetool: error: unknown model 'nosuch'; known models: pca, deep,"),
        (("train", "deep", "--epochs", "0"), "aetool: error: Invalid value for '--epochs'"),
        (("train", "deep", "--limit", "0"), "aetool: error: Invalid value for '--limit'"),
        (("train", "deep", "--seed", "4294967296"), "aetool: error: Invalid value for '--seed'"),
        (("train", "deep", "--dataset", "mnst"), "aetool: error: Invalid value for '--dataset'"),
        (("train", "deep", "--loss", "mae"), "aetool: error: Invalid value for '--loss'"),
        (("train", "deep", "--noise", "abc"), "aetool: error: --noise: "),
        (("train", "deep", "--noise", "1.5", "--noise-kind", "mask"), "aetool: error: --noise: the mask noise level"),
        (("train", "deep", "--size", "2²x3"), "aetool: error: --size takes HxW"),
        (("train", "deep", "--lr", "-1"), "aetool: error: --lr must be a positive number, got -1.0"),
        (("train", "deep", "--lr", "nan"), "aetool: error: --lr must be a positive number, got nan"),
        (("train", "deep", "--l1", "-1"), "aetool: error: --l1 must be 0 or more"),
        (("train", "deep", "--channels", "2"), "aetool: error: --channels must be 1 (grey) or 3 (colour)"),
        (("train", "deep", "--device", "tpu"), "aetool: error: unknown device 'tpu'"),
        (("train", "anomaly", "--classes", "3,3"), "aetool: error: --classes takes labels separated by commas"),
        (("train", "anomaly", "--classes", "x"), "aetool: error: --classes of mnist are its labels 0 to 9"),
        (("train", "deep", "--val", "0.2"), "aetool: error: --val holds out images given with --data"),
        (
            ("train", "deep", "--data", ".", "--val", "2"),
            "aetool: error: --val must be a fraction strictly between 0 and 1",
        ),
        (("train", "deep", "--val-data", "."), "aetool: error: --val-data goes with images given with --data"),
        (("train", "deep", "--data", ".", "--data-dir", "."), "aetool: error: --data (images) and --data-dir"),
        (("train", "deep", "--data", ".", "--dataset", "mnist"), "aetool: error: --data is a folder of images"),
        (("train", "deep", "--dataset", "images"), "aetool: error: --dataset images needs --data"),
        (("train", "deep", "--device", ""), "aetool: error: unknown device ''"),  # a traceback after training began
        (("train", "deep", "--device", "cuda:x"), "aetool: error: unknown device 'cuda:x'"),
        (("train", "deep", "--size", "99999x99999"), "aetool: error: --size 99999x99999 is over 16,777,216 pixels"),
    ],
)
def test_train_refuses_a_typo_before_loading_torch(tmp_path, args, said):
    """They took 6–9 s: PyTorch was imported before the model name or the option was checked (options after the
    name alone, and then those that go together, until the twenty-second session)."""
    pytest.importorskip("torch", reason="train needs the train extra")
    done = subprocess.run(
        [sys.executable, "-c", TYPO_BEFORE_TORCH, *args], capture_output=True, cwd=tmp_path, timeout=120
    )
    assert done.stdout.decode().split() == ["2", "False"] and done.stderr.decode().startswith(said)


def test_dash_on_a_terminal_is_refused_not_waited_on(tmp_path, env):
    """``denoise -`` typed at a terminal waited for image bytes, with no word."""
    main, terminal = pty.openpty()
    try:
        for command in (["denoise", "-", "-o", "out.png"], ["detect", "-", "-m", "deep"]):
            done = subprocess.run(
                [sys.executable, "-m", "aetool", *command],
                stdin=terminal,
                capture_output=True,
                cwd=tmp_path,
                env={**os.environ, **env},
                timeout=60,
            )
            assert done.returncode == 2 and done.stderr.decode() == (
                "aetool: error: - reads image data from standard input, which is a terminal; give a file, or pipe "
                "the image in\n"
            )
    finally:
        os.close(main)
        os.close(terminal)


def test_shell_completion_from_python_dash_m_binds_to_aetool_alone():
    """Under ``python -m aetool`` the script bound completion to ``python`` and ``-m`` too."""
    done = run_aetool("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    script = done.stdout.decode()
    assert done.returncode == 0 and "_AETOOL_COMPLETE=complete_bash" in script
    assert script.strip().splitlines()[-1] == "complete -o default -F _aetool_completion aetool"


def test_shell_completion_that_cannot_be_installed_names_the_file_not_standard_output(tmp_path):
    (tmp_path / "home").write_text("a file where the home folder should be")
    # Typer's own switch to take the shell named, not the one it detects from the parent processes (none in a
    # job started without a shell: "Shell None is not supported")
    env = {"HOME": str(tmp_path / "home"), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = run_aetool("--install-completion", "bash", env=env)
    assert done.returncode == 1 and done.stderr.decode().startswith("aetool: error: ")
    assert str(tmp_path / "home") in done.stderr.decode() and b"standard output" not in done.stderr


NO_MEMORY = textwrap.dedent("""
    import sys
    import aetool.runtime.describe
    import aetool.runtime.files
    from aetool.cli import main

    def no_memory(*args, **kwargs):  # what a library raises when it cannot load, or start a thread, under a memory limit
        raise {kind}({words!r})

    if {without_rich}:  # under a tighter limit rich cannot load either, and the error line is printed without it
        sys.modules["rich"] = None
    aetool.runtime.describe.bundled_models = no_memory
    aetool.runtime.files.collect = no_memory
    sys.argv = ["aetool", *{argv!r}]
    main()
""")


@pytest.mark.parametrize(
    ("kind", "words", "without_rich"),
    [
        ("ImportError", "Exception caught: std::bad_alloc", False),  # onnxruntime's C extension
        ("ImportError", "libopenjp2.so.2.5.4: failed to map segment from shared object", False),  # Pillow's, lazily
        ("RuntimeError", "can't start new thread", False),  # Python's threads
        ("ImportError", "Exception caught: std::bad_alloc", True),
    ],
)
@pytest.mark.parametrize(
    ("argv", "advice"),
    [
        (["models"], "raise the memory limit"),  # it takes no --threads, which the line named all the same
        (["--max-megapixels", "5", "denoise", "x.png"], "raise the memory limit, or use fewer --threads"),
    ],
)
def test_a_library_that_cannot_load_for_memory_is_one_line_not_a_traceback(kind, words, without_rich, argv, advice):
    script = NO_MEMORY.format(kind=kind, words=words, without_rich=without_rich, argv=argv)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 2 and done.stderr.decode().splitlines() == [
        f"aetool: error: not enough memory ({words}); {advice}"
    ]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the message comes from PyTorch's OpenMP runtime")
def test_an_omp_num_threads_that_is_no_number_is_ignored_with_one_warning(tmp_path):
    done = run_aetool("train", "ae64", "--data-dir", str(tmp_path / "nope"), env={"OMP_NUM_THREADS": "0"})
    lines = done.stderr.decode().strip().splitlines()
    assert lines[0] == "aetool: warning: OMP_NUM_THREADS='0' is not a number of threads; ignored"
    assert done.returncode == 2 and len(lines) == 2 and "libgomp" not in done.stderr.decode()


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("aetool denoise -m d", ["denoise"]),  # the toy folder's bundled names
        ("aetool detect x.png -m ", ["denoise", "conv-unpool", "my.onnx", "sub/"]),
        ("aetool info -m s", ["sub/"]),
        ("aetool check c", ["conv-unpool"]),
        ("aetool train conv-unpool-", ["conv-unpool-deconv"]),
    ],
)
def test_shell_completion_offers_models(tmp_path, env, words, offered):
    """``aetool --install-completion`` completed no model name: -m takes the bundled names, folders and .onnx
    files (not other files), train's MODEL the registry's names."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "my.onnx").touch()
    (tmp_path / "notes.txt").touch()
    done = subprocess.run(
        [sys.executable, "-m", "aetool"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        env={
            **os.environ,
            **env,
            "_AETOOL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (not words.endswith(" "))),
        },
    )
    assert done.returncode == 0 and done.stdout.decode().split() == offered, done.stderr


@pytest.mark.parametrize("command", ["denoise", "train", "detect"])
def test_help_in_a_narrow_terminal_names_every_option(tmp_path, command):
    """Under 80 columns rich's tables cut option names (--side-by-side, --batch-size, --threshold were split or
    gone at 60; trial 71): help is plain text there, as Click lays it out."""

    def named(columns: int) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-m", "aetool", command, "--help"],
            capture_output=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": str(columns)},
        )
        assert done.returncode == 0
        return set(re.findall(r"--[a-z][a-z0-9-]+", done.stdout.decode()))

    wide = named(200)
    assert len(wide) > 5 and named(60) == wide
