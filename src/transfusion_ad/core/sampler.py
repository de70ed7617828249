"""Reverse transparency process (spec §6): peel the anomaly off a test image step by step, feeding
the binarised predicted mask back, and average the soft masks into the anomaly map."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transfusion_ad.core.schedule import TransparencySchedule

MASK_DIVISORS = ("paper", "steps")


@dataclass
class StepRecord:
    """What the network saw and predicted at step t (tensors on CPU): x_t (B, 3, H, W) fed in,
    soft mask (B, 1, H, W), anomaly appearance ε̂ (B, 3, H, W), normal appearance n̂ (B, 3, H, W)."""

    t: int
    x_t: Tensor
    mask: Tensor
    anomaly: Tensor
    normal: Tensor


@dataclass
class SamplerOutput:
    """Averaged soft mask (B, 1, H, W), final reconstruction (B, 3, H, W), optional step records."""

    mask: Tensor
    reconstruction: Tensor
    steps: list[StepRecord] | None = None


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode (BatchNorm running statistics) for the duration, then every module's own
    previous mode back."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def reverse_process(
    model: nn.Module,
    schedule: TransparencySchedule,
    images: Tensor,
    *,
    mask_divisor: str = "paper",
    return_steps: bool = False,
) -> SamplerOutput:
    """Run t = T−2 … 1 on a batch of images (B, 3, H, W) in [−1, 1], on the images' device.

    The summed soft masks are divided by T−1 ("paper", so the maximum is (T−2)/(T−1)) or by the
    number of steps T−2 ("steps"). The loop has no host sync; with return_steps the records are
    kept on the device and copied to the CPU once at the end.
    """
    if mask_divisor not in MASK_DIVISORS:
        raise ValueError(f"mask_divisor must be one of {MASK_DIVISORS}, got {mask_divisor!r}.")
    if schedule.num_steps < 3:
        raise ValueError(
            f"The reverse process needs num_steps >= 3 (t = T-2 … 1), got {schedule.num_steps}."
        )
    if images.dim() != 4:
        raise ValueError(f"Expected images (B, C, H, W), got shape {tuple(images.shape)}.")
    batch, _, height, width = images.shape
    device = images.device
    records: list[tuple[int, Tensor, Tensor, Tensor, Tensor]] = []
    with _eval_mode(model), torch.inference_mode():
        x = images
        mask_in = torch.zeros(batch, 1, height, width, device=device, dtype=images.dtype)
        mask_sum = torch.zeros_like(mask_in)
        for step in range(schedule.num_steps - 2, 0, -1):
            t = torch.full((batch,), step, device=device, dtype=torch.int64)
            logits, anomaly, normal = model(torch.cat((x, mask_in), dim=1), t)
            soft = torch.sigmoid(logits)
            binary = (soft > 0.5).to(images.dtype)
            if return_steps:
                records.append((step, x, soft, anomaly, normal))
            x = schedule.step(x, t, binary, anomaly, normal)
            mask_sum = mask_sum + soft
            mask_in = binary
        divisor = schedule.num_steps - 1 if mask_divisor == "paper" else schedule.num_steps - 2
        steps = (
            [StepRecord(s, xt.cpu(), m.cpu(), a.cpu(), n.cpu()) for s, xt, m, a, n in records]
            if return_steps
            else None
        )
        return SamplerOutput(mask=mask_sum / divisor, reconstruction=x, steps=steps)
