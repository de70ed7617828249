"""Bad files among the training images: a clear error naming the file, or skipped on request."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from PIL import Image
from support import KeptMemoryDataset

from transfusion_ad.data import UnreadableImageError, index_category, load_image
from transfusion_ad.pipelines.data_ingestion import create_pipeline
from transfusion_ad.pipelines.data_ingestion.nodes import record_skipped_images

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

DATA = {"holdout_fraction": 0.2, "holdout_min": 2, "skip_unreadable": False}


def _small_category(sample_root: Path, target: Path) -> Path:
    """12 train, 2 good and 3 bad test images of the shipped sample, MVTec layout."""
    source = sample_root / "fryum"
    category = target / "fryum"
    for sub, count in (("train/good", 12), ("test/good", 2), ("test/bad", 3)):
        (category / sub).mkdir(parents=True)
        for path in sorted((source / sub).glob("*.JPG"))[:count]:
            shutil.copy(path, category / sub / path.name)
            if sub == "test/bad":
                (category / "ground_truth" / "bad").mkdir(parents=True, exist_ok=True)
                mask = source / "ground_truth" / "bad" / f"{path.stem}_mask.png"
                shutil.copy(mask, category / "ground_truth" / "bad" / mask.name)
    return target


def _fault(train_dir: Path, kind: str) -> Path:
    real = next(iter(sorted(train_dir.glob("*.JPG")))).read_bytes()
    if kind == "truncated_jpeg":
        path = train_dir / "900.JPG"
        path.write_bytes(real[: len(real) // 3])
    elif kind == "zero_byte_png":
        path = train_dir / "901.png"
        path.write_bytes(b"")
    else:
        path = train_dir / "902.png"
        path.write_text("this is not an image")
    return path


def _run(root: Path, data: dict) -> DataCatalog:
    pipeline = create_pipeline()
    catalog = DataCatalog({name: KeptMemoryDataset() for name in pipeline.all_outputs()})
    catalog["category_index"] = index_category(root, "fryum", validate=False)
    catalog["params:data"] = data
    catalog["params:seed"] = 3
    catalog["params:image_size"] = 32
    catalog["params:protocol"] = "default"
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.mark.parametrize("kind", ["truncated_jpeg", "zero_byte_png", "not_an_image"])
def test_unreadable_training_image_stops_naming_the_file(sample_root, tmp_path, kind):
    root = _small_category(sample_root, tmp_path)
    bad = _fault(root / "fryum" / "train" / "good", kind)
    with pytest.raises(UnreadableImageError, match=bad.name):
        _run(root, DATA)


@pytest.mark.parametrize("kind", ["truncated_jpeg", "zero_byte_png", "not_an_image"])
def test_skip_unreadable_drops_and_reports_the_file(sample_root, tmp_path, kind, caplog):
    root = _small_category(sample_root, tmp_path)
    bad = _fault(root / "fryum" / "train" / "good", kind)
    catalog = _run(root, {**DATA, "skip_unreadable": True})
    quality = catalog.load("data_quality")
    assert quality["skipped_images"] == 1 and quality["files"] == [str(bad)]
    assert bad.name in caplog.text
    train, holdout = catalog.load("train_set"), catalog.load("holdout_set")
    assert len(train["paths"]) + len(holdout["paths"]) == 12


def test_skipped_count_is_an_mlflow_param(tmp_path):
    empty = {"skipped": []}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.MlflowClient().create_experiment("data_faults")
        with mlflow.start_run(experiment_id=experiment) as run:
            record_skipped_images(["/data/a.png"], {"skipped": ["/data/b.JPG"]}, empty, empty)
        logged = mlflow.MlflowClient().get_run(run.info.run_id).data.params
    finally:
        mlflow.set_tracking_uri(None)
    assert logged["data.skipped_images"] == "2"


def test_mixed_sizes_are_resized_consistently(sample_root, tmp_path):
    root = _small_category(sample_root, tmp_path)
    train_dir = root / "fryum" / "train" / "good"
    for index, path in enumerate(sorted(train_dir.glob("*.JPG"))[:4]):
        image = np.asarray(Image.open(path))
        side = (50, 300, 97, 640)[index]
        Image.fromarray(image).resize((side, side // 2 + 3)).save(path)
    train = _run(root, DATA).load("train_set")
    assert train["images"].shape[1:] == (3, 32, 32)
    for image, path in zip(train["images"], train["paths"], strict=True):
        expected = load_image(path, 32).transpose(2, 0, 1)
        assert np.array_equal(image.numpy(), expected)
