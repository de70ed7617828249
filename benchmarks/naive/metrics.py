"""AUPRO as the official MVTec AD evaluation computes it (spec §8.1): per-pixel float64 FPR and
PRO increments, one argsort of every pixel of the category, cumulative sums, trapezoids."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _trapezoid_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Area under the polyline (x, y), x ascending, from x[0] up to x = limit (interpolated)."""
    inside = x <= limit
    area = float(np.sum((x[inside][1:] - x[inside][:-1]) * (y[inside][1:] + y[inside][:-1])) / 2)
    last = int(np.flatnonzero(inside)[-1])
    if last + 1 < x.size and x[last] < limit:
        x0, x1, y0, y1 = x[last], x[last + 1], y[last], y[last + 1]
        at_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += 0.5 * (y0 + at_limit) * (limit - x0)
    return area


def aupro_reference(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """maps (N, H, W) float, masks (N, H, W) bool -> AUPRO up to fpr_limit, normalised."""
    fpr_changes = np.zeros(maps.shape, dtype=np.float64)
    pro_changes = np.zeros(maps.shape, dtype=np.float64)
    num_ok = int((~masks).sum())
    fpr_changes[~masks] = 1.0 / num_ok
    num_regions = 0
    for index, mask in enumerate(masks):
        labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        num_regions += count
        for region in range(1, count + 1):
            pixels = labels == region
            pro_changes[index][pixels] = 1.0 / pixels.sum()
    scores = maps.astype(np.float32).astype(np.float64).ravel()
    order = np.argsort(scores).astype(np.uint32)[::-1]
    scores = scores[order]
    fprs = np.cumsum(fpr_changes.ravel()[order])
    pros = np.cumsum(pro_changes.ravel()[order]) / num_regions
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.concatenate(([0.0], np.clip(fprs[keep], None, 1.0), [1.0]))
    pros = np.concatenate(([0.0], np.clip(pros[keep], None, 1.0), [1.0]))
    return _trapezoid_to(fprs, pros, fpr_limit) / fpr_limit
