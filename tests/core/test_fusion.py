import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from transfusion_ad.core.fusion import box_filter, fuse_masks, image_scores, reconstruction_error


def test_box_filter_attenuates_the_border_of_a_constant_map_and_keeps_the_interior():
    maps = torch.full((1, 1, 20, 20), 2.0)
    out = box_filter(maps, 7)
    torch.testing.assert_close(out[..., 3:17, 3:17], maps[..., 3:17, 3:17])
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(2.0 * 16 / 49))  # 4x4 of 7x7 inside
    torch.testing.assert_close(out[0, 0, 0, 10], torch.tensor(2.0 * 28 / 49))  # 4x7 of 7x7
    assert (out <= 2.0 + 1e-6).all()


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_box_filter_matches_a_zero_filled_same_convolution(kernel_size):
    rng = np.random.default_rng(0)
    maps = rng.random((2, 1, 15, 18)).astype(np.float32)
    out = box_filter(torch.from_numpy(maps), kernel_size)
    kernel = np.full((kernel_size, kernel_size), 1 / kernel_size**2)
    for i in range(2):
        expected = convolve2d(maps[i, 0], kernel, mode="same", boundary="fill", fillvalue=0)
        np.testing.assert_allclose(out[i, 0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("kernel_size", [0, 4, -3, 2.0])
def test_box_filter_rejects_bad_kernels(kernel_size):
    with pytest.raises(ValueError, match="kernel_size"):
        box_filter(torch.zeros(1, 1, 8, 8), kernel_size)


def test_reconstruction_error_is_the_channel_mean_in_unit_range():
    images = torch.full((1, 3, 4, 4), -1.0)
    recon = images.clone()
    assert not reconstruction_error(images, recon).any()
    recon[:, 0] = 1.0  # black vs white in one of three channels
    torch.testing.assert_close(reconstruction_error(images, recon), torch.full((1, 1, 4, 4), 1 / 3))
    # values outside [-1, 1] are clipped before comparing
    assert not reconstruction_error(torch.full((1, 3, 2, 2), 3.0), torch.ones(1, 3, 2, 2)).any()


def test_fusion_weight_extremes_and_mixture():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(2, 1, 12, 12, generator=g)
    error = torch.rand(2, 1, 12, 12, generator=g)
    torch.testing.assert_close(
        fuse_masks(mask, error, weight=1.0, kernel_size=5), box_filter(mask, 5)
    )
    torch.testing.assert_close(
        fuse_masks(mask, error, weight=0.0, kernel_size=5), box_filter(error, 5)
    )
    torch.testing.assert_close(
        fuse_masks(mask, error),
        0.95 * box_filter(mask, 7) + 0.05 * box_filter(error, 7),
    )


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_fusion_rejects_weights_outside_unit_interval(weight):
    with pytest.raises(ValueError, match="weight"):
        fuse_masks(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), weight=weight)


def test_image_score_is_the_maximum_of_each_map():
    fused = torch.zeros(3, 1, 6, 6)
    fused[0, 0, 2, 3] = 0.7
    fused[1, 0, 5, 5] = 0.2
    fused[1, 0, 0, 0] = 0.1
    fused[2] = -0.5
    torch.testing.assert_close(image_scores(fused), torch.tensor([0.7, 0.2, -0.5]))
