"""Decode images and masks to fixed dtypes, whatever their mode on disk.

Grayscale, palette, RGBA and 16-bit files all come out as 3-channel 8-bit RGB, so the rest of the
project never branches on file format. Truncated files raise instead of decoding half an image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from transfusion_ad.data.errors import UnreadableImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

_HIGH_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def is_image_file(path: Path) -> bool:
    """True for a file whose suffix (any case) is one of the supported image formats."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_image_files(root: str | Path, what: str = "input_dir") -> list[str]:
    """The image files under ``root`` as sorted relative POSIX paths, subfolders included,
    hidden files and folders left out; a clear error naming ``what`` when there is none."""
    folder = Path(root)
    if not folder.is_dir():
        raise ValueError(f"{what} '{root}' is not a folder (looked at '{folder.resolve()}').")
    files = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if is_image_file(path)
        and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    )
    if not files:
        raise ValueError(
            f"No image in '{root}' (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, any case, in "
            f"subfolders too; given as {what})."
        )
    return files


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (width, height) from the file header without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise UnreadableImageError(
            f"Cannot read image header of '{path}' ({exc}). Replace or remove this file."
        ) from exc


def _decode(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UnreadableImageError(
            f"Cannot decode image '{path}' ({exc}); the file is empty, truncated or not an "
            "image. Replace or remove it (or set skip_unreadable: true to skip such files)."
        ) from exc


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit integer or float pixels to 8 bits."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        peak = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        return np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)
    bits = 16 if array.max(initial=0) > 255 or array.dtype == np.uint16 else 8
    return (array.astype(np.uint32) >> (bits - 8)).clip(0, 255).astype(np.uint8)


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Load an image as RGB uint8 (H, W, 3), optionally resized to (size, size).

    The resize is bilinear with antialiasing and ignores aspect ratio, as the reference
    pre-processing does (spec §1.3).
    """
    return to_rgb_array(_decode(Path(path)), size)


def to_rgb_array(img: Image.Image, size: int | None = None) -> np.ndarray:
    """A decoded image as RGB uint8 (H, W, 3), optionally resized to (size, size): the one
    conversion and resize that files, arrays and PIL images all go through."""
    if img.mode in _HIGH_BIT_MODES or img.mode == "F":
        gray = _to_uint8(np.asarray(img))
        img = Image.fromarray(gray, mode="L")
    img = img.convert("RGB")
    if size is not None:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def load_mask(path: str | Path) -> np.ndarray:
    """Load a ground-truth mask as bool (H, W), binarised with `> 0`.

    VisA masks store region indices 1..8 rather than 255, so `> 0` is the only safe rule.
    """
    path = Path(path)
    img = _decode(path)
    array = np.asarray(img)
    if array.ndim == 3:
        array = array[..., :3].max(axis=-1) if array.shape[-1] >= 3 else array[..., 0]
    return array > 0
