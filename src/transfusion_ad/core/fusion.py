"""Final anomaly map and image score (spec §7): smoothed soft mask fused with the smoothed
reconstruction error; the image score is the map's maximum."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def box_filter(maps: Tensor, kernel_size: int) -> Tensor:
    """Zero-padded "same" k×k mean filter (borders are attenuated, as in the reference).

    maps: (B, 1, H, W) -> (B, 1, H, W); kernel_size must be a positive odd integer.
    """
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}.")
    if kernel_size == 1:
        return maps
    return F.avg_pool2d(
        maps, kernel_size, stride=1, padding=kernel_size // 2, count_include_pad=True
    )


def reconstruction_error(images: Tensor, reconstruction: Tensor) -> Tensor:
    """Per-pixel squared error averaged over channels, both mapped from [−1, 1] to [0, 1], clipped.

    images, reconstruction: (B, C, H, W) -> (B, 1, H, W).
    """
    a = (images / 2 + 0.5).clamp(0.0, 1.0)
    b = (reconstruction / 2 + 0.5).clamp(0.0, 1.0)
    return ((a - b) ** 2).mean(dim=1, keepdim=True)


def fuse_masks(
    mask: Tensor, recon_error: Tensor, weight: float = 0.95, kernel_size: int = 7
) -> Tensor:
    """M_final = w·box_k(mask) + (1 − w)·box_k(recon_error); inputs and output (B, 1, H, W)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"Fusion weight must lie in [0, 1], got {weight}.")
    return weight * box_filter(mask, kernel_size) + (1.0 - weight) * box_filter(
        recon_error, kernel_size
    )


def image_scores(fused: Tensor) -> Tensor:
    """Image-level anomaly score = max of the fused map: (B, 1, H, W) -> (B,)."""
    return fused.amax(dim=(1, 2, 3))
