"""aetool.runtime.batch: images through identity models come back pixel for pixel, whatever the detour."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import CountingSession, digit, read, save

from aetool.runtime import load
from aetool.runtime.batch import Corrupt, Reconstruct, process, reconstruct_image
from aetool.runtime.files import Job
from aetool.runtime.images import format_for as images_format
from aetool.runtime.images import read_image
from aetool.runtime.noise import Noise
from aetool.runtime.registry import resolve


def job(path, target=None, fmt="PNG"):
    return Job(str(path), path, target, fmt)


def test_dense_image_round_trips_exactly(tmp_path, toy_dir):
    ring = digit()
    source = save(tmp_path / "ring.png", ring)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")))
    assert outcome.error is None and not outcome.resized and not outcome.inverted
    assert outcome.size == (28, 28) and outcome.output == str(tmp_path / "out.png") and outcome.ms > 0
    assert np.array_equal(read(tmp_path / "out.png"), ring)


def test_dark_on_light_is_inverted_for_the_model_and_back(tmp_path, toy_dir):
    dark = 255 - digit()
    source = save(tmp_path / "dark.png", dark)
    seen = []

    class Spy(Reconstruct):
        def run(self, batch):
            seen.append(batch.copy())
            return super().run(batch)

    [outcome] = process([job(source, tmp_path / "out.png")], Spy(load(toy_dir / "dense.onnx")))
    assert outcome.inverted
    assert seen[0].shape == (1, 1, 28, 28) and seen[0][0, 0, 0, 0] == 0  # the model saw white on black
    assert np.array_equal(read(tmp_path / "out.png"), dark)


def test_forced_polarity_overrides_the_border(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")), invert=True)
    assert outcome.inverted
    assert np.array_equal(read(tmp_path / "out.png"), digit())  # inverted twice through an identity


def test_dense_models_refuse_other_sizes_naming_theirs_and_the_flag(tmp_path, toy_dir):
    source = save(tmp_path / "big.png", np.kron(digit(), np.ones((3, 2), np.uint8)))
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")))
    assert outcome.error == (
        "the model takes 28×28 images (width×height), this one is 56×84; pass --resize to fit it to the model's size"
    )
    assert not (tmp_path / "out.png").exists()


def test_resize_fits_a_white_on_black_image_the_mnist_way_and_back(tmp_path, toy_dir):
    big = np.kron(digit(), np.ones((3, 2), np.uint8))  # the ring, 56 wide and 84 high
    source = save(tmp_path / "big.png", big)
    seen = []

    class Spy(Reconstruct):
        def run(self, batch):
            seen.append(batch.copy())
            return super().run(batch)

    [outcome] = process([job(source, tmp_path / "out.png")], Spy(load(toy_dir / "dense.onnx"), resize=True))
    assert outcome.resized and outcome.input_size == (56, 84) and outcome.fitted_size == (28, 28)
    assert outcome.size == (56, 84) and outcome.mse == 0 and outcome.psnr is None
    ink = np.flatnonzero(seen[0][0, 0].max(axis=1) > 0.5)
    assert ink[-1] - ink[0] + 1 == 20  # the model saw the ring's longer side at 20 of 28 pixels, as in MNIST
    back = read(tmp_path / "out.png")
    assert back.shape == big.shape  # at its own size ...
    ink, ring = back > 127, big > 127
    assert (ink & ring).sum() / (ink | ring).sum() > 0.85  # ... the ring where it was ...
    rows, cols = np.flatnonzero(ring.any(axis=1)), np.flatnonzero(ring.any(axis=0))
    outside = np.ones_like(ring)
    outside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = False
    assert back[outside].max() == 0  # ... and black outside its box


def test_resize_for_an_as_is_model_is_a_plain_resize_both_ways(tmp_path, toy_dir):
    y, x = np.mgrid[:24, :40]
    smooth = np.stack([x * 6, y * 10, 255 - x * 6], axis=-1).astype(np.uint8)  # smooth ramps survive resizing
    source = save(tmp_path / "ramp.png", smooth)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "rgb-dense.onnx"), resize=True))
    assert outcome.resized and outcome.input_size == (40, 24) and outcome.fitted_size == (16, 16)
    assert outcome.size == (40, 24) and not outcome.inverted
    back = read(tmp_path / "out.png").astype(float)
    assert back.shape == (24, 40, 3) and np.abs(back - smooth)[2:-2, 2:-2].mean() < 3


def test_conv_models_get_images_padded_and_cropped_back(tmp_path, toy_dir):
    page = np.random.default_rng(0).integers(0, 120, (30, 45), np.uint8)
    page[5:25, 10:12] = 255
    source = save(tmp_path / "page.png", page)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "conv.onnx")))
    assert not outcome.resized and outcome.size == (45, 30)
    assert np.array_equal(read(tmp_path / "out.png"), page)


def test_a_photo_model_gets_a_mirrored_border_a_digit_model_black_padding(toy_dir):
    pixels = np.random.default_rng(1).random((3, 30, 26)).astype(np.float32)
    photo = Reconstruct(load(toy_dir / "rgb-conv.onnx")).prepare(pixels)  # as-is: 8 mirrored rows and columns around
    assert photo.region == (30, 26) and photo.offset == 8
    assert np.array_equal(photo.pixels, np.pad(pixels, [(0, 0), (8, 10), (8, 10)], "symmetric"))  # 48×44: ×4
    scored = Reconstruct(load(toy_dir / "rgb-conv.onnx"), border=False).prepare(pixels)  # as detect and calibration
    assert scored.offset == 0 and np.array_equal(scored.pixels, np.pad(pixels, [(0, 0), (0, 2), (0, 2)], "symmetric"))
    digits = Reconstruct(load(toy_dir / "conv.onnx")).prepare(pixels[:1])  # white-on-black: black, no border
    assert digits.offset == 0 and np.array_equal(digits.pixels, np.pad(pixels[:1], [(0, 0), (0, 2), (0, 2)]))


def test_the_border_keeps_a_zero_padding_net_from_darkening_a_photos_edges(tmp_path):
    onnx = pytest.importorskip("onnx", reason="builds a model with the onnx package (train extra)")
    from conftest import colour_metadata
    from onnx import TensorProto, helper, numpy_helper

    box = numpy_helper.from_array(np.full((3, 1, 3, 3), 1 / 9, np.float32), "box")  # a 3×3 mean, zeros outside
    shape = ["N", 3, "H", "W"]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "box"], ["reconstruction"], pads=[1, 1, 1, 1], group=3),
            helper.make_node("Identity", ["image"], ["code"]),
        ],
        "box",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("reconstruction", "code")],
        [box],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    helper.set_model_props(model, colour_metadata("box", shape, multiple_of=4))
    onnx.save(model, tmp_path / "box.onnx")
    flat = np.tile(np.array([180, 120, 60], np.uint8), (30, 26, 1))  # one colour: a mean of it is that colour
    source = save(tmp_path / "flat.png", flat)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(tmp_path / "box.onnx")))
    assert outcome.error is None and np.array_equal(read(tmp_path / "out.png"), flat)  # to the edges
    list(process([job(source, tmp_path / "plain.png")], Reconstruct(load(tmp_path / "box.onnx"), border=False)))
    assert (
        np.abs(read(tmp_path / "plain.png")[0, 0] - flat[0, 0].astype(float) * 4 / 9).max() <= 1
    )  # the corner: 4 of 9 taps


def test_side_by_side_shows_input_and_output(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    [outcome] = process(
        [job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")), side_by_side=True
    )
    both = read(tmp_path / "out.png")
    assert outcome.size == (56, 28) and np.array_equal(both, np.concatenate([digit(), digit()], axis=1))


def test_same_shapes_share_one_session_call_and_order_is_kept(tmp_path, toy_dir):
    sources = [save(tmp_path / f"{i}.png", np.full((28, 28), i * 10, np.uint8)) for i in range(5)]
    sources.insert(2, save(tmp_path / "odd.png", np.zeros((40, 40), np.uint8)))
    calls = []

    class Count(Reconstruct):
        def run(self, batch):
            calls.append(len(batch))
            return super().run(batch)

    jobs = [job(s, tmp_path / f"out-{s.name}") for s in sources]
    outcomes = list(process(jobs, Count(load(toy_dir / "conv.onnx")), invert=False, in_flight=4))
    assert [o.path for o in outcomes] == [str(s) for s in sources]
    assert calls == [3, 1, 2]  # chunk 1: three 28×28 together, the 40×40 alone; chunk 2: two 28×28
    calls.clear()
    outcomes = list(process(jobs, Count(load(toy_dir / "dense.onnx")), invert=False, in_flight=4))
    assert calls == [3, 2] and "takes 28×28 images" in outcomes[2].error  # a dense model refuses the 40×40 ...
    calls.clear()
    list(process(jobs, Count(load(toy_dir / "dense.onnx"), resize=True), invert=False, in_flight=4))
    assert calls == [4, 2]  # ... or fits it to 28×28 with resize, and then it joins the others


def test_a_chunk_ends_early_once_it_holds_enough_pixel_values(tmp_path, toy_dir, monkeypatch):
    from aetool.runtime import batch

    monkeypatch.setattr(batch, "VALUES_IN_FLIGHT", 3 * 2 * 28 * 28)  # three images, each read and prepared
    sources = [save(tmp_path / f"{i}.png", digit()) for i in range(7)]
    calls = []

    class Count(Reconstruct):
        def run(self, batch):
            calls.append(len(batch))
            return super().run(batch)

    outcomes = list(process([job(s, tmp_path / f"out-{s.name}") for s in sources], Count(load(toy_dir / "dense.onnx"))))
    assert calls == [3, 3, 1] and all(o.error is None for o in outcomes)


def test_a_bad_file_fails_alone(tmp_path, toy_dir):
    good = save(tmp_path / "good.png", digit())
    (tmp_path / "bad.png").write_text("text")
    outcomes = list(
        process(
            [job(tmp_path / "bad.png", tmp_path / "o1.png"), job(good, tmp_path / "o2.png")],
            Reconstruct(load(toy_dir / "dense.onnx")),
        )
    )
    assert outcomes[0].error == "not an image Pillow can read" and outcomes[0].output is None
    assert outcomes[1].error is None and (tmp_path / "o2.png").is_file() and not (tmp_path / "o1.png").exists()


def test_an_image_numpy_cannot_find_memory_for_fails_alone_before_anything_is_written(tmp_path, toy_dir, monkeypatch):
    """Under ``ulimit -v`` numpy's MemoryError in an image's score ended the batch, its written images unreported."""
    from aetool.runtime import batch

    mse = batch.mse

    def no_memory_for_pages(output, target):
        if output.shape[-1] > 28:
            raise MemoryError("Unable to allocate 8.00 MiB for an array with shape (1024, 1024) and data type float64")
        return mse(output, target)

    monkeypatch.setattr(batch, "mse", no_memory_for_pages)
    save(tmp_path / "a.png", digit())
    save(tmp_path / "page.png", np.zeros((40, 40), np.uint8))
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in ("a.png", "page.png")]
    outcomes = list(process(jobs, Reconstruct(load(toy_dir / "conv.onnx"))))
    assert outcomes[0].error is None and outcomes[1].error == (
        "not enough memory (Unable to allocate 8.00 MiB for an array with shape (1024, 1024) and data type float64); "
        "raise the memory limit, or pass fewer or smaller images at a time"
    )
    assert sorted(p.name for p in tmp_path.glob("out-*")) == ["out-a.png"]


def test_an_image_that_cannot_be_decoded_for_memory_fails_alone(tmp_path, toy_dir, monkeypatch):
    """Under ``ulimit -v`` a 4000×3000 photo's MemoryError while decoding ended the batch, exit 2, no records."""
    from aetool.runtime import batch

    read_image = batch.images.read_image

    def no_memory_for_photos(source):
        if str(source).endswith("photo.png"):
            raise MemoryError("Unable to allocate 137. MiB for an array with shape (3000, 4000, 3)")
        return read_image(source)

    monkeypatch.setattr(batch.images, "read_image", no_memory_for_photos)
    save(tmp_path / "a.png", digit())
    save(tmp_path / "photo.png", digit())
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in ("a.png", "photo.png")]
    done, failed = process(jobs, Reconstruct(load(toy_dir / "conv.onnx")))
    assert done.error is None and failed.error.startswith("not enough memory (Unable to allocate 137. MiB")


