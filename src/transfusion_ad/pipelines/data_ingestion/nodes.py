"""Nodes of data_ingestion: thin wrappers over transfusion_ad.data."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch

from transfusion_ad.core.resize import resize_masks
from transfusion_ad.data import load_images, load_mask, validate_manifest

logger = logging.getLogger(__name__)

TRAIN, HOLDOUT, TEST = "train", "holdout", "test"


def validate_index(
    category_index: pd.DataFrame, data: dict[str, Any]
) -> tuple[pd.DataFrame, list[str]]:
    """Open every header; unreadable files stop the run or, with skip_unreadable, are dropped."""
    return validate_manifest(category_index, skip_unreadable=data["skip_unreadable"])


def split_holdout(category_index: pd.DataFrame, data: dict[str, Any], seed: int) -> pd.DataFrame:
    """Add a ``subset`` column: train, holdout (normal train images for thresholds) or test.

    The held-out images are a seeded random choice, so the same seed gives the same split.
    """
    manifest = category_index.copy()
    manifest["subset"] = np.where(manifest["split"] == "train", TRAIN, TEST)
    train_rows = np.flatnonzero(manifest["subset"].to_numpy() == TRAIN)
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
    """Training images: {"images": (N, 3, S, S) uint8, "paths": [...], ...}."""
    return _image_set(_rows(manifest, TRAIN), image_size, data, "train images")


def load_holdout_set(manifest: pd.DataFrame, image_size: int, data: dict[str, Any]) -> dict:
    """Held-out normal training images for threshold calibration, same structure."""
    return _image_set(_rows(manifest, HOLDOUT), image_size, data, "holdout images")


def load_test_set(manifest: pd.DataFrame, image_size: int, data: dict[str, Any]) -> dict:
    """Test images plus "masks": (N, S, S) bool at model size (area resize, never dilated)."""
    test = _image_set(_rows(manifest, TEST), image_size, data, "test images")
    empty = np.zeros((image_size, image_size), bool)
    masks = [empty if path is None else load_mask(path) for path in test["mask_paths"]]
    test["masks"] = torch.from_numpy(resize_masks(masks, (image_size, image_size)))
    labels = test["labels"]
    if int(labels.sum()) == 0 or int((labels == 0).sum()) == 0:
        raise ValueError(
            f"The test set has {int(labels.sum())} anomalous and {int((labels == 0).sum())} "
            "normal images; image AUROC needs both. Add test/good and test/<defect> images."
        )
    return test


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
