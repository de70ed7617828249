"""Before training: defects too small for image_size are listed with the size that keeps them,
and images far larger than image_size get one warning with the downscale factor."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from PIL import Image

from transfusion_ad.pipelines.data_ingestion.nodes import load_test_set, load_train_set

DATA = {"skip_unreadable": False}


def _manifest(tmp_path, defect_side: int) -> pd.DataFrame:
    rows = []
    for i in range(2):
        image = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((320, 320, 3), 100 + i, np.uint8)).save(image)
        mask_path = None
        if i == 1:
            mask = np.zeros((320, 320), np.uint8)
            mask[100 : 100 + defect_side, 100 : 100 + defect_side] = 255
            mask_path = tmp_path / "img1_mask.png"
            Image.fromarray(mask).save(mask_path)
        rows.append(
            {
                "split": "test",
                "subset": "test",
                "label": i,
                "defect_type": "bad" if i else "good",
                "image_path": str(image),
                "mask_path": None if mask_path is None else str(mask_path),
            }
        )
    return pd.DataFrame(rows)


def test_a_defect_that_vanishes_at_image_size_is_listed_with_the_size_that_keeps_it(
    tmp_path, caplog
):
    with caplog.at_level(logging.WARNING):
        test = load_test_set(_manifest(tmp_path, defect_side=6), 32, DATA)
    assert not test["masks"][1].any() and test["has_mask"].tolist() == [True, True]
    assert "1 defect mask(s) are empty at image_size 32" in caplog.text
    # 6 of 320 px: 0.36 of a 10 px pixel at 32 px (dropped), a whole 5 px pixel at 64 px.
    assert "img1.png (64 px)" in caplog.text


def test_a_visible_defect_gives_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        test = load_test_set(_manifest(tmp_path, defect_side=60), 32, DATA)
    assert test["masks"][1].any() and "empty at image_size" not in caplog.text


def test_images_much_larger_than_image_size_get_one_warning(tmp_path, caplog):
    manifest = _manifest(tmp_path, defect_side=60).assign(split="train", subset="train")
    with caplog.at_level(logging.WARNING):
        load_train_set(manifest, 32, DATA)
    assert caplog.text.count("larger than image_size 32") == 1
    assert "about 10x larger" in caplog.text
