"""Each stage of train_eval run alone with SequentialRunner on MemoryDatasets (shipped sample)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from transfusion_ad.core.bundle import check_recipe, load_bundle
from transfusion_ad.core.detector import TransFusionDetector

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline


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


def test_the_deployable_bundle_is_the_model_with_its_thresholds(staged_catalog):
    bundle = load_bundle(staged_catalog.load("model_bundle"))
    model, thresholds = staged_catalog.load("model_checkpoint"), staged_catalog.load("thresholds")
    assert bundle["thresholds"] == thresholds and bundle["training_state"] is None
    assert bundle["identity"] == model["identity"]
    assert thresholds["scoring"] == {
        "mask_divisor": "paper",
        "fusion_weight": 0.95,
        "box_size": 3,
        "reverse_steps": None,
        "early_exit": None,
    }


def test_detector_gives_a_test_image_the_score_the_evaluation_gave_it(staged_catalog):
    detector = TransFusionDetector.load(staged_catalog.load("model_bundle"), device="cpu")
    maps, test_set = staged_catalog.load("anomaly_maps"), staged_catalog.load("test_set")
    order = torch.argsort(maps["scores"], descending=True)
    picked = [int(order[0]), int(order[-1]), int(order[len(order) // 2])]
    paths = [maps["paths"][i] for i in picked]
    output = detector(paths, batch_size=2)
    expected = maps["scores"][picked].numpy()
    np.testing.assert_allclose(output.scores, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(output.model_maps, maps["maps"][picked], atol=1e-5, rtol=0)
    thresholds = staged_catalog.load("thresholds")
    assert output.anomalous.tolist() == (expected >= thresholds["image"]).tolist()
    for path, full_map, mask in zip(paths, output.maps, output.masks, strict=True):
        with Image.open(path) as image:
            assert full_map.shape == mask.shape == (image.height, image.width)
        assert mask.tolist() == (full_map >= thresholds["pixel"]).tolist()
    assert test_set["images"].shape[-1] == detector.image_size


def test_detector_scores_one_image_alike_as_a_file_an_array_a_picture_or_a_tensor(
    staged_catalog,
):
    detector = TransFusionDetector.load(staged_catalog.load("model_bundle"), device="cpu")
    path = staged_catalog.load("anomaly_maps")["paths"][0]
    with Image.open(path) as opened:
        picture = opened.convert("RGB")
    array = np.array(picture)
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None]
    small = picture.resize((picture.width // 3, picture.height // 2))
    output = detector([path, array, picture, small], batch_size=4)
    floats = detector(tensor.float() / 255.0)
    # One image in four batch positions: equal up to the batch's float summation order.
    same = pytest.approx(output.scores[0], abs=1e-6)
    assert [output.scores[1], output.scores[2], floats.scores[0]] == [same] * 3
    assert detector(tensor).scores[0] == same
    assert output.maps[3].shape == (small.height, small.width)
    assert output.maps[0].shape == (picture.height, picture.width)


def test_detector_reverse_steps_and_bf16(staged_catalog):
    detector = TransFusionDetector.load(staged_catalog.load("model_bundle"), device="cpu")
    images = staged_catalog.load("test_set")["images"][:3]
    fp32 = detector.score_prepared(images, batch_size=2, return_steps=True)
    assert [record.t for record in fp32["steps"]] == [4, 3, 2, 1]
    assert fp32["steps"][0].mask.shape == (3, 1, 32, 32)
    bf16 = TransFusionDetector.load(
        staged_catalog.load("model_bundle"), device="cpu", precision="bf16"
    ).score_prepared(images, batch_size=2)
    assert bf16["scores"].dtype == torch.float32
    assert torch.allclose(bf16["scores"], fp32["scores"], atol=0.05)


def test_an_uncalibrated_model_needs_a_scoring(staged_catalog):
    with pytest.raises(ValueError, match="never calibrated.*scoring=Scoring"):
        TransFusionDetector.load(staged_catalog.load("model_checkpoint"), device="cpu")
