"""The TransFusion training objective for one batch (spec §2.6, §3, §5): a transparency t per
sample, a synthetic anomaly blended in at β_t, the joint rotation, the network's three heads and
the loss terms against β_t·ε, M and x0. The trainer only optimises what this returns."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from transfusion_ad.core.losses import LossWeights, transfusion_loss
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer, random_rotation

# How the training transparency t is drawn from 1 ... T-1: uniform (the paper), opaque
# (p(t) proportional to t: more nearly opaque anomalies), transparent (proportional to T - t).
T_SAMPLINGS = ("uniform", "opaque", "transparent")


def sample_steps(
    num_steps: int,
    batch: int,
    t_sampling: str = "uniform",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Training steps t in 1 ... T-1 (never 0, the clean image), (B,) int64 on ``device``.

    uniform is the paper's U{1..T-1} (one ``randint`` draw, as before the other forms existed);
    opaque and transparent weight t linearly towards β = 1 or β = 0 (docs/method.md §12).
    """
    if t_sampling == "uniform":
        return torch.randint(
            1, num_steps, (batch,), generator=generator, device=device, dtype=torch.int64
        )
    steps = torch.arange(1, num_steps, dtype=torch.float32, device=device)
    if t_sampling == "opaque":
        weights = steps
    elif t_sampling == "transparent":
        weights = num_steps - steps
    else:
        raise ValueError(f"t_sampling must be one of {', '.join(T_SAMPLINGS)}, got {t_sampling!r}.")
    return torch.multinomial(weights, batch, replacement=True, generator=generator) + 1


def compute_training_loss(
    model: nn.Module,
    schedule: TransparencySchedule,
    synthesizer: AnomalySynthesizer,
    x0: Tensor,
    foreground: Tensor,
    *,
    generator: torch.Generator | None = None,
    weights: LossWeights | None = None,
    normal_ssim_range: str = "unit",
    rotation_probability: float = 0.3,
    rotation_degrees: float = 20.0,
    autocast_dtype: torch.dtype | None = None,
    t_sampling: str = "uniform",
) -> dict[str, Tensor]:
    """One training objective evaluation for a batch of clean images (the defaults are the
    paper's).

    x0: (B, 3, H, W) in [-1, 1]; foreground: (B, 1, H, W) in {0, 1}. Per sample t ~ U{1..T−1}
    (never 0; ``t_sampling`` may weight it, see ``sample_steps``), then the synthetic anomaly
    (M, M_a, A), ε = M⊙A, x_t = x0 + β_t·M⊙(A − x0), then
    the joint random rotation of (x_t, x0, ε, M, M_a) (spec §2.6), the forward pass on
    concat[x_t, M_a] and the losses against β_t·ε, M and x0. ``autocast_dtype`` runs only the
    network under autocast; synthesis and losses stay float32. Returns the transfusion_loss dict
    of scalar tensors ("total", "anomaly", "mask", "normal", "step").
    """
    t = sample_steps(
        schedule.num_steps, x0.shape[0], t_sampling, generator=generator, device=x0.device
    )
    synthetic = synthesizer(x0, foreground, t, generator=generator)
    noise = synthetic.mask * synthetic.appearance
    x_t = schedule.add_anomaly(x0, synthetic.mask, synthetic.appearance, t)
    x_t, x0, noise, mask, simulated_mask = random_rotation(
        [x_t, x0, noise, synthetic.mask, synthetic.simulated_mask],
        probability=rotation_probability,
        max_degrees=rotation_degrees,
        generator=generator,
    )
    network_input = torch.cat([x_t, simulated_mask], dim=1)
    autocast = (
        torch.autocast(device_type=x0.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else nullcontext()
    )
    with autocast:
        mask_logits, anomaly_hat, normal_hat = model(network_input, t)
    return transfusion_loss(
        mask_logits.float(),
        anomaly_hat.float(),
        normal_hat.float(),
        x_t=x_t,
        x0=x0,
        mask=mask,
        anomaly_target=schedule.beta(t) * noise,
        t=t,
        schedule=schedule,
        weights=weights if weights is not None else LossWeights(),
        normal_ssim_range=normal_ssim_range,
    )


@dataclass(frozen=True)
class TrainingObjective:
    """``compute_training_loss`` with every setting explicit: the schedule and synthesizer of
    one T, the loss weights and SSIM form, and the joint rotation of spec §2.6 (a synthesis
    setting, so ``for_synthesizer`` takes it from the synthesizer's config)."""

    schedule: TransparencySchedule
    synthesizer: AnomalySynthesizer
    weights: LossWeights
    normal_ssim_range: str
    rotation_probability: float
    rotation_degrees: float
    t_sampling: str = "uniform"

    def __post_init__(self) -> None:
        if self.synthesizer.num_steps != self.schedule.num_steps:
            raise ValueError(
                f"The synthesizer was built for num_steps={self.synthesizer.num_steps} but the "
                f"schedule has num_steps={self.schedule.num_steps}; build both from the same "
                "num_steps."
            )

    @classmethod
    def for_synthesizer(
        cls,
        schedule: TransparencySchedule,
        synthesizer: AnomalySynthesizer,
        weights: LossWeights,
        normal_ssim_range: str,
        t_sampling: str = "uniform",
    ) -> TrainingObjective:
        """The objective with the rotation settings of ``synthesizer.config``."""
        return cls(
            schedule,
            synthesizer,
            weights,
            normal_ssim_range,
            synthesizer.config.rotation_probability,
            synthesizer.config.rotation_degrees,
            t_sampling,
        )

    def __call__(
        self,
        model: nn.Module,
        x0: Tensor,
        foreground: Tensor,
        generator: torch.Generator | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """The loss terms for one batch: x0 (B, 3, H, W) in [-1, 1], foreground (B, 1, H, W)."""
        return compute_training_loss(
            model,
            self.schedule,
            self.synthesizer,
            x0,
            foreground,
            generator=generator,
            weights=self.weights,
            normal_ssim_range=self.normal_ssim_range,
            rotation_probability=self.rotation_probability,
            rotation_degrees=self.rotation_degrees,
            autocast_dtype=autocast_dtype,
            t_sampling=self.t_sampling,
        )
