"""Heat-map overlays and binary masks as uint8 pixel arrays, for PNG files and figures alike.

Why one fixed colour scale: a map is coloured by its value on the range given (the same for every
image), so a defect-free image stays cold. Stretching each image's own min-max to the full colour
map would paint the largest value of a good image red and make it look defective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from transfusion_ad.core.resize import upsample_map
from transfusion_ad.data.images import image_size, load_image


@dataclass(frozen=True)
class HeatmapStyle:
    """How maps are coloured: value range at the two ends of the colour map, its name, the
    opacity over the image, and whether the calibrated pixel threshold is outlined."""

    low: float = 0.0
    high: float = 1.0
    colormap: str = "jet"
    alpha: float = 0.5
    threshold_contour: bool = True

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(
                f"heatmap.range must be [low, high] with low < high, got [{self.low}, {self.high}]."
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"heatmap.alpha must lie in [0, 1], got {self.alpha}.")
        if self.colormap not in matplotlib.colormaps:
            raise ValueError(
                f"heatmap.colormap {self.colormap!r} is not a Matplotlib colour map "
                "(e.g. jet, inferno, viridis)."
            )

    @classmethod
    def from_params(cls, heatmap: dict) -> HeatmapStyle:
        """The style of the ``heatmap`` parameter group (range, colormap, alpha, contour)."""
        value_range: Sequence[float] = heatmap["range"]
        if len(value_range) != 2:
            raise ValueError(f"heatmap.range must be [low, high], got {list(value_range)}.")
        return cls(
            low=float(value_range[0]),
            high=float(value_range[1]),
            colormap=heatmap["colormap"],
            alpha=float(heatmap["alpha"]),
            threshold_contour=bool(heatmap["threshold_contour"]),
        )


def colorize(score_map: np.ndarray, style: HeatmapStyle) -> np.ndarray:
    """Map values (H, W) -> RGB uint8 (H, W, 3) on the style's fixed range (clipped at the ends)."""
    values = np.asarray(score_map, np.float32)
    scaled = np.clip((values - style.low) / (style.high - style.low), 0.0, 1.0)
    rgba = matplotlib.colormaps[style.colormap](scaled, bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def binary_mask(score_map: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels at or above the threshold (the calibrated rule): (H, W) -> uint8 (H, W) 0 / 255."""
    return np.where(np.asarray(score_map) >= threshold, 255, 0).astype(np.uint8)


def fit_map(score_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """A model-resolution map (h, w) brought to an image's size (height, width), bilinearly."""
    if score_map.shape == (height, width):
        return np.asarray(score_map, np.float32)
    return upsample_map(score_map, (height, width))


def overlay(
    image: np.ndarray, score_map: np.ndarray, style: HeatmapStyle, threshold: float | None = None
) -> np.ndarray:
    """The heat map blended over the image: image (H, W, 3) uint8, map (h, w) at any resolution
    (upsampled to the image) -> RGB uint8 (H, W, 3). With a threshold and the style's contour on,
    the region at or above it is outlined in white."""
    height, width = image.shape[:2]
    fitted = fit_map(score_map, height, width)
    heat = colorize(fitted, style).astype(np.float32)
    blended = (1.0 - style.alpha) * image.astype(np.float32) + style.alpha * heat
    result = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if threshold is not None and style.threshold_contour:
        contours, _ = cv2.findContours(
            binary_mask(fitted, threshold), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        thickness = max(1, round(min(height, width) / 200))
        cv2.drawContours(result, contours, -1, (255, 255, 255), thickness)
    return result


def render_overlay(
    path: str | Path, score_map: np.ndarray, style: HeatmapStyle, threshold: float | None
) -> np.ndarray:
    """The overlay of an image file at its own size: RGB uint8 (H, W, 3)."""
    return overlay(load_image(path), score_map, style, threshold)


def render_mask(path: str | Path, score_map: np.ndarray, threshold: float) -> np.ndarray:
    """The binary mask of an image file at its own size: uint8 (H, W), 255 where anomalous."""
    width, height = image_size(path)
    return binary_mask(fit_map(score_map, height, width), threshold)
