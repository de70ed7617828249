"""Data as a manufacturer has it, through a KedroSession on data derived from the shipped sample
(VisA fryum, CC BY 4.0: data/01_raw/sample/SOURCE.md): good images only, labels without masks,
some masks, a flat good/bad folder; what metrics.json says in each case; and thresholds from a
folder of good images (the calibrate pipeline)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from support import TINY_RUNTIME, tracking_uri

from transfusion_ad.core.metrics import IMAGE_METRICS, PIXEL_METRICS
from transfusion_ad.data import DataLayoutError

pytestmark = pytest.mark.slow
SAMPLE = "data/01_raw/sample/fryum"


def _run(project: Path, data_root: Path, pipeline: str = "train_eval", **extra) -> dict:
    params = {
        **TINY_RUNTIME,
        "mlflow_tracking_uri": tracking_uri(project),
        "dataset": "folder",
        "data_root": str(data_root),
        "category": "part",
        "mlflow": {"log_model": False},
        "training": {"epochs": 1, "progress": False},
        **extra,
    }
    with KedroSession.create(project_path=project, env="quick", runtime_params=params) as s:
        s.run(pipeline_names=[pipeline])
    return json.loads((project / "data/08_reporting/folder/part/metrics.json").read_text())


def _copy(project: Path, target: Path, parts: dict[str, str]) -> Path:
    """Folders of the sample's fryum copied to ``target/part/<name>``."""
    for name, source in parts.items():
        shutil.copytree(project / SAMPLE / source, target / "part" / name)
    return target


def test_good_images_only_train_calibrate_and_say_what_cannot_be_computed(
    project_copy, tmp_path, caplog
):
    root = _copy(project_copy, tmp_path / "line", {"train/good": "train/good"})
    with caplog.at_level(logging.WARNING):
        metrics = _run(project_copy, root)
    assert "This data cannot give" in caplog.text and "no test images" in caplog.text
    for name in (*IMAGE_METRICS, *PIXEL_METRICS):
        assert metrics[name] is None and metrics["not_computed"][name] == "no test images"
    assert metrics["image_metrics_images"] == 0 and metrics["pixel_metrics_images"] == 0
    assert metrics["threshold_calibration"]["good_images"] == 6  # the hold-out of 60
    assert metrics["thresholds"]["image"] > 0
    report = (project_copy / "data/08_reporting/folder/part/report.md").read_text()
    assert "not computed: no test images" in report and "rests on 6 held-out" in report


def test_normal_test_images_only(project_copy, tmp_path):
    parts = {"train/good": "train/good", "test/good": "test/good"}
    metrics = _run(project_copy, _copy(project_copy, tmp_path / "line", parts))
    assert metrics["image_auroc"] is None
    assert metrics["not_computed"]["image_auroc"] == "no anomalous test images"
    assert metrics["image_metrics_images"] == 10


def test_labels_without_masks_give_image_metrics_on_all_and_pixel_metrics_none(
    project_copy, tmp_path
):
    parts = {"train/good": "train/good", "test/good": "test/good", "test/bad": "test/bad"}
    metrics = _run(project_copy, _copy(project_copy, tmp_path / "line", parts))
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["image_metrics_images"] == 35
    for name in PIXEL_METRICS:
        assert metrics[name] is None
        assert metrics["not_computed"][name] == "no anomalous test image has a mask"


def test_some_masks_give_pixel_metrics_on_the_images_that_have_them(project_copy, tmp_path):
    parts = {
        "train/good": "train/good",
        "test/good": "test/good",
        "test/bad": "test/bad",
        "ground_truth/bad": "ground_truth/bad",
    }
    root = _copy(project_copy, tmp_path / "line", parts)
    masks = sorted((root / "part/ground_truth/bad").iterdir())
    for mask in masks[::2]:  # 13 of the 25 masks removed
        mask.unlink()
    metrics = _run(project_copy, root)
    assert metrics["image_metrics_images"] == 35
    assert metrics["pixel_metrics_images"] == 10 + 12
    assert 0.0 <= metrics["pixel_auroc"] <= 1.0 and metrics["not_computed"] == {}
    with pytest.raises(DataLayoutError, match=r"13 anomalous test image\(s\) have no mask"):
        _run(project_copy, root, data={"require_masks": True})


def test_a_flat_good_bad_folder_with_masks_by_stem_and_thresholds_from_the_line(
    project_copy, tmp_path
):
    root = tmp_path / "line"
    (root / "part" / "good").mkdir(parents=True)
    for source in ("train/good", "test/good"):
        for image in (project_copy / SAMPLE / source).iterdir():
            shutil.copy(image, root / "part" / "good" / f"{source.split('/')[0]}_{image.name}")
    shutil.copytree(project_copy / SAMPLE / "test/bad", root / "part" / "bad")
    shutil.copytree(project_copy / SAMPLE / "ground_truth/bad", root / "part" / "masks")
    metrics = _run(project_copy, root)
    assert metrics["image_metrics_images"] == 14 + 25  # every fifth of 70 good, all 25 bad
    assert metrics["pixel_metrics_images"] == 14 + 25 and metrics["not_computed"] == {}

    line_good = project_copy / SAMPLE / "test/good"
    calibrated = _run(
        project_copy, root, "calibrate", good_dir=str(line_good), false_reject_rate=0.1
    )
    assert calibrated == metrics  # calibrate writes thresholds, not metrics
    versions = sorted((project_copy / "data/06_models/folder/part/thresholds.json").iterdir())
    assert len(versions) == 2
    thresholds = json.loads((versions[-1] / "thresholds.json").read_text())
    record = thresholds["calibration"]
    assert record["source"] == "good_dir" and record["good_images"] == 10
    assert record["at_or_above_threshold"] <= 1
    assert 0.2 < record["false_reject_rate_upper_95"] < 0.5  # 10 images cannot show 1 %
    model = json.loads((versions[0] / "thresholds.json").read_text())["model"]
    assert thresholds["model"] == model
    bundles = list((project_copy / "data/06_models/folder/part/model_bundle.pt").iterdir())
    assert len(bundles) == 2
