import numpy as np
import pytest

from aetool.runtime import noise as noise_module
from aetool.runtime.noise import Noise, add_noise, estimate_sigma, level_note, scale_note


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


def test_a_level_of_one_hits_every_pixel():
    clean = np.full((2, 4, 4), 0.5, np.float32)
    assert (add_noise(clean, 1.0, kind="mask", rng=0) == 0).all()
    assert set(np.unique(add_noise(clean, 1.0, kind="salt-pepper", rng=0)).tolist()) <= {0.0, 1.0}


def test_a_range_draws_each_images_level_uniformly_and_is_not_one_level():
    """A range read as one level (its lowest: none at 0:0.2) or drawn at its highest passed (trial 81)."""
    assert Noise.parse("0:0.2").level is None and Noise.parse("0.3").level == (0.3, "gaussian")
    clean = np.full((400, 16, 16), 0.5, np.float32)
    stds = (Noise.parse("0:0.2").apply(clean, 0) - clean).reshape(400, -1).std(axis=1)
    assert stds.mean() == pytest.approx(0.1, abs=0.01)  # the mean of U(0, 0.2); 2.5 σ from 0.5: no clipping
    assert stds.min() < 0.02 and stds.max() > 0.18


def test_a_mix_chooses_each_images_term_by_weight():
    clean = np.full((1000, 8, 8), 0.5, np.float32)
    noisy = Noise.parse("gaussian=0.01@9,mask=0.5@1").apply(clean, 0)
    assert (noisy == 0).any(axis=(1, 2)).mean() == pytest.approx(0.1, abs=0.03)  # a tenth masked, by weight


def test_weights_near_the_float_maximum_choose_as_their_ratio_does():
    """Weights of 1e308 summed to inf: numpy's 'probabilities do not sum to 1' (trial 88)."""
    clean = np.full((1000, 8, 8), 0.5, np.float32)
    noisy = Noise.parse("gaussian=0.01@1.7e308,mask=0.5@1.7e307").apply(clean, 0)
    assert (noisy == 0).any(axis=(1, 2)).mean() == pytest.approx(0.1, abs=0.03)


def test_terms_of_whole_number_weights_mix():
    """NoiseTerm(…, 2): the weights' array of ints was divided in place, numpy's UFuncTypeError (trial 92)."""
    from aetool.runtime.noise import NoiseTerm

    clean = np.full((4, 8, 8), 0.5, np.float32)
    noise = Noise((NoiseTerm("gaussian", 0.1, 0.2, 1), NoiseTerm("gaussian", 0.3, 0.4, 2)))
    assert noise.apply(clean, 1).shape == clean.shape


def test_no_noise_gives_a_copy_as_noise_does():
    """Noise().apply returned the caller's float32 array itself, which a caller then wrote into (trial 88)."""
    clean = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    for noise in (Noise(), Noise.single(0.1)):
        noisy = noise.apply(clean, 0)
        assert noisy.dtype == np.float32 and not np.shares_memory(noisy, clean)


def test_noise_text_that_means_no_noise_or_no_weight():
    assert not Noise.parse("0") and str(Noise.parse("0")) == "0" and Noise.parse("gaussian=0") == Noise()
    with pytest.raises(ValueError, match="a weight must be a positive number"):
        Noise.parse("gaussian=0.1@0,mask=0.2")


def test_scale_note_names_the_0_255_reading_of_a_std_above_1():
    assert scale_note(Noise.single(1.0)) is None and scale_note(Noise.parse("mask=1")) is None
    assert str(scale_note(Noise.single(25.0))).endswith("a σ of 25 on the 0–255 scale is --noise 0.098")


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


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_estimate_sigma_reads_the_noise_of_a_smooth_image(sigma):
    """Immerkær's estimate on a ramp (which the filter cancels) with Gaussian noise added: within 5 % of σ."""
    ramp = np.broadcast_to(np.linspace(0.3, 0.7, 300, dtype=np.float32), (2, 200, 300))
    noisy = add_noise(ramp, sigma, rng=0)
    assert estimate_sigma(noisy) == pytest.approx(sigma, rel=0.05)
    assert estimate_sigma(np.ascontiguousarray(ramp)) < 1e-6


