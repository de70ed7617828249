"""Transparency schedule (spec §3, §6): how much of the anomaly is visible at step t, and the
closed-form forward blend and reverse update that the model, the losses and the sampler share."""

from __future__ import annotations

import torch
from torch import Tensor


class TransparencySchedule:
    """Linear transparency β_t = t / (T − 1), t = 0 … T−1: β_0 = 0 is the clean image, β_{T−1} = 1 a
    fully opaque anomaly. Stateless apart from the (T,) table, so it can be shared freely."""

    def __init__(self, num_steps: int = 20) -> None:
        if not isinstance(num_steps, int) or num_steps < 2:
            raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}.")
        self.num_steps = num_steps
        self.betas = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float32)

    def _table(self, t: Tensor) -> Tensor:
        return self.betas.to(t.device)

    def beta(self, t: Tensor) -> Tensor:
        """β_t for integer steps t (B,) -> (B, 1, 1, 1) on t's device."""
        return self._table(t)[t].view(-1, 1, 1, 1)

    def delta_beta(self, t: Tensor) -> Tensor:
        """β_t − β_{t−1} for steps t >= 1 (B,) -> (B, 1, 1, 1)."""
        table = self._table(t)
        return (table[t] - table[t - 1]).view(-1, 1, 1, 1)

    def add_anomaly(self, x0: Tensor, mask: Tensor, appearance: Tensor, t: Tensor) -> Tensor:
        """Forward blend x_t = x0 + β_t·M⊙(A − x0).

        x0, appearance: (B, 3, H, W); mask: (B, 1, H, W) in {0, 1}; t: (B,) int64 -> (B, 3, H, W).
        """
        beta = self.beta(t).to(x0.dtype)
        return x0 + beta * mask * (appearance - x0)

    def step(
        self,
        x_t: Tensor,
        t: Tensor,
        mask: Tensor,
        anomaly_hat: Tensor,
        normal_hat: Tensor,
        t_next: Tensor | None = None,
    ) -> Tensor:
        """Reverse update x_{t−1} = x_t − (Δβ/β_t)·M⊙ε̂ + Δβ·M⊙n̂ for t >= 1.

        ε̂ ≈ β_t·M⊙A is the visible anomaly, so Δβ/β_t of it is removed and Δβ of the normal
        appearance n̂ added back inside the mask; pixels outside the mask are untouched.
        ``t_next`` (B,), below t, jumps to that step instead of t−1 with the summed
        Δβ = β_t − β_{t_next} (a strided reverse process, docs/method.md §12.17).
        x_t, anomaly_hat, normal_hat: (B, 3, H, W); mask: (B, 1, H, W); t: (B,) -> (B, 3, H, W).
        """
        beta = self.beta(t).to(x_t.dtype)
        if t_next is None:
            delta = self.delta_beta(t).to(x_t.dtype)
        else:
            delta = (self.beta(t) - self.beta(t_next)).to(x_t.dtype)
        return x_t - (delta / beta) * mask * anomaly_hat + delta * mask * normal_hat
