"""The CLI in-process (typer.testing.CliRunner): each command, each bad input, exit codes and messages."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import colour_metadata, digit, node, onnx_bytes, read, save, toy_metadata
from PIL import Image

from aetool import __version__
from aetool.cli.options import Dataset, Loss, NoiseKind, Target
from aetool.cli.training import MODEL_NAMES
from aetool.runtime import contract
from aetool.runtime.noise import NOISE_KINDS, add_noise
from aetool.runtime.stream import split_images


@pytest.fixture
def ring(tmp_path) -> Path:
    return save(tmp_path / "ring.png", digit())


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_version_and_help(cli):
    assert cli("--version").stdout.strip() == f"aetool {__version__}"
    help_text = cli("--help").stdout
    for command in ("denoise", "reconstruct", "add-noise", "evaluate", "models", "info"):
        assert command in help_text
    assert "Exit codes: 0 success, 1 some inputs failed, 2 usage or setup error" in " ".join(help_text.split())
    assert cli("-h").stdout == help_text and cli("denoise", "-h").stdout == cli("denoise", "--help").stdout  # trial 71


def test_denoise_writes_beside_the_input_with_the_bundled_model(cli, ring):
    result = cli("denoise", "ring.png")
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(read(ring.with_name("ring.denoised.png")), digit())
    assert "1 done, 0 failed" in result.stderr and result.stdout == ""


def test_reconstruct_with_a_model_file_and_an_output_file(cli, ring, toy_dir):
    result = cli("reconstruct", "ring.png", "--model", str(toy_dir / "conv.onnx"), "-o", "out/x.jpg")
    assert result.exit_code == 0
    with Image.open("out/x.jpg") as image:
        assert image.format == "JPEG" and image.mode == "L"


def test_a_folder_to_a_folder_with_json_records(cli, tmp_path):
    for i in range(6):
        save(tmp_path / "digits" / f"{i}.png", digit())
    save(tmp_path / "digits" / "deeper" / "x.png", digit())
    result = cli("reconstruct", "digits", "-o", "out", "-m", "conv-unpool", "--json")
    assert result.exit_code == 0
    lines = records(result)
    assert len(lines) == 6 and sorted(p.name for p in Path("out").iterdir()) == [f"{i}.png" for i in range(6)]
    assert set(lines[0]) == {
        "path",
        "output",
        "size",
        "input_size",
        "fitted_size",
        "ms",
        "resized",
        "inverted",
        "converted",
        "notes",
        "mse",
        "psnr",
        "error",
        "model",
        "model_sha256",
    }
    digest = hashlib.sha256((Path(os.environ["AETOOL_MODEL_DIR"]) / "conv.onnx").read_bytes()).hexdigest()
    assert all(line["model"] == "conv-unpool" and line["model_sha256"] == digest for line in lines)  # was unnamed
    assert lines[0]["size"] == [28, 28] and lines[0]["error"] is None
    assert lines[0]["mse"] == 0 and lines[0]["psnr"] is None  # an identity model: infinite PSNR is null in JSON
    assert lines[0]["converted"] is None and lines[0]["notes"] == [] and lines[0]["fitted_size"] is None
    result = cli("reconstruct", "digits", "-r", "-o", "out", "-m", "conv-unpool")
    assert Path("out/deeper/x.png").is_file() and "7 done, 0 failed" in result.stderr


def test_an_output_folder_inside_the_scanned_folder_is_not_scanned_again(cli, tmp_path):
    """Run twice, `denoise fb/ -r -o fb/out/` took the first run's outputs as inputs (into fb/out/out/) and
    refused the originals as overwriting them (trial 20)."""
    for name in ("a.png", "sub/b.png"):
        save(tmp_path / "fb" / name, digit())
    for _ in range(2):
        result = cli("denoise", "fb", "-r", "-o", "fb/out", "--json")
        assert result.exit_code == 0 and "2 done, 0 failed" in result.stderr, result.stderr
        assert sorted(json.loads(line)["path"] for line in result.stdout.splitlines()) == ["fb/a.png", "fb/sub/b.png"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "fb").rglob("*.png")) == [
        "fb/a.png",
        "fb/out/a.png",
        "fb/out/sub/b.png",
        "fb/sub/b.png",
    ]
    named = cli("denoise", "fb/out/a.png", "-o", "fb/out/again")  # a file named is taken as it is
    assert named.exit_code == 0 and (tmp_path / "fb/out/again/a.png").is_file()


def test_stdin_to_stdout(cli, ring):
    result = cli("denoise", "-", "--format", "bmp", stdin=ring.read_bytes())
    assert result.exit_code == 0 and result.stdout_bytes[:2] == b"BM"
    assert np.array_equal(read(result.stdout_bytes), digit())


def test_a_stream_of_images_on_stdin_is_done_image_by_image(cli, tmp_path):
    """``ffmpeg -f image2pipe`` frames piped in: only the first was read, the rest dropped with exit 0 (trial 60).
    A frame of another size in the middle still comes out in its place."""
    rng = np.random.default_rng(5)
    frames = [(rng.random(shape) * 255).astype(np.uint8) for shape in ((24, 32), (24, 32), (40, 16), (24, 32))]
    stream = b"".join(save(tmp_path / f"f{number}.png", frame).read_bytes() for number, frame in enumerate(frames))
    piped = cli("denoise", "-", "-m", "conv-unpool", "--no-invert", "-o", "-", stdin=stream)
    assert piped.exit_code == 0 and "4 done, 0 failed" in piped.stderr
    outputs = split_images(piped.stdout_bytes)
    assert len(outputs) == 4 and all(
        np.array_equal(read(out), frame) for out, frame in zip(outputs, frames, strict=True)
    )
    cut = stream + (tmp_path / "f0.png").read_bytes()[:90]  # a last frame cut short: it fails, the others are done
    folder = cli("denoise", "-", "-m", "conv-unpool", "--no-invert", "-o", "frames/", stdin=cut)
    assert folder.exit_code == 1 and "aetool: error: -:5: truncated or corrupt image" in folder.stderr
    assert sorted(p.name for p in Path("frames").iterdir()) == [f"stdin-00000{n}.png" for n in range(1, 5)]
    assert np.array_equal(read(Path("frames/stdin-000003.png")), frames[2])
    first, second = (tmp_path / "f0.png").read_bytes(), (tmp_path / "f1.png").read_bytes()
    gap = cli("denoise", "-", "-m", "conv-unpool", "--no-invert", "-o", "gap/", stdin=first + b"\n" + second)
    at = len(first)  # a newline between two frames: it fails, named by where it lies, and the frames keep 1, 2
    assert gap.exit_code == 1 and f"aetool: error: -:byte {at}: not an image Pillow can read" in gap.stderr
    assert sorted(p.name for p in Path("gap").iterdir()) == ["stdin-000001.png", "stdin-000002.png"]  # was 1, 3
    crlf = cli(
        "denoise", "-", "-m", "conv-unpool", "--no-invert", "--json", "-o", "crlf/", stdin=first + b"\r\n" + second
    )
    assert [json.loads(line)["path"] for line in crlf.stdout.splitlines()] == ["-:1", f"-:bytes {at}-{at + 1}", "-:2"]
    one_file = cli("denoise", "-", "-o", "out.png", stdin=stream)
    assert one_file.exit_code == 2 and "standard input holds more than one image; give a folder" in one_file.stderr
    with_junk = cli("denoise", "-", "-o", "out.png", stdin=b"\r\n" + first)  # said "holds 2 images"
    said = "standard input holds 1 image and bytes that begin no image; give a folder"
    assert with_junk.exit_code == 2 and said in with_junk.stderr


def test_denoise_says_when_the_model_was_trained_on_clean_images(cli, ring):
    """denoise -m deep ran a model that removes no noise, its output reconstruct's to the byte, unsaid (trial 71)."""
    said = "conv-unpool was trained on clean images, not noisy ones: it reconstructs them, as aetool reconstruct does"
    assert said in cli("denoise", "ring.png", "-m", "conv-unpool", "-o", "a.png").stderr
    assert "trained on clean images" not in cli("denoise", "ring.png", "-o", "b.png").stderr  # noise 0.5
    assert "trained on clean images" not in cli("reconstruct", "ring.png", "-m", "conv-unpool", "-o", "c.png").stderr


def test_detect_json_names_the_threshold_and_score_in_a_failed_images_record(cli, ring, tmp_path):
    """A failed image's record said "threshold": null though the detector had one (trial 71)."""
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    done = cli("detect", "ring.png", "broken.png", "missing.png", "-m", "conv-unpool", "--threshold", "0.1", "--json")
    records = {record["path"]: record for record in map(json.loads, done.stdout.splitlines())}
    assert done.exit_code == 1 and sorted(records) == ["broken.png", "missing.png", "ring.png"]
    assert all(r["threshold"] == 0.1 and r["score_name"] == "mse" for r in records.values())
    assert records["broken.png"]["error"] and records["missing.png"]["error"] and records["ring.png"]["score"] >= 0


def test_one_file_to_stdout(cli, ring):
    result = cli("denoise", "ring.png", "-o", "-")
    assert result.exit_code == 0 and np.array_equal(read(result.stdout_bytes), digit())


def test_side_by_side(cli, ring):
    cli("denoise", "ring.png", "--side-by-side", "-o", "both.png")
    assert read(Path("both.png")).shape == (28, 56)


