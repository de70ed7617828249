"""Thresholds come from held-out normal images only and flag the intended share of normals."""

import numpy as np
import pytest
from scipy import stats

from transfusion_ad.core.thresholds import (
    calibrate_thresholds,
    calibration_record,
    frr_upper_bound,
    override_thresholds,
)


def test_quantiles_of_image_scores_and_pixels():
    scores = np.arange(101, dtype=np.float64)  # 0..100
    maps = np.arange(4 * 5 * 5, dtype=np.float32).reshape(4, 5, 5)[::-1]  # 0..99, any order
    thresholds = calibrate_thresholds(scores[:4], maps, quantile=0.5)
    assert thresholds == {"image": 1.5, "pixel": 49.5}
    thresholds = calibrate_thresholds(np.resize(scores, 4), maps, quantile=1.0, pixel_quantile=0.0)
    assert thresholds == {"image": 3.0, "pixel": 0.0}


def test_calibrated_thresholds_flag_the_requested_share_of_new_normal_images():
    rng = np.random.default_rng(0)
    held_out_maps = rng.gamma(2.0, size=(400, 8, 8)).astype(np.float32)
    held_out_scores = held_out_maps.max(axis=(1, 2))
    thresholds = calibrate_thresholds(held_out_scores, held_out_maps, quantile=0.95)
    new_maps = rng.gamma(2.0, size=(4000, 8, 8)).astype(np.float32)
    image_false_alarms = np.mean(new_maps.max(axis=(1, 2)) >= thresholds["image"])
    pixel_false_alarms = np.mean(new_maps >= thresholds["pixel"])
    assert image_false_alarms == pytest.approx(0.05, abs=0.015)
    assert pixel_false_alarms == pytest.approx(0.05, abs=0.005)
    assert thresholds["pixel"] < thresholds["image"]


def test_bad_input_is_rejected():
    maps = np.ones((3, 4, 4), np.float32)
    scores = np.ones(3)
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\], got 1.5"):
        calibrate_thresholds(scores, maps, quantile=1.5)
    with pytest.raises(ValueError, match=r"pixel_quantile must be in \[0, 1\], got -0.1"):
        calibrate_thresholds(scores, maps, pixel_quantile=-0.1)
    with pytest.raises(ValueError, match="image threshold: no held-out normal image score"):
        calibrate_thresholds([], maps)
    broken = maps.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="pixel threshold: 1 score.*NaN or inf"):
        calibrate_thresholds(scores, broken)
    with pytest.raises(ValueError, match=r"same held-out normal images, got shapes \(2,\)"):
        calibrate_thresholds(scores[:2], maps)


def test_the_false_reject_bound_is_clopper_pearson():
    # No reject seen among n: the one-sided bound has the closed form 1 - alpha^(1/n).
    for n in (6, 10, 100):
        assert frr_upper_bound(n, 0) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
    assert frr_upper_bound(10, 10) == 1.0
    # The definition: at the bound, seeing <= k rejects has probability alpha = 5 %.
    assert stats.binom.cdf(10, 1000, frr_upper_bound(1000, 10)) == pytest.approx(0.05, abs=1e-9)
    assert frr_upper_bound(100, 1) > frr_upper_bound(1000, 10)  # same rate, more evidence
    with pytest.raises(ValueError, match="0 <= above <= images"):
        frr_upper_bound(5, 6)


def test_a_calibration_record_counts_the_good_images_at_or_above_the_threshold():
    record = calibration_record(np.array([0.1, 0.2, 0.3, 0.4]), 0.3, "holdout")
    assert record["good_images"] == 4 and record["at_or_above_threshold"] == 2
    assert record["false_reject_rate"] == 0.5 and record["source"] == "holdout"
    assert 0.5 < record["false_reject_rate_upper_95"] < 1.0


def test_a_threshold_given_for_one_run_records_what_it_replaced():
    calibrated = {"image": 0.3, "pixel": 0.4, "model": {"weights_digest": "x"}}
    used = override_thresholds(calibrated, image=0.5)
    assert used["image"] == 0.5 and used["pixel"] == 0.4 and used["model"] == calibrated["model"]
    assert used["overridden"] == {"image": {"calibrated": 0.3, "used": 0.5}}
    assert override_thresholds(calibrated)["overridden"] == {}
    with pytest.raises(ValueError, match="thresholds.pixel must be a finite number"):
        override_thresholds(calibrated, pixel=float("nan"))
