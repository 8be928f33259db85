"""aetool.runtime.evaluate: MSE, PSNR and SSIM from IDX files, folders of images and pairs of folders, with
onnxruntime, checked against numpy by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import digit, node, onnx_bytes, save, toy_metadata

from aetool.errors import AetoolError, DataError, ImageError, ModelFileError, OutOfMemory
from aetool.runtime import contract, load
from aetool.runtime.evaluate import evaluate, evaluate_images, evaluate_pairs
from aetool.runtime.idx import load_split
from aetool.runtime.images import fit
from aetool.runtime.metrics import ssim
from aetool.runtime.noise import TEST_NOISE_SEED, add_noise


def test_identity_on_clean_inputs_scores_zero(toy_dir, mnist_dir):
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0)
    assert result.mse == 0 and result.n == 12 and result.noise == 0
    assert result.model == "denoise-dense" and result.recorded_test_mse == 0.0  # a round-1 file's old name
    assert result.recorded_noise == "gaussian=0.5"  # the recorded MSE is under the training noise, not this one's
    assert evaluate(load(toy_dir / "dense.onnx"), mnist_dir).recorded_noise is None  # its own: nothing to say
    assert result.psnr is None and result.ssim == pytest.approx(1.0)  # infinite PSNR, identical images
    assert result.input_mse is None and result.input_psnr is None and result.input_ssim is None  # no noise
    assert result.split == "test" and result.data == str(mnist_dir) and result.failed == result.missing == []


def test_a_variant_is_compared_with_the_test_mse_it_records_itself(toy_dir, mnist_dir, tmp_path):
    """An int8 file's own test MSE is in its variant record; evaluate quoted the fp32 model's (trial 20)."""
    import json

    metadata = {**toy_metadata("ae128", "dense", None), "test_mse": "0.0087", "precision": "int8"}
    metadata["variant"] = json.dumps({"test_mse_fp32": 0.0087, "test_mse": 0.0088027})
    dense = ["N", 1, 28, 28]
    (tmp_path / "m.int8.onnx").write_bytes(
        onnx_bytes(
            {"image": dense}, {"reconstruction": dense}, [node("Identity", ["image"], ["reconstruction"])], metadata
        )
    )
    assert evaluate(load(tmp_path / "m.int8.onnx"), mnist_dir, noise=0).recorded_test_mse == 0.0088027
    assert evaluate(load(tmp_path / "m.int8.onnx"), mnist_dir, noise=0.2).recorded_noise == "none"  # trained clean


def test_noisy_inputs_score_the_noise_itself(toy_dir, mnist_dir):
    clean = load_split(mnist_dir, "test")[0][:5].astype(np.float32) / 255
    expected = np.mean((add_noise(clean, 0.3, kind="salt-pepper", rng=np.random.default_rng(7)) - clean) ** 2)
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0.3, noise_kind="salt-pepper", limit=5, seed=7)
    assert result.n == 5 and result.noise_kind == "salt-pepper"
    assert result.mse == pytest.approx(expected, rel=1e-6) and result.mse > 0
    assert result.psnr == pytest.approx(10 * np.log10(1 / expected), rel=1e-6)
    assert result.input_mse == pytest.approx(expected, rel=1e-6) and result.input_psnr == pytest.approx(result.psnr)
    noisy = add_noise(clean, 0.3, kind="salt-pepper", rng=np.random.default_rng(7))
    assert result.ssim == pytest.approx(np.mean([ssim(n, c) for n, c in zip(noisy, clean, strict=True)]), rel=1e-6)
    assert result.input_ssim == pytest.approx(result.ssim)  # the inputs' SSIM too, not only their MSE (trial 77)


def test_default_noise_is_the_one_the_model_was_trained_with(toy_dir, mnist_dir):
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir)
    assert (result.noise, result.noise_kind) == (0.5, "gaussian") and result.mse > 0.01


def test_by_default_the_noise_is_drawn_as_training_drew_its_noisy_test_set(toy_dir, mnist_dir):
    from aetool.runtime.noise import TEST_NOISE_SEED

    clean = load_split(mnist_dir, "test")[0].astype(np.float32) / 255
    for kind in ("gaussian", "salt-pepper"):  # one draw over the whole split, as training corrupts it
        expected = np.mean((add_noise(clean, 0.3, kind=kind, rng=TEST_NOISE_SEED) - clean) ** 2)
        result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0.3, noise_kind=kind)
        assert result.seed == TEST_NOISE_SEED and result.mse == pytest.approx(expected, rel=1e-6)


def test_conv_models_score_too(toy_dir, mnist_dir):
    assert evaluate(load(toy_dir / "conv.onnx"), mnist_dir).mse == 0


def test_a_model_may_be_named_by_its_path_and_limit_and_split_are_checked(toy_dir, mnist_dir, pngs):
    """From Python a path was an AttributeError ('str' object has no attribute 'metadata'), limit=-5 scored all but
    the last 5 images, limit=0 said "no image could be scored", and split="val" was a bare KeyError."""
    assert evaluate(str(toy_dir / "dense.onnx"), mnist_dir, limit=5).n == 5
    assert evaluate_images(toy_dir / "conv.onnx", str(pngs), limit=3).n == 3
    for limit in (-5, 0, 2.5, True):
        with pytest.raises(ValueError, match=f"limit takes a whole number ≥ 1 or None, got {limit!r}"):
            evaluate(load(toy_dir / "dense.onnx"), mnist_dir, limit=limit)
    with pytest.raises(ValueError, match="limit takes a whole number"):
        evaluate_images(load(toy_dir / "conv.onnx"), str(pngs), limit=-1)
    with pytest.raises(ValueError, match="split takes 'train' or 'test', got 'val'"):
        evaluate(load(toy_dir / "dense.onnx"), mnist_dir, split="val")


def test_a_colour_model_gets_the_digits_replicated(toy_dir, mnist_dir):
    result = evaluate(load(toy_dir / "rgb-conv.onnx"), mnist_dir, noise=0.1)
    clean = load_split(mnist_dir, "test")[0].astype(np.float32) / 255
    replicated = np.repeat(clean[:, None], 3, axis=1)
    expected = np.mean((add_noise(replicated, 0.1, kind="gaussian", rng=TEST_NOISE_SEED) - replicated) ** 2)
    assert result.mse == pytest.approx(expected, rel=1e-6) and result.notes == [
        "12 images converted grey → RGB (replicated)"
    ]


def test_grey_images_through_a_colour_model_are_scored_grey_as_denoise_writes_them(toy_dir, tmp_path):
    """denoise writes a grey image's output grey (the luma of the RGB); evaluate scored the RGB, counting colour the
    written file does not hold (trial 101). The noise is drawn grey, as add-noise draws it on the grey file, then
    replicated: drawn per channel, it lost a third of its σ in the luma (trial 103)."""
    from aetool.runtime.noise import Noise

    rng = np.random.default_rng(0)
    grey = [rng.random((8, 12)).astype(np.float32) for _ in range(2)]
    for i, pixels in enumerate(grey):
        save(tmp_path / f"{i}.png", np.round(pixels * 255).astype(np.uint8))
    result = evaluate_images(load(toy_dir / "rgb-conv.onnx"), str(tmp_path), noise=0.1, seed=5)
    draw, squared = np.random.default_rng(5), 0.0
    for i in range(2):
        clean = np.round(grey[i] * 255)[None].astype(np.float32) / 255
        noisy = Noise.single(0.1).apply(clean[None], draw)[0]
        squared += float(np.square(noisy - clean, dtype=np.float64).sum())
    assert result.mse == pytest.approx(squared / (2 * 8 * 12), rel=1e-5) and result.input_mse == result.mse
    assert result.notes == ["2 images converted grey → RGB (replicated)"]


def test_invert_decides_for_every_image_as_the_image_commands_invert_does(toy_dir, tmp_path, mnist_dir):
    """evaluate had no --invert/--no-invert: pages whose border fooled the rule could be denoised right but not
    scored right (trial 102)."""
    page = np.full((28, 28), 230, np.uint8)
    page[8:20, 12:16] = 20  # dark ink on a light page: inverted for a white-on-black model unless told not to
    save(tmp_path / "pages" / "page.png", page)
    save(tmp_path / "digits" / "ring.png", digit())
    dense = load(toy_dir / "dense.onnx")
    inverted = "1 image inverted (dark on light) for the model's white-on-black world"
    assert evaluate_images(dense, str(tmp_path / "pages"), noise=0).notes == [inverted]
    assert evaluate_images(dense, str(tmp_path / "pages"), noise=0, invert=False).notes == []
    assert evaluate_images(dense, str(tmp_path / "digits"), noise=0, invert=True).notes == [inverted]
    pairs = evaluate_pairs(dense, str(tmp_path / "pages"), str(tmp_path / "pages"), invert=False)
    assert pairs.notes == [] and pairs.mse == 0
    with pytest.raises(ValueError, match=r"^invert=True: model rgb-conv takes images as they are"):
        evaluate_images(load(toy_dir / "rgb-conv.onnx"), str(tmp_path / "pages"), invert=True)
    with pytest.raises(TypeError, match=r"^invert takes True, False or None"):
        evaluate_images(dense, str(tmp_path / "pages"), invert="no")  # type: ignore[arg-type]


def test_a_missing_data_folder_names_the_files_expected(toy_dir, tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist.*t10k-images-idx3-ubyte\.gz"):
        evaluate(load(toy_dir / "dense.onnx"), tmp_path / "nowhere")


def test_a_model_of_another_size_cannot_score_mnist(tmp_path, mnist_dir):
    (tmp_path / "m32.onnx").write_bytes(
        onnx_bytes(
            {"image": ["N", 1, 32, 32]},
            {"reconstruction": ["N", 1, 32, 32]},
            [node("Identity", ["image"], ["reconstruction"])],
        )
    )
    with pytest.raises(DataError, match=r"m32.onnx cannot score .*takes 32×32 images, got 28×28"):
        evaluate(load(tmp_path / "m32.onnx"), mnist_dir)


def _dense_model(folder: Path, noise: str) -> Path:
    """An identity dense 28×28 grey model whose metadata records ``noise`` (its text) as its training noise."""
    dense = ["N", 1, 28, 28]
    metadata = {**toy_metadata("denoise", "dense", None), contract.NOISE: noise}
    path = folder / "m.onnx"
    path.write_bytes(
        onnx_bytes(
            {"image": dense}, {"reconstruction": dense}, [node("Identity", ["image"], ["reconstruction"])], metadata
        )
    )
    return path


@pytest.mark.parametrize("noise", ['{"level": "x"}', "[1]", '{"level": 0.5, "kind": "blur"}'])
def test_malformed_noise_metadata_is_a_model_file_error(tmp_path, mnist_dir, noise):
    with pytest.raises(ModelFileError, match="metadata 'noise' must be"):
        evaluate(load(_dense_model(tmp_path, noise)), mnist_dir)


def test_a_file_given_as_the_data_folder_is_named_as_such(toy_dir, tmp_path):
    (tmp_path / "digits.png").write_bytes(b"not a folder")
    with pytest.raises(DataError, match=r"digits.png is a file, not a folder"):
        evaluate(load(toy_dir / "dense.onnx"), tmp_path / "digits.png")


# ---- folders and globs of images ----


@pytest.fixture
def pngs(tmp_path, mnist_dir):
    """The twelve test "digits" of mnist_dir as PNG files, the last in a subfolder: sorted paths keep the IDX order."""
    pixels = load_split(mnist_dir, "test")[0]
    for i, image in enumerate(pixels):
        save(tmp_path / "pngs" / ("sub" if i == 11 else "") / f"{i:02d}.png", image)
    return tmp_path / "pngs"


def test_a_folder_of_pngs_scores_as_the_idx_files_do(toy_dir, mnist_dir, pngs):
    model = load(toy_dir / "dense.onnx")
    from_idx = evaluate(model, mnist_dir, noise=0.3)
    from_folder = evaluate_images(model, str(pngs), noise=0.3)
    # Gaussian noise drawn image by image from one generator is the same as one draw over the set.
    assert from_folder.n == 12 and from_folder.mse == pytest.approx(from_idx.mse, rel=1e-12)
    assert from_folder.ssim == pytest.approx(from_idx.ssim, rel=1e-12) and from_folder.seed == TEST_NOISE_SEED
    assert from_folder.split is None and from_folder.data == str(pngs) and from_folder.notes == []
    # the recorded MSE's noise is named for images as for IDX files (it was null for them; trial 59)
    assert from_folder.recorded_noise == from_idx.recorded_noise == "gaussian=0.5"
    assert evaluate_images(model, str(pngs)).recorded_noise is None  # its own noise: nothing to say
    with pytest.raises(DataError, match=r"^--data nosuch/: no such file or folder$"):
        evaluate_images(model, "nosuch/")


def test_images_of_several_sizes_are_scored_whole_by_a_conv_model(tmp_path, toy_dir):
    rng = np.random.default_rng(3)
    pages = {"a.png": rng.integers(0, 100, (30, 45)), "b.png": rng.integers(0, 100, (28, 28))}
    pages["c.png"] = rng.integers(0, 100, (30, 45))
    for name, page in pages.items():
        save(tmp_path / "pages" / name, page.astype(np.uint8))
    result = evaluate_images(load(toy_dir / "conv.onnx"), str(tmp_path / "pages" / "*.png"), noise=0.2, seed=5)
    generator = np.random.default_rng(5)
    clean = [page.astype(np.float32)[None] / 255 for page in pages.values()]
    noisy = [add_noise(image, 0.2, kind="gaussian", rng=generator) for image in clean]
    squared = sum(float(np.square(n - c, dtype=np.float64).sum()) for n, c in zip(noisy, clean, strict=True))
    expected = squared / sum(image.size for image in clean)  # the mean over all pixels of all images
    assert result.n == 3 and result.mse == pytest.approx(expected, rel=1e-9)
    assert result.psnr == pytest.approx(10 * np.log10(1 / expected))
    assert result.ssim == pytest.approx(np.mean([ssim(n, c) for n, c in zip(noisy, clean, strict=True)]))


def test_notes_count_only_the_images_scored(toy_dir, tmp_path):
    for name, shape in {"a.png": (28, 28), "b.png": (28, 28)}.items():
        save(tmp_path / "grey" / name, np.full(shape, 90, np.uint8))
    (tmp_path / "grey" / "page.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluate_images(load(toy_dir / "rgb-conv.onnx"), str(tmp_path / "grey"), noise=0)
    assert result.n == 2 and [failure.label for failure in result.failed] == [str(tmp_path / "grey" / "page.png")]
    assert len(result.notes) == 1 and result.notes[0].startswith("2 images converted")


def test_a_colour_file_of_grey_pixels_is_scored_in_colour_as_denoise_writes_it(tmp_path):
    """A colour file whose pixels are grey goes through a colour model as colour, and denoise writes colour; evaluate
    carried its images in with its own copy of the image commands' steps, which took such a file as grey: it said
    "converted grey → RGB" and scored the luma of the output (trial 104). Now it carries them in as they do."""
    from conftest import FLOAT, colour_metadata, tensor

    from aetool.runtime.batch import reconstruct_image
    from aetool.runtime.images import read_image

    shape = ["N", 3, "H", "W"]
    (tmp_path / "tint.onnx").write_bytes(  # each channel scaled on its own: a grey input's output is colour
        onnx_bytes(
            {"image": shape},
            {"reconstruction": shape, "code": shape},
            [node("Mul", ["image", "scale"], ["reconstruction"]), node("Identity", ["image"], ["code"])],
            colour_metadata("tint", shape, multiple_of=4),
            [tensor("scale", [1, 3, 1, 1], FLOAT, np.array([1, 0.5, 0.25], "<f4").tobytes())],
        )
    )
    model = load(tmp_path / "tint.onnx")
    grey = np.random.default_rng(2).integers(0, 256, (20, 24), dtype=np.uint8)
    for side, pixels in (("clean", grey), ("noisy", 255 - grey)):
        save(tmp_path / side / "x.png", np.repeat(pixels[..., None], 3, axis=2))  # an RGB file, R = G = B
    noisy, clean = read_image(tmp_path / "noisy" / "x.png"), read_image(tmp_path / "clean" / "x.png")
    written = reconstruct_image(model, noisy)  # what denoise writes: colour
    assert written.shape == (3, 20, 24)
    result = evaluate_pairs(model, str(tmp_path / "noisy"), str(tmp_path / "clean"))
    assert result.mse == pytest.approx(np.square(written - np.repeat(clean.pixels, 3, axis=0)).mean(), rel=1e-5)
    assert not any("converted" in note for note in result.notes)


def test_a_page_over_the_one_call_limit_is_scored_in_tiles(toy_dir, tmp_path, monkeypatch):
    from aetool.runtime import tiles

    monkeypatch.setattr("aetool.runtime.spec.MAX_CONV_PIXELS", 48 * 48)
    monkeypatch.setattr(tiles, "TILE", 16)
    save(tmp_path / "grey" / "page.png", np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8))
    result = evaluate_images(load(toy_dir / "conv.onnx"), str(tmp_path / "grey"), noise=0)
    assert result.n == 1 and not result.failed and result.mse == 0  # the identity model, tile by tile


def test_an_unreadable_image_is_listed_and_the_rest_is_scored(toy_dir, pngs):
    (pngs / "broken.png").write_text("not an image")
    result = evaluate_images(load(toy_dir / "dense.onnx"), str(pngs), noise=0)
    assert result.n == 12 and result.mse == 0
    assert [(f.label, f.error) for f in result.failed] == [(str(pngs / "broken.png"), "not an image Pillow can read")]


def test_nothing_readable_is_one_error(toy_dir, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("not an image")
    with pytest.raises(ImageError, match=r"no image could be scored; the first: .*x.png: not an image"):
        evaluate_images(load(toy_dir / "dense.onnx"), str(tmp_path / "bad"))


def test_a_folder_without_images_is_a_data_error(toy_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no images found in this folder or its subfolders"):
        evaluate_images(load(toy_dir / "dense.onnx"), str(tmp_path / "empty"))


def test_a_dense_model_fails_images_of_another_size_naming_both_and_scores_the_others(toy_dir, tmp_path):
    """One such image ended the whole run, exit 2, where an unreadable one failed alone (trial 71)."""
    save(tmp_path / "photos" / "wide.png", np.zeros((48, 64), np.uint8))
    save(tmp_path / "photos" / "digit.png", digit())
    result = evaluate_images(load(toy_dir / "dense.onnx"), str(tmp_path / "photos"))
    assert result.n == 1 and [(Path(f.label).name, f.error) for f in result.failed] == [
        (
            "wide.png",
            "the model takes 28×28 images (width×height), this one is 64×48; pass --resize to fit it to the "
            "model's size",
        )
    ]


def test_resize_fits_image_and_target_alike_to_a_dense_models_size(toy_dir, tmp_path):
    wide = np.zeros((48, 64), np.uint8)
    wide[10:38, 20:44] = 255
    save(tmp_path / "photos" / "wide.png", wide)
    save(tmp_path / "noisy" / "wide.png", wide)
    model = load(toy_dir / "dense.onnx")  # the identity: a score above 0 is a fit that differs between the two
    result = evaluate_images(model, str(tmp_path / "photos"), noise=0, resize=True)
    assert result.n == 1 and result.mse == 0
    assert result.notes == ["1 image fitted to the model's size (--resize)"]
    pairs = evaluate_pairs(model, str(tmp_path / "noisy"), str(tmp_path / "photos"), resize=True)
    assert pairs.n == 1 and pairs.mse == 0 and pairs.notes == ["1 pair fitted to the model's size (--resize)"]
    noisy = evaluate_images(model, str(tmp_path / "photos"), noise=0.2, resize=True)
    assert noisy.mse > 0.01  # the noise is added at the model's size, after the fit


def test_resize_places_a_noisy_input_as_its_clean_target(toy_dir, tmp_path):
    clean = np.zeros((48, 64), np.uint8)
    clean[12:36, 26:38] = 255
    noisy = np.maximum(clean, np.random.default_rng(0).integers(0, 200, clean.shape)).astype(np.uint8)  # ink anywhere
    save(tmp_path / "clean" / "x.png", clean)
    save(tmp_path / "noisy" / "x.png", noisy)
    result = evaluate_pairs(load(toy_dir / "dense.onnx"), str(tmp_path / "noisy"), str(tmp_path / "clean"), resize=True)
    target = fit(clean[None] / np.float32(255), (28, 28))
    aligned = fit(noisy[None] / np.float32(255), (28, 28), like=target).pixels
    alone = fit(noisy[None] / np.float32(255), (28, 28)).pixels  # its own ink box: the whole frame
    assert result.mse == pytest.approx(float(np.mean((aligned - target.pixels) ** 2)), rel=1e-5)
    assert result.mse < 0.5 * float(np.mean((alone - target.pixels) ** 2))


def test_images_are_carried_into_the_models_channels_and_polarity(toy_dir, tmp_path):
    save(tmp_path / "dark" / "ring.png", 255 - digit())
    grey = evaluate_images(load(toy_dir / "dense.onnx"), str(tmp_path / "dark"), noise=0)
    assert grey.notes == ["1 image inverted (dark on light) for the model's white-on-black world"]
    colour = evaluate_images(load(toy_dir / "rgb-conv.onnx"), str(tmp_path / "dark"), noise=0)
    assert colour.notes == ["1 image converted grey → RGB (replicated)"]  # as-is: never inverted
    assert colour.mse == 0 and colour.ssim == pytest.approx(1.0)


# ---- pairs ----


@pytest.mark.parametrize("source", ["pairs", "clean images"])
def test_a_dark_on_light_image_is_scored_as_the_image_commands_write_it_not_inverted(tmp_path, source):
    """A white-on-black model takes a dark-on-light image inverted; evaluate scored SSIM on the inverted images
    (0.317 where scikit-image gave 0.334 on the written output and its target, trial 76): SSIM, unlike MSE,
    changes under inversion. Scored now inverted back, as ``denoise`` writes its output."""
    skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the test's SSIM oracle")
    from aetool.runtime.batch import reconstruct_image
    from aetool.runtime.images import read_image

    rng = np.random.default_rng(5)
    clean = np.full((40, 48), 0.92) - 0.05 * rng.random((40, 48))
    clean[8:32, 10:14] = clean[8:12, 10:38] = clean[20:24, 20:40] = 0.1  # dark strokes on a light page
    noisy = np.clip(clean + rng.normal(0, 0.15, clean.shape), 0, 1)
    save(tmp_path / "clean" / "x.png", np.round(clean * 255).astype(np.uint8))
    save(tmp_path / "noisy" / "x.png", np.round(noisy * 255).astype(np.uint8))
    model = load("denoise")
    if source == "pairs":
        result = evaluate_pairs(model, str(tmp_path / "noisy"), str(tmp_path / "clean"))
        fed = read_image(tmp_path / "noisy" / "x.png").pixels
    else:
        result = evaluate_images(model, str(tmp_path / "clean"), noise=0.15, seed=3)
        fed = 1 - add_noise(1 - read_image(tmp_path / "clean" / "x.png").pixels[None], 0.15, rng=3)[0]
    target = read_image(tmp_path / "clean" / "x.png").pixels[0].astype(np.float64)
    output = reconstruct_image(model, fed, invert=True)[0].astype(np.float64)  # as denoise writes it
    oracle = skimage_metrics.structural_similarity(
        output, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )
    inverted = skimage_metrics.structural_similarity(
        1 - output, 1 - target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )
    assert abs(oracle - inverted) > 0.01  # the case tells the two apart
    assert result.ssim == pytest.approx(oracle, abs=1e-5) and "inverted" in " ".join(result.notes)
    assert result.mse == pytest.approx(np.square(output - target).mean(), rel=1e-5)


def test_pairs_match_by_path_without_suffix_and_missing_partners_are_listed(toy_dir, tmp_path):
    rng = np.random.default_rng(4)
    clean = {name: rng.integers(0, 120, (28, 28)).astype(np.uint8) for name in ("x", "a/y", "w")}
    noisy = {
        name: np.clip(image + rng.integers(0, 40, image.shape), 0, 255).astype(np.uint8)
        for name, image in clean.items()
    }
    save(tmp_path / "clean" / "x.bmp", clean["x"])
    save(tmp_path / "clean" / "a" / "y.tif", clean["a/y"])
    save(tmp_path / "clean" / "w.png", clean["w"])  # no input
    save(tmp_path / "noisy" / "x.png", noisy["x"])
    save(tmp_path / "noisy" / "a" / "y.png", noisy["a/y"])
    save(tmp_path / "noisy" / "z.png", noisy["w"])  # no target
    result = evaluate_pairs(load(toy_dir / "dense.onnx"), str(tmp_path / "noisy"), str(tmp_path / "clean"))
    pairs = [(noisy[n].astype(np.float64) / 255, clean[n].astype(np.float64) / 255) for n in ("a/y", "x")]
    expected = np.mean([np.square(a - b).mean() for a, b in pairs])
    assert result.n == 2 and result.mse == pytest.approx(expected, rel=1e-6) and result.psnr is not None
    assert result.input_mse == pytest.approx(expected, rel=1e-6)  # an identity model scores what its inputs score
    assert result.noise is None and result.noise_kind is None and result.seed is None
    assert [(f.label, f.error) for f in result.missing] == [
        (str(tmp_path / "noisy" / "z.png"), f"no target in {tmp_path / 'clean'} matches it"),
        (str(tmp_path / "clean" / "w.png"), f"no input in {tmp_path / 'noisy'} matches it"),
    ]
    assert result.targets == str(tmp_path / "clean") and result.failed == []


def test_pairs_the_model_cannot_find_memory_for_fail_and_the_others_are_scored(toy_dir, tmp_path, monkeypatch):
    """Under ``ulimit -v`` one page's OutOfMemory ended evaluate with no score for the digits beside it."""

    model = load(toy_dir / "conv.onnx")
    reconstruct = model.reconstruct

    def no_memory_for_pages(batch, **kwargs):
        if batch.shape[-1] > 28:
            raise OutOfMemory("conv.onnx: not enough memory for a batch of shape (1, 1, 40, 40) (bad_alloc)")
        return reconstruct(batch, **kwargs)

    monkeypatch.setattr(model, "reconstruct", no_memory_for_pages)
    for folder in ("in", "target"):
        save(tmp_path / folder / "a.png", digit())
        save(tmp_path / folder / "page.png", np.zeros((40, 40), np.uint8))
    result = evaluate_pairs(model, str(tmp_path / "in"), str(tmp_path / "target"))
    assert result.n == 1 and result.mse == pytest.approx(0, abs=1e-6)
    assert [(Path(f.label).name, f.error) for f in result.failed] == [
        ("page.png", "conv.onnx: not enough memory for a batch of shape (1, 1, 40, 40) (bad_alloc)")
    ]


