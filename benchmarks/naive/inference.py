"""The reverse process as the authors' evaluation runs it (spec §6): one image at a time, autograd
left on (every step's graph stays alive through x), the soft mask copied to the host each step."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from transfusion_ad.core.schedule import TransparencySchedule


def reverse_process_one_by_one(
    model: nn.Module, schedule: TransparencySchedule, images: Tensor
) -> tuple[Tensor, Tensor]:
    """images (B, 3, H, W) -> (mask (B, 1, H, W) = Σ soft / (T − 1), reconstruction (B, 3, H, W)).

    What the authors' ``utils/EvaluationUtils.py::get_transparentfussion_sample`` does: one
    image at a time, under ``torch.no_grad``, the soft masks summed on the device and copied to
    the host once per image. Same result as ``reverse_process(..., mask_divisor="paper")``; the
    model is left in eval mode (their ``Experiment.evaluate`` calls ``net.eval()``).
    """
    model.eval()
    masks, reconstructions = [], []
    with torch.no_grad():
        for image in images.split(1):
            x = image
            mask_in = torch.zeros_like(image[:, :1])
            mask_sum = torch.zeros_like(mask_in)
            for step in range(schedule.num_steps - 2, 0, -1):
                t = torch.tensor([step], device=image.device)
                logits, anomaly, normal = model(torch.cat((x, mask_in), dim=1), t)
                soft = torch.sigmoid(logits)
                binary = (soft > 0.5).float()
                x = schedule.step(x, t, binary, anomaly, normal)
                mask_sum += soft
                mask_in = binary
            masks.append((mask_sum / (schedule.num_steps - 1)).cpu())
            reconstructions.append(x.cpu())
    return torch.cat(masks), torch.cat(reconstructions)