def test_images_of_one_shape_that_do_not_fit_together_run_one_at_a_time(tmp_path, toy_dir):
    """Three 1024×1024 pages failed together where each fits alone."""

    class OneAtATime(Reconstruct):
        def run(self, batch):
            if len(batch) > 1:
                raise MemoryError("Unable to allocate 24.0 MiB for an array with shape (3, 1, 1024, 1024)")
            return super().run(batch)

    names = ("a.png", "b.png", "c.png")
    for name in names:
        save(tmp_path / name, digit())
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in names]
    outcomes = list(process(jobs, OneAtATime(load(toy_dir / "conv.onnx"))))
    assert [o.path for o in outcomes] == list(names) and all(o.error is None for o in outcomes)


def test_a_model_error_on_one_image_fails_that_image_not_the_ones_run_beside_it(tmp_path):
    """A ×1.5 model: the bright image's reconstruction leaves [0, 1], the dim one's does not, yet both failed with
    the bright one's line (trial 72)."""
    import struct

    from conftest import FLOAT, node, onnx_bytes, tensor

    image = ["N", 1, "H", "W"]
    (tmp_path / "more.onnx").write_bytes(
        onnx_bytes(
            {"image": image},
            {"reconstruction": image},
            [node("Mul", ["image", "s"], ["reconstruction"])],
            initializers=[tensor("s", [], FLOAT, struct.pack("<f", 1.5))],
        )
    )
    save(tmp_path / "bright.png", np.full((8, 8), 200, np.uint8))
    save(tmp_path / "dim.png", np.full((8, 8), 100, np.uint8))
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in ("bright.png", "dim.png")]
    bright, dim = process(jobs, Reconstruct(load(tmp_path / "more.onnx")), invert=False)
    assert bright.error and "outside [0, 1]" in bright.error and dim.error is None
    assert np.array_equal(read(tmp_path / "out-dim.png"), np.full((8, 8), 150, np.uint8))


