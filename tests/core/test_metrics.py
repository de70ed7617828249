"""Metrics: hand-computed cases, the official AUPRO algorithm, scikit-learn agreement, bad input."""

from bisect import bisect_right

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from transfusion_ad.core import metrics
from transfusion_ad.core.metrics import (
    IMAGE_METRICS,
    METRIC_NAMES,
    OPTIMISTIC_THRESHOLD_KEY,
    PIXEL_METRICS,
    aupro,
    compute_all,
    compute_available,
    f1_max,
    f1_optimal_threshold,
    image_ap,
    image_auroc,
    not_computable,
    pixel_ap,
    pixel_auroc,
)


def reference_aupro(maps, masks, fpr_limit=0.3):
    """Slow, literal transcription of the official MVTec AD algorithm (spec §8.1)."""
    scores, normal, weights, num_regions = [], [], [], 0
    for score_map, mask in zip(maps, masks, strict=True):
        labeled, count = ndimage.label(mask, structure=np.ones((3, 3)))
        num_regions += count
        weight = np.zeros(mask.shape)
        for region in range(1, count + 1):
            inside = labeled == region
            weight[inside] = 1.0 / inside.sum()
        scores.append(np.asarray(score_map, dtype=np.float64).ravel())
        normal.append((labeled == 0).ravel())
        weights.append(weight.ravel())
    scores, normal, weights = map(np.concatenate, (scores, normal, weights))
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    fpr = np.cumsum(normal[order]) / normal.sum()
    pro = np.cumsum(weights[order]) / num_regions
    keep = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    x = np.concatenate(([0.0], fpr[keep], [1.0]))
    y = np.concatenate(([0.0], np.minimum(pro[keep], 1.0), [1.0]))
    correction = 0.0
    if fpr_limit not in x:
        ins = bisect_right(x.tolist(), fpr_limit)
        y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (fpr_limit - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_at + y[ins - 1]) * (fpr_limit - x[ins - 1])
    inside = x <= fpr_limit
    x, y = x[inside], y[inside]
    return (np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)) + correction) / fpr_limit


def random_case(rng, num=5, height=9, width=8, levels=6, defect_rate=0.25):
    """Quantised maps (many ties, negative values included) and blobby masks, one clean image."""
    maps = (rng.integers(-levels, levels, (num, height, width)) / 4).astype(np.float32)
    masks = ndimage.binary_dilation(rng.random((num, height, width)) < defect_rate / 4, [[[1] * 2]])
    masks[0] = False
    return maps, masks


def test_diagonal_touch_is_one_region_under_8_connectivity():
    # (0,0) touches (1,1) only diagonally: one region of 3 pixels, of which only (0,0) scores high.
    mask = np.array([[[1, 0, 0], [0, 1, 1], [0, 0, 0]]], dtype=bool)
    score = np.zeros((1, 3, 3), np.float32)
    score[0, 0, 0] = 1.0
    # Curve (0,0) -> (0,1/3) -> (1,1); at FPR 0.3 the PRO is 1/3 + 0.3*2/3 = 8/15.
    assert aupro(score, mask) == pytest.approx((1 / 3 + 8 / 15) / 2, abs=1e-12)
    assert aupro(score, mask, fpr_limit=1.0) == pytest.approx(2 / 3, abs=1e-12)


def test_one_pixel_region_tied_scores_and_defect_free_image():
    maps = np.array([[[0.5, 0.9], [0.2, 0.1]], [[0.5, 0.2], [0.1, 0.1]]], np.float32)
    masks = np.zeros((2, 2, 2), bool)
    masks[0, 0, 0] = True  # a one-pixel region; image 1 has no defect
    # Points (0,0), (1/7,0), (2/7,1) [the 0.5 tie is one diagonal step], (4/7,1), (1,1):
    # area to 0.3 = 1/14 + (0.3 - 2/7) = 3/35, divided by 0.3 = 2/7.
    assert aupro(maps, masks) == pytest.approx(2 / 7, abs=1e-12)
    # The defect pixel beats 5 of 7 normal pixels and ties with 1.
    assert pixel_auroc(maps, masks) == pytest.approx(5.5 / 7, abs=1e-15)
    # One defect pixel, reached together with two normal pixels: precision 1/3.
    assert pixel_ap(maps, masks) == pytest.approx(1 / 3, abs=1e-15)