def test_a_dense_model_refuses_another_size_unless_told_to_resize(cli, tmp_path):
    save(tmp_path / "big.png", np.kron(digit(), np.ones((2, 3), np.uint8)))
    result = cli("denoise", "big.png")
    assert result.exit_code == 1 and not Path("big.denoised.png").exists()
    assert result.stderr.splitlines()[0] == (
        "aetool: error: big.png: the model takes 28×28 images (width×height), this one is 84×56; pass --resize to fit it to the "
        "model's size"
    )
    result = cli("denoise", "big.png", "--resize", "--json")
    assert result.exit_code == 0 and result.stderr.splitlines()[-1].endswith(" s")  # said once, not in the summary
    assert (
        "aetool: big.png: resized 84×56 (width×height) to the model's 28×28 and the result back to 84×56"
        in result.stderr
    )
    [record] = records(result)
    assert record["resized"] is True and record["input_size"] == [84, 56] and record["fitted_size"] == [28, 28]
    assert record["size"] == [84, 56] and read(Path("big.denoised.png")).shape == (56, 84)
    result = cli("denoise", "big.png", "--resize", "--side-by-side", "-o", "pair.png")
    assert result.exit_code == 0 and read(Path("pair.png")).shape == (56, 168)


def test_resize_with_a_model_of_any_size_says_it_resizes_nothing(cli, tmp_path, toy_dir):
    """The README's `denoise scan.png --resize` ran the bundled conv denoise, which takes any size: nothing said
    that --resize did nothing (trial 85)."""
    save(tmp_path / "big.png", np.kron(digit(), np.ones((2, 3), np.uint8)))
    conv = str(toy_dir / "conv.onnx")
    result = cli("denoise", "big.png", "-m", conv, "--resize")
    assert (
        result.exit_code == 0 and "--resize: conv-unpool takes images of any size, so none is resized" in result.stderr
    )
    assert read(Path("big.denoised.png")).shape == (56, 84)
    assert "--resize:" not in cli("denoise", "big.png", "--resize", "--force").stderr  # a dense model: resized
    scored = cli("detect", "big.png", "-m", conv, "--resize")
    assert scored.exit_code == 0 and "none is resized" in scored.stderr


def test_colour_in_colour_out_at_its_own_size(cli, tmp_path, toy_dir):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (30, 45, 3), np.uint8)
    photo[:2] = 255  # a light border: an MNIST model would invert it, a model of images as they are does not
    save(tmp_path / "photo.png", photo)
    result = cli("denoise", "photo.png", "--model", str(toy_dir / "rgb-conv.onnx"), "--json")
    [record] = records(result)
    assert result.exit_code == 0 and record["size"] == [45, 30] and not record["inverted"]
    assert record["converted"] is None and record["mse"] == 0
    with Image.open("photo.denoised.png") as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), photo)


def test_a_colour_frame_of_grey_pixels_stays_colour(cli, tmp_path, toy_dir):
    """A black or grey frame stored as RGB among colour ones came out as an 8-bit grey PNG through a colour model,
    said to be "grey → RGB (replicated)", which broke a sequence of frames (trial 60). A grey file stays grey."""
    save(tmp_path / "frames/black.png", np.zeros((24, 32, 3), np.uint8))
    save(tmp_path / "frames/grey.png", np.full((24, 32, 3), 128, np.uint8))
    save(tmp_path / "frames/colour.png", np.random.default_rng(1).integers(0, 256, (24, 32, 3), np.uint8))
    save(tmp_path / "grey-file.png", np.full((24, 32), 128, np.uint8))
    result = cli("denoise", "frames", "grey-file.png", "-o", "out", "-m", str(toy_dir / "rgb-conv.onnx"), "--json")
    converted = {Path(record["path"]).name: record["converted"] for record in records(result)}
    assert result.exit_code == 0 and converted == {
        "black.png": None,
        "grey.png": None,
        "colour.png": None,
        "grey-file.png": "grey → RGB (replicated)",
    }
    for name in ("black", "grey", "colour"):
        with Image.open(f"out/{name}.png") as image:
            assert image.mode == "RGB", name
    with Image.open("out/grey-file.png") as image:
        assert image.mode == "L"
    noised = cli("add-noise", "frames", "grey-file.png", "-o", "noisy", "--seed", "1")
    assert noised.exit_code == 0 and {p.name: read(p).ndim for p in Path("noisy").iterdir()} == {
        "black.png": 3,  # colour noise, as on the colour frames around it (it was grey noise, written grey)
        "grey.png": 3,
        "colour.png": 3,
        "grey-file.png": 2,
    }