def test_images_of_a_size_the_model_fails_on_fail_and_the_others_are_scored(tmp_path):
    """A strided model of another tool, 28×28 digits and one 31×29 image: evaluate ended with exit 2 and no score,
    naming no file, where detect failed that image alone (trial 70)."""
    from conftest import int_attribute

    (tmp_path / "odd.onnx").write_bytes(  # the identity on even sizes only, as a strided model of multiple 2
        onnx_bytes(
            {"image": ["N", 1, "H", "W"]},
            {"reconstruction": ["N", 1, "H", "W"]},
            [
                node("SpaceToDepth", ["image"], ["blocks"], [int_attribute("blocksize", 2)]),
                node("DepthToSpace", ["blocks"], ["reconstruction"], [int_attribute("blocksize", 2)]),
            ],
        )
    )
    for name, size in (("a", 28), ("b", 28), ("odd", 31)):
        save(tmp_path / "in" / f"{name}.png", digit(size, 28))
    result = evaluate_images(load(tmp_path / "odd.onnx"), str(tmp_path / "in"))
    assert result.n == 2 and [Path(f.label).name for f in result.failed] == ["odd.png"]
    assert "odd.onnx failed on a batch of shape (1, 1, 31, 28)" in result.failed[0].error


def test_a_pair_that_cannot_be_decoded_for_memory_fails_and_the_others_are_scored(toy_dir, tmp_path, monkeypatch):
    from aetool.runtime import evaluate as evaluate_module

    read_image = evaluate_module.read_image

    def no_memory_for_photos(source):
        if "photo" in str(source):
            raise MemoryError("Unable to allocate 137. MiB")
        return read_image(source)

    monkeypatch.setattr(evaluate_module, "read_image", no_memory_for_photos)
    for folder in ("in", "target"):
        save(tmp_path / folder / "a.png", digit())
        save(tmp_path / folder / "photo.png", digit())
    result = evaluate_pairs(load(toy_dir / "conv.onnx"), str(tmp_path / "in"), str(tmp_path / "target"))
    assert result.n == 1 and [Path(f.label).name for f in result.failed] == ["photo.png", "photo.png"]  # both sides
    assert result.failed[0].error.startswith("not enough memory (Unable to allocate 137. MiB)")


