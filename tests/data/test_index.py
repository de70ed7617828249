"""index_category on real data (shipped sample, full fryum) and on every bad layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfusion_ad.data import DataLayoutError, UnreadableImageError, index_category
from transfusion_ad.data.index import missing_masks


def _image(path: Path, size=(16, 12), value=128, suffix=".png") -> Path:
    path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def _mask(path: Path, size=(16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[2:5, 3:7] = 255
    Image.fromarray(mask).save(path)
    return path


def make_mvtec(root: Path, category="widget", suffix=".png", n_train=3) -> Path:
    """A tiny MVTec-layout category with 3 train, 2 good and 2 defective test images."""
    cat = root / category
    for i in range(n_train):
        _image(cat / "train" / "good" / f"{i:03d}", suffix=suffix)
    for i in range(2):
        _image(cat / "test" / "good" / f"{i:03d}", suffix=suffix)
        _image(cat / "test" / "crack" / f"{i:03d}", suffix=suffix)
        _mask(cat / "ground_truth" / "crack" / f"{i:03d}_mask.png")
    return root


def test_full_fryum_counts(fryum_root):
    manifest = index_category(fryum_root, "fryum")
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", 0): 450, ("test", 0): 50, ("test", 1): 100}
    assert manifest["mask_path"].notna().sum() == 100
    assert manifest.attrs["layout"] == "visa_1cls"


def test_shipped_sample_counts(sample_root):
    manifest = index_category(sample_root, "fryum")
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", 0): 60, ("test", 0): 10, ("test", 1): 25}
    assert list(manifest.columns) == ["split", "label", "defect_type", "image_path", "mask_path"]
    good = manifest[manifest["label"] == 0]
    assert good["mask_path"].isna().all() and (good["defect_type"] == "good").all()


def test_masks_pair_by_stem_not_by_position(tmp_path):
    root = make_mvtec(tmp_path)
    crack = root / "widget" / "ground_truth" / "crack"
    # An extra mask that sorts first must not shift the pairing.
    _mask(crack / "000a_mask.png")
    manifest = index_category(root, "widget")
    bad = manifest[manifest["label"] == 1]
    for row in bad.itertuples():
        assert Path(row.mask_path).name == f"{Path(row.image_path).stem}_mask.png"


def test_root_containing_test_and_ground_truth_and_symlink(tmp_path):
    real = make_mvtec(tmp_path / "test" / "ground_truth_data")
    link = tmp_path / "linked"
    os.symlink(real, link)
    for root in (real, link):
        manifest = index_category(root, "widget")
        assert manifest["label"].tolist().count(1) == 2
        assert all(str(root) in p for p in manifest["image_path"])


@pytest.mark.parametrize("suffix", [".jpg", ".JPEG", ".bmp", ".tif", ".PNG"])
def test_folder_layout_any_suffix(tmp_path, suffix):
    manifest = index_category(make_mvtec(tmp_path, suffix=suffix), "widget")
    assert len(manifest) == 7
    assert manifest.attrs["layout"] == "folder"


def test_mask_named_like_image_is_accepted(tmp_path):
    root = make_mvtec(tmp_path, suffix=".JPG")
    for mask in (root / "widget" / "ground_truth" / "crack").iterdir():
        mask.rename(mask.with_name(mask.name.replace("_mask", "")))
    manifest = index_category(root, "widget")
    assert manifest["mask_path"].notna().sum() == 2
    assert manifest.attrs["layout"] == "visa_1cls"


def test_visa_raw_layout_uses_split_csv(tmp_path):
    cat = tmp_path / "pcb9" / "Data"
    rows = ["object,split,label,image,mask"]
    for i in range(3):
        _image(cat / "Images" / "Normal" / f"{i:04d}", suffix=".JPG")
        rows.append(
            f"pcb9,{'train' if i < 2 else 'test'},normal,pcb9/Data/Images/Normal/{i:04d}.JPG,"
        )
    _image(cat / "Images" / "Anomaly" / "0000", suffix=".JPG")
    _mask(cat / "Masks" / "Anomaly" / "0000.png")
    rows.append(
        "pcb9,test,anomaly,pcb9/Data/Images/Anomaly/0000.JPG,pcb9/Data/Masks/Anomaly/0000.png"
    )
    rows.append("other,train,normal,other/Data/Images/Normal/0.JPG,")
    (tmp_path / "split_csv").mkdir()
    (tmp_path / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    manifest = index_category(tmp_path, "pcb9")
    assert manifest.attrs["layout"] == "visa_raw"
    assert manifest.groupby(["split", "label"]).size().to_dict() == {
        ("train", 0): 2,
        ("test", 0): 1,
        ("test", 1): 1,
    }


def test_missing_root_names_path_and_download(tmp_path):
    with pytest.raises(DataLayoutError, match="does not exist.*Download MVTec AD"):
        index_category(tmp_path / "nowhere", "capsule")


def test_unknown_category_lists_existing(tmp_path):
    make_mvtec(tmp_path, "bottle")
    make_mvtec(tmp_path, "screw")
    with pytest.raises(DataLayoutError, match="'capsule' not found.*bottle, screw"):
        index_category(tmp_path, "capsule")


def test_unrecognised_layout_says_what_was_expected(tmp_path):
    (tmp_path / "odd" / "images").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match="train/good.*Data/Images"):
        index_category(tmp_path, "odd")


def test_unknown_layout_name(tmp_path):
    with pytest.raises(DataLayoutError, match="Unknown layout 'mvtec3d'"):
        index_category(make_mvtec(tmp_path), "widget", layout="mvtec3d")


def test_empty_train_good(tmp_path):
    root = make_mvtec(tmp_path)
    shutil.rmtree(root / "widget" / "train" / "good")
    (root / "widget" / "train" / "good").mkdir()
    with pytest.raises(DataLayoutError, match="No training images in .*train/good"):
        index_category(root, "widget")


def test_an_anomalous_image_without_mask_is_kept_and_listed(tmp_path):
    root = make_mvtec(tmp_path)
    (root / "widget" / "ground_truth" / "crack" / "001_mask.png").unlink()
    manifest = index_category(root, "widget")
    unmasked = missing_masks(manifest)
    assert [Path(path).name for path in unmasked] == ["001.png"]
    row = manifest[manifest["image_path"] == unmasked[0]].iloc[0]
    assert row["label"] == 1 and row["defect_type"] == "crack"


def test_good_images_only_give_a_manifest_without_test_images(tmp_path):
    root = make_mvtec(tmp_path)
    shutil.rmtree(root / "widget" / "test")
    shutil.rmtree(root / "widget" / "ground_truth")
    manifest = index_category(root, "widget")
    assert set(manifest["split"]) == {"train"} and len(manifest) == 3


def _flat(root: Path) -> Path:
    """good/ with 10 images, bad/ with 2, defect_scratch/ with 1, masks/ for two of them."""
    cat = root / "part"
    for i in range(10):
        _image(cat / "good" / f"g{i:02d}", suffix=".jpg")
    _image(cat / "bad" / "b0", suffix=".jpg")
    _image(cat / "bad" / "b1", suffix=".jpg")
    _image(cat / "defect_scratch" / "s0", suffix=".bmp")
    _mask(cat / "masks" / "b1.png")
    _mask(cat / "masks" / "s0_mask.png")
    return root


def test_a_flat_folder_of_good_and_bad_images_is_indexed_by_stem(tmp_path):
    manifest = index_category(_flat(tmp_path), "part")
    assert manifest.attrs["layout"] == "folder"
    good = manifest[manifest["label"] == 0]
    assert (good["split"] == "test").sum() == 2 and (good["split"] == "train").sum() == 8
    bad = manifest[manifest["label"] == 1].set_index(
        manifest[manifest["label"] == 1]["image_path"].map(lambda p: Path(p).name)
    )
    assert set(bad["split"]) == {"test"}
    assert bad.loc["b0.jpg", "mask_path"] is None
    assert Path(bad.loc["b1.jpg", "mask_path"]).name == "b1.png"
    assert Path(bad.loc["s0.bmp", "mask_path"]).name == "s0_mask.png"
    assert bad.loc["s0.bmp", "defect_type"] == "defect_scratch"


def test_a_mask_of_no_image_is_named_never_paired_by_position(tmp_path):
    root = _flat(tmp_path)
    _mask(root / "part" / "masks" / "b7.png")
    with pytest.raises(DataLayoutError, match=r"Masks without an anomalous image.*b7\.png"):
        index_category(root, "part")


def test_a_stem_shared_by_two_anomalous_images_cannot_take_a_mask(tmp_path):
    root = _flat(tmp_path)
    _image(root / "part" / "defect_scratch" / "b1", suffix=".png")
    with pytest.raises(DataLayoutError, match="b1: .*bad/b1.jpg.*defect_scratch/b1.png"):
        index_category(root, "part")


def test_mask_size_mismatch(tmp_path):
    root = make_mvtec(tmp_path)
    _mask(root / "widget" / "ground_truth" / "crack" / "000_mask.png", size=(8, 8))
    with pytest.raises(DataLayoutError, match="000_mask.png' is 8x8 but its image"):
        index_category(root, "widget")


def test_unreadable_image_named(tmp_path):
    root = make_mvtec(tmp_path)
    (root / "widget" / "train" / "good" / "002.png").write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="002.png"):
        index_category(root, "widget")