def test_channel_conversions_are_said_per_image(cli, tmp_path, toy_dir, ring):
    result = cli("reconstruct", "ring.png", "--model", str(toy_dir / "rgb-conv.onnx"), "-o", "rgb.png")
    said = "ring.png: grey → RGB (replicated) for the model, which takes RGB images; the output is grey (the luma"
    assert said in result.stderr and "trained on grey MNIST digits" not in result.stderr
    assert read(Path("rgb.png")).shape == (28, 28)  # a grey image comes back grey
    save(tmp_path / "colour.png", np.stack([digit(), digit() // 2, digit() // 4], axis=-1))
    result = cli("denoise", "colour.png", "--json")
    assert "colour.png: RGB → grey (luma) for the model, which takes grey images; the output is grey" in result.stderr
    assert records(result)[0]["converted"] == "RGB → grey (luma)" and read(Path("colour.denoised.png")).ndim == 2
    # the toy bundled as denoise is a round-1 file (contract 1): round 1's dense denoiser, not today's blind one
    assert "aetool: this model was trained on grey 28×28 images (mnist), not photographs" in result.stderr
    assert "if these images are photographs, train one on your own" in result.stderr  # a page is not told to
    blind = {**toy_metadata("denoise", "conv", 4), contract.CONTRACT_VERSION: "2"}  # today's bundled denoise
    shape = ["N", 1, "H", "W"]
    graph = onnx_bytes(
        {"image": shape}, {"reconstruction": shape}, [node("Identity", ["image"], ["reconstruction"])], blind
    )
    (tmp_path / "blind.onnx").write_bytes(graph)
    result = cli("denoise", "colour.png", "--model", str(tmp_path / "blind.onnx"), "-o", "blind.png")
    assert result.stderr.splitlines()[-1].startswith(
        "aetool: this model was trained on grey MNIST digits and pages of them, and makes photographs worse (a noisy "
        "grey photo at 20.4 dB PSNR came out at 15.0 dB)"  # the README's camera.png: 20.42 → 15.00 (20.5: trial 59)
    )


def test_a_grey_photo_through_a_digits_model_is_told_to_train_its_own(cli, tmp_path, toy_dir, ring):
    save(tmp_path / "photo.png", np.random.default_rng(5).integers(0, 256, (32, 48), np.uint8))
    result = cli("denoise", "photo.png", "--model", str(toy_dir / "conv.onnx"))  # trained on MNIST, any size
    last = result.stderr.splitlines()[-1]
    assert result.exit_code == 0 and "trained on grey 28×28 images (mnist), not photographs" in last
    assert "aetool train dncnn --data photos/ for a denoiser, aetool train conv-unpool --data photos/" in last
    assert "20.4 dB" not in last  # the bundled denoise's measured loss on a photo is said of that model only
    scored = cli("detect", "photo.png", "--model", str(toy_dir / "conv.onnx"))  # a plain model, not a detector
    assert "aetool: this model was trained on grey 28×28 images (mnist): on other images" in scored.stderr
    digit_only = cli("denoise", "ring.png", "--model", str(toy_dir / "conv.onnx"))  # a 28×28 digit: no note
    assert digit_only.exit_code == 0 and "photographs" not in digit_only.stderr
    page = np.full((90, 160), 235, np.uint8)  # dark writing on white paper, at a page's size (trial 77)
    page[20:70:10, 10:150] = 30
    save(tmp_path / "page.png", page)
    scanned = cli("denoise", "page.png", "--model", str(toy_dir / "conv.onnx"), "--json")
    assert scanned.exit_code == 0 and "photographs" not in scanned.stderr
    assert "looks_like_writing" not in scanned.stdout  # a guess for the note, not a field of the record
    # --resize fits any image to a dense model's 28×28: a photograph so fitted got no note (trial 78), a page none
    dense = str(toy_dir / "dense.onnx")
    resized = cli("reconstruct", "photo.png", "--model", dense, "--resize", "-o", "photo-28.png")
    assert resized.exit_code == 0 and "not photographs" in resized.stderr.splitlines()[-1]
    resized = cli("reconstruct", "page.png", "--model", dense, "--resize", "-o", "page-28.png")
    assert resized.exit_code == 0 and "photographs" not in resized.stderr


def test_a_batchs_summary_counts_the_kinds_in_the_order_they_came():
    """The kinds of change were gathered in a set, so the summary's order changed from run to run (string hashes are
    salted per process): a detect test passed alone and failed in CI."""
    from aetool.cli.progress import FEW, Tally

    kinds = [f"kind {letter}" for letter in "hgfedcba"]
    tally = Tally(FEW + 1)
    for _ in range(FEW + 1):
        tally.settle("x.png", [(kind, "") for kind in kinds + kinds[:2]])
    assert tally.counted() == [f"{FEW + 1} {kind}" for kind in kinds]


def test_detect_counts_an_image_with_two_notes_once(cli, tmp_path, toy_dir):
    """detect's summary counted each note, so five images with two notes each were "10 with notes"; denoise counted
    images. One tally of a batch for both now (a review, trial 104)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # turned upright: one note
    rgba = np.dstack([np.full((24, 32, 3), 120, np.uint8), np.full((24, 32), 128, np.uint8)])  # alpha: another
    for i in range(5):
        save(tmp_path / "noted" / f"{i}.png", rgba, exif=exif)
    result = cli("detect", "noted", "-m", str(toy_dir / "rgb-conv.onnx"))
    summary = next(line for line in result.stderr.splitlines() if line.startswith("aetool: 5 images: "))
    assert result.exit_code == 0 and "; 5 with notes, in --json)" in summary, summary


def test_detect_shows_a_progress_bar_over_many_images(cli, tmp_path, toy_dir, monkeypatch):
    """denoise showed a bar over many images and detect none: 10,000 images went by without a word (trial 104)."""
    from aetool.cli import detect

    shown = []

    def tracked(results, total, show):
        shown.append((total, show))
        return results

    monkeypatch.setattr(detect, "tracked", tracked)
    monkeypatch.setattr(detect, "shows_bar", lambda total, records: records and total > 4)
    for i in range(6):
        save(tmp_path / "many" / f"{i}.png", digit())
    result = cli("detect", "many", "-m", str(toy_dir / "conv.onnx"))
    assert result.exit_code == 0 and shown == [(6, True)]


def test_many_images_say_what_was_done_in_the_summary(cli, tmp_path, toy_dir):
    for i in range(6):
        save(tmp_path / "digits" / f"{i}.png", digit())
    result = cli("reconstruct", "digits", "-o", "out", "-m", str(toy_dir / "rgb-conv.onnx"))
    assert result.exit_code == 0 and len(result.stderr.splitlines()) == 1  # no line per image, one summary
    assert "6 done, 0 failed" in result.stderr and "(6 converted grey → RGB (replicated))" in result.stderr
    ramp = np.broadcast_to(np.linspace(40, 220, 64), (48, 64))
    smooth = np.stack([ramp, ramp[::-1], np.full((48, 64), 128.0)], axis=-1).round().astype(np.uint8)
    for i in range(5):  # smooth colour images, far less noisy than the toy model's σ 0.1: a level note each
        save(tmp_path / "smooth" / f"{i}.png", smooth)
    noted = cli("reconstruct", "smooth", "-o", "out2", "-m", str(toy_dir / "rgb-conv.onnx"))
    first = noted.stderr.splitlines()[0]
    assert noted.exit_code == 0 and first.startswith("aetool: 5 done, 0 failed in ")
    assert first.endswith(" s (5 with notes, in --json)")


def test_invert_is_refused_for_a_model_of_images_as_they_are(cli, ring, toy_dir):
    result = cli("denoise", "ring.png", "--model", str(toy_dir / "rgb-conv.onnx"), "--invert")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "--invert: model rgb-conv takes images as they are (polarity as-is)" in result.stderr
    assert not Path("ring.denoised.png").exists()
    assert cli("denoise", "ring.png", "--model", str(toy_dir / "rgb-conv.onnx"), "--no-invert").exit_code == 0
    detect = cli("detect", "ring.png", "--model", str(toy_dir / "rgb-conv.onnx"), "--invert")
    assert detect.exit_code == 2 and detect.stderr.strip().splitlines() == result.stderr.strip().splitlines()


def test_dark_on_light_round_trips_and_can_be_forced(cli, tmp_path):
    save(tmp_path / "dark.png", 255 - digit())
    [record] = records(cli("denoise", "dark.png", "--json"))
    assert record["inverted"] and np.array_equal(read(Path("dark.denoised.png")), 255 - digit())
    said = cli("denoise", "dark.png", "-o", "again.png").stderr
    assert "dark.png: dark on light: inverted to MNIST's white on black and the output back" in said
    [record] = records(cli("denoise", "dark.png", "--json", "--no-invert", "-o", "plain.png"))
    assert not record["inverted"] and np.array_equal(read(Path("plain.png")), 255 - digit())
    save(tmp_path / "light.png", digit())  # white on black, inverted only because --invert says so
    said = cli("denoise", "light.png", "--invert", "-o", "forced.png").stderr
    assert "light.png: inverted (--invert) and the output back" in said and "dark on light" not in said


def test_some_bad_inputs_exit_1_and_the_good_ones_are_done(cli, ring, tmp_path):
    (tmp_path / "text.png").write_text("I am text")
    (tmp_path / "empty.png").write_bytes(b"")
    data = ring.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "nothing").mkdir()
    result = cli("denoise", "ring.png", "text.png", "empty.png", "cut.png", "missing.png", "nothing", "-o", "out")
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    for expected in (
        "nothing: no images found",
        "text.png: not an image Pillow can read",
        "empty.png: empty file",
        "cut.png: truncated or corrupt image",
        "missing.png: no such file or folder",
    ):
        assert any(line.startswith(f"aetool: error: {expected}") for line in errors), expected
    assert "1 done, 5 failed" in result.stderr
    assert sorted(p.name for p in Path("out").iterdir()) == ["ring.png"]  # no partial or temporary files


def test_a_decompression_bomb_is_one_line(cli, tmp_path, monkeypatch):
    save(tmp_path / "bomb.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    result = cli("denoise", "bomb.png")
    assert result.exit_code == 1 and "possible decompression bomb" in result.stderr
    assert not Path("bomb.denoised.png").exists()


def test_max_megapixels_raises_and_lowers_the_limit(cli, tmp_path, monkeypatch):
    """A photo over Pillow's 89.5 megapixels (a 100-megapixel camera's) had no way in (left open before)."""
    save(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # restored after the test, as the option sets it
    refused = cli("denoise", "big.png")
    assert (
        refused.exit_code == 1
        and (
            "big.png: refused as a possible decompression bomb: 10,000 pixels, over the limit of 5,000 "
            "(aetool --max-megapixels MP COMMAND … raises it)"
        )
        in refused.stderr
    )
    raised = cli("--max-megapixels", "0.01", "denoise", "big.png", "--resize")
    assert raised.exit_code == 0, raised.stderr
    assert Path("big.denoised.png").exists()
    lowered = cli("--max-megapixels", "0.002", "denoise", "big.png", "--resize", "-o", "small.png")
    assert lowered.exit_code == 1 and "over the limit of 2,000" in lowered.stderr and not Path("small.png").exists()
    for value in ("0", "-1", "nan", "1e6"):
        assert cli("--max-megapixels", value, "denoise", "big.png").exit_code == 2


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("text.onnx", "is not a loadable ONNX model"),
        ("truncated.onnx", "is not a loadable ONNX model"),
        ("flat.onnx", "does not follow the aetool contract"),
        ("absent.onnx", "does not exist"),
    ],
)
def test_bad_models_exit_2_in_one_line(cli, ring, toy_dir, model, message):
    result = cli("denoise", "ring.png", "--model", str(toy_dir / model))
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("aetool: error: ")
    assert not Path("ring.denoised.png").exists()


def test_a_model_path_that_is_a_pipe_or_a_device_is_said_to_be_one(cli, ring, tmp_path):
    os.mkfifo(tmp_path / "fifo.onnx")
    for model in (tmp_path / "fifo.onnx", Path("/dev/zero")):
        result = cli("denoise", "ring.png", "--model", str(model))
        assert result.exit_code == 2 and f"model file {model} is not a regular file" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_model_that_is_a_link_loop_a_dangling_link_or_an_empty_name_is_said_to_be_one(cli, ring, tmp_path):
    (tmp_path / "a.onnx").symlink_to("b.onnx")
    (tmp_path / "b.onnx").symlink_to("a.onnx")
    (tmp_path / "gone.onnx").symlink_to("nothing.onnx")
    (tmp_path / "bare").symlink_to("bare")  # a name without .onnx or a slash: tried as a bundled model first
    said = {
        "a.onnx": "model file a.onnx is a loop of symbolic links",
        "gone.onnx": "model file gone.onnx is a symbolic link to nothing.onnx, which does not exist",
        "bare": "model file bare is a loop of symbolic links",
        "": "the model is named by an empty string; give a bundled model's name or an .onnx file",
    }
    for model, message in said.items():
        result = cli("denoise", "ring.png", "--model", model)
        assert result.exit_code == 2 and result.stderr == f"aetool: error: {message}\n"


def test_an_unknown_model_name_exits_2(cli, ring):
    result = cli("denoise", "ring.png", "--model", "nope")
    assert result.exit_code == 2 and "unknown model 'nope'" in result.stderr


def test_the_input_is_never_overwritten_without_force(cli, ring):
    before = ring.read_bytes()
    result = cli("denoise", "ring.png", "-o", "ring.png")
    assert result.exit_code == 1 and "refusing to overwrite input ring.png" in result.stderr
    assert ring.read_bytes() == before
    assert cli("denoise", "ring.png", "-o", "ring.png", "--force").exit_code == 0


def test_an_output_folder_that_is_a_file_or_below_one_is_one_usage_error_before_any_image(cli, ring, tmp_path):
    """Each image failed alone, "cannot write taken/ring.png: Not a directory", one line per image, exit 1."""
    (tmp_path / "taken").write_text("a file")
    for output, where in (("taken", "is a file"), ("taken/sub/", "is below taken, a file")):
        result = cli("denoise", "ring.png", "ring.png", "-o", output)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == f"aetool: error: -o {output} {where}; outputs go into a folder (made if missing)\n"
    result = cli("denoise", "ring.png", "-o", "taken/x.png")
    assert result.exit_code == 2 and "-o taken/x.png is below taken, a file" in result.stderr
    os.mkfifo(tmp_path / "pipe")  # as /dev/null or /dev/stdout: it was "is a file" (trial 96)
    result = cli("denoise", "ring.png", "-o", "pipe")
    assert result.exit_code == 2
    assert result.stderr == "aetool: error: -o pipe is a device or pipe, not a folder; -o - writes to standard output\n"
    result = cli("denoise", "ring.png", "ring.png", "-o", "pipe/sub")
    assert result.exit_code == 2 and "-o pipe/sub is below pipe, a device or pipe" in result.stderr  # trial 97
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # a dangling link: one line per image, exit 1 (trial 52)
    for output in ("gone", "gone/sub/"):
        result = cli("denoise", "ring.png", "ring.png", "-o", output)
        assert result.exit_code == 2 and result.stderr == (
            f"aetool: error: -o {output}: gone is a symbolic link to {tmp_path / 'nowhere'}, which is not there\n"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ring.png", "missing.png", "-o", "-"), "-o - (standard output) takes exactly one input file"),
        (("ring.png", "--format", "xyz"), "unknown image format 'xyz'"),
        (  # a dated folder for a day with one input
            ("ring.png", "-o", "out/2024.06.01"),
            "-o out/2024.06.01 names an output file of unknown image format '.01' (choose one of png, jpg,",
        ),
        (("ring.png", "-o", "results.v2"), ", tga); for a folder, end its name in /: -o results.v2/"),
        (("ring.png", "-o", "x.png", "--format", "jpg"), "--format jpg contradicts the output name x.png"),
        (("-", "ring.png"), "- (standard input) cannot be mixed with other inputs"),
        (("ring.png", "-o", "-", "--json"), "--json prints records to standard output"),
        (("ring.png", "--provider", "warp-drive"), "unknown execution provider 'warp-drive'"),
        (("ring.png", "--threads", "99999"), "--threads takes 1 to"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, ring, args, message):
    result = cli("denoise", *args)
    assert result.exit_code == 2 and result.stderr.startswith("aetool: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_round_1_flag_names_still_work(cli, ring):
    assert cli("add-noise", "ring.png", "--level", "0.3", "--kind", "mask", "--seed", "1", "-o", "a.png").exit_code == 0
    assert (
        cli("add-noise", "ring.png", "--noise", "0.3", "--noise-kind", "mask", "--seed", "1", "-o", "b.png").exit_code
        == 0
    )
    assert read("a.png").tolist() == read("b.png").tolist()
    clash = cli("add-noise", "ring.png", "--noise", "0.3", "--level", "0.4")
    assert clash.exit_code == 2 and "--noise and --level (its old name) disagree" in clash.stderr


def test_a_provider_not_installed_is_a_warning_line(cli, ring, toy_dir):
    fresh = shutil.copy(toy_dir / "dense.onnx", "fresh.onnx")  # a file no earlier test opened with these options
    result = cli("denoise", "ring.png", "--model", fresh, "--provider", "cuda")
    assert result.exit_code == 0
    assert (
        "aetool: warning: fresh.onnx: asked for CUDAExecutionProvider but the session runs on "
        "CPUExecutionProvider" in result.stderr
    )


def test_a_gaussian_std_on_the_0_255_scale_is_warned_of(cli, ring):
    said = "warning: Gaussian noise of std 25 on pixels in [0, 1] leaves nothing of the image; a σ of 25 on the 0–255"
    loud = cli("add-noise", "ring.png", "--noise", "25", "-o", "loud.png")
    assert loud.exit_code == 0 and said in loud.stderr and "is --noise 0.098" in loud.stderr
    quiet = cli("add-noise", "ring.png", "--noise", "0.1", "-o", "quiet.png")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_add_noise_inverts_a_light_page_for_mask_noise_only(cli, tmp_path):
    """A trial's light photo given Gaussian noise was said to be "inverted to MNIST's white on black": meaningless
    for noise drawn alike on either polarity. Only masking, whose pixels take the background, inverts."""
    save(tmp_path / "page.png", np.full((40, 40), 230, np.uint8))
    gaussian = cli("add-noise", "page.png", "--noise", "0.1", "--seed", "1", "-o", "g.png", "--json")
    assert gaussian.exit_code == 0 and "inverted" not in gaussian.stderr and not records(gaussian)[0]["inverted"]
    masked = cli("add-noise", "page.png", "--noise", "0.3", "--noise-kind", "mask", "--seed", "1", "-o", "m.png")
    assert masked.exit_code == 0 and "page.png: dark on light: inverted to MNIST's white on black" in masked.stderr
    assert set(np.unique(read(Path("m.png")))) == {230, 255}  # masked pixels take the (white) background
    forced = cli("add-noise", "page.png", "--noise-kind", "salt-pepper", "--invert", "-o", "f.png")
    assert forced.exit_code == 2 and len(forced.stderr.splitlines()) == 1 and not Path("f.png").exists()
    assert "--invert: only mask noise inverts" in forced.stderr


def test_an_output_too_large_for_its_format_is_refused_before_it_runs_and_the_others_are_done(cli, tmp_path):
    """A 70,000-pixel-wide GIF was an OverflowError traceback that ended the batch; a side-by-side image twice as
    wide as its input is refused as it is encoded (trial 96)."""
    save(tmp_path / "wide.png", np.zeros((1, 70_000), np.uint8))
    save(tmp_path / "half.png", np.zeros((2, 40_000), np.uint8))
    save(tmp_path / "d.png", digit())
    result = cli("add-noise", "wide.png", "d.png", "--noise", "0.1", "-o", "out", "--format", "gif")
    assert result.exit_code == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d.gif"]
    message = "a GIF image is at most 65,535 pixels a side, this one is 70000×1; write it as PNG"
    assert f"aetool: error: wide.png: cannot write out/wide.gif: {message}" in result.stderr
    result = cli("add-noise", "half.png", "--noise", "0.1", "-o", "-", "--format", "tga", "--side-by-side")
    assert result.exit_code == 1 and result.stdout_bytes == b""
    assert "half.png: cannot write standard output: a TGA image is at most 65,535 pixels a side" in result.stderr


def test_add_noise_statistics_and_seed(cli, tmp_path):
    save(tmp_path / "gray.png", np.full((40, 40), 128, np.uint8))
    cli("add-noise", "gray.png", "--level", "0.1", "--seed", "3", "--no-invert")
    noisy = read(Path("gray.noisy.png")).astype(float)
    assert noisy.std() == pytest.approx(25.5, rel=0.1) and noisy.mean() == pytest.approx(128, abs=3)
    cli("add-noise", "gray.png", "--level", "0.1", "--seed", "3", "--no-invert", "-o", "again.png")
    assert np.array_equal(read(Path("again.png")), noisy)
    cli("add-noise", "gray.png", "--level", "0.2", "--kind", "salt-pepper", "--seed", "3", "-o", "sp.png")
    salt_pepper = read(Path("sp.png"))
    hit = (salt_pepper == 0) | (salt_pepper == 255)
    assert hit.mean() == pytest.approx(0.2, abs=0.04) and (salt_pepper == 255).mean() == pytest.approx(0.1, abs=0.03)


def test_add_noise_with_a_seed_gives_an_image_the_same_noise_alone_or_in_any_batch(cli, tmp_path):
    """One generator ran through the batch: a file's noise changed when another file joined its folder, or when
    it was run on its own (xargs, a re-run of one failed file)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        save(tmp_path / "in" / f"{name}.png", rng.integers(0, 100, (20, 24), np.uint8))
    assert cli("add-noise", "in", "--seed", "7", "-o", "folder/").exit_code == 0
    assert cli("add-noise", "in/c.png", "--seed", "7", "-o", "alone.png").exit_code == 0
    save(tmp_path / "in" / "0.png", rng.integers(0, 100, (20, 24), np.uint8))  # sorts first
    assert cli("add-noise", "in", "--seed", "7", "-o", "more/").exit_code == 0
    assert np.array_equal(read(Path("folder/c.png")), read(Path("alone.png")))
    assert np.array_equal(read(Path("folder/c.png")), read(Path("more/c.png")))
    assert not np.array_equal(read(Path("folder/a.png")), read(Path("folder/c.png")))
    assert cli("add-noise", "in/c.png", "--seed", "8", "-o", "other.png").exit_code == 0
    assert not np.array_equal(read(Path("other.png")), read(Path("alone.png")))
    # as the README says, from Python: the generator of the seed and the image's pixels draws the same noise
    from aetool.runtime.batch import image_generator
    from aetool.runtime.images import encode, read_image

    pixels = read_image(tmp_path / "in" / "c.png").pixels
    noisy = add_noise(pixels, 0.5, rng=image_generator(7, pixels))  # the default --noise
    assert np.array_equal(read(encode(noisy, "PNG")), read(Path("alone.png")))


def test_mask_noise_sets_pixels_to_the_background(cli, tmp_path):
    save(tmp_path / "dark.png", np.full((40, 40), 60, np.uint8))  # dark page: background is dark
    cli("add-noise", "dark.png", "--level", "0.3", "--kind", "mask", "--seed", "0")
    masked = read(Path("dark.noisy.png"))
    assert set(np.unique(masked)) == {0, 60} and (masked == 0).mean() == pytest.approx(0.3, abs=0.05)


def test_the_cli_noise_kinds_export_targets_and_datasets_are_the_runtime_ones():
    from aetool.runtime.metadata import DATASETS

    assert tuple(kind.value for kind in NoiseKind) == NOISE_KINDS
    assert tuple(target.value for target in Target) == contract.TARGETS
    assert tuple(dataset.value for dataset in Dataset) == DATASETS


def test_train_knows_every_registry_model_in_registry_order():
    pytest.importorskip("torch", reason="the registry needs the train extra")
    from aetool.models import REGISTRY
    from aetool.names import MODELS
    from aetool.train.settings import LOSSES

    assert tuple(REGISTRY) == MODELS and tuple(loss.value for loss in Loss) == LOSSES
    named = re.split(r"[,;] ", re.sub(r" \([^)]*\)", "", MODEL_NAMES))  # "pca, deep, … (the report's); dncnn (…), …"
    assert named == list(REGISTRY)


def test_evaluate_prints_mse_psnr_ssim_and_json(cli, mnist_dir):
    result = cli("evaluate", "--model", "denoise", "--data-dir", str(mnist_dir), "--noise", "0")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "test MSE 0.000000, PSNR ∞ dB, SSIM 1.0000 over 12 images (no noise), model denoise"
    )
    assert "; the file records 0.000000 with its training noise gaussian=0.5 (over all" in result.stdout
    result = cli("evaluate", "--data-dir", str(mnist_dir), "--noise", "0.5", "--limit", "4", "--json")
    record = json.loads(result.stdout)
    assert record["n"] == 4 and record["noise"] == 0.5 and record["mse"] > 0.01 and record["model"] == "denoise-dense"
    assert record["psnr"] == pytest.approx(10 * np.log10(1 / record["mse"])) and 0 < record["ssim"] < 1
    assert record["model_sha256"] == hashlib.sha256(Path(record["file"]).read_bytes()).hexdigest()


def test_evaluate_reads_the_data_folder_from_the_environment(cli, mnist_dir, monkeypatch):
    monkeypatch.setenv("AETOOL_DATA_DIR", str(mnist_dir))
    assert json.loads(cli("evaluate", "--json", "--noise", "0").stdout)["n"] == 12


def test_evaluate_finds_the_dataset_subfolder_as_training_does(cli, mnist_dir, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(mnist_dir)  # AETOOL_DATA_DIR may hold mnist/ and fashion-mnist/
    monkeypatch.setenv("AETOOL_DATA_DIR", str(tmp_path / "data"))
    assert json.loads(cli("evaluate", "--json", "--noise", "0").stdout)["n"] == 12


def test_evaluate_refuses_a_dataset_it_does_not_read(cli, mnist_dir, tmp_path):
    """A typo (fasion-mnist) scored MNIST and exited 0; with --data, --dataset was ignored."""
    save(tmp_path / "digits" / "a.png", digit())
    for args, said in [
        (["--data-dir", str(mnist_dir), "--dataset", "fasion-mnist"], "--dataset takes mnist or fashion-mnist"),
        (["--data", "digits", "--dataset", "mnist"], "--dataset names the IDX dataset under --data-dir"),
        (["--anomaly", "--data", "digits", "--dataset", "mnist"], "--dataset names the IDX dataset under --data-dir"),
        # said first beside another mistake, as before the options' rules moved into one place (a review)
        (["--data-dir", str(mnist_dir), "--dataset", "foo", "--classes", "3"], "--dataset takes mnist or"),
        (["--anomaly", "--data-dir", str(mnist_dir), "--dataset", "foo", "--inputs", "x"], "--dataset takes mnist"),
        (["--anomaly", "--data-dir", str(mnist_dir), "--dataset", "foo", "--classes", "3,3"], "--dataset takes mnist"),
        (["--data", "digits", "--dataset", "mnist", "--normal", "y"], "--dataset names the IDX dataset"),
    ]:
        result = cli("evaluate", "--model", "denoise", *args)
        assert result.exit_code == 2 and result.stdout == "" and said in result.stderr, (args, result.stderr)


SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist (the real MNIST files)")
def test_evaluate_refuses_an_idx_folder_of_the_other_dataset_naming_both(cli):
    result = cli("evaluate", "--model", "denoise", "--data-dir", str(SHARED_MNIST), "--dataset", "fashion-mnist")
    assert result.exit_code == 2 and "holds mnist, not fashion-mnist; name a folder of fashion-mnist" in result.stderr
    assert result.stdout == ""


def test_evaluate_without_data_exits_2_naming_the_files(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AETOOL_DATA_DIR", raising=False)
    result = cli("evaluate", "--data-dir", "nowhere")
    assert result.exit_code == 2 and "nowhere does not exist" in result.stderr
    assert "t10k-images-idx3-ubyte.gz" in result.stderr
    assert "no data: pass --data-dir (or set AETOOL_DATA_DIR), --data or --inputs/--targets" in cli("evaluate").stderr


def test_evaluate_a_folder_of_images(cli, tmp_path):
    rng = np.random.default_rng(0)
    clean = [rng.integers(0, 120, (24, 32, 3), np.uint8) for _ in range(3)]  # dark: not inverted
    for i, image in enumerate(clean):
        save(tmp_path / "photos" / f"{i}.png", image)
    result = cli("evaluate", "--model", "conv-unpool", "--data", "photos", "--noise", "0.1", "--seed", "3", "--json")
    record = json.loads(result.stdout)
    generator = np.random.default_rng(3)
    grey = [(image @ np.array([0.299, 0.587, 0.114], np.float32))[None] / 255 for image in clean]
    expected = np.mean([np.square(add_noise(g, 0.1, kind="gaussian", rng=generator) - g).mean() for g in grey])
    assert result.exit_code == 0 and record["n"] == 3 and record["mse"] == pytest.approx(expected, rel=1e-5)
    assert record["seed"] == 3 and record["split"] is None and record["psnr"] > 0 and 0 < record["ssim"] < 1
    assert record["notes"] == ["3 images converted RGB → grey (luma)"]
    assert "aetool: 3 images converted RGB → grey (luma)" in result.stderr
    line = cli("evaluate", "--model", "conv-unpool", "--data", "photos", "--noise", "0.1").stdout
    assert line.startswith("MSE 0.0") and "over 3 images of photos (gaussian noise 0.1, seed 1234)" in line
    metadata = {**toy_metadata("blind", "conv", 4), contract.NOISE: json.dumps({"mix": "gaussian=0:0.2"})}
    conv = ["N", 1, "H", "W"]
    (tmp_path / "blind.onnx").write_bytes(
        onnx_bytes(
            {"image": conv}, {"reconstruction": conv}, [node("Identity", ["image"], ["reconstruction"])], metadata
        )
    )
    mixed = cli("evaluate", "--model", "blind.onnx", "--data", "photos", "--seed", "5").stdout
    assert "over 3 images of photos (noise range gaussian=0:0.2, seed 5)" in mixed  # a range's seed was left out


def test_evaluate_pairs_lists_a_missing_partner_and_exits_1(cli, tmp_path):
    for name in ("a", "b"):
        save(tmp_path / "noisy" / f"{name}.png", digit())
        save(tmp_path / "clean" / f"{name}.bmp", digit())
    save(tmp_path / "noisy" / "c.png", digit())
    result = cli("evaluate", "--inputs", "noisy", "--targets", "clean", "--json")
    record = json.loads(result.stdout)
    assert result.exit_code == 1 and record["n"] == 2 and record["mse"] == 0
    assert record["noise"] is None and record["noise_kind"] is None and record["seed"] is None  # scored as given
    assert record["missing"] == [{"label": "noisy/c.png", "error": "no target in clean matches it"}]
    assert "aetool: error: noisy/c.png: no target in clean matches it" in result.stderr.splitlines()
    assert "aetool: 2 scored, 0 could not be scored, 1 without a partner" in result.stderr.splitlines()
    text = cli("evaluate", "--inputs", "noisy", "--targets", "clean").stdout
    assert text.startswith("MSE 0.000000, PSNR ∞ dB, SSIM 1.0000 over 2 pairs noisy → clean, model denoise")


def test_evaluate_lists_an_unreadable_image_and_scores_the_rest(cli, tmp_path):
    save(tmp_path / "digits" / "good.png", digit())
    (tmp_path / "digits" / "bad.png").write_bytes(b"")
    result = cli("evaluate", "--data", "digits", "--noise", "0")
    assert result.exit_code == 1 and "over 1 image of digits (no noise)" in result.stdout
    assert result.stderr.splitlines()[0] == "aetool: error: digits/bad.png: empty file"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--inputs", "noisy"), "--inputs and --targets go together"),
        (("--inputs", "a", "--targets", "b", "--noise", "0.1"), "pairs are scored as they are given"),
        (("--inputs", "a", "--targets", "b", "--data", "c"), "--data and --inputs/--targets name two sets"),
        (("--data", "c", "--data-dir", "d"), "--data-dir reads IDX files and --data image files: give one"),
        (("--data", "nowhere/*.png"), "nowhere/*.png: pattern matched no images"),
        (("--data", "nowhere/"), "nowhere/: no such file or folder"),
        (("--inputs", "nowhere", "--targets", "b"), "--inputs nowhere: no such file or folder"),
        (("--data-dir", "d", "--resize"), "--resize fits image files"),
        (("--anomaly", "--data-dir", "d", "--resize"), "--resize fits image files"),
    ],
)
def test_evaluate_usage_errors_are_one_line_exit_2(cli, args, message):
    result = cli("evaluate", *args)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_evaluate_refuses_images_a_dense_model_cannot_take(cli, tmp_path):
    save(tmp_path / "photos" / "wide.png", np.zeros((48, 64), np.uint8))
    result = cli("evaluate", "--data", "photos")  # the image fails, and nothing is left to score
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        "photos/wide.png: the model takes 28×28 images (width×height), this one is 64×48; pass --resize"
        in result.stderr
    )
    fitted = cli("evaluate", "--data", "photos", "--resize", "--noise", "0")
    assert fitted.exit_code == 0 and "over 1 image of photos" in fitted.stdout
    assert "1 image fitted to the model's size (--resize)" in fitted.stderr


