"""Anomaly scores and detector measures on the numpy side, held to scikit-learn, scikit-image and SciPy."""

import json

import numpy as np
import pytest

from aetool.runtime import anomaly

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a dev dependency")
ndimage = pytest.importorskip("scipy.ndimage", reason="SciPy comes with scikit-image, a dev dependency")
skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is a dev dependency")


def labelled(seed, n=400, ties=False):
    rng = np.random.default_rng(seed)
    is_anomaly = rng.random(n) < 0.3
    scores = rng.normal(size=n) + 1.2 * is_anomaly
    return (np.round(scores, 1) if ties else scores), is_anomaly


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_average_precision_match_scikit_learn(seed, ties):
    scores, is_anomaly = labelled(seed, ties=ties)
    assert len(np.unique(scores)) < len(scores) or not ties  # rounding made ties
    assert anomaly.auroc(scores, is_anomaly) == pytest.approx(
        sklearn_metrics.roc_auc_score(is_anomaly, scores), abs=1e-12
    )
    assert anomaly.average_precision(scores, is_anomaly) == pytest.approx(
        sklearn_metrics.average_precision_score(is_anomaly, scores), abs=1e-12
    )


def test_auroc_counts_ties_as_half_and_orders_by_score():
    assert anomaly.auroc(np.array([1.0, 1.0]), np.array([False, True])) == 0.5
    assert anomaly.auroc(np.array([0.0, 1.0, 2.0]), np.array([False, True, True])) == 1.0
    assert anomaly.auroc(np.array([2.0, 1.0, 0.0]), np.array([False, True, True])) == 0.0


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([1.0, 2.0], [True, True], "both normal and anomalous"),
        ([1.0, 2.0], [False, False], "both normal and anomalous"),
        ([1.0, np.nan], [True, False], "finite"),
        ([1.0, 2.0, 3.0], [True, False], "one length"),
        # -1/1 (scikit-learn's outlier labels) and text were all True: "needs both"; 0.5 counted as anomalous
        ([1.0, 2.0], [-1, 1], "labels are True or 1 for an anomalous image, False or 0 for a normal one, got -1, 1"),
        ([1.0, 2.0], ["normal", "anomaly"], "got anomaly, normal"),
        ([1.0, 2.0, 3.0], [0, 0.5, 1], "got 0.0, 0.5, 1.0"),
        ([[1.0, 2.0]], [[True, False]], "a vector"),
        (["0.1", "0.9"], [False, True], r"^scores must be a vector of numbers, got <U3 values$"),  # taken (trial 100)
    ],
)
def test_measures_refuse_what_they_cannot_measure(scores, labels, message):
    for measure in (anomaly.auroc, anomaly.average_precision, lambda s, a: anomaly.rates(s, a, 1.5)):
        with pytest.raises(ValueError, match=message):
            measure(np.array(scores), np.array(labels))
    assert anomaly.auroc(np.array([1.0, 2.0]), np.array([0.0, 1.0])) == anomaly.auroc([1.0, 2.0], [False, True]) == 1


def test_standardised_sum_refuses_means_and_stds_that_do_not_fit_the_components():
    """numpy's broadcasting error for three means of two components, and inf for a std of 0 (trial 100)."""
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert anomaly.standardised_sum(values, [1.0, 2.0], [2.0, 1.0]).tolist() == [0.0, 3.0]
    for mean, std in (
        ([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]),
        ([1.0, 2.0], [1.0, 0.0]),
        ([1.0], [1.0]),
        ([0.0, 0.0], ["1", "1"]),  # text taken as numbers, NaN or inf kept (trial 103)
        ([0.0, np.nan], [1.0, 1.0]),
        ([0.0, 0.0], [1.0, np.inf]),
    ):
        with pytest.raises(ValueError, match=r"^standardised_sum takes N×K values and K means and stds"):
            anomaly.standardised_sum(values, mean, std)
    with pytest.raises(ValueError, match=r"^standardised_sum takes"):
        anomaly.standardised_sum(np.ones((3, 0)), [], [])


