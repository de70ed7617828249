"""Foreground masks that keep synthetic anomalies on the object (spec §1.4), without any download.

The authors segment the background with SAM prompted at the four corners. This module replaces
that with a classical estimator that needs only OpenCV: a colour model of the background learnt
from the image border, a distance threshold chosen by Otsu, morphology, the largest connected
parts, and the complement of the border-connected background (so enclosed holes count as object,
as with the corner-prompted SAM background). Users can instead supply a folder of masks matched by
file stem, the authors' released SAM masks included, as they ship them. Every mask is then
dilated once with a 5×5 kernel, as the authors do when loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

TEXTURE_CATEGORIES = frozenset({"carpet", "grid", "leather", "tile", "wood", "zipper"})

_WORK_SIDE = 256  # long side at which the estimator runs; masks are resized back afterwards
_BORDER_FRACTION = 0.05  # width of the border strip that models the background
_BORDER_TRIM = 0.8  # fraction of border pixels (closest to the median) that fit the model
_COMPONENT_FRACTION = 0.1  # keep components at least this fraction of the largest one
_MIN_COVER, _MAX_COVER = 0.01, 0.99  # outside this range an estimate is degenerate
FOREGROUND_MODES = ("estimate", "folder", "none")
# File names a mask may have, for an image of stem s: s.png, s_mask.png, or the authors' s.JPG.
_MASK_SUFFIXES = (".png", "_mask.png", ".PNG", ".JPG", ".jpg")
# The authors' release tree: <root>/<name>_masks/<category>/train/good/ (spec §1.4).
AUTHORS_MASK_DATASETS = {"mvtec_ad": "mvtec", "visa": "visa"}


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 → (H, W, 3) uint8, with a clear error for anything else."""
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise ValueError(
            f"expected an RGB uint8 image (H, W, 3) or a gray one (H, W), "
            f"got {image.dtype} {image.shape}"
        )
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def _border_pixels(lab: np.ndarray) -> np.ndarray:
    """The pixels of a strip along the four image edges: (N, 3) float64."""
    height, width = lab.shape[:2]
    strip = max(2, round(_BORDER_FRACTION * min(height, width)))
    ring = np.ones((height, width), dtype=bool)
    ring[strip:-strip, strip:-strip] = False
    return lab[ring].astype(np.float64)


def _background_distance(lab: np.ndarray) -> np.ndarray:
    """Mahalanobis distance (H, W) of every pixel to a Gaussian fitted to the border colours.

    The fit uses only the border pixels closest to the border median, so an object that
    touches the edge does not pull the background model towards itself.
    """
    border = _border_pixels(lab)
    spread = np.linalg.norm(border - np.median(border, axis=0), axis=1)
    inliers = border[spread <= np.quantile(spread, _BORDER_TRIM)]
    mean = inliers.mean(axis=0)
    covariance = np.cov(inliers, rowvar=False) + np.eye(3) * 1.0
    diff = lab.reshape(-1, 3).astype(np.float64) - mean
    squared = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(covariance), diff)
    return np.sqrt(squared).reshape(lab.shape[:2])


