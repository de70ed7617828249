"""Bring anomaly maps and ground-truth masks to one evaluation resolution.

Why: the paper evaluates at the model's resolution (256², spec §7), the official MVTec AD protocol
at each image's original resolution. By default masks are not interpolated bilinearly and
thresholded (the authors' way, which dilates every defect by about a pixel, spec §9.10); they are
resized with nearest neighbour (pixel centres) or by area coverage >= 0.5. "bilinear" is the
authors' way, for the paper protocol only (core.protocol).
Maps going to native resolution are upsampled bilinearly (half-pixel centres, no antialias).
Sizes are (height, width).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from PIL import Image

MaskMethod = Literal["nearest", "area", "bilinear"]
Resolution = Literal["model", "native"]
MASK_METHODS: tuple[str, ...] = ("nearest", "area", "bilinear")
RESOLUTIONS: tuple[str, ...] = ("model", "native")

# Exact half coverage must count as defect even when float32 area sums round just below 0.5.
_HALF_COVERAGE = 0.5 - 1e-6


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(side) != side or side < 1 for side in size):
        raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(
            f"a mask must be a bool (H, W) array, got dtype {mask.dtype} and shape {mask.shape}; "
            "binarise it first (e.g. mask > 0)"
        )
    return mask


def resize_mask(mask: np.ndarray, size: Sequence[int], method: MaskMethod = "area") -> np.ndarray:
    """Resize one bool mask (H, W) to size (h, w); returns bool (h, w).

    "nearest" takes the source pixel under each target pixel centre; "area" marks a target pixel
    defective when at least half of its area is covered by defect pixels; neither dilates.
    "bilinear" is the authors' (spec §1.3): the 0/255 mask resized by PIL's antialiased bilinear
    filter to uint8, then > 0.5, so every pixel the filter touches counts as defect.
    """
    mask = _check_mask(mask)
    if method not in MASK_METHODS:
        raise ValueError(f"mask resize method must be one of {MASK_METHODS}, got {method!r}")
    height, width = _check_size(size)
    if mask.shape == (height, width):
        return mask.copy()
    if method == "bilinear":
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (width, height), Image.Resampling.BILINEAR
        )
        return np.asarray(resized) > 0.5
    if method == "nearest":
        resized = cv2.resize(
            mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT
        )
        return resized.astype(bool)
    coverage = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return coverage >= _HALF_COVERAGE


def resize_masks(
    masks: np.ndarray | Sequence[np.ndarray], size: Sequence[int], method: MaskMethod = "area"
) -> np.ndarray:
    """Resize N bool masks (each (H_i, W_i)) to one size; returns bool (N, h, w)."""
    height, width = _check_size(size)
    resized = np.empty((len(masks), height, width), dtype=bool)
    for index, mask in enumerate(masks):
        resized[index] = resize_mask(mask, size, method)
    return resized


def upsample_map(score_map: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of one anomaly map (h, w) to size (H, W); returns float32 (H, W)."""
    score_map = np.asarray(score_map)
    if score_map.ndim != 2:
        raise ValueError(f"an anomaly map must be (h, w), got shape {score_map.shape}")
    height, width = _check_size(size)
    return cv2.resize(
        score_map.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR
    )


def _stack_if_uniform(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if len({array.shape for array in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def evaluation_pairs(
    maps: np.ndarray,
    masks: Sequence[np.ndarray],
    resolution: Resolution = "model",
    mask_method: MaskMethod = "area",
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray | list[np.ndarray]]:
    """Maps and masks at one evaluation resolution, ready for the metrics.

    maps: (N, h, w) at the model's resolution; masks: N bool masks at native size (H_i, W_i).
    "model" resizes the masks to (h, w) (the paper's protocol); "native" upsamples each map to
    its mask's size (the official MVTec AD protocol). Returns (N, ., .) arrays when all images
    share one size, else lists.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or len(maps) != len(masks):
        raise ValueError(
            f"maps must be (N, h, w) with one map per mask, got shape {maps.shape} "
            f"and {len(masks)} masks"
        )
    if resolution == "model":
        return maps, resize_masks(masks, maps.shape[1:], mask_method)
    if resolution == "native":
        masks = [_check_mask(mask) for mask in masks]
        upsampled = [upsample_map(m, mask.shape) for m, mask in zip(maps, masks, strict=True)]
        return _stack_if_uniform(upsampled), _stack_if_uniform(masks)
    raise ValueError(f"evaluation resolution must be one of {RESOLUTIONS}, got {resolution!r}")
