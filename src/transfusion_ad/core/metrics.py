"""Anomaly-detection metrics that match the official MVTec AD evaluation (spec §8.1).

Why: every number the project reports must be comparable with the papers. Image-level metrics
use scikit-learn, exactly as the authors do. Pixel-level metrics rank every pixel of a category
once: each pixel becomes a 64-bit key (a monotone code of its float32 score in the high 32 bits,
its ground-truth region id in the low 32 bits) and the keys are sorted in place. Sorting keys is
about ten times faster than an argsort and needs no gather; the sorted keys are then swept in
chunks from the highest score down, so no N×H×W float64 array is ever made. Scores are ranked in
float32, the model's output precision (float64 maps are rounded to float32 first).
The ROC and PRO curves drawn in the reports come from the same sweep, sampled at fixed FPRs.

Maps are (N, H, W) float arrays, or a sequence of N (H_i, W_i) arrays when images differ in size
(evaluation at native resolution); masks have the same shapes and are bool.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

METRIC_NAMES = ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro", "f1_max")
OPTIMISTIC_THRESHOLD_KEY = "f1_optimal_image_threshold_test_optimistic"

_CHUNK = 1 << 20
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_HIGH, _LOW = (1, 0) if sys.byteorder == "little" else (0, 1)
_SIGN = np.uint32(0x80000000)

MapsLike = np.ndarray | Sequence[np.ndarray]


def _fail(metric: str, reason: str) -> ValueError:
    return ValueError(f"{metric} cannot be computed: {reason}")


def _check_image_inputs(scores, labels, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated image scores (N,) float64 and labels (N,) bool."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise _fail(
            metric,
            f"scores have shape {scores.shape} and labels have shape {labels.shape}; "
            "both must be 1-D with one entry per image",
        )
    if labels.dtype != bool:
        if not np.issubdtype(labels.dtype, np.number) or not np.isin(labels, (0, 1)).all():
            raise _fail(metric, "labels must be bool or 0/1 (1 = anomalous image)")
        labels = labels.astype(bool)
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise _fail(metric, f"scores must be real numbers, got dtype {scores.dtype}")
    scores = scores.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise _fail(metric, f"{bad} image score(s) are NaN or inf")
    if labels.all():
        raise _fail(metric, "the test set has no normal image (every label is anomalous)")
    if not labels.any():
        raise _fail(metric, "the test set has no anomalous image (every label is normal)")
    return scores, labels


def image_auroc(scores, labels) -> float:
    """Area under the ROC curve of image scores (N,) against labels (N,) (1 = anomalous)."""
    scores, labels = _check_image_inputs(scores, labels, "image_auroc")
    return float(roc_auc_score(labels, scores))


def image_ap(scores, labels) -> float:
    """Average precision (scikit-learn's step definition) of image scores (N,)."""
    scores, labels = _check_image_inputs(scores, labels, "image_ap")
    return float(average_precision_score(labels, scores))


def f1_optimal_threshold(scores, labels) -> tuple[float, float]:
    """Best F1 over all thresholds of image scores (N,) and the threshold reaching it.

    An image is predicted anomalous when its score >= threshold. The threshold is chosen on the
    labelled test set, so it is optimistic: report it, never deploy it.
    """
    scores, labels = _check_image_inputs(scores, labels, "f1_max")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def f1_max(scores, labels) -> float:
    """Best F1 score over all thresholds of image scores (N,) (optimistic: uses test labels)."""
    return f1_optimal_threshold(scores, labels)[0]


def _pixel_pairs(
    maps: MapsLike, masks: MapsLike, metric: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated per-image (map (H_i, W_i), mask (H_i, W_i) bool) pairs."""
    if isinstance(maps, np.ndarray) and isinstance(masks, np.ndarray):
        if maps.ndim != 3 or maps.shape != masks.shape:
            raise _fail(
                metric,
                f"maps have shape {maps.shape} but masks have shape {masks.shape}; "
                "both must be (N, H, W) with the same shape",
            )
    elif len(maps) != len(masks):
        raise _fail(metric, f"{len(maps)} maps but {len(masks)} masks")
    if len(maps) == 0:
        raise _fail(metric, "no maps were given")
    pairs = []
    for index, (map_like, mask_like) in enumerate(zip(maps, masks, strict=True)):
        score_map, mask = np.asarray(map_like), np.asarray(mask_like)
        if score_map.ndim != 2 or score_map.shape != mask.shape:
            raise _fail(
                metric,
                f"map {index} has shape {score_map.shape} but its mask has shape {mask.shape}",
            )
        if mask.dtype != bool:
            raise _fail(
                metric,
                f"masks must be bool, got dtype {mask.dtype}; binarise them first (e.g. masks > 0)",
            )
        is_real = np.issubdtype(score_map.dtype, np.floating) or np.issubdtype(
            score_map.dtype, np.integer
        )
        if not is_real:
            raise _fail(metric, f"maps must be real numbers, got dtype {score_map.dtype}")
        pairs.append((score_map, mask))
    for index, (score_map, _) in enumerate(pairs):
        if np.issubdtype(score_map.dtype, np.floating) and not (
            np.isfinite(score_map.min()) and np.isfinite(score_map.max())
        ):
            bad = int(np.count_nonzero(~np.isfinite(score_map)))
            raise _fail(metric, f"map {index} contains {bad} NaN or inf value(s)")
    return pairs


def _score_codes(score_map: np.ndarray) -> np.ndarray:
    """uint32 codes (H*W,) whose unsigned order is the float32 order of the scores.

    -0.0 and +0.0 get one code (adding +0.0 turns -0.0 into +0.0).
    """
    values = score_map.astype(np.float32).ravel()
    values += np.float32(0.0)
    bits = values.view(np.uint32)
    return np.where(bits >= _SIGN, ~bits, bits | _SIGN)


def _halves(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strided uint32 views (P,) of the keys' high half (score codes) and low half (ids)."""
    words = keys.view(np.uint32).reshape(-1, 2)
    return words[:, _HIGH], words[:, _LOW]


def _sorted_keys(
    pairs: list[tuple[np.ndarray, np.ndarray]], label_regions: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted pixel keys (P,) uint64 and the pixel count per id (R+1,) int64.

    Id 0 marks defect-free pixels. With label_regions, ids 1..R are the 8-connected defect
    regions of all masks (numbered across images); otherwise every defect pixel has id 1.
    """
    keys = np.empty(sum(score_map.size for score_map, _ in pairs), dtype=np.uint64)
    codes, ids_view = _halves(keys)
    counts = [0]
    start = 0
    for score_map, mask in pairs:
        stop = start + score_map.size
        if label_regions:
            regions, num_regions = ndimage.label(mask, structure=_EIGHT_CONNECTED)
            sizes = np.bincount(regions.ravel(), minlength=num_regions + 1)
            offset = len(counts) - 1
            counts[0] += int(sizes[0])
            counts.extend(sizes[1:].tolist())
            ids = np.where(mask, regions.astype(np.uint32) + np.uint32(offset), np.uint32(0))
        else:
            ids = mask
            defects = int(np.count_nonzero(mask))
            counts[0] += mask.size - defects
            if len(counts) == 1:
                counts.append(0)
            counts[1] += defects
        codes[start:stop] = _score_codes(score_map)
        ids_view[start:stop] = ids.ravel()
        start = stop
    keys.sort()
    return keys, np.asarray(counts, dtype=np.int64)


def _run_ends(
    keys: np.ndarray, weights: np.ndarray | None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Walk the sorted keys from the highest score down, chunk by chunk.

    Yields, at the last pixel of every run of equal scores, the cumulative number of defect-free
    pixels (K,) int64, of defect pixels (K,) int64 and, when weights (R+1,) are given, the
    cumulative sum of the pixels' weights[id] (K,) float64. Each run is reported once, as one
    step of the curve (ties are never split).
    """
    all_codes, all_ids = _halves(keys)
    normal_before, defect_before, weight_before = 0, 0, 0.0
    stop = keys.size
    while stop > 0:
        start = max(0, stop - _CHUNK)
        block_codes, ids = all_codes[start:stop][::-1], all_ids[start:stop][::-1]
        is_end = np.empty(block_codes.size, dtype=bool)
        np.not_equal(block_codes[1:], block_codes[:-1], out=is_end[:-1])
        is_end[-1] = start == 0 or all_codes[start - 1] != block_codes[-1]
        ends = np.flatnonzero(is_end)
        normal_cumulative = np.cumsum(ids == 0, dtype=np.int64)
        normal = normal_cumulative[ends] + normal_before
        defect = (ends + 1 + normal_before + defect_before) - normal
        weight = None
        if weights is not None:
            weight_cumulative = np.cumsum(weights[ids])
            weight = weight_cumulative[ends] + weight_before
            weight_before += float(weight_cumulative[-1])
        if ends.size:
            yield normal, defect, weight
        defect_before += ids.size - int(normal_cumulative[-1])
        normal_before += int(normal_cumulative[-1])
        stop = start


class _RocArea:
    """Trapezoid area under the ROC curve, in exact integer arithmetic."""

    def __init__(self, num_normal: int, num_defect: int) -> None:
        self.num_normal, self.num_defect = num_normal, num_defect
        self.prev_normal, self.prev_defect, self.twice_area = 0, 0, 0

    def update(self, normal: np.ndarray, defect: np.ndarray, weight: np.ndarray | None) -> bool:
        previous_normal = np.concatenate(([self.prev_normal], normal[:-1]))
        previous_defect = np.concatenate(([self.prev_defect], defect[:-1]))
        self.twice_area += int(np.sum((normal - previous_normal) * (defect + previous_defect)))
        self.prev_normal, self.prev_defect = int(normal[-1]), int(defect[-1])
        return False

    def result(self) -> float:
        return self.twice_area / (2 * self.num_normal * self.num_defect)


class _AveragePrecision:
    """scikit-learn's AP: sum over thresholds of (recall step) × precision."""

    def __init__(self, num_normal: int, num_defect: int) -> None:
        self.num_defect, self.prev_defect, self.total = num_defect, 0, 0.0

    def update(self, normal: np.ndarray, defect: np.ndarray, weight: np.ndarray | None) -> bool:
        steps = np.diff(defect, prepend=self.prev_defect)
        self.total += float(np.sum(steps * (defect / (defect + normal))))
        self.prev_defect = int(defect[-1])
        return False

    def result(self) -> float:
        return self.total / self.num_defect


class _ProArea:
    """Area under the PRO curve up to fpr_limit, normalised, as the official MVTec AD code.

    Points (FPR, PRO) start at (0, 0); PRO is clipped to <= 1; trapezoids are summed up to the last
    point with FPR <= fpr_limit, plus a trapezoid to the value linearly interpolated at fpr_limit.
    """

    def __init__(self, num_normal: int, num_regions: int, fpr_limit: float) -> None:
        self.num_normal, self.num_regions, self.fpr_limit = num_normal, num_regions, fpr_limit
        self.prev_fpr, self.prev_pro, self.area, self.done = 0.0, 0.0, 0.0, False

    def update(self, normal: np.ndarray, defect: np.ndarray, weight: np.ndarray | None) -> bool:
        if self.done:
            return True
        fpr = np.concatenate(([self.prev_fpr], normal / self.num_normal))
        pro = np.concatenate(([self.prev_pro], np.minimum(weight / self.num_regions, 1.0)))
        inside = int(np.searchsorted(fpr, self.fpr_limit, side="right"))
        self.area += float(
            np.sum((fpr[1:inside] - fpr[: inside - 1]) * (pro[1:inside] + pro[: inside - 1])) / 2
        )
        if inside < fpr.size:
            x0, x1, y0, y1 = fpr[inside - 1], fpr[inside], pro[inside - 1], pro[inside]
            at_limit = y0 + (y1 - y0) * (self.fpr_limit - x0) / (x1 - x0)
            self.area += 0.5 * (at_limit + y0) * (self.fpr_limit - x0)
            self.done = True
        self.prev_fpr, self.prev_pro = float(fpr[-1]), float(pro[-1])
        return self.done

    def result(self) -> float:
        return self.area / self.fpr_limit


def _check_pixel_counts(counts: np.ndarray, metric: str) -> tuple[int, int]:
    """(defect-free, defect) pixel counts from the per-id counts; both must be positive."""
    num_normal, num_defect = int(counts[0]), int(counts[1:].sum())
    if num_defect == 0:
        raise _fail(metric, "the masks contain no defect pixel (no anomalous test image?)")
    if num_normal == 0:
        raise _fail(metric, "the masks contain no defect-free pixel")
    return num_normal, num_defect


def _pixel_metrics(
    maps: MapsLike, masks: MapsLike, names: tuple[str, ...], fpr_limit: float = 0.3
) -> dict[str, float]:
    """The pixel metrics in names, all from one sort of the pixels."""
    label = ", ".join(names)
    if "aupro" in names and not 0.0 < fpr_limit <= 1.0:
        raise _fail(label, f"fpr_limit must be in (0, 1], got {fpr_limit}")
    pairs = _pixel_pairs(maps, masks, label)
    keys, counts = _sorted_keys(pairs, label_regions="aupro" in names)
    num_normal, num_defect = _check_pixel_counts(counts, label)
    accumulators: dict[str, _RocArea | _AveragePrecision | _ProArea] = {}
    weights = None
    for name in names:
        if name == "pixel_auroc":
            accumulators[name] = _RocArea(num_normal, num_defect)
        elif name == "pixel_ap":
            accumulators[name] = _AveragePrecision(num_normal, num_defect)
        else:
            accumulators[name] = _ProArea(num_normal, counts.size - 1, fpr_limit)
            weights = np.concatenate(([0.0], 1.0 / counts[1:]))
    for normal, defect, weight in _run_ends(keys, weights):
        finished = [acc.update(normal, defect, weight) for acc in accumulators.values()]
        if all(finished):
            break
    return {name: float(acc.result()) for name, acc in accumulators.items()}


def pixel_auroc(maps: MapsLike, masks: MapsLike) -> float:
    """Area under the ROC curve over all pixels of maps (N, H, W) against masks (N, H, W) bool."""
    return _pixel_metrics(maps, masks, ("pixel_auroc",))["pixel_auroc"]


def pixel_ap(maps: MapsLike, masks: MapsLike) -> float:
    """Average precision over all pixels of maps (N, H, W) against masks (N, H, W) bool."""
    return _pixel_metrics(maps, masks, ("pixel_ap",))["pixel_ap"]


def aupro(maps: MapsLike, masks: MapsLike, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to fpr_limit (official MVTec AD).

    Regions are the 8-connected components of each mask (N, H, W); PRO is the mean overlap over
    all regions; FPR is over all defect-free pixels of all images; the curve has one point per
    distinct score; the area up to fpr_limit is divided by fpr_limit.
    """
    return _pixel_metrics(maps, masks, ("aupro",), fpr_limit)["aupro"]


def compute_all(
    scores, labels, maps: MapsLike, masks: MapsLike, fpr_limit: float = 0.3
) -> dict[str, float]:
    """All metrics of one category (keys METRIC_NAMES) plus the optimistic F1 threshold.

    scores/labels: image scores (N,) and labels (N,); maps/masks: (N, H, W). The test-set
    F1-optimal image threshold is returned under OPTIMISTIC_THRESHOLD_KEY, never as "the" threshold.
    """
    if len(scores) != len(maps):
        raise _fail(
            "compute_all", f"{len(scores)} image scores but {len(maps)} maps; give one per image"
        )
    best_f1, threshold = f1_optimal_threshold(scores, labels)
    results = {
        "image_auroc": image_auroc(scores, labels),
        "image_ap": image_ap(scores, labels),
        **_pixel_metrics(maps, masks, ("pixel_auroc", "pixel_ap", "aupro"), fpr_limit),
        "f1_max": best_f1,
    }
    ordered = {name: results[name] for name in METRIC_NAMES}
    ordered[OPTIMISTIC_THRESHOLD_KEY] = threshold
    return ordered


IMAGE_METRICS = ("image_auroc", "image_ap", "f1_max", OPTIMISTIC_THRESHOLD_KEY)
PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "aupro")


def not_computable(labels, has_mask) -> dict[str, str]:
    """Why each metric that the test set cannot support is impossible: {metric: reason}.

    labels (N,) 0/1 and has_mask (N,) bool (True for normal images, whose mask is empty, and for
    anomalous images with a mask). Image metrics need normal and anomalous images; pixel
    metrics need an anomalous image with a mask. The one rule for the log line before training
    and for metrics.json.
    """
    labels, has_mask = np.asarray(labels).astype(int), np.asarray(has_mask).astype(bool)
    anomalous, normal = int((labels == 1).sum()), int((labels == 0).sum())
    image_reason = (
        "no test images"
        if anomalous + normal == 0
        else "no anomalous test images"
        if anomalous == 0
        else "no normal test images"
        if normal == 0
        else None
    )
    reasons = {name: image_reason for name in IMAGE_METRICS if image_reason}
    if anomalous == 0:
        pixel_reason = image_reason if normal == 0 else "no anomalous test images"
    elif not has_mask[labels == 1].any():
        pixel_reason = "no anomalous test image has a mask"
    else:
        pixel_reason = None
    reasons.update({name: pixel_reason for name in PIXEL_METRICS if pixel_reason})
    return reasons


def compute_available(
    scores, labels, maps: MapsLike, masks: MapsLike, has_mask, fpr_limit: float = 0.3
) -> tuple[dict[str, float | None], dict[str, str], int]:
    """The metrics the test set supports, None for the others.

    Image metrics use every image; pixel metrics the images with a mask (normal images count,
    with an empty mask). Returns (values by METRIC_NAMES and OPTIMISTIC_THRESHOLD_KEY,
    {metric: reason} for the None ones, number of images the pixel metrics used).
    """
    has_mask = np.asarray(has_mask).astype(bool)
    reasons = not_computable(labels, has_mask)
    values: dict[str, float | None] = dict.fromkeys((*METRIC_NAMES, OPTIMISTIC_THRESHOLD_KEY))
    if not any(name in reasons for name in IMAGE_METRICS):
        best_f1, threshold = f1_optimal_threshold(scores, labels)
        values |= {"image_auroc": image_auroc(scores, labels), "image_ap": image_ap(scores, labels)}
        values |= {"f1_max": best_f1, OPTIMISTIC_THRESHOLD_KEY: threshold}
    used = [index for index in range(len(has_mask)) if has_mask[index]]
    pixel_masks = [masks[index] for index in used]
    if not any(name in reasons for name in PIXEL_METRICS):
        if not any(np.asarray(mask).any() for mask in pixel_masks):
            reasons |= dict.fromkeys(
                PIXEL_METRICS, "no defect pixel left at the evaluation resolution"
            )
        else:
            pixel_maps = [maps[index] for index in used]
            values |= _pixel_metrics(pixel_maps, pixel_masks, PIXEL_METRICS, fpr_limit)
    return values, reasons, len(used) if values["pixel_auroc"] is not None else 0


def _sample_curve(points: Iterator[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """y at the sorted positions grid (G,) of the piecewise-linear curve through (0, 0) and the
    streamed points (x non-decreasing, chunk by chunk).

    Where several points share one x (a vertical jump), the value at that x is the top of the
    jump; between two x values the curve runs from the top of the left jump to the bottom of the
    right one, as the trapezoids of the areas do. Only the G samples are kept, never the curve.
    """
    values = np.empty(grid.size)
    done, last_x, last_y = 0, 0.0, 0.0
    for x, y in points:
        xs, ys = np.concatenate(([last_x], x)), np.concatenate(([last_y], y))
        # Grid positions left of this chunk's last x are final: later points lie further right.
        stop = int(np.searchsorted(grid, xs[-1], side="left"))
        values[done:stop] = np.interp(grid[done:stop], xs, ys)
        done, last_x, last_y = stop, float(xs[-1]), float(ys[-1])
        if done == grid.size:
            return values
    values[done:] = last_y
    return values


def _curve_grid(stop: float, num_points: int, metric: str) -> np.ndarray:
    if not isinstance(num_points, int) or num_points < 2:
        raise _fail(metric, f"num_points must be an integer >= 2, got {num_points!r}")
    return np.linspace(0.0, stop, num_points)


def pixel_roc_curve(
    maps: MapsLike, masks: MapsLike, num_points: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-level ROC curve sampled at num_points evenly spaced FPRs in [0, 1]: (fpr, tpr).

    The curve whose area pixel_auroc is, from the same single sort of the pixels; sampled so a
    category of millions of pixels plots from a few kilobytes. maps/masks as pixel_auroc.
    """
    grid = _curve_grid(1.0, num_points, "pixel_roc_curve")
    pairs = _pixel_pairs(maps, masks, "pixel_roc_curve")
    keys, counts = _sorted_keys(pairs, label_regions=False)
    num_normal, num_defect = _check_pixel_counts(counts, "pixel_roc_curve")
    points = (
        (normal / num_normal, defect / num_defect) for normal, defect, _ in _run_ends(keys, None)
    )
    return grid, _sample_curve(points, grid)


def pro_curve(
    maps: MapsLike, masks: MapsLike, fpr_limit: float = 0.3, num_points: int = 1001
) -> tuple[np.ndarray, np.ndarray]:
    """Per-region-overlap curve up to fpr_limit, sampled at num_points evenly spaced FPRs in
    [0, fpr_limit]: (fpr, pro).

    The curve whose normalised area aupro is (official MVTec AD points: one per distinct score,
    PRO clipped to <= 1); its trapezoid area divided by fpr_limit tends to aupro as num_points
    grows. maps/masks as aupro.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise _fail("pro_curve", f"fpr_limit must be in (0, 1], got {fpr_limit}")
    grid = _curve_grid(fpr_limit, num_points, "pro_curve")
    pairs = _pixel_pairs(maps, masks, "pro_curve")
    keys, counts = _sorted_keys(pairs, label_regions=True)
    num_normal, _ = _check_pixel_counts(counts, "pro_curve")
    num_regions = counts.size - 1
    weights = np.concatenate(([0.0], 1.0 / counts[1:]))
    points = (
        (normal / num_normal, np.minimum(weight / num_regions, 1.0))
        for normal, _, weight in _run_ends(keys, weights)
    )
    return grid, _sample_curve(points, grid)
