"""Per-image rotation on the host, as imgaug's ``Affine(rotate=...)`` does one image at a time."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def rotate_image(image: np.ndarray, degrees: float, order: int = 1) -> np.ndarray:
    """Rotate (H, W) or (H, W, C) float image counter-clockwise about its centre, fill 0.

    order 1 is bilinear, 0 nearest. Same geometry as the library's ``rotate`` (output pixel
    (i, j) samples the input at the inverse rotation about ((H − 1)/2, (W − 1)/2)), and zero
    padding that is interpolated at the border like ``grid_sample(padding_mode="zeros")``.
    """
    radians = math.radians(degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    matrix = np.array([[cos, sin], [-sin, cos]])
    height, width = image.shape[:2]
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    offset = centre - matrix @ centre
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty(planes.shape, dtype=np.float32)
    for channel in range(planes.shape[2]):
        out[..., channel] = ndimage.affine_transform(
            planes[..., channel].astype(np.float64),
            matrix,
            offset=offset,
            order=order,
            mode="grid-constant",
            cval=0.0,
        )
    return out[..., 0] if image.ndim == 2 else out
