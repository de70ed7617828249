"""Decode a manifest's images into one uint8 tensor at the model resolution.

Images are stored as uint8 (a quarter of float32) and turned into [-1, 1] floats per batch, so a
whole category fits in memory even at 256 px.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from transfusion_ad.data.errors import UnreadableImageError
from transfusion_ad.data.images import load_image

logger = logging.getLogger(__name__)


@dataclass
class LoadedImages:
    """images: (N, 3, S, S) uint8; paths: the N files kept; skipped: unreadable files left out."""

    images: Tensor
    paths: list[str]
    skipped: list[str] = field(default_factory=list)


def load_images(
    paths: Sequence[str],
    size: int,
    *,
    skip_unreadable: bool = False,
    desc: str = "load images",
) -> LoadedImages:
    """Decode and resize ``paths`` to (size, size); unreadable files raise, or are skipped."""
    arrays: list[np.ndarray] = []
    kept: list[str] = []
    skipped: list[str] = []
    for path in tqdm(paths, desc=desc, unit="img", leave=False, disable=len(paths) < 50):
        try:
            arrays.append(load_image(path, size))
        except UnreadableImageError:
            if not skip_unreadable:
                raise
            skipped.append(str(path))
            continue
        kept.append(str(path))
    if skipped:
        logger.warning(
            "Skipped %d unreadable image(s) (skip_unreadable: true): %s",
            len(skipped),
            ", ".join(skipped),
        )
    if not arrays:
        raise UnreadableImageError(f"None of the {len(paths)} images could be read.")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return LoadedImages(images=images, paths=kept, skipped=skipped)


def to_model_range(images: Tensor) -> Tensor:
    """uint8 (..., 3, H, W) -> float32 in [-1, 1] (spec §1.3: x = 2·(p/255 − 0.5))."""
    return images.float().div(127.5).sub(1.0)


class TrainingImages(Dataset):
    """Items (image (3, H, W) in [-1, 1], foreground (1, H, W) in {0, 1}) for the Trainer."""

    def __init__(self, images: Tensor, foreground: Tensor) -> None:
        if images.shape[0] != foreground.shape[0] or images.shape[-2:] != foreground.shape[-2:]:
            raise ValueError(
                f"{images.shape[0]} images of {tuple(images.shape[-2:])} but "
                f"{foreground.shape[0]} foreground masks of {tuple(foreground.shape[-2:])}; "
                "re-run the anomaly_synthesis pipeline for this category."
            )
        self.images = images
        self.foreground = foreground.reshape(images.shape[0], 1, *images.shape[-2:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_model_range(self.images[index]), self.foreground[index].float()
