"""Resuming a training run: which checkpoint to continue from and whether it fits, and what a
resumable checkpoint holds beyond the weights (optimiser, scheduler, the RNG streams and the
loss history), captured so that an interrupted and resumed CPU run reproduces the uninterrupted
one exactly. Stored in a bundle's ``training_state`` (core.bundle)."""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from transfusion_ad.core.checkpoint import (
    latest_good_checkpoint,
    list_checkpoints,
    remove_temporaries,
)
from transfusion_ad.core.history import TrainHistory
from transfusion_ad.core.identity import to_plain
from transfusion_ad.core.optimisation import WeightAverage

logger = logging.getLogger(__name__)

# Settings that may legitimately change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset(
    {"epochs", "checkpoint_every", "device", "num_workers", "progress", "deterministic"}
)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    Call it before building the model so its initial weights are reproducible too. On CPU a
    fixed seed gives a bit-identical run. On CUDA, bit-identical runs additionally need
    ``training.deterministic: true`` (core.device.make_deterministic), which costs speed.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_to_resume(directory: Path | None, resume: bool) -> tuple[Path, dict] | None:
    """(path, bundle) of the newest readable checkpoint in ``directory`` to continue from, or
    None for a fresh run. Half-written files are removed; with ``resume`` False the old
    checkpoints are removed too (with a warning), so a fresh run never mixes with them."""
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
    if found is not None:
        logger.info("Resuming from %s (epoch %d).", found[0], found[1]["epochs"])
    return found


def check_resumable(
    path: Path,
    state: Mapping[str, Any],
    model_config: Mapping[str, Any],
    epochs: int,
    train_config: Mapping[str, Any],
) -> None:
    """Refuse a checkpoint of another network or one beyond ``epochs``; warn about every
    changed setting outside ``RESUMABLE_CHANGES`` (optimiser and scheduler continue as saved)."""
    remedy = "use another checkpoint_dir or resume=False to start afresh"
    if to_plain(state["model_config"]) != to_plain(dict(model_config)):
        raise ValueError(
            f"Checkpoint {path} was trained with model_config {state['model_config']} but the "
            f"model has {dict(model_config)}; {remedy}."
        )
    if state["epochs"] > epochs:
        raise ValueError(
            f"Checkpoint {path} is at epoch {state['epochs']}, beyond epochs={epochs}; raise "
            f"epochs or {remedy}."
        )
    saved = state["train_config"]
    if train_config.get("lr_schedule") == "cosine" and saved.get("epochs") != epochs:
        raise ValueError(
            f"Checkpoint {path} follows a cosine schedule over {saved.get('epochs')} epochs, not "
            f"epochs={epochs}: the decay depends on the run's length; {remedy}."
        )
    changed = [
        f"{key}: {saved.get(key)!r} -> {value!r}"
        for key, value in to_plain(dict(train_config)).items()
        if key not in RESUMABLE_CHANGES and saved.get(key) != value
    ]
    if changed:
        logger.warning(
            "Resuming from %s with changed settings (%s); optimiser and scheduler state "
            "continue from the checkpoint.",
            path,
            "; ".join(changed),
        )


@dataclass
class TrainingRun:
    """The mutable state of one ``Trainer.fit``: everything a checkpoint must capture. The
    synthesis stream ``generator`` lives on the training device (t, synthesis, rotation); the
    data-order stream ``data_generator`` on the CPU (DataLoader shuffling). ``scheduler`` steps
    once per optimiser step when ``per_step_schedule``, else once per epoch; ``ema`` is the
    weight average when the recipe keeps one."""

    optimizer: Optimizer
    scheduler: LRScheduler
    generator: torch.Generator
    data_generator: torch.Generator
    history: TrainHistory = field(default_factory=TrainHistory)
    per_step_schedule: bool = False
    ema: WeightAverage | None = None

    def seed(self, seed: int) -> None:
        """A fresh run: every stream seeded from ``seed``."""
        seed_everything(seed)
        self.generator.manual_seed(seed)
        self.data_generator.manual_seed(seed + 1)

    def restore(self, training_state: dict[str, Any], seed: int) -> None:
        """Continue where a checkpoint's ``training_state`` left off."""
        restore_training_state(
            training_state,
            self.optimizer,
            self.scheduler,
            self.generator,
            self.data_generator,
            seed,
        )
        self.history = TrainHistory.from_dict(training_state["history"])
        if self.ema is not None:
            if "ema_state" not in training_state:
                raise ValueError(
                    "The checkpoint holds no weight average but the recipe keeps one "
                    "(training.ema_decay); resume=never starts afresh."
                )
            self.ema.load_state_dict(training_state["ema_state"])

    def state(self, epoch: int) -> dict[str, Any]:
        """The training state after ``epoch``, for a checkpoint."""
        state = capture_training_state(
            epoch,
            self.optimizer,
            self.scheduler,
            self.generator,
            self.data_generator,
            self.history.to_dict(),
        )
        if self.ema is not None:
            state["ema_state"] = self.ema.state_dict()
        return state


def capture_training_state(
    epoch: int,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    generator: torch.Generator,
    data_generator: torch.Generator,
    history: dict[str, Any],
) -> dict[str, Any]:
    """The training state after ``epoch`` (1-based); ``history`` is plain lists and dicts."""
    return {
        "epoch": epoch,
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "rng_state": capture_rng(generator, data_generator),
        "history": history,
    }


def restore_training_state(
    state: dict[str, Any],
    optimizer: Optimizer,
    scheduler: LRScheduler,
    generator: torch.Generator,
    data_generator: torch.Generator,
    seed: int,
) -> None:
    """Put optimiser, scheduler and every RNG back where ``state`` left them."""
    optimizer.load_state_dict(state["optimizer_state"])
    scheduler.load_state_dict(state["scheduler_state"])
    restore_rng(state["rng_state"], generator, data_generator, seed + state["epoch"])


def capture_rng(generator: torch.Generator, data_generator: torch.Generator) -> dict[str, Any]:
    """Every RNG stream the loop draws from (torch, CUDA, NumPy, Python, the synthesis stream
    on the training device and the CPU data-order stream) as weights_only-safe values."""
    numpy_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "generator_device": generator.device.type,
        "generator": generator.get_state(),
        "data_generator": data_generator.get_state(),
    }


def restore_rng(
    state: dict[str, Any], generator: torch.Generator, data_generator: torch.Generator, seed: int
) -> None:
    """The inverse of ``capture_rng``. A synthesis stream saved on another device type (e.g.
    CUDA, resumed on CPU) cannot carry over: it is reseeded from ``seed``."""
    torch.set_rng_state(state["torch"])
    if (
        state["cuda"]
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"])
    )
    data_generator.set_state(state["data_generator"])
    if state["generator_device"] == generator.device.type:
        generator.set_state(state["generator"])
        return
    warnings.warn(
        f"The checkpoint's synthesis RNG was on {state['generator_device']}, training now runs "
        f"on {generator.device.type}; reseeding it, so the resumed run is not bit-identical to "
        "an uninterrupted one.",
        stacklevel=4,
    )
    generator.manual_seed(seed)