def test_a_write_failure_is_an_outcome(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    (tmp_path / "taken").write_text("a file where a folder should be")
    [outcome] = process([job(source, tmp_path / "taken" / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")))
    assert outcome.error == f"cannot write {tmp_path / 'taken' / 'out.png'}: Not a directory: {tmp_path / 'taken'}"
    assert outcome.output is None


def test_standard_output_gets_the_bytes(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    stdout = io.BytesIO()
    [outcome] = process(
        [Job("-", source.read_bytes(), None, "BMP")], Reconstruct(load(toy_dir / "dense.onnx")), stdout=stdout
    )
    assert outcome.output == "-" and stdout.getvalue()[:2] == b"BM"
    assert np.array_equal(read(stdout.getvalue()), digit())


def test_corrupt_is_seeded_and_keeps_the_size(tmp_path):
    source = save(tmp_path / "gray.png", np.full((30, 50), 128, np.uint8))
    outputs = []
    for seed in (1, 1, 2):
        target = tmp_path / f"noisy-{len(outputs)}.png"
        [outcome] = process([job(source, target)], Corrupt(Noise.single(0.1), seed=seed), invert=False)
        assert outcome.size == (50, 30)
        outputs.append(read(target).astype(float))
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    assert outputs[0].std() == pytest.approx(25.5, rel=0.1) and outputs[0].mean() == pytest.approx(128, abs=2)


@pytest.mark.parametrize("real_model", ["denoise", "conv-unpool"], indirect=True)
def test_real_models_write_images_of_the_input_size(tmp_path, real_model):
    source = save(tmp_path / "in.png", np.kron(255 - digit(), np.ones((2, 2), np.uint8))[:54, :50])
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(real_model), resize=True))
    assert outcome.error is None and outcome.inverted and outcome.size == (50, 54)
    assert outcome.resized == bool(load(real_model).input_spec.size) and 0 < outcome.mse < 0.1
    assert read(tmp_path / "out.png").shape == (54, 50)


@pytest.mark.parametrize("tiled", [True, False])
def test_a_page_over_the_one_call_limit_runs_in_tiles_or_fails_alone(tmp_path, toy_dir, monkeypatch, tiled):
    from aetool.runtime import spec, tiles

    monkeypatch.setattr(spec, "MAX_CONV_PIXELS", 40 * 40)
    monkeypatch.setattr(tiles, "TILE", 28)
    conv = load(toy_dir / "conv.onnx")
    monkeypatch.setattr(conv, "session", CountingSession(conv.session))
    small, large = save(tmp_path / "small.png", digit()), save(tmp_path / "large.png", digit(56, 56))
    jobs = [job(small, tmp_path / "o1.png"), job(large, tmp_path / "o2.png")]
    outcomes = list(process(jobs, Reconstruct(conv, tiled=tiled)))  # detect's pages go in one call: tiled=False
    assert outcomes[0].error is None
    if tiled:
        assert outcomes[1].error is None and np.array_equal(read(tmp_path / "o2.png"), read(large))
        assert conv.session.batches == [1] + [1] * 4  # the digit whole, the page as 2×2 tiles
    else:
        assert outcomes[1].error.startswith(
            "56×56 (width×height) is over the 1,600-pixel limit of a conv model for an image run in one"
        )
        assert "denoise, reconstruct and evaluate run larger images in tiles" in outcomes[1].error
        assert not (tmp_path / "o2.png").exists()


def test_large_images_go_through_the_session_a_few_at_a_time(toy_dir, monkeypatch):
    from aetool.runtime import spec

    monkeypatch.setattr(spec, "CONV_PIXELS_PER_CALL", 2 * 112 * 112)
    conv = load(toy_dir / "conv.onnx")
    monkeypatch.setattr(conv, "session", CountingSession(conv.session))
    pages = np.random.default_rng(0).random((5, 112, 112), dtype=np.float32)
    assert np.array_equal(conv.reconstruct(pages), pages)
    assert conv.session.batches == [2, 2, 1]
    conv.reconstruct(pages[:, :28, :28])
    assert conv.session.batches[3:] == [5]  # small images still go together


def test_a_batch_of_digits_goes_through_a_conv_model_64_at_a_time_and_through_a_dense_one_whole(toy_dir, monkeypatch):
    conv, dense = load(toy_dir / "conv.onnx"), load(toy_dir / "dense.onnx")
    for model in (conv, dense):
        monkeypatch.setattr(model, "session", CountingSession(model.session))
    digits = np.random.default_rng(0).random((300, 28, 28), dtype=np.float32)
    assert np.array_equal(conv.reconstruct(digits), digits)
    assert conv.session.batches == [64, 64, 64, 64, 44]
    conv.reconstruct(digits, chunk=50)
    assert conv.session.batches[5:] == [50] * 6  # a smaller chunk asked for still holds
    assert np.array_equal(dense.reconstruct(digits), digits)
    assert dense.session.batches == [256, 44]


def colour_photo(height: int = 30, width: int = 45, seed: int = 0) -> np.ndarray:
    """An H×W×3 uint8 image whose channels differ everywhere, with a light border (dark on light, if it were ink)."""
    rng = np.random.default_rng(seed)
    photo = np.stack([rng.integers(0, 80, (height, width)), rng.integers(80, 160, (height, width))], axis=-1)
    photo = np.concatenate([photo, rng.integers(160, 240, (height, width, 1))], axis=-1).astype(np.uint8)
    photo[:3], photo[-3:], photo[:, :3], photo[:, -3:] = 250, 250, 250, 250
    return photo


def test_colour_in_colour_out_at_its_own_size_never_inverted(tmp_path, toy_dir):
    photo = colour_photo()
    source = save(tmp_path / "photo.png", photo)
    seen, owned = [], []

    class Spy(Reconstruct):
        def run(self, batch):
            seen.append(batch.copy())
            owned.append(batch.flags.owndata)
            return super().run(batch)

    [outcome] = process([job(source, tmp_path / "out.png")], Spy(load(toy_dir / "rgb-conv.onnx")))
    assert outcome.error is None and outcome.size == (45, 30) and not outcome.resized
    assert owned == [False]  # a lone image is run as a view of its prepared pixels, not copied (a photo's 288 MB)
    assert not outcome.inverted and outcome.converted is None and outcome.notes == []
    assert seen[0].shape == (1, 3, 48, 64) and seen[0][0, :, 8, 8].min() > 0.9  # as it is (a border around it)
    assert np.array_equal(read(tmp_path / "out.png"), photo)
    assert outcome.mse == 0 and outcome.psnr is None


def test_an_image_far_from_the_models_training_noise_gets_a_note(tmp_path, toy_dir):
    """A photographer's σ 0.02 photo came out worse from a dncnn trained at σ 0.098, and nothing said so (trial
    53). The toy colour model records σ 0.1 and takes images as they are."""
    ramp = np.broadcast_to(np.linspace(40, 220, 64), (48, 64))
    smooth = np.stack([ramp, ramp[::-1], np.full((48, 64), 128.0)], axis=-1).round().astype(np.uint8)
    noisy = np.clip(smooth + np.random.default_rng(0).normal(0, 25.5, smooth.shape), 0, 255).round().astype(np.uint8)
    step = Reconstruct(load(toy_dir / "rgb-conv.onnx"))
    [clean] = process([job(save(tmp_path / "clean.png", smooth), tmp_path / "a.png")], step)
    [matched] = process([job(save(tmp_path / "noisy.png", noisy), tmp_path / "b.png")], step)
    [said] = clean.notes
    assert said.startswith("looks less noisy (σ ≈ 0.00") and "the model's training noise (σ 0.1)" in said
    assert matched.notes == [] and clean.error is None and (tmp_path / "a.png").exists()
    [digit_outcome] = process(
        [job(save(tmp_path / "ring.png", digit()), tmp_path / "c.png")], Reconstruct(load("denoise-dense"))
    )
    assert digit_outcome.notes == []  # models of MNIST's world (white on black, σ 0.5 here) are not judged so


def test_a_forced_inversion_is_refused_for_a_model_of_images_as_they_are(tmp_path, toy_dir):
    """It was ignored without a word, where the commands and reconstruct_image refuse it (trial 104)."""
    source = save(tmp_path / "photo.png", colour_photo())
    step = Reconstruct(load(toy_dir / "rgb-conv.onnx"))
    with pytest.raises(ValueError, match=r"^invert=True: model rgb-conv takes images as they are"):
        list(process([job(source, tmp_path / "out.png")], step, invert=True))
    [outcome] = process([job(source, tmp_path / "out.png")], step, invert=False)
    assert not outcome.inverted and np.array_equal(read(tmp_path / "out.png"), colour_photo())
    with pytest.raises(ValueError, match=r"^invert=True: noise other than masking is drawn alike either way"):
        list(process([job(source, tmp_path / "noisy.png")], Corrupt(Noise.single(0.1)), invert=True))


def test_a_colour_output_is_refused_as_pgm_and_written_as_ppm(tmp_path, toy_dir):
    """Refused before the model runs (a trial's 24-megapixel photo ran 45 s first)."""
    source = save(tmp_path / "photo.png", colour_photo())
    runs = []

    class Counted(Reconstruct):
        def run(self, batch):
            runs.append(len(batch))
            return super().run(batch)

    step = Counted(load(toy_dir / "rgb-conv.onnx"))
    [grey_name] = process([job(source, tmp_path / "out.pgm", fmt="PPM")], step)
    assert runs == []
    assert (
        grey_name.error
        == f"cannot write {tmp_path / 'out.pgm'}: a .pgm file holds grey images and this output is RGB; use .ppm or .png"
    )
    assert not (tmp_path / "out.pgm").exists()
    [colour_name] = process([job(source, tmp_path / "out.ppm", fmt="PPM")], step)
    assert colour_name.error is None and np.array_equal(read(tmp_path / "out.ppm"), colour_photo())


def test_grey_images_are_replicated_for_a_colour_model_and_come_back_grey(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "rgb-conv.onnx")))
    assert outcome.converted == "grey → RGB (replicated)"
    assert np.array_equal(read(tmp_path / "out.png"), digit())  # the luma of three equal channels


def test_colour_images_become_grey_for_a_grey_model_and_so_does_the_output(tmp_path, toy_dir):
    photo = colour_photo(28, 28)
    source = save(tmp_path / "photo.png", photo)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")), invert=False)
    assert outcome.converted == "RGB → grey (luma)"
    luma = photo @ np.array([0.299, 0.587, 0.114])
    out = read(tmp_path / "out.png")
    assert out.shape == (28, 28) and np.abs(out - luma).max() <= 1


def test_what_reading_did_is_in_the_record(tmp_path, toy_dir):
    from PIL import Image

    image = Image.fromarray(np.kron(digit(), np.ones((1, 2), np.uint8)))  # 56 wide, 28 high
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: turn it 90° to see it upright
    image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    [outcome] = process([job(tmp_path / "turned.jpg", tmp_path / "out.png")], Reconstruct(load(toy_dir / "conv.onnx")))
    assert outcome.notes == ["turned upright by its EXIF orientation (6)"]
    assert outcome.input_size == (28, 56) and outcome.size == (28, 56)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tiff"])
def test_a_photos_exif_is_carried_to_the_output_without_its_orientation(tmp_path, toy_dir, suffix):
    """Every output dropped the camera, date and exposure a photographer's JPEG held (trial 53). The pixels are
    turned upright, so the Orientation tag is not carried, or viewers would turn them again."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = "Canon", "EOS R5", "2026:01:01 10:00:00", 6
    camera = exif.get_ifd(0x8769)  # the Exif IFD: exposure, and the stored pixel dimensions
    camera[0x829A], camera[0xA002], camera[0xA003] = 0.01, 45, 30
    Image.fromarray(colour_photo()).save(tmp_path / "cam.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "cam.jpg") as photo:
        exposure_written = bool(photo.getexif().get_ifd(0x8769))  # Pillow 10.0 writes no IFD made this way
    target = tmp_path / f"out{suffix}"
    [outcome] = process(
        [job(tmp_path / "cam.jpg", target, fmt=images_format(suffix))], Reconstruct(load(toy_dir / "rgb-conv.onnx"))
    )
    assert outcome.error is None
    with Image.open(target) as written:
        kept = written.getexif()
        assert (kept.get(0x010F), kept.get(0x0110), kept.get(0x0132)) == ("Canon", "EOS R5", "2026:01:01 10:00:00")
        assert 0x0112 not in kept and written.size == (30, 45)  # upright: the photo stored 45 wide is 45 high
        # the stored photo's 45×30 in the Exif IFD said the turned output's size wrong (trial 90); its exposure stays
        assert kept.get_ifd(0x8769) == {0x829A: 0.01} or not exposure_written


def test_a_phone_jpegs_image_width_and_length_do_not_reach_a_tiff_output(tmp_path, toy_dir):
    """IFD0's ImageWidth/ImageLength of a JPEG turned by its orientation became the TIFF output's own: 45×30 said
    over 30×45 pixels, sheared in every reader (trial 92)."""
    from PIL import Image

    exif = Image.Exif()
    exif[256], exif[257], exif[271], exif[0x0112] = 45, 30, "Phone", 6
    Image.fromarray(colour_photo()).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    [outcome] = process(
        [job(tmp_path / "phone.jpg", tmp_path / "out.tiff", fmt="TIFF")], Reconstruct(load(toy_dir / "rgb-conv.onnx"))
    )
    assert outcome.error is None
    with Image.open(tmp_path / "out.tiff") as written:
        assert written.size == (30, 45) and written.tag_v2[256] == 30 and written.tag_v2[271] == "Phone"
        assert np.asarray(written).shape == (45, 30, 3)


def test_no_exif_writes_none_and_a_tiffs_storage_tags_are_never_carried(tmp_path, toy_dir):
    """A TIFF's getexif() is its own tags: an 8-bit output said BitsPerSample 16 and its input's width; and a
    patient's name in a description could not be kept out of the outputs (trial 58)."""
    from PIL import Image, TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[270] = "Patient: DOE^JANE"
    Image.fromarray(digit().astype(np.uint16) * 257).save(tmp_path / "scan.tif", tiffinfo=tags)
    for exif, name in ((True, "kept.png"), (False, "none.png")):
        [outcome] = process(
            [job(tmp_path / "scan.tif", tmp_path / name)], Reconstruct(load(toy_dir / "conv.onnx")), exif=exif
        )
        assert outcome.error is None
    with Image.open(tmp_path / "kept.png") as kept:
        carried = kept.getexif()
        assert carried.get(270) == "Patient: DOE^JANE" and not {256, 257, 258, 259, 273, 279} & set(carried)
    with Image.open(tmp_path / "none.png") as none:
        assert not none.getexif()


def test_an_exif_that_cannot_be_written_again_is_dropped_with_a_note(tmp_path, toy_dir, monkeypatch):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "Canon"
    Image.fromarray(colour_photo()).save(tmp_path / "cam.jpg", exif=exif, quality=95)

    def malformed(self, *args, **kwargs):
        raise ValueError("bad IFD")

    monkeypatch.setattr(Image.Exif, "tobytes", malformed)
    [outcome] = process([job(tmp_path / "cam.jpg", tmp_path / "out.png")], Reconstruct(load(toy_dir / "rgb-conv.onnx")))
    assert outcome.error is None and "its EXIF could not be carried over to the output (ValueError)" in outcome.notes
    monkeypatch.undo()
    with Image.open(tmp_path / "out.png") as written:
        assert not written.getexif()


def test_add_noise_keeps_colour_and_draws_noise_per_channel(tmp_path):
    source = save(tmp_path / "grey-rgb.png", np.full((20, 30, 3), (100, 130, 160), np.uint8))
    [outcome] = process([job(source, tmp_path / "noisy.png")], Corrupt(Noise.single(0.1), seed=0), invert=False)
    noisy = read(tmp_path / "noisy.png").astype(float)
    assert noisy.shape == (20, 30, 3) and outcome.converted is None
    assert not np.array_equal(noisy[..., 0] - 100, noisy[..., 1] - 130)  # each channel its own noise
    assert noisy.mean(axis=(0, 1)) == pytest.approx([100, 130, 160], abs=3)
    assert outcome.mse == pytest.approx(0.01, rel=0.2) and outcome.psnr == pytest.approx(20, abs=1)


@pytest.mark.parametrize("stop", ["timeout", "ctrl-c"])
def test_images_written_before_a_timeout_or_ctrl_c_are_still_reported(tmp_path, toy_dir, stop):
    from aetool.errors import TimedOut

    stopped = TimedOut("a call of the model ran longer than its timeout") if stop == "timeout" else KeyboardInterrupt()

    class SlowOnPages(Reconstruct):  # digits run; a larger shape runs past the model's timeout, or is interrupted
        def run(self, batch):
            if batch.shape[-1] > 28:
                raise stopped
            return super().run(batch)

    save(tmp_path / "a.png", digit())
    save(tmp_path / "page.png", np.zeros((40, 40), np.uint8))
    save(tmp_path / "b.png", digit())
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in ("a.png", "page.png", "b.png")]
    outcomes = []
    with pytest.raises(type(stopped)):
        for outcome in process(jobs, SlowOnPages(load(toy_dir / "conv.onnx"))):
            outcomes.append(outcome)
    assert [o.path for o in outcomes] == ["a.png", "b.png"] and all(o.error is None for o in outcomes)
    assert sorted(p.name for p in tmp_path.glob("out-*")) == ["out-a.png", "out-b.png"]  # each written one reported


