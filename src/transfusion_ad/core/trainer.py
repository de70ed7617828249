"""The TransFusion training loop (spec §2.6, §3, §5): anomalies are synthesised on the fly on the
training device, blended in at a random transparency, and the three-headed network learns to undo
them. The loop owns device, precision, seeding, checkpoints and resume; the method lives in the
schedule, synthesizer, network and losses it orchestrates.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from transfusion_ad.core.bundle import make_bundle
from transfusion_ad.core.checkpoint import (
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_temporaries,
    save_rotating,
)
from transfusion_ad.core.device import keep_freed_host_memory, resolve_device
from transfusion_ad.core.identity import to_plain
from transfusion_ad.core.losses import SSIM_RANGES, LossWeights, transfusion_loss
from transfusion_ad.core.resume import capture_training_state, restore_training_state
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer, random_rotation

__all__ = [
    "EpochResult",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainHistory",
    "Trainer",
    "compute_training_loss",
    "load_checkpoint",
    "seed_everything",
]

logger = logging.getLogger(__name__)

_MAX_SEED = 2**32 - 1
# Settings that may legitimately change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = frozenset({"epochs", "checkpoint_every", "device", "num_workers", "progress"})


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

    def __post_init__(self) -> None:
        _require_int("epochs", self.epochs, 1, "an integer >= 1")
        _require_int(
            "batch_size",
            self.batch_size,
            2,
            "an integer >= 2 (each batch needs one anomalous and one normal sample)",
        )
        _require_number("lr", self.lr, "a number > 0", lambda v: v > 0)
        _require_number("weight_decay", self.weight_decay, "a number >= 0", lambda v: v >= 0)
        _require_int("lr_step_epochs", self.lr_step_epochs, 1, "an integer >= 1")
        _require_number("lr_gamma", self.lr_gamma, "a number in (0, 1]", lambda v: 0 < v <= 1)
        _require_int("checkpoint_every", self.checkpoint_every, 1, "an integer >= 1 (epochs)")
        if not isinstance(self.device, str):
            raise ValueError(f"TrainConfig.device must be a string, got {self.device!r}.")
        _require_bool("bf16", self.bf16)
        _require_int("seed", self.seed, 0, f"an integer in [0, {_MAX_SEED}]")
        if self.seed > _MAX_SEED:
            raise ValueError(
                f"TrainConfig.seed must be an integer in [0, {_MAX_SEED}], got {self.seed}."
            )
        _require_int("num_workers", self.num_workers, 0, "an integer >= 0")
        _require_bool("progress", self.progress)
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
        if self.normal_ssim_range not in SSIM_RANGES:
            raise ValueError(
                f"TrainConfig.normal_ssim_range must be one of {', '.join(SSIM_RANGES)}, got "
                f"{self.normal_ssim_range!r}."
            )


@dataclass(frozen=True)
class EpochResult:
    """What one finished epoch reports: 1-based epoch, mean of each loss term over its steps,
    the learning rate used during it, and its wall-clock seconds."""

    epoch: int
    losses: dict[str, float]
    lr: float
    seconds: float


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


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    Call it before building the model so its initial weights are reproducible too. On CPU a
    fixed seed gives a bit-identical run. On CUDA, bit-identical runs additionally need
    ``torch.use_deterministic_algorithms(True)``, ``torch.backends.cudnn.benchmark = False`` (the
    trainer leaves benchmark off when deterministic algorithms are on),
    ``torch.backends.cudnn.deterministic = True`` and the environment variable
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before CUDA starts; these cost speed, so they are
    left to the caller.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
) -> dict[str, Tensor]:
    """One training objective evaluation for a batch of clean images.

    x0: (B, 3, H, W) in [-1, 1]; foreground: (B, 1, H, W) in {0, 1}. Per sample t ~ U{1..T−1}
    (never 0), then the synthetic anomaly (M, M_a, A), ε = M⊙A, x_t = x0 + β_t·M⊙(A − x0), then
    the joint random rotation of (x_t, x0, ε, M, M_a) (spec §2.6), the forward pass on
    concat[x_t, M_a] and the losses against β_t·ε, M and x0. ``autocast_dtype`` runs only the
    network under autocast; synthesis and losses stay float32. Returns the transfusion_loss dict
    of scalar tensors ("total", "anomaly", "mask", "normal", "step").
    """
    batch = x0.shape[0]
    t = torch.randint(
        1, schedule.num_steps, (batch,), generator=generator, device=x0.device, dtype=torch.int64
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


@dataclass
class _Run:
    """The mutable state of one ``fit`` call, i.e. everything a checkpoint must capture."""

    optimizer: AdamW
    scheduler: StepLR
    generator: torch.Generator  # on the training device: t, synthesis, rotation
    data_generator: torch.Generator  # on the CPU: DataLoader shuffling
    history: TrainHistory


class Trainer:
    """Trains a TransFusionUNet in place; ``fit`` returns the loss history.

    Paper defaults (spec §5): AdamW (torch defaults, weight decay 0.01), StepLR stepped once per
    epoch, fp32. Optional bf16 autocast on CUDA only (elsewhere ignored with a warning); on CUDA
    ``torch.backends.cudnn.benchmark`` is switched on unless deterministic algorithms are enabled
    (see ``seed_everything`` for bit-reproducible CUDA runs). On the CPU the model's weights are
    put in channels_last memory format (same values, faster oneDNN convolutions) and freed
    activations stay in the process heap (``keep_freed_host_memory``: no page faults per step).

    Checkpoints (when ``checkpoint_dir`` is given) are written every ``checkpoint_every`` epochs
    and after the last one, atomically, keeping the newest two; ``fit(resume=True)`` continues
    from the newest readable one (a corrupt one is set aside with a warning), so an interrupted
    and resumed CPU run reproduces the uninterrupted one exactly. Each checkpoint is a model
    bundle (core.bundle) with a training state; ``recipe`` (the image size the model trains at,
    added to its config and T), ``identity`` and ``identity_recipe`` go into it.

    A batch needs one anomalous and one normal sample, so when len(dataset) % batch_size == 1 the
    final single-image batch of each epoch is dropped (the shuffle puts that image in other
    batches in other epochs).
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: TransparencySchedule,
        synthesizer: AnomalySynthesizer,
        config: TrainConfig | None = None,
        checkpoint_dir: Path | None = None,
        *,
        recipe: dict[str, Any] | None = None,
        identity: str | None = None,
        identity_recipe: dict[str, Any] | None = None,
    ) -> None:
        self.config = config if config is not None else TrainConfig()
        self.device = resolve_device(self.config.device)
        synth_steps = getattr(synthesizer, "num_steps", schedule.num_steps)
        if synth_steps != schedule.num_steps:
            raise ValueError(
                f"The synthesizer was built for num_steps={synth_steps} but the schedule has "
                f"num_steps={schedule.num_steps}; build both from the same num_steps."
            )
        self.model = model
        self.schedule = schedule
        self.synthesizer = synthesizer
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.recipe = {
            "num_steps": schedule.num_steps,
            **to_plain(dict(model.config)),
            **(recipe or {}),
        }
        self.identity = identity
        self.identity_recipe = identity_recipe
        self.autocast_dtype: torch.dtype | None = None
        if self.config.bf16:
            if self.device.type == "cuda":
                self.autocast_dtype = torch.bfloat16
            else:
                warnings.warn(
                    f"bf16=True is only supported on CUDA; training in float32 on {self.device}.",
                    stacklevel=2,
                )
        synth_config = getattr(synthesizer, "config", None)
        self.rotation_probability = float(getattr(synth_config, "rotation_probability", 0.3))
        self.rotation_degrees = float(getattr(synth_config, "rotation_degrees", 20.0))
        self._last_checkpoint: Path | None = None

    def fit(
        self,
        dataset: Dataset,
        callback: Callable[[EpochResult], None] | None = None,
        resume: bool = True,
    ) -> TrainHistory:
        """Train for ``config.epochs`` epochs in total (counting epochs done before a resume).

        dataset items: (image (3, H, W) in [-1, 1], foreground (1, H, W) in {0, 1}).
        ``callback`` is called after each finished (and checkpointed) epoch. The model is left
        on the training device in eval mode.
        """
        config = self.config
        _check_dataset(dataset)
        model = self.model.to(self.device)
        if self.device.type == "cpu":  # oneDNN convolutions run faster on NHWC (benchmarks/)
            keep_freed_host_memory()
            model = model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
            torch.backends.cudnn.benchmark = True
        run = self._prepare(resume)
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=len(dataset) % config.batch_size == 1,
            generator=run.data_generator,
            persistent_workers=config.num_workers > 0,
        )
        first = run.history.last_epoch + 1
        bar = tqdm(
            total=max(config.epochs - first + 1, 0) * len(loader),
            disable=not config.progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        model.train()
        try:
            for epoch in range(first, config.epochs + 1):
                result = self._train_epoch(epoch, loader, run, bar)
                run.scheduler.step()
                run.history.results.append(result)
                logger.info(_summary(result, config.epochs))
                if self.checkpoint_dir is not None and (
                    epoch % config.checkpoint_every == 0 or epoch == config.epochs
                ):
                    self._last_checkpoint = save_rotating(
                        self._payload(epoch, run), self.checkpoint_dir, epoch
                    )
                if callback is not None:
                    callback(result)
        finally:
            bar.close()
            model.eval()
        return run.history

    def _prepare(self, resume: bool) -> _Run:
        """Optimiser, scheduler and RNGs: seeded afresh, or restored from the last checkpoint."""
        config = self.config
        optimizer = AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        run = _Run(
            optimizer=optimizer,
            scheduler=StepLR(optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma),
            generator=torch.Generator(device=self.device),
            data_generator=torch.Generator(),
            history=TrainHistory(),
        )
        state = self._checkpoint_to_resume(resume)
        if state is None:
            seed_everything(config.seed)
            run.generator.manual_seed(config.seed)
            run.data_generator.manual_seed(config.seed + 1)
            return run
        self.model.load_state_dict(state["model_state"])
        training_state = state["training_state"]
        restore_training_state(
            training_state,
            run.optimizer,
            run.scheduler,
            run.generator,
            run.data_generator,
            config.seed,
        )
        run.history = TrainHistory.from_dict(training_state["history"])
        return run

    def _checkpoint_to_resume(self, resume: bool) -> dict[str, Any] | None:
        """The checkpoint to continue from, or None for a fresh run (old checkpoints removed)."""
        directory = self.checkpoint_dir
        if directory is None:
            return None
        remove_temporaries(directory)
        if not resume:
            stale = list_checkpoints(directory)
            if stale:
                logger.warning(
                    "resume=False: removing %d old checkpoint(s) from %s.", len(stale), directory
                )
            for _, path in stale:
                path.unlink()
            return None
        found = latest_good_checkpoint(directory)
        if found is None:
            return None
        path, state = found
        self._check_compatible(path, state)
        self._last_checkpoint = path
        logger.info("Resuming from %s (epoch %d).", path, state["epochs"])
        return state

    def _check_compatible(self, path: Path, state: dict[str, Any]) -> None:
        remedy = "use another checkpoint_dir or resume=False to start afresh"
        if to_plain(state["model_config"]) != to_plain(dict(self.model.config)):
            raise ValueError(
                f"Checkpoint {path} was trained with model_config {state['model_config']} but the "
                f"model has {self.model.config}; {remedy}."
            )
        if state["epochs"] > self.config.epochs:
            raise ValueError(
                f"Checkpoint {path} is at epoch {state['epochs']}, beyond epochs="
                f"{self.config.epochs}; raise epochs or {remedy}."
            )
        saved = state["train_config"]
        current = to_plain(asdict(self.config))
        changed = [
            f"{key}: {saved.get(key)!r} -> {value!r}"
            for key, value in current.items()
            if key not in _RESUMABLE_CHANGES and saved.get(key) != value
        ]
        if changed:
            logger.warning(
                "Resuming from %s with changed settings (%s); optimiser and scheduler state "
                "continue from the checkpoint.",
                path,
                "; ".join(changed),
            )

    def _train_epoch(
        self,
        epoch: int,
        loader: DataLoader,
        run: _Run,
        bar: tqdm,
    ) -> EpochResult:
        lr = float(run.optimizer.param_groups[0]["lr"])
        sums: dict[str, float] = {}
        start = time.perf_counter()
        steps = len(loader)
        for step, (images, foreground) in enumerate(loader, start=1):
            losses = compute_training_loss(
                self.model,
                self.schedule,
                self.synthesizer,
                images.to(self.device, non_blocking=True),
                foreground.to(self.device, non_blocking=True),
                generator=run.generator,
                weights=self.config.loss_weights,
                normal_ssim_range=self.config.normal_ssim_range,
                rotation_probability=self.rotation_probability,
                rotation_degrees=self.rotation_degrees,
                autocast_dtype=self.autocast_dtype,
            )
            # One host sync per step: the values feed the progress bar and the finiteness check,
            # which must happen before the optimiser step so the weights stay finite.
            stacked = torch.stack([value.detach().float() for value in losses.values()])
            values = dict(zip(losses, stacked.tolist(), strict=True))
            if not all(math.isfinite(v) for v in values.values()):
                raise NonFiniteLossError(epoch, step, steps, values, self._last_checkpoint)
            run.optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            run.optimizer.step()
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            run.history.step_losses.append(values["total"])
            bar.update(1)
            bar.set_postfix(
                epoch=f"{epoch}/{self.config.epochs}",
                loss=f"{sums['total'] / step:.4f}",
                refresh=False,
            )
        means = {name: total / steps for name, total in sums.items()}
        return EpochResult(epoch=epoch, losses=means, lr=lr, seconds=time.perf_counter() - start)

    def _payload(self, epoch: int, run: _Run) -> dict[str, Any]:
        """The checkpoint after ``epoch``: a model bundle with the state to resume from."""
        return make_bundle(
            self.model,
            recipe=self.recipe,
            train_config=asdict(self.config),
            epochs=epoch,
            identity=self.identity,
            identity_recipe=self.identity_recipe,
            training_state=capture_training_state(
                epoch,
                run.optimizer,
                run.scheduler,
                run.generator,
                run.data_generator,
                run.history.to_dict(),
            ),
        )


def _check_dataset(dataset: Dataset) -> None:
    """Fail before training on a dataset that is too small or yields the wrong item shape."""
    size = len(dataset)  # type: ignore[arg-type]
    if size < 2:
        raise ValueError(
            f"The training set has {size} image(s); at least 2 are needed (one anomalous and "
            "one normal sample per batch)."
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


def _summary(result: EpochResult, epochs: int) -> str:
    terms = " ".join(
        f"{name} {value:.4f}" for name, value in result.losses.items() if name != "total"
    )
    return (
        f"epoch {result.epoch}/{epochs}  loss {result.losses.get('total', float('nan')):.4f} "
        f"({terms})  lr {result.lr:.2e}  {result.seconds:.1f} s"
    )