def test_the_calibration_sizes_are_read_only_from_a_whole_record():
    spec = anomaly.AnomalySpec(("smax",), (0.1,), (0.01,))
    assert spec.calibration_pixels is None  # a file calibrated before they were recorded: no size note
    for pixels, read in (([784, 4096], (784, 4096)), ([0, 3], None), ([5, 3], None), ([1.5, 3], None), (7, None)):
        assert (
            anomaly.AnomalySpec(("smax",), (0.1,), (0.01,), calibration={"pixels": pixels}).calibration_pixels == read
        )


def test_a_threshold_that_is_no_number_is_refused_not_every_image_normal():
    for threshold in (float("nan"), float("inf"), "0.5", None):
        with pytest.raises(ValueError, match=r"^threshold must be a finite number"):
            anomaly.rates(np.array([0.1, 0.9]), np.array([False, True]), threshold)  # type: ignore[arg-type]
    at = anomaly.rates(np.array([0.1, 0.9]), np.array([False, True]), np.float32(0.5))
    assert at.true_positives == 1 and type(at.threshold) is float  # a float32 broke the record's JSON (trial 100)
    assert anomaly.rates(np.array([0.1, 0.9]), np.array([False, True]), np.array(0.5)).true_positives == 1
    with pytest.raises(ValueError, match="too wide to bin"):  # numpy 1.24: an IndexError (trial 92)
        anomaly.distribution(np.array([-1e308, 1e308]))


def test_rates_at_a_threshold_count_scores_above_it_as_anomalous():
    scores = np.array([0.1, 0.5, 0.9, 0.2, 0.7, 0.5])
    is_anomaly = np.array([False, False, True, True, True, False])
    at = anomaly.rates(scores, is_anomaly, 0.5)  # flagged: 0.9, 0.7 (0.5 itself is not above)
    assert (at.true_positives, at.false_positives, at.true_negatives, at.false_negatives) == (2, 0, 3, 1)
    assert at.precision == 1.0 and at.recall == pytest.approx(2 / 3) and at.fpr == 0.0
    assert at.f1 == pytest.approx(sklearn_metrics.f1_score(is_anomaly, scores > 0.5))
    nothing = anomaly.rates(scores, is_anomaly, 1.0)
    assert nothing.precision is None and nothing.f1 == 0.0 and nothing.recall == 0.0
    assert json.loads(json.dumps(at.to_dict()))["fpr"] == 0.0


def test_rates_with_false_positives_match_scikit_learn():
    """The test above has no false positive, so any formula for the FPR and F1 passed it (trial 81)."""
    scores = np.array([0.1, 0.5, 0.9, 0.2, 0.7, 0.6, 0.05])
    is_anomaly = np.array([False, False, True, True, True, False, True])
    at = anomaly.rates(scores, is_anomaly, 0.5)
    tn, fp, fn, tp = sklearn_metrics.confusion_matrix(is_anomaly, scores > 0.5).ravel()
    assert (at.true_positives, at.false_positives, at.true_negatives, at.false_negatives) == (tp, fp, tn, fn)
    assert at.fpr == pytest.approx(fp / (fp + tn)) == pytest.approx(1 / 3)
    assert at.f1 == pytest.approx(sklearn_metrics.f1_score(is_anomaly, scores > 0.5)) == pytest.approx(4 / 7)


def test_scores_closer_than_float32_resolves_stay_apart():
    """1000 + 1e-5·k are one float32 value: scores cast to it would tie and give AUROC 0.5 (trial 81)."""
    scores, is_anomaly = 1000 + 1e-5 * np.arange(10), np.arange(10) >= 5
    assert anomaly.auroc(scores, is_anomaly) == sklearn_metrics.roc_auc_score(is_anomaly, scores) == 1.0
    assert anomaly.average_precision(scores, is_anomaly) == 1.0
    assert sklearn_metrics.average_precision_score(is_anomaly, scores) == 1.0


def test_the_smoothed_map_is_scipys_gaussian_filter_with_zero_padding():
    maps = np.random.default_rng(0).random((3, 1, 9, 13))
    expected = np.stack([[ndimage.gaussian_filter(m[0], sigma=1.0, truncate=2.0, mode="constant")] for m in maps])
    np.testing.assert_allclose(anomaly.smooth(maps), expected, atol=1e-12)


