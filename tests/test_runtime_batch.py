"""aetool.runtime.batch: images through identity models come back pixel for pixel, whatever the detour."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import digit, read, save

from aetool.runtime import load
from aetool.runtime.batch import Corrupt, Reconstruct, process
from aetool.runtime.files import Job


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
    assert seen[0][0, 0, 0] == 0  # the model saw white on black
    assert np.array_equal(read(tmp_path / "out.png"), dark)


def test_forced_polarity_overrides_the_border(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")), invert=True)
    assert outcome.inverted
    assert np.array_equal(read(tmp_path / "out.png"), digit())  # inverted twice through an identity


def test_dense_models_get_images_fitted_to_28(tmp_path, toy_dir):
    source = save(tmp_path / "big.png", np.kron(digit(), np.ones((3, 2), np.uint8)))
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")))
    assert outcome.resized and outcome.input_size == (56, 84) and outcome.size == (28, 28)
    assert read(tmp_path / "out.png").shape == (28, 28)


def test_conv_models_get_images_padded_and_cropped_back(tmp_path, toy_dir):
    page = np.random.default_rng(0).integers(0, 120, (30, 45), np.uint8)
    page[5:25, 10:12] = 255
    source = save(tmp_path / "page.png", page)
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(toy_dir / "conv.onnx")))
    assert not outcome.resized and outcome.size == (45, 30)
    assert np.array_equal(read(tmp_path / "out.png"), page)


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
    list(process(jobs, Count(load(toy_dir / "dense.onnx")), invert=False, in_flight=4))
    assert calls == [4, 2]  # a dense model fits the 40×40 to 28×28, so it joins the others


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


def test_a_write_failure_is_an_outcome(tmp_path, toy_dir):
    source = save(tmp_path / "ring.png", digit())
    (tmp_path / "taken").write_text("a file where a folder should be")
    [outcome] = process([job(source, tmp_path / "taken" / "out.png")], Reconstruct(load(toy_dir / "dense.onnx")))
    assert outcome.error == f"cannot write {tmp_path / 'taken' / 'out.png'}: File exists: {tmp_path / 'taken'}"
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
        [outcome] = process([job(source, target)], Corrupt(0.1, "gaussian", seed), invert=False)
        assert outcome.size == (50, 30)
        outputs.append(read(target).astype(float))
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    assert outputs[0].std() == pytest.approx(25.5, rel=0.1) and outputs[0].mean() == pytest.approx(128, abs=2)


@pytest.mark.parametrize("real_model", ["denoise", "conv-unpool"], indirect=True)
def test_real_models_write_images_of_the_right_size(tmp_path, real_model):
    source = save(tmp_path / "in.png", np.kron(255 - digit(), np.ones((2, 2), np.uint8))[:54, :50])
    [outcome] = process([job(source, tmp_path / "out.png")], Reconstruct(load(real_model)))
    expected = (28, 28) if load(real_model).input_spec.size else (50, 54)
    assert outcome.error is None and outcome.inverted and outcome.size == expected
    assert read(tmp_path / "out.png").shape == expected[::-1]


def test_a_page_too_large_for_a_conv_model_fails_alone(tmp_path, toy_dir, monkeypatch):
    from aetool.runtime import model as runtime_model

    monkeypatch.setattr(runtime_model, "MAX_CONV_PIXELS", 40 * 40)
    small, large = save(tmp_path / "small.png", digit()), save(tmp_path / "large.png", digit(56, 56))
    outcomes = list(
        process(
            [job(small, tmp_path / "o1.png"), job(large, tmp_path / "o2.png")], Reconstruct(load(toy_dir / "conv.onnx"))
        )
    )
    assert outcomes[0].error is None and outcomes[1].error.startswith("56×56 is over the 1,600-pixel limit")
    assert not (tmp_path / "o2.png").exists()


class CountingSession:
    """An onnxruntime session that records how many images each call gets."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, outputs, feed):
        self.batches.append(len(feed["image"]))
        return self.session.run(outputs, feed)


def test_large_images_go_through_the_session_a_few_at_a_time(toy_dir, monkeypatch):
    from aetool.runtime import model as runtime_model

    monkeypatch.setattr(runtime_model, "PIXELS_PER_CALL", 2 * 112 * 112)
    conv = load(toy_dir / "conv.onnx")
    monkeypatch.setattr(conv, "session", CountingSession(conv.session))
    pages = np.random.default_rng(0).random((5, 112, 112), dtype=np.float32)
    assert np.array_equal(conv.reconstruct(pages), pages)
    assert conv.session.batches == [2, 2, 1]
    conv.reconstruct(pages[:, :28, :28])
    assert conv.session.batches[3:] == [5]  # small images still go together