def test_perfect_and_constant_maps():
    rng = np.random.default_rng(1)
    _, masks = random_case(rng)
    perfect = masks.astype(np.float32) + rng.random(masks.shape, dtype=np.float32) * 0.5
    assert aupro(perfect, masks) == pytest.approx(1.0, abs=1e-12)
    assert pixel_auroc(perfect, masks) == 1.0
    assert pixel_ap(perfect, masks) == pytest.approx(1.0, abs=1e-15)
    constant = np.full(masks.shape, 0.25, np.float32)
    assert pixel_auroc(constant, masks) == 0.5
    assert pixel_ap(constant, masks) == pytest.approx(masks.mean(), abs=1e-15)
    # Constant map: the curve is the diagonal (0,0) -> (1,1), area to 0.3 is 0.045.
    assert aupro(constant, masks) == pytest.approx(0.15, abs=1e-12)
    assert image_auroc(np.ones(4), [0, 1, 0, 1]) == 0.5


def test_monotone_transform_invariance():
    rng = np.random.default_rng(2)
    maps, masks = random_case(rng)
    transformed = (np.exp(3 * maps.astype(np.float64)) - 7).astype(np.float32)
    assert aupro(transformed, masks) == aupro(maps, masks)
    assert pixel_auroc(transformed, masks) == pixel_auroc(maps, masks)
    assert pixel_ap(transformed, masks) == pixel_ap(maps, masks)
    scores, labels = maps.max(axis=(1, 2)), masks.any(axis=(1, 2))
    labels[1] = False
    assert image_auroc(np.exp(scores), labels) == image_auroc(scores, labels)


@pytest.mark.parametrize("chunk", [3, 64, 1 << 22])
@pytest.mark.parametrize("seed", range(4))
def test_pixel_metrics_match_references(monkeypatch, chunk, seed):
    # Tiny chunks make runs of tied scores straddle chunk boundaries.
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    rng = np.random.default_rng(seed)
    maps, masks = random_case(rng, levels=3 + seed)
    flat_maps, flat_masks = maps.ravel(), masks.ravel()
    assert pixel_auroc(maps, masks) == pytest.approx(
        roc_auc_score(flat_masks, flat_maps), abs=1e-12
    )
    expected_ap = average_precision_score(flat_masks, flat_maps)
    assert pixel_ap(maps, masks) == pytest.approx(expected_ap, abs=1e-12)
    for limit in (0.3, 0.05, 0.5, 1.0):
        expected = reference_aupro(maps, masks, limit)
        assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)


def test_aupro_matches_reference_on_continuous_scores():
    rng = np.random.default_rng(7)
    maps, masks = random_case(rng, num=6, height=16, width=12)
    maps = ndimage.uniform_filter(rng.random(maps.shape), size=(1, 3, 3)) + masks * 0.05
    assert aupro(maps.astype(np.float32), masks) == pytest.approx(
        reference_aupro(maps.astype(np.float32), masks), abs=1e-12
    )


def test_images_of_different_sizes_as_sequences():
    rng = np.random.default_rng(3)
    maps_a, masks_a = random_case(rng, num=2, height=5, width=7)
    maps_b, masks_b = random_case(rng, num=2, height=6, width=4)
    maps = [maps_a[1], maps_b[0], maps_b[1]]
    masks = [masks_a[1], masks_b[0], masks_b[1]]
    flat_maps = np.concatenate([m.ravel() for m in maps])
    flat_masks = np.concatenate([m.ravel() for m in masks])
    assert pixel_auroc(maps, masks) == pytest.approx(
        roc_auc_score(flat_masks, flat_maps), abs=1e-12
    )
    assert aupro(maps, masks) == pytest.approx(reference_aupro(maps, masks), abs=1e-12)


def test_signed_zero_is_one_score_and_float64_is_ranked_in_float32():
    masks = np.array([[[True, False], [False, True]]])
    maps = np.array([[[0.0, -0.0], [-1.0, -0.0]]], np.float32)
    assert pixel_auroc(maps, masks) == roc_auc_score(masks.ravel(), maps.ravel())
    rng = np.random.default_rng(4)
    maps64, masks64 = random_case(rng)
    assert aupro(maps64.astype(np.float64), masks64) == aupro(maps64, masks64)


def test_image_metrics_match_sklearn_and_brute_force_f1():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 8, 40) / 8.0
    labels = rng.random(40) < 0.4
    assert image_auroc(scores, labels) == roc_auc_score(labels, scores)
    assert image_ap(scores, labels) == average_precision_score(labels, scores)
    brute = []
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        tp = np.sum(predicted & labels)
        brute.append(2 * tp / (predicted.sum() + labels.sum()))
    best, threshold = f1_optimal_threshold(scores, labels)
    assert best == pytest.approx(max(brute), abs=1e-12)
    assert f1_max(scores, labels) == best
    predicted = scores >= threshold
    assert 2 * np.sum(predicted & labels) / (predicted.sum() + labels.sum()) == pytest.approx(best)


