import numpy as np
import pytest

from aetool.runtime.noise import Noise, add_noise


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


def test_a_gaussian_std_near_float32s_largest_saturates_without_a_warning():
    """σ 1e38 and up overflowed float32 in the product: numpy's warning reached the user as a line of its own."""
    import warnings

    images = np.full((2, 8, 8), 0.5, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noisy = add_noise(images, 3e38, rng=0)
    assert set(np.unique(noisy)) <= {0.0, 1.0} and np.isfinite(noisy).all()


def test_integer_and_out_of_range_images_are_refused_not_saturated():
    eight_bit = np.full((2, 4, 4), 200, np.uint8)
    with pytest.raises(ValueError, match=r"uint8 values; .* pass images.astype\(np.float32\) / 255"):
        add_noise(eight_bit, 0.0, rng=0)  # was: every nonzero pixel silently 1.0
    with pytest.raises(ValueError, match=r"bool values"):
        add_noise(eight_bit > 0, 0.1, rng=0)
    with pytest.raises(ValueError, match=r"expected images in \[0, 1\], got values from 200.0 to 200.0"):
        add_noise(eight_bit.astype(np.float32), 0.0, rng=0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        add_noise(np.full((1, 2), np.nan), 0.1, rng=0)
    with pytest.raises(ValueError, match="/ 255"):
        Noise().apply(eight_bit, 0)  # no noise to add is no licence to pass 0–255 on as floats
    assert add_noise(np.full((1, 2), 1.0005), 0.0, rng=0).max() == 1  # rounding within 0.001 is clipped


def test_apply_takes_a_seed_as_well_as_a_generator():
    images = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    for noise in (Noise.parse("gaussian=0:0.3,mask=0.2"), Noise.single(0.2)):
        seeded = noise.apply(images, 5)  # the mix was: 'int' object has no attribute 'choice'
        assert np.array_equal(seeded, noise.apply(images, np.random.default_rng(5)))
        assert noise.apply(images, None).shape == images.shape
