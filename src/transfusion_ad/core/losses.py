"""Training losses of spec §5: appearance MSE, focal + smooth-L1 mask loss, SSIM + L1 normal loss
and the one-step-back image loss, with configurable weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from transfusion_ad.core.schedule import TransparencySchedule

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
SSIM_RANGES = ("unit", "signed")


@dataclass
class LossWeights:
    """Weights of the loss terms (paper: all 1 except the factor 5 on the focal loss)."""

    anomaly: float = 1.0
    mask_focal: float = 5.0
    mask_smooth_l1: float = 1.0
    normal_ssim: float = 1.0
    normal_l1: float = 1.0
    step: float = 1.0


def _gaussian_window(channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Normalised 11×11 Gaussian (σ = 1.5), one copy per channel: (C, 1, 11, 11)."""
    coords = torch.arange(_SSIM_WINDOW, device=device, dtype=torch.float32) - _SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    window = torch.outer(g, g).to(dtype)
    return window.expand(channels, 1, _SSIM_WINDOW, _SSIM_WINDOW).contiguous()


def _authors_dynamic_range(pred: Tensor) -> Tensor:
    """L as the authors' SSIM takes it from the prediction: (255 if max > 128 else 1) − (−1 if
    min < −0.5 else 0), computed on the device without a host sync."""
    high = torch.where(pred.max() > 128, 255.0, 1.0)
    low = torch.where(pred.min() < -0.5, -1.0, 0.0)
    return high - low


def _ssim_maps(
    pred: Tensor, target: Tensor, dynamic_range: float | Tensor | None
) -> tuple[Tensor, Tensor]:
    """The two factors of SSIM per pixel, luminance l and contrast-structure cs: (B, C, H, W) each.

    l = (2 μp μt + c1) / (μp² + μt² + c1), cs = (2 σpt + c2) / (σp² + σt² + c2), SSIM = l · cs.
    Per-channel 11×11 Gaussian window (σ = 1.5), zero padding 5; c1 = (0.01 L)², c2 = (0.03 L)².
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"ssim expects two (B, C, H, W) tensors of the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}."
        )
    channels = pred.shape[1]
    window = _gaussian_window(channels, pred.device, pred.dtype)
    pad = _SSIM_WINDOW // 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    if dynamic_range is None:
        dynamic_range = _authors_dynamic_range(pred)
    c1 = (0.01 * dynamic_range) ** 2
    c2 = (0.03 * dynamic_range) ** 2

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    luminance = (2 * mu_p * mu_t + c1) / (mu_p**2 + mu_t**2 + c1)
    structure = (2 * cov + c2) / (var_p + var_t + c2)
    return luminance, structure


def ssim(pred: Tensor, target: Tensor, dynamic_range: float | None = None) -> Tensor:
    """Mean SSIM of pred vs target (B, C, H, W) -> scalar.

    ``dynamic_range`` None takes L from the prediction as the authors' code does (see
    ``_authors_dynamic_range``); a number fixes it.
    """
    luminance, structure = _ssim_maps(pred, target, dynamic_range)
    return (luminance * structure).mean()


def ssim_factors(normal_hat: Tensor, x0: Tensor, ssim_range: str) -> tuple[Tensor, Tensor]:
    """(l, cs) maps of the normal loss's SSIM for images in [−1, 1], (B, 3, H, W) each: both
    images mapped to [0, 1] with L = 1 (``unit``), or as they are with L from the prediction
    (``signed``)."""
    if ssim_range == "unit":
        return _ssim_maps((normal_hat + 1.0) * 0.5, (x0 + 1.0) * 0.5, 1.0)
    if ssim_range == "signed":
        return _ssim_maps(normal_hat, x0, None)
    raise ValueError(
        f"normal_ssim_range must be one of {', '.join(SSIM_RANGES)}, got {ssim_range!r}."
    )


def normal_appearance_loss(
    normal_hat: Tensor,
    x0: Tensor,
    *,
    ssim_weight: float,
    l1_weight: float,
    ssim_range: str = "unit",
) -> Tensor:
    """ssim_weight · (1 − SSIM(n̂, x0)) + l1_weight · L1(n̂, x0) for images (B, 3, H, W) in [−1, 1].

    ``unit`` maps both images to [0, 1] and fixes L = 1 before SSIM; ``signed`` feeds them as they
    are with L from the prediction, as the authors' code does. On signed images a window whose
    local means differ in sign has l < 0, and SSIM = l · cs then rewards anti-correlated
    structure there: a second basin that can turn a channel upside down (docs/normal_loss.md).
    In [0, 1] both means are positive, l > 0 everywhere and SSIM only rewards agreement.
    """
    luminance, structure = ssim_factors(normal_hat, x0, ssim_range)
    similarity = (luminance * structure).mean()
    return ssim_weight * (1.0 - similarity) + l1_weight * F.l1_loss(normal_hat, x0)


def transfusion_loss(
    mask_logits: Tensor,
    anomaly_hat: Tensor,
    normal_hat: Tensor,
    *,
    x_t: Tensor,
    x0: Tensor,
    mask: Tensor,
    anomaly_target: Tensor,
    t: Tensor,
    schedule: TransparencySchedule,
    weights: LossWeights | None = None,
    normal_ssim_range: str = "unit",
) -> dict[str, Tensor]:
    """All loss terms for one batch; each value is already weighted and "total" is their sum.

    mask_logits, mask: (B, 1, H, W) (mask = true M); anomaly_hat, normal_hat, x_t, x0,
    anomaly_target (= β_t·M⊙A): (B, 3, H, W); t: (B,) int64 in 1 … T−1.
    The step term compares one reverse update with the predictions (mask binarised, hence no
    gradient to the mask head) to the same update with the ground truth.
    """
    w = weights if weights is not None else LossWeights()
    anomaly = w.anomaly * F.mse_loss(anomaly_hat, anomaly_target)

    focal = sigmoid_focal_loss(mask_logits, mask, alpha=0.25, gamma=2.0, reduction="mean")
    smooth = F.smooth_l1_loss(torch.sigmoid(mask_logits), mask, beta=1.0)
    mask_term = w.mask_focal * focal + w.mask_smooth_l1 * smooth

    normal = normal_appearance_loss(
        normal_hat,
        x0,
        ssim_weight=w.normal_ssim,
        l1_weight=w.normal_l1,
        ssim_range=normal_ssim_range,
    )

    predicted_mask = (torch.sigmoid(mask_logits) > 0.5).to(x_t.dtype)
    predicted_prev = schedule.step(x_t, t, predicted_mask, anomaly_hat, normal_hat)
    true_prev = schedule.step(x_t, t, mask, anomaly_target, x0)
    step = w.step * F.mse_loss(predicted_prev, true_prev)

    return {
        "total": anomaly + mask_term + normal + step,
        "anomaly": anomaly,
        "mask": mask_term,
        "normal": normal,
        "step": step,
    }
