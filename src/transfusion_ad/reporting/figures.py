"""Matplotlib figures of the pipelines. Heat maps share one colour scale across images, so a
good image never looks defective just because its own maximum was stretched to red."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402
from torch import Tensor  # noqa: E402

_PANEL = 1.6  # inches per image panel


def to_display(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] or uint8 -> (B, H, W, 3) float in [0, 1] for imshow."""
    array = images.detach().float().cpu().numpy()
    array = array / 2 + 0.5 if images.dtype.is_floating_point else array / 255.0
    return np.clip(array.transpose(0, 2, 3, 1), 0.0, 1.0)


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(cols * _PANEL, rows * _PANEL), layout="constrained")
    axes = np.asarray(figure.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return figure, axes


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
    for row, label in enumerate(["x0", "x_t", "M", "M_a"]):
        axes[row, 0].set_axis_on()
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        axes[row, 0].set_ylabel(label)
    figure.suptitle("Synthetic anomalies (training inputs)")
    return figure


def overlay_grid_figure(
    images: Tensor,
    maps: np.ndarray,
    masks: np.ndarray,
    scores: np.ndarray,
    titles: Sequence[str],
    vmax: float,
) -> Figure:
    """Rows: image, heat-map overlay on a fixed [0, vmax] scale, ground truth."""
    shown = to_display(images)
    figure, axes = _grid(3, len(shown))
    for i in range(len(shown)):
        axes[0, i].imshow(shown[i])
        axes[0, i].set_title(f"{titles[i]}\nscore {scores[i]:.3f}", fontsize=7)
        axes[1, i].imshow(shown[i])
        axes[1, i].imshow(maps[i], cmap="jet", alpha=0.5, vmin=0.0, vmax=vmax)
        axes[2, i].imshow(masks[i], cmap="gray", vmin=0, vmax=1)
    return figure


def score_histogram_figure(
    scores: np.ndarray, labels: np.ndarray, threshold: float | None
) -> Figure:
    """Image scores of normal and anomalous test images, with the calibrated threshold."""
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    ax = figure.subplots()
    bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-12, 30)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", color="tab:green")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous", color="tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label="calibrated threshold")
    ax.set_xlabel("image score (max of the fused map)")
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)
    return figure


def roc_figure(scores: np.ndarray, labels: np.ndarray, auroc: float) -> Figure:
    """Image-level ROC curve."""
    fpr, tpr, _ = roc_curve(labels, scores)
    figure = Figure(figsize=(3.6, 3.4), layout="constrained")
    ax = figure.subplots()
    ax.plot(fpr, tpr, label=f"AUROC {auroc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Image-level ROC")
    ax.legend(loc="lower right", fontsize=8)
    return figure
