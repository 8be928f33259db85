"""Training on your own images: a folder or glob, grey or colour, any size; the size policy and its refusals."""

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra")

from conftest import read, save  # noqa: E402
from synthetic import stroke_digits  # noqa: E402

from aetool.errors import AetoolError, DataError  # noqa: E402
from aetool.runtime import contract, images  # noqa: E402
from aetool.train import TrainConfig, load_run, train  # noqa: E402
from aetool.train import data as data_layer  # noqa: E402
from aetool.train.data import Batches, folder_images, load_training_data  # noqa: E402
from aetool.train.loop import MIN_STEPS, few_steps  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """48 synthetic digits as PNGs in two class subfolders (labels: the number of strokes, odd or even)."""
    root = tmp_path_factory.mktemp("digits")
    images, labels = stroke_digits(48, seed=3)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        save(root / ("odd" if label % 2 else "even") / f"{i:03d}.png", image)
    return root


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    """Colour images of three sizes: smooth gradients with a coloured square."""
    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    for i, (height, width) in enumerate([(40, 48), (36, 60), (44, 44), (40, 48), (52, 40), (48, 56)]):
        y, x = np.mgrid[:height, :width] / max(height, width)
        image = np.stack([y, x, 1 - y], -1)
        top, left = rng.integers(0, height - 12), rng.integers(0, width - 12)
        image[top : top + 12, left : left + 12] = rng.random(3)
        save(root / f"photo{i}.png", (image * 255).astype(np.uint8))
    return root


def quick(name, **settings):
    return TrainConfig(name, device="cpu", epochs=2, batch_size=16, **settings)


def test_a_folder_of_digits_trains_with_labels_and_a_seeded_validation_split(digit_folder, tmp_path):
    data, settled = load_training_data(quick("deep", data=str(digit_folder), val=0.25))
    assert (len(data.train), len(data.test)) == (36, 12) and settled.channels == 1 and settled.size == (28, 28)
    assert set(data.train.labels) == {"odd", "even"}
    again, _ = load_training_data(quick("deep", data=str(digit_folder), val=0.25))
    assert again.test.names == data.test.names  # the same seed holds out the same images
    other, _ = load_training_data(quick("deep", data=str(digit_folder), val=0.25, seed=1))
    assert other.test.names != data.test.names
    result = train(quick("deep", data=str(digit_folder)), run_dir=tmp_path, progress=False, echo=len)
    assert {"test_mse", "test_psnr", "test_ssim"} <= result.history[-1].keys()
    assert load_run(tmp_path).config.dataset == "images"
    recorded = json.loads((tmp_path / "metrics.json").read_text())["config"]
    assert recorded["val"] == 0.1  # the default held out, recorded as what it was, not null (trial 85)


def test_a_glob_and_a_validation_folder(digit_folder):
    data, _ = load_training_data(
        quick("ae64", data=str(digit_folder / "odd" / "*.png"), val_data=str(digit_folder / "even"))
    )
    assert all("/odd/" in name for name in data.train.names) and all("/even/" in name for name in data.test.names)


def test_the_folder_of_the_normal_class_itself_is_taken_whole_with_its_subfolders(digit_folder, tmp_path):
    """``calibrate --data data/good`` of a ``--classes good`` run was refused: "no image is labelled good; the
    labels are '', 'batch2'" (its subfolder taken for a label)."""
    from aetool.train.data import labelled_classes

    odd = sorted((digit_folder / "odd").glob("*.png"))
    for path in odd[:3]:
        save(tmp_path / "good" / path.name, read(path))
    for path in odd[3:5]:
        save(tmp_path / "good" / "batch2" / path.name, read(path))
    assert labelled_classes(str(tmp_path / "good"), ("good",), option="--data") == ()
    assert labelled_classes(str(tmp_path), ("good",), option="--data") == ("good",)  # the folder above: by label
    images = folder_images(str(tmp_path / "good"), channels=1, size=None, classes=())
    assert len(images) == 5


def test_training_on_images_of_more_than_8_bits_says_it_keeps_8(tmp_path):
    """The image commands noted it per image; train cut 12-bit scans in 16-bit files to 9–15 levels in silence."""
    for i in range(3):
        save(tmp_path / "scans" / f"{i}.png", (np.arange(32 * 32).reshape(32, 32) * 4 % 4096).astype(np.uint16))
    with pytest.warns(
        UserWarning, match=r"^3 of the 3 images of .*scans have more than 8 bits a pixel; training keeps 8"
    ):
        folder_images(str(tmp_path / "scans"), channels=1, size=None)


def test_an_image_whose_exif_block_ends_in_its_header_trains_as_stored(tmp_path):
    """The header probe's getexif() raised a struct.error: a traceback, the run ended (trial 88)."""
    from PIL import Image

    (tmp_path / "scans").mkdir()
    stored = np.kron(np.arange(6, dtype=np.uint8).reshape(2, 3) * 40, np.ones((8, 8), np.uint8))  # 16 high, 24 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # the block is cut before its tags: read as stored, not turned
    Image.fromarray(stored).save(tmp_path / "scans" / "cut.png", exif=exif.tobytes()[:13])
    images = folder_images(str(tmp_path / "scans"), channels=1, size=None)
    assert np.asarray(images.images).shape == (1, 1, 16, 24) and np.array_equal(images.images[0][0], stored)