def test_smax_sees_a_defect_in_the_corner():
    """A one-pixel error at (0, 0): the smoothed map's maximum is SciPy's with zero padding (trial 81: a map that
    left out a border passed every test)."""
    images = np.zeros((1, 1, 16, 16), np.float32)
    outputs = images.copy()
    outputs[..., 0, 0] = 1
    errors = np.square(outputs - images)[0, 0].astype(np.float64)
    expected = ndimage.gaussian_filter(errors, sigma=1.0, truncate=2.0, mode="constant").max()
    assert anomaly.components(images, outputs, ("smax",))[0, 0] == pytest.approx(expected, rel=1e-12)


def test_components_against_references():
    rng = np.random.default_rng(1)
    images = rng.random((4, 3, 16, 20)).astype(np.float32)
    outputs = np.clip(images + rng.normal(0, 0.1, images.shape), 0, 1).astype(np.float32)
    weights = rng.uniform(1, 50, (1, 16, 20)).astype(np.float32)
    values = anomaly.components(images, outputs, ("mse", "ssim", "smax", "wmse"), weights=weights)
    errors = np.square(images.astype(np.float64) - outputs).mean(axis=1)  # N×H×W, channels averaged
    ssim = [
        skimage_metrics.structural_similarity(
            o, i, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
        )
        for o, i in zip(outputs.astype(np.float64), images.astype(np.float64), strict=True)
    ]
    smax = [ndimage.gaussian_filter(e, sigma=1.0, truncate=2.0, mode="constant").max() for e in errors]
    np.testing.assert_allclose(values[:, 0], errors.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(values[:, 1], 1 - np.array(ssim), atol=1e-7)
    np.testing.assert_allclose(values[:, 2], smax, rtol=1e-12)
    np.testing.assert_allclose(values[:, 3], (errors * weights[0]).mean(axis=(1, 2)), rtol=1e-12)
    z = anomaly.standardised_sum(values[:, :2], (1.0, 2.0), (0.5, 4.0))
    np.testing.assert_allclose(z, (values[:, 0] - 1) / 0.5 + (values[:, 1] - 2) / 4)


def test_components_refuse_what_they_cannot_compute():
    images = np.zeros((1, 1, 16, 16), np.float32)
    for weights in (None, np.ones((1, 1, 1), np.float32), np.ones((1, 8, 8), np.float32)):
        with pytest.raises(ValueError, match="wmse needs weights"):
            anomaly.components(images, images, ("wmse",), weights=weights)
    with pytest.raises(ValueError, match="unknown score component"):
        anomaly.components(images, images, ("psnr",))
    with pytest.raises(ValueError, match="11×11"):
        anomaly.components(images[..., :8, :8], images[..., :8, :8], ("ssim",))
    # trial 100: one name as text was read letter by letter ("unknown score component 'm'"), none was numpy's
    # "need at least one array to stack", and 8-bit pixels were scored on the 0–255 scale by mse, smax and wmse
    for names in ("mse", (), b"mse"):  # bytes were read byte by byte too (trial 103)
        with pytest.raises(ValueError, match=r"^names takes a sequence of score components \(mse, "):
            anomaly.components(images, images, names)
    assert anomaly.components(images, images, np.array(["mse", "smax"])).shape == (1, 2)  # numpy's truth value
    eight_bit = np.full((1, 1, 16, 16), 200, np.uint8)
    for score in (
        lambda: anomaly.components(eight_bit, eight_bit, ("mse", "smax")),
        lambda: anomaly.anomaly_map(eight_bit, images),
    ):
        with pytest.raises(
            ValueError, match=r"^expected float (images|outputs) in \[0, 1\], got uint8 values; for 8-bit"
        ):
            score()


def test_parse_score_names_the_components():
    assert anomaly.parse_score("ssim+smax") == ("ssim", "smax")
    for text in ("psnr", "ssim+ssim", ""):
        with pytest.raises(ValueError, match="joined by"):
            anomaly.parse_score(text)


def test_parse_classes_reads_the_command_lines_labels():
    assert anomaly.parse_classes("1, 7") == ("1", "7") and anomaly.parse_classes(None) is None
    assert anomaly.parse_classes("10") == ("10",) and anomaly.parse_classes([1, "7"]) == ("1", "7")
    # 3 was refused by "takes … (3 or 3,5) … got 3", and an array of labels too (trial 88)
    assert anomaly.parse_classes(3) == ("3",) and anomaly.parse_classes(np.array([3, 5])) == ("3", "5")


@pytest.mark.parametrize("classes", ["3,3", [3, 3], "3,,5", "", [], [True], (1, False), {3, 5}, True, [1.0], 1.0])
def test_parse_classes_refuses_labels_repeated_empty_or_of_another_kind(classes):
    with pytest.raises(ValueError, match="--classes takes labels separated by commas, each once"):
        anomaly.parse_classes(classes)


def calibration_options():
    pytest.importorskip("torch", reason="calibration needs the train extra")
    from aetool.export.detector import CalibrationOptions

    return CalibrationOptions


def test_calibration_options_read_a_score_as_the_command_line_spells_it():
    options = calibration_options()
    assert options(score="ssim+smax+wmse").score == ("ssim", "smax", "wmse")
    assert options(score=["mse", "ssim"]).score == ("mse", "ssim") and options().score is None
    assert options(fpr=np.float32(0.25)).rule == {"fpr": 0.25} and type(options(quantile=0.5).quantile) is float


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"score": ("bogus",)}, r"--score: a score is one or more of .* joined by \+ \(each once\), got 'bogus'"),
        ({"score": ("ssim", "ssim")}, r"\(each once\), got 'ssim\+ssim'"),
        ({"score": "ssim+psnr"}, r"got 'ssim\+psnr'"),
        ({"score": ()}, "got ''"),
        ({"score": ("ssim", 3)}, r"--score takes components joined by \+ \(ssim\+smax\) or a tuple of them"),
        ({"score": ("ssim+smax",)}, "--score takes components"),
        ({"fpr": "0.01"}, "--fpr must be a number, got '0.01'"),
        ({"quantile": "0.99"}, "--quantile must be a number"),
        ({"fpr": True}, "--fpr must be a number, got True"),
        ({"quantile": 1.0}, "fractions between 0 and 1"),
        ({"atol": "1e-5"}, "--atol must be a number"),
        ({"atol": None}, "--atol must be a number, got None"),
        ({"data": 3}, r"^--data takes a folder or a glob \(text or a Path\), got 3$"),  # taken until trial 100
        ({"target": "fast"}, "unknown export target 'fast'"),
    ],
)
def test_calibration_options_refuse_what_cannot_calibrate_before_any_work(settings, message):
    with pytest.raises(ValueError, match=message):
        calibration_options()(**settings)


