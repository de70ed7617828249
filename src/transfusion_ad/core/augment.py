"""The ten appearance operations of the anomaly source (spec §2.4), batched on uint8 tensors.

The authors chain imgaug augmenters per sample on the CPU. Here every operation works on a whole
batch ``(B, 3, H, W)`` of uint8 images on any device, draws its parameters per sample from an
optional ``torch.Generator`` living on the images' device, and never synchronises with the host,
so synthesis can run on the training device. Parameter ranges follow the spec (imgaug 0.4.0
defaults where the authors relied on them). Per-sample tables (256 levels) stand in for
per-pixel arithmetic wherever an operation maps each channel value independently.
"""

from __future__ import annotations

import functools
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
    """Round and clip float values to uint8, in place: ``values`` must be a temporary."""
    return values.round_().clamp_(0, 255).to(torch.uint8)


def rotate(
    images: Tensor, degrees: Tensor, *, mode: Literal["bilinear", "nearest"] = "bilinear"
) -> Tensor:
    """Rotate each image about its centre by its own angle, counter-clockwise, fill 0, no expand.

    images: (B, C, H, W) float or uint8; degrees: (B,). Returns the same shape and dtype
    (uint8 results are rounded). Batched through one sampling grid and ``grid_sample`` so that
    every sample gets its own angle without a Python loop.
    """
    grid = _rotation_grid(degrees, images.shape, images.device)
    source = images if images.is_floating_point() else images.float()
    rotated = nnf.grid_sample(
        source, grid.to(source.dtype), mode=mode, padding_mode="zeros", align_corners=False
    )
    return rotated if images.is_floating_point() else _to_uint8(rotated).to(images.dtype)


def _rotation_grid(degrees: Tensor, shape: torch.Size, device: torch.device) -> Tensor:
    """Sampling grid (B, H, W, 2) of ``grid_sample`` for a rotation by ``degrees`` (B,).

    Output pixel (x, y) samples the input at R(−angle)(x, y) in pixel units, that is
    cos·(x, y) + sin·(−y, x) in normalised coordinates once the aspect is accounted for: the
    same grid as ``affine_grid(align_corners=False)``, built from two cached grids because its
    batched (B, H·W, 3) × (B, 3, 2) product costs more than the whole rotation on the CPU.
    """
    batch = shape[0]
    along, across = _centred_grids(shape[2], shape[3], device)
    radians = degrees.to(device=device, dtype=torch.float32) * (math.pi / 180.0)
    cos = torch.cos(radians).view(batch, 1, 1, 1)
    sin = torch.sin(radians).view(batch, 1, 1, 1)
    return torch.addcmul(cos * along, sin, across)


