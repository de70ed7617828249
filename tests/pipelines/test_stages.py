"""Each stage of train_eval run alone with SequentialRunner on MemoryDatasets (shipped sample)."""

from __future__ import annotations

import math

import pytest
import torch

from transfusion_ad.pipelines.inference.nodes import check_recipe


def test_data_ingestion_outputs(staged_catalog):
    manifest = staged_catalog.load("manifest")
    counts = manifest["subset"].value_counts().to_dict()
    assert counts == {"train": 54, "holdout": 6, "test": 35}
    holdout = manifest[manifest["subset"] == "holdout"]
    assert (holdout["split"] == "train").all() and (holdout["label"] == 0).all()
    test_set = staged_catalog.load("test_set")
    assert test_set["images"].shape == (35, 3, 32, 32) and test_set["images"].dtype == torch.uint8
    assert test_set["masks"].shape == (35, 32, 32) and test_set["masks"].dtype == torch.bool
    anomalous = test_set["labels"] == 1
    assert int(anomalous.sum()) == 25
    # Area-then-0.5 resizing never dilates, so at 32 px the smallest fryum defects vanish;
    # most anomalous images still keep a defect pixel and no normal image gains one.
    kept = test_set["masks"][anomalous].flatten(1).any(dim=1)
    assert kept.float().mean() >= 0.5
    assert not test_set["masks"][~anomalous].any()


def test_anomaly_synthesis_outputs(staged_catalog):
    foreground = staged_catalog.load("foreground_masks")
    assert foreground.shape == (54, 1, 32, 32) and foreground.dtype == torch.bool
    coverage = foreground.float().mean().item()
    assert 0.05 < coverage < 0.95, "fryum is an object category: a real, partial foreground"
    bank = staged_catalog.load("texture_bank")
    assert bank.shape == (10, 3, 32, 32) and bank.dtype == torch.uint8
    assert staged_catalog.load("synthetic_preview").axes, "the preview figure has panels"


def test_training_outputs(staged_catalog, tiny_parameters):
    checkpoint = staged_catalog.load("model_checkpoint")
    assert checkpoint["recipe"]["image_size"] == 32
    assert checkpoint["recipe"]["num_steps"] == tiny_parameters["model"]["num_steps"]
    assert checkpoint["epochs"] == 1
    assert (
        checkpoint["train_config"]["normal_ssim_range"]
        == tiny_parameters["losses"]["normal_ssim_range"]
    )
    history = staged_catalog.load("training_history")
    assert len(history["results"]) == 1
    assert all(math.isfinite(v) for v in history["results"][0]["losses"].values())


def test_inference_outputs(staged_catalog):
    outputs = staged_catalog.load("test_outputs")
    assert outputs["mask"].shape == (35, 1, 32, 32)
    assert outputs["reconstruction"].shape == (35, 3, 32, 32)
    steps = 6 - 2
    assert outputs["mask"].min() >= 0.0 and outputs["mask"].max() <= steps / (6 - 1) + 1e-6


def test_evaluation_outputs(staged_catalog):
    metrics = staged_catalog.load("metrics")
    for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro", "f1_max"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert set(metrics["thresholds"]) >= {"image", "pixel"}
    maps = staged_catalog.load("anomaly_maps")
    assert maps["maps"].shape == (35, 32, 32) and maps["scores"].shape == (35,)
    assert torch.allclose(maps["scores"], maps["maps"].flatten(1).max(dim=1).values)
    report = staged_catalog.load("report")
    assert "image_auroc" in report and "figures/roc_curve.png" in report
    assert set(staged_catalog.load("figure_names")) >= {"roc_curve", "score_histogram"}


def test_inference_refuses_a_model_of_another_recipe(staged_catalog, tiny_parameters):
    checkpoint = staged_catalog.load("model_checkpoint")
    other = {**tiny_parameters["model"], "base_width": 64}
    with pytest.raises(ValueError, match="base_width: trained 32 vs parameters 64"):
        check_recipe(checkpoint, 32, other)
    with pytest.raises(ValueError, match="image_size: trained 32 vs parameters 64"):
        check_recipe(checkpoint, 64, tiny_parameters["model"])
