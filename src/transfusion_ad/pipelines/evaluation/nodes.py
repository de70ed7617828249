"""Nodes of evaluation: thin wrappers over core.fusion, core.metrics and reporting."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from transfusion_ad.core.fusion import fuse_masks, image_scores, reconstruction_error
from transfusion_ad.core.metrics import compute_all
from transfusion_ad.core.resize import evaluation_pairs
from transfusion_ad.core.thresholds import calibrate_thresholds
from transfusion_ad.data import load_mask, to_model_range
from transfusion_ad.data.images import image_size
from transfusion_ad.reporting.figures import (
    overlay_grid_figure,
    roc_figure,
    score_histogram_figure,
)
from transfusion_ad.reporting.report import category_report

logger = logging.getLogger(__name__)

_GRID_COUNT = 4  # best- and worst-scored images shown per group


def fuse_anomaly_maps(outputs: dict[str, Tensor], image_set: dict, evaluation: dict) -> dict:
    """{"maps": (N, S, S) float32 fused maps, "scores": (N,), "labels", "paths"} (spec §7)."""
    error = reconstruction_error(to_model_range(image_set["images"]), outputs["reconstruction"])
    fused = fuse_masks(
        outputs["mask"],
        error,
        weight=evaluation["fusion_weight"],
        kernel_size=evaluation["box_size"],
    )
    return {
        "maps": fused[:, 0].float(),
        "scores": image_scores(fused).float(),
        "labels": image_set["labels"],
        "paths": list(image_set["paths"]),
    }


def calibrate(holdout_maps: dict, evaluation: dict) -> dict[str, float]:
    """Image and pixel thresholds from held-out normal training images only."""
    thresholds = calibrate_thresholds(
        holdout_maps["scores"].numpy(),
        holdout_maps["maps"].numpy(),
        quantile=evaluation["threshold_quantile"],
        pixel_quantile=evaluation["pixel_threshold_quantile"],
    )
    logger.info("Calibrated thresholds: %s", thresholds)
    return thresholds


def _evaluation_arrays(
    anomaly_maps: dict, test_set: dict, evaluation: dict
) -> tuple[list | np.ndarray, list | np.ndarray]:
    """Maps and masks at the model resolution, or at each image's native one."""
    if evaluation["resolution"] == "model":
        return anomaly_maps["maps"].numpy(), test_set["masks"].numpy()
    native_masks = []
    for path, mask_path in zip(test_set["paths"], test_set["mask_paths"], strict=True):
        if mask_path is not None:
            native_masks.append(load_mask(mask_path))
        else:
            width, height = image_size(path)
            native_masks.append(np.zeros((height, width), bool))
    return evaluation_pairs(anomaly_maps["maps"].numpy(), native_masks, "native")


def compute_metrics(
    anomaly_maps: dict, test_set: dict, thresholds: dict[str, float], evaluation: dict
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, float]]]:
    """(metrics for metrics.json, the same for the versioned history, MLflow metrics)."""
    maps, masks = _evaluation_arrays(anomaly_maps, test_set, evaluation)
    values = compute_all(
        anomaly_maps["scores"].numpy(),
        anomaly_maps["labels"].numpy(),
        maps,
        masks,
        fpr_limit=evaluation["fpr_limit"],
    )
    metrics = {name: float(value) for name, value in values.items()}
    metrics["thresholds"] = dict(thresholds)
    metrics["evaluation_resolution"] = evaluation["resolution"]
    logger.info(
        "Metrics: %s",
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)),
    )
    for_mlflow = {
        name: {"value": float(value), "step": 0}
        for name, value in metrics.items()
        if isinstance(value, float)
    }
    return metrics, metrics, for_mlflow


def make_figures(
    anomaly_maps: dict, test_set: dict, metrics: dict[str, Any]
) -> tuple[dict[str, Figure], list[str]]:
    """(figures, their names): ROC curve, score histogram, best/worst scored test images."""
    scores = anomaly_maps["scores"].numpy()
    labels = anomaly_maps["labels"].numpy()
    maps = anomaly_maps["maps"].numpy()
    masks = test_set["masks"].numpy()
    vmax = float(maps.max()) or 1.0
    figures = {
        "roc_curve": roc_figure(scores, labels, metrics["image_auroc"]),
        "score_histogram": score_histogram_figure(
            scores, labels, metrics["thresholds"].get("image")
        ),
    }
    order = np.argsort(scores)
    picks = {
        "highest_scored": order[::-1][:_GRID_COUNT],
        "lowest_scored_anomalous": [i for i in order if labels[i] == 1][:_GRID_COUNT],
        "highest_scored_normal": [i for i in order[::-1] if labels[i] == 0][:_GRID_COUNT],
    }
    for name, chosen in picks.items():
        index = np.array(chosen, dtype=np.int64)
        if len(index) == 0:
            continue
        titles = [anomaly_maps["paths"][i].rsplit("/", 1)[-1] for i in index]
        figures[name] = overlay_grid_figure(
            test_set["images"][torch.as_tensor(index)],
            maps[index],
            masks[index],
            scores[index],
            titles,
            vmax,
        )
    return {f"{name}.png": figure for name, figure in figures.items()}, list(figures)


def write_report(
    metrics: dict[str, Any],
    figure_names: list[str],
    dataset: str,
    category: str,
    image_size: int,
    model: dict[str, Any],
    evaluation: dict[str, Any],
) -> str:
    """The per-category Markdown report beside the figures."""
    recipe = {"image_size": image_size, **model, **evaluation}
    return category_report(dataset, category, metrics, recipe, figure_names)
