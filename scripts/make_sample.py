"""Build the shipped demo sample from the real VisA fryum and DTD data in ../shared/data.

The sample is small enough to commit (< 6 MB) and lets the demo and the tests run with no
download: 60 train/good, 10 test/good and 25 test/bad fryum images (long side 320 px) with their
masks, plus 10 DTD textures. Images are picked evenly over the sorted file lists, so the choice
is deterministic. Run from the project root:

    python scripts/make_sample.py --shared ../shared/data --out data/01_raw/sample
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

LONG_SIDE = 320
COUNTS = {("train", "good"): 60, ("test", "good"): 10, ("test", "bad"): 25}
TEXTURES_PER_CLASS = 1
TEXTURE_SIDE = 256
JPEG_QUALITY = 90


def evenly_spaced(items: list[Path], count: int) -> list[Path]:
    """Pick ``count`` items spread over the whole list (deterministic)."""
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def resized(img: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(img.size)
    size = (round(img.width * scale), round(img.height * scale))
    return img.resize(size, Image.Resampling.LANCZOS)


def downscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-downscale a binary mask; keep pixels at least a quarter covered.

    Fryum defects can be a few dozen pixels at full size; a plain 0.5 cut would erase some
    of them, so a lower cut keeps every defect visible at the small scale.
    """
    coverage = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small = coverage >= 0.25
    if not small.any():
        small = coverage > 0
    return small.astype(np.uint8) * 255


def make_fryum(source: Path, out: Path) -> None:
    for (split, defect), count in COUNTS.items():
        images = sorted((source / split / defect).glob("*.JPG"))
        target = out / split / defect
        target.mkdir(parents=True, exist_ok=True)
        for path in evenly_spaced(images, count):
            with Image.open(path) as img:
                small = resized(img.convert("RGB"), LONG_SIDE)
            small.save(target / path.name, quality=JPEG_QUALITY)
            if defect == "good":
                continue
            mask_path = source / "ground_truth" / defect / f"{path.stem}_mask.png"
            mask = np.asarray(Image.open(mask_path)) > 0
            mask_dir = out / "ground_truth" / defect
            mask_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(downscale_mask(mask, small.size)).save(mask_dir / mask_path.name)


def make_textures(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        for path in sorted(class_dir.glob("*.jpg"))[:TEXTURES_PER_CLASS]:
            with Image.open(path) as img:
                small = img.convert("RGB").resize(
                    (TEXTURE_SIDE, TEXTURE_SIDE), Image.Resampling.LANCZOS
                )
            small.save(out / path.name, quality=JPEG_QUALITY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("data/01_raw/sample"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    make_fryum(args.shared / "visa_fryum" / "fryum", args.out / "fryum")
    make_textures(args.shared / "dtd_subset" / "images", args.out / "textures")
    shutil.copy(args.shared / "visa_fryum" / "LICENSE-DATASET.txt", args.out / "LICENSE-VisA.txt")
    print(f"sample written to {args.out}")


if __name__ == "__main__":
    main()