def test_compute_all_agrees_with_single_metrics():
    rng = np.random.default_rng(6)
    maps, masks = random_case(rng)
    scores = maps.max(axis=(1, 2)) + rng.random(len(maps)) * 0.1
    labels = masks.any(axis=(1, 2))
    results = compute_all(scores, labels, maps, masks)
    assert list(results) == [*METRIC_NAMES, OPTIMISTIC_THRESHOLD_KEY]
    assert results["aupro"] == aupro(maps, masks)
    assert results["pixel_auroc"] == pixel_auroc(maps, masks)
    assert results["pixel_ap"] == pixel_ap(maps, masks)
    assert results["image_auroc"] == image_auroc(scores, labels)
    assert results["image_ap"] == image_ap(scores, labels)
    assert (results["f1_max"], results[OPTIMISTIC_THRESHOLD_KEY]) == f1_optimal_threshold(
        scores, labels
    )
    assert all(isinstance(value, float) for value in results.values())


def good_pixels():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 1:3, 1:3] = True
    return np.random.default_rng(0).random((2, 4, 4)).astype(np.float32), masks


@pytest.mark.parametrize("metric", [pixel_auroc, pixel_ap, aupro])
def test_pixel_metrics_reject_bad_input(metric):
    maps, masks = good_pixels()
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*\(2, 4, 4\).*\(2, 4, 5\)"):
        metric(maps, np.zeros((2, 4, 5), bool))
    for bad in (np.nan, np.inf, -np.inf):
        broken = maps.copy()
        broken[1, 0, 0] = bad
        with pytest.raises(ValueError, match=rf"{name} cannot be computed: map 1 contains 1 NaN"):
            metric(broken, masks)
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no defect pixel"):
        metric(maps, np.zeros_like(masks))
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no defect-free pixel"):
        metric(maps, np.ones_like(masks))
    with pytest.raises(ValueError, match=r"masks must be bool.*masks > 0"):
        metric(maps, masks.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match=r"map 1 has shape \(4, 4\) but its mask has shape"):
        metric(list(maps), [masks[0], masks[1, :3]])
    with pytest.raises(ValueError, match="2 maps but 1 masks"):
        metric(list(maps), [masks[0]])
    with pytest.raises(ValueError, match="no maps"):
        metric(maps[:0], masks[:0])


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5])
def test_aupro_rejects_bad_fpr_limit(limit):
    maps, masks = good_pixels()
    with pytest.raises(
        ValueError, match=r"aupro cannot be computed: fpr_limit must be in \(0, 1\]"
    ):
        aupro(maps, masks, fpr_limit=limit)


