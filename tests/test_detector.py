"""One-class training, calibration and the detector file: scores in torch, in the graph and in numpy agree; the
file runs in onnxruntime and the ONNX reference evaluator; detect, evaluate --anomaly and their refusals."""

import hashlib
import io
import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="detector tests need the train extra")
onnx = pytest.importorskip("onnx", reason="detector tests need the train extra")

from conftest import read, run_torch_free, save  # noqa: E402
from synthetic import stroke_digits  # noqa: E402
from torch.export import Dim  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from aetool.cli import app  # noqa: E402
from aetool.errors import AetoolError, DataError, ModelFileError  # noqa: E402
from aetool.export.detector import CalibrationOptions, _source, calibrate_run  # noqa: E402
from aetool.export.onnx_export import ExportSpec, to_onnx  # noqa: E402
from aetool.export.parity import cpu_session, run_session  # noqa: E402
from aetool.export.scores import OUTPUTS, AnomalyHead, Constants  # noqa: E402
from aetool.runtime import anomaly, contract, load  # noqa: E402
from aetool.runtime.anomaly_evaluation import evaluate_folders, evaluate_idx, evaluate_labelled  # noqa: E402
from aetool.runtime.detect import Detector, detect, plan_detection, read_spec  # noqa: E402
from aetool.runtime.files import collect  # noqa: E402
from aetool.train import TrainConfig, load_run, train  # noqa: E402
from aetool.train.data import load_training_data  # noqa: E402
from aetool.web import ORT_FILES, WASM_MAGIC  # noqa: E402

runner = CliRunner()
QUIET = {"echo": lambda line: None}


class Blurry(torch.nn.Module):
    """A stand-in autoencoder whose reconstruction is a fixed, image-dependent distortion of its input."""

    def forward(self, x):
        return (0.8 * x + 0.1 * x.flip(-1)).clamp(0, 1), x.flatten(1)


@pytest.mark.parametrize(("channels", "size"), [(1, (28, 28)), (3, (19, 23))])
def test_the_torch_head_computes_the_numpy_components(channels, size):
    images = torch.rand(5, channels, *size, generator=torch.Generator().manual_seed(0))
    weights = np.random.default_rng(0).uniform(1, 100, (1, *size)).astype(np.float32)
    names = ("mse", "ssim", "smax", "wmse")
    mean, std = (0.1, 0.2, 0.3, 0.4), (1.0, 2.0, 3.0, 4.0)
    head = AnomalyHead(Blurry(), Constants(names, weights, mean, std), channels=channels)
    outputs, _, score, amap, values = head(images)
    x, y = images.numpy(), outputs.numpy()
    expected = anomaly.components(x, y, names, weights=weights)
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(amap.numpy(), anomaly.anomaly_map(x, y), atol=1e-7)
    np.testing.assert_allclose(score.numpy(), anomaly.standardised_sum(expected, mean, std), atol=1e-4)


def test_the_detector_graph_keeps_float32_means_of_a_large_photo_exact():
    # onnxruntime's ReduceMean over all (C, H, W) of a 300×451 colour photo differed from torch by 1.3e-4.
    head = AnomalyHead(Blurry(), Constants(("mse", "ssim")), channels=3).eval()
    spec = ExportSpec(head, torch.rand(2, 3, 28, 28), contract.INPUT, OUTPUTS, {0: Dim("N"), 2: Dim("h"), 3: Dim("w")})
    session = cpu_session(to_onnx(spec))
    rows, columns = np.mgrid[0:300, 0:451]
    photo = np.stack([0.5 + 0.45 * np.sin(rows / (7 + c) + columns / 11) for c in range(3)])[None].astype(np.float32)
    got = run_session(session, photo)
    expected = anomaly.components(photo, got[contract.RECONSTRUCTION], ("mse", "ssim"))
    np.testing.assert_allclose(got[contract.SCORE_COMPONENTS], expected, rtol=0, atol=1e-6)


# ---- a one-class run on the synthetic digits (labels: the number of strokes, 1 to 3) and its detector ----


@pytest.fixture(scope="module")
def one_class(data_dir, tmp_path_factory):
    """A run of the anomaly model on the one-stroke digits, and its detector calibrated at fpr 0.1."""
    run = tmp_path_factory.mktemp("runs") / "one"
    train(
        TrainConfig("anomaly", data_dir=str(data_dir), classes=("1",), epochs=2), run_dir=run, progress=False, **QUIET
    )
    calibration = calibrate_run(run, options=CalibrationOptions(fpr=0.1), **QUIET)
    return run, calibration


def test_export_keeps_a_calibrated_detector_unless_told(one_class, tmp_path):
    run, calibration = one_class
    kept = calibration.export.path.read_bytes()
    result = runner.invoke(app, ["export", str(run), "--int8"])
    assert result.exit_code == 2 and f"{calibration.export.path} is a calibrated anomaly detector;" in result.stderr
    assert "export to another file (-o), or a detector again (--anomaly" in result.stderr
    assert calibration.export.path.read_bytes() == kept
    elsewhere = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "plain.onnx")])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert contract.ANOMALY not in load(tmp_path / "plain.onnx").metadata
    quantized = runner.invoke(app, ["export", str(run), "--anomaly", "--int8", "-o", str(tmp_path / "d.onnx")])
    assert quantized.exit_code == 2 and "a detector is written in fp32 only; leave out --int8" in quantized.stderr
    assert not (tmp_path / "d.onnx").exists()


def test_finish_run_writes_the_model_file_unless_it_is_current(one_class, tmp_path):
    """The one rule for "export or calibrate a trained run unless its model file is current" that ``train``, the
    report and the one-class page each had their own way of (``export.finish.finish_run``)."""
    from aetool.export import ExportOptions, ExportResult, export_run
    from aetool.export.finish import finish_run

    run = tmp_path / "run"
    shutil.copytree(one_class[0], run)  # its checkpoint and its detector calibrated at fpr 0.1, still current
    model = run / "model.onnx"
    kept = model.read_bytes()
    assert finish_run(run, calibration=CalibrationOptions(fpr=0.1), **QUIET) is None
    assert finish_run(run, calibration=CalibrationOptions(), **QUIET) is None  # no rule asked: any detector stays
    assert finish_run(run, **QUIET) is None and model.read_bytes() == kept  # a plain export asked: it stays too
    other = finish_run(run, calibration=CalibrationOptions(fpr=0.05), **QUIET)  # another rule asked: calibrated anew
    assert other is not None and read_spec(load(model)).rule == {"fpr": 0.05}
    export_run(run, over_detector=True, **QUIET)  # a plain model of the same checkpoint is not its detector
    detector = finish_run(run, calibration=CalibrationOptions(data_dir=None), **QUIET)
    assert detector is not None and contract.ANOMALY in load(model).metadata
    model.unlink()
    plain = finish_run(run, options=ExportOptions(), **QUIET)
    assert isinstance(plain, ExportResult) and contract.ANOMALY not in load(model).metadata


def test_detect_image_scores_one_file_as_the_detect_command_does(one_class, tmp_path):
    """Detector.run takes arrays of the model's own size and channels only; the command's reading, converting and
    resizing had no Python call of its own (trial 98)."""
    from aetool.runtime.detect import detect_image

    model = str(one_class[1].export.path)
    save(tmp_path / "a.png", stroke_digits(1)[0][0])
    save(tmp_path / "big.png", np.kron(stroke_digits(1, seed=2)[0][0], np.ones((2, 2), np.uint8)))  # 56×56
    done = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "-m", model, "--json"])
    record = json.loads(done.stdout)
    found = detect_image(model, tmp_path / "a.png")
    assert found.score == record["score"] and found.anomalous == record["anomalous"] and found.error is None
    png = (tmp_path / "a.png").read_bytes()
    for source in (png, bytearray(png), memoryview(png), io.BytesIO(png)):  # as read_image takes a file (trial 100)
        assert detect_image(model, source).score == found.score
    with pytest.raises(TypeError, match=r"^detect_image takes a path \(str, Path or os.PathLike\), the file's bytes"):
        detect_image(model, None)  # type: ignore[arg-type]
    assert "--resize" in (detect_image(model, tmp_path / "big.png").error or "")
    assert detect_image(model, tmp_path / "big.png", resize=True).fitted_size == (28, 28)
    assert detect_image(model, tmp_path / "missing.png").error == "no such file or folder"
    assert detect_image(model, "").error == "an empty name names no file"  # an ImageError raised (trial 103)
    given = Detector(model, threshold=np.float32(5))  # kept as numpy's float32, it broke the --json records
    assert type(given.threshold) is float and json.dumps(detect_image(given, png).record())


