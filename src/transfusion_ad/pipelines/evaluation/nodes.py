"""Nodes of evaluation: thin wrappers over core.fusion, core.metrics and reporting."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from transfusion_ad.core.device import resolve_device
from transfusion_ad.core.fusion import fuse_masks, image_scores, reconstruction_error
from transfusion_ad.core.identity import model_binding
from transfusion_ad.core.metrics import compute_all
from transfusion_ad.core.resize import evaluation_pairs
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.thresholds import calibrate_thresholds
from transfusion_ad.data import load_mask, to_model_range
from transfusion_ad.data.images import image_size
from transfusion_ad.pipelines.inference.nodes import load_trained_model
from transfusion_ad.reporting import evaluation_figures
from transfusion_ad.reporting.overlays import HeatmapStyle
from transfusion_ad.reporting.report import (
    category_report,
    checkpoint_recipe,
    threshold_summary,
)

logger = logging.getLogger(__name__)


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


def calibrate(holdout_maps: dict, model_checkpoint: dict, evaluation: dict) -> dict[str, Any]:
    """Image and pixel thresholds from held-out normal training images only, bound to the model
    whose maps they come from: {"image", "pixel", "model": {"weights_digest", "identity"}}."""
    thresholds: dict[str, Any] = calibrate_thresholds(
        holdout_maps["scores"].numpy(),
        holdout_maps["maps"].numpy(),
        quantile=evaluation["threshold_quantile"],
        pixel_quantile=evaluation["pixel_threshold_quantile"],
    )
    logger.info("Calibrated thresholds: %s", thresholds)
    thresholds["model"] = model_binding(model_checkpoint)
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
    metrics["thresholds"] = {k: v for k, v in thresholds.items() if k != "model"}
    metrics["model"] = thresholds.get("model")
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
    anomaly_maps: dict,
    test_set: dict,
    metrics: dict[str, Any],
    evaluation: dict[str, Any],
    heatmap: dict[str, Any],
    figures: dict[str, Any],
) -> tuple[dict[str, Figure], list[str]]:
    """(figures, their names): ROC and PRO curves, score histogram, best/worst test images."""
    maps, masks = _evaluation_arrays(anomaly_maps, test_set, evaluation)
    made = evaluation_figures.evaluation_set_figures(
        anomaly_maps,
        test_set,
        metrics,
        (maps, masks),
        evaluation["fpr_limit"],
        HeatmapStyle.from_params(heatmap),
        figures["examples_per_group"],
    )
    return {f"{name}.png": figure for name, figure in made.items()}, list(made)


def plot_reverse_process(
    model_checkpoint: dict[str, Any],
    test_set: dict,
    anomaly_maps: dict,
    thresholds: dict[str, float],
    inference: dict[str, Any],
    heatmap: dict[str, Any],
    figures: dict[str, Any],
    device: str,
) -> Figure:
    """The paper's Figure 3 for the highest-scored anomalous test images."""
    target = resolve_device(device)
    return evaluation_figures.reverse_process_strip(
        load_trained_model(model_checkpoint, target),
        TransparencySchedule(model_checkpoint["recipe"]["num_steps"]),
        test_set,
        anomaly_maps,
        inference["mask_divisor"],
        HeatmapStyle.from_params(heatmap),
        thresholds.get("pixel"),
        figures,
    )


def write_report(
    metrics: dict[str, Any],
    anomaly_maps: dict,
    figure_names: list[str],
    model_checkpoint: dict[str, Any],
    dataset: str,
    category: str,
    evaluation: dict[str, Any],
) -> str:
    """The per-category Markdown report beside the figures; the recipe is the one the model
    was trained with (read from its checkpoint)."""
    summary = threshold_summary(
        anomaly_maps["scores"].numpy(), anomaly_maps["labels"].numpy(), metrics["thresholds"]
    )
    recipe = checkpoint_recipe(model_checkpoint, evaluation)
    names = [*figure_names, *evaluation_figures.SEPARATE_FIGURES]
    return category_report(dataset, category, metrics, recipe, names, summary)
