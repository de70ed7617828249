"""How the weights move besides the optimiser step: the learning-rate schedule and the
exponential moving average of the weights (EMA). The paper uses StepLR and no EMA (spec §5); the
cosine schedule with warm-up and the EMA are this project's options for short runs
(docs/method.md §12.18), off by default.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, StepLR

from transfusion_ad.core.train_config import TrainConfig


def make_scheduler(
    optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int
) -> tuple[LRScheduler, bool]:
    """(scheduler, stepped per optimiser step?) for ``config.lr_schedule``.

    step: the paper's StepLR, stepped once per epoch. cosine: stepped once per optimiser step; the
    factor rises linearly to 1 over ``warmup_steps`` steps, then follows a half cosine down to 0 at
    the last step of ``epochs`` epochs (so with cosine the length of the run is part of the recipe).
    """
    if config.lr_schedule == "step":
        return StepLR(optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma), False
    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(config.warmup_steps, total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return LambdaLR(optimizer, factor), True


class WeightAverage:
    """An exponential moving average of a model's floating-point parameters and buffers.

    After optimiser step n the average moves towards the weights by 1 − d_n with
    d_n = min(decay, (1 + n) / (10 + n)): the usual warm-up of the decay, so that a short run's
    average is not dominated by the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {name: value.detach().clone() for name, value in _averaged(model)}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (after an optimiser step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in _averaged(model):
            self.shadow[name].lerp_(value.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model`` (its other state is left as it is)."""
        for name, value in _averaged(model):
            value.copy_(self.shadow[name])

    def state_dict(self) -> dict[str, object]:
        """The average and its update count, for a checkpoint."""
        return {"updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Continue from ``state_dict()``'s value."""
        self.updates = int(state["updates"])  # type: ignore[call-overload]
        shadow: dict[str, Tensor] = state["shadow"]  # type: ignore[assignment]
        for name, value in shadow.items():
            self.shadow[name].copy_(value)


def _averaged(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """The tensors the average covers: floating-point parameters and buffers, by name."""
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        if value.is_floating_point():
            yield name, value