def test_web_puts_a_detector_on_the_page_and_says_the_page_shows_its_reconstruction_only(
    one_class, tmp_path, monkeypatch
):
    """It went on the page without a word, its score and map nowhere (trial 95)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copyfile(one_class[1].export.path, mine / "ones.onnx")
    (mine / "models.json").write_text(json.dumps({"ones": {"file": "ones.onnx"}}))
    monkeypatch.setenv("AETOOL_MODEL_DIR", str(mine))
    dist = tmp_path / "ort"
    dist.mkdir()
    for name in ORT_FILES:  # stand-ins
        (dist / name).write_bytes(WASM_MAGIC if name.endswith(".wasm") else b"//")
    done = CliRunner().invoke(app, ["web", "-o", str(tmp_path / "site"), "--ort-web", str(dist)])
    assert done.exit_code == 0, done.output
    assert (
        "aetool: ones is an anomaly detector: the page shows its reconstruction only, not its score or map (aetool "
        "detect --heatmaps DIR draws them)"
    ) in done.stderr
    manifest = json.loads((tmp_path / "site" / "models.json").read_text())
    assert [model["detector"] for model in manifest["models"]] == [True]


def test_the_calibration_image_at_the_threshold_is_normal_in_the_file_too(one_class, tmp_path):
    """The threshold was the highest calibration score itself, and the file's float32 score of that image came out
    a few millionths above it: detect flagged it (trial 57). It is lifted by the export's score tolerance."""
    from aetool.export.detector import _batches, _run_data

    calibration = calibrate_run(one_class[0], out=tmp_path / "max.onnx", options=CalibrationOptions(fpr=0.01), **QUIET)
    highest, spec = float(np.max(calibration.scores)), calibration.spec
    lift = 1e-5 * max(1.0, abs(highest), spec.score_scale)
    assert spec.threshold == pytest.approx(highest + lift, rel=1e-12)
    run = load_run(one_class[0])
    detector = Detector(load(tmp_path / "max.onnx"))
    scored = np.concatenate([detector.run(batch).scores for batch in _batches(_run_data(run, None).test, run.net)])
    assert len(scored) == len(calibration.scores) and not (scored > detector.threshold).any()


def test_a_threshold_on_few_images_says_how_many_lie_above_it(one_class, tmp_path):
    lines: list[str] = []
    options = CalibrationOptions(fpr=0.1)
    calibration = calibrate_run(one_class[0], out=tmp_path / "few.onnx", options=options, echo=lines.append)
    record = calibration.spec.calibration
    few = [line for line in lines if line.startswith("only ")]
    assert len(few) == 1 and f"only {record['images']} calibration images" in few[0]
    assert record["images"] < 19 and "calibration images: the threshold is their highest score;" in few[0]
    [said] = [line for line in lines if line.startswith("calibrated ")]  # to 6 digits, as info and detect print it
    assert f": threshold {calibration.spec.threshold:.6g} (fpr 0.1; " in said
    lines.clear()  # too few for --fpr 0.01: the note did not say the threshold is the highest score (trial 37)
    calibrate_run(one_class[0], out=tmp_path / "max.onnx", options=CalibrationOptions(fpr=0.01), echo=lines.append)
    [few] = [line for line in lines if line.startswith("only ")]
    assert few.endswith(
        "calibration images: the threshold is their highest score (--fpr 0.01 holds as a bound from 99 images on); "
        "calibrate on more images for a steadier one"
    )
    lines.clear()
    calibrate_run(one_class[0], out=tmp_path / "q.onnx", options=CalibrationOptions(quantile=0.7), echo=lines.append)
    [few] = [line for line in lines if line.startswith("only ")]
    assert "the threshold rests on the few highest scores (" in few


def test_one_class_training_keeps_the_class_and_holds_a_fifth_out(data_dir):
    data, _ = load_training_data(TrainConfig("anomaly", data_dir=str(data_dir), classes=("1",)))
    ones = sum(label == 1 for label in stroke_digits(256, 0)[1])
    assert set(data.train.labels) == set(data.test.labels) == {"1"}
    assert (len(data.train), len(data.test)) == (ones - round(0.2 * ones), round(0.2 * ones))
    assert not set(data.train.names) & set(data.test.names)
    with pytest.raises(DataError, match="no image is labelled 7; the labels are '1', '2', '3'"):
        load_training_data(TrainConfig("anomaly", data_dir=str(data_dir), classes=("7",)))
    with pytest.raises(DataError, match="no image is labelled 7; the labels are '1', '2', '3'"):  # it trained on 1s
        load_training_data(TrainConfig("anomaly", data_dir=str(data_dir), classes=("1", "7")))


def test_the_calibration_source_names_the_share_and_a_limit(data_dir):
    config = TrainConfig("anomaly", data_dir=str(data_dir), classes=("1",), limit=5)
    data = load_training_data(config)[0]
    assert _source(SimpleNamespace(config=config), data) == (
        "5 held-out images (20%, cut to --limit 5) of the training images of class 1"
    )
    roomy = TrainConfig("anomaly", data_dir=str(data_dir), classes=("1",), limit=10_000)  # cuts nothing
    kept = load_training_data(roomy)[0]
    assert _source(SimpleNamespace(config=roomy), kept).endswith(
        " held-out images (20%) of the training images of class 1"
    )
    exact = replace(roomy, limit=len(kept.test))  # as many as held out: cuts nothing either (was "cut to --limit")
    assert _source(SimpleNamespace(config=exact), load_training_data(exact)[0]) == (
        f"{len(kept.test)} held-out images (20%) of the training images of class 1"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"classes": ("x",)}, "labels 0 to 9"),
        ({"classes": ("3", "3")}, "each once"),
        ({"val": 0.2}, "picked by --classes"),
        ({"val_data": "elsewhere"}, "--val-data goes with images"),
    ],
)
def test_one_class_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig("anomaly", **settings)


def test_the_detector_file_holds_the_score_threshold_and_calibration(one_class):
    run, calibration = one_class
    path = calibration.export.path
    assert path == run / "model.onnx" and (run / "model.decoder.onnx").is_file()
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.name for o in proto.graph.output] == [
        contract.RECONSTRUCTION,
        contract.CODE,
        contract.SCORE,
        contract.ANOMALY_MAP,
        contract.SCORE_COMPONENTS,
    ]
    ops = {node.op_type for node in proto.graph.node}
    assert "ReduceMax" in ops and not ops & {"Max", "MaxPool", "Where", "Shape"}  # portable, and no Max over tensors
    names = {tensor.name for tensor in proto.graph.initializer}
    assert {"weights", "mean", "inverse_std", "smooth_window", "ssim_rows", "ssim_columns"} <= names
    model = load(path)
    record = model.metadata[contract.ANOMALY]
    assert record["score"] == "ssim+smax+wmse" and record["rule"] == {"fpr": 0.1} and record["classes"] == ["1"]
    assert record["threshold"] == calibration.spec.threshold and record["runtime_check"]["passed"]
    assert record["calibration"]["images"] == len(calibration.scores) and "held-out" in record["calibration"]["source"]
    parity = model.metadata[contract.PARITY]
    assert parity["passed"] and {case["output"] for case in parity["cases"]} >= {"score", "anomaly_map"}
    runtimes = model.metadata[contract.CHECKED_IN]["runtimes"]  # every runtime installed here runs a dense detector
    assert "onnxruntime" in runtimes and all(entry["ok"] for entry in runtimes.values())
    assert any(case["case"].startswith("test images") for case in parity["cases"])  # the calibration images


def test_onnxruntime_and_the_onnx_reference_evaluator_give_the_same_scores(one_class):
    """Every output within 1e-5 × max(1, max|output|), the score within 1e-5 × its scale as export parity holds it:
    on an AVX2 CPU the two float32 computations put this detector's score 1.09e-5 × max|score| apart (onnxruntime
    1.12e-5 of it from float64, the reference evaluator 6.8e-6), as its components' small spreads magnify rounding."""
    from onnx.reference import ReferenceEvaluator

    path = one_class[1].export.path
    model = load(path)
    images = (stroke_digits(16, seed=5)[0][:, None] / 255).astype(np.float32)
    ort_outputs = dict(zip(OUTPUTS, model.session.run(list(OUTPUTS), {"image": images}), strict=True))
    reference = dict(zip(OUTPUTS, ReferenceEvaluator(str(path)).run(list(OUTPUTS), {"image": images}), strict=True))
    scale = {contract.SCORE: read_spec(model).score_scale}
    for name, want in reference.items():
        got = ort_outputs[name]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, scale.get(name, 1.0), float(np.abs(want).max())), name