def test_models_lists_the_bundled_models(cli):
    table = cli("models").stdout.splitlines()
    assert table[0].split() == ["name", "file", "size", "precision", "test", "MSE"]
    assert table[1].split()[:2] == ["denoise", "dense.onnx"] and table[1].split()[-1] == "0.01230"
    assert table[2].split()[-1] == "0.00000"  # not in models.json: read from the file's metadata
    listed = json.loads(cli("models", "--json").stdout)
    assert [m["name"] for m in listed] == ["denoise", "conv-unpool"] and listed[0]["size_bytes"] > 0


def test_models_without_any_bundled(cli, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(tmp_path / "empty"))
    result = cli("models")
    assert (
        result.exit_code == 0
        and f"no bundled models (no models.json in {tmp_path / 'empty'} ($AETOOL_MODEL_DIR))" in result.stderr
    )
    assert json.loads(cli("models", "--json").stdout) == []
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(tmp_path / "none"))
    for args in (["models"], ["denoise", "x.png"]):
        result = cli(*args)
        assert (
            result.exit_code == 2
            and f"$AETOOL_MODEL_DIR is {tmp_path / 'none'}, which is not a folder" in result.stderr
        )


def test_info_describes_a_model(cli, toy_dir):
    text = cli("info", str(toy_dir / "dense.onnx")).stdout
    assert "image" in text and "N×1×28×28" in text and "✓ follows the aetool ONNX contract" in text
    assert "dense.decoder.onnx" in text and "✓ passed, worst max-abs 5e-07 (2 cases)" in text
    record = json.loads(cli("info", "denoise", "--json").stdout)
    assert record["inputs"] == [{"name": "image", "shape": ["N", 1, 28, 28], "type": "float"}]
    assert [o["name"] for o in record["outputs"]] == ["reconstruction", "code"]
    assert record["opset"] == 13 and record["decoder"]["size_bytes"] > 0
    assert record["parity"] == {"passed": True, "worst_max_abs": 5e-07, "cases": 2}


