"""predict with the tiny model of the staged stages, on MemoryDatasets and a real predictions
dataset: the evaluation's scores, an output for every input, a corrupt file reported by name, and
the model's recipe checked against the parameters."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, DatasetError, Version
from kedro.runner import SequentialRunner
from PIL import Image
from support import KeptMemoryDataset

from transfusion_ad.pipelines.predict import create_pipeline
from transfusion_ad.pipelines.predict.dataset import PredictionsDataset
from transfusion_ad.pipelines.predict.nodes import (
    list_input_images,
    output_names,
    render_predictions,
    score_images,
)

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

CORRUPT = "bad/zz_corrupt.png"
NO_OVERRIDE = {"image": None, "pixel": None}


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory, sample_root) -> Path:
    """The sample's 35 test images (JPG, in good/ and bad/), a corrupt PNG, and one image again
    as a small grayscale BMP and a 16-bit PNG of the same stem (mixed formats and sizes)."""
    root = tmp_path_factory.mktemp("to_score")
    shutil.copytree(sample_root / "fryum" / "test", root, dirs_exist_ok=True)
    (root / CORRUPT).write_bytes(b"this is not a PNG")
    source = Image.open(next(iter(sorted((root / "good").glob("*.JPG"))))).convert("L")
    (root / "extra").mkdir()
    source.resize((150, 90)).save(root / "extra" / "gray.bmp")
    wide = np.asarray(source.resize((401, 77)), np.uint16) * 257
    Image.fromarray(wide).save(root / "extra" / "gray.png")
    return root


def _catalog(parameters: dict[str, Any], entries: dict[str, Any]) -> DataCatalog:
    catalog = DataCatalog({"predictions": entries.pop("predictions")})
    for name, value in entries.items():
        catalog[name] = value
    for key, value in parameters.items():
        catalog[f"params:{key}"] = value
    return catalog


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def predicted(staged_catalog, tiny_parameters, input_dir, tmp_path_factory):
    """(catalog after a predict run, its predictions reloaded from disk, the warnings logged)."""
    output = tmp_path_factory.mktemp("predictions") / "predictions"
    catalog = _catalog(
        {**tiny_parameters, "input_dir": str(input_dir)},
        {
            "model_checkpoint": staged_catalog.load("model_checkpoint"),
            "thresholds": staged_catalog.load("thresholds"),
            "predictions": PredictionsDataset(str(output), version=Version(None, None)),
            "scored_images": KeptMemoryDataset(copy_mode="assign"),
        },
    )
    records = _Records()
    logger = logging.getLogger("transfusion_ad.pipelines.predict.nodes")
    logger.addHandler(records)
    try:
        SequentialRunner().run(create_pipeline(), catalog)
    finally:
        logger.removeHandler(records)
    reloaded = PredictionsDataset(str(output), version=Version(None, None)).load()
    return catalog, reloaded, records.messages


def test_scores_equal_the_evaluation_scores_of_the_same_images(
    predicted, staged_catalog, sample_root
):
    _, outputs, _ = predicted
    frame = outputs["scores"].set_index("image")
    evaluated = staged_catalog.load("anomaly_maps")
    test_root = sample_root / "fryum" / "test"
    thresholds = staged_catalog.load("thresholds")
    for path, expected in zip(evaluated["paths"], evaluated["scores"].tolist(), strict=True):
        row = frame.loc[Path(path).relative_to(test_root).as_posix()]
        assert row["score"] == pytest.approx(expected, abs=1e-5)
        assert row["anomalous"] == ("yes" if row["score"] >= thresholds["image"] else "no")
    assert len(evaluated["paths"]) == 35


def test_the_thresholds_used_are_written_beside_the_scores(predicted, staged_catalog):
    written = predicted[1]["thresholds"]
    calibrated = staged_catalog.load("thresholds")
    assert written == {"image": calibrated["image"], "pixel": calibrated["pixel"], "overridden": {}}


def test_a_threshold_given_for_the_run_decides_and_is_recorded(
    staged_catalog, tiny_parameters, input_dir, tmp_path
):
    scores = staged_catalog.load("anomaly_maps")["scores"]
    middle = float(scores.median())
    output = tmp_path / "predictions"
    catalog = _catalog(
        {**tiny_parameters, "input_dir": str(input_dir), "thresholds": {"image": middle}},
        {
            "model_checkpoint": staged_catalog.load("model_checkpoint"),
            "thresholds": staged_catalog.load("thresholds"),
            "predictions": PredictionsDataset(str(output), version=Version(None, None)),
        },
    )
    SequentialRunner().run(create_pipeline(), catalog)
    outputs = PredictionsDataset(str(output), version=Version(None, None)).load()
    frame = outputs["scores"][outputs["scores"]["error"] == ""]
    assert (frame["anomalous"] == "yes").tolist() == (frame["score"] >= middle).tolist()
    assert 0 < (frame["anomalous"] == "yes").sum() < len(frame)
    written = outputs["thresholds"]
    calibrated = staged_catalog.load("thresholds")["image"]
    assert written["image"] == middle
    assert written["overridden"] == {"image": {"calibrated": calibrated, "used": middle}}


def test_every_input_gets_a_row_and_every_readable_one_an_overlay_and_mask(predicted, input_dir):
    _, outputs, _ = predicted
    frame = outputs["scores"]
    inputs = sorted(p.relative_to(input_dir).as_posix() for p in input_dir.rglob("*.*"))
    assert frame["image"].tolist() == inputs
    assert list(frame.columns) == ["image", "score", "anomalous", "overlay", "mask", "error"]
    scored = frame[frame["error"] == ""]
    assert len(scored) == len(inputs) - 1
    for row in scored.itertuples():
        width, height = Image.open(input_dir / row.image).size
        overlay = Image.open(outputs["overlays"][row.overlay.removeprefix("overlays/")])
        mask = np.asarray(Image.open(outputs["masks"][row.mask.removeprefix("masks/")]))
        assert overlay.size == (width, height) and overlay.mode == "RGB"
        assert mask.shape == (height, width) and set(np.unique(mask)) <= {0, 255}
    # Two files of one stem keep their extension in the output name.
    assert {"extra/gray_bmp.png", "extra/gray_png.png"} <= set(outputs["overlays"])
    assert len(outputs["overlays"]) == len(outputs["masks"]) == len(scored)


def test_a_corrupt_file_is_reported_by_name_and_the_others_are_scored(predicted, input_dir):
    _, outputs, warnings = predicted
    frame = outputs["scores"].set_index("image")
    assert any(str(input_dir / CORRUPT) in message for message in warnings)
    assert any("not scored (unreadable): " + CORRUPT in message for message in warnings)
    corrupt = frame.loc[CORRUPT]
    assert math.isnan(corrupt["score"]) and "unreadable image" in corrupt["error"]
    assert corrupt["overlay"] == "" and corrupt["anomalous"] == ""
    others = frame.drop(index=CORRUPT)
    assert others["score"].notna().all() and set(others["anomalous"]) <= {"yes", "no"}


def test_the_overlay_colour_scale_is_fixed_across_images(predicted, input_dir):
    catalog, _, _ = predicted
    scored = catalog.load("scored_images")
    heatmap = {"range": [0.0, 1.0], "colormap": "jet", "alpha": 1.0, "threshold_contour": False}
    # Double every map but the first: with a fixed scale the first overlay cannot change.
    factors = torch.full((len(scored["files"]), 1, 1), 2.0)
    factors[0] = 1.0
    boosted = {**scored, "maps": scored["maps"] * factors}
    first = scored["files"][0]
    name = output_names([first])[first]
    same = render_predictions(scored, heatmap)["overlays"][name]()
    again = render_predictions(boosted, heatmap)["overlays"][name]()
    assert np.array_equal(same, again)


def test_a_model_trained_with_another_recipe_is_refused_naming_both(
    staged_catalog, tiny_parameters, input_dir
):
    images = list_input_images(str(input_dir))
    settings = [tiny_parameters[k] for k in ("inference", "evaluation")]
    model = {**tiny_parameters["model"], "base_width": 64}
    with pytest.raises(ValueError, match=r"image_size: trained 32 vs parameters 64") as error:
        score_images(
            staged_catalog.load("model_checkpoint"),
            staged_catalog.load("thresholds"),
            NO_OVERRIDE,
            images,
            *settings,
            64,
            model,
            "cpu",
        )
    assert "base_width: trained 32 vs parameters 64" in str(error.value)


def test_thresholds_without_the_pixel_entry_are_refused(staged_catalog, tiny_parameters, input_dir):
    with pytest.raises(ValueError, match="thresholds have no pixel entry.*re-run the evaluation"):
        score_images(
            staged_catalog.load("model_checkpoint"),
            {"image": 0.5},
            NO_OVERRIDE,
            list_input_images(str(input_dir)),
            tiny_parameters["inference"],
            tiny_parameters["evaluation"],
            tiny_parameters["image_size"],
            tiny_parameters["model"],
            "cpu",
        )


def test_bad_input_folders_are_refused_by_name(
    tmp_path, staged_catalog, tiny_parameters, sample_root
):
    with pytest.raises(ValueError, match=r"No folder to score.*--params input_dir="):
        list_input_images(None)
    with pytest.raises(ValueError, match=r"input_dir '.*nowhere' is not a folder"):
        list_input_images(str(tmp_path / "nowhere"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no image here")
    (tmp_path / "notes" / ".hidden.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"No image in '.*notes' \(looked for .*\.bmp"):
        list_input_images(str(tmp_path / "notes"))
    (tmp_path / "notes" / "broken.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"None of the 1 image\(s\) .* could be read: broken.jpg"):
        score_images(
            staged_catalog.load("model_checkpoint"),
            staged_catalog.load("thresholds"),
            NO_OVERRIDE,
            list_input_images(str(tmp_path / "notes")),
            tiny_parameters["inference"],
            tiny_parameters["evaluation"],
            tiny_parameters["image_size"],
            tiny_parameters["model"],
            "cpu",
        )


def _pixels() -> np.ndarray:
    return np.zeros((4, 5, 3), np.uint8)


def test_predictions_dataset_keeps_versions_and_never_a_half_written_one(tmp_path):
    frame = pd.DataFrame({"image": ["a.png"], "score": [0.5]})
    first = PredictionsDataset(
        str(tmp_path / "p"), version=Version(None, "2026-01-01T00.00.00.000Z")
    )
    first.save({"scores": frame, "overlays": {"a.png": _pixels}, "masks": {"a.png": _pixels()}})
    broken = PredictionsDataset(
        str(tmp_path / "p"), version=Version(None, "2026-01-02T00.00.00.000Z")
    )

    def fail() -> np.ndarray:
        raise RuntimeError("render failed")

    with pytest.raises(DatasetError, match="render failed"):
        broken.save({"scores": frame, "overlays": {"a.png": fail}, "masks": {}})
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["2026-01-01T00.00.00.000Z"]
    loaded = PredictionsDataset(str(tmp_path / "p"), version=Version(None, None)).load()
    assert loaded["scores"]["image"].tolist() == ["a.png"]
    assert Image.open(loaded["overlays"]["a.png"]).size == (5, 4)
    wrong = PredictionsDataset(
        str(tmp_path / "p"), version=Version(None, "2026-01-03T00.00.00.000Z")
    )
    with pytest.raises(DatasetError, match="'b.png': expected uint8 pixels"):
        wrong.save({"scores": frame, "overlays": {"b.png": np.zeros((2, 2))}, "masks": {}})
