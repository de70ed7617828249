"""Nodes of data_ingestion: thin wrappers over transfusion_ad.data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch

from transfusion_ad.core.metrics import not_computable
from transfusion_ad.core.protocol import Protocol
from transfusion_ad.core.resize import resize_mask, resize_masks
from transfusion_ad.data import DataLayoutError, load_images, load_mask, validate_manifest
from transfusion_ad.data.images import image_size
from transfusion_ad.data.index import missing_masks

logger = logging.getLogger(__name__)

TRAIN, HOLDOUT, TEST = "train", "holdout", "test"
DOWNSCALE_WARNING = 4.0  # warn when the images' shorter side is this many times image_size


def validate_index(
    category_index: pd.DataFrame, data: dict[str, Any]
) -> tuple[pd.DataFrame, list[str]]:
    """Open every header; unreadable files stop the run or, with skip_unreadable, are dropped.
    Anomalous test images without a mask stop the run only with ``data.require_masks``; the
    metrics this test set cannot support are named in one log line, before any training."""
    manifest, skipped = validate_manifest(category_index, skip_unreadable=data["skip_unreadable"])
    unmasked = missing_masks(manifest)
    if unmasked and data["require_masks"]:
        raise DataLayoutError(
            f"{len(unmasked)} anomalous test image(s) have no mask (data.require_masks: true): "
            f"{', '.join(unmasked)}. Add '<stem>_mask.png' or '<stem>.png' masks for them, move "
            "defect-free ones to the good folder, or set data.require_masks: false."
        )
    test = manifest[manifest["split"] == "test"]
    labels = test["label"].tolist()
    reasons = not_computable(labels, has_masks(labels, test["mask_path"].tolist()))
    if reasons:
        by_reason: dict[str, list[str]] = {}
        for metric, reason in reasons.items():
            by_reason.setdefault(reason, []).append(metric)
        logger.warning(
            "This data cannot give %s; they will be null in metrics.json.",
            "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()),
        )
    if unmasked:
        logger.info(
            "%d anomalous test image(s) without a mask: pixel metrics use the other %d test "
            "images.",
            len(unmasked),
            len(test) - len(unmasked),
        )
    return manifest, skipped


def split_holdout(
    category_index: pd.DataFrame, data: dict[str, Any], seed: int, protocol: str = "default"
) -> pd.DataFrame:
    """Add a ``subset`` column: train, holdout (normal train images for thresholds) or test.

    The held-out images are a seeded random choice, so the same seed gives the same split. The
    paper protocol holds nothing out: it trains on all of train/good, as the authors do.
    """
    manifest = category_index.copy()
    manifest["subset"] = np.where(manifest["split"] == "train", TRAIN, TEST)
    train_rows = np.flatnonzero(manifest["subset"].to_numpy() == TRAIN)
    if not Protocol.named(protocol).holdout:
        logger.info(
            "Protocol paper: training on all %d train/good images; the thresholds will come "
            "from the test set's good images.",
            len(train_rows),
        )
        return manifest
    count = max(int(round(len(train_rows) * data["holdout_fraction"])), data["holdout_min"])
    if count >= len(train_rows) - 1:
        raise ValueError(
            f"Only {len(train_rows)} training images: cannot hold out {count} for threshold "
            "calibration and still train (data.holdout_fraction / data.holdout_min)."
        )
    chosen = np.random.default_rng(seed).choice(train_rows, size=count, replace=False)
    manifest.loc[chosen, "subset"] = HOLDOUT
    counts = manifest["subset"].value_counts().to_dict()
    logger.info("Manifest: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return manifest


def _rows(manifest: pd.DataFrame, subset: str) -> pd.DataFrame:
    return manifest[manifest["subset"] == subset].reset_index(drop=True)


def _image_set(rows: pd.DataFrame, image_size: int, data: dict[str, Any], desc: str) -> dict:
    if rows.empty:
        return {
            "images": torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8),
            "paths": [],
            "labels": torch.zeros(0, dtype=torch.long),
            "mask_paths": [],
            "skipped": [],
        }
    loaded = load_images(
        rows["image_path"].tolist(),
        image_size,
        skip_unreadable=data["skip_unreadable"],
        desc=desc,
    )
    kept = rows.set_index("image_path").loc[loaded.paths].reset_index()
    return {
        "images": loaded.images,
        "paths": loaded.paths,
        "labels": torch.tensor(kept["label"].to_numpy(), dtype=torch.long),
        # A CSV round trip turns None into NaN: keep only real paths.
        "mask_paths": [p if isinstance(p, str) and p else None for p in kept["mask_path"]],
        "skipped": loaded.skipped,
    }


def load_train_set(manifest: pd.DataFrame, image_size: int, data: dict[str, Any]) -> dict:
    """Training images: {"images": (N, 3, S, S) uint8, "paths": [...], ...}; one warning when
    they are much larger than image_size (small defects vanish when downscaled)."""
    rows = _rows(manifest, TRAIN)
    _warn_if_downscaled(rows["image_path"].tolist(), image_size)
    return _image_set(rows, image_size, data, "train images")


def _warn_if_downscaled(paths: list[str], size: int) -> None:
    sides = [min(image_size(path)) for path in paths[:: max(1, len(paths) // 20)]]
    factor = float(np.median(sides)) / size if sides else 1.0
    if factor >= DOWNSCALE_WARNING:
        logger.warning(
            "The images are about %.0fx larger than image_size %d (shorter side %d px): "
            "defects smaller than %.0f px vanish. A larger image_size (a multiple of 32) keeps "
            "them, at more compute.",
            factor,
            size,
            int(np.median(sides)),
            factor,
        )


def load_holdout_set(manifest: pd.DataFrame, image_size: int, data: dict[str, Any]) -> dict:
    """Held-out normal training images for threshold calibration, same structure."""
    return _image_set(_rows(manifest, HOLDOUT), image_size, data, "holdout images")


def load_test_set(
    manifest: pd.DataFrame, image_size: int, data: dict[str, Any], protocol: str = "default"
) -> dict:
    """Test images plus "masks": (N, S, S) bool at model size and "has_mask": (N,) bool, False
    for anomalous images without a mask (their mask is empty and left out of the pixel metrics).
    Masks are resized by area coverage (never dilated), or as the authors do under the paper
    protocol. The set may be empty (good images only)."""
    test = _image_set(_rows(manifest, TEST), image_size, data, "test images")
    empty = np.zeros((image_size, image_size), bool)
    native = [None if path is None else load_mask(path) for path in test["mask_paths"]]
    method = Protocol.named(protocol).mask_resize
    resized = resize_masks(
        [empty if m is None else m for m in native], (image_size, image_size), method
    )
    test["masks"] = torch.from_numpy(resized.reshape(-1, image_size, image_size))
    labels = test["labels"]
    test["has_mask"] = torch.tensor(
        has_masks(labels.tolist(), test["mask_paths"]), dtype=torch.bool
    )
    _warn_about_vanished_defects(test["paths"], native, resized, image_size, method)
    return test


def has_masks(labels: list[int], mask_paths: list) -> list[bool]:
    """Per test image: whether its mask is known (normal images: empty; anomalous: a file)."""
    return [
        label == 0 or isinstance(path, str) for label, path in zip(labels, mask_paths, strict=True)
    ]


def _warn_about_vanished_defects(
    paths: list[str],
    native: list[np.ndarray | None],
    resized: np.ndarray,
    size: int,
    method: str,
) -> None:
    """List the masks that are empty at image_size, each with the smallest multiple of 32 at
    which its defect survives the resize."""
    vanished = []
    for path, mask, small in zip(paths, native, resized, strict=True):
        if mask is None or small.any() or not mask.any():
            continue
        survives = next(
            (
                s
                for s in range(size + 32, max(mask.shape) + 32, 32)
                if resize_mask(mask, (s, s), method).any()
            ),
            None,
        )
        vanished.append(f"{Path(path).name} ({survives or 'native'} px)")
    if vanished:
        logger.warning(
            "%d defect mask(s) are empty at image_size %d, so those defects count for nothing in "
            "the pixel metrics: %s. In brackets, the smallest image_size that keeps each one.",
            len(vanished),
            size,
            ", ".join(vanished),
        )


def record_skipped_images(
    unreadable_headers: list[str], train_set: dict, holdout_set: dict, test_set: dict
) -> dict[str, Any]:
    """List every file skipped as unreadable; log the count to MLflow as data.skipped_images."""
    skipped = sorted(
        {*unreadable_headers, *train_set["skipped"], *holdout_set["skipped"], *test_set["skipped"]}
    )
    if skipped:
        logger.warning("%d unreadable image(s) skipped: %s", len(skipped), ", ".join(skipped))
    if mlflow.active_run() is not None:
        mlflow.log_param("data.skipped_images", len(skipped))
    return {"skipped_images": len(skipped), "files": skipped}