def test_info_and_check_take_the_model_as_m_too_as_the_image_commands_do(cli):
    """``aetool info -m deep`` was "No such option: -m", though every image command names its model so (left open)."""
    assert cli("info", "-m", "denoise").stdout == cli("info", "denoise").stdout != ""
    checked = cli("check", "--model", "denoise")  # every runtime installed (onnxruntime alone in the base install)
    assert checked.exit_code == 0 and "✓ onnxruntime" in checked.stdout
    assert checked.stdout == cli("check", "denoise").stdout
    assert cli("info", "denoise", "-m", "denoise").exit_code == 0  # the same model twice
    both = cli("info", "denoise", "-m", "deep")
    assert both.exit_code == 2 and "two models named: denoise and -m deep; give one" in both.stderr
    neither = cli("check")
    assert neither.exit_code == 2 and "give a model" in neither.stderr


def test_info_shows_an_empty_metadata_value_as_such(cli, tmp_path):
    shape = ["N", 3, "H", "W"]
    metadata = {**colour_metadata("rgb-conv", shape, multiple_of=4), "decoder": ""}
    nodes = [node("Identity", ["image"], ["reconstruction"]), node("Identity", ["image"], ["code"])]
    (tmp_path / "m.onnx").write_bytes(
        onnx_bytes({"image": shape}, {"reconstruction": shape, "code": shape}, nodes, metadata)
    )
    lines = cli("info", str(tmp_path / "m.onnx")).stdout.splitlines()
    assert "  decoder           (empty)" in lines