def test_validation_images_that_are_training_images_too_are_warned(digit_folder):
    """--val-data the --data folder, or inside it, trained in silence (calibrate --data warned of the same)."""
    with pytest.warns(
        UserWarning,
        match=r"^(\d+) of the \1 --val-data images are training images too \(--val-data .*odd and --data .* share",
    ):
        load_training_data(quick("ae64", data=str(digit_folder), val_data=str(digit_folder / "odd")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_training_data(quick("ae64", data=str(digit_folder / "even"), val_data=str(digit_folder / "odd")))


def test_copies_on_both_sides_of_the_validation_split_are_warned(digit_folder, tmp_path):
    """A file's copy, or a link to it, held out while the file trained, and a --val-data copy of the training
    folder (compared by name only) went unsaid (trial 94)."""
    import shutil

    shutil.copytree(digit_folder / "odd", tmp_path / "train")
    shutil.copytree(digit_folder / "odd", tmp_path / "copy")
    with pytest.warns(UserWarning, match=r"^(\d+) of the \1 --val-data images are training images too"):
        load_training_data(quick("ae64", data=str(tmp_path / "train"), val_data=str(tmp_path / "copy")))
    first = sorted((tmp_path / "train").iterdir())[0]
    for copy in range(3):
        shutil.copy(first, tmp_path / "train" / f"copy{copy}.png")
    with pytest.warns(UserWarning, match=r"images held out for validation ha(s|ve) the pixels of training images"):
        load_training_data(quick("ae64", data=str(tmp_path / "train"), val=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_training_data(quick("ae64", data=str(digit_folder / "odd"), val=0.5))


def test_a_dangling_link_in_the_data_is_warned_of_once_not_again_by_the_export_reading_it(digit_folder, tmp_path):
    """Training said it, then the export said it twice more (trial 94)."""
    import shutil

    from aetool.export.exporter import find_images_or_none

    shutil.copytree(digit_folder / "odd", tmp_path / "data")
    (tmp_path / "data" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    settings = quick("conv-unpool", data=str(tmp_path / "data"))
    with pytest.warns(UserWarning, match=r"gone.png: is a symbolic link to .*nowhere.png, which does not exist"):
        load_training_data(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_training_data(settings, warn=False)
        assert find_images_or_none(str(tmp_path / "data"))


def test_a_validation_folder_problem_is_named_as_the_val_data_option(digit_folder, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "notes.png").write_text("not an image")
    (tmp_path / "bad" / "zero.png").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"^--val-data .*bad: none of its 2 files could be read as an image; the first, .*notes.png: "
    ):
        load_training_data(quick("ae64", data=str(digit_folder), val_data=str(tmp_path / "bad")))
    with pytest.raises(DataError, match=r"^--val-data .*missing"):
        load_training_data(quick("ae64", data=str(digit_folder), val_data=str(tmp_path / "missing")))


def test_validation_images_all_smaller_than_a_conv_models_multiple_are_refused_before_training(digit_folder, tmp_path):
    """The export, after training, refused them and named ``aetool export RUN``, which refused the same (trial 94)."""
    save(tmp_path / "tiny" / "a.png", np.zeros((1, 1), np.uint8))
    save(tmp_path / "tiny" / "b.png", np.zeros((2, 3), np.uint8))
    with pytest.raises(
        DataError, match=r"^no image of --val-data .*tiny is at least 4×4 pixels, the smallest conv-unpool takes"
    ):
        load_training_data(quick("conv-unpool", data=str(digit_folder), val_data=str(tmp_path / "tiny")))
    save(tmp_path / "tiny" / "c.png", np.zeros((4, 4), np.uint8))
    load_training_data(quick("conv-unpool", data=str(digit_folder), val_data=str(tmp_path / "tiny")))


def test_images_all_over_the_pixel_limit_are_not_called_unreadable(tmp_path, monkeypatch):
    """Every image over --max-megapixels was "not an image Pillow can read" (trial 61)."""
    from PIL import Image

    for name in ("a", "b"):
        save(tmp_path / "big" / f"{name}.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"the first, .*a.png: refused as a possible decompression bomb: 1,600 pixels"):
        folder_images(str(tmp_path / "big"), warn=False)


def test_colour_images_train_a_colour_conv_model_on_patches_and_export_contract_2(colour_folder, tmp_path):
    config = quick("conv-unpool", data=str(colour_folder), patch=16, noise=0.1, val=0.5)  # test images of 3 sizes
    result = train(config, run_dir=tmp_path / "run", progress=False, echo=len)
    run = load_run(tmp_path / "run")
    assert run.config.channels == 3 and run.net.channels == 3 and result.history[-1]["test_psnr"] > 0
    from aetool.export import ExportOptions, export_run
    from aetool.runtime import load

    with pytest.raises(AetoolError, match=r"--data-dir names a folder of IDX files, but .* was trained on the images"):
        export_run(tmp_path / "run", options=ExportOptions(data_dir="/nope"), echo=len)
    exported = export_run(tmp_path / "run", options=ExportOptions(precisions=("int8",)), echo=len)
    assert "(centre crops " in exported.variants[0].test_set  # test images of several sizes: not the run's MSE
    model = load(tmp_path / "run" / "model.onnx")
    assert model.input_spec.channels == 3 and model.input_spec.polarity == contract.AS_IS
    assert model.metadata[contract.COLOUR_SPACE] == "srgb" and str(model.metadata[contract.CONTRACT_VERSION]) == "2"
    assert model.reconstruct(np.random.default_rng(0).random((1, 3, 40, 60), dtype=np.float32)).shape == (1, 3, 40, 60)


@pytest.mark.parametrize(("name", "side"), [("conv-unpool", 30), ("denoise", 29)])
def test_images_of_one_size_the_model_cannot_take_train_on_patches_and_export(name, side, tmp_path):
    """The refusal without --patch names --patch; with it, scoring and export's parity ran the test images unpadded
    (a traceback after the first epoch, or from onnxruntime at export)."""
    for i, image in enumerate(stroke_digits(12, seed=4)[0]):
        save(tmp_path / "odd" / f"{i}.png", np.pad(image, ((0, side - 28), (0, side - 28))))
    with pytest.raises(
        DataError, match=f"the training images are {side}×{side} \\(width×height\\); .*: pass --patch N"
    ):
        load_training_data(quick(name, data=str(tmp_path / "odd"), val=0.25))
    config = quick(name, data=str(tmp_path / "odd"), val=0.25, patch=16)
    result = train(config, run_dir=tmp_path / "run", progress=False, echo=len)
    assert np.isfinite(result.history[-1]["test_mse"])
    from aetool.export import ExportOptions, export_run

    exported = export_run(tmp_path / "run", options=ExportOptions(precisions=("int8",)), echo=len)
    assert "(centre crops " in exported.variants[0].test_set  # 28×28 crops of the test images: not the run's MSE


def test_tiny_validation_images_export_and_are_refused_by_an_ssim_calibration_in_one_line(colour_folder, tmp_path):
    """A 1×1 validation image cropped export's parity images to nothing, and an 8×8 one met SSIM's 11×11 window in
    calibrate: two tracebacks (a trial's messy folder)."""
    from aetool.export import ExportOptions, export_run
    from aetool.export.detector import CalibrationOptions, calibrate_run

    save(tmp_path / "val" / "photo.png", read(colour_folder / "photo0.png"))
    save(tmp_path / "val" / "dot.png", np.zeros((1, 1, 3), np.uint8))
    save(tmp_path / "val" / "sliver.png", np.zeros((8, 8, 3), np.uint8))
    config = quick("conv-unpool", data=str(colour_folder), val_data=str(tmp_path / "val"), patch=16)
    train(config, run_dir=tmp_path / "run", progress=False, echo=len)
    assert export_run(tmp_path / "run", options=ExportOptions(), echo=len).path.is_file()
    options = CalibrationOptions(data=str(tmp_path / "val"))
    with pytest.raises(
        AetoolError, match=r"^calibration image .*(dot|sliver)\.png and 1 more: smaller than SSIM's 11×11"
    ):
        calibrate_run(tmp_path / "run", out=tmp_path / "detector.onnx", options=options, echo=len)


def test_a_validation_image_over_the_one_call_limit_is_refused_before_training(colour_folder, tmp_path, monkeypatch):
    """It was a traceback after the first epoch (302 s for a trial's 36 MP page)."""
    from aetool.runtime import spec

    monkeypatch.setattr(spec, "MAX_CONV_PIXELS", 48 * 48)
    save(tmp_path / "val" / "page.png", np.zeros((64, 64, 3), np.uint8))
    config = quick("dncnn", data=str(colour_folder), val_data=str(tmp_path / "val"), patch=16)
    with pytest.raises(AetoolError, match=r"^image .*page\.png: 64×64 \(width×height\) is over the 2,304-pixel limit"):
        train(config, run_dir=tmp_path / "run", progress=False, echo=len)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_folder_changed_under_a_run_is_refused_by_resume_and_by_calibrate(digit_folder, tmp_path):
    """Files added or removed after training were taken in silence: a resume mixed two validation sets in one
    history, and calibrate drew its held-out images again, 4 of a trial's 10 being images the model trained on."""
    import shutil

    from aetool.errors import Interrupted
    from aetool.export.detector import CalibrationOptions, calibrate_run

    folder = tmp_path / "digits"
    shutil.copytree(digit_folder / "odd", folder)
    config = TrainConfig("anomaly", device="cpu", epochs=2, batch_size=16, data=str(folder))

    def stop_after_epoch_1(line):
        if line.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(config, run_dir=tmp_path / "run", progress=False, echo=stop_after_epoch_1)
    calibrate_run(tmp_path / "run", out=tmp_path / "before.onnx", options=CalibrationOptions(), echo=len)
    shutil.copy(next(folder.iterdir()), folder / "added.png")
    with pytest.raises(AetoolError, match=r"^the images of --data .*digits are not the ones this run started on"):
        train(config, run_dir=tmp_path / "run", resume=True, progress=False, echo=len)
    with pytest.raises(AetoolError, match=r"^the images of .*digits are not the ones .*run was trained and"):
        calibrate_run(tmp_path / "run", out=tmp_path / "after.onnx", options=CalibrationOptions(), echo=len)
    (folder / "added.png").unlink()  # put back as it was: both go on
    calibrate_run(tmp_path / "run", out=tmp_path / "after.onnx", options=CalibrationOptions(), echo=len)
    assert train(config, run_dir=tmp_path / "run", resume=True, progress=False, echo=len).history[-1]["epoch"] == 2


def test_a_changed_validation_folder_is_named_by_resume_and_left_to_calibrate(digit_folder, tmp_path):
    """A file added to --val-data was blamed on --data by the resume, and refused by calibrate as held-out images
    "drawn again", which a validation folder's are not (trial 57)."""
    import shutil

    from aetool.errors import Interrupted
    from aetool.export.detector import CalibrationOptions, calibrate_run

    shutil.copytree(digit_folder / "odd", tmp_path / "train")
    shutil.copytree(digit_folder / "even", tmp_path / "val")
    config = TrainConfig(
        "anomaly", device="cpu", epochs=2, batch_size=16, data=str(tmp_path / "train"), val_data=str(tmp_path / "val")
    )

    def stop_after_epoch_1(line):
        if line.startswith("epoch   1"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(config, run_dir=tmp_path / "run", progress=False, echo=stop_after_epoch_1)
    shutil.copy(next((tmp_path / "val").iterdir()), tmp_path / "val" / "added.png")
    with pytest.raises(AetoolError, match=r"^the images of --val-data .*val are not .*: its validation scores would"):
        train(config, run_dir=tmp_path / "run", resume=True, progress=False, echo=len)
    calibrate_run(tmp_path / "run", out=tmp_path / "detector.onnx", options=CalibrationOptions(), echo=len)


def test_patch_batches_are_a_pure_function_of_seed_and_epoch(colour_folder):
    images = folder_images(str(colour_folder))
    batches = Batches(images, 4, seed=5, patch=12)
    first = [batches.take(index, epoch=3, step=i) for i, index in enumerate(batches.epoch(3))]
    again = [batches.take(index, epoch=3, step=i) for i, index in enumerate(batches.epoch(3))]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape[1:] == (3, 12, 12)
    per_epoch = sum(len(index) for index in batches.epoch(3))
    assert per_epoch == sum(max(1, round(h * w / 144)) for h, w in images.sizes())  # about every pixel once


def test_augment_turns_and_flips_whole_images_too_not_patches_alone():
    """Without --patch, --augment (dncnn's default) was recorded but did nothing (trial 71); an oblong image keeps
    its shape under the four symmetries that keep it."""
    from aetool.train.data import ImageSet

    for height, width, kinds in ((6, 6, 8), (4, 6, 4)):
        pixels = np.arange(height * width, dtype=np.uint8).reshape(1, 1, height, width)
        images = ImageSet(np.repeat(pixels, 64, axis=0), ["0"] * 64, [str(i) for i in range(64)])
        batches = Batches(images, 64, seed=1, augment=True)
        taken = batches.take(np.arange(64), epoch=0, step=0)
        assert taken.shape == (64, 1, height, width)
        seen = {bytes(image.numpy()) for image in taken}
        assert len(seen) == kinds  # all of the symmetries drawn, nothing else
        plain = Batches(images, 64, seed=1).take(np.arange(64), epoch=0, step=0)
        assert {bytes(image.numpy()) for image in plain} == {bytes(pixels[0])}


def test_a_last_batch_of_one_image_joins_the_one_before():
    """A model with BatchNorm failed with a traceback on a batch of one image ("Expected more than 1 value per
    channel when training"): 129 images in batches of 128 (trial 41)."""
    from aetool.train.data import ImageSet

    for count, sizes in ((129, [129]), (130, [128, 2]), (257, [128, 129]), (1, [1])):
        pixels = np.zeros((count, 1, 4, 4), np.uint8)
        batches = Batches(ImageSet(pixels, ["0"] * count, [str(i) for i in range(count)]), 128, seed=0)
        assert [len(batch) for batch in batches.epoch(0)] == sizes
        assert sorted(np.concatenate(batches.epoch(0)).tolist()) == list(range(count))


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        (
            "deep",
            {},
            r"holds images of several sizes \(height×width: 40x48 \(2\), .*; deep takes one size: pass --size HxW",
        ),
        ("conv-deconv", {}, r"several sizes .*: pass --patch N for random N×N crops \(a multiple of 4\)$"),
        (
            "conv-deconv",
            {"patch": 64},
            r"--patch 64 is larger than \d of the \d training images \(the smallest: .*photo\d.png, \d+×\d+ \(width×height\)\)",
        ),
    ],
)
def test_the_size_policy_refuses_what_cannot_train_in_one_line(colour_folder, name, settings, message):
    with pytest.raises(DataError, match=message):
        load_training_data(quick(name, data=str(colour_folder), **settings))


def test_a_patch_too_large_is_refused_with_the_largest_the_model_takes(tmp_path):
    """The advice was "a patch of at most 30" for a model that takes multiples of 4, which refused 30 in turn."""
    save(tmp_path / "small.png", np.zeros((30, 45), np.uint8))
    save(tmp_path / "large.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(
        DataError,
        match=r"--patch 32 is larger than 1 of the 1 training images \(the smallest: .*small.png, 45×30 \(width×height\)\); "
        r"pass a patch of at most 28$",  # leaving the one training image out left none (trial 94)
    ):
        load_training_data(quick("conv-deconv", data=str(tmp_path), patch=32))
    for i in range(5):
        save(tmp_path / "tiny" / f"tiny{i}.png", np.zeros((3, 5), np.uint8))
    with pytest.raises(
        DataError,
        match=r"larger than 4 of the 4 training images \(the smallest: .*tiny\d.png, 5×3 \(width×height\)\); leave the 4 images "
        r"under 4×4 out of the training folder \(4×4 is the smallest patch conv-deconv takes\)$",
    ):
        load_training_data(quick("conv-deconv", data=str(tmp_path / "tiny"), patch=4))
    save(tmp_path / "dot" / "dot.png", np.zeros((1, 1), np.uint8))  # dncnn takes any size: it offered "at most 1"
    save(tmp_path / "dot" / "large.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(
        DataError, match=r"under 16×16 out of the training folder \(too small for a patch to learn from\)$"
    ):
        load_training_data(quick("dncnn", data=str(tmp_path / "dot"), val_data=str(tmp_path / "tiny"), patch=16))


def test_dense_models_take_a_size_and_grey_folders_replicate_to_colour_when_asked(colour_folder, digit_folder):
    data, settled = load_training_data(quick("ae64", data=str(colour_folder), size=(24, 32)))
    assert data.train.images.shape[1:] == (3, 24, 32) and settled.size == (24, 32)
    fitted = folder_images(str(colour_folder), size=(24, 32))  # as the runtime's --resize fits them, in 8 bits
    for name, image in zip(fitted.names, fitted.images, strict=True):
        expected = np.round(images.resize(images.read_image(name).pixels, (24, 32)) * 255)
        np.testing.assert_array_equal(image, expected)
    with pytest.warns(UserWarning, match="grey images only; they are replicated to 3 channels"):
        data, settled = load_training_data(quick("ae64", data=str(digit_folder), channels=3))
    assert settled.channels == 3 and data.train.images.shape[1] == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"size": (28, 28), "model": "conv-unpool"}, "takes any size"),
        ({"patch": 16, "model": "deep"}, "takes one size"),
        ({"patch": 18, "model": "conv-unpool"}, "multiple of 4"),
        ({"val": 1.5}, "fraction strictly between 0 and 1"),
        ({"channels": 2}, "1 \\(grey\\) or 3"),
        ({"val": 0.2, "val_data": "x"}, "give one"),
        ({"data_dir": "x"}, "name two sources"),
    ],
)
def test_options_that_cannot_work_are_refused(settings, message):
    name = settings.pop("model", "deep")
    with pytest.raises(ValueError, match=message):
        TrainConfig(name, data="somewhere", **settings)


def test_an_empty_folder_and_a_glob_without_images_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_training_data(quick("deep", data=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="pattern matched no images"):
        load_training_data(quick("deep", data=str(tmp_path / "*.png")))
    with pytest.raises(DataError, match=r"--data .*nowhere: no such file or folder$"):
        load_training_data(quick("deep", data=str(tmp_path / "nowhere")))


def test_classes_of_a_folder_without_subfolders_say_labels_come_from_subfolders(colour_folder):
    with pytest.raises(DataError, match=r"these images have no labels .*first-level subfolders of --data"):
        load_training_data(quick("deep", data=str(colour_folder), size=(24, 24), classes=("3",)))


def test_a_detector_trained_on_labelled_subfolders_without_classes_is_warned(tmp_path):
    for shade, label in enumerate(("bad", "good")):
        for i in range(3):  # no two alike: a held-out copy of a training image is warned of on its own
            save(tmp_path / label / f"{i}.png", np.full((24, 24), 40 * i + 60 + 10 * shade, np.uint8))
    with pytest.warns(
        UserWarning, match=r"has subfolders \(bad, good\), and anomaly learns all of them as normal; .*--classes good"
    ):
        load_training_data(quick("anomaly", data=str(tmp_path), size=(24, 24)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one-class training, and a model that is not a detector: no warning
        load_training_data(quick("anomaly", data=str(tmp_path), size=(24, 24), classes=("good",)))
        load_training_data(quick("deep", data=str(tmp_path), size=(24, 24)))


def test_validation_images_resized_to_the_models_size_are_counted_in_a_warning(colour_folder, tmp_path):
    save(tmp_path / "val" / "big.png", np.full((30, 30, 3), 90, np.uint8))
    config = quick("ae64", data=str(colour_folder), size=(24, 24), val_data=str(tmp_path / "val"))
    with pytest.warns(UserWarning) as caught:
        load_training_data(config)
    said = [str(warning.message) for warning in caught]
    assert any(re.match(r"1 of the 1 images of .*val are not 24×24 .* resized", line) for line in said), said


def test_grey_images_among_colour_ones_are_said_to_be_replicated(tmp_path):
    for i in range(3):  # one colour photo among grey ones made a colour model without a word
        save(tmp_path / f"grey{i}.png", np.full((24, 24), 40 * i + 60, np.uint8))
    save(tmp_path / "colour.png", np.random.default_rng(0).integers(0, 256, (24, 24, 3), np.uint8))
    with pytest.warns(
        UserWarning, match=r"3 of the 4 images of .* are grey and were replicated to 3 channels, since the"
    ):
        assert folder_images(str(tmp_path)).channels == 3
    with pytest.warns(UserWarning, match=r"are grey and were replicated to 3 channels$"):  # asked for: no advice
        folder_images(str(tmp_path), channels=3)
    with pytest.warns(UserWarning, match=r"1 of the 4 images of .* are in colour and were converted to grey \(luma\)"):
        assert folder_images(str(tmp_path), channels=1).channels == 1  # a grey model's (calibrate reads so too)


def test_images_outside_the_classes_decide_neither_channels_nor_size(tmp_path):
    # a colour photo of another size beside the normal class made the grey detector a 3-channel model, and without
    # --size it said the folder "holds images of several sizes" listing one
    for i in range(4):
        save(tmp_path / "good" / f"{i}.png", np.full((24, 24), 40 * i + 60, np.uint8))
    photo = np.random.default_rng(0).integers(0, 256, (30, 45, 3), np.uint8)
    save(tmp_path / "stray.png", photo)
    save(tmp_path / "bad" / "photo.png", photo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing resized, nothing replicated
        data, settled = load_training_data(quick("anomaly", data=str(tmp_path), classes=("good",)))
    assert settled.channels == 1 and settled.size == (24, 24) and len(data.train) + len(data.test) == 4
    with pytest.raises(
        DataError,
        match=r"no image is labelled fine; the labels are 'bad', 'good' \(and images beside them, which have none\)$",
    ):
        load_training_data(quick("anomaly", data=str(tmp_path), classes=("fine",)))


def test_images_resized_to_a_models_size_are_counted_in_a_warning(colour_folder):
    with pytest.warns(UserWarning, match=r"4 of the 6 images of .* are not 40×48 \(height×width\) and were resized \("):
        folder_images(str(colour_folder), size=(40, 48))
    with pytest.warns(
        UserWarning,
        match=r"6 of the 6 .* were resized, 4 of them with aspect ratio not kept, as aetool.s image commands",
    ):
        folder_images(str(colour_folder), size=(20, 24))  # two of them are 40×48: their ratio is kept
    with pytest.warns(
        UserWarning, match=r"were given the MNIST fit \(ink centred in 20×20\), as aetool.s image commands resize"
    ):
        folder_images(str(colour_folder), size=(40, 48), white_on_black=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder_images(str(colour_folder), size=(40, 48), warn=False)


def test_images_resized_at_their_aspect_ratio_are_not_said_to_lose_it(tmp_path):
    """Frames of 640×360 resized to 64×36 were said to lose their aspect ratio (a trial)."""
    save(tmp_path / "a.png", np.full((36, 64, 3), 90, np.uint8))
    save(tmp_path / "b.png", np.full((361, 641, 3), 90, np.uint8))  # to the pixel (0.1 % off: said to lose it)
    with pytest.warns(UserWarning) as said:
        folder_images(str(tmp_path), size=(9, 16))
    assert [str(w.message).split(" and were ")[1] for w in said] == [
        "resized, as aetool's image commands resize them with --resize"
    ]


def test_a_variant_of_a_run_whose_images_moved_away_says_where_they_were(colour_folder, tmp_path):
    import shutil

    from aetool.export import ExportOptions, export_run

    images = shutil.copytree(colour_folder, tmp_path / "images")
    train(quick("ae64", data=str(images), size=(24, 24)), run_dir=tmp_path / "run", progress=False, echo=len)
    shutil.move(images, tmp_path / "moved")
    with pytest.raises(
        AetoolError,
        match=rf"int8 files are checked on test images: the run's own images, which are no "
        rf"longer in {re.escape(str(images))}: put them back there",
    ):
        export_run(tmp_path / "run", out=tmp_path / "v.onnx", options=ExportOptions(precisions=("int8",)), echo=len)


def test_held_out_images_are_named_by_their_path_in_the_data_folder(tmp_path):
    """ "0.png" did not say whether the cat's or the dog's was held out (trial 94)."""
    for label in ("cat", "dog"):
        for i in range(3):
            save(tmp_path / "data" / label / f"{i}.png", np.full((8, 8), 40 * i + (label == "dog") * 10, np.uint8))
    lines: list[str] = []
    config = quick("conv-unpool", data=str(tmp_path / "data"), val=0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few steps, few images
        train(config, run_dir=tmp_path / "run", progress=False, echo=lines.append)
    [held] = [line for line in lines if line.startswith("held out ")]
    assert re.fullmatch(
        r"held out 2 of 6 images for validation \(--val 0\.4\): (cat|dog)/\d\.png, (cat|dog)/\d\.png", held
    )


def test_a_pca_fit_on_own_images_names_the_images_it_holds_out_as_a_trained_run_does(colour_folder, tmp_path):
    """A PCA run said nothing of its validation images (trial 94)."""
    lines: list[str] = []
    config = TrainConfig("pca", data=str(colour_folder), size=(24, 24), components=2)
    train(config, run_dir=tmp_path / "run", progress=False, echo=lines.append)
    [held] = [line for line in lines if line.startswith("held out ")]
    assert re.fullmatch(r"held out 1 of 6 images for validation \(--val 0\.1\): photo\d\.png", held)


def test_a_run_of_few_optimizer_steps_on_own_images_is_warned_with_the_epochs_to_pass(colour_folder, tmp_path):
    lines: list[str] = []
    result = train(
        quick("ae64", data=str(colour_folder), size=(24, 24)),
        run_dir=tmp_path / "run",
        progress=False,
        echo=lines.append,
    )
    [warned] = [line for line in lines if line.startswith("warning: ")]
    [held] = [line for line in lines if line.startswith("held out ")]  # which image validates, by name
    assert re.fullmatch(r"held out 1 of 6 images for validation \(--val 0\.1\): photo\d\.png", held)
    assert warned == (  # 5 training images (one held out), batches of 16: one step an epoch
        "warning: 5 training images make 1 step an epoch, so 2 epochs are 2 optimizer steps, and models learn "
        f"little in fewer than about {MIN_STEPS} (see the README, Your own images): pass --epochs {MIN_STEPS}"
    )
    assert result.few_steps == (2, MIN_STEPS)  # a run that learned nothing says the epochs again at its end
    assert result.trivial is None or result.trivial.endswith(
        f"in 2 optimizer steps (train again with its options and --force --epochs {MIN_STEPS})"
    )
    result.history[-1]["test_mse"] = 1.0
    assert result.trivial.endswith(
        f"learned nothing useful in 2 optimizer steps (train again with its options and --force --epochs {MIN_STEPS})"
    )
    assert few_steps(quick("ae64"), 1, 5) is None  # MNIST's defaults are MNIST's
    assert few_steps(TrainConfig("ae64", data=str(colour_folder), epochs=MIN_STEPS), 1, 5) is None


def test_the_held_out_line_counts_before_limit_and_is_not_said_of_a_lone_image(colour_folder, tmp_path):
    from aetool.train.loop import held_out_line

    config = quick("ae64", data=str(colour_folder), size=(24, 24), val=0.5, limit=2)
    with pytest.warns(UserWarning, match="resized"):
        data, _ = load_training_data(config)
    assert len(data.train) == len(data.test) == 2  # 3 held out of 6, then --limit 2 of each
    assert re.fullmatch(
        r"held out 3 of 6 images for validation \(--val 0\.5\), of which --limit 2 keeps 2: photo\d\.png, "
        r"photo\d\.png",
        held_out_line(config, data),
    )
    save(tmp_path / "one" / "only.png", np.full((24, 24), 90, np.uint8))
    lone = quick("ae64", data=str(tmp_path / "one"))
    with pytest.warns(UserWarning, match="only.png is the only image: it both trains and validates"):
        data, _ = load_training_data(lone)
    assert held_out_line(lone, data) is None  # it said "held out 1 of 2 images"
    assert few_steps(lone, 1, 1).startswith("1 training image makes 1 step an epoch, so 2 epochs are 2 optimizer")


def test_large_sets_are_memory_mapped(colour_folder, monkeypatch):
    monkeypatch.setattr(data_layer, "IN_MEMORY_BYTES", 1000)
    images = folder_images(str(colour_folder))
    assert isinstance(images.images[0].base, np.memmap) and images._storage is not None
    assert images.images[0].max() > 0


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist (the real MNIST files)")
def test_an_idx_folder_of_the_other_dataset_is_refused_naming_both():
    with pytest.raises(DataError, match="holds mnist, not fashion-mnist"):
        load_training_data(TrainConfig("deep", dataset="fashion-mnist", data_dir=str(SHARED / "mnist")))


def test_a_lone_image_trains_and_validates_and_a_warning_says_what_that_means(tmp_path):
    save(tmp_path / "only.png", np.full((16, 16), 128, dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"only\.png is the only image: it both trains and validates"):
        data, _ = load_training_data(quick("deep", data=str(tmp_path)))
    assert (len(data.train), len(data.test)) == (1, 1)
    from aetool.train.loop import TrainResult

    lone = TrainResult(tmp_path, [{"epoch": 1, "test_mse": 0.18}], baselines={"zeros": 0.3, "mean_image": 0.0})
    lone.few_steps = (1, MIN_STEPS)
    assert lone.trivial is not None and "--epochs" not in lone.trivial  # it said: train again with --epochs 300
    assert lone.trivial.endswith(
        "a trivial output scores 0 on the validation images, so no model can beat it: add images or give --val-data"
    )


def test_files_whose_pixels_cannot_be_read_are_skipped_with_a_line_each(digit_folder, tmp_path, monkeypatch):
    from PIL import Image

    for path in sorted((digit_folder / "odd").iterdir())[:3]:
        save(tmp_path / path.name, np.asarray(Image.open(path)))
    save(tmp_path / "whole.jpg", np.full((16, 16), 200, np.uint8))
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:-200])  # header intact, pixels cut
    frames = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "two.gif", save_all=True, append_images=frames[1:])
    save(tmp_path / "bomb.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: past Pillow's limit, under twice it
    with pytest.warns(UserWarning) as caught:
        images = folder_images(str(tmp_path))
    assert len(images) == 4 and "whole.jpg" in " ".join(images.names)
    lines = [str(w.message) for w in caught]
    assert any(f"skipped {tmp_path / 'cut.jpg'}: truncated or corrupt image" in line for line in lines)
    assert any(f"skipped {tmp_path / 'two.gif'}: has 2 frames" in line for line in lines)
    assert any(f"skipped {tmp_path / 'bomb.png'}: refused as a possible decompression bomb" in line for line in lines)
    assert len(lines) == 3  # Pillow's own bomb warning, which names no file, is not among them


@pytest.mark.parametrize("limit", [1 << 30, 1000])  # in memory, and memory-mapped
def test_rgb_files_of_grey_pixels_train_with_one_channel_as_the_runtime_reads_them(tmp_path, monkeypatch, limit):
    monkeypatch.setattr(data_layer, "IN_MEMORY_BYTES", limit)
    greys = [np.linspace(0, 255, 20 * 24).reshape(20, 24).astype(np.uint8), np.full((20, 24), 90, np.uint8)]
    for i, grey in enumerate(greys):
        save(tmp_path / "grey" / f"{i}.png", np.dstack([grey] * 3))  # stored as RGB
    images = folder_images(str(tmp_path / "grey"))
    assert images.channels == 1
    np.testing.assert_array_equal(images.images[:, 0], np.stack(greys))
    assert images.channels == images.images.shape[1] == images.tensor().shape[1]
    save(tmp_path / "grey" / "colour.png", np.dstack([greys[0], greys[1], greys[0]]))
    assert folder_images(str(tmp_path / "grey")).channels == 3


def test_a_one_class_run_reads_only_its_classes_from_val_data(digit_folder, tmp_path):
    """--classes good with --val-data test/ (good and defect subfolders) took the defects as normal images, and the
    calibration said it used "held-out images (20%) of the training images of class good" (trial 37)."""
    from types import SimpleNamespace

    from aetool.export.detector import _source

    odd = sorted((digit_folder / "odd").glob("*.png"))
    config = quick("anomaly", data=str(digit_folder), classes=("odd",), val_data=str(digit_folder))
    data = load_training_data(config)[0]
    assert len(data.test) == len(odd) and set(data.test.labels) == {"odd"}
    assert (
        _source(SimpleNamespace(config=config), data)
        == f"the {len(odd)} validation images of class odd in {digit_folder}"
    )
    for path in odd[:5]:  # a folder of unlabelled images: taken whole, as the normal images it is given as
        save(tmp_path / "flat" / path.name, read(path))
    flat = load_training_data(
        quick("anomaly", data=str(digit_folder), classes=("odd",), val_data=str(tmp_path / "flat"))
    )
    assert len(flat[0].test) == 5


def test_calibrate_data_of_a_labelled_folder_takes_a_one_class_runs_classes_and_every_class_must_be_there(
    digit_folder, tmp_path
):
    """calibrate --data test/ (good and defect subfolders) set the threshold on the defects too (trial 46), and
    --classes good,defectx trained on good and said nothing."""
    from aetool.errors import DataError
    from aetool.export.detector import CalibrationOptions, calibrate_run
    from aetool.train.data import folder_images

    with pytest.raises(DataError, match=r"no image is labelled nope; the labels are 'even', 'odd'"):
        folder_images(str(digit_folder), classes=("odd", "nope"))
    run = tmp_path / "run"
    config = quick("anomaly", data=str(digit_folder), classes=("odd",))
    train(config, run_dir=run, progress=False, echo=len)
    lines: list[str] = []
    options = CalibrationOptions(data=str(digit_folder), quantile=0.9)
    calibrate_run(run, out=tmp_path / "d.onnx", options=options, echo=lines.append)
    odd = len(list((digit_folder / "odd").glob("*.png")))
    assert any(f"on the {odd} images of class odd of {digit_folder}" in line for line in lines), lines


def test_a_detector_run_that_holds_out_one_image_is_warned_before_it_trains(digit_folder, tmp_path):
    """Six photos held out one: calibration then needed two, after training, and the commands its lines named
    failed the same way (trial 87)."""
    for path in sorted((digit_folder / "odd").iterdir())[:6]:
        (tmp_path / "six").mkdir(exist_ok=True)
        (tmp_path / "six" / path.name).write_bytes(path.read_bytes())
    lines: list[str] = []
    train(quick("anomaly", data=str(tmp_path / "six")), run_dir=tmp_path / "run", progress=False, echo=lines.append)
    warned = [line for line in lines if "calibrating its detector needs at least 2" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: the run holds out 1 normal image for validation")
    lines.clear()
    train(
        quick("anomaly", data=str(digit_folder / "odd")), run_dir=tmp_path / "more", progress=False, echo=lines.append
    )
    assert not any("needs at least 2" in line for line in lines)


def test_a_tiff_turned_by_its_orientation_is_probed_at_its_upright_size(tmp_path):
    """Pillow 13 reports such a TIFF's size already turned; the header probe turned it back (trial 90)."""
    from PIL import Image, TiffImagePlugin

    from aetool.train.data import _probe

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 6
    (tmp_path / "scans").mkdir()
    Image.fromarray(np.zeros((12, 20), np.uint8)).save(tmp_path / "scans" / "a.tif", tiffinfo=tags)
    assert _probe(tmp_path / "scans" / "a.tif") == (20, 12, False)
    assert np.asarray(folder_images(str(tmp_path / "scans"), channels=1).images).shape == (1, 1, 20, 12)


def test_classes_given_as_text_are_labels_not_letters(digit_folder, tmp_path):
    """``only(images, "37")`` took the 3s and the 7s, and ``folder_images(classes="3")`` unlabelled images too
    ("" in "3"): text was matched as a substring (trial 100); it is read as --classes spells labels."""
    from aetool.train.data import only

    save(tmp_path / "loose.png", read(next((digit_folder / "odd").glob("*.png"))))
    for name in ("odd", "even"):
        shutil.copytree(digit_folder / name, tmp_path / name)
    assert len(folder_images(str(tmp_path), classes="odd")) == len(list((digit_folder / "odd").glob("*.png")))
    images = folder_images(str(tmp_path), classes="odd,even")
    assert set(images.labels) == {"odd", "even"} and len(only(images, "even")) == images.labels.count("even")
    with pytest.raises(DataError, match=r"^no image is labelled oddeven; the labels are "):
        only(images, "oddeven")


def test_split_off_and_idx_images_refuse_what_they_cannot_take_in_their_own_words():
    """A fraction as text was a comparison's TypeError, a negative seed numpy's words, no images an empty split,
    and idx_images("cifar") read MNIST (trial 100)."""
    from aetool.train.data import ImageSet, idx_images, only, split_off

    images = ImageSet(np.zeros((4, 1, 2, 2), np.uint8), ["0"] * 4, [str(i) for i in range(4)])
    train, held = split_off(images, 0.25, 0)
    assert (len(train), len(held)) == (3, 1)
    for fraction, seed, message in (
        ("0.1", 0, r"^--val must be a fraction strictly between 0 and 1 .*, got '0.1'$"),
        (0.1, -1, r"^seed takes a whole number ≥ 0, got -1$"),
    ):
        with pytest.raises(ValueError, match=message):
            split_off(images, fraction, seed)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^only takes one class or more, got none$"):
        only(images, None)  # type: ignore[arg-type]  # an empty set, no error (trial 103)
    with pytest.raises(ValueError, match=r"^split_off takes one image or more, got none$"):
        split_off(images.subset(np.array([], np.int64)), 0.1, 0)
    with pytest.raises(ValueError, match=r"^dataset takes mnist or fashion-mnist \(the IDX datasets\), got 'cifar'$"):
        idx_images("cifar", "test", data_dir="nowhere")
