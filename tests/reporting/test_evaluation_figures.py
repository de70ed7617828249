"""Evaluation figures: which test images are shown, curves, and the reverse-process strip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.unet import TransFusionUNet
from transfusion_ad.reporting import evaluation_figures
from transfusion_ad.reporting.evaluation_figures import best_and_worst, spread
from transfusion_ad.reporting.overlays import HeatmapStyle

SIZE = 32


@pytest.mark.parametrize(("count", "best", "worst"), [(1, 1, 0), (3, 2, 1), (8, 4, 4), (100, 4, 4)])
def test_best_and_worst_never_show_an_image_twice(count, best, worst):
    ranked = np.arange(count)[::-1]
    first, last = best_and_worst(ranked, 4)
    assert (len(first), len(last)) == (best, worst)
    assert not set(first) & set(last)
    assert list(first) == list(ranked[:best]) and list(last) == list(ranked[::-1][:worst])


def test_spread_keeps_the_first_and_last_step():
    assert spread(18, 6) == [0, 3, 7, 10, 14, 17]
    assert spread(4, 6) == [0, 1, 2, 3]
    assert spread(1, 6) == [0]


def _evaluated(seed: int = 0) -> tuple[dict, dict]:
    """Eight test images: four anomalous (image 1 without a visible defect), four normal."""
    rng = np.random.default_rng(seed)
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    masks = torch.zeros(8, SIZE, SIZE, dtype=torch.bool)
    for i in (0, 2, 3):
        masks[i, 8:16, 8:16] = True
    maps = torch.from_numpy(rng.random((8, SIZE, SIZE)).astype(np.float32) * 0.3)
    maps[masks] += 0.5
    maps[1, 0, 0] = 0.99  # anomalous, highest scored, defect too small to survive the resize
    scores = maps.flatten(1).max(dim=1).values
    paths = [f"/data/test/{'bad' if y else 'good'}/{i:03d}.png" for i, y in enumerate(labels)]
    anomaly_maps = {"maps": maps, "scores": scores, "labels": labels, "paths": paths}
    images = torch.from_numpy(rng.integers(0, 255, (8, 3, SIZE, SIZE), dtype=np.uint8))
    return anomaly_maps, {"images": images, "masks": masks}


def test_evaluation_figures_show_the_curves_and_the_extremes_of_each_label():
    anomaly_maps, test_set = _evaluated()
    metrics = {
        "image_auroc": 0.9,
        "pixel_auroc": 0.8,
        "aupro": 0.7,
        "thresholds": {"image": 0.9, "pixel": 0.6},
    }
    pairs = (anomaly_maps["maps"].numpy(), test_set["masks"].numpy())
    figures = evaluation_figures.evaluation_set_figures(
        anomaly_maps, test_set, metrics, pairs, 0.3, HeatmapStyle(), examples_per_group=2
    )
    assert set(figures) == {
        "roc_curve",
        "pro_curve",
        "score_histogram",
        "best_worst_anomalous",
        "best_worst_normal",
    }
    titles = [ax.get_title() for ax in figures["best_worst_anomalous"].axes if ax.get_title()]
    scores = anomaly_maps["scores"].numpy()
    ranked = [f"bad/{i:03d}.png" for i in np.argsort(-scores[:4])]
    assert [t.split("\n")[1] for t in titles] == [*ranked[:2], *ranked[::-1][:2]]
    assert "highest scored" in titles[0] and "lowest scored" in titles[2]
    assert titles[0].endswith("flagged"), "bad/001 scores 0.99 >= the image threshold 0.9"
    normal_titles = [ax.get_title() for ax in figures["best_worst_normal"].axes if ax.get_title()]
    assert all("good/" in title for title in normal_titles)
    assert "lowest scored" in normal_titles[0]


def test_reverse_process_strip_prefers_anomalous_images_with_a_visible_defect():
    anomaly_maps, test_set = _evaluated()
    torch.manual_seed(0)
    network = TransFusionUNet(
        base_width=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,)
    ).eval()
    detector = TransFusionDetector(
        network, TransparencySchedule(8), 32, Scoring("paper", fusion_weight=0.95, box_size=3)
    )
    figure = evaluation_figures.reverse_process_strip(
        detector,
        test_set,
        anomaly_maps,
        HeatmapStyle(),
        0.6,
        {"strip_images": 2, "strip_steps": 4},
    )
    image_axes = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert len(image_axes) == (4 * 2) * (4 + 1), "4 rows per image, 4 steps + the result column"
    scores = anomaly_maps["scores"].numpy()
    expected = sorted((0, 2, 3), key=lambda i: -scores[i])[:2]  # never bad/001 (no visible defect)
    firsts = [ax.get_title() for ax in image_axes[:: 5 * 4]][:2]
    for title, index in zip(firsts, expected, strict=True):
        assert title.startswith(f"bad/{index:03d}.png")
        assert title.endswith("t = 6"), "the strip starts at t = T-2, the input image"
    step_titles = [ax.get_title() for ax in image_axes[1:4]]
    assert step_titles == ["t = 4", "t = 3", "t = 1"]