def test_info_shows_channels_colour_space_polarity_and_contract_version(cli, toy_dir):
    text = cli("info", str(toy_dir / "dense.onnx")).stdout
    assert "✓ follows the aetool ONNX contract (version 1)" in text  # round 1's files name no version
    assert (
        "1 channel (gray), 28×28 (width×height) only, polarity white-on-black (dark-on-light images are inverted for it)"
        in text
    )
    text = cli("info", str(toy_dir / "rgb-conv.onnx")).stdout
    assert (
        "(version 2)" in text
        and "3 channels (srgb), any size (padded to a multiple of 4 by the image commands), polarity as-is" in text
    )
    record = json.loads(cli("info", str(toy_dir / "rgb-dense.onnx"), "--json").stdout)
    assert record["contract_version"] == 2 and record["colour_space"] == "srgb"
    assert record["input_spec"] == {
        "size": [16, 16],
        "multiple_of": 1,
        "polarity": "as-is",
        "channels": 3,
        "batch": None,
    }


def test_info_describes_a_decoder_graph_as_one(cli, toy_dir):
    result = cli("info", str(toy_dir / "dense.decoder.onnx"))
    assert result.exit_code == 0 and "✓ a decoder graph (code → reconstruction)" in result.stdout
    assert "✗" not in result.stdout and "code" in result.stdout
    assert json.loads(cli("info", str(toy_dir / "dense.decoder.onnx"), "--json").stdout)["contract"] == "decoder"


def test_a_model_copied_away_from_its_decoder_says_the_decoder_is_missing(cli, tmp_path):
    """info said "decoder  none" and decode blamed the model's kind, for a dense model whose decoder was not copied."""
    from aetool.errors import ModelFileError
    from aetool.runtime import load
    from aetool.runtime.registry import BUNDLED_DIR

    shutil.copyfile(BUNDLED_DIR / "deep.onnx", tmp_path / "three.onnx")
    result = cli("info", str(tmp_path / "three.onnx"))
    line = next(line for line in result.stdout.splitlines() if line.startswith("decoder"))
    assert line.endswith(
        "deep.decoder.onnx ✗ missing: the metadata names it, but it is not beside the model (copy it there)"
    )
    decoder = json.loads(cli("info", str(tmp_path / "three.onnx"), "--json").stdout)["decoder"]
    assert decoder["missing"] is True and decoder["size_bytes"] is None
    with pytest.raises(ModelFileError, match=r"its metadata names deep\.decoder\.onnx, which is not in"):
        load(tmp_path / "three.onnx").decode(np.zeros((1, 30), np.float32))
    shutil.copyfile(BUNDLED_DIR / "deep.decoder.onnx", tmp_path / "deep.decoder.onnx")
    assert "✗" not in next(
        line for line in cli("info", str(tmp_path / "three.onnx")).stdout.splitlines() if line.startswith("decoder")
    )


def test_a_decoder_graph_given_as_a_model_names_its_model_file(cli, toy_dir, tmp_path):
    save(tmp_path / "a.png", digit())
    result = cli(
        "reconstruct", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "-m", str(toy_dir / "dense.decoder.onnx")
    )
    assert result.exit_code == 2 and not (tmp_path / "b.png").exists()
    assert (
        f"is a decoder graph (code → reconstruction), which takes codes, not images: give its model file {toy_dir / 'dense.onnx'}"
        in result.stderr
    )


def test_info_shows_what_is_wrong_with_a_file_off_the_contract(cli, toy_dir):
    result = cli("info", str(toy_dir / "flat.onnx"))
    assert result.exit_code == 0 and "✗" in result.stdout and "N×784" in result.stdout
    assert json.loads(cli("info", str(toy_dir / "flat.onnx"), "--json").stdout)["opset"] == 13  # the file's own
    assert cli("info", str(toy_dir / "text.onnx")).exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("add-noise", "ring.png", "--level", "inf"),
        ("add-noise", "ring.png", "--level", "5", "--kind", "salt-pepper"),
        ("evaluate", "--noise", "5", "--noise-kind", "mask"),
    ],
)
def test_noise_levels_that_mean_nothing_are_one_line_exit_2(cli, ring, mnist_dir, args):
    result = cli(*args, "--data-dir", str(mnist_dir)) if args[0] == "evaluate" else cli(*args)
    assert result.exit_code == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert "noise level" in result.stderr and not list(Path().glob("*.noisy.png"))