def test_pairs_that_cannot_be_scored_are_failures(toy_dir, tmp_path):
    save(tmp_path / "in" / "x.png", digit())
    save(tmp_path / "in" / "x.bmp", 255 - digit())  # two inputs named x: neither is paired (x.bmp was, at MSE > 0)
    save(tmp_path / "in" / "big.png", digit(28, 32))
    save(tmp_path / "in" / "ok.png", digit())
    save(tmp_path / "out" / "x.png", digit())
    save(tmp_path / "out" / "big.png", digit(32, 32))  # not the input's size
    save(tmp_path / "out" / "ok.png", digit())
    result = evaluate_pairs(load(toy_dir / "conv.onnx"), str(tmp_path / "in"), str(tmp_path / "out"))
    assert result.n == 1 and result.mse == 0 and result.missing == []  # out/x.png is not missing an input
    assert [(f.label.rsplit("/", 1)[-1], f.error.split(" without")[0]) for f in result.failed] == [
        ("x.bmp", f"cannot be paired: {tmp_path / 'in' / 'x.png'} has the same name"),
        ("x.png", f"cannot be paired: {tmp_path / 'in' / 'x.bmp'} has the same name"),
        ("x.png", f"cannot be paired: two images in {tmp_path / 'in'} have its name"),  # out/x.png went unnamed
        ("big.png", f"32×28 (width×height), but its target {tmp_path / 'out' / 'big.png'} is 32×32"),
    ]