def test_the_threshold_lets_at_most_the_asked_share_of_calibration_scores_above_it():
    scores = np.random.default_rng(2).normal(size=10_000)
    threshold = anomaly.threshold_for(scores, fpr=0.05)
    assert threshold == np.sort(scores)[9500]  # the ⌈10,001 · 0.95⌉ = 9,501st smallest
    assert (scores > threshold).mean() == 0.0499
    # (999 + 1)(1 − 0.059) is 941 exactly but 941.0000000000001 in float64: the 941st smallest, not the 942nd
    assert anomaly.threshold_for(np.arange(999.0), fpr=0.059) == 940.0
    assert anomaly.threshold_for(scores, quantile=0.95) == np.quantile(scores, 0.95)
    assert anomaly.threshold_for(scores[:5], fpr=0.01) == scores[:5].max()  # too few for the rule: the largest
    record = anomaly.distribution(scores, threshold=threshold)
    assert record["images"] == 10_000 and sum(record["histogram"]["counts"]) == 10_000
    assert record["fpr"] == 0.0499
    for bad in ({"fpr": 0.0}, {"quantile": 1.0}, {"fpr": 0.1, "quantile": 0.9}, {}, {"fpr": "0.1"}):
        with pytest.raises(ValueError):
            anomaly.threshold_for(scores, **bad)
    # a NaN score gave a NaN threshold; a scalar or a matrix were numpy's TypeError, no scores an IndexError
    for bad_scores, message in (
        ([np.nan, 0.2, 0.3], "finite"),
        (0.3, "shape \\(\\)"),
        (np.zeros((2, 2)), "shape"),
        ([], "shape"),
    ):
        with pytest.raises(ValueError, match=f"^scores must be .*{message}"):
            anomaly.threshold_for(bad_scores, fpr=0.1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=f"^scores must be .*{message}"):
            anomaly.distribution(bad_scores)  # type: ignore[arg-type]


