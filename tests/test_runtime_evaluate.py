"""aetool.runtime.evaluate: test-set MSE from IDX files with onnxruntime, checked against numpy by hand."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import node, onnx_bytes, toy_metadata

from aetool.errors import DataError, ModelFileError
from aetool.runtime import load
from aetool.runtime.evaluate import evaluate
from aetool.runtime.idx import load_split
from aetool.runtime.noise import add_noise


def test_identity_on_clean_inputs_scores_zero(toy_dir, mnist_dir):
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0)
    assert result.mse == 0 and result.n == 12 and result.noise == 0
    assert result.model == "denoise" and result.recorded_test_mse == 0.0


def test_noisy_inputs_score_the_noise_itself(toy_dir, mnist_dir):
    clean = load_split(mnist_dir, "test")[0][:5].astype(np.float32) / 255
    expected = np.mean((add_noise(clean, 0.3, "salt-pepper", np.random.default_rng(7)) - clean) ** 2)
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0.3, noise_kind="salt-pepper", limit=5, seed=7)
    assert result.n == 5 and result.noise_kind == "salt-pepper"
    assert result.mse == pytest.approx(expected, rel=1e-6) and result.mse > 0


def test_default_noise_is_the_one_the_model_was_trained_with(toy_dir, mnist_dir):
    result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir)
    assert (result.noise, result.noise_kind) == (0.5, "gaussian") and result.mse > 0.01


def test_by_default_the_noise_is_drawn_as_training_drew_its_noisy_test_set(toy_dir, mnist_dir):
    from aetool.runtime.noise import TEST_NOISE_SEED

    clean = load_split(mnist_dir, "test")[0].astype(np.float32) / 255
    for kind in ("gaussian", "salt-pepper"):  # one draw over the whole split, as training corrupts it
        expected = np.mean((add_noise(clean, 0.3, kind, TEST_NOISE_SEED) - clean) ** 2)
        result = evaluate(load(toy_dir / "dense.onnx"), mnist_dir, noise=0.3, noise_kind=kind)
        assert result.seed == TEST_NOISE_SEED and result.mse == pytest.approx(expected, rel=1e-6)


def test_conv_models_score_too(toy_dir, mnist_dir):
    assert evaluate(load(toy_dir / "conv.onnx"), mnist_dir).mse == 0


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


@pytest.mark.parametrize("noise", ['{"level": "x"}', "[1]", '{"level": 0.5, "kind": "blur"}'])
def test_malformed_noise_metadata_is_a_model_file_error(tmp_path, mnist_dir, noise):
    dense = ["N", 1, 28, 28]
    metadata = {**toy_metadata("denoise", "dense", None), "noise": noise}
    (tmp_path / "m.onnx").write_bytes(
        onnx_bytes(
            {"image": dense}, {"reconstruction": dense}, [node("Identity", ["image"], ["reconstruction"])], metadata
        )
    )
    with pytest.raises(ModelFileError, match="metadata 'noise' must be"):
        evaluate(load(tmp_path / "m.onnx"), mnist_dir)


def test_a_file_given_as_the_data_folder_is_named_as_such(toy_dir, tmp_path):
    (tmp_path / "digits.png").write_bytes(b"not a folder")
    with pytest.raises(DataError, match=r"digits.png is a file, not a folder"):
        evaluate(load(toy_dir / "dense.onnx"), tmp_path / "digits.png")