def test_pairs_without_any_match_are_a_data_error(toy_dir, tmp_path):
    save(tmp_path / "in" / "x.png", digit())
    save(tmp_path / "out" / "y.png", digit())
    with pytest.raises(DataError, match=r"no image in .*in has a partner in .*out; pairs are matched by their path"):
        evaluate_pairs(load(toy_dir / "dense.onnx"), str(tmp_path / "in"), str(tmp_path / "out"))


def test_memory_stays_flat_a_chunk_at_a_time(toy_dir, pngs, monkeypatch):
    from aetool.runtime import batch

    model = load(toy_dir / "dense.onnx")
    calls = []
    monkeypatch.setattr(batch, "VALUES_IN_FLIGHT", 4 * 2 * 28 * 28)  # four noisy inputs and their targets
    monkeypatch.setattr(model, "reconstruct", lambda images: calls.append(len(images)) or images)
    assert evaluate_images(model, str(pngs), noise=0.1).n == 12 and calls == [4, 4, 4]


def test_ssim_says_how_many_images_it_is_the_mean_over(toy_dir, tmp_path):
    from aetool.cli.evaluate import _evaluation_line

    save(tmp_path / "a.png", digit())
    save(tmp_path / "b.png", 255 - digit())
    save(tmp_path / "tiny.png", np.full((4, 8), 200, np.uint8))  # under SSIM's 11×11 window
    result = evaluate_images(load(toy_dir / "conv.onnx"), str(tmp_path), noise=0.1, seed=3)
    assert (result.n, result.ssim_images) == (3, 2) and result.ssim is not None
    assert f"SSIM {result.ssim:.4f} (of the 2 images of at least 11×11) over 3 images" in _evaluation_line(result)


