"""What training reports: each finished epoch, the loss of every step, and the error that stops
a run whose loss stopped being finite."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EpochResult:
    """What one finished epoch reports: 1-based epoch, mean of each loss term over its steps,
    the learning rate used during it, and its wall-clock seconds."""

    epoch: int
    losses: dict[str, float]
    lr: float
    seconds: float

    def summary(self, epochs: int) -> str:
        """One log line: ``epoch 3/60  loss 0.41 (anomaly 0.01 ...)  lr 3.00e-04  1.2 s``."""
        terms = " ".join(
            f"{name} {value:.4f}" for name, value in self.losses.items() if name != "total"
        )
        return (
            f"epoch {self.epoch}/{epochs}  loss {self.losses.get('total', float('nan')):.4f} "
            f"({terms})  lr {self.lr:.2e}  {self.seconds:.1f} s"
        )


@dataclass
class TrainHistory:
    """Per-epoch results plus the total loss of every optimiser step, in order."""

    results: list[EpochResult] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    @property
    def losses(self) -> list[dict[str, float]]:
        """The per-epoch mean loss dicts, epoch 1 first."""
        return [result.losses for result in self.results]

    @property
    def last_epoch(self) -> int:
        """The last finished epoch (0 before any)."""
        return self.results[-1].epoch if self.results else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and dicts, safe for ``torch.load(weights_only=True)`` and JSON."""
        return {
            "results": [asdict(result) for result in self.results],
            "step_losses": list(self.step_losses),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainHistory:
        """Inverse of ``to_dict``."""
        return cls(
            results=[EpochResult(**result) for result in data["results"]],
            step_losses=[float(value) for value in data["step_losses"]],
        )


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; raised before the optimiser step, nothing saved."""

    def __init__(
        self,
        epoch: int,
        step: int,
        steps_per_epoch: int,
        losses: dict[str, float],
        checkpoint: Path | None,
    ) -> None:
        self.epoch = epoch
        self.step = step
        self.losses = losses
        self.checkpoint = checkpoint
        terms = ", ".join(f"{name}={value:.4g}" for name, value in losses.items())
        kept = (
            f"the last good checkpoint {checkpoint} is kept"
            if checkpoint is not None
            else "no checkpoint had been written yet"
        )
        super().__init__(
            f"Non-finite loss at epoch {epoch}, step {step}/{steps_per_epoch} ({terms}); {kept}. "
            "Check the training images for NaN/Inf, lower the learning rate or turn bf16 off."
        )