def test_ctrl_c_while_an_outcome_is_reported_stops_after_the_chunks_settled_outcomes(tmp_path, toy_dir):
    import signal
    import threading

    from aetool.runtime.signals import interrupts_deferred

    names = [f"{letter}.png" for letter in "abcde"]
    for name in names:
        save(tmp_path / name, digit())
    jobs = [Job(name, tmp_path / name, tmp_path / f"out-{name}", "PNG") for name in names]
    stop, reported = threading.Event(), []
    with pytest.raises(KeyboardInterrupt):
        for outcome in process(jobs, Reconstruct(load(toy_dir / "conv.onnx")), in_flight=2, stop=stop):
            with interrupts_deferred(stop):
                reported.append(outcome.path)
                if len(reported) == 1:
                    signal.raise_signal(signal.SIGINT)  # deferred: the consumer goes on
    assert stop.is_set() and reported == ["a.png", "b.png"]  # the first chunk, whole; the second never started
    assert sorted(p.name for p in tmp_path.glob("out-*")) == ["out-a.png", "out-b.png"]


def test_a_stop_signal_while_a_chunks_outcomes_are_handed_out_waits_for_the_rest(tmp_path, toy_dir):
    """Ctrl-C while the outcomes of a chunk whose files were all written were handed out dropped the rest: a
    trial's 128 files had 74 records. Now the signal sets ``stop``, and KeyboardInterrupt comes after them."""
    import os
    import signal
    import threading

    jobs = [job(save(tmp_path / f"{i}.png", digit()), tmp_path / f"out{i}.png") for i in range(3)]
    stop, seen = threading.Event(), []
    with pytest.raises(KeyboardInterrupt):
        for outcome in process(jobs, Reconstruct(load(toy_dir / "conv.onnx")), stop=stop):
            seen.append(outcome)
            if len(seen) == 1:
                os.kill(os.getpid(), signal.SIGINT)  # between two outcomes of one chunk
                for _ in range(1000):  # time for Python to run the handler here, where it raised before
                    pass
    assert [o.output for o in seen] == [str(tmp_path / f"out{i}.png") for i in range(3)] and stop.is_set()