def test_evaluate_images_and_pairs_refuse_a_resize_that_is_not_true_or_false(toy_dir, tmp_path):
    """resize="no" resized (trial 83); refused before any image is read."""
    save(tmp_path / "clean" / "x.png", np.zeros((28, 28), np.uint8))
    model = load(toy_dir / "dense.onnx")
    with pytest.raises(TypeError, match=r"^resize takes True or False, got 'no'$"):
        evaluate_images(model, str(tmp_path / "clean"), resize="no")
    with pytest.raises(TypeError, match=r"^resize takes True or False, got 0$"):
        evaluate_pairs(model, str(tmp_path / "clean"), str(tmp_path / "clean"), resize=0)


# ---- trial 84: mutants of evaluate.py the tests above let live, each killed below ----


def _rings(folder: Path, count: int = 2) -> Path:
    for i in range(count):
        save(folder / f"{i:02d}.png", (digit() * (0.5 + 0.2 * i)).astype(np.uint8))
    return folder


def test_evaluate_seed_zero_is_a_seed_not_the_default(toy_dir, mnist_dir):
    """seed=0 is a seed like any other: taken as "no seed", the IDX test set would silently be noised with the
    default TEST_NOISE_SEED draw and the result would report that seed, not the 0 the user asked for."""
    model = load(toy_dir / "dense.onnx")
    zero = evaluate(model, mnist_dir, noise=0.3, seed=0)
    default = evaluate(model, mnist_dir, noise=0.3)
    assert TEST_NOISE_SEED != 0
    assert zero.seed == 0 and default.seed == TEST_NOISE_SEED
    assert zero.mse != default.mse  # another draw of noise


