"""Nodes of inference: rebuild the trained model and run core.sampler in batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from transfusion_ad.core.device import keep_freed_host_memory, resolve_device
from transfusion_ad.core.sampler import reverse_process
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.unet import TransFusionUNet
from transfusion_ad.data import to_model_range


def load_trained_model(checkpoint: dict[str, Any], device: torch.device) -> nn.Module:
    """The network of a checkpoint payload, weights loaded, on ``device``, in eval mode
    (channels_last on the CPU, where oneDNN convolutions run faster on NHWC, with freed
    activations kept in the process heap: see ``keep_freed_host_memory``)."""
    network = TransFusionUNet(**checkpoint["model_config"])
    network.load_state_dict(checkpoint["model_state"])
    if device.type == "cpu":
        keep_freed_host_memory()
        network = network.to(memory_format=torch.channels_last)
    return network.to(device).eval()


def check_recipe(checkpoint: dict[str, Any], image_size: int, model: dict[str, Any]) -> None:
    """Refuse a model trained with another recipe than the current parameters, naming both."""
    trained = checkpoint["recipe"]
    current = {"image_size": image_size, **{k: _plain(v) for k, v in model.items()}}
    if trained != current:
        diff = ", ".join(
            f"{key}: trained {trained.get(key)!r} vs parameters {current.get(key)!r}"
            for key in sorted(set(trained) | set(current))
            if trained.get(key) != current.get(key)
        )
        raise ValueError(
            f"The model was trained with another recipe than the current parameters ({diff}). "
            "Run with the parameters it was trained with (e.g. the same --env), or retrain."
        )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def run_reverse_process(
    checkpoint: dict[str, Any],
    image_set: dict,
    inference: dict[str, Any],
    image_size: int,
    model: dict[str, Any],
    device: str,
) -> dict[str, Tensor]:
    """Reverse process on every image of a set, in batches.

    Returns {"mask": (N, 1, S, S) soft averaged masks, "reconstruction": (N, 3, S, S)} on the CPU.
    """
    check_recipe(checkpoint, image_size, model)
    target = resolve_device(device)
    network = load_trained_model(checkpoint, target)
    schedule = TransparencySchedule(checkpoint["recipe"]["num_steps"])
    images = image_set["images"]
    masks, reconstructions = [], []
    batch = inference["batch_size"]
    desc = f"inference ({len(images)} images)"
    for start in tqdm(range(0, len(images), batch), desc=desc, unit="batch"):
        chunk = to_model_range(images[start : start + batch]).to(target)
        output = reverse_process(network, schedule, chunk, mask_divisor=inference["mask_divisor"])
        masks.append(output.mask.float().cpu())
        reconstructions.append(output.reconstruction.float().cpu())
    return {"mask": torch.cat(masks), "reconstruction": torch.cat(reconstructions)}
