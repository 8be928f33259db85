import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the report needs the train extra")
pytest.importorskip("matplotlib", reason="the report needs the train extra")

from PIL import Image  # noqa: E402
from synthetic import write_dataset  # noqa: E402

from aetool.errors import AetoolError, Interrupted  # noqa: E402
from aetool.models import REPORT_MODELS  # noqa: E402
from aetool.report import build_report  # noqa: E402
from aetool.report.build import NUMBERS  # noqa: E402
from aetool.report.experiments import NOISE_LEVELS, SHALLOW, Data, svd_check  # noqa: E402
from aetool.report.figures import image_grid  # noqa: E402
from aetool.report.inference import Engine  # noqa: E402
from aetool.report.runs import TIMING, ReportRun, prepare_run, read_timing, run_folder, wanted_config  # noqa: E402
from aetool.train import RunFolder, TrainConfig, train  # noqa: E402
from aetool.train.run import CHECKPOINT, METRICS  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
SECTIONS = (
    "1. PCA vs autoencoder",
    "2. Hidden sizes",
    "3. Sparse AE",
    "4. Denoising",
    "5. Manifold",
    "6. Convolutional AEs",
    "7. Summary",
)
FIGURES = {
    "1-pca-vs-deep-ae.png",
    "2-hidden-sizes.png",
    "2-hidden-sizes-noise.png",
    "3-sparse.png",
    "3-encoder-filters.png",
    "4-denoise-filters.png",
    "5-manifold.png",
    "6-conv.png",
    "6-conv-curves.png",
    *(f"4-noise-{level}.png" for level in NOISE_LEVELS),
    *(
        f"6-filters-{name}-{layer}.png"
        for name in ("conv-unpool", "conv-unpool-deconv", "conv-deconv")
        for layer in (1, 2)
    ),
}
DENOISING = (*SHALLOW, "denoise-dense")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine, two threads that wait on each other are far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report(tmp_path_factory, one_thread):
    """A quick report of a synthetic dataset, its four denoising-section models trained long enough to learn.

    Those four are trained first (small batches, 15 epochs); the report reuses runs trained at least as long as it
    wants and trains the other six for a single epoch (``epochs=1``: the quick report's own epochs take longer).
    """
    root = tmp_path_factory.mktemp("report")
    data = write_dataset(root / "data", n_train=2048, n_test=128)
    runs = root / "runs"
    for name in DENOISING:
        config = TrainConfig(name, data_dir=str(data), device="cpu", epochs=15, batch_size=32, lr=3e-3)
        train(config, run_dir=runs / name, progress=False, echo=lambda line: None)
    lines: list[str] = []
    index = build_report(
        root / "out", runs=runs, data_dir=str(data), quick=True, epochs=1, echo=lines.append, progress=False
    )
    return {
        "index": index,
        "out": root / "out",
        "runs": runs,
        "data": data,
        "lines": lines,
        "numbers": json.loads((root / "out" / NUMBERS).read_text()),
    }


def embedded(page: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, page))


def test_quick_report_writes_every_page_and_figure(report):
    out = report["out"]
    assert report["index"] == out / "index.html"
    assert (out / "README.md").is_file() and (out / NUMBERS).is_file()
    assert {p.name for p in (out / "figures").glob("*.png")} == FIGURES


def test_pages_name_every_section_and_embed_every_figure_that_exists(report):
    out = report["out"]
    html = (out / "index.html").read_text()
    markdown = (out / "README.md").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
        assert f"\n## {title}\n" in markdown
    on_disk = {f"figures/{name}" for name in FIGURES}
    assert embedded(html, r'<img src="([^"]+)"') == on_disk
    assert embedded(markdown, r"!\[\]\(([^)]+)\)\n\n\*[^*\n]+\*") == on_disk  # each named by its caption once
    assert "<script" not in html and "http" not in html  # offline: nothing fetched from anywhere
    # each figure of the course report is named where its counterpart is (a handout said "Figures 7–10", trial 77)
    named = set()
    for first, joined, other in re.findall(r"the report's Figures? (\d+)(?:(–| and )(\d+))?", markdown):
        named.update(range(int(first), int(other) + 1) if joined == "–" else {int(first), int(other or first)})
    assert named == set(range(1, 25))


def test_figures_are_pngs_of_plausible_size(report):
    for path in (report["out"] / "figures").glob("*.png"):
        assert path.stat().st_size > 1000, path.name
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
            assert min(image.size) >= 100, (path.name, image.size)


