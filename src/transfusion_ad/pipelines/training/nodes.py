"""Nodes of training: the run identity, the recipe's model, and core.trainer.Trainer in the
identity's own checkpoint folder under its lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from transfusion_ad.core import training_folder
from transfusion_ad.core.bundle import make_bundle
from transfusion_ad.core.identity import (
    identity_recipe,
    run_identity,
    to_plain,
    training_data_digest,
)
from transfusion_ad.core.protocol import Protocol
from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer, SynthesisConfig
from transfusion_ad.core.trainer import EpochResult, TrainConfig, Trainer, seed_everything
from transfusion_ad.data import TrainingImages
from transfusion_ad.pipelines.training import tracking

_RUN_ONLY_KEYS = ("checkpoint_dir", "resume", "lock")


def recipe_of(model: dict[str, Any], image_size: int) -> dict[str, Any]:
    """The recipe a checkpoint records: the network, T and the image size it was trained at."""
    return {"image_size": image_size, **{k: to_plain(v) for k, v in model.items()}}


def _check_train_set(train_set: dict, image_size: int) -> None:
    """The persisted train_set must be decoded at the current image_size."""
    size = tuple(train_set["images"].shape[-2:])
    if size != (image_size, image_size):
        raise ValueError(
            f"train_set holds {size[0]}x{size[1]} images but image_size is {image_size}: it was "
            "decoded for another recipe. Run data_ingestion and anomaly_synthesis with these "
            "parameters first (or the whole train_eval pipeline)."
        )


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
    dataset: str,
    category: str,
    protocol: str = "default",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and return (the final model bundle, loss history).

    Resumable checkpoints go to ``training.checkpoint_dir/<identity>/``: the same recipe and
    training data resume, any other one trains afresh beside it. The payload returned here is
    the final model bundle (core.bundle) that the catalog versions, without thresholds. The
    protocol may select the authors' form of a loss (core.protocol), and the identity hashes the
    losses as trained.
    """
    _check_train_set(train_set, image_size)
    losses = Protocol.named(protocol).losses(losses)
    recipe = recipe_of(model, image_size)
    flat_recipe = identity_recipe(
        image_size=image_size,
        seed=seed,
        model=model,
        training=training,
        synthesis=synthesis,
        losses=losses,
        train_data=training_data_digest(train_set["paths"]),
    )
    identity = run_identity(flat_recipe)
    resume = training_folder.resume_mode(training["resume"])
    root = Path(training["checkpoint_dir"])
    with training_folder.hold_lock(root / identity, training["lock"]):
        folder = training_folder.prepare(
            root, identity, flat_recipe, f"{dataset}/{category}", resume
        )
        tracking.claim_identity(identity)
        seed_everything(seed)  # the initial weights too: same seed, same run
        network = model_from_recipe(recipe)
        schedule = TransparencySchedule(model["num_steps"])
        synthesizer = AnomalySynthesizer(
            texture_bank, SynthesisConfig.from_params(synthesis), model["num_steps"]
        )
        settings = {k: v for k, v in training.items() if k not in _RUN_ONLY_KEYS}
        settings["normal_ssim_range"] = losses["normal_ssim_range"]
        config = TrainConfig(**settings, seed=seed, device=device)
        trainer = Trainer(
            network,
            schedule,
            synthesizer,
            config,
            checkpoint_dir=folder,
            recipe=recipe,
            identity=identity,
            identity_recipe=flat_recipe,
        )
        streamed: set[int] = set()

        def stream(result: EpochResult) -> None:
            tracking.log_epoch(result)
            streamed.add(result.epoch)

        history = trainer.fit(
            TrainingImages(train_set["images"], foreground_masks),
            callback=stream,
            resume=resume != "never",
        )
    for result in history.results:  # a resumed run also holds the epochs of its checkpoint
        if result.epoch not in streamed:
            tracking.log_epoch(result)
    bundle = make_bundle(
        network,
        recipe=recipe,
        train_config=settings,
        epochs=history.last_epoch,
        identity=identity,
        identity_recipe=flat_recipe,
    )
    return bundle, history.to_dict()
