import dataclasses
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra")


from aetool import __version__  # noqa: E402
from aetool.errors import AetoolError, DataError, Interrupted  # noqa: E402
from aetool.train import TrainConfig, load_run, train  # noqa: E402
from aetool.train.data import DATA_DIR_ENV, load_images  # noqa: E402
from aetool.train.run import CHECKPOINT, METRICS, RunFolder  # noqa: E402

SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def config(name, data_dir, **overrides):
    short = {} if name == "pca" else {"epochs": 3, "batch_size": 32}  # PCA is fitted, not trained
    return TrainConfig(name, data_dir=str(data_dir), device="cpu", **{**short, **overrides})


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def test_training_lowers_loss_and_writes_metrics_and_checkpoint(data_dir, tmp_path):
    result = train(config("ae64", data_dir, lr=3e-3), run_dir=tmp_path, progress=False)
    history = json.loads((tmp_path / METRICS).read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["train_mse"] < history[0]["train_mse"]
    assert history[-1]["test_mse"] < history[0]["test_mse"]
    assert {"train_mse", "test_mse", "train_loss", "lr"} <= history[0].keys()
    assert "test_ssim" not in history[0] and 0 < history[-1]["test_ssim"] <= 1  # SSIM at the last epoch only
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 3 and state["config"]["model"] == "ae64" and state["optimizer"] is not None
    assert result.test_mse == history[-1]["test_mse"]
    run = json.loads((tmp_path / METRICS).read_text())["run"]  # what it ran on, to compare runs
    assert run["aetool"] == __version__ and run["torch"] == torch.__version__ and run["device"] == "cpu"
    assert run["threads"] == torch.get_num_threads() and run["ranks"] == 1
    assert (run["train_images"], run["test_images"]) == (256, 64) and 0 < run["seconds"] <= result.seconds


# Trains (or not), then counts the results of doubling 2**20 denormals that the two threads of PyTorch's pool left
# nonzero: 0 where every thread flushes denormals to zero.
DENORMALS_LEFT = """
import sys, torch
from aetool.train import TrainConfig, train
if sys.argv[1] == "train":
    train(TrainConfig("ae64", data_dir=sys.argv[2], device="cpu", epochs=1), run_dir=sys.argv[3], progress=False, echo=len)
torch.set_num_threads(2)
x = torch.full((1 << 20,), torch.finfo(torch.float32).tiny / 4)
print(int((x * 2 != 0).sum()))
"""


def test_training_flushes_denormals_in_every_thread_of_the_pool(data_dir, tmp_path):
    def left(mode):
        command = [sys.executable, "-c", DENORMALS_LEFT, mode, str(data_dir), str(tmp_path / "run")]
        return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    assert left("no-train") == 1 << 20
    assert left("train") == 0


def test_same_seed_same_weights_other_seed_other_weights(data_dir, tmp_path):
    runs = [
        train(config("denoise-dense", data_dir, epochs=1, seed=s), run_dir=tmp_path / str(i), progress=False)
        for i, s in enumerate([5, 5, 6])
    ]
    w = [weights(load_run(r.run_dir).net) for r in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


def test_a_checkpoint_that_cannot_be_written_says_which_epoch_is_saved(data_dir, tmp_path, monkeypatch):
    """A full disk at epoch 2 said only "cannot write …/checkpoint.pt: No space left on device", not that epoch 1
    was saved and can be resumed, as Ctrl-C's line says (trial 52)."""
    from aetool.errors import AetoolError
    from aetool.train.run import RunFolder

    real_save, saves = RunFolder.save, []

    def save_then_fill_the_disk(self, **kwargs):
        saves.append(kwargs["epoch"])
        if len(saves) == 2:
            raise AetoolError(f"cannot write {self.checkpoint}: No space left on device")
        real_save(self, **kwargs)

    monkeypatch.setattr(RunFolder, "save", save_then_fill_the_disk)
    with pytest.raises(
        AetoolError,
        match=r"checkpoint.pt: No space left on device; the last complete epoch \(1\) is saved in .*full; continue "
        r"with --resume",
    ):
        train(config("ae64", data_dir, epochs=3), run_dir=tmp_path / "full", progress=False)
    monkeypatch.undo()
    assert load_run(tmp_path / "full").epoch == 1
    with pytest.raises(AetoolError, match=r"^no such$"):  # an error before any epoch says nothing of epochs
        monkeypatch.setattr(RunFolder, "save", lambda self, **kwargs: (_ for _ in ()).throw(AetoolError("no such")))
        train(config("ae64", data_dir, epochs=1), run_dir=tmp_path / "other", progress=False)


def test_resume_after_interrupt_equals_uninterrupted_run(data_dir, tmp_path):
    full = train(config("conv-deconv", data_dir, epochs=4), run_dir=tmp_path / "full", progress=False)

    def interrupt_after_epoch_2(line):
        if line.startswith("epoch   2"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"the last complete epoch \(2\) is saved in .*cut; continue with --resume"):
        train(
            config("conv-deconv", data_dir, epochs=4),
            run_dir=tmp_path / "cut",
            progress=False,
            echo=interrupt_after_epoch_2,
        )
    assert load_run(tmp_path / "cut").epoch == 2  # the last complete checkpoint is usable
    resumed = train(config("conv-deconv", data_dir, epochs=4), run_dir=tmp_path / "cut", resume=True, progress=False)
    assert torch.equal(weights(load_run(full.run_dir).net), weights(load_run(resumed.run_dir).net))
    assert [r["test_mse"] for r in resumed.history] == [r["test_mse"] for r in full.history]


def test_a_round_1_run_stopped_part_way_resumes_to_the_uninterrupted_runs_weights(data_dir, tmp_path):
    full = train(config("ae64", data_dir, epochs=2), run_dir=tmp_path / "full", progress=False)

    def interrupt_after_epoch_1(line):
        if line.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(
            config("ae64", data_dir, epochs=2), run_dir=tmp_path / "cut", progress=False, echo=interrupt_after_epoch_1
        )
    checkpoint = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    metrics = json.loads((tmp_path / "cut" / METRICS).read_text())
    for stored in (checkpoint["config"], metrics["config"]):  # round 1 recorded neither
        del stored["size"], stored["channels"]
    torch.save(checkpoint, tmp_path / "cut" / CHECKPOINT)
    (tmp_path / "cut" / METRICS).write_text(json.dumps(metrics))
    resumed = train(config("ae64", data_dir, epochs=2), run_dir=tmp_path / "cut", resume=True, progress=False)
    assert torch.equal(weights(load_run(full.run_dir).net), weights(load_run(resumed.run_dir).net))


def test_existing_run_is_not_overwritten_without_force(data_dir, tmp_path):
    train(config("pca", data_dir), run_dir=tmp_path, progress=False)
    with pytest.raises(AetoolError, match="--resume"):
        train(config("pca", data_dir), run_dir=tmp_path, progress=False)
    train(config("pca", data_dir), run_dir=tmp_path, progress=False, force=True)


def test_a_folder_of_runs_is_not_taken_for_a_run_folder(data_dir, tmp_path):
    for name in ("pca", "ae64"):  # the report's runs/, say
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.pt").write_bytes(b"a run")
    with pytest.raises(AetoolError, match=r"holds runs of its own \(ae64, pca\): a run goes into a folder of its own"):
        train(config("pca", data_dir), run_dir=tmp_path, progress=False, force=True)  # it wrote beside them
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ae64", "pca"]


def test_sparse_and_denoise_record_their_loss_terms(data_dir, tmp_path):
    sparse = train(config("sparse", data_dir, epochs=1), run_dir=tmp_path / "s", progress=False).history[-1]
    assert sparse["train_l1"] > 0 and sparse["train_loss"] > sparse["train_mse"]
    dae = train(config("denoise-dense", data_dir, epochs=1), run_dir=tmp_path / "d", progress=False).history[-1]
    assert "test_mse_clean" in dae and dae["test_mse"] != dae["test_mse_clean"]


def test_pca_is_fitted_without_gradient_steps(data_dir, tmp_path):
    result = train(config("pca", data_dir, components=8), run_dir=tmp_path, progress=False)
    run = load_run(tmp_path)
    assert run.net.basis.shape == (8, 784)
    assert [r["epoch"] for r in result.history] == [0]  # one closed-form fit, no epochs
    assert result.test_mse < 0.05


def test_a_pca_runs_wall_time_counts_from_the_start_and_its_fit_time_is_recorded(data_dir, tmp_path, monkeypatch):
    """The fit's own timer replaced the run's, so a PCA run's seconds left out reading the data."""
    import time

    from aetool.train import loop

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return original(*args, **kwargs)

    original = loop.load_training_data
    monkeypatch.setattr(loop, "load_training_data", slow)
    result = train(config("pca", data_dir, components=8), run_dir=tmp_path, progress=False)
    fit = json.loads((tmp_path / METRICS).read_text())["run"]["seconds"]
    assert result.seconds >= 0.5 + fit and fit > 0


def test_pca_components_are_checked_against_the_images_they_are_fitted_on(tmp_path):
    from conftest import save

    rng = np.random.default_rng(0)
    for i in range(5):
        save(tmp_path / "five" / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    TrainConfig("pca", data=str(tmp_path / "five"), size=(16, 16), components=300)  # channels unknown: 3 allow 768
    five = TrainConfig("pca", data=str(tmp_path / "five"), val_data=str(tmp_path / "five"), device="cpu")
    with pytest.raises(DataError, match=r"the 5 training images of 768 pixels span at most 4 directions; pass "):
        train(five, run_dir=tmp_path / "run", progress=False)  # 30 components by default
    save(tmp_path / "one" / "0.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    one = TrainConfig("pca", data=str(tmp_path / "one"), components=1, device="cpu")
    with (
        pytest.warns(UserWarning, match="is the only image"),
        pytest.raises(DataError, match=r"PCA needs at least 2 training images; 1 training image spans no direction"),
    ):
        train(one, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    result = train(dataclasses.replace(five, components=4), run_dir=tmp_path / "run", progress=False)
    assert load_run(result.run_dir).net.basis.shape == (4, 768)


def test_more_pca_components_than_pixels_is_a_data_error_before_the_run_folder(data_dir, tmp_path):
    config = TrainConfig("pca", data_dir=str(data_dir), components=785, device="cpu")  # size known from the data only
    with pytest.raises(DataError, match=r"--components must be at most 784 \(the pixels of an image\), got 785"):
        train(config, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_load_images_from_an_idx_folder(data_dir):
    images = load_images("mnist", "train", data_dir=data_dir)
    assert images.shape == (256, 1, 28, 28) and images.dtype == torch.uint8
    assert images.max() == 255 and images[:, :, 0, :].max() < 255  # white strokes inside a black border


def test_data_dir_may_hold_one_subfolder_per_dataset(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir.parent))
    (data_dir.parent / "fashion-mnist").symlink_to(data_dir)
    assert len(load_images("fashion-mnist", "test")) == 64


def test_a_run_records_the_folder_the_environment_named(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    train(TrainConfig("ae64", epochs=1, batch_size=32, device="cpu"), run_dir=tmp_path / "run", progress=False)
    assert load_run(tmp_path / "run").config.data_dir == str(data_dir.absolute())  # resume and export find it


def test_missing_data_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected the four IDX files train-images-idx3-ubyte\.gz"):
        load_images("mnist", "train", data_dir=tmp_path / "nowhere")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataError, match="cannot read IDX file"):
        load_images("mnist", "train", data_dir=tmp_path)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        TrainConfig("ae64", dataset="cifar")
    with pytest.raises(ValueError, match="pca model only"):
        TrainConfig("ae64", components=3)
    with pytest.raises(ValueError, match=r"^unknown model 'cnn'; known models: "):
        TrainConfig("cnn")
    with pytest.raises(ValueError, match="unknown training settings: momentum"):
        TrainConfig.from_dict({"model": "ae64", "momentum": 0.9})


def test_a_config_takes_the_models_defaults_and_pca_needs_none():
    deep = TrainConfig("deep")
    assert (deep.epochs, deep.lr, deep.loss) == (40, 3e-3, "bce")
    assert TrainConfig("conv-unpool").lr == 5e-3 and TrainConfig("conv-deconv").lr == 3e-3
    assert TrainConfig("ae64").lr == 1e-3
    assert TrainConfig("sparse").l1 == 0.01 and TrainConfig("denoise-dense").noise == 0.5
    pca = TrainConfig("pca")  # a config of its own defaults is valid
    assert pca.epochs == 0 and pca.lr is None and pca.batch_size is None
    stored = {"model": "pca", "epochs": 0, "lr": 0.001, "loss": "mse", "batch_size": 128, "out": "runs/pca"}
    assert TrainConfig.from_dict(stored) == pca  # a round-1 run folder's config still reads


def test_learning_rate_warms_up_linearly_then_decays_by_a_cosine():
    from aetool.train.loop import FINAL_LR_FRACTION, WARMUP_STEPS, learning_rate

    total = 1000
    assert learning_rate(0, total, 1.0) == pytest.approx(1 / WARMUP_STEPS)
    assert learning_rate(WARMUP_STEPS - 1, total, 1.0) == pytest.approx(1.0)
    middle = WARMUP_STEPS + (total - WARMUP_STEPS) // 2
    assert learning_rate(middle, total, 1.0) == pytest.approx(FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) / 2)
    assert learning_rate(total, total, 2.0) == pytest.approx(2.0 * FINAL_LR_FRACTION)
    rates = [learning_rate(step, total, 1.0) for step in range(WARMUP_STEPS, total)]
    assert all(a >= b for a, b in itertools.pairwise(rates))  # never rises after the warm-up
    assert learning_rate(0, 50, 1.0) == pytest.approx(1 / 5)  # a short run warms up over a tenth of its steps


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("ae64", {"epochs": 0}, "--epochs must be at least 1"),
        ("ae64", {"lr": 0.0}, "--lr must be a positive number"),
        ("ae64", {"lr": float("nan")}, "--lr must be a positive number"),
        ("ae64", {"limit": 0}, "--limit must be at least 1"),
        ("ae64", {"seed": -1}, "--seed must be at least 0"),
        ("ae64", {"l1": -1.0}, "--l1 must be 0 or more"),
        ("ae64", {"noise": -0.1}, "--noise must be 0 or more"),
        ("ae64", {"noise": 1.5, "noise_kind": "salt-pepper"}, "fraction of values"),
        # a range given for a model with a registry default: the option's fault, not the registry entry's
        ("denoise-dense", {"noise_mix": "0:1e39"}, "^--noise: noise level must be at most 3.403e\\+38"),
        ("pca", {"components": 0}, "--components must be at least 1"),
        ("pca", {"components": 785, "data": "imgs", "channels": 1, "size": (28, 28)}, "at most 784"),
        ("pca", {"noise": 0.5, "epochs": 3}, "--epochs, --noise do not apply to pca"),
        ("pca", {"lr": 0.1, "batch_size": 64}, "--lr, --batch-size do not apply to pca"),
        # the wrong type, from Python: refused here, not deep in training (or trained on the wrong thing)
        ("ae64", {"epochs": 1.5}, "--epochs must be a whole number, got 1.5"),
        ("ae64", {"epochs": "2"}, "--epochs must be a whole number, got '2'"),
        ("ae64", {"batch_size": True}, "--batch-size must be a whole number, got True"),
        ("ae64", {"limit": 100.0}, "--limit must be a whole number"),
        ("ae64", {"seed": None}, "--seed must be a whole number, got None"),
        ("ae64", {"seed": 2**32}, r"--seed must be at most 4294967295 \(2\^32 - 1\), got 4294967296"),
        ("conv-deconv", {"patch": 32.0, "data": "imgs"}, "--patch must be a whole number"),
        ("ae64", {"channels": 1.0}, "--channels must be a whole number"),
        ("pca", {"components": "30"}, "--components must be a whole number"),
        ("ae64", {"lr": "0.01"}, "--lr must be a number, got '0.01'"),
        ("ae64", {"noise": True}, "--noise must be a number, got True"),
        ("ae64", {"l1": "0"}, "--l1 must be a number"),
        ("ae64", {"augment": "yes"}, "--augment must be True or False"),
        ("ae64", {"device": 0}, "--device must be text, got 0"),
        (3, {}, "^MODEL must be text, got 3$"),  # it was "unknown model 3", a KeyError
        ("deep", {"data_dir": ""}, "^--data-dir is an empty name; give a folder$"),  # went on to download MNIST
        ("dncnn", {"patch": 0, "data": "x"}, "^--patch must be at least 1 for dncnn, got 0$"),  # "a multiple of 1"
        ("conv-deconv", {"patch": 2, "data": "x"}, r"^--patch must be a multiple of 4 \(≥ 4\) for conv-deconv, got 2$"),
        ("ae64", {"data": 5}, "--data must be a path"),
        ("ae64", {"data": "imgs", "val": "0.2"}, "--val must be a number"),
        ("ae64", {"data": "imgs", "size": "28"}, r"--size takes HxW with positive integers, e.g. 28x28; got '28'"),
        ("ae64", {"data": "imgs", "size": (28.0, 28.0)}, r"--size takes HxW \(28x28\) or two whole numbers"),
        ("ae64", {"data": "imgs", "size": (28, 28, 3)}, r"--size takes HxW \(28x28\) or two whole numbers"),
        ("anomaly", {"classes": "10"}, "--classes of mnist are its labels 0 to 9, got 10"),
        ("anomaly", {"classes": "1,,7"}, "--classes takes labels separated by commas, each once"),
        ("anomaly", {"classes": 3.5}, "--classes takes labels separated by commas.* or a list of them, got 3.5"),
        ("anomaly", {"classes": (True,)}, "--classes takes labels"),
    ],
)
def test_values_that_cannot_train_are_refused(name, settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(name, **settings)


def test_size_and_classes_take_the_command_lines_text_and_a_config_survives_its_json():
    config = TrainConfig("ae64", data="imgs", size="28x28", classes="1, 7", seed=np.int64(3), lr=1)
    assert (config.size, config.classes, config.seed, config.lr) == ((28, 28), ("1", "7"), 3, 1.0)
    assert type(config.seed) is int and type(config.lr) is float  # as JSON stores them
    assert TrainConfig("anomaly", classes="3").classes == ("3",)
    assert TrainConfig("anomaly", classes=[3]).classes == ("3",)  # IDX digits as numbers
    stored = json.loads(json.dumps(config.to_dict()))  # metrics.json holds lists
    assert stored["size"] == [28, 28] and stored["classes"] == ["1", "7"]
    assert TrainConfig.from_dict(stored) == config == TrainConfig.from_dict(config.to_dict())
    held = [
        TrainConfig("deep", data="imgs"),
        TrainConfig("anomaly", classes="3"),
        TrainConfig("dncnn", data="i", val=0.3),
    ]
    assert [config.val for config in held] == [0.1, 0.2, 0.3]  # the fraction held out, never None (trial 85)
    assert TrainConfig("deep").val is None and TrainConfig("deep", data="imgs", val_data="more").val is None


def test_noise_takes_the_command_lines_text_and_records_a_level_or_a_range_or_mix():
    """train's --noise text is split by TrainConfig (the command line did it, and undid it to resume): a run records
    one level (``noise``, ``noise_kind``) or a range or mix (``noise_mix``), the fields run folders have always had."""
    from aetool.train.settings import check_settings

    level = TrainConfig("ae64", noise="0.3", noise_kind="mask")
    assert (level.noise, level.noise_kind, level.noise_mix) == (0.3, "mask", None)
    ranged = TrainConfig("conv-unpool", noise="0:0.6", noise_kind="salt-pepper")
    assert (ranged.noise, ranged.noise_kind, ranged.noise_mix) == (0.0, "salt-pepper", "salt-pepper=0:0.6")
    assert ranged.loss == "bce" and str(ranged.noise_spec) == "salt-pepper=0:0.6"  # a noisy conv AE: BCE
    named = TrainConfig("ae64", noise="mask=0.25")  # one term at one level is a level of its kind
    assert (named.noise, named.noise_kind, named.noise_mix) == (0.25, "mask", None)
    mixed = TrainConfig("ae64", noise="gaussian=0:0.6, mask=0.2@0.5")
    assert (mixed.noise, mixed.noise_mix) == (0.0, "gaussian=0:0.6,mask=0.2@0.5")
    assert TrainConfig("denoise-dense", noise="0").noise == 0.0  # given: the registry's 0.5 is not taken
    assert TrainConfig("denoise", noise="0.1").noise_mix is None  # nor the blind mix
    assert TrainConfig.from_dict(json.loads(json.dumps(ranged.to_dict()))) == ranged
    recorded = {**named.to_dict(), "noise": 0.0, "noise_kind": "gaussian", "noise_mix": "mask=0.25"}  # an older run
    assert TrainConfig.from_dict(recorded) == named  # so resuming it with --noise mask=0.25 is no conflict
    with pytest.raises(ValueError, match=r"^--noise is one level or a range/mix, not both$"):
        TrainConfig("ae64", noise="0:0.5", noise_mix="0.1")
    with pytest.raises(ValueError, match=r"^--noise: noise range '0.6:0' runs backwards$"):
        TrainConfig("ae64", noise="0.6:0")
    with pytest.raises(ValueError, match=r"^--noise must be 0 or more, got -1.0$"):  # a number is a level
        check_settings({"noise": "-1"})  # as train checks its options before PyTorch loads
    with pytest.raises(ValueError, match=r"^--noise: the mask noise level is the fraction of values hit"):
        check_settings({"noise": "0:1.5", "noise_kind": "mask"})


def test_setting_conflicts_are_spelled_as_the_command_line_takes_them():
    from aetool.train.run import RunFolder

    stored = TrainConfig("deep", dataset="images", data="imgs", classes=("1", "7"), batch_size=32).to_dict()
    wanted = TrainConfig("deep", dataset="images", data="photos", size=(32, 32), classes=("1",), augment=True)
    conflicts = RunFolder.resume_conflicts(stored, wanted)
    assert conflicts[0].startswith("--data /") and conflicts[1:] == [
        "--size none (now 32x32)",
        "--classes 1,7 (now 1)",
        "--no-augment (now --augment)",
        "--batch-size 32 (now 128)",
    ]
    masked, none = TrainConfig("deep", noise="mask=0.25").to_dict(), TrainConfig("deep").to_dict()
    # noise is one --noise, as given: it was "--noise 0.25 (now 0.3)", and "--noise-kind gaussian (now mask)" of a
    # --noise-kind never given (a review)
    assert RunFolder.resume_conflicts(masked, TrainConfig("deep", noise="mask=0.3")) == [
        "--noise mask=0.25 (now mask=0.3)"
    ]
    assert RunFolder.resume_conflicts(none, TrainConfig("deep", noise="mask=0.3")) == ["--noise none (now mask=0.3)"]
    assert RunFolder.resume_conflicts(masked, TrainConfig("deep", noise="0.25", noise_kind="mask")) == []


def test_resume_keeps_the_runs_own_settings(data_dir, tmp_path):
    train(config("ae64", data_dir, epochs=1), run_dir=tmp_path, progress=False)
    with pytest.raises(AetoolError, match=r"trained with --epochs 1 \(now 2\), --lr 0\.001 \(now 0\.01\)"):
        train(config("ae64", data_dir, epochs=2, lr=0.01), run_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(AetoolError, match="choose one"):
        train(config("ae64", data_dir, epochs=1), run_dir=tmp_path, resume=True, force=True, progress=False)
    assert load_run(tmp_path).epoch == 1


def test_starting_over_removes_what_the_old_run_left_once_the_new_one_has_an_epoch(data_dir, tmp_path, monkeypatch):
    from aetool.train import loop

    train(config("ae64", data_dir, epochs=1), run_dir=tmp_path, progress=False)
    stale = [tmp_path / name for name in ("model.onnx", "model.decoder.onnx", "model.int8.onnx")]
    for path in stale:
        path.write_bytes(b"old export")
    (tmp_path / "notes.txt").write_text("mine")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(Interrupted, match="nothing was saved; the run that was in"):
        patch.setattr(loop, "evaluate", interrupt)
        train(config("ae128", data_dir, epochs=1), run_dir=tmp_path, progress=False, force=True)
    assert load_run(tmp_path).config.model == "ae64" and all(path.exists() for path in stale)  # the old run, whole
    train(config("ae128", data_dir, epochs=1), run_dir=tmp_path, progress=False, force=True)
    assert not any(path.exists() for path in stale) and (tmp_path / "notes.txt").is_file()
    assert load_run(tmp_path).config.model == "ae128"


def test_resumed_config_keeps_the_runs_own_settings_but_the_given_ones_and_refuses_another_model(tmp_path):
    """What ``train --resume`` and the report resume a run with (it was the command line's own merge, beside the
    report's)."""
    from aetool.models import build_model

    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    recorded = TrainConfig("ae64", epochs=3, lr=3e-3, noise="0:0.3", seed=7, device="cuda")
    history = [{"epoch": 1, "test_mse": 0.1}]
    folder.save(net=build_model("ae64"), optimizer=None, config=recorded, epoch=1, history=history)
    defaults = {"epochs": None, "lr": None, "noise": None, "seed": 0, "device": "auto", "limit": None}
    resumed = folder.resumed_config("ae64", defaults, given={"output", "resume"})
    assert (resumed.epochs, resumed.lr, resumed.noise_mix, resumed.seed) == (3, 3e-3, "gaussian=0:0.3", 7)
    assert resumed.device == ("cuda" if torch.cuda.is_available() else "auto")  # a GPU's run resumes here too
    asked = folder.resumed_config("ae64", {**defaults, "epochs": 5, "noise": "0.2"}, given={"epochs", "noise"})
    assert (asked.epochs, asked.noise, asked.noise_mix, asked.seed) == (5, 0.2, None, 7)  # --noise: the mix too
    with pytest.raises(AetoolError, match=r"run was trained with MODEL ae64 \(now conv-unpool\); resume it with its"):
        folder.resumed_config("conv-unpool", defaults, given=set())
    assert RunFolder(tmp_path / "none").resumed_config("ae64", defaults, given=set()) == TrainConfig("ae64", **defaults)
    with pytest.raises(ValueError, match=r"^--epochs must be at least 1, got 0$"):
        folder.resumed_config("ae64", {"epochs": 0}, given={"epochs"})


def test_a_data_error_leaves_no_run_folder(tmp_path):
    with pytest.raises(DataError):
        train(config("ae64", tmp_path / "nowhere"), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_foreign_checkpoint_or_broken_metrics_is_one_clear_error(data_dir, tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "checkpoint.pt").write_text("hello\n")
    with pytest.raises(AetoolError, match="not a readable checkpoint"):
        load_run(tmp_path / "text")
    train(config("ae64", data_dir, epochs=1), run_dir=tmp_path / "run", progress=False)
    (tmp_path / "run" / "metrics.json").write_text("{bad")
    with pytest.raises(AetoolError, match=r"metrics.json is not readable JSON"):
        load_run(tmp_path / "run")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="needs ../shared/data/mnist (the real MNIST files)")
def test_real_mnist_loads_with_the_published_shape():
    images = load_images("mnist", "test", data_dir=SHARED_MNIST)
    assert images.shape == (10_000, 1, 28, 28)
    assert abs(float(images.float().mean()) / 255 - 0.1325) < 1e-3


def test_without_a_data_dir_torchvision_downloads_and_a_failure_is_one_clear_error(monkeypatch):
    import torchvision.datasets

    calls = []

    class OfflineMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            raise RuntimeError(  # torchvision's message: a line per mirror tried, then its error
                "Error downloading train-images-idx3-ubyte.gz:\n"
                "Tried https://a.example/, got:\n<urlopen error [Errno -2] Name or service not known>\n"
                "Tried https://b.example/, got:\n<urlopen error [Errno -3] Temporary failure in name resolution>\n"
            )

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    with pytest.raises(DataError) as raised:
        load_images("mnist", "train")
    assert str(raised.value) == (
        f"cannot download mnist into {calls[0][0]} (<urlopen error [Errno -3] Temporary failure in name resolution>); "
        "pass --data-dir or set AETOOL_DATA_DIR to a folder of IDX files"
    )
    assert calls and calls[0][1:] == (True, True)  # asked torchvision for the train split, with download=True


def test_downloads_go_under_xdg_cache_home_and_a_failed_one_leaves_no_folders(monkeypatch, tmp_path):
    """$XDG_CACHE_HOME was ignored (always ~/.cache/aetool), and an offline download left an empty MNIST/raw tree
    behind (trial 64)."""
    import torchvision.datasets

    roots = []

    class OfflineMNIST:
        def __init__(self, root, train, download):
            roots.append(root)
            (Path(root) / type(self).__name__ / "raw").mkdir(parents=True)  # as torchvision does, by its class
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error offline>")

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # never the real one, whatever the code does
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg" / "cache"))
    with pytest.raises(DataError, match="cannot download mnist"):
        load_images("mnist", "train")
    assert roots == [str(tmp_path / "xdg" / "cache" / "aetool")] and not (tmp_path / "xdg").exists()
    (tmp_path / "kept").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "kept"))
    with pytest.raises(DataError):
        load_images("mnist", "train")
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())  # its own folder stays
    (tmp_path / "kept" / "aetool" / "other").mkdir(parents=True)  # a cache folder there already: MNIST/raw goes
    with pytest.raises(DataError):
        load_images("mnist", "train")
    assert [path.name for path in (tmp_path / "kept" / "aetool").iterdir()] == ["other"]  # no OfflineMNIST/raw
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the specification says
    with pytest.raises(DataError):
        load_images("mnist", "train")
    assert roots[-1] == str(tmp_path / "home" / ".cache" / "aetool") and not (tmp_path / "home").exists()


def test_the_data_folder_is_recorded_as_an_absolute_path(data_dir, monkeypatch):
    monkeypatch.chdir(data_dir.parent)
    assert TrainConfig("ae64", data_dir=data_dir.name).data_dir == str(data_dir)


def test_one_folder_reached_two_ways_is_one_setting(data_dir, tmp_path):
    roundabout = data_dir / ".." / data_dir.name
    assert TrainConfig("ae64", data_dir=str(roundabout)).data_dir == str(data_dir)
    stored = TrainConfig("dncnn", data=str(data_dir / ".." / data_dir.name)).to_dict()
    stored["data"] = str(roundabout)  # as a run trained before paths were normalised recorded it
    assert RunFolder.reuse_shortfalls(stored, TrainConfig("dncnn", data=str(data_dir))) == []


def test_a_data_folder_named_by_the_environment_that_is_none_says_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"^\$AETOOL_DATA_DIR names .*gone, a folder that does not exist; set it"):
        load_images("mnist", "test")


