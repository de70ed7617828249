"""Image and mask decoding: every mode on disk comes out as 3-channel uint8 / bool."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transfusion_ad.data import UnreadableImageError, load_image, load_mask


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_grayscale_loads_as_three_identical_channels(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    image = load_image(_save(tmp_path / "g.png", gray))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], gray) and np.array_equal(image[..., 2], gray)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    image = load_image(_save(tmp_path / "a.png", rgba))
    assert image.shape == (4, 5, 3)
    assert (image[..., 0] == 200).all() and (image[..., 1] == 0).all()


def test_sixteen_bit_is_scaled_to_eight_bit(tmp_path):
    deep = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    image = load_image(path)
    assert image.dtype == np.uint8
    assert image[0, :, 0].tolist() == [0, 128, 255]


def test_resize_ignores_aspect_ratio(tmp_path):
    image = load_image(_save(tmp_path / "w.png", np.zeros((20, 40, 3), np.uint8)), size=32)
    assert image.shape == (32, 32, 3)


def test_region_index_masks_binarise_with_greater_than_zero(tmp_path):
    mask = np.array([[0, 1, 8], [0, 0, 3]], dtype=np.uint8)
    assert load_mask(_save(tmp_path / "m.png", mask)).tolist() == [
        [False, True, True],
        [False, False, True],
    ]


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_unreadable_files_name_the_file(tmp_path, sample_root, kind):
    path = tmp_path / ("bad.png" if kind != "truncated" else "bad.JPG")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image")
    else:
        real = next((sample_root / "fryum" / "train" / "good").glob("*.JPG")).read_bytes()
        path.write_bytes(real[: len(real) // 2])
    with pytest.raises(UnreadableImageError, match="bad"):
        load_image(path)
