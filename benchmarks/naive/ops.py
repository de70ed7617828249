"""The ten appearance operations (spec §2.4) the way the authors run them: one image at a time,
on the host, in NumPy, on an (H, W, 3) uint8 array (imgaug's layout).

Every operation takes its random parameters as arguments, so a test can hand it exactly the
parameters the batched torch operation drew; ``draw_parameters`` draws them from a NumPy
generator for the benchmark. The arithmetic mirrors the library's float32 formulas so the two
paths can be compared pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.naive.geometry import rotate_image
from transfusion_ad.core import augment

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LEVELS = np.arange(256, dtype=np.float32)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _apply_luts(image: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Map each channel of image (H, W, 3) through its own table luts (3, 256)."""
    out = np.empty(image.shape, dtype=np.float32)
    for channel in range(3):
        out[..., channel] = luts[channel][image[..., channel]]
    return _to_uint8(out)


def gamma_contrast(image: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """255·(x/255)^γ with one γ per channel, gamma (3,) float32."""
    luts = np.float32(255.0) * (_LEVELS[None, :] / np.float32(255.0)) ** gamma[:, None]
    return _apply_luts(image, luts)


def multiply_and_add_to_brightness(image: np.ndarray, mul: float, add: float) -> np.ndarray:
    """Luma Y → Y·mul + add with the chroma fixed, i.e. (Y' − Y) added to every channel."""
    x = image.astype(np.float32)
    luma = (x * _LUMA).sum(axis=2, keepdims=True)
    return _to_uint8(x + (luma * np.float32(mul) + np.float32(add) - luma))


def enhance_sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """PIL Sharpness: blend of the SMOOTH-filtered image (border kept) and the image."""
    x = image.astype(np.float32)
    degenerate = x.copy()
    height, width = image.shape[:2]
    box = np.zeros((height - 2, width - 2, 3), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            box += x[dy : dy + height - 2, dx : dx + width - 2]
    centre = x[1:-1, 1:-1]
    degenerate[1:-1, 1:-1] = np.round((box + np.float32(4.0) * centre) / np.float32(13.0))
    return _to_uint8(degenerate + np.float32(factor) * (x - degenerate))


def _rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=2)
    chroma = value - rgb.min(axis=2)
    safe = np.where(chroma > 0, chroma, np.float32(1.0))
    saturation = np.where(value > 0, chroma / np.maximum(value, np.float32(1e-12)), np.float32(0.0))
    hue = np.where(
        value == red,
        (green - blue) / safe,
        np.where(value == green, 2.0 + (blue - red) / safe, 4.0 + (red - green) / safe),
    ).astype(np.float32)
    hue = np.where(chroma > 0, np.mod(hue / np.float32(6.0), np.float32(1.0)), np.float32(0.0))
    return hue.astype(np.float32), saturation.astype(np.float32), value


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = np.mod(np.float32(n) + hue * np.float32(6.0), np.float32(6.0))
        ramp = np.clip(np.minimum(k, np.float32(4.0) - k), 0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return np.stack(channels, axis=2)


def add_to_hue_and_saturation(image: np.ndarray, hue_shift: float, saturation_shift: float):
    """Hue moved by hue_shift/255 of the circle, saturation by saturation_shift/255, clipped."""
    hue, saturation, value = _rgb_to_hsv(image.astype(np.float32) / np.float32(255.0))
    hue = np.mod(hue + np.float32(hue_shift) / np.float32(255.0), np.float32(1.0))
    saturation = np.clip(saturation + np.float32(saturation_shift) / np.float32(255.0), 0.0, 1.0)
    return _to_uint8(np.float32(255.0) * _hsv_to_rgb(hue, saturation.astype(np.float32), value))


def solarize(image: np.ndarray, apply: bool, threshold: float) -> np.ndarray:
    """Invert the pixels ≥ threshold when apply is true."""
    if not apply:
        return image.copy()
    return np.where(image.astype(np.float32) >= np.float32(threshold), 255 - image, image)


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """Keep the top ``bits`` bits of every value."""
    return image & np.uint8(256 - 2 ** (8 - bits))


def invert(image: np.ndarray) -> np.ndarray:
    """255 − x."""
    return 255 - image


def autocontrast(image: np.ndarray, cutoff: int) -> np.ndarray:
    """PIL autocontrast per channel: drop cutoff % of the pixels at each end, stretch the rest."""
    height, width = image.shape[:2]
    cut = np.floor(np.float32(height * width) * np.float32(cutoff) / np.float32(100.0))
    luts = np.empty((3, 256), dtype=np.float32)
    for channel in range(3):
        hist = np.bincount(image[..., channel].ravel(), minlength=256).astype(np.float32)
        low = np.float32((np.cumsum(hist) <= cut).sum())
        high = np.float32(255.0 - (np.cumsum(hist[::-1]) <= cut).sum())
        if high > low:
            # torch evaluates 255 / x as 255 · (1 / x); the same two roundings here.
            scale = np.float32(255.0) * (np.float32(1.0) / (high - low))
            luts[channel] = np.floor((_LEVELS - low) * scale)
        else:
            luts[channel] = _LEVELS
    return _apply_luts(image, luts)


def equalize(image: np.ndarray) -> np.ndarray:
    """PIL equalize per channel (integer arithmetic, identity for a flat channel)."""
    out = np.empty_like(image)
    for channel in range(3):
        values = image[..., channel]
        hist = np.bincount(values.ravel(), minlength=256)
        last = int(np.flatnonzero(hist)[-1])
        step = (int(hist.sum()) - int(hist[last])) // 255
        if step == 0:
            out[..., channel] = values
            continue
        lut = np.zeros(256, dtype=np.int64)
        lut[1:] = (np.cumsum(hist)[:-1] + step // 2) // step
        out[..., channel] = np.clip(lut, 0, 255).astype(np.uint8)[values]
    return out


def affine_rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Bilinear rotation about the centre, constant-0 fill, no expand."""
    return _to_uint8(rotate_image(image.astype(np.float32), degrees, order=1))


# The NumPy twin of every operation of the library, under the library's names and order.
OPERATIONS: dict[str, Callable[..., np.ndarray]] = {
    name: globals()[name] for name in augment.OPERATIONS
}


def draw_parameters(name: str, rng: np.random.Generator) -> dict[str, Any]:
    """Random keyword arguments of operation ``name`` (the spec §2.4 ranges)."""
    draws: dict[str, Callable[[], dict[str, Any]]] = {
        "gamma_contrast": lambda: {"gamma": rng.uniform(0.5, 2.0, 3).astype(np.float32)},
        "multiply_and_add_to_brightness": lambda: {
            "mul": rng.uniform(0.8, 1.2),
            "add": rng.uniform(-30.0, 30.0),
        },
        "enhance_sharpness": lambda: {"factor": rng.uniform(0.0, 2.0)},
        "add_to_hue_and_saturation": lambda: {
            "hue_shift": rng.uniform(-50.0, 50.0),
            "saturation_shift": rng.uniform(-50.0, 50.0),
        },
        "solarize": lambda: {"apply": rng.random() < 0.5, "threshold": rng.uniform(32.0, 128.0)},
        "posterize": lambda: {"bits": int(rng.integers(1, 9))},
        "invert": dict,
        "autocontrast": lambda: {"cutoff": int(rng.integers(0, 21))},
        "equalize": dict,
        "affine_rotate": lambda: {"degrees": rng.uniform(-45.0, 45.0)},
    }
    if name not in draws:
        raise ValueError(f"unknown operation {name!r}; choose one of {sorted(draws)}")
    return draws[name]()


def apply_random_operations(
    image: np.ndarray, rng: np.random.Generator, num_ops: int = 3
) -> np.ndarray:
    """``num_ops`` distinct operations in random order on one (H, W, 3) uint8 image."""
    names = list(OPERATIONS)
    for index in rng.choice(len(names), size=num_ops, replace=False):
        name = names[int(index)]
        image = OPERATIONS[name](image, **draw_parameters(name, rng))
    return image