@pytest.mark.parametrize("metric", [image_auroc, image_ap, f1_max])
def test_image_metrics_reject_bad_input(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no anomalous image"):
        metric([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no normal image"):
        metric([0.1, 0.2, 0.3], [True, True, True])
    with pytest.raises(ValueError, match=r"shape \(3,\) and labels have shape \(2,\)"):
        metric([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="1 image score.*NaN or inf"):
        metric([0.1, np.nan, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="labels must be bool or 0/1"):
        metric([0.1, 0.2, 0.3], [0, 2, 1])


def test_compute_all_rejects_image_count_mismatch():
    maps, masks = good_pixels()
    with pytest.raises(ValueError, match="compute_all cannot be computed: 3 image scores but 2"):
        compute_all([0.1, 0.2, 0.3], [0, 1, 0], maps, masks)


def reference_curve_at(x_points, y_points, grid):
    """The piecewise-linear curve through the points, read at grid: the top of a vertical jump
    at its own x, else the segment from the top of the left jump to the bottom of the right one."""
    values = []
    for x in grid:
        j = np.searchsorted(x_points, x, side="right") - 1
        if x_points[j] == x or j + 1 == len(x_points):
            values.append(y_points[j])
        else:
            slope = (y_points[j + 1] - y_points[j]) / (x_points[j + 1] - x_points[j])
            values.append(y_points[j] + slope * (x - x_points[j]))
    return np.array(values)


def reference_points(maps, masks, by_region):
    """Official curve points, one per distinct score from the top: (FPR, TPR or PRO)."""
    scores, normal, weights, num_regions = [], [], [], 0
    for score_map, mask in zip(maps, masks, strict=True):
        labeled, count = ndimage.label(mask, structure=np.ones((3, 3)))
        weight = np.zeros(mask.shape)
        for region in range(1, count + 1):
            weight[labeled == region] = 1.0 / (labeled == region).sum()
        num_regions += count
        scores.append(score_map.astype(np.float64).ravel())
        normal.append(~mask.ravel())
        weights.append(weight.ravel() if by_region else mask.ravel().astype(np.float64))
    scores, normal, weights = map(np.concatenate, (scores, normal, weights))
    order = np.argsort(-scores, kind="stable")
    keep = np.append(scores[order][1:] != scores[order][:-1], True)
    fpr = np.cumsum(normal[order]) / normal.sum()
    total = num_regions if by_region else weights.sum()
    y = np.minimum(np.cumsum(weights[order]) / total, 1.0)
    return np.concatenate(([0.0], fpr[keep])), np.concatenate(([0.0], y[keep]))


@pytest.mark.parametrize("chunk", [5, 1 << 22])
@pytest.mark.parametrize("seed", range(3))
def test_curves_match_the_official_points(monkeypatch, chunk, seed):
    # Quantised maps: many ties and vertical jumps; tiny chunks split runs across chunks.
    monkeypatch.setattr(metrics, "_CHUNK", chunk)
    maps, masks = random_case(np.random.default_rng(seed), levels=3 + seed)
    x, y = reference_points(maps, masks, by_region=False)
    fpr, tpr = metrics.pixel_roc_curve(maps, masks, num_points=97)
    np.testing.assert_allclose(fpr, np.linspace(0, 1, 97))
    np.testing.assert_allclose(tpr, reference_curve_at(x, y, fpr), atol=1e-12)
    x, y = reference_points(maps, masks, by_region=True)
    fpr, pro = metrics.pro_curve(maps, masks, fpr_limit=0.3, num_points=61)
    np.testing.assert_allclose(fpr, np.linspace(0, 0.3, 61))
    np.testing.assert_allclose(pro, reference_curve_at(x, y, fpr), atol=1e-12)


def test_curve_areas_match_the_metrics():
    rng = np.random.default_rng(11)
    maps, masks = random_case(rng, num=6, height=16, width=12)
    maps = (ndimage.uniform_filter(rng.random(maps.shape), size=(1, 3, 3)) + masks * 0.1).astype(
        np.float32
    )
    fpr, pro = metrics.pro_curve(maps, masks, fpr_limit=0.3, num_points=20001)
    assert np.trapezoid(pro, fpr) / 0.3 == pytest.approx(aupro(maps, masks), abs=1e-4)
    fpr, tpr = metrics.pixel_roc_curve(maps, masks, num_points=20001)
    assert np.trapezoid(tpr, fpr) == pytest.approx(pixel_auroc(maps, masks), abs=1e-4)
    assert np.all(np.diff(pro) >= 0) and np.all(np.diff(tpr) >= 0)
    assert tpr[-1] == 1.0


def test_perfect_map_curves_are_one_from_the_start():
    rng = np.random.default_rng(1)
    _, masks = random_case(rng)
    perfect = masks.astype(np.float32) + rng.random(masks.shape, dtype=np.float32) * 0.5
    np.testing.assert_allclose(metrics.pro_curve(perfect, masks)[1], 1.0, atol=1e-12)
    assert np.all(metrics.pixel_roc_curve(perfect, masks)[1] == 1.0)


@pytest.mark.parametrize("curve", [metrics.pixel_roc_curve, metrics.pro_curve])
def test_curves_reject_bad_input(curve):
    maps, masks = good_pixels()
    name = curve.__name__
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no defect pixel"):
        curve(maps, np.zeros_like(masks))
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*no defect-free pixel"):
        curve(maps, np.ones_like(masks))
    with pytest.raises(ValueError, match=rf"{name} cannot be computed.*\(2, 4, 4\).*\(2, 4, 5\)"):
        curve(maps, np.zeros((2, 4, 5), bool))
    with pytest.raises(ValueError, match=r"num_points must be an integer >= 2, got 1"):
        curve(maps, masks, num_points=1)


def test_pro_curve_rejects_bad_fpr_limit():
    maps, masks = good_pixels()
    with pytest.raises(ValueError, match=r"pro_curve cannot be computed: fpr_limit must be in"):
        metrics.pro_curve(maps, masks, fpr_limit=0.0)


def test_what_a_test_set_cannot_support_is_named_with_its_reason():
    assert not_computable([], []) == dict.fromkeys(
        (*IMAGE_METRICS, *PIXEL_METRICS), "no test images"
    )
    normal_only = not_computable([0, 0], [True, True])
    assert set(normal_only.values()) == {"no anomalous test images"}
    unmasked = not_computable([0, 1, 1], [True, False, False])
    assert unmasked == dict.fromkeys(PIXEL_METRICS, "no anomalous test image has a mask")
    assert not_computable([0, 1, 1], [True, False, True]) == {}


def test_pixel_metrics_use_only_the_images_with_a_mask():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8)).astype(np.float32)
    masks = np.zeros((4, 8, 8), bool)
    masks[2, 2:5, 2:5] = True
    maps[2][masks[2]] += 0.5
    labels, has_mask = np.array([0, 0, 1, 1]), np.array([True, True, True, False])
    values, reasons, used = compute_available(maps.max(axis=(1, 2)), labels, maps, masks, has_mask)
    assert reasons == {} and used == 3
    assert values["pixel_auroc"] == pytest.approx(pixel_auroc(maps[:3], masks[:3]))
    assert values["pixel_auroc"] != pytest.approx(pixel_auroc(maps, masks))