def test_the_fpr_rule_holds_the_false_positive_rate_on_new_normal_images():
    # Uniform scores: a new image exceeds a threshold t with probability 1 − t, so the rate is exact, not sampled.
    # 99 calibration images at fpr 0.1: the 90th smallest, expected rate 1 − 90/100 = 0.1; the linear 0.9 quantile
    # (position 88.2 of 99) lets 0.108 through.
    trials = np.random.default_rng(3).random((20_000, 99))
    conformal = 1 - np.array([anomaly.threshold_for(row, fpr=0.1) for row in trials])
    linear = 1 - np.quantile(trials, 0.9, axis=1)
    assert conformal.mean() == pytest.approx(0.1, abs=1e-3) and linear.mean() > 0.105


def spec_record(**changes):
    spec = anomaly.AnomalySpec(("ssim", "smax"), (0.1, 0.2), (0.01, 0.02), 3.5, {"fpr": 0.01}, ("3",), 0.4)
    return {**json.loads(json.dumps(spec.to_record())), **changes}


def test_a_spec_survives_its_json_record():
    record = spec_record()
    assert record["score"] == "ssim+smax" and record["smoothing_sigma"] == anomaly.SMOOTH_SIGMA
    spec = anomaly.AnomalySpec.from_record(record)
    assert spec.components == ("ssim", "smax") and spec.threshold == 3.5 and spec.classes == ("3",)
    assert anomaly.AnomalySpec.from_record(spec_record(threshold=None, rule=None)).threshold is None


def test_a_specs_perfect_score_scale_and_low_fence():
    """Held by the torch-side detector tests only before (trial 81): the numbers from their definitions."""
    quartiles = {"0.25": 1.0, "0.5": 2.0, "0.75": 3.0}
    spec = anomaly.AnomalySpec(("ssim", "smax"), (0.1, 2.0), (0.01, 0.5), calibration={"quantiles": quartiles})
    assert spec.perfect_score == pytest.approx(-0.1 / 0.01 - 2.0 / 0.5)  # every component's error 0: −mean / std
    assert spec.score_scale == pytest.approx(1 / 0.01 + 2.0 / 0.5)  # Σ max(1, |mean|) / std
    assert spec.low_fence == pytest.approx(1.0 - 1.5 * (3.0 - 1.0))  # Tukey: Q1 − 1.5 × (Q3 − Q1)
    assert anomaly.AnomalySpec(("mse",), (0.1,), (0.01,)).low_fence is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"components": ["psnr"]}, "'components'"),
        ({"mean": [0.1]}, "'mean' must be 2 finite numbers"),
        ({"std": [0.0, 1.0]}, "'std' must be positive"),
        ({"threshold": "high"}, "'threshold'"),
        ({"rule": {"fpr": 2}}, "'rule'"),
        ({"classes": [3]}, "'classes'"),
        ({"map_scale": -1}, "'map_scale'"),
        ({"map_scale": 0}, "'map_scale'"),
        ({"threshold": True}, "'threshold'"),
        ({"mean": [True, 0.1]}, "'mean' must be 2 finite numbers"),
        ({"rule": {"fpr": 0.01, "quantile": 0.5}}, "'rule'"),
        ({"rule": {"bogus": 0.5}}, "'rule'"),
    ],
)
def test_a_broken_spec_record_says_what_is_wrong(changes, message):
    with pytest.raises(ValueError, match=message):
        anomaly.AnomalySpec.from_record(spec_record(**changes))
    with pytest.raises(ValueError, match="JSON object"):
        anomaly.AnomalySpec.from_record("{not json")