def test_evaluate_images_seed_zero_is_a_seed_not_the_default(toy_dir, tmp_path):
    """As for IDX files: seed=0 for a folder of images must draw from seed 0, not fall back to the default."""
    model = load(toy_dir / "dense.onnx")
    folder = str(_rings(tmp_path / "rings"))
    zero = evaluate_images(model, folder, noise=0.3, seed=0)
    default = evaluate_images(model, folder, noise=0.3)
    assert zero.seed == 0 and zero.mse != default.mse


def test_a_limit_of_one_scores_exactly_one_image(toy_dir, mnist_dir):
    """limit=1 (and any set whose size is one more than a multiple of the scoring batch) must score its last
    image: a batch loop that stops one short scored nothing ("no image could be scored") or dropped the last one."""
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0, limit=1)
    assert result.n == 1 and result.mse == 0


def test_a_set_one_over_the_scoring_batch_scores_every_image(toy_dir, mnist_dir, monkeypatch):
    """With a scoring batch of 5, 11 images are 5 + 5 + 1: the last one must be scored too."""
    monkeypatch.setattr("aetool.runtime.evaluate.SCORE_BATCH", 5)
    assert evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0.2, limit=11).n == 11


def test_a_noise_kind_alone_takes_the_models_trained_level(toy_dir, mnist_dir):
    """``--noise-kind salt-pepper`` without ``--noise`` keeps the level the model was trained with (0.5 for the toy
    dense model); taking 0 instead would score clean inputs and report noise 0."""
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise_kind="salt-pepper", limit=3)
    assert (result.noise, result.noise_kind) == (0.5, "salt-pepper") and result.input_mse > 0


