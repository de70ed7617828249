"""Foreground masks (spec §1.4): the offline estimator, the mask folder, and the fryum check."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from transfusion_ad.core.foreground import (
    TEXTURE_CATEGORIES,
    dilate_mask,
    estimate_foreground,
    foreground_masks,
    mask_folder,
)

FRYUM = Path(__file__).resolve().parents[3] / "shared" / "data" / "visa_fryum" / "fryum"


def object_image(
    height: int = 200, width: int = 300, center=(100, 150), radius: int = 55, hole: int = 0
):
    """Textured green background with an orange disc (optionally with a background-coloured hole).

    Returns (RGB uint8 image, bool disc mask without the hole filled).
    """
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3), dtype=np.float64)
    image[:] = (30, 120, 90)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2
    image[disc] = (235, 180, 140)
    if hole:
        inner = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= hole**2
        image[inner] = (30, 120, 90)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_texture_categories_are_the_authors_list_including_zipper():
    assert {"carpet", "grid", "leather", "tile", "wood", "zipper"} == TEXTURE_CATEGORIES


def test_estimator_finds_the_object():
    image, disc = object_image()
    mask = estimate_foreground(image)
    assert mask.shape == disc.shape and mask.dtype == bool
    assert iou(mask, disc) > 0.9


def test_enclosed_holes_count_as_object():
    image, disc = object_image(hole=20)
    assert iou(estimate_foreground(image), disc) > 0.9


def test_object_touching_the_border_is_still_found():
    image, disc = object_image(center=(100, 40), radius=70)
    assert iou(estimate_foreground(image), disc) > 0.85


def test_gray_images_are_accepted():
    image, disc = object_image()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    assert iou(estimate_foreground(gray), disc) > 0.85


def test_degenerate_estimates_fall_back_to_all_ones():
    rng = np.random.default_rng(1)
    plain = np.clip(rng.normal(128, 5, (120, 160, 3)), 0, 255).astype(np.uint8)
    assert estimate_foreground(plain).all()
    speck = plain.copy()
    speck[60:62, 80:82] = 255  # 4 px of 19 200: far under 1 % of the image
    assert estimate_foreground(speck).all()


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        estimate_foreground(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        estimate_foreground(np.zeros((10, 10, 4), dtype=np.uint8))


def test_dilate_mask_grows_by_the_kernel():
    mask = np.zeros((11, 11), dtype=bool)
    mask[5, 5] = True
    grown = dilate_mask(mask)
    assert grown.dtype == bool and grown.sum() == 25 and grown[3:8, 3:8].all()
    assert dilate_mask(mask, 3).sum() == 9
    with pytest.raises(ValueError, match="kernel_size"):
        dilate_mask(mask, 0)


def test_estimate_mode_resizes_then_dilates():
    image, disc = object_image()
    masks = foreground_masks([image, image], mode="estimate", size=64)
    assert masks.shape == (2, 64, 64) and masks.dtype == bool
    resized_disc = cv2.resize(disc.astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)
    assert masks[0][resized_disc.astype(bool)].all()
    assert masks[0].sum() > resized_disc.sum()  # the 5×5 dilation adds a ring
    assert foreground_masks([image], mode="estimate", size=(48, 80)).shape == (1, 48, 80)


def test_none_mode_is_all_ones():
    image, _ = object_image()
    masks = foreground_masks([image], mode="none", size=32)
    assert masks.shape == (1, 32, 32) and masks.all()
    assert foreground_masks([image], mode="none").shape == (1, *image.shape[:2])


def test_folder_mode_matches_masks_by_stem(tmp_path):
    image, _ = object_image(height=40, width=40)
    left = np.zeros((40, 40), dtype=np.uint8)
    left[:, :10] = 255
    cv2.imwrite(str(tmp_path / "a.png"), left)
    cv2.imwrite(str(tmp_path / "b_mask.png"), 255 - left)
    masks = foreground_masks([image, image], mode="folder", stems=["b", "a"], folder=tmp_path)
    assert masks.shape == (2, 40, 40)
    assert masks[1][:, :12].all() and not masks[1][:, 13:].any()  # 10 columns + 2 of dilation
    assert masks[0][:, 8:].all() and not masks[0][:, :7].any()


def test_the_authors_release_tree_is_read_as_shipped(tmp_path):
    # <root>/visa_masks/<category>/train/good/<stem>.JPG, matched by stem, not by position.
    image, _ = object_image(height=40, width=40)
    good = tmp_path / "visa_masks" / "fryum" / "train" / "good"
    good.mkdir(parents=True)
    top = np.zeros((40, 40), dtype=np.uint8)
    top[:10] = 255
    cv2.imwrite(str(good / "0001.JPG"), top)
    cv2.imwrite(str(good / "0000.JPG"), 255 - top)
    folder = mask_folder(tmp_path, "visa", "fryum")
    assert folder == good
    assert mask_folder(tmp_path, "mvtec_ad", "fryum") == tmp_path  # no such tree: the folder
    masks = foreground_masks([image, image], mode="folder", stems=["0001", "0000"], folder=folder)
    assert masks[0][:12].all() and not masks[0][13:].any()  # JPEG ringing stays under half
    assert masks[1][8:].all() and not masks[1][:7].any()


def test_folder_mode_names_the_missing_stem_and_folder(tmp_path):
    image, _ = object_image(height=40, width=40)
    with pytest.raises(FileNotFoundError, match=r"'c'.*" + tmp_path.name):
        foreground_masks([image], mode="folder", stems=["c"], folder=tmp_path)
    (tmp_path / "d.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="d.png"):
        foreground_masks([image], mode="folder", stems=["d"], folder=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        foreground_masks([image], mode="folder", stems=["c"], folder=tmp_path / "nope")


def test_bad_arguments_are_rejected(tmp_path):
    image, _ = object_image(height=40, width=40)
    with pytest.raises(ValueError, match="'sam'"):
        foreground_masks([image], mode="sam")
    with pytest.raises(ValueError, match="folder= and stems="):
        foreground_masks([image], mode="folder", folder=tmp_path)
    with pytest.raises(ValueError, match="2 stems for 1 images"):
        foreground_masks([image], mode="folder", stems=["a", "b"], folder=tmp_path)
    with pytest.raises(ValueError, match="different sizes"):
        foreground_masks([image, image[:20]], mode="none")
    assert foreground_masks([], mode="estimate", size=8).shape == (0, 8, 8)


def test_fryum_defects_lie_inside_the_estimated_foreground():
    """Measured on this 30-image subset: 99.7 % of defect pixels inside (all 100 images: 99.8 %),
    foreground 22 % of the image on average (19–25 %).

    The bound of 95 % leaves room for JPEG/resize differences across library versions; a few
    percent of defect pixels lie outside any object mask by nature ("edge breakage" marks
    where material is missing). The foreground share must stay well below 1, otherwise full
    coverage would be trivial (the all-ones fallback would pass the first check).
    """
    bad = FRYUM / "test" / "bad"
    if not bad.is_dir():
        pytest.skip(f"VisA fryum data not found at {FRYUM}")
    files = sorted(random.Random(0).sample(sorted(bad.glob("*.JPG")), 30))
    images = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in files]
    masks = foreground_masks(images, mode="estimate", size=256)
    inside = total = 0
    for path, mask in zip(files, masks, strict=True):
        truth = cv2.imread(str(FRYUM / "ground_truth" / "bad" / f"{path.stem}_mask.png"), 0)
        defect = (
            cv2.resize((truth > 0).astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA) > 0
        )
        inside += (defect & mask).sum()
        total += defect.sum()
    assert inside / total >= 0.95
    assert 0.1 < masks.mean() < 0.4