NO_HOME = """
import os, pwd
def no_entry(uid):
    raise KeyError(uid)
os.environ.pop("HOME", None)
pwd.getpwuid = no_entry
"""


def test_no_home_folder_is_one_line_for_a_path_with_tilde_and_nothing_without(monkeypatch, tmp_path):
    """A container run under a bare user id: HOME unset, no passwd entry."""
    import pwd

    from aetool.runtime.idx import resolve_data_dir

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    imported = subprocess.run(  # train's data module looked up the home folder when imported, for downloads
        [sys.executable, "-c", f"{NO_HOME}\nimport aetool.train.data"],
        capture_output=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(DataError, match=r"^--data-dir ~/mnist starts with ~, but this process has no home folder"):
        resolve_data_dir("~/mnist", "mnist")
    with pytest.raises(DataError, match=r"^--data-dir ~/mnist starts with ~"):
        TrainConfig("ae64", data_dir="~/mnist")
    assert TrainConfig("ae64", data_dir=str(tmp_path)).data_dir == str(tmp_path)


@pytest.mark.parametrize("stop", [BrokenPipeError, MemoryError])
def test_a_run_stopped_before_its_first_epoch_by_a_closed_pipe_or_memory_leaves_no_folder(
    data_dir, tmp_path, monkeypatch, stop
):
    """Only Ctrl-C and aetool's own errors removed the folder a run made: ``aetool train … 2>&1 | head -1`` (exit
    141) and a PCA out of memory left it behind, empty (trial 94)."""
    from aetool.train import loop

    def fail(*args, **kwargs):
        raise stop

    monkeypatch.setattr(loop, "evaluate", fail)
    with pytest.raises(stop):
        train(config("ae64", data_dir, epochs=1), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_rank_0_stopped_by_another_rank_says_what_is_saved(tmp_path):
    """Rank 0 said only "another rank of this job stopped", not that its epochs were saved and could be resumed."""
    from types import SimpleNamespace

    from aetool.train.loop import RESUME_ADVICE, _stopped_by_peer

    folder = RunFolder(tmp_path / "run")
    trained = SimpleNamespace(saved_epoch=3, start_epoch=0)
    assert str(_stopped_by_peer(folder, trained, made_folder=False, rank=0, go_on=RESUME_ADVICE)) == (
        "rank 0: another rank of this job stopped, so this one stops too; the last complete epoch (3) is saved in "
        f"{folder.path}; continue with --resume"
    )
    assert str(_stopped_by_peer(folder, None, made_folder=False, rank=0, go_on=RESUME_ADVICE)).endswith(
        "stops too before the first epoch ended; nothing was saved (run the same command again; --resume has "
        "nothing to go on from)"
    )
    assert str(_stopped_by_peer(folder, trained, made_folder=False, rank=1, go_on=RESUME_ADVICE)) == (
        "rank 1: another rank of this job stopped, so this one stops too (rank 0 says what is saved)"
    )


def test_a_resumed_run_whose_batch_does_not_split_over_the_ranks_is_told_to_change_the_ranks():
    """A 3-rank resume of a run of batch 128 was told "pass a multiple of 3" to --batch-size, which a resumed run
    refuses to change."""
    from aetool.train.loop import _check_shares

    config = TrainConfig("ae64", batch_size=128, epochs=2)
    with pytest.raises(
        DataError,
        match=r"^the run's batch size 128 does not split over the 3 ranks .*: resume it with a number of ranks that "
        r"divides 128 \(2, say\), or start over with --force and a --batch-size that is a multiple of 3$",
    ):
        _check_shares(config, range(500), world=3, resumed=True)
    with pytest.raises(DataError, match=r"^--batch-size 128 does not split over the 3 ranks .*: pass a multiple of 3$"):
        _check_shares(config, range(500), world=3, resumed=False)
    _check_shares(config, range(500), world=4, resumed=True)


def test_train_takes_a_train_config_and_says_so(tmp_path):
    """A model's name failed with "'str' object has no attribute 'device'"."""
    with pytest.raises(TypeError, match=r"train takes a TrainConfig, e.g. TrainConfig\('deep'\), got str"):
        train("deep", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from aetool.export import ExportOptions, export_run

    for call in (lambda: train(TrainConfig("deep"), run_dir=None), lambda: load_run(None), lambda: export_run(3)):
        with pytest.raises(TypeError, match=r"^run_dir takes a run folder's path \(text or a Path\), got (None|3)$"):
            call()  # pathlib's "expected str, bytes or os.PathLike object" (trial 86)
    with pytest.raises(ValueError, match=r"^--data-dir takes a folder \(text or a Path\), got 3$"):
        ExportOptions(data_dir=3)  # type: ignore[arg-type]


def test_train_refuses_an_echo_that_is_not_a_function_before_it_starts(data_dir, tmp_path):
    """echo="x" failed after the first epoch, leaving the run folder (trial 80)."""
    with pytest.raises(TypeError, match=r"echo takes a function of one line of text .*, got str"):
        train(TrainConfig("ae64", data_dir=str(data_dir), epochs=1), run_dir=tmp_path / "run", echo="x")  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()


def test_the_train_packages_names_are_listed_though_they_load_on_first_use():
    """dir(aetool.train) left out the names PEP 562 loads on first use (trial 72)."""
    import aetool.train

    assert {"TrainConfig", "TrainResult", "train", "Run", "RunFolder", "load_run"} <= set(dir(aetool.train))


@pytest.mark.parametrize("option", ["resume", "force", "progress"])
def test_train_refuses_a_switch_that_is_not_true_or_false_before_it_starts(data_dir, tmp_path, option):
    """force="no" replaced the run in the folder, resume="no" resumed it (trial 83's kind of mistake, found in the
    twenty-eighth session): only True and False are taken."""
    config = TrainConfig("ae64", data_dir=str(data_dir), epochs=1)
    with pytest.raises(TypeError, match=rf"^{option} takes True or False, got 'no'$"):
        train(config, run_dir=tmp_path / "run", **{option: "no"})
    assert not (tmp_path / "run").exists()


def test_a_run_file_given_for_its_folder_names_the_folder(tmp_path):
    """`calibrate runs/parts/model.onnx` said only "it is a file" (trial 89)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CHECKPOINT).write_bytes(b"")
    (tmp_path / "run" / "model.onnx").write_bytes(b"")
    (tmp_path / "loose.onnx").write_bytes(b"")
    with pytest.raises(AetoolError, match=re.escape(f"it is a file; its run folder is {tmp_path / 'run'}") + "$"):
        RunFolder(tmp_path / "run" / "model.onnx").read_checkpoint()
    with pytest.raises(AetoolError, match=r"loose\.onnx as a run folder: it is a file$"):
        RunFolder(tmp_path / "loose.onnx").read_checkpoint()