def test_calibration_scores_are_the_files_scores(one_class, tmp_path):
    """A threshold at the median of 20 images lets the file itself score 10 of them above it."""
    run = one_class[0]
    images, labels = stroke_digits(120, seed=7)
    for i, image in enumerate(images[labels == 1][:20]):
        save(tmp_path / "normal" / f"{i:02d}.png", image)
    options = CalibrationOptions(quantile=0.5, data=str(tmp_path / "normal"))
    calibration = calibrate_run(run, out=tmp_path / "median.onnx", options=options, **QUIET)
    assert calibration.spec.rule == {"quantile": 0.5} and calibration.spec.calibration["images"] == 20
    detector = Detector(load(tmp_path / "median.onnx"))
    found, _ = collect([str(tmp_path / "normal")])
    scores = [d.score for d in detect(plan_detection(found, heatmaps=None)[0], detector)]
    np.testing.assert_allclose(np.sort(scores), np.sort(calibration.scores), atol=1e-4)
    assert sum(score > detector.threshold for score in scores) == 10


def test_calibration_images_are_prepared_as_detect_resize_prepares_them(one_class, tmp_path):
    """Dark-on-light digits of another size: calibrate inverts and fits them the MNIST way, as `detect --resize`
    does, so the file scores them as calibration did (a plain resize set the threshold on other pixels)."""
    run = one_class[0]
    images, labels = stroke_digits(120, seed=7)
    for i, image in enumerate(images[labels == 1][:20]):
        save(tmp_path / "pages" / f"{i:02d}.png", 255 - np.pad(image, ((6, 10), (2, 4))))
    options = CalibrationOptions(quantile=0.5, data=str(tmp_path / "pages"))
    calibration = calibrate_run(run, out=tmp_path / "pages.onnx", options=options, **QUIET)
    detector = Detector(load(tmp_path / "pages.onnx"))
    found, _ = collect([str(tmp_path / "pages")])
    detections = list(detect(plan_detection(found, heatmaps=None)[0], detector, resize=True))
    assert all(d.inverted and d.fitted_size == (28, 28) for d in detections)
    # calibration keeps the fitted images in 8 bits, detect in float32: scores a few hundredths apart, no more
    np.testing.assert_allclose(np.sort([d.score for d in detections]), np.sort(calibration.scores), atol=0.1)