def test_a_noise_kind_alone_for_a_model_trained_without_noise_or_an_unknown_kind_is_refused(tmp_path, mnist_dir):
    """A kind alone added no noise to a model trained without any, and the result said gaussian 0; an unknown kind
    was a bare ValueError once noise was drawn, where a bad level is an AetoolError (trial 100)."""
    model = load(_dense_model(tmp_path, json.dumps({"level": 0, "kind": "gaussian"})))
    with pytest.raises(AetoolError, match=r"^--noise-kind needs --noise: .* was trained without noise$"):
        evaluate(model, mnist_dir, noise_kind="mask", limit=3)
    with pytest.raises(AetoolError, match=r"^--noise: unknown noise kind 'poisson'; choose one of gaussian, "):
        evaluate(model, mnist_dir, noise=0.1, noise_kind="poisson", limit=3)


def test_noise_as_text_is_read_as_trains_noise_option_reads_it(toy_dir, mnist_dir):
    """A level, a range or a mix, as train's --noise takes it (trial 102): "0.5" is the level 0.5."""
    model = load(toy_dir / "dense.onnx")
    assert evaluate(model, mnist_dir, noise="0.5", limit=5).mse == evaluate(model, mnist_dir, noise=0.5, limit=5).mse
    mixed = evaluate(model, mnist_dir, noise="gaussian=0:0.3,mask=0.2", limit=5)
    assert mixed.noise_mix == "gaussian=0:0.3,mask=0.2" and mixed.input_mse > 0


def test_a_noise_level_alone_takes_the_models_trained_kind(tmp_path, mnist_dir):
    """``--noise 0.2`` without ``--noise-kind`` for a model trained on salt-and-pepper noise adds salt-and-pepper
    noise at 0.2; falling back to gaussian would score the model on a noise it never saw."""
    model = load(_dense_model(tmp_path, json.dumps({"level": 0.3, "kind": "salt-pepper"})))
    result = evaluate(model, mnist_dir, noise=0.2, limit=3)
    assert (result.noise, result.noise_kind) == (0.2, "salt-pepper")


