"""Matplotlib figures of the pipelines: synthetic anomalies, ROC / PRO curves, score histograms,
best and worst scored test images, and the reverse-process strip (the paper's Figure 3).

Heat maps share one colour scale across images (reporting.overlays), so a good image never looks
defective just because its own maximum was stretched to red."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402
from torch import Tensor  # noqa: E402

from transfusion_ad.core.sampler import StepRecord  # noqa: E402
from transfusion_ad.reporting.overlays import HeatmapStyle, overlay  # noqa: E402

_PANEL = 1.6  # inches per image panel


def to_display(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] or uint8 -> (B, H, W, 3) float in [0, 1] for imshow."""
    array = images.detach().float().cpu().numpy()
    array = array / 2 + 0.5 if images.dtype.is_floating_point else array / 255.0
    return np.clip(array.transpose(0, 2, 3, 1), 0.0, 1.0)


def to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] or uint8 -> (B, H, W, 3) uint8, as overlays take them."""
    return np.rint(to_display(images) * 255.0).astype(np.uint8)


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(cols * _PANEL, rows * _PANEL), layout="constrained")
    axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return figure, axes


def _row_labels(axes: np.ndarray, labels: Sequence[str]) -> None:
    for row, label in enumerate(labels):
        axes[row, 0].set_axis_on()
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        for spine in axes[row, 0].spines.values():
            spine.set_visible(False)
        axes[row, 0].set_ylabel(label)


def _colorbar(figure: Figure, axes: np.ndarray, style: HeatmapStyle, shrink: float = 0.5) -> None:
    """One colour bar for every heat map of the figure: the shared, fixed scale."""
    mappable = ScalarMappable(Normalize(style.low, style.high), cmap=style.colormap)
    figure.colorbar(mappable, ax=list(axes.flat), shrink=shrink, label="anomaly map (fixed scale)")


def synthetic_preview_figure(
    x0: Tensor, x_t: Tensor, mask: Tensor, simulated_mask: Tensor, beta: Tensor
) -> Figure:
    """Rows: clean image, image with the synthetic anomaly at β_t, true mask M, input mask M_a."""
    clean, blended = to_display(x0), to_display(x_t)
    figure, axes = _grid(4, len(clean))
    for i in range(len(clean)):
        axes[0, i].imshow(clean[i])
        axes[1, i].imshow(blended[i])
        axes[1, i].set_title(f"β={float(beta.flatten()[i]):.2f}", fontsize=8)
        axes[2, i].imshow(mask[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[3, i].imshow(simulated_mask[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    _row_labels(axes, ["x0", "x_t", "M", "M_a"])
    figure.suptitle("Synthetic anomalies (training inputs)")
    return figure


def roc_figure(
    scores: np.ndarray,
    labels: np.ndarray,
    image_auroc: float,
    pixel_curve: tuple[np.ndarray, np.ndarray] | None = None,
    pixel_auroc: float | None = None,
) -> Figure:
    """Image-level ROC curve of the test scores (N,), and the pixel-level one when given."""
    fpr, tpr, _ = roc_curve(labels, scores)
    figure = Figure(figsize=(3.8, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(fpr, tpr, label=f"image, AUROC {image_auroc:.3f}")
    if pixel_curve is not None:
        label = "pixel" if pixel_auroc is None else f"pixel, AUROC {pixel_auroc:.3f}"
        ax.plot(*pixel_curve, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC (test set)")
    ax.legend(loc="lower right", fontsize=8)
    return figure


def pro_figure(fpr: np.ndarray, pro: np.ndarray, aupro: float, fpr_limit: float) -> Figure:
    """Per-region overlap against the pixel FPR, up to the AUPRO integration limit."""
    figure = Figure(figsize=(3.8, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(fpr, pro, label=f"AUPRO@{fpr_limit:g} {aupro:.3f}")
    ax.set_xlim(0, fpr_limit)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pixel false positive rate")
    ax.set_ylabel("per-region overlap (PRO)")
    ax.set_title("PRO curve (test set)")
    ax.legend(loc="lower right", fontsize=8)
    return figure


def score_histogram_figure(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | None,
    optimistic_threshold: float | None = None,
) -> Figure:
    """Image scores of normal and anomalous test images, with the calibrated threshold (and the
    test-set F1-optimal one, marked as optimistic)."""
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    marks = [v for v in (threshold, optimistic_threshold) if v is not None]
    low, high = min([float(scores.min()), *marks]), max([float(scores.max()), *marks])
    bins = np.linspace(low, high + 1e-12, 30)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", color="tab:green")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous", color="tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label="calibrated threshold")
    if optimistic_threshold is not None:
        label = "F1-optimal on test (optimistic)"
        ax.axvline(optimistic_threshold, color="grey", linestyle=":", label=label)
    ax.set_xlabel("image score (max of the fused map)")
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)
    return figure


@dataclass
class ExampleGroup:
    """Test images shown together: images (K, 3, S, S), maps (K, S, S), masks (K, S, S) bool,
    scores (K,), names (K)."""

    title: str
    images: Tensor
    maps: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    names: Sequence[str]


def examples_figure(
    groups: Sequence[ExampleGroup],
    style: HeatmapStyle,
    pixel_threshold: float | None,
    image_threshold: float | None,
) -> Figure:
    """Groups side by side; rows: image (name, score, flagged or not), overlay, ground truth."""
    columns = sum(len(group.names) for group in groups)
    figure, axes = _grid(3, max(columns, 1))
    column = 0
    for group in groups:
        shown = to_uint8(group.images)
        for i, name in enumerate(group.names):
            score = float(group.scores[i])
            flagged = image_threshold is not None and score >= image_threshold
            heading = group.title if i == 0 else ""
            title = f"{heading}\n{name}\nscore {score:.3f}{', flagged' if flagged else ''}"
            axes[0, column].imshow(shown[i])
            axes[0, column].set_title(title, fontsize=7)
            axes[1, column].imshow(overlay(shown[i], group.maps[i], style, pixel_threshold))
            axes[2, column].imshow(group.masks[i], cmap="gray", vmin=0, vmax=1)
            column += 1
    _row_labels(axes, ["image", "anomaly map", "ground truth"])
    _colorbar(figure, axes, style)
    return figure


def reverse_process_figure(
    images: Tensor,
    steps: Sequence[StepRecord],
    reconstruction: Tensor,
    maps: np.ndarray,
    masks: np.ndarray,
    names: Sequence[str],
    style: HeatmapStyle,
    pixel_threshold: float | None,
) -> Figure:
    """The paper's Figure 3 for B images: per image, rows x_t, M_t, |ε_t| (scaled by one gain
    for the figure) and n_t at the given steps, then a last column with the reconstruction, the
    final anomaly map and the ground truth.

    images (B, 3, S, S) the test images; steps: records of the chosen steps (each (B, ...));
    reconstruction (B, 3, S, S) in [-1, 1]; maps (B, S, S) fused anomaly maps; masks (B, S, S)
    ground truth.
    """
    count = reconstruction.shape[0]
    figure, axes = _grid(4 * count, len(steps) + 1)
    inputs, finals = to_uint8(images), to_uint8(reconstruction)
    # ε_t = β_t M ⊙ A is faint: one gain for the whole figure (never per panel) makes it visible.
    peak = max(float(record.anomaly.abs().max()) for record in steps)
    gain = 1.0 / peak if peak > 0 else 1.0
    for b in range(count):
        top = 4 * b
        for c, record in enumerate(steps):
            axes[top, c].imshow(to_display(record.x_t[b : b + 1])[0])
            axes[top, c].set_title(f"t = {record.t}", fontsize=8)
            axes[top + 1, c].imshow(record.mask[b, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            anomaly = (record.anomaly[b].float().abs() * gain).clamp(0, 1)
            anomaly = anomaly.permute(1, 2, 0).numpy()
            axes[top + 2, c].imshow(anomaly)
            axes[top + 3, c].imshow(to_display(record.normal[b : b + 1])[0])
        last = len(steps)
        axes[top, last].imshow(finals[b])
        axes[top, last].set_title("reconstruction", fontsize=8)
        axes[top + 1, last].imshow(overlay(inputs[b], maps[b], style, pixel_threshold))
        axes[top + 1, last].set_title("anomaly map", fontsize=8)
        axes[top + 2, last].imshow(masks[b], cmap="gray", vmin=0, vmax=1)
        axes[top + 2, last].set_title("ground truth", fontsize=8)
        axes[top, 0].set_title(f"{names[b]}\nt = {steps[0].t}", fontsize=8)
    _row_labels(axes, ["x_t", "M_t", f"|ε_t| × {gain:.3g}", "n_t"] * count)
    _colorbar(figure, axes, style, shrink=0.5 / count)
    figure.suptitle("Reverse process: the anomaly made transparent step by step")
    return figure