def test_calibration_refusals(one_class, tmp_path):
    run = one_class[0]
    with pytest.raises(ValueError, match="give one"):
        CalibrationOptions(fpr=0.01, quantile=0.99)
    with pytest.raises(ValueError, match="fractions between 0 and 1"):
        CalibrationOptions(fpr=1.5)
    save(tmp_path / "one" / "a.png", stroke_digits(1)[0][0])
    one = "at least two normal images, and has 1: the 1 image of .*one; give more with --data$"
    with pytest.raises(AetoolError, match=one):
        calibrate_run(run, out=tmp_path / "x.onnx", options=CalibrationOptions(data=str(tmp_path / "one")), **QUIET)
    with pytest.raises(AetoolError, match=r"file name must end in \.onnx"):
        calibrate_run(run, out=tmp_path / "x.txt", **QUIET)
    with pytest.raises(AetoolError, match="it is a folder; name the file"):  # as export: -o names a file
        calibrate_run(run, out=tmp_path, **QUIET)
    with pytest.raises(TypeError, match=r"calibrate_run's options are a CalibrationOptions\(…\), got dict"):
        calibrate_run(run, out=tmp_path / "x.onnx", options={"fpr": 0.1}, **QUIET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^echo takes a function of one line of text \(print, say\), got str$"):
        calibrate_run(run, out=tmp_path / "x.onnx", echo="x")  # type: ignore[arg-type]  # trial 83
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_images_that_all_score_alike_are_refused(one_class, tmp_path, monkeypatch):
    """Two photos whose standardised components cancelled each scored 0: the threshold was 0, and detect flagged
    both of them (the graph's float32 scores 1e-4 and 5e-6)."""
    from aetool.export import detector

    for i in range(2):
        save(tmp_path / "two" / f"{i}.png", stroke_digits(1, seed=i)[0][0])
    cancelling = np.array([[0.1, 0.3], [0.2, 0.2]])  # z-scores (−1, +1) and (+1, −1): both sum to 0
    monkeypatch.setattr(detector, "raw_components", lambda net, batches, constants: (cancelling, np.ones(2)))
    options = CalibrationOptions(data=str(tmp_path / "two"), score=("mse", "ssim"))
    with pytest.raises(AetoolError, match=r"the 2 calibration images all score 0 \(mse\+ssim\): no threshold can part"):
        calibrate_run(one_class[0], out=tmp_path / "x.onnx", options=options, **QUIET)
    assert not (tmp_path / "x.onnx").exists()


def test_a_conv_detector_scores_images_of_any_size_with_heatmaps_at_their_size(data_dir, tmp_path):
    run = tmp_path / "conv"
    config = TrainConfig("conv-deconv", data_dir=str(data_dir), classes=("1",), epochs=1)
    train(config, run_dir=run, progress=False, **QUIET)
    with pytest.raises(AetoolError, match="wmse weighs each pixel"):
        calibrate_run(run, options=CalibrationOptions(score=("mse", "wmse")), **QUIET)
    calibration = calibrate_run(run, options=CalibrationOptions(), **QUIET)
    assert calibration.spec.components == ("ssim", "smax")
    runtimes = load(calibration.export.path).metadata[contract.CHECKED_IN]["runtimes"]
    failed = {name for name, entry in runtimes.items() if not entry["ok"]}  # recorded, not refused (DETECTOR_OPS)
    assert failed <= {"opencv-classic"} and runtimes["onnxruntime"]["ok"]
    assert calibration.spec.calibration["pixels"] == [28 * 28, 28 * 28]  # the held-out digits
    odd = np.kron(stroke_digits(1, seed=9)[0][0], np.ones((2, 2), np.uint8))[:50, :37]  # 37×50
    save(tmp_path / "in" / "odd.png", odd)
    save(tmp_path / "in" / "same.png", stroke_digits(1, seed=9)[0][0])
    found, _ = collect([str(tmp_path / "in")])
    jobs, _ = plan_detection(found, heatmaps=str(tmp_path / "maps"))
    detector = Detector(load(calibration.export.path))
    [detection, same] = detect(jobs, detector)
    assert detection.error is None and detection.input_size == (37, 50)
    assert read(tmp_path / "maps" / "odd.raw.heatmap.png").shape == (50, 37)
    assert read(tmp_path / "maps" / "odd.heatmap.png").shape == (50, 37, 3)
    # smax grows with the area: a threshold set on 64×64 tiles flagged normal 256×256 crops, unsaid (trial 89)
    assert detection.notes[-1].startswith(
        "scored at 40×52, 2.65× the pixels of the calibration images (784 pixels): the score's smax"
    )
    assert same.error is None and not any("smax" in note for note in same.notes)
    assert detector.size_note(20, 20) is None and "2.06× fewer pixels than" in str(detector.size_note(19, 20))
    with pytest.raises(ValueError, match=r"^size_note takes an image's height and width, each ≥ 1, got 0×0$"):
        detector.size_note(0, 0)  # a ZeroDivisionError (trial 100)


def test_a_model_of_multiples_of_8_is_checked_calibrated_evaluated_and_timed_on_28x28_digits(
    data_dir, tmp_path, monkeypatch
):
    """28×28 did not fit a multiple of 8: check ran its 24×24 output, calibrate failed in its own runtime check
    ("broadcast … 24 by 28"), evaluate --data-dir, evaluate --anomaly and bench refused the digits."""
    from test_models import Eights

    from aetool import bench
    from aetool.check import reference
    from aetool.models import KINDS, REGISTRY, ModelSpec
    from aetool.runtime.anomaly_evaluation import idx_scores
    from aetool.runtime.evaluate import evaluate

    monkeypatch.setitem(KINDS, Eights, "conv")
    monkeypatch.setitem(REGISTRY, "eights", ModelSpec("eights", "a contributor's model", Eights))
    run = tmp_path / "eights"
    config = TrainConfig("eights", data_dir=str(data_dir), classes=("1",), patch=24, epochs=1)
    train(config, run_dir=run, progress=False, **QUIET)
    calibration = calibrate_run(run, options=CalibrationOptions(), **QUIET)
    model = load(calibration.export.path)
    assert {case.inputs.shape[-2:] for case in reference(model.path).cases} == {(32, 32), (32, 48)}
    assert calibration.export.checked_in[model.path].results[0].ok  # onnxruntime ran its 32×32 cases
    scores, labels = idx_scores(Detector(model), data_dir)
    assert scores.shape == labels.shape == (64,) and np.isfinite(scores).all()
    evaluation = evaluate(model, data_dir)
    assert evaluation.n == 64 and 0 < evaluation.mse < 1
    assert bench.image_size(model, None) == (32, 32)


def _photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A bright, smooth colour field (H×W×3 uint8): a stand-in for a photograph."""
    coarse = rng.uniform(0.5, 0.9, (3, 4, 4))
    smooth = np.stack([np.kron(plane, np.ones((size // 4, size // 4))) for plane in coarse])
    return np.round(smooth.transpose(1, 2, 0) * 255).astype(np.uint8)


def test_a_conv_detector_of_photos_does_not_score_the_padding_of_an_odd_size(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(24):
        save(tmp_path / "normal" / f"{i}.png", _photo(rng, 32))
    config = TrainConfig("conv-deconv", data=str(tmp_path / "normal"), epochs=2)
    train(config, run_dir=tmp_path / "run", progress=False, **QUIET)
    detector = Detector(load(calibrate_run(tmp_path / "run", **QUIET).export.path))
    full = _photo(rng, 32)
    save(tmp_path / "in" / "full.png", full)
    save(tmp_path / "in" / "crop.png", full[:29, :31])  # padded to 32×32
    found, _ = collect([str(tmp_path / "in")])
    scores = {Path(d.path).stem: d.score for d in detect(plan_detection(found, heatmaps=None)[0], detector)}
    assert detector.spec is not None
    quantiles = detector.spec.calibration["quantiles"]  # of the calibration images' scores
    width = quantiles["1"] - quantiles["0"]
    assert abs(scores["crop"] - scores["full"]) < width, (scores, quantiles)  # black padding: far above the range
    lines: list[str] = []
    calibrate_run(
        tmp_path / "run",
        out=tmp_path / "seen.onnx",
        options=CalibrationOptions(data=str(tmp_path / "normal")),
        echo=lines.append,
    )
    assert any(
        line.startswith(f"warning: {tmp_path / 'normal'} is where the run's training images are") for line in lines
    )
    lines.clear()
    for i in range(4):
        save(tmp_path / "fresh" / f"{i}.png", _photo(rng, 32))
    options = CalibrationOptions(data=str(tmp_path / "fresh"))
    calibrate_run(tmp_path / "run", out=tmp_path / "new.onnx", options=options, echo=lines.append)
    assert not any("training images" in line for line in lines)


def test_half_a_detector_is_a_model_file_error(one_class, tmp_path):
    proto = onnx.load(one_class[1].export.path)
    kept = [prop for prop in proto.metadata_props if prop.key != contract.ANOMALY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, tmp_path / "half.onnx")
    with pytest.raises(ModelFileError, match="half a detector"):
        Detector(load(tmp_path / "half.onnx"))
    proto.metadata_props.add(key=contract.ANOMALY, value='{"components": ["ssim"], "mean": [0], "std": [-1]}')
    onnx.save(proto, tmp_path / "broken.onnx")
    with pytest.raises(ModelFileError, match="'std' must be positive"):
        Detector(load(tmp_path / "broken.onnx"))


@pytest.mark.parametrize("calibrated", [True, False])
def test_a_detector_scores_grey_images_without_a_channel_axis(one_class, real_models, calibrated):
    model = load(one_class[1].export.path if calibrated else real_models["deep"])
    grey = (stroke_digits(3, seed=13)[0] / 255).astype(np.float32)  # N×H×W
    flat, channelled = Detector(model).run(grey), Detector(model).run(grey[:, None])
    assert flat.maps.shape == flat.reconstructions.shape == (3, 1, 28, 28) and flat.scores.shape == (3,)
    for got, want in zip(vars(flat).values(), vars(channelled).values(), strict=True):
        np.testing.assert_array_equal(got, want)


# ---- the commands ----


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Synthetic digits as PNGs: one-stroke ones under normal/, the others under anomalous/."""
    root = tmp_path_factory.mktemp("digit-files")
    images, labels = stroke_digits(30, seed=11)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        save(root / ("normal" if label == 1 else "anomalous") / f"{i:02d}.png", image)
    return root


def test_train_with_classes_ends_with_a_detector(data_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "ae64", "--classes", "1", "--epochs", "1", "--data-dir", str(data_dir), "-o", str(out)]
    result = runner.invoke(app, [*args, "--quiet", "--allow-trivial"])
    assert result.exit_code == 0, result.output
    assert "calibrated ssim+smax+wmse on" in result.output and "class 1" in result.output
    assert load(out / "model.onnx").metadata[contract.ANOMALY]["classes"] == ["1"]


def test_detect_prints_a_verdict_per_image_and_writes_heatmaps(one_class, digits, tmp_path):
    model = str(one_class[1].export.path)
    result = runner.invoke(app, ["detect", str(digits), "-r", "-m", model, "--heatmaps", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 30 and all(r["threshold"] == one_class[1].spec.threshold for r in records)
    assert all(r["anomalous"] == (r["score"] > r["threshold"]) for r in records)
    assert set(records[0]["components"]) == {"ssim", "smax", "wmse"} and records[0]["mse"] > 0
    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()  # which detector scored it (left open before)
    assert all(r["model"] == "anomaly" and r["model_sha256"] == digest for r in records)
    flagged = sum(r["anomalous"] for r in records)
    assert "30 images: " in result.stderr and f"{flagged} anomalous" in result.stderr
    first = records[0]
    name = Path(first["path"]).relative_to(digits).with_suffix(".heatmap.png")
    assert first["heatmap"] == str(tmp_path / name) and read(first["heatmap"]).shape == (28, 28, 3)
    raw = read(first["raw_heatmap"])
    assert raw.dtype == np.uint16 and abs(raw.max() / 65535 - first["map_max"]) < 1e-4
    for written in (first["heatmap"], first["raw_heatmap"]):  # compressed fast: zlib level 1 (images.FAST_PNG)
        png = Path(written).read_bytes()
        assert png[png.index(b"IDAT") + 4 :][:2] == b"\x78\x01"
    low = runner.invoke(app, ["detect", str(digits / "normal"), "-m", model, "--threshold", "-1e9"])
    assert low.exit_code == 0 and all(line.endswith("\tanomalous") for line in low.stdout.splitlines())
    assert "trained on grey 28×28" not in result.stderr + low.stderr  # digits, as the detector was trained on
    photo = save(tmp_path / "photo.png", np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    other = runner.invoke(app, ["detect", str(photo), "-m", model, "--resize"])  # a digit detector on a photo
    assert other.exit_code == 0 and "this detector was trained on grey 28×28 images (mnist): on other" in other.stderr


def test_images_whose_heatmaps_cannot_be_written_keep_their_verdicts_in_the_summary(one_class, digits, tmp_path):
    """The summary counted them as failed only, so it told 5 anomalous where 90 were printed (trial 85)."""
    model = str(one_class[1].export.path)
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "anomalous").write_text("a file where the anomalous images' heatmaps would go")
    scores = [
        json.loads(line)["score"]
        for line in runner.invoke(app, ["detect", str(digits), "-r", "-m", model, "--json"]).stdout.splitlines()
    ]
    median = f"{np.median(scores):.9g}"  # both verdicts among the images
    argv = ["detect", str(digits), "-r", "-m", model, "--heatmaps", str(tmp_path / "maps"), "--threshold", median]
    result = runner.invoke(app, argv)
    verdicts = Counter(line.rsplit("\t", 1)[1] for line in result.stdout.splitlines())
    unwritten = len(list((digits / "anomalous").iterdir()))
    assert result.exit_code == 1 and verdicts["anomalous"] > 0 and verdicts["normal"] > 0 and unwritten > 0
    summary = f"30 images: {verdicts['anomalous']} anomalous, {verdicts['normal']} normal, {unwritten} whose heatmaps"
    assert summary in result.stderr and " failed" not in result.stderr.splitlines()[-1]


def test_detect_says_what_it_did_to_images_on_their_way_to_the_score(digits, real_models, tmp_path):
    normal = sorted((digits / "normal").iterdir())

    def dark_on_light_colour(image: Path) -> np.ndarray:
        light = 255 - read(image).astype(float)
        return np.round(np.stack([light, light, 0.9 * light], axis=2)).astype(np.uint8)

    light = save(tmp_path / "few" / "light.png", dark_on_light_colour(normal[0]))
    model = str(real_models["deep"])  # grey, white-on-black
    few = runner.invoke(app, ["detect", str(light), str(normal[1]), "-m", model])
    assert few.exit_code == 0, few.output
    assert f"{light}: RGB → grey (luma) for the model, which takes grey images" in few.stderr
    assert f"{light}: dark on light: inverted to MNIST's white on black (--no-invert: not)" in few.stderr
    assert str(normal[1]) not in few.stderr and "2 images: 2 scored (score mse," in few.stderr
    for i, image in enumerate(normal[:5]):
        save(tmp_path / "many" / f"{i}.png", dark_on_light_colour(image))
    many = runner.invoke(app, ["detect", str(tmp_path / "many"), "-m", model])
    assert many.exit_code == 0 and "5 converted RGB → grey (luma); 5 inverted (dark on light)) in" in many.stderr
    argv = ["evaluate", "--anomaly", "--normal", str(tmp_path / "many"), "--anomalous", str(digits / "anomalous")]
    measured = runner.invoke(app, [*argv, "-m", model])
    assert measured.exit_code == 0, measured.output
    assert "5 images converted RGB → grey (luma)" in measured.stderr
    assert "5 images inverted (dark on light) for the model's white-on-black world" in measured.stderr


def test_scores_below_the_calibration_scores_lower_fence_are_called_unusually_low(one_class, digits, tmp_path):
    path = one_class[1].export.path
    detector = Detector(load(path))
    quantiles = detector.spec.calibration["quantiles"]  # type: ignore[union-attr]
    iqr = quantiles["0.75"] - quantiles["0.25"]
    assert detector.low_fence == pytest.approx(quantiles["0.25"] - 1.5 * iqr)  # Tukey's lower fence
    normal = runner.invoke(app, ["detect", str(digits / "normal"), "-m", str(path), "--json"])
    records = [json.loads(line) for line in normal.stdout.splitlines()]
    low = sum(r["unusually_low"] for r in records)
    assert low <= 1 and all(r["unusually_low"] == (r["score"] < detector.low_fence) for r in records)
    proto = onnx.load(path)  # the same detector, its calibration quartiles moved above every normal score
    for prop in proto.metadata_props:
        if prop.key == contract.ANOMALY:
            record = json.loads(prop.value)
            record["calibration"]["quantiles"].update({"0.25": 1e6, "0.75": 1e6})
            prop.value = json.dumps(record)
    onnx.save(proto, tmp_path / "moved.onnx")
    many = runner.invoke(app, ["detect", str(digits / "normal"), "-m", str(tmp_path / "moved.onnx")])
    assert many.exit_code == 0 and f"; {len(records)} unusually low) in" in many.stderr
    assert f"{len(records)} scored unusually low (below 1e+06, the calibration scores' Q1 − 1.5 × IQR)" in many.stderr
    one = sorted((digits / "normal").iterdir())[0]
    few = runner.invoke(app, ["detect", str(one), "-m", str(tmp_path / "moved.onnx")])
    assert f"{one}: score unusually low for a normal image (normal by the threshold, but" in few.stderr
    flagged = runner.invoke(app, ["detect", str(one), "-m", str(tmp_path / "moved.onnx"), "--threshold", "-1e9"])
    assert flagged.stdout.endswith("\tanomalous\n") and "unusually low" not in flagged.stderr  # anomalous already


def test_detect_scores_each_image_of_a_stream_on_stdin(one_class, digits, tmp_path):
    """A stream of images piped in: only the first was scored, the rest dropped with exit 0 (trial 60)."""
    path = one_class[1].export.path
    files = [*sorted((digits / "normal").iterdir())[:2], sorted((digits / "anomalous").iterdir())[0]]
    stream = b"".join(file.read_bytes() for file in files)
    maps = tmp_path / "maps"
    piped = runner.invoke(app, ["detect", "-", "-m", str(path), "--heatmaps", str(maps)], input=stream)
    each = [runner.invoke(app, ["detect", str(file), "-m", str(path)]).stdout.split("\t", 1)[1] for file in files]
    assert piped.exit_code == 0 and piped.stdout.splitlines() == [
        f"-:{number}\t{line.rstrip()}" for number, line in enumerate(each, start=1)
    ]
    assert sorted(p.name for p in maps.iterdir()) == sorted(
        f"stdin-00000{number}{kind}.heatmap.png" for number in (1, 2, 3) for kind in ("", ".raw")
    )


def test_calibration_images_that_overlap_the_training_images_are_found(tmp_path):
    from aetool.export.detector import trained_on

    for folder in ("inspect/good", "inspect/scratch", "inspect/good_held", "other"):
        save(tmp_path / folder / "0.png", np.zeros((8, 8), np.uint8))
    folder = TrainConfig("anomaly", data=str(tmp_path / "inspect"))
    assert trained_on(folder, str(tmp_path / "inspect" / "good"))  # inside
    assert trained_on(folder, str(tmp_path / "inspect" / "good" / "*.png"))  # a glob inside
    assert trained_on(folder, str(tmp_path))  # around it
    assert not trained_on(folder, str(tmp_path / "other"))
    one_class = TrainConfig("anomaly", data=str(tmp_path / "inspect"), classes=("good",))
    assert trained_on(one_class, str(tmp_path / "inspect" / "good")) and trained_on(
        one_class, str(tmp_path / "inspect")
    )
    assert not trained_on(one_class, str(tmp_path / "inspect" / "good_held"))  # a subfolder it did not learn
    moved = TrainConfig("anomaly", data=str(tmp_path / "moved-away"))  # the training folder is gone: was taken as a
    assert not trained_on(moved, str(tmp_path / "other"))  # file in tmp_path, which holds every folder here
    single = TrainConfig("anomaly", data=str(tmp_path / "other" / "0.png"))  # one image file: its folder
    assert trained_on(single, str(tmp_path / "other")) and not trained_on(single, str(tmp_path / "inspect"))


def test_evaluate_says_when_the_normal_images_are_those_its_run_trained_on(one_class, digits, tmp_path):
    """calibrate warned of it; evaluate --anomaly gave FPR and AUROC on the training images without a word (trial
    85). The run folder beside the detector's file tells: its metrics.json's data and classes."""
    from aetool.runtime.anomaly_evaluation import evaluate_folders, evaluate_labelled

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(one_class[1].export.path, run / "model.onnx")
    normal, anomalous = str(digits / "normal"), str(digits / "anomalous")
    assert evaluate_folders(run / "model.onnx", normal, anomalous).notes == []  # no run folder: nothing known
    for trained, classes in ((normal, None), (str(digits), ["normal"])):
        (run / "metrics.json").write_text(json.dumps({"config": {"data": trained, "classes": classes}}))
        said = f"--normal {normal} holds images the detector's run trained on (--data {trained}, in {run / 'metrics.json'})"
        assert evaluate_folders(run / "model.onnx", normal, anomalous).notes[-1].startswith(said)
        labelled = evaluate_labelled(run / "model.onnx", str(digits), classes="normal").notes
        assert labelled[-1].startswith(f"--data {digits} holds images the detector's run trained on")
    argv = ["evaluate", "--anomaly", "-m", str(run / "model.onnx"), "--normal", normal, "--anomalous", anomalous]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0 and f"aetool: --normal {normal} holds images the detector's run" in result.stderr
    (run / "metrics.json").write_text(json.dumps({"config": {"data": str(tmp_path / "elsewhere"), "classes": None}}))
    assert evaluate_folders(run / "model.onnx", normal, anomalous).notes == []


def test_a_perfect_reconstruction_scores_the_lowest_and_a_fence_below_it_is_said(one_class, tmp_path, monkeypatch):
    spec = one_class[1].spec
    zero = anomaly.standardised_sum(np.zeros((1, len(spec.components))), spec.mean, spec.std)[0]
    assert spec.perfect_score == pytest.approx(zero) and spec.perfect_score < spec.calibration["quantiles"]["0"]
    lines: list[str] = []
    calibrate_run(one_class[0], out=tmp_path / "a.onnx", options=CalibrationOptions(fpr=0.1), echo=lines.append)
    assert not any(line.startswith("note: the calibration scores spread") for line in lines)
    monkeypatch.setattr(anomaly.AnomalySpec, "low_fence", property(lambda self: self.perfect_score - 1))
    calibrate_run(one_class[0], out=tmp_path / "b.onnx", options=CalibrationOptions(fpr=0.1), echo=lines.append)
    [said] = [line for line in lines if line.startswith("note: the calibration scores spread")]
    assert "detect will mark no image unusually low, so blank or blurred frames pass as normal unseen" in said
    assert "check such frames another way" in said and "more alike" not in said  # advice that could not be followed


def test_detect_refuses_heatmaps_that_name_a_file_before_scoring(digits, real_models, tmp_path):
    taken = tmp_path / "maps.png"
    taken.write_bytes(b"mine")
    argv = ["detect", str(digits / "normal"), "-m", str(real_models["deep"]), "--heatmaps", str(taken)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and f"--heatmaps {taken} is a file; it takes a folder" in result.stderr
    assert result.stdout == "" and taken.read_bytes() == b"mine"
    below = taken / "sub"  # each image was scored and printed, then failed its heatmaps: a verdict and a failure
    result = runner.invoke(app, [*argv[:-1], str(below)])
    assert result.exit_code == 2 and f"--heatmaps {below} is below {taken}, a file; it takes a folder" in result.stderr
    assert result.stdout == ""


def test_two_inputs_that_would_share_heatmaps_are_both_scored_and_the_second_names_the_heatmap_file(
    digits, real_models, tmp_path
):
    """The second image was refused before scoring: no score, no verdict, only the clash."""
    first = digits / "normal" / sorted(p.name for p in (digits / "normal").iterdir())[0]
    twin = save(tmp_path / "in" / f"{first.stem}.bmp", read(first))
    argv = ["detect", str(first), str(twin), "-m", str(real_models["deep"]), "--heatmaps", str(tmp_path / "maps")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    clash = f"{tmp_path / 'maps' / first.stem}.heatmap.png is already the output of {first}"
    assert f"{twin}: {clash}" in result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(first), str(twin)]
    records = [json.loads(line) for line in runner.invoke(app, [*argv, "--json"]).stdout.splitlines()]
    assert records[1]["score"] == pytest.approx(records[0]["score"]) and records[1]["error"] == clash
    assert records[1]["heatmap"] is None and records[0]["heatmap"] is not None
    raw_twin = save(tmp_path / "in" / f"{first.stem}.raw.png", read(first))  # its colour map: first's raw map's name
    result = runner.invoke(app, ["detect", str(first), str(raw_twin), *argv[3:], "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1 and records[1]["score"] is not None and records[1]["heatmap"] is None
    assert records[1]["error"] == f"{tmp_path / 'maps' / first.stem}.raw.heatmap.png is already the output of {first}"
    assert read(tmp_path / "maps" / f"{first.stem}.raw.heatmap.png").dtype == np.uint16  # first's raw map, kept


def test_detect_with_a_model_not_calibrated_gives_mse_without_a_threshold(digits, real_models):
    result = runner.invoke(app, ["detect", str(digits / "normal"), "-m", str(real_models["deep"]), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["threshold"] is None and r["anomalous"] is None and r["score_name"] == "mse" for r in records)
    assert all(r["unusually_low"] is None for r in records)  # was false: nothing to judge it by
    assert all(r["score"] == pytest.approx(r["mse"]) for r in records)
    assert "not calibrated" in result.stderr


def test_evaluate_anomaly_on_idx_digits_folders_and_labelled_folders(one_class, data_dir, digits):
    model = str(one_class[1].export.path)
    idx = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, "--data-dir", str(data_dir), "--json"])
    assert idx.exit_code == 0, idx.output
    record = json.loads(idx.stdout)
    labels = stroke_digits(64, 1)[1]
    assert (record["n_normal"], record["n_anomalous"]) == ((labels == 1).sum(), (labels != 1).sum())
    assert 0 <= record["auroc"] <= 1 and record["normal"] == "class 1"  # the classes the file records
    assert set(record["at_threshold"]) >= {"precision", "recall", "f1", "fpr"}
    sides = ["--normal", str(digits / "normal"), "--anomalous", str(digits / "anomalous")]
    folders = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, *sides])
    assert folders.exit_code == 0 and folders.stdout.startswith("AUROC ") and "at threshold" in folders.stdout
    assert (
        f"normal ({digits / 'normal'}) and " in folders.stdout
        and f"anomalous images of {digits / 'anomalous'}," in folders.stdout
    )
    labelled = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, "--data", str(digits), "--classes", "normal"])
    assert labelled.exit_code == 0 and labelled.stdout.split(",")[0] == folders.stdout.split(",")[0]
    twice = ["--normal", str(digits), "--anomalous", str(digits / "anomalous")]  # gave AUROC 50 % for one folder
    both = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, *twice])
    anomalous = len(list((digits / "anomalous").iterdir()))
    assert both.exit_code == 2 and f"error: {anomalous} images are both normal and anomalous" in both.stderr
    idx_args = ["evaluate", "--anomaly", "-m", model, "--data-dir", str(data_dir), "--classes", "good"]
    good = runner.invoke(app, idx_args)  # a folder detector's class on IDX digits: every digit was "anomalous"
    assert (
        good.exit_code == 2 and f"error: no digit of {data_dir} (test) is labelled good: its labels are " in good.stderr
    )
    wrong = runner.invoke(
        app, ["evaluate", "--anomaly", "-m", model, "--data", str(digits), "--classes", "normal,nope"]
    )
    assert wrong.exit_code == 2 and f"no image of {digits} is in a subfolder nope; it has " in wrong.stderr  # was run


