"""The authors' protocol as one switch (protocol: paper): what it trains on, how it resizes
ground truth, where its thresholds come from and how every output says so."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from transfusion_ad.core.protocol import Protocol
from transfusion_ad.core.resize import resize_masks
from transfusion_ad.data import load_mask
from transfusion_ad.pipelines.anomaly_synthesis.nodes import build_texture_bank
from transfusion_ad.pipelines.evaluation.nodes import calibrate
from transfusion_ad.pipelines.predict.nodes import score_images

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline


def test_paper_trains_on_all_of_train_good(paper_catalog):
    manifest = paper_catalog.load("manifest")
    assert manifest["subset"].value_counts().to_dict() == {"train": 60, "test": 35}
    assert len(paper_catalog.load("train_set")["paths"]) == 60
    assert len(paper_catalog.load("holdout_set")["paths"]) == 0


def test_paper_resizes_ground_truth_as_the_authors_do(paper_catalog):
    test_set = paper_catalog.load("test_set")
    native = [
        np.zeros((32, 32), bool) if path is None else load_mask(path)
        for path in test_set["mask_paths"]
    ]
    authors = resize_masks(native, (32, 32), "bilinear")
    np.testing.assert_array_equal(test_set["masks"].numpy(), authors)
    # The authors' resize dilates: more defect pixels than the default area resize.
    assert authors.sum() > resize_masks(native, (32, 32), "area").sum()


def test_paper_uses_the_authors_signed_ssim(paper_catalog):
    bundle = paper_catalog.load("model_checkpoint")
    assert bundle["train_config"]["normal_ssim_range"] == "signed"
    assert bundle["identity_recipe"]["losses.normal_ssim_range"] == "signed"


def test_paper_thresholds_come_from_the_good_test_images_and_say_so(paper_catalog):
    maps = paper_catalog.load("anomaly_maps")
    good = (maps["labels"] == 0).numpy()
    thresholds = paper_catalog.load("thresholds")
    assert thresholds["calibration"]["source"] == "test_good"
    assert thresholds["calibration"]["good_images"] == int(good.sum()) == 10
    expected = np.quantile(maps["scores"].numpy()[good], 0.99)
    assert thresholds["image"] == pytest.approx(float(expected))
    metrics = paper_catalog.load("metrics")
    assert metrics["protocol"] == "paper" and metrics["thresholds_from_test_set"] is True
    assert metrics["threshold_calibration"]["source"] == "test_good"
    report = paper_catalog.load("report")
    assert "Protocol: **paper**" in report and "test set's **good images**" in report
    assert paper_catalog.load("model_bundle")["thresholds"]["calibration"]["source"] == "test_good"


def test_predict_warns_when_thresholds_come_from_the_test_set(paper_catalog, caplog):
    parameters = paper_catalog.load("parameters")
    test_set = paper_catalog.load("test_set")
    first = Path(test_set["paths"][0])
    images = {"root": str(first.parent), "files": [first.name]}
    arguments = (
        paper_catalog.load("model_checkpoint"),
        paper_catalog.load("thresholds"),
    )
    settings = (
        images,
        parameters["inference"],
        parameters["evaluation"],
        parameters["image_size"],
        parameters["model"],
        "cpu",
    )
    with caplog.at_level(logging.WARNING):
        score_images(*arguments, {"image": None, "pixel": None}, *settings)
    assert "calibrated on the test set's good images" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        score_images(*arguments, {"image": 0.5, "pixel": 0.5}, *settings)
    assert "test set's good images" not in caplog.text, "both thresholds replaced: no warning"


def test_paper_needs_good_test_images_for_its_thresholds(paper_catalog):
    maps = dict(paper_catalog.load("anomaly_maps"))
    maps["labels"] = maps["labels"] * 0 + 1
    parameters = paper_catalog.load("parameters")
    with pytest.raises(ValueError, match="test set's good images.*has none"):
        calibrate(
            paper_catalog.load("holdout_maps"),
            paper_catalog.load("model_checkpoint"),
            parameters["inference"],
            parameters["evaluation"],
            maps,
            "paper",
        )


def test_dtd_is_required_at_256_px_and_by_the_paper_protocol(tmp_path, project_root):
    synthesis = {
        "texture_dir": str(tmp_path / "no_dtd"),
        "fallback_texture_dir": str(project_root / "data/01_raw/sample/textures"),
        "max_textures": 1000,
    }
    for size, protocol in ((256, "default"), (64, "paper")):
        with pytest.raises(FileNotFoundError, match=r"synthesis\.texture_dir.*no_dtd.*DTD"):
            build_texture_bank(synthesis, size, 0, protocol)
    assert build_texture_bank(synthesis, 32, 0, "default").shape == (10, 3, 32, 32)


def test_an_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="protocol must be one of default, paper, got 'authors'"):
        Protocol.named("authors")