@functools.cache
def _centred_grids(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Normalised (x, y) of the pixel centres (1, H, W, 2), and (−y·H/W, x·W/H): the same
    points turned by 90° in pixel units. Cached per size and device; never written to."""
    xs = torch.linspace(-1.0, 1.0, width, device=device) * ((width - 1) / width)
    ys = torch.linspace(-1.0, 1.0, height, device=device) * ((height - 1) / height)
    grid_x, grid_y = xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(height, width)
    along = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0)
    across = torch.stack([-(height / width) * grid_y, (width / height) * grid_x], dim=-1)
    return along, across.unsqueeze(0)


def _apply_lut(images: Tensor, lut: Tensor, index: Tensor | None = None) -> Tensor:
    """Map uint8 images (B, 3, H, W) through per-sample, per-channel tables lut (B, 3, 256).

    The table is rounded to uint8 before the lookup (the same values as rounding after it, on
    256 entries instead of every pixel). index: ``images.flatten(2).long()`` if already made.
    """
    index = images.flatten(2).long() if index is None else index
    return _to_uint8(lut.clone()).gather(2, index).view(images.shape)


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
    red, green, blue = x.split(1, dim=1)
    luma = red * _LUMA[0] + green * _LUMA[1] + blue * _LUMA[2]
    return _to_uint8(x.add_(luma * mul + add - luma))


def enhance_sharpness(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PIL ImageEnhance.Sharpness, factor ~ U(0, 2): blend of the PIL-smoothed image and the image.

    Factor 0 gives the smoothed image, 1 the original, 2 an over-sharpened one. As in PIL, the
    one-pixel border keeps the original values in the smoothed image.
    """
    return _sharpen(images, _uniform(images, 0.0, 2.0, generator))


def _sharpen(images: Tensor, factor: Tensor) -> Tensor:
    """PIL sharpness enhancement of uint8 images (B, 3, H, W) by factor (B, 1, 1, 1)."""
    x = images.float()
    # PIL's SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 = (3×3 box sum + 4·centre) / 13;
    # the box sum is exact in float32 (integers below 2^24), summed rows first then columns.
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box_sum = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    centre = x[..., 1:-1, 1:-1]
    smoothed = ((box_sum + 4.0 * centre) / 13.0).round_()
    # The one-pixel border keeps x (PIL copies it into the smoothed image, so the blend is x).
    x[..., 1:-1, 1:-1] = smoothed + factor * (centre - smoothed)
    return _to_uint8(x)


def _fraction(values: Tensor) -> Tensor:
    """values mod 1 (the same float32 result as ``values % 1.0``, for a fraction of the cost)."""
    return values - values.floor()


def _rgb_to_hsv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """rgb (B, 3, H, W) in [0, 1] → hue in [0, 1) (fraction of the circle), saturation, value.

    A grey pixel (chroma 0) gets hue 0 and saturation 0: there max = red and green = blue, so
    the divisions below give exactly 0 without a branch.
    """
    red, green, blue = rgb.unbind(dim=1)
    value = rgb.amax(dim=1)
    chroma = value - rgb.amin(dim=1)
    safe_chroma = chroma.clamp_min(1e-12)
    saturation = chroma / value.clamp_min(1e-12)
    hue = torch.where(
        value == red,
        (green - blue) / safe_chroma,
        torch.where(
            value == green, 2.0 + (blue - red) / safe_chroma, 4.0 + (red - green) / safe_chroma
        ),
    )
    return _fraction(hue / 6.0), saturation, value


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Inverse of ``_rgb_to_hsv``: (B, H, W) each → rgb (B, 3, H, W) in [0, 1].

    Channel c is v − v·s·clip(min(k, 4 − k), 0, 1) with k = (n_c + 6h) mod 6, n = (5, 3, 1),
    evaluated for the three channels at once.
    """
    offsets = torch.tensor([5.0, 3.0, 1.0], device=hue.device).view(1, 3, 1, 1)
    k = (offsets + (hue * 6.0).unsqueeze(1)) % 6.0
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    value = value.unsqueeze(1)
    return value - (value * saturation.unsqueeze(1)) * ramp


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
    hue = _fraction(hue + hue_shift / 255.0)
    saturation = (saturation + saturation_shift / 255.0).clamp(0.0, 1.0)
    return _to_uint8(255.0 * _hsv_to_rgb(hue, saturation, value))


def solarize(
    images: Tensor, generator: torch.Generator | None = None, probability: float = 0.5
) -> Tensor:
    """Solarize: with the given per-sample probability invert pixels ≥ threshold ~ U(32, 128).

    With the spec's p = 0.5 about half of the samples that draw this operation stay unchanged;
    ``probability=1`` makes it always act (used in the tests).
    """
    apply = (_uniform(images, 0.0, 1.0, generator) < probability).view(-1, 1, 1)
    threshold = _uniform(images, 32.0, 128.0, generator).view(-1, 1, 1)
    levels = _levels(images)
    lut = torch.where(apply & (levels >= threshold), 255.0 - levels, levels)
    return _apply_lut(images, lut.expand(-1, 3, -1))


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


def _channel_histograms(index: Tensor) -> Tensor:
    """index (B, 3, N) int64 pixel values → per-channel histograms (B, 3, 256) int64."""
    batch, channels, _ = index.shape
    offsets = torch.arange(batch * channels, device=index.device).view(batch, channels, 1) * 256
    counts = torch.bincount((index + offsets).flatten(), minlength=batch * channels * 256)
    return counts.view(batch, channels, 256)


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
    index = images.flatten(2).long()
    hist = _channel_histograms(index).float()
    cut = torch.floor(images.shape[2] * images.shape[3] * cutoff.float() / 100.0)
    low = (hist.cumsum(dim=2) <= cut).sum(dim=2).float()
    high = 255.0 - (hist.flip(2).cumsum(dim=2) <= cut).sum(dim=2).float()
    scale = 255.0 / torch.where(high > low, high - low, torch.ones_like(high))
    stretched = torch.floor((_levels(images) - low[..., None]) * scale[..., None])
    lut = torch.where((high > low)[..., None], stretched, _levels(images))
    return _apply_lut(images, lut, index)


def equalize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PIL ImageOps.equalize per channel, in integers. Draws nothing.

    With h the histogram and ``step`` = (pixels − count of the highest value present) // 255,
    level i maps to (step // 2 + pixels below i) // step; step 0 (a nearly flat channel) keeps
    the channel as it is.
    """
    index = images.flatten(2).long()
    hist = _channel_histograms(index)
    highest = 255 - (hist.flip(2) > 0).to(torch.uint8).argmax(dim=2, keepdim=True)
    step = (hist.sum(dim=2, keepdim=True) - hist.gather(2, highest)) // 255
    below = hist.cumsum(dim=2) - hist
    mapped = (below + step // 2) // step.clamp_min(1)
    lut = torch.where(step > 0, mapped.clamp_max(255), torch.arange(256, device=images.device))
    return lut.to(torch.uint8).gather(2, index).view(images.shape)


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
    images_uint8: Tensor,
    num_ops: int = 3,
    generator: torch.Generator | None = None,
    *,
    grouped: bool | None = None,
) -> Tensor:
    """Apply ``num_ops`` distinct operations, in random order, chosen independently per sample.

    images_uint8: (B, 3, H, W) uint8 → (B, 3, H, W) uint8. ``grouped`` (default: on the CPU)
    runs each operation only on the samples that chose it at each position, three operations'
    work per sample instead of ten; indexing by the choice reads it on the host, which would
    stall an accelerator's queue, so there every operation runs on the whole batch at each
    position and ``torch.where`` keeps each sample's chosen result. Both draw the choice the
    same way; the operations' own parameters are drawn for the samples they run on.
    """
    _check_uint8_images(images_uint8)
    if not 0 <= num_ops <= len(OPERATIONS):
        raise ValueError(f"num_ops must be in 0..{len(OPERATIONS)}, got {num_ops}")
    batch = images_uint8.shape[0]
    keys = torch.rand(batch, len(OPERATIONS), generator=generator, device=images_uint8.device)
    chosen = keys.argsort(dim=1)[:, :num_ops]
    if grouped is None:
        grouped = images_uint8.device.type == "cpu"
    if grouped:
        return _apply_grouped(images_uint8, chosen, generator)
    return _apply_masked(images_uint8, chosen, generator)


def _apply_grouped(images: Tensor, chosen: Tensor, generator: torch.Generator | None) -> Tensor:
    """Position by position, each operation on the samples that chose it. chosen: (B, num_ops)."""
    result = images.clone()
    for column in chosen.T.tolist():
        for index, operation in enumerate(OPERATIONS.values()):
            members = [sample for sample, choice in enumerate(column) if choice == index]
            if not members:
                continue
            if members[-1] - members[0] == len(members) - 1:  # a run: work on a view, no copies
                rows = result[members[0] : members[-1] + 1]
                rows.copy_(operation(rows, generator))
            else:  # index_select and row copies: advanced indexing is several times slower
                rows = result.index_select(0, torch.tensor(members, device=images.device))
                for sample, row in zip(members, operation(rows, generator), strict=True):
                    result[sample].copy_(row)
    return result


def _apply_masked(images: Tensor, chosen: Tensor, generator: torch.Generator | None) -> Tensor:
    """Every operation on the whole batch at each position, kept where chosen: no host reads."""
    batch = images.shape[0]
    result = images
    for position in range(chosen.shape[1]):
        current = result
        for index, operation in enumerate(OPERATIONS.values()):
            selected = (chosen[:, position] == index).view(batch, 1, 1, 1)
            result = torch.where(selected, operation(current, generator), result)
    return result