def test_info_shows_a_dimension_the_exporter_left_unnamed_as_a_question_mark(cli):
    from aetool.runtime.registry import BUNDLED_DIR

    text = cli("info", str(BUNDLED_DIR / "conv-unpool.onnx")).stdout  # its code's height and width: s39, s94
    assert "N×1×4*h×4*w" in text and "N×16×?×?" in text and "s39" not in text


def test_info_counts_external_data_beside_the_file(cli, tmp_path):
    """A file of 1.8 kB whose 53 kB of weights lay beside it was shown as 1.8 kB (trial 70)."""
    from conftest import FLOAT, tensor

    conv = ["N", 1, "H", "W"]
    (tmp_path / "w.bin").write_bytes(bytes(4000))
    (tmp_path / "outside.onnx").write_bytes(
        onnx_bytes(
            {"image": conv},
            {"reconstruction": conv},
            [node("Add", ["image", "w"], ["reconstruction"])],
            initializers=[tensor("w", [1], FLOAT, location="w.bin")],
        )
    )
    shown = cli("info", "outside.onnx")
    assert (
        shown.exit_code == 0 and shown.stdout.startswith("outside.onnx  ") and " (+ 4.0 kB in w.bin), " in shown.stdout
    )
    assert json.loads(cli("info", "outside.onnx", "--json").stdout)["external_data"] == {"w.bin": 4000}


def test_info_says_any_size_for_a_model_of_any_multiple():
    from aetool.cli.inspection import _image_spec

    spec = {"channels": 3, "size": None, "polarity": "as-is", "multiple_of": 1}
    assert _image_spec(spec, "srgb").startswith("3 channels (srgb), any size, polarity as-is")
    assert "any size (padded to a multiple of 4 by the image commands)" in _image_spec(
        {**spec, "multiple_of": 4}, "srgb"
    )
    fixed = _image_spec({**spec, "batch": 1}, "srgb")  # shown in --json only (trial 70)
    assert fixed.startswith("3 channels (srgb), any size, 1 a call (the file fixes its batch), polarity as-is")


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("add-noise", ["[default: 0.5]", "[default: gaussian]"]),
        ("train", ["[default: mnist; images with --data]", "[default: 0.1; 0.2 with --classes; at least one image]"]),
        ("calibrate", ["[default: 0.01]", "[default: portable]"]),
    ],
)
def test_defaults_written_into_help_texts_are_shown_not_taken_for_markup(command, shown):
    """Rich reads an unescaped [default: …] as a style tag and drops it from the help."""
    from conftest import cli_runner

    from aetool.cli import app

    result = cli_runner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    words = " ".join(result.stdout.replace("│", " ").split())
    assert result.exit_code == 0 and all(text in words for text in shown), words


def test_help_at_80_columns_cuts_no_option_name_or_example():
    """At 80 columns train's help showed "--no-allow-triv…" and cut the --noise mix example at its first comma."""
    from conftest import cli_runner

    from aetool.cli import app

    names = [command.name or command.callback.__name__.replace("_", "-") for command in app.registered_commands]
    assert "train" in names and "add-noise" in names
    for name in names:
        result = cli_runner().invoke(app, [name, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0 and "…" not in result.stdout, (name, result.stdout)


def test_control_characters_in_file_names_are_escaped_in_lines_and_records(cli, tmp_path, toy_dir):
    """A name with a tab, a newline or a terminal's escape sequence keeps detect's line one tab-separated record
    naming the file (Click stripped the escape sequence off a pipe, naming another file), and an error line one line
    that cannot retitle or clear the terminal."""
    name = "a\tb\nc\x1b[31md\u202e.png"
    save(tmp_path / name, digit())
    scored = cli("detect", name, "--model", str(toy_dir / "conv.onnx"))
    assert scored.exit_code == 0
    assert scored.stdout.splitlines() == ["a\\tb\\nc\\x1b[31md\\u202e.png\t" + scored.stdout.split("\t", 1)[1].strip()]
    missing = cli("reconstruct", "gone\x1b]0;pwned\x07.png", "--model", str(toy_dir / "conv.onnx"))
    assert missing.stderr.splitlines()[0] == "aetool: error: gone\\x1b]0;pwned\\x07.png: no such file or folder"


def test_detect_lines_keep_a_backslash_apart_from_an_escaped_control_character(cli, tmp_path, toy_dir):
    """The names a\\nb.png (a backslash) and a<newline>b.png both printed as a\\nb.png."""
    for name in ("a\\nb.png", "a\nb.png"):
        save(tmp_path / "both" / name, digit())
    scored = cli("detect", "both", "--model", str(toy_dir / "conv.onnx"))
    names = [line.split("\t")[0] for line in scored.stdout.splitlines()]
    assert scored.exit_code == 0 and sorted(names) == sorted(["both/a\\nb.png", "both/a\\\\nb.png"])


def test_detect_counts_a_folder_without_images_as_a_failed_input_not_an_image(cli, tmp_path, toy_dir):
    (tmp_path / "inbox").mkdir()
    result = cli("detect", "inbox", "--model", str(toy_dir / "conv.onnx"))
    assert result.exit_code == 1 and "aetool: error: inbox: no images found in this folder" in result.stderr
    assert "aetool: 0 images and 1 input that gave none: 0 scored, 1 failed" in result.stderr  # was "1 image"
    save(tmp_path / "more" / "ring.png", digit())
    result = cli("detect", "inbox", "more", "gone.png", "--model", str(toy_dir / "conv.onnx"))
    assert "aetool: 2 images and 1 input that gave none: 1 scored, 2 failed" in result.stderr  # gone.png an image


def test_an_image_whose_heatmaps_cannot_be_written_still_gets_its_line(cli, tmp_path, toy_dir):
    save(tmp_path / "ring.png", digit())
    (tmp_path / "maps" / "ring.heatmap.png").mkdir(parents=True)  # a folder where the heatmap would go
    result = cli("detect", "ring.png", "--model", str(toy_dir / "conv.onnx"), "--heatmaps", "maps")
    assert result.exit_code == 1 and "aetool: error: ring.png: cannot write maps/ring.heatmap.png" in result.stderr
    assert result.stdout.startswith("ring.png\t") and result.stdout.rstrip().endswith("\tscored")


def test_a_message_while_a_progress_bar_is_live_is_printed_above_the_bar_and_whole(monkeypatch):
    """Through the console the bar lives on: Click's echo wrote onto the bar's own line ("… -:--:--aetool: error:"),
    and rich's proxy of stderr broke long lines at the terminal's width, cutting file names in two."""
    import io

    from rich.console import Console

    from aetool.cli import output, progress

    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=60)
    for module in (output, progress):
        monkeypatch.setattr(module, "stderr_console", lambda: console)
    long_name = "x" * 100 + ".png"
    for _ in progress.tracked(range(2), total=2, show=True):
        output.error(f"{long_name}: no such file")
    shown = terminal.getvalue()
    assert f"\r\x1b[2Kaetool: error: {long_name}: no such file\n" in shown and "-:--:--aetool" not in shown


def test_json_records_printed_while_the_progress_bar_is_up_go_to_standard_output(monkeypatch):
    """rich's track took standard output over while its bar was up: with stderr a terminal, ``--json > file``
    left the file empty and the records on the terminal (trial 96)."""
    import io
    import sys

    from rich.console import Console

    from aetool.cli import output, progress

    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=60)
    for module in (output, progress):
        monkeypatch.setattr(module, "stderr_console", lambda: console)
    records = io.StringIO()
    monkeypatch.setattr(sys, "stdout", records)
    for number in progress.tracked(range(3), total=3, show=True):
        output.emit(f'{{"n": {number}}}')
    assert records.getvalue() == '{"n": 0}\n{"n": 1}\n{"n": 2}\n' and '"n"' not in terminal.getvalue()


