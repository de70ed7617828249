"""Decision thresholds calibrated on held-out normal training images only.

Why: a threshold tuned on the labelled test set (e.g. the F1-optimal one) leaks test data and
overstates what a deployed model achieves. Here the image threshold is a quantile of the image
scores, and the pixel threshold a quantile of all pixel scores, of normal images held out from
training; no test image is involved. The test-set F1-optimal threshold is reported apart, as
metrics.OPTIMISTIC_THRESHOLD_KEY.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats


def _check_scores(values, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError(
            f"cannot calibrate the {what} threshold: no held-out normal {what} score was given"
        )
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(f"cannot calibrate the {what} threshold: scores of dtype {values.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(f"cannot calibrate the {what} threshold: {bad} score(s) are NaN or inf")
    return values


def _check_quantile(quantile: float, name: str) -> float:
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {quantile}")
    return float(quantile)


def calibrate_thresholds(
    normal_image_scores,
    normal_maps,
    quantile: float = 0.99,
    pixel_quantile: float | None = None,
) -> dict[str, float]:
    """Image and pixel thresholds from held-out normal training images.

    normal_image_scores: (M,) image scores; normal_maps: (M, H, W) anomaly maps of the same
    images. A score >= threshold is called anomalous. quantile applies to the image scores and,
    unless pixel_quantile is given, to the pixels. Returns {"image": float, "pixel": float}.
    """
    quantile = _check_quantile(quantile, "quantile")
    pixel_quantile = _check_quantile(
        quantile if pixel_quantile is None else pixel_quantile, "pixel_quantile"
    )
    scores = _check_scores(normal_image_scores, "image")
    maps = _check_scores(normal_maps, "pixel")
    if scores.ndim != 1 or maps.ndim != 3 or len(maps) != len(scores):
        raise ValueError(
            "calibrate_thresholds needs image scores (M,) and maps (M, H, W) of the same held-out "
            f"normal images, got shapes {scores.shape} and {maps.shape}"
        )
    return {
        "image": float(np.quantile(scores, quantile)),
        "pixel": float(np.quantile(maps, pixel_quantile)),
    }


def override_thresholds(
    calibrated: Mapping[str, Any], image: float | None = None, pixel: float | None = None
) -> dict[str, Any]:
    """The thresholds to decide with: the calibrated ones, with ``image`` and/or ``pixel``
    replaced for this run. The result records what was replaced and the calibrated values under
    ``overridden`` ({} when nothing was), so every output can say which threshold it used."""
    thresholds = dict(calibrated)
    overridden: dict[str, Any] = {}
    for key, value in (("image", image), ("pixel", pixel)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ValueError(f"thresholds.{key} must be a finite number or null, got {value!r}.")
        overridden[key] = {"calibrated": calibrated.get(key), "used": float(value)}
        thresholds[key] = float(value)
    thresholds["overridden"] = overridden
    return thresholds


def frr_upper_bound(images: int, above: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper confidence bound of a false-reject rate from ``above``
    of ``images`` good images scoring at or above the threshold: what the threshold promises on
    new good parts, with the uncertainty of having seen only ``images`` of them."""
    if images < 1 or not 0 <= above <= images:
        raise ValueError(f"need 0 <= above <= images and images >= 1, got {above} of {images}")
    if above == images:
        return 1.0
    return float(stats.beta.ppf(confidence, above + 1, images - above))


def calibration_record(good_scores, image_threshold: float, source: str) -> dict[str, Any]:
    """What an image threshold rests on: how many good images, how many of them at or above
    it, and the false-reject rate that implies (observed and its 95 % upper bound)."""
    scores = _check_scores(good_scores, "image")
    above = int(np.count_nonzero(scores >= image_threshold))
    return {
        "source": source,
        "good_images": int(scores.size),
        "at_or_above_threshold": above,
        "false_reject_rate": above / scores.size,
        "false_reject_rate_upper_95": frr_upper_bound(int(scores.size), above),
    }