def test_noise_matrix_has_every_model_and_level_and_the_denoiser_wins_at_its_level(report):
    denoising = report["numbers"]["denoising"]
    assert denoising["levels"] == list(NOISE_LEVELS)
    matrix = np.array([denoising["mse"][name] for name in DENOISING])
    assert list(denoising["mse"]) == list(DENOISING) and matrix.shape == (4, 4)
    at_half = dict(zip(DENOISING, matrix[:, NOISE_LEVELS.index(0.5)], strict=True))
    assert all(at_half["denoise-dense"] < at_half[name] for name in SHALLOW), at_half
    assert all(np.array(denoising["noisy_input_mse"]) > 0)
    worse = [
        level
        for level, noisy in zip(NOISE_LEVELS, denoising["noisy_input_mse"], strict=True)
        if matrix[:, NOISE_LEVELS.index(level)].min() >= noisy
    ]
    said = f"At noise {', '.join(map(str, worse))} no model beats the noisy input itself"
    assert (said in (report["out"] / "README.md").read_text()) == bool(worse)


def test_report_goes_through_onnx_and_matches_training_numbers(report):
    numbers = report["numbers"]
    assert {run["inference"] for run in numbers["runs"].values()} == {"onnxruntime"}
    for name, _run in numbers["runs"].items():
        history = json.loads((report["runs"] / name / METRICS).read_text())["history"]
        trained = history[-1].get("test_mse_clean", history[-1]["test_mse"])
        assert numbers["test_mse"][name] == pytest.approx(trained, rel=1e-3), name


def test_missing_runs_are_trained_and_timed_present_ones_reused(report):
    runs = report["numbers"]["runs"]
    assert {name for name, run in runs.items() if not run["trained_now"]} == set(DENOISING)
    for name, run in runs.items():
        timing = json.loads((report["runs"] / name / TIMING).read_text())
        assert timing["export_seconds"] > 0
        assert (timing.get("train_seconds", 0) > 0) == run["trained_now"], name
        assert run["epochs"] == (15 if name in DENOISING else 0 if name == "pca" else 1)


def test_second_report_reuses_every_run_and_the_data_folder_they_were_trained_on(
    report, tmp_path, one_thread, monkeypatch
):
    checkpoints = {name: (report["runs"] / name / CHECKPOINT).stat().st_mtime_ns for name in REPORT_MODELS}
    monkeypatch.delenv("AETOOL_DATA_DIR", raising=False)
    lines: list[str] = []
    build_report(tmp_path / "again", runs=report["runs"], quick=True, epochs=1, echo=lines.append, progress=False)
    assert lines[0] == (  # the README's second report, without --data-dir: it downloaded MNIST, or failed offline
        f"report: reading MNIST from {report['data']}, where the runs in {report['runs']} were trained "
        "(--data-dir for another)"
    )
    assert sum("reusing it" in line for line in lines) == len(REPORT_MODELS)
    assert checkpoints == {name: (report["runs"] / name / CHECKPOINT).stat().st_mtime_ns for name in REPORT_MODELS}
    again = json.loads((tmp_path / "again" / NUMBERS).read_text())
    assert again["denoising"] == report["numbers"]["denoising"]  # seeded: the same numbers twice


def test_a_missing_data_folder_over_reused_runs_fails_before_the_page_folder_is_made(report, tmp_path):
    with pytest.raises(AetoolError):
        options = {"runs": report["runs"], "data_dir": str(tmp_path / "nope"), "quick": True, "progress": False}
        build_report(tmp_path / "page", **options, echo=lambda line: None)
    assert not (tmp_path / "page").exists()


def test_torch_fallback_agrees_with_the_runtime(report):
    run = prepare_run(
        "deep",
        report["runs"],
        wanted_config("deep", str(report["data"]), quick=True, epochs=1),
        echo=lambda line: None,
    )
    onnx, plain = Engine(run), Engine(replace(run, onnx=None))
    images = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    assert (onnx.backend, plain.backend) == ("onnxruntime", "torch")
    np.testing.assert_allclose(plain.reconstruct(images), onnx.reconstruct(images), atol=1e-5)
    codes = onnx.encode(images)
    np.testing.assert_allclose(plain.decode(codes), onnx.decode(codes), atol=1e-5)