@pytest.mark.parametrize(
    ("model", "size", "resize"),
    [("denoise", (45, 37), False), ("conv-unpool", (30, 41), False), ("deep", (45, 37), True)],
)
def test_reconstruct_image_gives_what_the_image_commands_write(tmp_path, model, size, resize):
    """A service had to rebuild channels, polarity, padding, border and crop from the README: its snippet failed on
    an upload of odd size ("model takes sizes divisible by 2, got 303×384"; trial 65)."""
    page = np.full(size, 230, np.uint8)  # dark on light, of a size no bundled model takes as it is
    page[10:30, 12:20] = 20
    page = np.stack([page, page // 2, page], axis=-1)  # colour, for grey models
    source = save(tmp_path / "page.png", page)
    spec = load(resolve(model)).input_spec
    assert spec.size != size[::-1] and (spec.size is not None or size[0] % spec.multiple_of)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(resolve(model)), resize=resize))
    assert outcome.error is None
    mine = reconstruct_image(model, read_image(source).pixels, resize=resize)
    assert mine.shape == (1, *size) and mine.dtype == np.float32
    assert np.array_equal(np.round(mine[0] * 255).astype(np.uint8), read(tmp_path / "out.png"))


def test_reconstruct_image_takes_read_images_result_and_checks_pixels_before_inverting(tmp_path, toy_dir):
    """A colour file of grey pixels came back grey through a colour model (the command writes RGB); 1.5 everywhere
    was reported as "from -0.5 to -0.5", the inverted range; None was an AttributeError (trial 67)."""
    source = save(tmp_path / "grey-rgb.png", np.repeat(np.full((6, 8, 1), 90, np.uint8), 3, axis=2))
    decoded = read_image(source)
    assert decoded.channels == 1 and decoded.stored_colour
    colour = reconstruct_image(toy_dir / "rgb-conv.onnx", decoded)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "rgb-conv.onnx")))
    assert outcome.error is None and colour.shape == (3, 6, 8) and read(tmp_path / "out.png").shape == (6, 8, 3)
    assert np.array_equal(np.round(colour * 255).astype(np.uint8).transpose(1, 2, 0), read(tmp_path / "out.png"))
    photo = np.random.default_rng(0).random((3, 6, 8), dtype=np.float32)  # colour through a grey model: grey
    assert reconstruct_image(toy_dir / "conv.onnx", photo).shape == (1, 6, 8)
    with pytest.raises(ValueError, match=r"got values from 1.5 to 1.5"):
        reconstruct_image(toy_dir / "conv.onnx", np.full((1, 8, 8), 1.5, np.float32))
    with pytest.raises(TypeError, match=r"takes images.read_image's result or its pixels .*got builtins.NoneType"):
        reconstruct_image(toy_dir / "conv.onnx", None)
    with pytest.raises(ValueError, match=r"expected C×H×W pixels of 1 or 3 channels, got shape \(8, 8\)"):
        reconstruct_image(toy_dir / "conv.onnx", np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(8, 6, 3\); channels last\? pass pixels.transpose\(2, 0, 1\)$"):
        reconstruct_image(toy_dir / "conv.onnx", np.zeros((8, 6, 3), np.float32))  # as Pillow gives it (trial 80)
    with pytest.raises(ValueError, match=r"^invert=True: model \S+ takes images as they are .*; leave invert out$"):
        reconstruct_image(toy_dir / "rgb-conv.onnx", photo, invert=True)  # it was ignored; --invert is refused
    assert reconstruct_image(toy_dir / "rgb-conv.onnx", photo, invert=False).shape == (3, 6, 8)


@pytest.mark.parametrize("value", ["no", "false", 0, 1, "auto"])
def test_invert_and_resize_take_true_false_or_none_not_any_truthy_value(tmp_path, toy_dir, value):
    """invert="no" inverted every image (a detector's AUROC fell from 0.957 to 0.098) and resize="no" resized
    (trial 83): only True, False and, for invert, None are taken."""
    source = save(tmp_path / "ring.png", digit())
    model = load(toy_dir / "dense.onnx")
    with pytest.raises(TypeError, match=rf"^invert takes True, False or None \(decide per image\), got {value!r}$"):
        reconstruct_image(model, read_image(source), invert=value)
    with pytest.raises(TypeError, match=rf"^resize takes True or False, got {value!r}$"):
        reconstruct_image(model, read_image(source), resize=value)
    with pytest.raises(TypeError, match=r"^resize takes True or False"):
        Reconstruct(model, resize=value)
    with pytest.raises(TypeError, match=r"^invert takes True, False or None"):
        next(process([job(source, tmp_path / "out.png")], Reconstruct(model), invert=value))
    assert not (tmp_path / "out.png").exists()
    assert np.array_equal(
        reconstruct_image(model, read_image(source), invert=np.bool_(False), resize=np.bool_(True)),
        read_image(source).pixels,
    )


# ---- trial 82: mutants of batch.py the tests above let live, each killed below ----


def test_a_colour_file_of_grey_pixels_stays_grey_for_a_grey_model(tmp_path, toy_dir):
    """Replicated to three channels as for a colour model, a grey model refused it."""
    source = save(tmp_path / "grey-rgb.png", np.repeat(np.full((28, 28, 1), 90, np.uint8), 3, axis=2))
    decoded = read_image(source)
    assert decoded.stored_colour and decoded.channels == 1
    assert np.array_equal(reconstruct_image(toy_dir / "dense.onnx", decoded), decoded.pixels)


def test_side_by_side_shows_the_input_as_read_when_the_model_took_it_inverted(tmp_path, toy_dir):
    dark = 255 - digit()
    source = save(tmp_path / "dark.png", dark)
    step = Reconstruct(load(toy_dir / "dense.onnx"))
    [outcome] = process([job(source, tmp_path / "out.png")], step, side_by_side=True)
    assert outcome.inverted and np.array_equal(read(tmp_path / "out.png"), np.hstack([dark, dark]))


def test_a_grey_images_result_from_a_colour_model_comes_back_as_its_luma():
    """Oracle: Pillow's convert("L") of the colour result (ITU-R 601-2 luma), within one 8-bit step; the red
    channel alone went unnoticed, the toy models' three channels being equal."""
    from PIL import Image

    from aetool.runtime.batch import Prepared, carry_back
    from aetool.runtime.images import GREY_TO_RGB

    rgb = np.random.default_rng(4).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    result = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)
    grey = carry_back(result, Prepared(result, (7, 9)), converted=GREY_TO_RGB, inverted=False)
    luma = np.asarray(Image.fromarray(rgb).convert("L"), np.float32) / 255
    assert grey.shape == (1, 7, 9)
    np.testing.assert_allclose(grey[0], luma, rtol=0, atol=1 / 255 + 1e-6)


def test_a_non_square_dense_model_takes_images_of_its_height_and_width_as_they_are():
    from types import SimpleNamespace

    from aetool.errors import ImageError
    from aetool.runtime.spec import InputSpec

    step = Reconstruct(SimpleNamespace(input_spec=InputSpec((32, 48))))  # type: ignore[arg-type]
    fits = np.zeros((1, 32, 48), np.float32)
    prepared = step.prepare(fits)
    assert prepared.pixels is fits and prepared.region == (32, 48) and prepared.restore is None
    with pytest.raises(ImageError, match=r"takes 48×32 images \(width×height\), this one is 32×48"):
        step.prepare(np.zeros((1, 48, 32), np.float32))
