"""Nodes of training: build the recipe's model and hand it to core.trainer.Trainer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from torch import Tensor

from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer
from transfusion_ad.core.trainer import EpochResult, TrainConfig, Trainer, seed_everything
from transfusion_ad.data import TrainingImages
from transfusion_ad.pipelines.anomaly_synthesis.nodes import synthesis_config

logger = logging.getLogger(__name__)

_RUN_ONLY_KEYS = ("checkpoint_dir", "resume")


def recipe_of(model: dict[str, Any], image_size: int) -> dict[str, Any]:
    """The recipe a checkpoint records: the network, T and the image size it was trained at."""
    return {"image_size": image_size, **{k: _plain(v) for k, v in model.items()}}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _log_epoch(result: EpochResult) -> None:
    """Stream the epoch's losses to the active MLflow run, so the UI shows training live."""
    if mlflow.active_run() is None:
        return
    metrics = {f"train_{name}": value for name, value in result.losses.items()}
    metrics["train_lr"] = result.lr
    mlflow.log_metrics(metrics, step=result.epoch)


def train_model(
    train_set: dict,
    foreground_masks: Tensor,
    texture_bank: Tensor,
    model: dict[str, Any],
    training: dict[str, Any],
    losses: dict[str, Any],
    synthesis: dict[str, Any],
    image_size: int,
    seed: int,
    device: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and return (checkpoint payload, loss history).

    Resumable checkpoints go to ``training.checkpoint_dir``; the payload returned here is the
    final model that the catalog versions.
    """
    recipe = recipe_of(model, image_size)
    seed_everything(seed)  # the initial weights too: same seed, same run
    network = model_from_recipe(recipe)
    schedule = TransparencySchedule(model["num_steps"])
    synthesizer = AnomalySynthesizer(texture_bank, synthesis_config(synthesis), model["num_steps"])
    settings = {k: v for k, v in training.items() if k not in _RUN_ONLY_KEYS}
    settings["normal_ssim_range"] = losses["normal_ssim_range"]
    config = TrainConfig(**settings, seed=seed, device=device)
    trainer = Trainer(
        network,
        schedule,
        synthesizer,
        config,
        checkpoint_dir=Path(training["checkpoint_dir"]),
        metadata={"recipe": recipe},
    )
    history = trainer.fit(
        TrainingImages(train_set["images"], foreground_masks),
        callback=_log_epoch,
        resume=training["resume"],
    )
    payload = {
        "model_state": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "model_config": dict(network.config),
        "recipe": recipe,
        "train_config": {k: _plain(v) for k, v in settings.items()},
        "epochs": history.last_epoch,
    }
    return payload, history.to_dict()