def test_shorter_or_different_runs_are_trained_again_not_reused(report, tmp_path, one_thread):
    data = str(report["data"])
    longer = wanted_config("ae64", data, quick=True, epochs=2)
    lines: list[str] = []
    run = prepare_run("ae64", report["runs"], longer, echo=lines.append, progress=False)  # has 15 epochs: enough
    assert not run.trained_now and "reusing it" in lines[0]
    short = tmp_path / "runs"
    prepare_run("ae64", short, wanted_config("ae64", data, quick=True, epochs=1), echo=lines.append, progress=False)
    run = prepare_run("ae64", short, longer, echo=lines.append, progress=False)
    assert run.trained_now and run.config.epochs == 2 and "1 epoch, not 2" in " ".join(lines)


def test_grid_labels_must_match_its_shape(tmp_path):
    with pytest.raises(ValueError, match="labels"):
        image_grid(tmp_path / "x.png", np.zeros((2, 3, 28, 28)), ["a", "b"], ["1", "2"], "title")


def test_every_table_header_has_a_name_and_captions_are_read_once(report):
    """A screen reader met headers with no name (the environment tables), table captions outside their table, and
    each figure's caption twice (as the image's alt and as its figcaption)."""
    import html.parser

    class Page(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.headers, self.alts, self.captions, self.open = [], [], 0, []

        def handle_starttag(self, tag, attrs):
            self.open.append(tag)
            self.captions += tag == "caption"
            if tag == "img":
                self.alts.append(dict(attrs).get("alt"))

        def handle_endtag(self, tag):
            self.open.pop()

        def handle_data(self, data):
            if self.open and self.open[-1] == "th":
                self.headers.append(data)

    page = Page()
    page.feed((report["index"]).read_text(encoding="utf-8"))
    assert page.headers and all(name.strip() for name in page.headers) and "value" in page.headers
    assert page.alts and set(page.alts) == {""} and page.captions > 0
    assert 'class="caption"' not in (report["index"]).read_text(encoding="utf-8")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"needs the real MNIST at {SHARED_MNIST}")
def test_rows_of_torch_svd_v_explain_the_reported_pca_error():
    from aetool.runtime.idx import load_split

    train_images, test_images = (
        load_split(SHARED_MNIST, split)[0][:n].astype(np.float32) / 255
        for split, n in (("train", 10_000), ("test", 10_000))
    )
    mse = svd_check(Data(train_images, test_images))
    assert mse["svd_columns"] == pytest.approx(0.0177, abs=0.001)  # the PCA optimum
    assert mse["mean_image"] == pytest.approx(0.0675, abs=0.001)
    assert mse["svd_columns"] * 3 < mse["svd_rows"] < mse["mean_image"]  # rows of V: barely better than the mean


def test_runs_trained_with_other_settings_are_not_trained_over_without_retrain(report, tmp_path):
    checkpoints = {name: (report["runs"] / name / CHECKPOINT).stat().st_mtime_ns for name in REPORT_MODELS}
    with pytest.raises(
        AetoolError,
        match=r"would train over runs of yours \(.*deep: trained with other settings "
        r"\(1 epoch, not 40.*pass --retrain",
    ):
        build_report(tmp_path / "full", runs=report["runs"], data_dir=str(report["data"]), progress=False)
    assert not (tmp_path / "full").exists()
    assert checkpoints == {name: (report["runs"] / name / CHECKPOINT).stat().st_mtime_ns for name in REPORT_MODELS}


@pytest.mark.parametrize("kind", [[], ["--anomaly"]])
def test_report_refuses_an_output_folder_it_cannot_make_before_any_training(tmp_path, kind):
    from conftest import cli_runner

    from aetool.cli import app

    (tmp_path / "afile").write_text("mine")
    args = ["report", "--quick", *kind, "-o", str(tmp_path / "afile" / "page"), "--runs", str(tmp_path / "runs")]
    result = cli_runner().invoke(app, [*args, "--data-dir", str(write_dataset(tmp_path / "data"))])
    assert result.exit_code == 2 and f"{tmp_path / 'afile'} is a file" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_report_says_a_device_given_as_runs_is_not_a_folder(tmp_path):
    from conftest import cli_runner

    from aetool.cli import app

    result = cli_runner().invoke(app, ["report", "--quick", "-o", str(tmp_path / "page"), "--runs", "/dev/null"])
    expected = "aetool: error: --runs: cannot write into /dev/null: /dev/null is not a folder\n"
    assert result.exit_code == 2 and result.stderr == expected  # a regular file is "a file" (test_train_cli)


