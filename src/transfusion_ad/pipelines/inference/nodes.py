"""Nodes of inference: the reverse process of core.detector on every image of a set."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from transfusion_ad.core.bundle import check_recipe
from transfusion_ad.core.detector import Scoring, TransFusionDetector


def run_reverse_process(
    model_checkpoint: dict[str, Any],
    image_set: dict,
    inference: dict[str, Any],
    evaluation: dict[str, Any],
    image_size: int,
    model: dict[str, Any],
    device: str,
) -> dict[str, Tensor]:
    """Reverse process on every image of a set, inference.batch_size at a time.

    Returns {"mask": (N, 1, S, S) soft averaged masks, "reconstruction": (N, 3, S, S)} on the CPU.
    Refuses a model trained with another recipe than the parameters.
    """
    check_recipe(model_checkpoint, image_size, model)
    images = image_set["images"]
    if len(images) == 0:  # no test images (good images only): nothing to run
        size = images.shape[-1]
        return {
            "mask": torch.zeros(0, 1, size, size),
            "reconstruction": torch.zeros(0, 3, size, size),
        }
    detector = TransFusionDetector.load(
        model_checkpoint,
        device,
        precision=inference["precision"],
        scoring=Scoring.from_params(inference, evaluation),
    )
    masks, reconstructions = [], []
    batch = inference["batch_size"]
    desc = f"inference ({len(images)} images)"
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch"):
        output = detector.reverse(images[start : start + batch])
        masks.append(output.mask)
        reconstructions.append(output.reconstruction)
    return {"mask": torch.cat(masks), "reconstruction": torch.cat(reconstructions)}
