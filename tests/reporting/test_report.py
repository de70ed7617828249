"""The per-category Markdown report."""

from __future__ import annotations

import numpy as np

from transfusion_ad.reporting.report import (
    FIGURE_CAPTIONS,
    ThresholdSummary,
    category_report,
    checkpoint_recipe,
    threshold_summary,
)

METRICS = {
    "image_auroc": 0.91,
    "image_ap": 0.95,
    "pixel_auroc": 0.88,
    "pixel_ap": 0.3,
    "aupro": 0.7,
    "f1_max": 0.9,
    "f1_optimal_image_threshold_test_optimistic": 0.42,
    "thresholds": {"image": 0.5, "pixel": 0.45},
    "evaluation_resolution": "model",
}


def test_report_gathers_metrics_thresholds_figures_recipe_and_the_predict_command():
    summary = ThresholdSummary(normal=10, anomalous=25, flagged_normal=1, flagged_anomalous=20)
    recipe = {"image_size": 64, "model.num_steps": 20, "evaluation.box_size": 5}
    report = category_report(
        "visa", "fryum", METRICS, recipe, ["roc_curve", "reverse_process"], summary
    )
    # Ours beside the authors' released fryum model (98.7 image AUROC, 86.6 AUPRO).
    assert "| image_auroc | 0.9100 | 0.987 |" in report
    assert "| aupro | 0.7000 | 0.866 |" in report
    assert "| image_ap | 0.9500 |  |" in report, "no authors' value for image AP"
    assert "| image | 0.5000 |" in report and "| pixel | 0.4500 |" in report
    assert "flags 20 of 25 anomalous images and 1 of 10 normal ones" in report
    assert "0.4200: optimistic" in report
    assert "![roc_curve](figures/roc_curve.png)" in report
    assert FIGURE_CAPTIONS["reverse_process"] in report
    assert "| model.num_steps | `20` |" in report and "| image_size | `64` |" in report
    assert "--params dataset=visa,category=fryum,input_dir=path/to/images" in report


def test_a_category_without_published_numbers_leaves_the_authors_column_empty():
    report = category_report("folder", "screws", METRICS, {}, [])
    assert "| image_auroc | 0.9100 |  |" in report
    assert "flags" not in report, "no test summary was given"


def test_threshold_summary_counts_scores_at_or_above_the_image_threshold_per_label():
    scores = np.array([0.1, 0.5, 0.7, 0.5, 0.2])
    labels = np.array([0, 0, 1, 1, 1])
    summary = threshold_summary(scores, labels, {"image": 0.5, "pixel": 0.9})
    assert summary == ThresholdSummary(normal=2, anomalous=3, flagged_normal=1, flagged_anomalous=2)


def test_the_recipe_is_the_checkpoints_own():
    checkpoint = {
        "recipe": {"image_size": 64, "base_width": 32, "num_steps": 20},
        "train_config": {"epochs": 60, "lr": 3e-4},
        "epochs": 42,
    }
    recipe = checkpoint_recipe(checkpoint, {"box_size": 5})
    assert recipe == {
        "image_size": 64,
        "model.base_width": 32,
        "model.num_steps": 20,
        "training.epochs": 60,
        "training.lr": 3e-4,
        "training.epochs_done": 42,
        "evaluation.box_size": 5,
    }
