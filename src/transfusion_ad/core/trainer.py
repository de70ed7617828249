"""The TransFusion training loop (spec §2.6, §3, §5): for each batch, the objective
(core.objective) synthesises anomalies on the training device, blends them in at a random
transparency and scores the three-headed network's answer; the loop steps the optimiser, writes
checkpoints and resumes from them. Settings are in core.train_config, what it reports in
core.history, resume and RNG state in core.resume.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.optim import AdamW
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from transfusion_ad.core.bundle import make_bundle
from transfusion_ad.core.checkpoint import load_checkpoint, save_rotating
from transfusion_ad.core.device import make_deterministic, resolve_device
from transfusion_ad.core.history import EpochResult, NonFiniteLossError, TrainHistory
from transfusion_ad.core.identity import to_plain
from transfusion_ad.core.objective import TrainingObjective, compute_training_loss
from transfusion_ad.core.optimisation import WeightAverage, make_scheduler
from transfusion_ad.core.resume import (
    TrainingRun,
    check_resumable,
    checkpoint_to_resume,
    seed_everything,
)
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer
from transfusion_ad.core.train_config import TrainConfig, check_training_set
from transfusion_ad.core.unet import TransFusionUNet

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


class Trainer:
    """Trains a TransFusionUNet in place; ``fit`` returns the loss history.

    Paper defaults (spec §5): AdamW (torch defaults, weight decay 0.01), StepLR stepped once per
    epoch, fp32. For short runs (core.optimisation): a cosine schedule with warm-up, stepped per
    optimiser step, and an EMA of the weights, which is what the fitted model holds at the end
    (checkpoints hold the optimised weights and the average beside them). Optional bf16
    autocast on CUDA and CPUs (elsewhere ignored with a warning); on CUDA
    ``torch.backends.cudnn.benchmark`` is switched on unless deterministic algorithms are enabled
    (see ``seed_everything`` for bit-reproducible CUDA runs). Two speed switches, same values:
    ``recompute`` (``TransFusionUNet.enable_recompute``) and, on the CPU, channels_last weights
    (faster oneDNN convolutions). The process-wide CPU heap setting is the caller's
    (``core.device.prepare_cpu``).

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
        model: TransFusionUNet,
        schedule: TransparencySchedule,
        synthesizer: AnomalySynthesizer,
        config: TrainConfig | None = None,
        checkpoint_dir: Path | None = None,
        *,
        recipe: dict[str, Any] | None = None,
        identity: str | None = None,
        identity_recipe: dict[str, Any] | None = None,
        recompute: bool = True,
    ) -> None:
        self.config = config if config is not None else TrainConfig()
        self.device = resolve_device(self.config.device)
        self.objective = TrainingObjective.for_synthesizer(
            schedule,
            synthesizer,
            self.config.loss_weights,
            self.config.normal_ssim_range,
            self.config.t_sampling,
        )
        self.model = model
        self.schedule = schedule
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.recipe = {
            "num_steps": schedule.num_steps,
            **to_plain(dict(model.config)),
            **(recipe or {}),
        }
        self.identity = identity
        self.identity_recipe = identity_recipe
        self.recompute = recompute
        self.autocast_dtype = self.config.autocast_dtype(self.device)
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
        check_training_set(dataset)
        if config.deterministic:
            make_deterministic()
        model = self.model.to(self.device).enable_recompute(self.recompute)
        if self.device.type == "cpu":  # oneDNN convolutions run faster on NHWC (benchmarks/)
            model = model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
            torch.backends.cudnn.benchmark = True
        data_generator = torch.Generator()
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=len(dataset) % config.batch_size == 1,
            generator=data_generator,
            persistent_workers=config.num_workers > 0,
        )
        run = self._prepare(resume, data_generator, len(loader))
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
                if not run.per_step_schedule:
                    run.scheduler.step()
                run.history.results.append(result)
                logger.info(result.summary(config.epochs))
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
        if run.ema is not None:  # the model a recipe with EMA hands on is the average
            run.ema.copy_to(model)
        return run.history

    def _prepare(
        self, resume: bool, data_generator: torch.Generator, steps_per_epoch: int
    ) -> TrainingRun:
        """Optimiser, scheduler, weight average and RNGs: seeded afresh, or restored from the
        last checkpoint."""
        config = self.config
        optimizer = AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler, per_step = make_scheduler(optimizer, config, steps_per_epoch)
        run = TrainingRun(
            optimizer,
            scheduler,
            torch.Generator(device=self.device),
            data_generator,
            per_step_schedule=per_step,
        )
        found = checkpoint_to_resume(self.checkpoint_dir, resume)
        if found is None:
            run.seed(config.seed)
            run.ema = self._weight_average()
            return run
        path, state = found
        check_resumable(path, state, self.model.config, config.epochs, asdict(config))
        self._last_checkpoint = path
        self.model.load_state_dict(state["model_state"])
        run.ema = self._weight_average()
        run.restore(state["training_state"], config.seed)
        return run

    def _weight_average(self) -> WeightAverage | None:
        """A fresh average of the current weights when the recipe keeps one."""
        decay = self.config.ema_decay
        return None if decay is None else WeightAverage(self.model, decay)

    def _train_epoch(
        self,
        epoch: int,
        loader: DataLoader,
        run: TrainingRun,
        bar: tqdm,
    ) -> EpochResult:
        lr = float(run.optimizer.param_groups[0]["lr"])
        sums: dict[str, float] = {}
        start = time.perf_counter()
        steps = len(loader)
        for step, (images, foreground) in enumerate(loader, start=1):
            losses = self.objective(
                self.model,
                images.to(self.device, non_blocking=True),
                foreground.to(self.device, non_blocking=True),
                generator=run.generator,
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
            if run.ema is not None:
                run.ema.update(self.model)
            if run.per_step_schedule:
                run.scheduler.step()
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

    def _payload(self, epoch: int, run: TrainingRun) -> dict[str, Any]:
        """The checkpoint after ``epoch``: a model bundle with the state to resume from."""
        return make_bundle(
            self.model,
            recipe=self.recipe,
            train_config=asdict(self.config),
            epochs=epoch,
            identity=self.identity,
            identity_recipe=self.identity_recipe,
            training_state=run.state(epoch),
        )
