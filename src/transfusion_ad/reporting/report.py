"""The per-category Markdown report: metrics beside the authors', thresholds and what they do on
the test set, the figures with what each shows, the recipe, and how to score new images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from transfusion_ad.core.metrics import METRIC_NAMES, OPTIMISTIC_THRESHOLD_KEY
from transfusion_ad.reporting.results_table import AUTHORS_RESULTS

FIGURE_CAPTIONS = {
    "roc_curve": "ROC curves on the test set, image level (image scores) and pixel level.",
    "pro_curve": "Per-region overlap against the pixel false-positive rate, up to the AUPRO limit.",
    "score_histogram": (
        "Image scores of the normal and anomalous test images; dashed: the threshold calibrated "
        "on held-out normal training images; dotted: the F1-optimal threshold on the test set "
        "(optimistic: chosen on the data it is scored on)."
    ),
    "best_worst_anomalous": (
        "Anomalous test images: the highest scored (best detected) and the lowest scored (first "
        "missed). One fixed heat-map scale for every image; white outline: the calibrated pixel "
        "threshold; 'flagged': image score at or above the calibrated image threshold."
    ),
    "best_worst_normal": (
        "Normal test images: the lowest scored (best) and the highest scored (first false "
        "alarms), on the same fixed scale."
    ),
    "reverse_process": (
        "The reverse process on anomalous test images (the paper's Figure 3): the image x_t fed "
        "in, the predicted mask M_t, anomaly appearance ε_t (magnitude, one gain for the whole "
        "figure) and normal appearance n_t, every few steps from t = T-2 down to 1; last column: "
        "the reconstruction, the final anomaly map and the ground truth."
    ),
    "synthetic_preview": (
        "Synthetic anomalies the model was trained on: clean image, image with the anomaly at "
        "transparency β, the true mask M and the simulated input mask M_a."
    ),
}


@dataclass(frozen=True)
class ThresholdSummary:
    """What the calibrated image threshold does on the labelled test set."""

    normal: int
    anomalous: int
    flagged_normal: int
    flagged_anomalous: int


def threshold_summary(
    scores: np.ndarray, labels: np.ndarray, thresholds: Mapping[str, float]
) -> ThresholdSummary:
    """Counts of test images (N,) flagged by the image threshold (score >= it), per label."""
    flagged = scores >= thresholds["image"]
    normal, anomalous = labels == 0, labels == 1
    return ThresholdSummary(
        normal=int(normal.sum()),
        anomalous=int(anomalous.sum()),
        flagged_normal=int((flagged & normal).sum()),
        flagged_anomalous=int((flagged & anomalous).sum()),
    )


def checkpoint_recipe(checkpoint: Mapping[str, Any], evaluation: Mapping[str, Any]) -> dict:
    """The recipe a model was trained with (its checkpoint's), flat, with the evaluation's."""
    trained = checkpoint["recipe"]
    return {
        "image_size": trained["image_size"],
        **{f"model.{k}": v for k, v in trained.items() if k != "image_size"},
        **{f"training.{k}": v for k, v in checkpoint.get("train_config", {}).items()},
        "training.epochs_done": checkpoint.get("epochs"),
        **{f"evaluation.{k}": v for k, v in evaluation.items()},
    }


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"`{value}`"


def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {_value(value)} |" for key, value in rows]
    return lines


def _metrics_table(dataset: str, category: str, metrics: Mapping[str, Any]) -> list[str]:
    authors = AUTHORS_RESULTS.get(dataset, {}).get(category, {})
    lines = ["| metric | this run | authors' released model |", "|---|---|---|"]
    for name in METRIC_NAMES:
        if name not in metrics:
            continue
        reference = authors.get(name)
        theirs = "" if reference is None else f"{reference / 100:.3f}"
        value = metrics[name]
        ours = (
            f"not computed: {metrics.get('not_computed', {}).get(name, 'no data')}"
            if value is None
            else f"{value:.4f}"
        )
        lines.append(f"| {name} | {ours} | {theirs} |")
    pixel_images = metrics.get("pixel_metrics_images")
    if pixel_images is not None and metrics.get("pixel_auroc") is not None:
        lines += [
            "",
            f"Image metrics over {metrics.get('image_metrics_images')} test images, pixel "
            f"metrics over the {pixel_images} of them that have a mask (normal images included).",
        ]
    return lines


def _calibration_lines(calibration: Mapping[str, Any] | None) -> list[str]:
    """How many good images the image threshold rests on, and the false-reject rate bound."""
    if not calibration:
        return []
    source = {
        "holdout": "held-out normal training images",
        "good_dir": "good images given",
        "test_good": "good test images (protocol paper)",
    }
    return [
        "",
        f"The image threshold rests on {calibration['good_images']} "
        f"{source.get(calibration['source'], calibration['source'])}; "
        f"{calibration['at_or_above_threshold']} of them score at or above it (false-reject rate "
        f"{calibration['false_reject_rate']:.3f}, 95 % upper bound "
        f"{calibration['false_reject_rate_upper_95']:.3f}, Clopper–Pearson). More good images "
        "tighten the bound: `kedro run --pipelines=calibrate` (see the README).",
    ]


def _summary_lines(summary: ThresholdSummary | None) -> list[str]:
    if summary is None:
        return []
    return [
        "",
        f"On the test set ({summary.normal} normal, {summary.anomalous} anomalous images) the "
        f"image threshold flags {summary.flagged_anomalous} of {summary.anomalous} anomalous "
        f"images and {summary.flagged_normal} of {summary.normal} normal ones.",
    ]


def _protocol_lines(metrics: Mapping[str, Any]) -> list[str]:
    """Which protocol made these numbers, and what that means for the thresholds."""
    if metrics.get("protocol", "default") != "paper":
        return [
            "Protocol: **default** (this project's): 10 % of train/good held out for the "
            "thresholds and never trained on; ground truth resized by area coverage.",
        ]
    return [
        "Protocol: **paper** (the authors'): trained on all of train/good; ground truth resized "
        "as the authors do (PIL bilinear, > 0.5, about a pixel of dilation); their signed SSIM "
        "in the normal loss.",
    ]


def _threshold_source_line(metrics: Mapping[str, Any]) -> str:
    if metrics.get("thresholds_from_test_set"):
        return (
            "Calibrated on the test set's **good images** (protocol paper, no training image "
            "was held out): the counts below are not independent of the test set, and predict "
            "warns when it uses these thresholds. A score at or above the threshold is called "
            "anomalous."
        )
    return (
        "Calibrated on held-out normal training images only (no test image). A score at or "
        "above the threshold is called anomalous."
    )


def category_report(
    dataset: str,
    category: str,
    metrics: Mapping[str, Any],
    recipe: Mapping[str, Any],
    figures: Iterable[str],
    test_summary: ThresholdSummary | None = None,
) -> str:
    """Markdown that links the figures saved beside it, as figures/<name>.png."""
    thresholds = metrics.get("thresholds", {})
    optimistic = metrics.get(OPTIMISTIC_THRESHOLD_KEY)
    figure_lines = []
    for name in figures:
        figure_lines += [f"![{name}](figures/{name}.png)", ""]
        if name in FIGURE_CAPTIONS:
            figure_lines += [f"*{FIGURE_CAPTIONS[name]}*", ""]
    lines = [
        f"# TransFusion AD report: {dataset} / {category}",
        "",
        "## Metrics (test set)",
        "",
        f"Evaluated at the {metrics.get('evaluation_resolution', 'model')} resolution. The "
        "authors' numbers are their released checkpoints (256 px, 1500 epochs); a smaller or "
        "shorter recipe is not expected to reach them.",
        "",
        *_protocol_lines(metrics),
        "",
        *_metrics_table(dataset, category, metrics),
        "",
        "## Thresholds",
        "",
        _threshold_source_line(metrics),
        "",
        *_table(sorted(thresholds.items()), ("threshold", "value")),
        *_calibration_lines(metrics.get("threshold_calibration")),
        *_summary_lines(test_summary),
        "",
    ]
    if optimistic is not None:
        lines += [
            f"The F1-optimal image threshold on the test set is {optimistic:.4f}: optimistic, "
            "since it was chosen on the data it is scored on; never deploy it.",
            "",
        ]
    lines += [
        "## Figures",
        "",
        *figure_lines,
        "## Recipe",
        "",
        *_table(sorted(recipe.items()), ("parameter", "value")),
        "",
        "## Score new images",
        "",
        "```bash",
        "kedro run --pipelines=predict "
        f"--params dataset={dataset},category={category},input_dir=path/to/images",
        "```",
        "",
        "Add the `--env` this model was trained with; pin a version with "
        "`--load-versions model_checkpoint:<version>,thresholds:<version>`.",
        "",
    ]
    return "\n".join(lines)
