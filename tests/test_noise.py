import numpy as np
import pytest

from aetool.runtime.noise import add_noise


def test_gaussian_noise_has_the_level_as_std_before_clipping():
    clean = np.full((200, 28, 28), 0.5, np.float32)
    noisy = add_noise(clean, 0.1, rng=0)
    assert noisy.dtype == np.float32
    assert abs(float((noisy - clean).std()) - 0.1) < 0.002
    assert abs(float((noisy - clean).mean())) < 0.002


def test_gaussian_noise_is_clipped_to_unit_range():
    noisy = add_noise(np.zeros((50, 28, 28)), 0.9, rng=1)
    assert noisy.min() == 0.0 and noisy.max() == 1.0
    assert 0.3 < (noisy > 0).mean() < 0.7  # half of the draws are negative and clip to 0


def test_salt_pepper_and_mask_hit_the_asked_fraction():
    clean = np.full((100, 28, 28), 0.5, np.float32)
    salt = add_noise(clean, 0.3, kind="salt-pepper", rng=2)
    changed = salt != 0.5
    assert abs(changed.mean() - 0.3) < 0.01
    assert abs((salt[changed] == 1).mean() - 0.5) < 0.02
    masked = add_noise(clean, 0.25, kind="mask", rng=3)
    assert abs((masked == 0).mean() - 0.25) < 0.01


def test_noise_is_seeded():
    x = np.random.default_rng(0).random((4, 28, 28))
    assert np.array_equal(add_noise(x, 0.5, rng=7), add_noise(x, 0.5, rng=7))
    assert not np.array_equal(add_noise(x, 0.5, rng=7), add_noise(x, 0.5, rng=8))


def test_bad_noise_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown noise kind"):
        add_noise(np.zeros((1, 2)), 0.1, kind="pink")
    with pytest.raises(ValueError, match=">= 0"):
        add_noise(np.zeros((1, 2)), -0.1)