def test_the_evaluate_functions_take_a_model_or_path_and_read_classes_as_the_command_line_does(
    one_class, data_dir, digits
):
    path = one_class[1].export.path
    recorded = evaluate_idx(str(path), data_dir)  # a path (was an AttributeError), the classes the file records
    assert recorded.normal == "class 1"
    for classes in ("1", " 1", ["1"], (1,), 1):  # (1,) was a TypeError, after scoring; 1 refused (trial 88)
        assert evaluate_idx(load(path), data_dir, classes=classes).auroc == recorded.auroc
    labels = stroke_digits(64, 1)[1]
    two = evaluate_idx(Detector(path), data_dir, classes="1,3")  # was "no digit … is labelled ,"
    assert two.normal == "class 1,3" and two.n_normal == np.isin(labels, [1, 3]).sum()
    with pytest.raises(DataError, match="is labelled 10: its labels are"):  # "10" was read as the classes 1 and 0
        evaluate_idx(path, data_dir, classes="10")
    for wrong in ({"1"}, "1,,7", ("1", "1"), [True]):
        with pytest.raises(ValueError, match="--classes takes labels separated by commas"):
            evaluate_idx(path, data_dir, classes=wrong)
    with pytest.raises(TypeError, match="a model is a bundled name or a path"):
        evaluate_idx(3, data_dir)  # type: ignore[arg-type]
    folders = evaluate_folders(path, str(digits / "normal"), str(digits / "anomalous"))
    assert evaluate_labelled(str(path), str(digits), classes="normal").auroc == folders.auroc
    argv = ["evaluate", "--anomaly", "-m", str(path), "--data-dir", str(data_dir), "--classes", "1,,7"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and result.stderr.startswith("aetool: error: --classes takes labels separated")


def test_evaluate_anomaly_leaves_out_and_lists_images_outside_the_class_subfolders(one_class, digits, tmp_path):
    model = str(one_class[1].export.path)
    labelled = tmp_path / "labelled"
    for side in ("normal", "anomalous"):
        for image in (digits / side).iterdir():
            save(labelled / side / image.name, read(image))
    save(labelled / "loose.png", read(next((digits / "normal").iterdir())))
    args = ["evaluate", "--anomaly", "-m", model, "--data", str(labelled), "--classes", "normal", "--json"]
    result = runner.invoke(app, args)
    record = json.loads(result.stdout)
    counts = [len(list((digits / side).iterdir())) for side in ("normal", "anomalous")]
    assert result.exit_code == 1 and [record["n_normal"], record["n_anomalous"]] == counts
    assert "loose.png: in no subfolder of --data, so it has no class label" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_detect_refuses_a_threshold_that_is_not_finite(digits, real_models, value):
    argv = ["detect", str(digits / "normal"), "-m", str(real_models["deep"]), "--threshold", value]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "--threshold takes a finite number" in result.stderr and result.stdout == ""


def test_evaluate_anomaly_names_why_a_side_could_not_be_scored(one_class, digits, tmp_path):
    model = str(one_class[1].export.path)
    save(tmp_path / "big" / "a.png", np.zeros((40, 40), np.uint8))
    sides = ["--normal", str(digits / "normal"), "--anomalous", str(tmp_path / "big")]
    result = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, *sides])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "every scored image is normal" in result.stderr and "1 could not be scored, the first" in result.stderr
    assert "the model takes 28×28 images (width×height), this one is 40×40; pass --resize" in result.stderr
    flat = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, "--data", str(digits / "normal")])
    assert flat.exit_code == 2 and "it has no subfolders, whose names would label the images" in flat.stderr
    save(tmp_path / "big2" / "b.png", np.zeros((40, 40), np.uint8))
    none = runner.invoke(app, ["evaluate", "--anomaly", "-m", model, *sides[2:], "--normal", str(tmp_path / "big2")])
    assert none.exit_code == 2 and none.stderr.startswith(
        f"aetool: error: no image was scored; 2 could not be scored, the first {tmp_path / 'big2' / 'b.png'}: "
    )  # was "every scored image is normal (0)"