def _largest_parts(mask: np.ndarray) -> np.ndarray:
    """Keep the connected components of ``mask`` (uint8 0/1) with ≥ 10 % of the largest's area."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= _COMPONENT_FRACTION * areas.max()) + 1
    return np.isin(labels, keep).astype(np.uint8)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Object = everything not reached from the border through background (4-connected)."""
    height, width = mask.shape
    padded = np.zeros((height + 2, width + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 2)
    return (flood[1:-1, 1:-1] != 2).astype(np.uint8)


def _estimate_small(image: np.ndarray) -> np.ndarray | None:
    """Foreground at the working resolution (uint8 0/1), or None when the estimate is degenerate."""
    height, width = image.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_RGB2LAB)
    distance = _background_distance(lab)
    scaled = np.clip(255.0 * distance / max(np.quantile(distance, 0.995), 1e-6), 0, 255)
    _, mask = cv2.threshold(scaled.astype(np.uint8), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = _fill_holes(_largest_parts(mask))
    cover = float(mask.mean())
    return mask if _MIN_COVER <= cover <= _MAX_COVER else None


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 0/1 (or 0..255 with ``> 0.5`` meaning set) mask to (height, width), bool."""
    height, width = size
    resized = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return resized > 0.5


def estimate_foreground(image_rgb_uint8: np.ndarray) -> np.ndarray:
    """Estimated object mask of one image: (H, W, 3) uint8 RGB (or (H, W) gray) → bool (H, W).

    Runs at a long side of 256 px for speed and returns at the image's size, undilated.
    A degenerate estimate (under 1 % or over 99 % of the image) gives all ones, i.e. no
    restriction, which is always safe for training.
    """
    image = _as_rgb(image_rgb_uint8)
    return _estimate_at(image, image.shape[:2])


def _estimate_at(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``estimate_foreground`` resized straight from the working resolution to (h, w)."""
    small = _estimate_small(_as_rgb(image))
    if small is None:
        return np.ones(size, dtype=bool)
    return _resize_mask(small, size)


def dilate_mask(mask: np.ndarray, kernel_size: int = 5) -> np.ndarray:
    """Dilate a bool mask (H, W) once with a kernel_size × kernel_size all-ones kernel → bool."""
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    kernel = np.ones((kernel_size, kernel_size), dtype=np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel, iterations=1).astype(bool)


def _target_size(
    images: Sequence[np.ndarray], size: int | tuple[int, int] | None
) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if size is not None:
        return (int(size[0]), int(size[1]))
    shapes = {image.shape[:2] for image in images}
    if len(shapes) != 1:
        raise ValueError(
            f"images have different sizes {sorted(shapes)} (or none were given); pass size="
        )
    return shapes.pop()


def mask_folder(folder: str | Path, dataset: str | None, category: str | None) -> Path:
    """The folder holding one category's masks: ``folder`` itself, or, when ``folder`` is the
    root of the authors' release (``<root>/visa_masks/fryum/train/good/``) or of a tree per
    category (``<root>/fryum/train/good/``), the category's folder inside it."""
    root = Path(folder)
    candidates = []
    if category:
        if dataset in AUTHORS_MASK_DATASETS:
            name = AUTHORS_MASK_DATASETS[dataset]
            candidates.append(root / f"{name}_masks" / category / "train" / "good")
        candidates.append(root / category / "train" / "good")
    return next((path for path in candidates if path.is_dir()), root)


def _find_mask_file(folder: Path, stem: str) -> Path:
    for suffix in _MASK_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise FileNotFoundError(
        f"no foreground mask for image '{stem}' in {folder}: expected one of "
        f"{', '.join(stem + suffix for suffix in _MASK_SUFFIXES)} (one mask per image, matched "
        "by file name)"
    )


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Read a mask PNG, resize it bilinearly and keep pixels above half intensity: bool (h, w)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot read foreground mask {path}: not a readable image file")
    return _resize_mask(mask.astype(np.float32) / 255.0, size)


def foreground_masks(
    images: Sequence[np.ndarray],
    *,
    mode: Literal["estimate", "folder", "none"] = "estimate",
    stems: Sequence[str] | None = None,
    folder: str | Path | None = None,
    size: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Dilated foreground masks for a list of images: bool (N, h, w).

    images: RGB uint8 (H, W, 3) each. mode "estimate" runs ``estimate_foreground``; "folder"
    reads ``<folder>/<stem>.png``, ``<stem>_mask.png`` or ``<stem>.JPG`` for each of ``stems``
    (see ``mask_folder`` for the authors' release tree); "none"
    gives all ones (texture categories). size: an int (square) or (h, w); by default the size
    of the images, which must then agree. Masks are resized to ``size`` and then dilated 5×5.
    """
    if mode not in FOREGROUND_MODES:
        choices = ", ".join(FOREGROUND_MODES)
        raise ValueError(f"unknown foreground mode {mode!r}; use one of {choices}")
    if mode == "folder":
        if folder is None or stems is None:
            raise ValueError("foreground mode 'folder' needs both folder= and stems=")
        if len(stems) != len(images):
            raise ValueError(
                f"got {len(stems)} stems for {len(images)} images; pass one stem per image"
            )
    target = _target_size(images, size)
    if mode == "none":
        return np.ones((len(images), *target), dtype=bool)
    if mode == "folder":
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"foreground mask folder {root} does not exist")
        masks = [_read_mask(_find_mask_file(root, stem), target) for stem in stems]
    else:
        masks = [_estimate_at(image, target) for image in images]
    if not masks:
        return np.zeros((0, *target), dtype=bool)
    return np.stack([dilate_mask(mask) for mask in masks])
