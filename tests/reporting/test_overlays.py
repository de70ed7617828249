"""Heat-map overlays and masks: one fixed colour scale, the calibrated rule, native sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transfusion_ad.reporting.overlays import (
    HeatmapStyle,
    binary_mask,
    colorize,
    overlay,
    render_mask,
    render_overlay,
)

STYLE = HeatmapStyle(low=0.0, high=1.0, colormap="jet", alpha=0.5, threshold_contour=False)


def test_colour_depends_on_the_value_only_never_on_the_other_pixels():
    quiet = np.full((4, 4), 0.1, np.float32)
    loud = quiet.copy()
    loud[0, 0] = 0.9
    assert np.array_equal(colorize(quiet, STYLE)[1:, 1:], colorize(loud, STYLE)[1:, 1:])
    # Per-image min-max would paint the maximum of the quiet map with the top colour; here a map
    # whose values all lie low never reaches it.
    top = colorize(np.ones((1, 1)), STYLE)[0, 0]
    low_map = np.linspace(0.0, 0.2, 16, dtype=np.float32).reshape(4, 4)
    assert not (colorize(low_map, STYLE) == top).all(axis=-1).any()
    # Values outside the range are clipped to its ends.
    assert np.array_equal(colorize(np.array([[5.0]]), STYLE), colorize(np.array([[1.0]]), STYLE))
    assert np.array_equal(colorize(np.array([[-3.0]]), STYLE), colorize(np.array([[0.0]]), STYLE))


def test_binary_mask_flags_values_at_or_above_the_threshold():
    score_map = np.array([[0.2, 0.5], [0.50001, 0.49999]], np.float32)
    assert binary_mask(score_map, 0.5).tolist() == [[0, 255], [255, 0]]
    assert binary_mask(score_map, 0.5).dtype == np.uint8


def test_overlay_blends_at_the_image_size_and_outlines_the_threshold():
    image = np.full((40, 60, 3), 100, np.uint8)
    score_map = np.zeros((8, 8), np.float32)
    score_map[2:6, 2:6] = 0.9
    assert np.array_equal(
        overlay(image, score_map, HeatmapStyle(alpha=0.0, threshold_contour=False)), image
    )
    blended = overlay(image, score_map, STYLE)
    assert blended.shape == (40, 60, 3) and blended.dtype == np.uint8
    heat = colorize(np.zeros((1, 1)), STYLE)[0, 0].astype(float)
    assert np.allclose(blended[0, 0], 0.5 * 100 + 0.5 * heat, atol=1)
    outlined = overlay(image, score_map, HeatmapStyle(alpha=0.5), threshold=0.5)
    white = (outlined == 255).all(axis=-1)
    assert white.any() and not white[0, 0] and not white[20, 30], "an outline, not a fill"
    assert not (overlay(image, score_map, STYLE, threshold=0.5) == 255).all(axis=-1).any()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": [1.0, 0.5]}, r"heatmap.range must be \[low, high\] with low < high"),
        ({"range": [0.0, 0.5, 1.0]}, r"heatmap.range must be \[low, high\], got \[0.0, 0.5, 1.0\]"),
        ({"alpha": 1.5}, r"heatmap.alpha must lie in \[0, 1\], got 1.5"),
        ({"colormap": "rainbowz"}, r"heatmap.colormap 'rainbowz' is not a Matplotlib colour map"),
    ],
)
def test_bad_heatmap_parameters_are_refused_by_name(params, message):
    heatmap = {"range": [0.0, 1.0], "colormap": "jet", "alpha": 0.5, "threshold_contour": True}
    with pytest.raises(ValueError, match=message):
        HeatmapStyle.from_params({**heatmap, **params})


def test_renders_of_a_file_keep_its_own_size(tmp_path):
    path = tmp_path / "wide.bmp"
    Image.fromarray(np.full((30, 70), 200, np.uint8), mode="L").save(path)
    score_map = np.zeros((16, 16), np.float32)
    score_map[:, 8:] = 0.8
    assert render_overlay(path, score_map, STYLE, 0.5).shape == (30, 70, 3)
    mask = render_mask(path, score_map, 0.5)
    assert mask.shape == (30, 70)
    assert (mask[:, :30] == 0).all() and (mask[:, 40:] == 255).all()
