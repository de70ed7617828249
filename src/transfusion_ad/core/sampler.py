"""Reverse transparency process (spec §6): peel the anomaly off a test image step by step, feeding
the binarised predicted mask back, and average the soft masks into the anomaly map."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transfusion_ad.core.schedule import TransparencySchedule

MASK_DIVISORS = ("paper", "steps")
MIN_REVERSE_CALLS = 2  # a strided process keeps both ends, t = T-2 and t = 1
MIN_EARLY_EXIT = 1  # calls a mask must stay unchanged before its image is done


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


def visited_steps(num_steps: int, calls: int | None = None) -> list[int]:
    """The steps a reverse process visits, from T−2 down to 1: all T−2 of them (``calls`` None,
    the paper), or ``calls`` of them evenly spaced, both ends included."""
    last = num_steps - 2
    if calls is None or calls == last:
        return list(range(last, 0, -1))
    if (
        isinstance(calls, bool)
        or not isinstance(calls, int)
        or not MIN_REVERSE_CALLS <= calls <= last
    ):
        raise ValueError(
            f"inference.num_steps must be null or an integer in {MIN_REVERSE_CALLS}..{last} (T-2 "
            f"network calls at most, from t = T-2 down to 1), got {calls!r}."
        )
    spacing = (last - 1) / (calls - 1)
    return [int(math.floor(last - index * spacing + 0.5)) for index in range(calls)]


def reverse_process(
    model: nn.Module,
    schedule: TransparencySchedule,
    images: Tensor,
    *,
    mask_divisor: str = "paper",
    return_steps: bool = False,
    num_steps: int | None = None,
    early_exit: int | None = None,
) -> SamplerOutput:
    """Run t = T−2 … 1 on a batch of images (B, 3, H, W) in [−1, 1], on the images' device.

    The summed soft masks are divided by T−1 ("paper", so the maximum is (T−2)/(T−1)) or by the
    number of steps T−2 ("steps"). Without ``early_exit`` the loop has no host sync; with
    return_steps the records are kept on the device and copied to the CPU once at the end.

    Fewer network calls, both approximations of the paper's process (docs/method.md §12.17):
    ``num_steps`` k visits k evenly spaced steps (``visited_steps``); each update jumps to the
    next visited step with the summed Δβ, and each soft mask counts for the steps it stands
    for, so the average keeps its scale. ``early_exit`` n finishes an image once its binarised
    mask has not changed for n calls: its last update jumps to t = 0 and its last soft mask
    stands for the steps left. Every image exits on its own, whatever its batch holds.
    """
    if mask_divisor not in MASK_DIVISORS:
        raise ValueError(f"mask_divisor must be one of {MASK_DIVISORS}, got {mask_divisor!r}.")
    if schedule.num_steps < 3:
        raise ValueError(
            f"The reverse process needs num_steps >= 3 (t = T-2 … 1), got {schedule.num_steps}."
        )
    if images.dim() != 4:
        raise ValueError(f"Expected images (B, C, H, W), got shape {tuple(images.shape)}.")
    if early_exit is not None and (
        isinstance(early_exit, bool)
        or not isinstance(early_exit, int)
        or early_exit < MIN_EARLY_EXIT
    ):
        raise ValueError(
            f"inference.early_exit must be null or an integer >= {MIN_EARLY_EXIT}, got "
            f"{early_exit!r}."
        )
    if early_exit is not None and return_steps:
        raise ValueError("Step records need every step of every image: turn early_exit off.")
    steps = visited_steps(schedule.num_steps, num_steps)
    strided = len(steps) != schedule.num_steps - 2
    batch, _, height, width = images.shape
    device = images.device
    records: list[tuple[int, Tensor, Tensor, Tensor, Tensor]] = []
    with _eval_mode(model), torch.inference_mode():
        x = images
        mask_in = torch.zeros(batch, 1, height, width, device=device, dtype=images.dtype)
        mask_sum = torch.zeros_like(mask_in)
        exits = _Exits(images, mask_sum, early_exit)
        for index, step in enumerate(steps):
            rows = len(x)
            t = torch.full((rows,), step, device=device, dtype=torch.int64)
            logits, anomaly, normal = model(torch.cat((x, mask_in), dim=1), t)
            soft = torch.sigmoid(logits)
            binary = (soft > 0.5).to(images.dtype)
            if return_steps:
                records.append((step, x, soft, anomaly, normal))
            following = steps[index + 1] if index + 1 < len(steps) else 0
            t_next = torch.full_like(t, following) if strided else None
            done = exits.finished(binary, mask_in)
            if done is not None:
                t_next = torch.where(done, 0, torch.full_like(t, following))
            x = schedule.step(x, t, binary, anomaly, normal, t_next)
            span = 1.0 if t_next is None else (t - t_next).to(images.dtype).view(rows, 1, 1, 1)
            mask_sum = mask_sum + soft * span
            mask_in = binary
            if done is not None:
                x, mask_in, mask_sum = exits.retire(done, x, mask_in, mask_sum)
                if len(x) == 0:
                    break
        reconstruction, mask_sum = exits.outputs(x, mask_sum)
        divisor = schedule.num_steps - 1 if mask_divisor == "paper" else schedule.num_steps - 2
        records_out = (
            [StepRecord(s, xt.cpu(), m.cpu(), a.cpu(), n.cpu()) for s, xt, m, a, n in records]
            if return_steps
            else None
        )
        return SamplerOutput(
            mask=mask_sum / divisor, reconstruction=reconstruction, steps=records_out
        )


class _Exits:
    """Early exit's book-keeping: which images still run, how long each mask has been stable,
    and the outputs of the images that are done (without early exit, nothing happens here)."""

    def __init__(self, images: Tensor, mask_sum: Tensor, patience: int | None) -> None:
        self.patience = patience
        if patience is None:
            return
        self.active = torch.arange(len(images), device=images.device)
        self.stable = torch.zeros(len(images), dtype=torch.int64, device=images.device)
        self.reconstruction = torch.empty_like(images)
        self.mask_sum = torch.empty_like(mask_sum)

    def finished(self, binary: Tensor, previous: Tensor) -> Tensor | None:
        """(B_active,) bool: the images whose mask has now been stable for ``patience`` calls."""
        if self.patience is None:
            return None
        same = (binary == previous).flatten(1).all(dim=1)
        self.stable = torch.where(same, self.stable + 1, 0)
        return self.stable >= self.patience

    def retire(
        self, done: Tensor, x: Tensor, mask_in: Tensor, mask_sum: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Keep the finished images' outputs; return the still-running rows."""
        self.reconstruction[self.active[done]] = x[done]
        self.mask_sum[self.active[done]] = mask_sum[done]
        keep = ~done
        self.active, self.stable = self.active[keep], self.stable[keep]
        return x[keep], mask_in[keep], mask_sum[keep]

    def outputs(self, x: Tensor, mask_sum: Tensor) -> tuple[Tensor, Tensor]:
        """(reconstruction, summed soft masks) of every image, in input order."""
        if self.patience is None:
            return x, mask_sum
        self.reconstruction[self.active] = x
        self.mask_sum[self.active] = mask_sum
        return self.reconstruction, self.mask_sum