def test_estimate_sigma_is_immerkaers_filter_whatever_the_blocks(monkeypatch):
    """The same number as the 3×3 kernel applied whole by scipy, with blocks of one row and of the whole image."""
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(0).random((3, 40, 57)).astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    filtered = [np.abs(ndimage.convolve(c.astype(np.float64), kernel)[1:-1, 1:-1]).mean() for c in image]
    expected = np.sqrt(np.pi / 2) / 6 * np.median(filtered)
    assert estimate_sigma(image) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(noise_module, "ESTIMATE_ROWS", 1)
    assert estimate_sigma(image) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="at least 3×3"):
        estimate_sigma(image[:, :2])


def test_level_note_says_when_an_image_is_far_from_the_training_noise():
    """A dncnn trained at σ 0.098 made σ 0.02 photos worse and fell under a blur at σ 0.15 (photo_levels.py)."""
    ramp = np.broadcast_to(np.linspace(0.2, 0.8, 120, dtype=np.float32), (3, 90, 120))
    at = {sigma: add_noise(ramp, sigma, rng=1) for sigma in (0.01, 0.1, 0.3)}
    fixed = Noise.single(0.1)
    assert "looks less noisy (σ ≈ 0.010, Immerkær's estimate) than the model's training noise (σ 0.1)" in str(
        level_note(at[0.01], fixed)
    )
    assert level_note(at[0.1], fixed) is None
    assert "looks noisier (σ ≈ 0.2" in str(level_note(at[0.3], fixed)) and "(σ 0.1), which can leave" in str(
        level_note(at[0.3], fixed)
    )
    above_zero = Noise.parse("0.05:0.15")  # thresholds: a third of the lowest, 1.5× the highest
    assert "(σ 0.05 to 0.15)" in str(level_note(at[0.01], above_zero)) and level_note(at[0.1], above_zero) is None
    for seen_clean in ("0:0.2", "gaussian=0.1,salt-pepper=0.2", "0"):  # a model that saw clean images, or others
        assert (
            level_note(at[0.01], Noise.parse(seen_clean)) is None
            and level_note(at[0.3], Noise.parse(seen_clean)) is None
        )
    assert level_note(at[0.01][:, :2, :2], fixed) is None  # too small to estimate
    assert Noise.parse("0:0.2").gaussian_span is None and Noise.parse("0.05:0.2").gaussian_span == (0.05, 0.2)
    faint = add_noise(ramp, 0.03, rng=1)  # estimated 0.0298; at[0.1] 0.0993: the thresholds, pinned (trial 81)
    assert level_note(faint, Noise.parse("0.085:0.3")) is None and level_note(faint, Noise.parse("0.1:0.3"))
    assert level_note(at[0.1], Noise.single(0.07)) is None and level_note(at[0.1], Noise.single(0.06))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"level": "0.5"}, TypeError, r"^noise level must be a number, got '0.5'$"),
        ({"level": True}, TypeError, r"^noise level must be a number, got True$"),  # was a σ of 1
        ({"rng": "1"}, TypeError, r"^rng takes a whole number ≥ 0 \(or a numpy Generator\), got '1'$"),
        ({"rng": True}, TypeError, r"^rng takes a whole number ≥ 0 \(or a numpy Generator\), got True$"),  # was seed 1
        ({"rng": -1}, ValueError, r"^rng takes a whole number ≥ 0, got -1$"),
    ],
)
def test_a_level_or_seed_of_the_wrong_kind_is_named(options, error, message):
    """numpy's own words came through ("ufunc 'isfinite' not supported", "SeedSequence expects int"), and a bool
    was taken as 1 (trial 86)."""
    with pytest.raises(error, match=message):
        add_noise(np.full((1, 4, 4), 0.5, np.float32), **{"level": 0.5, **options})
    assert add_noise(np.full((1, 4, 4), 0.5, np.float32), 0.5, rng=np.random.default_rng(0)).shape == (1, 4, 4)


def test_noise_single_refuses_an_unknown_kind_when_made():
    """It was made, and refused only once noise was drawn with it (trial 100)."""
    with pytest.raises(ValueError, match=r"^unknown noise kind 'x'; choose one of gaussian, salt-pepper, mask$"):
        Noise.single(0.5, kind="x")


def test_estimate_sigma_refuses_an_image_without_channels():
    """It was NaN, with numpy's "Mean of empty slice" warning (trial 100)."""
    with pytest.raises(ValueError, match=r"^estimate_sigma takes one C×H×W image of at least 3×3 pixels, got shape"):
        estimate_sigma(np.zeros((0, 5, 5), np.float32))