def test_evaluate_idx_checks_the_classes_before_scoring_a_digit(one_class, data_dir, monkeypatch):
    """A class no digit has, or classes naming every digit there, failed only after the whole split was scored
    (trial 83)."""
    path = one_class[1].export.path
    runs = []
    monkeypatch.setattr(Detector, "run", lambda self, batch: runs.append(batch))
    with pytest.raises(DataError, match="is labelled good: its labels are"):
        evaluate_idx(path, data_dir, classes="good")
    with pytest.raises(DataError, match=r"^every image is normal \(64\); AUROC needs normal and anomalous images$"):
        evaluate_idx(path, data_dir, classes="1,2,3")  # every label of the synthetic split
    assert runs == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--normal", "a"], "--normal and --anomalous go together"),
        (["--data", "a", "--data-dir", "b"], "name two sets of images"),
        (["--noise", "0.1"], "scores images as they are"),
    ],
)
def test_evaluate_anomaly_usage_errors(args, message):
    result = runner.invoke(app, ["evaluate", "--anomaly", *args])
    assert result.exit_code == 2 and message in result.output


def test_evaluate_without_anomaly_refuses_its_options():
    result = runner.invoke(app, ["evaluate", "--classes", "3"])
    assert result.exit_code == 2 and "go with --anomaly" in result.output


