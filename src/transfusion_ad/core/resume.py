"""What a resumable checkpoint holds beyond the weights: optimiser, scheduler, the RNG streams
and the loss history, captured so that an interrupted and resumed CPU run reproduces the
uninterrupted one exactly. Stored in a bundle's ``training_state`` (core.bundle)."""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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
