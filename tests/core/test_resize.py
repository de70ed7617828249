"""Evaluation-resolution helpers: masks resized without dilation, maps upsampled bilinearly."""

import numpy as np
import pytest

from transfusion_ad.core.resize import (
    evaluation_pairs,
    resize_mask,
    resize_masks,
    upsample_map,
)


def disc(size, radius, centre):
    rows, cols = np.ogrid[:size, :size]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2


@pytest.mark.parametrize("method", ["nearest", "area"])
def test_integer_factors_are_exact(method):
    small = np.random.default_rng(0).random((5, 7)) < 0.4
    big = np.kron(small, np.ones((3, 3), bool))
    np.testing.assert_array_equal(resize_mask(big, (5, 7), method), small)
    if method == "nearest":
        np.testing.assert_array_equal(resize_mask(small, (15, 21), method), big)


def test_area_counts_a_pixel_when_at_least_half_is_defect():
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True  # top-left 2x2 block: exactly half covered
    mask[2, 2] = True  # bottom-right 2x2 block: a quarter covered
    np.testing.assert_array_equal(
        resize_mask(mask, (2, 2), "area"), [[True, False], [False, False]]
    )


@pytest.mark.parametrize("method", ["nearest", "area"])
def test_downscaled_masks_keep_their_area(method):
    # 1500 -> 256 like VisA: no method may dilate the defect by a pixel all round.
    big = disc(1500, 300, (700, 650))
    small = resize_mask(big, (256, 256), method)
    scaled_area = big.sum() * (256 / 1500) ** 2
    assert abs(small.sum() - scaled_area) / scaled_area < 0.01
    ring = disc(256, 300 * 256 / 1500 + 1.5, (700 * 256 / 1500, 650 * 256 / 1500))
    assert not (small & ~ring).any()


def test_bilinear_is_the_authors_mask_resize():
    # The authors' Dataset.get_image(mask=True): torchvision Resize on the PIL mask, then > 0.5.
    from PIL import Image
    from torchvision.transforms import Resize

    big = disc(150, 30, (70, 65)) | disc(150, 4, (20, 120))
    authors = np.asarray(Resize((32, 32))(Image.fromarray(big.astype(np.uint8) * 255))) > 0.5
    ours = resize_mask(big, (32, 32), "bilinear")
    np.testing.assert_array_equal(ours, authors)
    # It dilates: a superset of the area resize, with pixels the area resize leaves out.
    area = resize_mask(big, (32, 32), "area")
    assert (ours | area).sum() == ours.sum() and ours.sum() > area.sum()


def test_resize_masks_stacks_images_of_different_sizes():
    masks = [disc(40, 10, (20, 20)), disc(60, 15, (30, 30))[:, :50]]
    resized = resize_masks(masks, (20, 20))
    assert resized.shape == (2, 20, 20)
    assert resized.dtype == bool
    np.testing.assert_array_equal(resized[0], resize_mask(masks[0], (20, 20)))


def test_upsample_map_is_bilinear_with_half_pixel_centres():
    ramp = np.tile(np.arange(4, dtype=np.float32), (3, 1))  # value = column index
    up = upsample_map(ramp, (6, 8))
    assert up.shape == (6, 8)
    assert up.dtype == np.float32
    # Target column j has centre (j + 0.5) / 2 - 0.5 in source coordinates (clamped at borders).
    expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
    np.testing.assert_allclose(up, np.tile(expected, (6, 1)), atol=1e-6)
    np.testing.assert_array_equal(
        upsample_map(np.full((4, 4), 0.3, np.float32), (9, 9)), np.float32(0.3)
    )


def test_evaluation_pairs_model_and_native():
    maps = np.random.default_rng(1).random((2, 16, 16)).astype(np.float32)
    masks = [disc(64, 12, (30, 30)), disc(48, 6, (20, 20))[:, :40]]
    model_maps, model_masks = evaluation_pairs(maps, masks, "model")
    assert model_maps is maps
    assert model_masks.shape == (2, 16, 16)
    native_maps, native_masks = evaluation_pairs(maps, masks, "native")
    assert [m.shape for m in native_maps] == [(64, 64), (48, 40)]
    assert [m.shape for m in native_masks] == [(64, 64), (48, 40)]
    same_size = [disc(32, 5, (10, 10)), disc(32, 8, (20, 12))]
    stacked_maps, stacked_masks = evaluation_pairs(maps, same_size, "native", "nearest")
    assert stacked_maps.shape == stacked_masks.shape == (2, 32, 32)


def test_bad_input_is_rejected():
    mask = disc(8, 3, (4, 4))
    with pytest.raises(ValueError, match=r"bool \(H, W\).*uint8.*mask > 0"):
        resize_mask(mask.astype(np.uint8), (4, 4))
    with pytest.raises(ValueError, match="method must be one of.*'cubic'"):
        resize_mask(mask, (4, 4), "cubic")
    with pytest.raises(ValueError, match=r"size must be \(height, width\)"):
        resize_mask(mask, (4, 0))
    with pytest.raises(ValueError, match=r"must be \(h, w\)"):
        upsample_map(np.zeros((1, 4, 4)), (8, 8))
    maps = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="resolution must be one of.*'full'"):
        evaluation_pairs(maps, [mask], "full")
    with pytest.raises(ValueError, match=r"one map per mask.*\(1, 8, 8\) and 2 masks"):
        evaluation_pairs(maps, [mask, mask])
    with pytest.raises(ValueError, match="bool"):
        evaluation_pairs(maps, [mask.astype(float)], "native")
