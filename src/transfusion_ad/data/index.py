"""Index a category folder into a manifest: one row per image, ground truth paired by file stem.

Supported layouts (detected with ``layout="auto"``):

- ``mvtec``: ``<root>/<category>/train/good``, ``test/<defect>``,
  ``ground_truth/<defect>/<stem>_mask.png`` (MVTec AD as distributed);
- ``visa_1cls``: the same tree with ``.JPG`` images and ``<stem>.png`` masks (VisA re-organised);
- ``folder``: the same tree with any of .png/.jpg/.jpeg/.bmp/.tif images, any case, masks named
  ``<stem>_mask.<ext>`` or ``<stem>.<ext>``; or the flat tree people have: ``<category>/good``,
  ``<category>/bad`` (and/or ``defect*``) and an optional ``<category>/masks`` matched by stem.
  In the flat tree every fifth good image (by sorted name) is a normal test image;
- ``visa_raw``: VisA as distributed, ``<root>/<category>/Data/Images/{Normal,Anomaly}``,
  ``Data/Masks/Anomaly``, split from ``<root>/split_csv/1cls.csv``.

Ground-truth paths are built from the layout, never by replacing substrings of the full path, so a
data root containing "test" or "ground_truth" is safe. A test set may be missing (good images
only) and anomalous images may lack masks: ``missing_masks`` lists them, and what cannot be
computed from such data is decided by the pipelines, not here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from transfusion_ad.data.errors import DataLayoutError, UnreadableImageError
from transfusion_ad.data.images import image_size, is_image_file

LAYOUTS = ("auto", "mvtec", "visa_1cls", "folder", "visa_raw")
MANIFEST_COLUMNS = ("split", "label", "defect_type", "image_path", "mask_path")
GOOD = "good"

DOWNLOAD_HINT = (
    "Download MVTec AD (https://www.mvtec.com/company/research/datasets/mvtec-ad) or VisA "
    "(https://github.com/amazon-science/spot-diff) and extract it so that "
    "'<root>/<category>/train/good' exists (MVTec layout) or '<root>/<category>/Data/Images' "
    "with '<root>/split_csv/1cls.csv' (VisA as distributed); or point `data_root` at your own "
    "folder in MVTec layout."
)


def index_category(
    root: str | Path, category: str, layout: str = "auto", *, validate: bool = True
) -> pd.DataFrame:
    """Return the manifest of one category, one row per image.

    Columns: split, label, defect_type, image_path, mask_path.

    ``label`` is 0 for good images and 1 for anomalous ones; ``mask_path`` is None for good
    images. Rows are sorted by split, defect type and file name. ``df.attrs["layout"]`` holds
    the layout that was used. ``validate`` opens every header (see ``validate_manifest``);
    pass False to list the files only and validate later.
    """
    if layout not in LAYOUTS:
        raise DataLayoutError(f"Unknown layout '{layout}'. Use one of: {', '.join(LAYOUTS)}.")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataLayoutError(f"Data root '{root}' does not exist. {DOWNLOAD_HINT}")
    category_dir = root / category
    if not category_dir.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir() and _looks_like_category(p))
        listing = ", ".join(available) if available else "none"
        raise DataLayoutError(
            f"Category '{category}' not found under '{root}'. Categories there: {listing}."
        )
    resolved = detect_layout(root, category) if layout == "auto" else layout
    if resolved == "visa_raw":
        rows = _index_visa_raw(root, category)
    elif resolved == "folder" and not (category_dir / "train").is_dir():
        rows = _index_flat(category_dir)
    else:
        rows = _index_mvtec_like(category_dir)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest = manifest.sort_values(["split", "defect_type", "image_path"], ignore_index=True)
    manifest["label"] = manifest["label"].astype(int)
    masks = manifest["mask_path"].astype(object)
    manifest["mask_path"] = masks.where(masks.notna(), None)
    if validate:
        manifest, _ = validate_manifest(manifest)
    manifest.attrs["layout"] = resolved
    manifest.attrs["category"] = category
    return manifest


def _looks_like_category(path: Path) -> bool:
    return any((path / name).is_dir() for name in ("train", GOOD, "Data"))


def detect_layout(root: Path, category: str) -> str:
    """Name the layout of ``root/category`` or raise saying which folders were expected."""
    category_dir = root / category
    if (category_dir / "Data" / "Images").is_dir():
        return "visa_raw"
    if (category_dir / GOOD).is_dir() and not (category_dir / "train").is_dir():
        return "folder"
    if (category_dir / "train").is_dir():
        suffixes = {p.suffix for p in (category_dir / "train" / GOOD).glob("*") if is_image_file(p)}
        if suffixes == {".png"}:
            return "mvtec"
        if suffixes == {".JPG"}:
            return "visa_1cls"
        return "folder"
    present = sorted(p.name for p in category_dir.iterdir()) if category_dir.is_dir() else []
    raise DataLayoutError(
        f"Cannot recognise the layout of '{category_dir}' "
        f"(it holds: {', '.join(present) or 'nothing'}). Expected either 'train/good', "
        "'test/<defect>' and 'ground_truth/<defect>' (MVTec layout), 'good/', 'bad/' or "
        "'defect*/' and 'masks/' (a flat folder) "
        "or 'Data/Images/{Normal,Anomaly}' and 'Data/Masks/Anomaly' with "
        f"'{root / 'split_csv' / '1cls.csv'}' (VisA as distributed)."
    )


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p)) if folder.is_dir() else []


def _find_mask(mask_dir: Path, stem: str) -> Path | None:
    """Pair by stem: ``<stem>_mask.<ext>`` first, then ``<stem>.<ext>``, any supported suffix."""
    by_stem: dict[str, Path] = {p.stem: p for p in _images_in(mask_dir)}
    return by_stem.get(f"{stem}_mask") or by_stem.get(stem)


def _index_mvtec_like(category_dir: Path) -> list[dict]:
    rows: list[dict] = []
    train_dir = category_dir / "train" / GOOD
    train_images = _images_in(train_dir)
    if not train_images:
        raise DataLayoutError(
            f"No training images in '{train_dir}'. Put the defect-free training images there "
            "(.png, .jpg, .jpeg, .bmp or .tif)."
        )
    rows += [_row("train", 0, GOOD, path, None) for path in train_images]
    test_dir = category_dir / "test"
    defect_dirs = sorted(p for p in test_dir.iterdir() if p.is_dir()) if test_dir.is_dir() else []
    for defect_dir in defect_dirs:
        defect = defect_dir.name
        mask_dir = category_dir / "ground_truth" / defect
        masks = {p.stem: p for p in _images_in(mask_dir)}
        for path in _images_in(defect_dir):
            if defect == GOOD:
                rows.append(_row("test", 0, GOOD, path, None))
                continue
            mask = masks.get(f"{path.stem}_mask") or masks.get(path.stem)
            rows.append(_row("test", 1, defect, path, mask))
    return rows


FLAT_TEST_EVERY = 5


def _index_flat(category_dir: Path) -> list[dict]:
    """good/ (every FLAT_TEST_EVERY-th image, by sorted name, a normal test image, the rest
    training images), bad/ and defect*/ (anomalous test images), masks/ paired by stem."""
    good = _images_in(category_dir / GOOD)
    if not good:
        raise DataLayoutError(
            f"No images in '{category_dir / GOOD}'. Put the defect-free images there."
        )
    rows = [
        _row(
            "test" if index % FLAT_TEST_EVERY == FLAT_TEST_EVERY - 1 else "train", 0, GOOD, p, None
        )
        for index, p in enumerate(good)
    ]
    defect_dirs = sorted(
        p
        for p in category_dir.iterdir()
        if p.is_dir() and (p.name == "bad" or p.name.startswith("defect"))
    )
    anomalous = [(d.name, path) for d in defect_dirs for path in _images_in(d)]
    by_stem: dict[str, list[Path]] = {}
    for _, path in anomalous:
        by_stem.setdefault(path.stem, []).append(path)
    shared = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    masks = {p.stem.removesuffix("_mask"): p for p in _images_in(category_dir / "masks")}
    ambiguous = sorted(stem for stem in shared if stem in masks)
    if ambiguous:
        listed = "; ".join(f"{stem}: {', '.join(map(str, shared[stem]))}" for stem in ambiguous)
        raise DataLayoutError(
            f"Masks in '{category_dir / 'masks'}' are paired by file stem, but these stems "
            f"belong to more than one anomalous image: {listed}. Rename the images apart."
        )
    unmatched = sorted(p.name for stem, p in masks.items() if stem not in by_stem)
    if unmatched:
        raise DataLayoutError(
            f"Masks without an anomalous image of the same stem in '{category_dir}': "
            f"{', '.join(unmatched)}. Masks are paired by name, never by position: rename or "
            "remove them."
        )
    rows += [_row("test", 1, defect, path, masks.get(path.stem)) for defect, path in anomalous]
    return rows


def missing_masks(manifest: pd.DataFrame) -> list[str]:
    """The anomalous test images of a manifest that have no mask."""
    rows = manifest[(manifest["label"] == 1) & manifest["mask_path"].isna()]
    return rows["image_path"].tolist()


def _index_visa_raw(root: Path, category: str) -> list[dict]:
    split_csv = root / "split_csv" / "1cls.csv"
    if not split_csv.is_file():
        raise DataLayoutError(
            f"VisA split file '{split_csv}' is missing. It ships with VisA "
            "(split_csv/1cls.csv in the spot-diff repository); put it there."
        )
    rows: list[dict] = []
    with split_csv.open(newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("object") != category:
                continue
            image = root / record["image"]
            anomalous = record["label"].strip().lower() == "anomaly"
            mask = root / record["mask"] if anomalous and record.get("mask") else None
            if anomalous and (mask is None or not mask.is_file()):
                raise DataLayoutError(
                    f"Anomalous test image '{image}' has no mask (expected '{mask}' from "
                    f"'{split_csv}')."
                )
            if not image.is_file():
                raise DataLayoutError(f"Image '{image}' listed in '{split_csv}' does not exist.")
            split = "train" if record["split"].strip() == "train" else "test"
            rows.append(_row(split, int(anomalous), "bad" if anomalous else GOOD, image, mask))
    if not any(row["split"] == "train" for row in rows):
        raise DataLayoutError(f"No training images for '{category}' in '{split_csv}'.")
    return rows


def _row(split: str, label: int, defect: str, image: Path, mask: Path | None) -> dict:
    return {
        "split": split,
        "label": label,
        "defect_type": defect,
        "image_path": str(image),
        "mask_path": str(mask) if mask is not None else None,
    }


def validate_manifest(
    manifest: pd.DataFrame, *, skip_unreadable: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """Open every image and mask header; return (manifest, unreadable files skipped).

    An unreadable image (empty, not an image) raises naming the file, or with
    ``skip_unreadable`` its row is dropped and the file listed. A mask whose size differs from
    its image always raises: a misaligned mask would silently corrupt the pixel metrics.
    """
    keep: list[bool] = []
    skipped: list[str] = []
    for row in manifest.itertuples(index=False):
        try:
            size = image_size(row.image_path)
        except UnreadableImageError:
            if not skip_unreadable:
                raise
            skipped.append(row.image_path)
            keep.append(False)
            continue
        keep.append(True)
        if isinstance(row.mask_path, str):
            mask_size = image_size(row.mask_path)
            if mask_size != size:
                raise DataLayoutError(
                    f"Mask '{row.mask_path}' is {mask_size[0]}x{mask_size[1]} but its image "
                    f"'{row.image_path}' is {size[0]}x{size[1]}. Masks must match their image."
                )
    kept = manifest[keep].reset_index(drop=True)
    kept.attrs.update(manifest.attrs)
    if not (kept["split"] == "train").any():
        raise DataLayoutError("No readable training image is left after skipping unreadable files.")
    return kept, skipped