def test_the_input_baseline_of_a_dark_on_light_pair_is_scored_not_inverted(toy_dir, tmp_path):
    """A dark-on-light pair goes into a white-on-black model inverted; its baseline (input_ssim, inputs against
    targets) must be scored inverted back, as the reconstruction is: for the identity model the reconstruction is
    the input, so ssim and input_ssim must agree, and equal the SSIM of the files as they are."""
    rng = np.random.default_rng(5)
    clean = np.full((28, 28), 0.9) - 0.05 * rng.random((28, 28))
    clean[6:22, 8:12] = clean[6:10, 8:22] = 0.1  # dark strokes on a light page
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1)
    clean8, noisy8 = np.round(clean * 255).astype(np.uint8), np.round(noisy * 255).astype(np.uint8)
    save(tmp_path / "clean" / "x.png", clean8)
    save(tmp_path / "noisy" / "x.png", noisy8)
    result = evaluate_pairs(load(toy_dir / "dense.onnx"), str(tmp_path / "noisy"), str(tmp_path / "clean"))
    assert "inverted" in " ".join(result.notes)
    expected = ssim(noisy8[None].astype(np.float32) / 255, clean8[None].astype(np.float32) / 255)
    assert result.ssim == pytest.approx(expected, abs=1e-6)
    assert result.input_ssim == pytest.approx(expected, abs=1e-6)


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="needs ../shared/data (MNIST and Fashion-MNIST)")
def test_evaluate_reads_the_models_dataset_as_the_command_does():
    """A model of digits scored on Fashion-MNIST gave an MSE without a word, and the folder holding mnist/ and
    fashion-mnist/ was refused, both of which aetool evaluate handles (trial 86)."""
    with pytest.raises(DataError, match=r"holds fashion-mnist, not mnist"):
        evaluate("deep", SHARED / "fashion-mnist", limit=10)
    assert evaluate("deep", SHARED, limit=10).data == str(SHARED / "mnist")
    assert evaluate("deep", SHARED, dataset="fashion-mnist", limit=10).data == str(SHARED / "fashion-mnist")
    with pytest.raises(ValueError, match="dataset takes mnist or fashion-mnist"):
        evaluate("deep", SHARED, dataset="cifar")
    for nothing in (None, ""):  # pathlib's TypeError; "" read the current folder (trial 87)
        with pytest.raises(TypeError, match=r"^data_dir takes a folder of IDX files \(text or a Path\), got "):
            evaluate("deep", nothing)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"noise": "loud"}, AetoolError, r"^--noise: noise 'loud' is not a level \(0.5\), a range \(0:0.6\) or "),
        ({"noise": True}, TypeError, r"^noise level must be a number, got True$"),  # ran at σ 1, recorded as true
        ({"noise": 0.1, "seed": True}, TypeError, r"^seed takes a whole number ≥ 0, got True$"),  # ran as seed 1
        ({"noise": 0.1, "seed": 1.5}, TypeError, r"^seed takes a whole number ≥ 0, got 1.5$"),
        ({"noise": 0.1, "seed": -1}, ValueError, r"^seed takes a whole number ≥ 0, got -1$"),
    ],
)
def test_evaluate_names_a_noise_or_seed_of_the_wrong_kind(toy_dir, mnist_dir, tmp_path, options, error, message):
    """numpy's words came through, and bools were taken as 1 (trial 86)."""
    model = load(toy_dir / "dense.onnx")
    with pytest.raises(error, match=message):
        evaluate(model, mnist_dir, **options)
    save(tmp_path / "one.png", digit())
    with pytest.raises(error, match=message):
        evaluate_images(model, str(tmp_path), **options)


def test_a_damaged_idx_file_is_one_data_error(tmp_path):
    """A header cut short was numpy's "buffer is smaller than requested size"; a path that is none pathlib's own
    TypeError (trial 100)."""
    from aetool.runtime.idx import read_idx

    cases = {
        b"\x00\x00\x08\x02\x00\x00": r"is truncated: 6 bytes, its header alone takes 12$",
        b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02": r"is truncated or padded: 10 bytes, header says 11$",
        b"\x89PNG\r\n": r"is not an IDX file \(bad magic number\)$",
    }
    for i, (raw, message) in enumerate(cases.items()):
        (tmp_path / f"{i}.idx").write_bytes(raw)
        with pytest.raises(DataError, match=message):
            read_idx(tmp_path / f"{i}.idx")
    (tmp_path / "ok.idx").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03")
    assert read_idx(tmp_path / "ok.idx").tolist() == [1, 2, 3]
    with pytest.raises(TypeError, match=r"^read_idx takes a path \(text or a Path\), got None$"):
        read_idx(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^data_dir takes a folder of IDX files \(text or a Path\), got None$"):
        load_split(None, "test")  # type: ignore[arg-type]


def test_invert_with_a_model_that_takes_images_as_they_are_is_refused_everywhere(toy_dir, tmp_path):
    """detect_image and evaluate_folders took invert=True for an as-is model without a word, where
    reconstruct_image and evaluate_images refuse it (trial 104): one check, batch.checked_invert."""
    from aetool.runtime.anomaly_evaluation import evaluate_folders
    from aetool.runtime.batch import reconstruct_image
    from aetool.runtime.detect import detect_image

    save(tmp_path / "a" / "page.png", digit())
    save(tmp_path / "b" / "page.png", 255 - digit())
    model = load(toy_dir / "rgb-conv.onnx")
    calls = (
        lambda: reconstruct_image(model, np.zeros((3, 8, 8), np.float32), invert=True),
        lambda: evaluate_images(model, str(tmp_path / "a"), invert=True),
        lambda: detect_image(model, tmp_path / "a" / "page.png", invert=True),
        lambda: evaluate_folders(model, str(tmp_path / "a"), str(tmp_path / "b"), invert=True),
    )
    for call in calls:
        with pytest.raises(ValueError, match=r"^invert=True: model rgb-conv takes images as they are"):
            call()
