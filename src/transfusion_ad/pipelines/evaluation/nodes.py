"""Nodes of evaluation: thin wrappers over core.fusion, core.metrics and reporting."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from transfusion_ad.core.bundle import save_bundle
from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.identity import model_binding
from transfusion_ad.core.metrics import compute_available
from transfusion_ad.core.protocol import TEST_GOOD, Protocol, thresholds_from_test_set
from transfusion_ad.core.resize import evaluation_pairs
from transfusion_ad.core.thresholds import calibrate_thresholds, calibration_record
from transfusion_ad.data import load_mask
from transfusion_ad.data.images import image_size
from transfusion_ad.reporting import evaluation_figures
from transfusion_ad.reporting.overlays import HeatmapStyle
from transfusion_ad.reporting.report import (
    category_report,
    checkpoint_recipe,
    threshold_summary,
)
from transfusion_ad.serving import mlflow_model as mlflow_serving

logger = logging.getLogger(__name__)


def fuse_anomaly_maps(
    outputs: dict[str, Tensor], image_set: dict, inference: dict, evaluation: dict
) -> dict:
    """{"maps": (N, S, S) float32 fused maps, "scores": (N,), "labels", "paths"} (spec §7)."""
    maps, scores = Scoring.from_params(inference, evaluation).fuse(
        image_set["images"], outputs["mask"], outputs["reconstruction"]
    )
    return {
        "maps": maps,
        "scores": scores,
        "labels": image_set["labels"],
        "paths": list(image_set["paths"]),
    }


def calibrate(
    holdout_maps: dict,
    model_checkpoint: dict,
    inference: dict,
    evaluation: dict,
    anomaly_maps: dict | None = None,
    protocol: str = "default",
) -> dict[str, Any]:
    """Image and pixel thresholds from normal images, bound to the model whose maps they come
    from and to the scoring that made the maps:
    {"image", "pixel", "scoring": {...}, "model": {...}, "calibration": {"source", ...}}.

    The default protocol calibrates on held-out normal training images only. The paper protocol
    trains on all of them, so it calibrates on the test set's good images and says so in
    ``calibration.source`` ("test_good"), which predict warns about."""
    normal = holdout_maps
    source = Protocol.named(protocol).threshold_source
    if source == TEST_GOOD:
        good = (anomaly_maps["labels"] == 0).numpy()
        if not good.any():
            raise ValueError(
                "protocol paper calibrates the thresholds on the test set's good images, but "
                "this test set has none: add good test images, or use protocol: default."
            )
        normal = {"scores": anomaly_maps["scores"][good], "maps": anomaly_maps["maps"][good]}
        logger.warning(
            "Protocol paper: the thresholds are calibrated on the %d good test images, so the "
            "threshold-based figures below are not independent of the test set.",
            int(good.sum()),
        )
    thresholds: dict[str, Any] = calibrate_thresholds(
        normal["scores"].numpy(),
        normal["maps"].numpy(),
        quantile=evaluation["threshold_quantile"],
        pixel_quantile=evaluation["pixel_threshold_quantile"],
    )
    logger.info("Calibrated thresholds: %s", thresholds)
    thresholds["scoring"] = Scoring.from_params(inference, evaluation).to_dict()
    thresholds["model"] = model_binding(model_checkpoint)
    thresholds["calibration"] = calibration_record(
        normal["scores"].numpy(), thresholds["image"], source
    )
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
    if not native_masks:
        return anomaly_maps["maps"].numpy(), test_set["masks"].numpy()
    return evaluation_pairs(anomaly_maps["maps"].numpy(), native_masks, "native")


def compute_metrics(
    anomaly_maps: dict,
    test_set: dict,
    thresholds: dict[str, Any],
    evaluation: dict,
    protocol: str = "default",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, float]]]:
    """(metrics for metrics.json, the same for the versioned history, MLflow metrics).

    A metric the test set cannot support is null, with its reason under ``not_computed``;
    pixel metrics use the images with a mask (``pixel_metrics_images`` says how many).
    ``protocol`` and ``thresholds_from_test_set`` say how the numbers were made."""
    maps, masks = _evaluation_arrays(anomaly_maps, test_set, evaluation)
    values, reasons, pixel_images = compute_available(
        anomaly_maps["scores"].numpy(),
        anomaly_maps["labels"].numpy(),
        maps,
        masks,
        test_set["has_mask"].numpy(),
        fpr_limit=evaluation["fpr_limit"],
    )
    metrics: dict[str, Any] = {
        name: None if value is None else float(value) for name, value in values.items()
    }
    metrics["not_computed"] = reasons
    metrics["image_metrics_images"] = len(anomaly_maps["scores"])
    metrics["pixel_metrics_images"] = pixel_images
    metrics["thresholds"] = {k: thresholds[k] for k in ("image", "pixel")}
    metrics["threshold_calibration"] = thresholds.get("calibration")
    metrics["model"] = thresholds.get("model")
    metrics["evaluation_resolution"] = evaluation["resolution"]
    metrics["protocol"] = protocol
    metrics["thresholds_from_test_set"] = thresholds_from_test_set(thresholds)
    logger.info(
        "Metrics: %s%s",
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)) or "none",
        "".join(f"; {k} not computed ({v})" for k, v in reasons.items()),
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
    """(figures, their names): ROC and PRO curves, score histogram, best/worst test images;
    the pixel curves over the images with a mask, as the pixel metrics."""
    maps, masks = _evaluation_arrays(anomaly_maps, test_set, evaluation)
    with_mask = np.flatnonzero(test_set["has_mask"].numpy())
    made = evaluation_figures.evaluation_set_figures(
        anomaly_maps,
        test_set,
        metrics,
        ([maps[i] for i in with_mask], [masks[i] for i in with_mask]),
        evaluation["fpr_limit"],
        HeatmapStyle.from_params(heatmap),
        figures["examples_per_group"],
    )
    return {f"{name}.png": figure for name, figure in made.items()}, list(made)


def plot_reverse_process(
    model_checkpoint: dict[str, Any],
    test_set: dict,
    anomaly_maps: dict,
    thresholds: dict[str, Any],
    heatmap: dict[str, Any],
    figures: dict[str, Any],
    device: str,
) -> Figure:
    """The paper's Figure 3 for the highest-scored anomalous test images (a note when there is
    no test image)."""
    if len(test_set["images"]) == 0:
        return evaluation_figures.no_test_images_figure()
    detector = TransFusionDetector.load(model_checkpoint, device, thresholds=thresholds)
    return evaluation_figures.reverse_process_strip(
        detector,
        test_set,
        anomaly_maps,
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


def log_deployable_model(
    model_bundle: dict[str, Any],
    test_set: dict,
    mlflow_params: dict[str, Any],
    dataset: str,
    category: str,
) -> None:
    """Log the deployable bundle to the active MLflow run as a pyfunc model (REST serving with
    ``mlflow models serve``), registered as ``transfusion_ad-<dataset>-<category>`` unless
    ``mlflow.register`` is false; nothing without an active run or with ``mlflow.log_model``
    false."""
    if not mlflow_params["log_model"] or mlflow.active_run() is None:
        return
    mlflow_serving.open_in_model_training_view()
    name = None
    if mlflow_params["register"]:
        name = mlflow_params["registered_name"] or mlflow_serving.registered_name(dataset, category)
    with tempfile.TemporaryDirectory() as folder:
        path = save_bundle(model_bundle, Path(folder) / "model_bundle.pt")
        info = mlflow_serving.log_model(
            path,
            test_set["paths"][0],
            name,
            model_config={"return_map": bool(mlflow_params["return_map"])},
        )
    logger.info(
        "Logged the MLflow model %s%s.", info.model_uri, f", registered as {name}" * bool(name)
    )
