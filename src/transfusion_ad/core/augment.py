"""The ten appearance operations of the anomaly source (spec §2.4), batched on uint8 tensors.

The authors chain imgaug augmenters per sample on the CPU. Here every operation works on a whole
batch ``(B, 3, H, W)`` of uint8 images on any device, draws its parameters per sample from an
optional ``torch.Generator`` living on the images' device, and never synchronises with the host,
so synthesis can run on the training device. Parameter ranges follow the spec (imgaug 0.4.0
defaults where the authors relied on them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as nnf
import torchvision.transforms.v2.functional as tvf
from torch import Tensor

Operation = Callable[[Tensor, torch.Generator | None], Tensor]

_LUMA = (0.299, 0.587, 0.114)


def _check_uint8_images(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )


def _uniform(
    images: Tensor, low: float, high: float, generator: torch.Generator | None, channels: int = 1
) -> Tensor:
    """Per-sample uniform draws in [low, high), shaped ``(B, channels, 1, 1)`` for broadcasting."""
    u = torch.rand(images.shape[0], channels, 1, 1, generator=generator, device=images.device)
    return low + (high - low) * u


def _to_uint8(values: Tensor) -> Tensor:
    return values.round().clamp(0, 255).to(torch.uint8)


def rotate(
    images: Tensor, degrees: Tensor, *, mode: Literal["bilinear", "nearest"] = "bilinear"
) -> Tensor:
    """Rotate each image about its centre by its own angle, counter-clockwise, fill 0, no expand.

    images: (B, C, H, W) float or uint8; degrees: (B,). Returns the same shape and dtype
    (uint8 results are rounded). Batched through ``affine_grid``/``grid_sample`` so that every
    sample gets its own angle without a Python loop.
    """
    batch, _, height, width = images.shape
    radians = degrees.to(device=images.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # Output pixel (x, y) samples the input at R(-angle)(x, y) in pixel units; normalised
    # coordinates scale x by 2/W and y by 2/H, hence the aspect factors on the off-diagonal.
    theta = torch.zeros(batch, 2, 3, device=images.device, dtype=torch.float32)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (height / width)
    theta[:, 1, 0] = sin * (width / height)
    theta[:, 1, 1] = cos
    grid = nnf.affine_grid(theta, [batch, 1, height, width], align_corners=False)
    source = images if images.is_floating_point() else images.float()
    rotated = nnf.grid_sample(
        source, grid.to(source.dtype), mode=mode, padding_mode="zeros", align_corners=False
    )
    return rotated if images.is_floating_point() else _to_uint8(rotated).to(images.dtype)


def _apply_lut(images: Tensor, lut: Tensor) -> Tensor:
    """Map uint8 images (B, 3, H, W) through per-sample, per-channel tables lut (B, 3, 256)."""
    values = lut.gather(2, images.flatten(2).long()).view(images.shape)
    return _to_uint8(values)


def _levels(images: Tensor) -> Tensor:
    """The 256 uint8 levels as floats, shaped (1, 1, 256) for building lookup tables."""
    return torch.arange(256, device=images.device, dtype=torch.float32).view(1, 1, 256)


def gamma_contrast(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """GammaContrast, γ ~ U(0.5, 2.0) drawn per sample and per channel: 255·(x/255)^γ."""
    gamma = _uniform(images, 0.5, 2.0, generator, channels=3).view(-1, 3, 1)
    return _apply_lut(images, 255.0 * (_levels(images) / 255.0) ** gamma)


def multiply_and_add_to_brightness(
    images: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """MultiplyAndAddToBrightness: luma Y → Y·mul + add, mul ~ U(0.8, 1.2), add ~ U(-30, 30).

    Changing Y with the chroma (Cb, Cr) fixed shifts R, G and B by the same amount, so the
    YCbCr round trip of imgaug reduces to adding (Y' − Y) to every channel.
    """
    mul = _uniform(images, 0.8, 1.2, generator)
    add = _uniform(images, -30.0, 30.0, generator)
    return _brightness(images, mul, add)


def _brightness(images: Tensor, mul: Tensor, add: Tensor) -> Tensor:
    """Y → Y·mul + add on the luma of uint8 images (B, 3, H, W); mul, add (B, 1, 1, 1)."""
    x = images.float()
    weights = torch.tensor(_LUMA, device=images.device).view(1, 3, 1, 1)
    luma = (x * weights).sum(dim=1, keepdim=True)
    return _to_uint8(x + (luma * mul + add - luma))


def enhance_sharpness(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PIL ImageEnhance.Sharpness, factor ~ U(0, 2): blend of the PIL-smoothed image and the image.

    Factor 0 gives the smoothed image, 1 the original, 2 an over-sharpened one. As in PIL, the
    one-pixel border keeps the original values in the smoothed image.
    """
    return _sharpen(images, _uniform(images, 0.0, 2.0, generator))


def _sharpen(images: Tensor, factor: Tensor) -> Tensor:
    """PIL sharpness enhancement of uint8 images (B, 3, H, W) by factor (B, 1, 1, 1)."""
    x = images.float()
    # PIL's SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 = (3×3 box sum + 4·centre) / 13.
    box_sum = 9.0 * nnf.avg_pool2d(x, kernel_size=3, stride=1)
    smoothed = ((box_sum + 4.0 * x[..., 1:-1, 1:-1]) / 13.0).round()
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smoothed
    return _to_uint8(degenerate + factor * (x - degenerate))


def _rgb_to_hsv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """rgb (B, 3, H, W) in [0, 1] → hue in [0, 1) (fraction of the circle), saturation, value."""
    red, green, blue = rgb.unbind(dim=1)
    value, _ = rgb.max(dim=1)
    chroma = value - rgb.min(dim=1).values
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-12), torch.zeros_like(value))
    hue = torch.where(
        value == red,
        (green - blue) / safe_chroma,
        torch.where(
            value == green, 2.0 + (blue - red) / safe_chroma, 4.0 + (red - green) / safe_chroma
        ),
    )
    hue = torch.where(chroma > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return hue, saturation, value


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Inverse of ``_rgb_to_hsv``: (B, H, W) each → rgb (B, 3, H, W) in [0, 1]."""
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + hue * 6.0) % 6.0
        ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return torch.stack(channels, dim=1)


def add_to_hue_and_saturation(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """AddToHueAndSaturation((-50, 50), per_channel=True): independent shifts of hue and saturation.

    As in imgaug, a hue value v moves the hue by v/255 of the full circle (±50 ≈ ±70°) and a
    saturation value v is added to the 0–255 saturation, clipped.
    """
    shifts = _uniform(images, -50.0, 50.0, generator, channels=2)
    return _shift_hue_saturation(images, shifts[:, 0], shifts[:, 1])


def _shift_hue_saturation(images: Tensor, hue_shift: Tensor, saturation_shift: Tensor) -> Tensor:
    """Add imgaug-style values (B, 1, 1), 255 = full circle / full scale, to hue and saturation."""
    hue, saturation, value = _rgb_to_hsv(images.float() / 255.0)
    hue = (hue + hue_shift / 255.0) % 1.0
    saturation = (saturation + saturation_shift / 255.0).clamp(0.0, 1.0)
    return _to_uint8(255.0 * _hsv_to_rgb(hue, saturation, value))


def solarize(
    images: Tensor, generator: torch.Generator | None = None, probability: float = 0.5
) -> Tensor:
    """Solarize: with the given per-sample probability invert pixels ≥ threshold ~ U(32, 128).

    With the spec's p = 0.5 about half of the samples that draw this operation stay unchanged;
    ``probability=1`` makes it always act (used in the tests).
    """
    apply = _uniform(images, 0.0, 1.0, generator) < probability
    threshold = _uniform(images, 32.0, 128.0, generator)
    invert = apply & (images.float() >= threshold)
    return torch.where(invert, 255 - images, images)


def posterize(
    images: Tensor, generator: torch.Generator | None = None, bits: tuple[int, int] = (1, 8)
) -> Tensor:
    """Posterize: keep the top ``b`` bits of every value, b uniform in ``bits`` (inclusive).

    b = 8 (one draw in eight with the default range) is the identity, as in imgaug.
    """
    count = torch.randint(
        bits[0], bits[1] + 1, (images.shape[0], 1, 1, 1), generator=generator, device=images.device
    )
    keep = (256 - 2 ** (8 - count)).to(torch.uint8)
    return torch.bitwise_and(images, keep)


def invert(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Invert, always when chosen (imgaug default p = 1): 255 − x. Draws nothing."""
    return tvf.invert(images)


def _channel_histograms(images: Tensor) -> Tensor:
    """images (B, 3, H, W) uint8 → per-channel histograms (B, 3, 256) float."""
    flat = images.flatten(2).long()
    hist = torch.zeros(*flat.shape[:2], 256, device=images.device)
    return hist.scatter_add_(2, flat, torch.ones_like(flat, dtype=hist.dtype))


def autocontrast(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PIL ImageOps.autocontrast per channel, cutoff drawn per sample from {0, …, 20} %.

    ``cutoff`` % of the pixels are ignored at each end of every channel's histogram, then the
    remaining range [lo, hi] is stretched linearly to [0, 255]; a flat channel stays unchanged.
    """
    cutoff = torch.randint(
        0, 21, (images.shape[0], 1, 1), generator=generator, device=images.device
    )
    return _autocontrast(images, cutoff)


def _autocontrast(images: Tensor, cutoff: Tensor) -> Tensor:
    """PIL autocontrast of uint8 images (B, 3, H, W) with per-sample cutoff percent (B, 1, 1)."""
    hist = _channel_histograms(images)
    cut = torch.floor(images.shape[2] * images.shape[3] * cutoff.float() / 100.0)
    low = (hist.cumsum(dim=2) <= cut).sum(dim=2).float()
    high = 255.0 - (hist.flip(2).cumsum(dim=2) <= cut).sum(dim=2).float()
    scale = 255.0 / torch.where(high > low, high - low, torch.ones_like(high))
    stretched = torch.floor((_levels(images) - low[..., None]) * scale[..., None])
    lut = torch.where((high > low)[..., None], stretched, _levels(images))
    return _apply_lut(images, lut)


def equalize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PIL ImageOps.equalize per channel (torchvision's batched implementation). Draws nothing."""
    return tvf.equalize(images)


def affine_rotate(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Affine(rotate=(-45, 45)): bilinear rotation about the centre, constant-0 fill, no expand."""
    degrees = _uniform(images, -45.0, 45.0, generator).flatten()
    return rotate(images, degrees, mode="bilinear")


OPERATIONS: dict[str, Operation] = {
    "gamma_contrast": gamma_contrast,
    "multiply_and_add_to_brightness": multiply_and_add_to_brightness,
    "enhance_sharpness": enhance_sharpness,
    "add_to_hue_and_saturation": add_to_hue_and_saturation,
    "solarize": solarize,
    "posterize": posterize,
    "invert": invert,
    "autocontrast": autocontrast,
    "equalize": equalize,
    "affine_rotate": affine_rotate,
}


def apply_random_operations(
    images_uint8: Tensor, num_ops: int = 3, generator: torch.Generator | None = None
) -> Tensor:
    """Apply ``num_ops`` distinct operations, in random order, chosen independently per sample.

    images_uint8: (B, 3, H, W) uint8 → (B, 3, H, W) uint8. Every operation runs on the whole batch
    at each position and ``torch.where`` keeps each sample's chosen result, which avoids
    data-dependent indexing (and so any host synchronisation on accelerators).
    """
    _check_uint8_images(images_uint8)
    if not 0 <= num_ops <= len(OPERATIONS):
        raise ValueError(f"num_ops must be in 0..{len(OPERATIONS)}, got {num_ops}")
    batch = images_uint8.shape[0]
    keys = torch.rand(batch, len(OPERATIONS), generator=generator, device=images_uint8.device)
    chosen = keys.argsort(dim=1)[:, :num_ops]
    result = images_uint8
    for position in range(num_ops):
        current = result
        for index, operation in enumerate(OPERATIONS.values()):
            selected = (chosen[:, position] == index).view(batch, 1, 1, 1)
            result = torch.where(selected, operation(current, generator), result)
    return result