def test_json_records_to_a_terminal_take_the_place_of_the_progress_bar(monkeypatch):
    import io
    import sys

    from aetool.cli import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setenv("TERM", "xterm-256color")
    assert progress.shows_bar(progress.FEW + 1, records=False) and not progress.shows_bar(progress.FEW, records=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # records to a file or pipe: the bar stays
    assert progress.shows_bar(progress.FEW + 1, records=True)
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert not progress.shows_bar(progress.FEW + 1, records=True) and progress.shows_bar(
        progress.FEW + 1, records=False
    )


@pytest.mark.parametrize("term", ["dumb", "unknown"])
def test_a_terminal_that_cannot_redraw_a_line_gets_no_progress_bar(monkeypatch, term):
    """Under TERM=dumb train's bar left its last state behind as a line of box characters (a trial)."""
    import io
    import sys

    from aetool.cli import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setenv("TERM", "xterm")
    assert progress.training_bar(False) and progress.shows_bar(progress.FEW + 1, records=False)
    monkeypatch.setenv("TERM", term)
    assert not progress.training_bar(False) and not progress.shows_bar(progress.FEW + 1, records=False)


def test_an_empty_name_for_an_input_an_output_or_the_heatmaps_is_refused_not_taken_as_this_folder(
    cli, tmp_path, toy_dir
):
    """Path("") is the current folder: `denoise ""` denoised every image there, `-o ""` wrote beside them."""
    save(tmp_path / "ring.png", digit())
    model = str(toy_dir / "conv.onnx")
    nothing = cli("denoise", "", "--model", model)
    assert nothing.exit_code == 1
    assert (
        'aetool: error: "": an empty name, not a file or folder (. is the current folder)'
        in nothing.stderr.splitlines()
    )
    nowhere = cli("denoise", "ring.png", "--model", model, "-o", "")
    assert nowhere.exit_code == 2 and "-o is an empty name; give a file or a folder" in nowhere.stderr
    no_maps = cli("detect", "ring.png", "--model", model, "--heatmaps", "")
    assert no_maps.exit_code == 2 and "--heatmaps is an empty name; give a folder" in no_maps.stderr
    dash = cli("detect", "ring.png", "--model", model, "--heatmaps", "-")  # made a folder named - (trial 61)
    assert dash.exit_code == 2 and "--heatmaps - : heatmaps are files in a folder, not standard output" in dash.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ring.png"]


@pytest.mark.parametrize("command", ["reconstruct", "add-noise"])
def test_no_exif_keeps_a_photos_details_out_of_the_output(cli, tmp_path, command):
    """A scan's description and a photo's GPS went into every output, with no way to leave them out (trial 58)."""
    exif = Image.Exif()
    exif[0x010E], exif[0x013B] = "Patient: DOE^JANE", "Dr. Radiologist"
    Image.fromarray(digit()).save(tmp_path / "scan.jpg", exif=exif, quality=95)
    model = ("-m", "conv-unpool") if command == "reconstruct" else ()
    assert cli(command, "scan.jpg", *model, "-o", "kept.png").exit_code == 0
    assert cli(command, "scan.jpg", *model, "-o", "none.png", "--no-exif").exit_code == 0
    with Image.open(tmp_path / "kept.png") as kept, Image.open(tmp_path / "none.png") as none:
        assert kept.getexif().get(0x010E) == "Patient: DOE^JANE" and not none.getexif()


def test_add_noise_without_a_seed_says_the_seed_it_drew_so_the_noise_can_be_drawn_again(cli, tmp_path):
    """Fresh noise could not be reproduced: no record said how it was drawn (trial 58)."""
    save(tmp_path / "ring.png", digit())
    fresh = cli("add-noise", "ring.png", "-o", "fresh.png")
    found = re.search(r"^aetool: noise seed (\d+) \(--seed \1 draws this noise again\)$", fresh.stderr, re.M)
    assert fresh.exit_code == 0 and found
    assert cli("add-noise", "ring.png", "-o", "again.png", "--seed", found[1]).exit_code == 0
    assert (tmp_path / "fresh.png").read_bytes() == (tmp_path / "again.png").read_bytes()


def test_add_noise_says_no_seed_when_a_usage_mistake_stops_it_before_any_noise(cli, tmp_path):
    """The drawn seed was said before the outputs were planned, so a refused command still named one (left open)."""
    save(tmp_path / "a.png", digit())
    save(tmp_path / "b.png", digit())
    refused = cli("add-noise", "a.png", "b.png", "-o", "one.png")
    assert refused.exit_code == 2 and "names one image file" in refused.stderr
    assert "noise seed" not in refused.stderr
    missing = cli("add-noise", "nothing.png", "-o", "out/")  # no image read, no noise drawn (trial 67)
    assert missing.exit_code == 1 and "noise seed" not in missing.stderr
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    (tmp_path / "out" / "b.png").mkdir(parents=True)  # b gets noise, then cannot be written
    drawn = cli("add-noise", "a.png", "b.png", "broken.png", "-o", "out/", "--json")  # the seed said, and in the
    said = re.search(r"noise seed (\d+) ", drawn.stderr)  # records of the images that got noise (trials 71, 72)
    records = {record["path"]: record for record in map(json.loads, drawn.stdout.splitlines())}
    assert said and records["a.png"]["noise_seed"] == int(said[1]) and records["b.png"]["noise_seed"] == int(said[1])
    assert records["b.png"]["error"] and records["broken.png"]["error"] and records["broken.png"]["noise_seed"] is None
    assert len({tuple(record) for record in records.values()}) == 1  # every record has its noise_seed (trial 102)


def test_each_commands_help_is_one_paragraph_for_the_terminal_to_wrap():
    """rich kept the docstrings' line breaks, so --help broke lines early inside sentences (trial 85)."""
    from aetool.cli import app

    helps = {command.name or command.callback.__name__: command.callback.__doc__ for command in app.registered_commands}
    assert len(helps) >= 14 and all(text and "\n" not in text and "  " not in text for text in helps.values())
    assert "the verdict, and heatmaps on request" in helps["detect"]


def test_evaluate_help_names_the_datasets_it_takes(cli):
    """--dataset was shown as <str>, not as its two choices (trial 85)."""
    assert "mnist|fashion-mnist" in cli("evaluate", "--help").stdout


def test_add_noise_and_evaluate_take_a_range_or_mix_as_train_does(cli, tmp_path, mnist_dir):
    """'0:0.5' was "not a valid float" in add-noise and evaluate, though train takes it, and `aetool info denoise`
    shows the bundled denoiser's noise as a mix (trial 102)."""
    save(tmp_path / "ring.png", digit())
    ranged = cli("add-noise", "ring.png", "-o", "ranged.png", "--noise", "0:0.5", "--seed", "3", "--json")
    mixed = cli("add-noise", "ring.png", "-o", "mixed.png", "--noise", "gaussian=0.1,mask=0.2", "--seed", "3", "--json")
    assert ranged.exit_code == mixed.exit_code == 0 and json.loads(ranged.stdout)["mse"] > 0
    again = cli("add-noise", "ring.png", "-o", "again.png", "--noise", "0:0.5", "--seed", "3")
    assert again.exit_code == 0 and read(tmp_path / "again.png").tolist() == read(tmp_path / "ranged.png").tolist()
    bad = cli("add-noise", "ring.png", "-o", "bad.png", "--noise", "0:abc")
    assert bad.exit_code == 2 and "--noise: noise '0:abc' is not a level (0.5), a range (0:0.6)" in bad.stderr
    scored = cli("evaluate", "-m", "denoise", "--data-dir", str(mnist_dir), "--noise", "0:0.3", "--json")
    assert scored.exit_code == 0 and json.loads(scored.stdout)["noise_mix"] == "gaussian=0:0.3"


def test_evaluate_takes_invert_for_image_files_and_refuses_it_for_idx_digits(cli, tmp_path, mnist_dir):
    """evaluate had no --invert/--no-invert (trial 102); IDX digits are white on black, scored as they are."""
    page = np.full((28, 28), 230, np.uint8)
    page[8:20, 12:16] = 20
    save(tmp_path / "pages" / "page.png", page)
    kept = cli("evaluate", "-m", "denoise", "--data", "pages", "--noise", "0", "--no-invert")
    assert kept.exit_code == 0 and "inverted" not in kept.stderr
    refused = cli("evaluate", "-m", "denoise", "--data-dir", str(mnist_dir), "--invert")
    assert refused.exit_code == 2 and refused.stderr.strip() == (
        "aetool: error: --invert and --no-invert apply to image files (--data, --inputs/--targets); IDX digits are "
        "scored as they are"
    )


def test_every_command_is_placed_in_helps_order():
    """A command added without a place in COMMANDS went last in --help without a word (trial 104)."""
    from aetool.cli import COMMANDS, app

    names = [command.name or command.callback.__name__ for command in app.registered_commands]
    assert sorted(names) == sorted(COMMANDS) and names == list(COMMANDS)


def test_command_modules_import_the_shared_modules_never_each_other():
    """detect and evaluate imported their helpers from the denoise module, bench and report from train's (trial 104):
    a command module imports only the shared ones (app, options, inputs, output, progress, extras, process), in
    any form (``from aetool.cli.x import``, ``from aetool.cli import x``, ``import aetool.cli.x``)."""
    import ast

    import aetool.cli as package

    folder = Path(package.__file__).parent
    shared = {"app", "options", "inputs", "output", "progress", "extras", "process"}
    commands = {path.stem for path in folder.glob("*.py")} - shared - {"__init__"}
    assert {"images", "detect", "evaluate", "training"} <= commands
    for name in sorted(commands):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = set()
        for statement in ast.walk(tree):
            if isinstance(statement, ast.ImportFrom) and statement.module == "aetool.cli":
                imported |= {alias.name for alias in statement.names}
            elif isinstance(statement, ast.ImportFrom) and (statement.module or "").startswith("aetool.cli."):
                imported.add((statement.module or "").removeprefix("aetool.cli."))
            elif isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
                imported |= {name.removeprefix("aetool.cli.") for name in names if name.startswith("aetool.cli.")}
        assert imported <= shared, f"{name}.py imports {sorted(imported - shared)}"


def test_add_noise_of_level_0_names_no_seed_and_a_range_on_the_wrong_scale_is_not_told_one_level(cli, tmp_path):
    """--noise 0 said "noise seed N (--seed N draws this noise again)" of noise never drawn, its records a seed; a
    range of σ 0:2 was told "--noise 0.00784", one level (trial 103)."""
    save(tmp_path / "ring.png", digit())
    none = cli("add-noise", "ring.png", "-o", "none.png", "--noise", "0", "--json")
    assert none.exit_code == 0 and "noise seed" not in none.stderr and json.loads(none.stdout)["noise_seed"] is None
    wide = cli("add-noise", "ring.png", "-o", "wide.png", "--noise", "0:2")
    assert "a σ of 2 on the 0–255 scale is 0.00784: divide each level by 255" in wide.stderr