def test_an_uncalibrated_model_needs_classes(real_models, data_dir):
    result = runner.invoke(app, ["evaluate", "--anomaly", "-m", str(real_models["deep"]), "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "pass --classes" in result.output


def test_bench_refuses_to_set_a_detector_beside_its_autoencoder_in_pytorch(one_class):
    run, calibration = one_class
    argv = ["bench", "--model", str(calibration.export.path), "--compare-torch", str(run), "--seconds", "0.02"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "is an anomaly detector" in result.stderr and "plain export" in result.stderr


def test_export_anomaly_writes_no_variants(one_class):
    result = runner.invoke(app, ["export", str(one_class[0]), "--anomaly", "--int8"])
    assert result.exit_code == 2 and "fp32 only" in result.output


def test_detect_and_evaluate_anomaly_never_import_torch(one_class, digits, data_dir, tmp_path):
    save(tmp_path / "a.png", stroke_digits(1)[0][0])
    model, folder = str(one_class[1].export.path), str(tmp_path)
    done = run_torch_free(
        [
            ["detect", folder, "-m", model, "--heatmaps", folder + "/maps"],
            ["evaluate", "--anomaly", "-m", model, "--data-dir", str(data_dir)],
        ]
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().endswith("torch-free") and (tmp_path / "maps" / "a.heatmap.png").is_file()


def test_the_one_class_page_tables_figures_and_numbers(data_dir, tmp_path):
    from aetool.report.oneclass import build_oneclass_report

    options = {"data_dir": data_dir, "runs": tmp_path / "runs", "datasets": ("mnist",), "classes": (1, 2), "epochs": 1}
    index, results = build_oneclass_report(tmp_path / "page", **options, **QUIET)
    assert [(r.normal, r.trained_now) for r in results] == [(1, True), (2, True)]
    numbers = json.loads((tmp_path / "page" / "oneclass.json").read_text())
    assert [c["published"] for c in numbers["classes"]] == [99.7, 91.7]
    assert numbers["summary"]["datasets"]["mnist"]["published_mean"] == pytest.approx(95.7)
    assert all(0 <= c["auroc"] <= 100 and c["seconds"]["train"] > 0 for c in numbers["classes"])
    page = (tmp_path / "page" / "README.md").read_text()
    assert "One-Class Deep SVDD" in page and "figures/mnist-heatmaps.png" in page and index.is_file()
    assert "<th></th>" not in index.read_text()  # "Where it ran" had two headers with no name (a screen reader's find)
    assert "MSE, 1 epoch, 20 % of the class held out" in page  # the runs' own settings
    assert "run with aetool's settings but SHORT RUNS: aetool train anomaly" in page  # said "aetool's defaults"
    assert "SHORT RUNS: 1 epoch where aetool's default is 15 (--quick or --epochs)" in page
    assert "The bar of 97.0 % is for runs trained with aetool's defaults, not these short ones." in page
    assert numbers["summary"]["datasets"]["mnist"]["meets_bar"] is None and numbers["summary"]["short_runs"]
    assert read(tmp_path / "page" / "figures" / "mnist-histograms.png").ndim == 3
    (tmp_path / "runs" / "mnist" / "class-2" / "timing.json").write_text('{"train_seconds": 3.')  # cut by a kill
    again = build_oneclass_report(tmp_path / "page", **options, **QUIET)[1]
    assert [r.trained_now for r in again] == [False, False] and again[0].auroc == results[0].auroc
    metrics = json.loads((tmp_path / "runs" / "mnist" / "class-2" / "metrics.json").read_text())
    assert again[1].train_seconds == metrics["run"]["seconds"]  # its epochs' time, as metrics.json records it
    assert again[1].calibrate_seconds is None and again[0].calibrate_seconds == results[0].calibrate_seconds
    checkpoint = (tmp_path / "runs" / "mnist" / "class-1" / "checkpoint.pt").read_bytes()
    with pytest.raises(AetoolError, match=r"would train over runs of yours \(.*class-1: trained with other settings"):
        build_oneclass_report(tmp_path / "page", **{**options, "epochs": 2}, **QUIET)  # it trained over, unasked
    assert (tmp_path / "runs" / "mnist" / "class-1" / "checkpoint.pt").read_bytes() == checkpoint
    with pytest.raises(TypeError, match=r"^echo takes a function of one line of text"):
        build_oneclass_report(tmp_path / "other", **options, echo="x")  # type: ignore[arg-type]  # trial 83
    for switch in ("retrain", "train_again"):  # "no" trained over your runs
        with pytest.raises(TypeError, match=rf"^{switch} takes True or False, got 'no'$"):
            build_oneclass_report(tmp_path / "other", **options, **{switch: "no"})
    assert not (tmp_path / "other").exists()


def test_the_one_class_page_takes_your_own_run_as_it_is_and_names_how_it_was_trained(data_dir, tmp_path):
    """A run of yours trained with another --lr was reused without a word, shown with the page's epochs, and its
    calibrated detector calibrated again (its file rewritten); a checkpoint copied from another run was scored as
    this class's; --runs naming one class's folder trained new runs inside it."""
    from aetool.report.oneclass import build_oneclass_report

    mine = tmp_path / "runs" / "mnist" / "class-1"
    common = [
        "train",
        "anomaly",
        "--classes",
        "1",
        "--data-dir",
        str(data_dir),
        "--epochs",
        "2",
        "-q",
        "--allow-trivial",
    ]
    assert runner.invoke(app, [*common, "--lr", "0.002", "-o", str(mine)]).exit_code == 0
    detector = (mine / "model.onnx").read_bytes()
    options = {"data_dir": data_dir, "runs": tmp_path / "runs", "datasets": ("mnist",), "classes": (1,), "epochs": 1}
    lines: list[str] = []
    result = build_oneclass_report(tmp_path / "page", **options, echo=lines.append)[1][0]
    assert not result.trained_now and result.epochs == 2 and result.trained_with[0].startswith("--lr 0.002 (not ")
    assert any(line.startswith("oneclass: mnist class 1: reusing it (trained with --lr 0.002") for line in lines)
    assert (
        "Reused runs optimised otherwise than aetool's settings: mnist class 1 (--lr 0.002"
        in (tmp_path / "page" / "README.md").read_text()
    )
    assert (mine / "model.onnx").read_bytes() == detector and result.calibrate_seconds is None
    assert result.train_seconds == json.loads((mine / "metrics.json").read_text())["run"]["seconds"]
    assert " — s in all" not in (tmp_path / "page" / "README.md").read_text()  # trial 95
    metrics = json.loads((mine / "metrics.json").read_text())
    metrics["baselines"]["mean_image"] = metrics["history"][-1]["test_mse"]  # a run that learned nothing useful
    (mine / "metrics.json").write_text(json.dumps(metrics))
    lines.clear()
    result = build_oneclass_report(tmp_path / "page", **options, echo=lines.append)[1][0]
    assert result.learned_nothing and result.learned_nothing.endswith("the model has learned nothing useful")
    assert any(line.endswith("; the page shows what it does all the same") for line in lines)
    assert (
        "Runs that beat no trivial output by 10 %: mnist class 1 (test MSE"
        in (tmp_path / "page" / "README.md").read_text()
    )  # reused without a word, as the main report's notes column says it (trial 95)
    metrics["history"][-1]["test_mse"] = None  # a run not scored: the check was a TypeError (trial 97)
    (mine / "metrics.json").write_text(json.dumps(metrics))
    assert build_oneclass_report(tmp_path / "page", **options, **QUIET)[1][0].learned_nothing is None
    with pytest.raises(AetoolError, match=r"--runs .*class-1 is one run's folder"):
        build_oneclass_report(tmp_path / "page", **{**options, "runs": mine}, **QUIET)
    other = tmp_path / "other"
    assert runner.invoke(app, [*common, "--seed", "1", "--no-export", "-o", str(other)]).exit_code == 0
    (mine / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(AetoolError, match=r"its checkpoint\.pt is another run.s than its metrics\.json"):
        build_oneclass_report(tmp_path / "page", **options, **QUIET)


def test_the_one_class_report_on_a_folder_of_own_images_points_to_evaluate_anomaly(digits, tmp_path):
    result = runner.invoke(app, ["report", "--anomaly", "--data-dir", str(digits), "-o", str(tmp_path / "page")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"data folder {digits} lacks" in result.stderr
    assert (
        "(report --anomaly is the one-class benchmark of MNIST and Fashion-MNIST; for your own images: aetool "
        "evaluate --anomaly --data or --normal/--anomalous)" in result.stderr
    )


def test_the_one_class_report_checks_every_datasets_folder_before_training(tmp_path):
    from aetool.errors import AetoolError
    from aetool.report.oneclass import build_oneclass_report

    mnist = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
    if not mnist.is_dir():
        pytest.skip("needs ../shared/data/mnist")
    options = {"data_dir": mnist, "runs": tmp_path / "runs", "classes": (1,), "epochs": 1}
    with pytest.raises(
        AetoolError, match=r"holds mnist, not fashion-mnist; the one-class report reads mnist and fashion"
    ):
        build_oneclass_report(tmp_path / "page", **options, **QUIET)
    assert not (tmp_path / "runs").exists()  # nothing trained for MNIST first


def test_evaluate_idx_reads_the_detectors_dataset_as_the_command_does(one_class):
    """The library scored an MNIST detector on Fashion-MNIST without a word (AUROC 61.7 %) and refused the folder
    holding mnist/ and fashion-mnist/, both of which the command handles (trial 86)."""
    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not (shared / "mnist").is_dir() or not (shared / "fashion-mnist").is_dir():
        pytest.skip("needs ../shared/data/mnist and fashion-mnist")
    path = one_class[1].export.path  # trained on the synthetic look-alike, recorded as mnist
    with pytest.raises(DataError, match=r"holds fashion-mnist, not mnist"):
        evaluate_idx(path, shared / "fashion-mnist", limit=20)
    both = evaluate_idx(path, shared, limit=40)  # the folder of both: its mnist/
    assert both.data == f"{shared / 'mnist'} (test)" and both.n_normal + both.n_anomalous == 40
    assert evaluate_idx(path, shared, dataset="fashion-mnist", limit=40).data == f"{shared / 'fashion-mnist'} (test)"
    with pytest.raises(ValueError, match="dataset takes mnist or fashion-mnist"):
        evaluate_idx(path, shared, dataset="images")


def test_a_nan_score_is_anomalous_not_normal(one_class):
    detector = Detector(str(one_class[1].export.path))  # a path loads the model
    assert detector.threshold is not None
    assert detector.verdict(float("nan")) is True and detector.verdict(detector.threshold) is False
    assert detector.verdict(np.float32(detector.threshold + 1)) is True and detector.verdict(0) is False


@pytest.mark.parametrize("score", ["3", np.array([0.1, 9.0]), None, True])
def test_a_verdict_takes_one_score(one_class, score):
    """ "3" was a TypeError from a comparison, an array numpy's "truth value … is ambiguous" (trial 83)."""
    detector = Detector(str(one_class[1].export.path))
    with pytest.raises(TypeError, match=r"^verdict takes one score \(a number\), got .*; for an array of scores: "):
        detector.verdict(score)


def test_an_image_numpy_cannot_find_memory_for_is_a_failed_detection_not_the_end(one_class, tmp_path, monkeypatch):
    """Under ``ulimit -v`` numpy's MemoryError while scoring (the map's smoothing) ended detect, the images before
    it unreported; now the images it hit fail and the others are still scored."""
    from aetool.runtime import detect as detect_module

    for name in ("a", "b"):
        save(tmp_path / "in" / f"{name}.png", stroke_digits(1, seed=3)[0][0])
    detector = Detector(load(one_class[1].export.path))
    finish, no_memory = detect_module._finish, MemoryError("Unable to allocate 1.00 MiB for an array")
    run = detector.run

    def no_memory_for_b(item, *args):
        if item.job.label.endswith("b.png"):
            raise no_memory
        return finish(item, *args)

    monkeypatch.setattr(detect_module, "_finish", no_memory_for_b)
    jobs = plan_detection(collect([str(tmp_path / "in")])[0], heatmaps=None)[0]
    a, b = detect_module.detect(jobs, detector)
    assert a.error is None and a.score is not None
    assert b.error == (
        "not enough memory (Unable to allocate 1.00 MiB for an array); raise the memory limit, or pass fewer or "
        "smaller images at a time"
    )

    def no_memory_at_all(batch):
        raise no_memory

    monkeypatch.setattr(detector, "run", no_memory_at_all)
    assert [d.error == b.error for d in detect_module.detect(jobs, detector)] == [True, True]

    def no_memory_for_two(batch):  # both fit one at a time: they are scored so (they failed together)
        if len(batch) > 1:
            raise no_memory
        return run(batch)

    monkeypatch.setattr(detect_module, "_finish", finish)
    monkeypatch.setattr(detector, "run", no_memory_for_two)
    assert [d.error for d in detect_module.detect(jobs, detector)] == [None, None]


def test_every_heatmap_written_before_ctrl_c_has_its_record(one_class, tmp_path, monkeypatch):
    from aetool.runtime import detect as detect_module

    for name in ("a", "b", "c"):
        save(tmp_path / "in" / f"{name}.png", stroke_digits(1, seed=3)[0][0])
    detector = Detector(load(one_class[1].export.path))
    finish, finished = detect_module._finish, []

    def interrupted_at_the_third(*args):  # as a Ctrl-C that came while the third image's record was made
        if len(finished) == 2:
            raise KeyboardInterrupt
        finished.append(finish(*args))
        return finished[-1]

    monkeypatch.setattr(detect_module, "_finish", interrupted_at_the_third)
    found, _ = collect([str(tmp_path / "in")])
    settled = []
    with pytest.raises(KeyboardInterrupt):
        for detection in detect(plan_detection(found, heatmaps=str(tmp_path / "maps"))[0], detector):
            settled.append(detection)
    assert [Path(d.path).name for d in settled] == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "a.heatmap.png",
        "a.raw.heatmap.png",
        "b.heatmap.png",
        "b.raw.heatmap.png",
    ]


def test_detect_says_how_far_it_got_when_interrupted(one_class, tmp_path, monkeypatch):
    from aetool.runtime import detect as detect_module

    for name in ("a", "b", "c"):
        save(tmp_path / "in" / f"{name}.png", stroke_digits(1, seed=3)[0][0])
    finish, finished = detect_module._finish, []

    def interrupted_at_the_third(*args):
        if len(finished) == 2:
            raise KeyboardInterrupt
        finished.append(finish(*args))
        return finished[-1]

    monkeypatch.setattr(detect_module, "_finish", interrupted_at_the_third)
    result = runner.invoke(app, ["detect", str(tmp_path / "in"), "-m", str(one_class[1].export.path)])
    assert result.exit_code == 130 and len(result.stdout.splitlines()) == 2
    anomalous = sum(line.split("\t")[3] == "anomalous" for line in result.stdout.splitlines())
    assert result.stderr.strip().splitlines()[-1] == (  # the verdicts so far, as the summary would give them
        f"aetool: error: interrupted after 2 of 3 images (2 scored: {anomalous} anomalous, {2 - anomalous} normal)"
    )


def test_detections_settled_before_a_timeout_are_still_reported(one_class, tmp_path, monkeypatch):
    from aetool.errors import TimedOut

    save(tmp_path / "in" / "a.png", stroke_digits(1, seed=3)[0][0])
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    detector = Detector(load(one_class[1].export.path))

    def past_the_timeout(batch):
        raise TimedOut("a call of the model ran longer than its timeout")

    monkeypatch.setattr(detector, "run", past_the_timeout)
    found, _ = collect([str(tmp_path / "in")])
    settled = []
    with pytest.raises(TimedOut):
        for detection in detect(plan_detection(found, heatmaps=None)[0], detector):
            settled.append(detection)
    assert [Path(d.path).name for d in settled] == ["broken.png"] and settled[0].error


def test_detect_and_the_evaluate_functions_refuse_an_invert_or_resize_that_is_not_true_or_false(one_class, digits):
    """invert="no" inverted every digit: AUROC 0.957 fell to 0.098 without a word (trial 83)."""
    path = one_class[1].export.path
    sides = (str(digits / "normal"), str(digits / "anomalous"))
    with pytest.raises(TypeError, match=r"^invert takes True, False or None \(decide per image\), got 'no'$"):
        evaluate_folders(path, *sides, invert="no")
    with pytest.raises(TypeError, match=r"^resize takes True or False, got 'no'$"):
        evaluate_labelled(path, str(digits), classes="normal", resize="no")
    found, _ = collect([sides[0]])
    with pytest.raises(TypeError, match=r"^invert takes True, False or None"):
        next(detect(plan_detection(found, heatmaps=None)[0], Detector(path), invert=1))
    assert evaluate_folders(path, *sides, invert=False).auroc == evaluate_folders(path, *sides).auroc