def test_the_intro_names_the_epochs_and_images_of_the_runs_it_shows():
    from aetool.report.build import _intro

    def runs(*configs):
        return {config.model: ReportRun(config.model, Path("runs"), config) for config in configs}

    quick = [TrainConfig("deep", epochs=1, limit=2000), TrainConfig("ae64", epochs=1, limit=2000)]
    intro = " ".join(_intro(True, None, Path("runs"), runs(*quick, TrainConfig("pca"))))
    assert (
        "QUICK DEMO: models trained for 1 epoch on at most 2,000 training images (2 of the 2 trained models for "
        in intro
    )
    reused = runs(quick[0], TrainConfig("ae64", epochs=15))  # a full run a quick report reuses
    assert "trained for 1 to 15 epochs on at most 2,000 training images (all for some)" in " ".join(
        _intro(True, None, Path("runs"), reused)
    )
    short = " ".join(_intro(False, None, Path("runs"), runs(TrainConfig("deep", epochs=2), TrainConfig("ae64"))))
    assert (
        "SHORT RUNS: models trained for 2 to 10 epochs on all training images (1 of the 2 trained models for fewer"
        in short
    )
    assert not any(
        "RUNS" in line or "QUICK" in line for line in _intro(False, None, Path("runs"), runs(TrainConfig("ae64")))
    )


