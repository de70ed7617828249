"""Which curves and test images the evaluation figures show, and the figures themselves.

Kept out of the Kedro nodes so they stay thin: the nodes pass the catalog's data in, this module
picks the best and worst scored images, samples the curves and runs the reverse process once
more, with its step records, for the strip.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from transfusion_ad.core.detector import TransFusionDetector
from transfusion_ad.core.metrics import OPTIMISTIC_THRESHOLD_KEY, pixel_roc_curve, pro_curve
from transfusion_ad.reporting.figures import (
    ExampleGroup,
    examples_figure,
    pro_figure,
    reverse_process_figure,
    roc_figure,
    score_histogram_figure,
)
from transfusion_ad.reporting.overlays import HeatmapStyle

# Figures saved by datasets of their own (figures/<name>.png), listed in the report too.
SEPARATE_FIGURES = ("reverse_process", "synthetic_preview")


def display_name(path: str) -> str:
    """'<defect folder>/<file name>': enough to find a test image again."""
    parts = PurePath(path).parts
    return "/".join(parts[-2:])


def best_and_worst(ranked: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last (worst first) of a ranking, best first; never the same image twice.

    ranked: (N,) indices; returns up to ``count`` each (fewer when N < 2 count).
    """
    best = min(count, math.ceil(len(ranked) / 2))
    worst = min(count, len(ranked) - best)
    return ranked[:best], ranked[::-1][:worst]


def _group(title: str, index: np.ndarray, anomaly_maps: dict, test_set: dict) -> ExampleGroup:
    return ExampleGroup(
        title=title,
        images=test_set["images"][torch.as_tensor(np.array(index), dtype=torch.long)],
        maps=anomaly_maps["maps"].numpy()[index],
        masks=test_set["masks"].numpy()[index],
        scores=anomaly_maps["scores"].numpy()[index],
        names=[display_name(anomaly_maps["paths"][i]) for i in index],
    )


def evaluation_set_figures(
    anomaly_maps: dict,
    test_set: dict,
    metrics: dict[str, Any],
    pixel_pairs: tuple[Any, Any],
    fpr_limit: float,
    style: HeatmapStyle,
    examples_per_group: int,
) -> dict[str, Figure]:
    """ROC and PRO curves, the score histogram, and the best/worst scored test images.

    anomaly_maps: {"maps" (N, S, S), "scores" (N,), "labels" (N,), "paths"}; test_set: images
    (N, 3, S, S) and masks (N, S, S); pixel_pairs: maps and masks at the evaluation resolution
    (as the pixel metrics saw them).
    """
    scores, labels = anomaly_maps["scores"].numpy(), anomaly_maps["labels"].numpy()
    thresholds = metrics.get("thresholds", {})
    figures: dict[str, Figure] = {}
    if metrics["image_auroc"] is not None:  # the curves need both labels (and masks)
        pixel_curve = pixel_roc_curve(*pixel_pairs) if metrics["pixel_auroc"] is not None else None
        figures["roc_curve"] = roc_figure(
            scores, labels, metrics["image_auroc"], pixel_curve, metrics["pixel_auroc"]
        )
    if metrics["aupro"] is not None:
        figures["pro_curve"] = pro_figure(
            *pro_curve(*pixel_pairs, fpr_limit=fpr_limit), metrics["aupro"], fpr_limit
        )
    if len(scores):
        figures["score_histogram"] = score_histogram_figure(
            scores, labels, thresholds.get("image"), metrics.get(OPTIMISTIC_THRESHOLD_KEY)
        )
    by_score = np.argsort(-scores, kind="stable")
    rankings = {
        # Anomalous: best = highest scored; normal: best = lowest scored.
        "best_worst_anomalous": (by_score[labels[by_score] == 1], "highest", "lowest"),
        "best_worst_normal": (by_score[::-1][labels[by_score[::-1]] == 0], "lowest", "highest"),
    }
    for name, (ranked, best_title, worst_title) in rankings.items():
        best, worst = best_and_worst(ranked, examples_per_group)
        groups = [
            _group(f"{title} scored", index, anomaly_maps, test_set)
            for title, index in ((best_title, best), (worst_title, worst))
            if len(index)
        ]
        if groups:
            figures[name] = examples_figure(
                groups, style, thresholds.get("pixel"), thresholds.get("image")
            )
    return figures


def no_test_images_figure() -> Figure:
    """Stands in for the reverse-process strip when the data has no test image."""
    figure = Figure(figsize=(6, 1.5))
    axes = figure.add_subplot()
    axes.axis("off")
    axes.text(0.5, 0.5, "No test images: nothing to show.", ha="center", va="center")
    return figure


def spread(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` evenly spaced indices of range(count), first and last included."""
    return sorted({round(i) for i in np.linspace(0, count - 1, max(1, min(wanted, count)))})


def reverse_process_strip(
    detector: TransFusionDetector,
    test_set: dict,
    anomaly_maps: dict,
    style: HeatmapStyle,
    pixel_threshold: float | None,
    settings: dict[str, Any],
) -> Figure:
    """The reverse process, step by step, on the highest-scored anomalous test images whose
    defect is still visible at the model's resolution (then other anomalous ones, then any);
    settings: strip_images, strip_steps."""
    scores, labels = anomaly_maps["scores"].numpy(), anomaly_maps["labels"].numpy()
    anomalous = labels == 1
    visible = anomalous & test_set["masks"].numpy().reshape(len(scores), -1).any(axis=1)
    # Best first by: anomalous with a visible defect, then anomalous, then score.
    ranked = np.lexsort((-scores, ~anomalous, ~visible))
    pick = ranked[: settings["strip_images"]]
    images = test_set["images"][torch.as_tensor(np.array(pick), dtype=torch.long)]
    output = detector.reverse(images, return_steps=True)
    steps = output.steps or []
    return reverse_process_figure(
        images,
        [steps[i] for i in spread(len(steps), settings["strip_steps"])],
        output.reconstruction,
        anomaly_maps["maps"].numpy()[pick],
        test_set["masks"].numpy()[pick],
        [f"{display_name(anomaly_maps['paths'][i])}, score {scores[i]:.3f}" for i in pick],
        style,
        pixel_threshold,
    )
