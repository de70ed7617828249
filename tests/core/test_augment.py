"""The ten appearance operations (spec §2.4): range, dtype, effect, per-sample draws, PIL parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as tvf
from PIL import Image, ImageEnhance, ImageOps

from transfusion_ad.core import augment
from transfusion_ad.core.augment import OPERATIONS, apply_random_operations, rotate

# Operations that are the identity for some of their spec draws, with the arguments that make
# them act in the "changes the image" test: solarize skips a sample with p = 0.5, posterize keeps
# 8 bits in one draw of eight.
ACTING_KWARGS = {"solarize": {"probability": 1.0}, "posterize": {"bits": (1, 7)}}
# Operations whose result does not depend on a random draw.
DETERMINISTIC = {"invert", "equalize"}


def typical_images(batch: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth colour gradients plus noise, values well inside 0..255: (B, 3, size, size) uint8."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    base = torch.stack([ramp[None, :].expand(size, size), ramp[:, None].expand(size, size)])
    base = torch.cat([base, base.mean(0, keepdim=True)]) * 140 + 50
    noise = torch.randn(batch, 3, size, size, generator=g) * 12
    return (base + noise).round().clamp(0, 255).to(torch.uint8)


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def test_there_are_the_ten_operations_of_the_spec():
    assert len(OPERATIONS) == 10
    assert set(OPERATIONS) == {
        "gamma_contrast",
        "multiply_and_add_to_brightness",
        "enhance_sharpness",
        "add_to_hue_and_saturation",
        "solarize",
        "posterize",
        "invert",
        "autocontrast",
        "equalize",
        "affine_rotate",
    }


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_keeps_uint8_shape_and_changes_every_image(name):
    images = typical_images()
    g = torch.Generator().manual_seed(1)
    out = OPERATIONS[name](images, g, **ACTING_KWARGS.get(name, {}))
    assert out.dtype == torch.uint8
    assert out.shape == images.shape
    changed = (out != images).flatten(1).any(dim=1)
    assert changed.all(), f"{name} left some images unchanged: {changed.tolist()}"


@pytest.mark.parametrize("name", sorted(set(OPERATIONS) - DETERMINISTIC))
def test_operation_draws_its_parameters_per_sample(name):
    same = typical_images(batch=1).expand(6, -1, -1, -1).contiguous()
    out = OPERATIONS[name](same, torch.Generator().manual_seed(2), **ACTING_KWARGS.get(name, {}))
    distinct = {tuple(sample.flatten().tolist()) for sample in out}
    assert len(distinct) > 1


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_is_reproducible_under_a_seed(name):
    images = typical_images()
    first = OPERATIONS[name](images, torch.Generator().manual_seed(7))
    second = OPERATIONS[name](images, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)


def test_apply_random_operations_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        apply_random_operations(typical_images().float())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        apply_random_operations(typical_images()[:, :1])
    with pytest.raises(ValueError, match="num_ops"):
        apply_random_operations(typical_images(), num_ops=11)


def test_invert_is_255_minus_x():
    images = typical_images()
    assert torch.equal(augment.invert(images), 255 - images)


def test_solarize_inverts_only_bright_pixels():
    images = typical_images()
    out = augment.solarize(images, torch.Generator().manual_seed(0), probability=1.0)
    changed = out != images
    assert (images[changed] >= 32).all()
    assert torch.equal(out[changed], 255 - images[changed])
    assert torch.equal(augment.solarize(images, None, probability=0.0), images)


def test_gamma_contrast_draws_per_channel_and_keeps_black_and_white():
    flat = torch.full((1, 3, 4, 4), 128, dtype=torch.uint8)
    flat[..., 0, 0] = 0
    flat[..., 0, 1] = 255
    out = augment.gamma_contrast(flat, torch.Generator().manual_seed(3))
    assert (out[..., 0, 0] == 0).all() and (out[..., 0, 1] == 255).all()
    assert len(set(out[0, :, 2, 2].tolist())) == 3  # one γ per channel


def test_brightness_shifts_every_channel_by_the_luma_change():
    images = typical_images()
    one, zero = torch.ones(4, 1, 1, 1), torch.zeros(4, 1, 1, 1)
    assert torch.equal(augment._brightness(images, one, zero), images)
    mid = torch.full((4, 3, 8, 8), 100, dtype=torch.uint8)
    shifted = augment._brightness(mid, one, torch.full((4, 1, 1, 1), 20.0))
    assert (shifted == 120).all()


def test_hue_saturation_round_trip_and_full_circle_are_identities():
    images = typical_images()
    zero = torch.zeros(4, 1, 1)
    assert (augment._shift_hue_saturation(images, zero, zero).int() - images.int()).abs().max() <= 1
    full = torch.full((4, 1, 1), 255.0)
    assert (augment._shift_hue_saturation(images, full, zero).int() - images.int()).abs().max() <= 1


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.7])
def test_sharpness_matches_pil(factor):
    images = typical_images(batch=2)
    ours = augment._sharpen(images, torch.full((2, 1, 1, 1), factor))
    for image, mine in zip(images, ours, strict=True):
        reference = from_pil(ImageEnhance.Sharpness(to_pil(image)).enhance(factor))
        assert (mine.int() - reference.int()).abs().max() <= 1


@pytest.mark.parametrize("cutoff", [0, 5, 20])
def test_autocontrast_matches_pil(cutoff):
    images = typical_images(batch=2)
    ours = augment._autocontrast(images, torch.full((2, 1, 1), cutoff))
    for image, mine in zip(images, ours, strict=True):
        reference = from_pil(ImageOps.autocontrast(to_pil(image), cutoff=cutoff))
        assert (mine.int() - reference.int()).abs().max() <= 1


@pytest.mark.parametrize("bits", [1, 3, 6, 8])
def test_posterize_matches_pil(bits):
    images = typical_images(batch=2)
    out = augment.posterize(images, None, bits=(bits, bits))
    for image, mine in zip(images, out, strict=True):
        assert torch.equal(mine, from_pil(ImageOps.posterize(to_pil(image), bits)))


def test_equalize_matches_pil():
    images = typical_images(batch=2)
    for image, mine in zip(images, augment.equalize(images), strict=True):
        assert torch.equal(mine, from_pil(ImageOps.equalize(to_pil(image))))


def test_rotate_matches_torchvision_per_sample():
    images = torch.randint(0, 256, (3, 3, 24, 40), dtype=torch.uint8)
    angles = torch.tensor([90.0, -33.0, 12.5])
    out = rotate(images, angles, mode="nearest")
    for image, angle, mine in zip(images, angles, out, strict=True):
        reference = tvf.rotate(image, float(angle), interpolation=tvf.InterpolationMode.NEAREST)
        assert (mine != reference).float().mean() < 0.002
    assert torch.equal(rotate(images, torch.zeros(3), mode="nearest"), images)


def test_random_operations_reproducible_and_changing():
    images = typical_images(batch=6)
    first = apply_random_operations(images, 3, torch.Generator().manual_seed(5))
    second = apply_random_operations(images, 3, torch.Generator().manual_seed(5))
    other = apply_random_operations(images, 3, torch.Generator().manual_seed(6))
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert (first != images).flatten(1).any(dim=1).all()
    assert torch.equal(apply_random_operations(images, 0), images)


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "masked"])
def test_each_sample_gets_num_ops_distinct_operations_uniformly(monkeypatch, grouped):
    """Fake operation i adds 1 to column i, so the columns record which operations ran, both
    when each operation runs on the samples that chose it (the CPU default) and when every
    operation runs on the whole batch (accelerators)."""

    def marker(column):
        def op(images, generator=None):
            out = images.clone()
            out[..., column] += 1
            return out

        return op

    monkeypatch.setattr(augment, "OPERATIONS", {str(i): marker(i) for i in range(10)})
    images = torch.zeros(3000, 3, 1, 10, dtype=torch.uint8)
    out = apply_random_operations(images, 3, torch.Generator().manual_seed(0), grouped=grouped)
    counts = out[:, 0, 0, :]
    assert counts.max() == 1  # never twice the same operation
    assert (counts.sum(dim=1) == 3).all()
    rates = counts.float().mean(dim=0)
    assert torch.allclose(rates, torch.full((10,), 0.3), atol=0.04)


def test_grouped_and_masked_application_choose_the_same_operations_in_the_same_order(
    monkeypatch,
):
    """Order-sensitive fake operations (x → 2x + i): equal results need the same choice and
    order per sample, whichever samples share an operation at a position."""

    def affine(index):
        def op(images, generator=None):
            return images * 2 + index

        return op

    monkeypatch.setattr(augment, "OPERATIONS", {str(i): affine(i) for i in range(10)})
    images = torch.zeros(64, 3, 2, 2, dtype=torch.uint8)
    grouped = apply_random_operations(images, 3, torch.Generator().manual_seed(4), grouped=True)
    masked = apply_random_operations(images, 3, torch.Generator().manual_seed(4), grouped=False)
    assert torch.equal(grouped, masked)
    assert len(grouped[:, 0, 0, 0].unique()) > 10  # many different chains in the batch