def test_round_1s_run_of_the_dense_denoiser_under_its_old_name_is_reused_never_trained_over(report, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(report["runs"] / "denoise-dense", runs / "denoise")
    checkpoint = torch.load(runs / "denoise" / CHECKPOINT, weights_only=True)
    metrics = json.loads((runs / "denoise" / METRICS).read_text())
    for stored in (checkpoint["config"], metrics["config"]):  # as round 1 recorded its config
        stored["model"] = "denoise"
        del stored["size"], stored["channels"]
    torch.save(checkpoint, runs / "denoise" / CHECKPOINT)
    (runs / "denoise" / METRICS).write_text(json.dumps(metrics))
    wanted = wanted_config("denoise-dense", str(report["data"]), quick=True, epochs=1)
    folder, plan = run_folder(runs, "denoise-dense", wanted)
    assert folder.path == runs / "denoise" and plan.config is None and plan.why.startswith("reusing it")
    longer = wanted_config("denoise-dense", str(report["data"]), quick=True, epochs=20)  # it has 15
    folder, plan = run_folder(runs, "denoise-dense", longer)
    assert folder.path == runs / "denoise-dense" and plan.why == "no run yet"


def test_a_run_whose_metrics_json_is_cut_short_is_one_to_train_over_and_one_without_checkpoint_says_so(
    report, tmp_path
):
    """A cut metrics.json (a full disk) stopped the report, --retrain too, and the line named no way out; a
    metrics.json whose checkpoint.pt was deleted was "no run yet" (trial 95)."""
    runs = tmp_path / "runs"
    shutil.copytree(report["runs"] / "ae64", runs / "ae64")
    metrics = runs / "ae64" / METRICS
    whole = metrics.read_bytes()
    metrics.write_bytes(whole[:300])
    wanted = wanted_config("ae64", str(report["data"]), quick=True, epochs=1)
    _, plan = run_folder(runs, "ae64", wanted)
    assert plan.force and plan.config == wanted and plan.why.startswith("its metrics.json cannot be read (")
    config_only = {"config": json.loads(whole)["config"]}  # no history: a KeyError traceback (trial 97)
    metrics.write_text(json.dumps(config_only))
    assert run_folder(runs, "ae64", wanted)[1].why.startswith("its metrics.json cannot be read (")
    metrics.write_text("{}")
    assert run_folder(runs, "ae64", wanted)[1].why.startswith("its metrics.json cannot be read (")
    metrics.write_text('{"history": []}')
    assert run_folder(runs, "ae64", wanted)[1].why == "a checkpoint whose metrics.json records no settings"
    metrics.write_bytes(whole)
    (runs / "ae64" / CHECKPOINT).unlink()
    _, plan = run_folder(runs, "ae64", wanted)
    assert plan.config == wanted and plan.why == "a metrics.json without its checkpoint.pt"


def test_one_runs_folder_given_as_runs_is_refused(report, tmp_path):
    with pytest.raises(AetoolError, match=r"--runs .*ae64 is one run's folder \(it holds checkpoint.pt\); give the "):
        build_report(tmp_path / "page", runs=report["runs"] / "ae64", quick=True, progress=False, echo=print)
    assert not (report["runs"] / "ae64" / "pca").exists()  # it trained all ten inside it


def test_a_report_stopped_while_training_says_to_run_it_again_and_times_the_whole_run(report, tmp_path, one_thread):
    wanted = wanted_config("ae64", str(report["data"]), quick=True, epochs=3)

    def stop_after_epoch_1(line: str) -> None:
        if line.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        prepare_run("ae64", tmp_path, wanted, echo=stop_after_epoch_1, progress=False)
    assert str(stopped.value).endswith(  # was "continue with --resume", an option the report does not have
        f"the last complete epoch (1) is saved in {tmp_path / 'ae64'}; run the same aetool report again to go on from there"
    )
    first_part = json.loads((tmp_path / "ae64" / METRICS).read_text())["run"]["seconds"]
    run = prepare_run("ae64", tmp_path, wanted, echo=lambda line: None, progress=False)
    summed = json.loads((tmp_path / "ae64" / METRICS).read_text())["run"]["seconds"]
    assert len(run.history) == 3 and summed > first_part  # was the resumed epochs' time alone
    assert run.train_seconds == summed == json.loads((tmp_path / "ae64" / TIMING).read_text())["train_seconds"]


def test_a_time_in_timing_json_is_for_the_files_it_was_measured_on(tmp_path):
    folder = RunFolder(tmp_path)
    folder.checkpoint.write_bytes(b"weights")
    folder.model_file.write_bytes(b"graph")
    (tmp_path / TIMING).write_text(
        json.dumps(
            {
                "train_seconds": 3.0,
                "checkpoint_sha256": hashlib.sha256(b"weights").hexdigest(),
                "export_seconds": 2.0,
                "model_sha256": hashlib.sha256(b"graph").hexdigest(),
            }
        )
    )
    assert read_timing(folder)["train_seconds"] == 3.0 and read_timing(folder)["export_seconds"] == 2.0
    folder.checkpoint.write_bytes(b"trained over with aetool train --force")
    assert "train_seconds" not in read_timing(folder) and read_timing(folder)["export_seconds"] == 2.0
    folder.model_file.write_bytes(b"exported again")
    assert read_timing(folder) == {}
    for broken in ('{"train_seconds": 3.0, "checkp', "7"):  # cut short by a kill; not an object
        (tmp_path / TIMING).write_text(broken)
        assert read_timing(folder) == {}
    digest = hashlib.sha256(folder.checkpoint.read_bytes()).hexdigest()
    for value in ("1.5", None, -1.0, float("nan"), True):  # a string was a ValueError in the page's table
        (tmp_path / TIMING).write_text(json.dumps({"train_seconds": value, "checkpoint_sha256": digest}))
        assert read_timing(folder) == {}, value


def test_a_reused_run_optimised_otherwise_is_named_in_the_line_and_on_the_page(report):
    said = next(line for line in report["lines"] if line.startswith("report: denoise-dense: reusing it"))
    assert "(trained with --lr 0.003 (not " in said and "--batch-size 32 (not 128))" in said
    notes = report["numbers"]["runs"]["denoise-dense"]["notes"]
    assert notes and notes[0].startswith("--lr 0.003 (not")
    assert "--batch-size 32 (not 128)" in (report["out"] / "README.md").read_text()


def test_a_run_that_learned_nothing_is_named_on_the_page(report):
    trivial = [name for name, run in report["numbers"]["runs"].items() if run["notes"]]
    for name in set(trivial) - set(DENOISING):  # one epoch on 2,048 synthetic digits: some learn nothing yet
        [note] = report["numbers"]["runs"][name]["notes"]
        assert (
            note.endswith("the model has learned nothing useful") and note in (report["out"] / "README.md").read_text()
        )
    assert set(trivial) - set(DENOISING)


@pytest.mark.parametrize("switch", ["retrain", "quick"])
def test_the_report_refuses_a_switch_that_is_not_true_or_false_before_it_starts(tmp_path, switch):
    """retrain="no" trained over runs of other settings; quick="no" ran the full report."""
    with pytest.raises(TypeError, match=rf"^{switch} takes True or False, got 'no'$"):
        build_report(tmp_path / "page", runs=tmp_path / "runs", **{switch: "no"})
    assert not (tmp_path / "page").exists() and not (tmp_path / "runs").exists()
