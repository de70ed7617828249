"""What training accepts: the optimisation settings (spec §5), each checked on construction, and
the shape of a training set, checked before the first step."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset

from transfusion_ad.core.losses import SSIM_RANGES, LossWeights
from transfusion_ad.core.objective import T_SAMPLINGS

MAX_SEED = 2**32 - 1
# Each batch's first half gets a synthetic anomaly and its second half stays normal (spec §5).
MIN_BATCH_SIZE = 2
BATCH_SIZE_RULE = (
    f"an integer >= {MIN_BATCH_SIZE} (each batch needs one anomalous and one normal sample)"
)
# step: the paper's StepLR, stepped once per epoch. cosine: linear warm-up over warmup_steps
# optimiser steps, then a cosine decay to 0 at the run's last step (docs/method.md §12).
LR_SCHEDULES = ("step", "cosine")


def _require_int(name: str, value: object, minimum: int, rule: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"TrainConfig.{name} must be {rule}, got {value!r}.")


def _require_number(name: str, value: object, rule: str, check: Callable[[float], bool]) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not check(float(value)):
        raise ValueError(f"TrainConfig.{name} must be {rule}, got {value!r}.")


def _require_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"TrainConfig.{name} must be true or false, got {value!r}.")


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults are the paper's recipe (spec §5).

    ``loss_weights`` also accepts a plain dict of LossWeights fields (as read from YAML).
    Every field is validated on construction, before any work starts.
    """

    epochs: int = 1500
    batch_size: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.01
    lr_step_epochs: int = 800
    lr_gamma: float = 0.1
    checkpoint_every: int = 50
    device: str = "auto"
    bf16: bool = False
    seed: int = 3
    num_workers: int = 0
    progress: bool = True
    loss_weights: LossWeights = field(default_factory=LossWeights)
    normal_ssim_range: str = "unit"
    deterministic: bool = False
    lr_schedule: str = "step"
    warmup_steps: int = 0
    ema_decay: float | None = None
    t_sampling: str = "uniform"

    def __post_init__(self) -> None:
        _require_int("epochs", self.epochs, 1, "an integer >= 1")
        _require_int("batch_size", self.batch_size, MIN_BATCH_SIZE, BATCH_SIZE_RULE)
        _require_number("lr", self.lr, "a number > 0", lambda v: v > 0)
        _require_number("weight_decay", self.weight_decay, "a number >= 0", lambda v: v >= 0)
        _require_int("lr_step_epochs", self.lr_step_epochs, 1, "an integer >= 1")
        _require_number("lr_gamma", self.lr_gamma, "a number in (0, 1]", lambda v: 0 < v <= 1)
        _require_int("checkpoint_every", self.checkpoint_every, 1, "an integer >= 1 (epochs)")
        if not isinstance(self.device, str):
            raise ValueError(f"TrainConfig.device must be a string, got {self.device!r}.")
        _require_bool("bf16", self.bf16)
        _require_int("seed", self.seed, 0, f"an integer in [0, {MAX_SEED}]")
        if self.seed > MAX_SEED:
            raise ValueError(
                f"TrainConfig.seed must be an integer in [0, {MAX_SEED}], got {self.seed}."
            )
        _require_int("num_workers", self.num_workers, 0, "an integer >= 0")
        _require_bool("progress", self.progress)
        _require_bool("deterministic", self.deterministic)
        if isinstance(self.loss_weights, dict):
            try:
                self.loss_weights = LossWeights(**self.loss_weights)
            except TypeError as error:
                raise ValueError(
                    f"TrainConfig.loss_weights has an unknown key ({error}); allowed: "
                    f"{sorted(asdict(LossWeights()))}."
                ) from error
        if not isinstance(self.loss_weights, LossWeights):
            raise ValueError(
                "TrainConfig.loss_weights must be LossWeights or a dict, got "
                f"{self.loss_weights!r}."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"TrainConfig.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got "
                f"{self.lr_schedule!r}."
            )
        _require_int("warmup_steps", self.warmup_steps, 0, "an integer >= 0 (optimiser steps)")
        if self.warmup_steps and self.lr_schedule != "cosine":
            raise ValueError(
                f"TrainConfig.warmup_steps={self.warmup_steps} needs lr_schedule 'cosine' (the "
                "paper's step schedule has no warm-up); set lr_schedule: cosine or warmup_steps: 0."
            )
        if self.ema_decay is not None:
            _require_number(
                "ema_decay", self.ema_decay, "null or a number in (0, 1)", lambda v: 0 < v < 1
            )
        if self.t_sampling not in T_SAMPLINGS:
            raise ValueError(
                f"TrainConfig.t_sampling must be one of {', '.join(T_SAMPLINGS)}, got "
                f"{self.t_sampling!r}."
            )
        if self.normal_ssim_range not in SSIM_RANGES:
            raise ValueError(
                f"TrainConfig.normal_ssim_range must be one of {', '.join(SSIM_RANGES)}, got "
                f"{self.normal_ssim_range!r}."
            )

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """bfloat16 when ``bf16`` is on and the device is CUDA or a CPU (fast where it has
        avx512_bf16 or AMX, emulated and slow elsewhere: benchmarks/README.md); None (float32)
        otherwise, with a warning when bf16 was asked for on another device."""
        if not self.bf16:
            return None
        if device.type in ("cuda", "cpu"):
            return torch.bfloat16
        warnings.warn(
            f"bf16=True is supported on CUDA and CPUs; training in float32 on {device}.",
            stacklevel=3,
        )
        return None


def check_training_set(dataset: Dataset) -> None:
    """Fail before training on a dataset that is too small or yields the wrong item shape:
    items must be (image (3, H, W), foreground (1, H, W)) tensors."""
    size = len(dataset)  # type: ignore[arg-type]
    if size < MIN_BATCH_SIZE:
        raise ValueError(
            f"The training set has {size} image(s); at least {MIN_BATCH_SIZE} are needed (one "
            "anomalous and one normal sample per batch)."
        )
    item = dataset[0]
    shapes_ok = (
        isinstance(item, tuple | list)
        and len(item) == 2
        and all(isinstance(part, Tensor) for part in item)
        and item[0].dim() == 3
        and item[0].shape[0] == 3
        and tuple(item[1].shape) == (1, *item[0].shape[1:])
    )
    if not shapes_ok:
        described = (
            [
                tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                for part in item
            ]
            if isinstance(item, tuple | list)
            else type(item).__name__
        )
        raise ValueError(
            "Training items must be (image (3, H, W), foreground (1, H, W)) tensors; item 0 is "
            f"{described}."
        )
