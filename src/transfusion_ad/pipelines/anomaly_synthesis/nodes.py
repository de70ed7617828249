"""Nodes of anomaly_synthesis: thin wrappers over core.foreground and core.synthesis."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from transfusion_ad.core.foreground import foreground_masks, mask_folder
from transfusion_ad.core.protocol import PAPER, Protocol
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer, SynthesisConfig
from transfusion_ad.data import load_images, to_model_range
from transfusion_ad.data.images import is_image_file
from transfusion_ad.reporting.figures import synthetic_preview_figure

logger = logging.getLogger(__name__)

# Foreground estimation sees at least this many pixels a side, even for a 64 px model.
_FOREGROUND_MIN_SIDE = 256


def estimate_foreground(
    train_set: dict,
    category: str,
    synthesis: dict[str, Any],
    image_size: int,
    dataset: str | None = None,
) -> Tensor:
    """Foreground masks (N, 1, S, S) bool for the training images (all ones for textures); a
    mask folder may be the root of the authors' release (core.foreground.mask_folder)."""
    settings = synthesis["foreground"]
    mode = settings["mode"]
    if category in settings["texture_categories"] and mode == "estimate":
        logger.info("'%s' is a texture category: no foreground restriction.", category)
        mode = "none"
    paths = train_set["paths"]
    folder = settings.get("folder") if mode == "folder" else None
    images: list[np.ndarray] = []
    if mode == "estimate":
        side = max(image_size, _FOREGROUND_MIN_SIDE)
        decoded = load_images(paths, side, desc="foreground")
        images = list(decoded.images.permute(0, 2, 3, 1).numpy())
    else:
        images = list(train_set["images"].permute(0, 2, 3, 1).numpy())
    masks = foreground_masks(
        images,
        mode=mode,
        stems=[Path(p).stem for p in paths],
        folder=folder if folder is None else mask_folder(folder, dataset, category),
        size=image_size,
    )
    coverage = float(masks.mean())
    logger.info("Foreground (%s) covers %.1f%% of the training pixels.", mode, 100 * coverage)
    return torch.from_numpy(masks).unsqueeze(1)


def _texture_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image_file(p))


def build_texture_bank(
    synthesis: dict[str, Any], image_size: int, seed: int, protocol: str = "default"
) -> Tensor:
    """Anomaly-source textures (K, 3, S, S) uint8 from DTD. Without DTD, the small CPU recipes
    use the 10 shipped textures (with a warning); 256 px recipes and the paper protocol stop,
    since the paper's anomalies need DTD's variety."""
    folder = Path(synthesis["texture_dir"])
    files = _texture_files(folder) if folder.is_dir() else []
    if not files and Protocol.named(protocol).requires_dtd(image_size):
        raise FileNotFoundError(
            f"No textures in synthesis.texture_dir '{folder}': the recipe at {image_size} px"
            f"{' with protocol paper' if protocol == PAPER else ''} needs DTD (the Describable "
            "Textures Dataset, 47 class folders). Download it once and set synthesis.texture_dir "
            "to its images/ folder, e.g. --params synthesis.texture_dir=/data/dtd/images. The "
            "10 shipped textures are a fallback for the small recipes (image_size < 256) only."
        )
    if not files:
        fallback = Path(synthesis["fallback_texture_dir"])
        logger.warning(
            "No textures in '%s'; using the %s shipped in '%s'. For the paper's recipe download "
            "DTD and set synthesis.texture_dir to its images/ folder.",
            folder,
            len(_texture_files(fallback)) if fallback.is_dir() else 0,
            fallback,
        )
        files = _texture_files(fallback) if fallback.is_dir() else []
    if not files:
        logger.warning("No texture found: every anomaly uses the shuffled-tiles source.")
        return torch.zeros((0, 3, image_size, image_size), dtype=torch.uint8)
    limit = synthesis["max_textures"]
    if limit is not None and len(files) > limit:
        index = np.random.default_rng(seed).choice(len(files), size=limit, replace=False)
        files = [files[i] for i in sorted(index)]
    return load_images([str(f) for f in files], image_size, desc="textures").images


def preview_synthetic_anomalies(
    train_set: dict,
    foreground: Tensor,
    texture_bank: Tensor,
    synthesis: dict[str, Any],
    num_steps: int,
    seed: int,
) -> Figure:
    """A grid of training images with synthetic anomalies at random transparencies."""
    count = min(synthesis["preview_count"], len(train_set["images"]))
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(train_set["images"]), generator=generator)[:count]
    x0 = to_model_range(train_set["images"][index])
    fg = foreground[index].float()
    # Every preview sample anomalous: synthesise twice the batch and keep the anomalous half.
    synthesizer = AnomalySynthesizer(
        texture_bank, SynthesisConfig.from_params(synthesis), num_steps
    )
    t = torch.randint(1, num_steps, (2 * count,), generator=generator)
    doubled = torch.cat([x0, x0]), torch.cat([fg, fg])
    anomalies = synthesizer(*doubled, t, generator=generator)
    half = slice(0, count)
    schedule = TransparencySchedule(num_steps)
    x_t = schedule.add_anomaly(x0, anomalies.mask[half], anomalies.appearance[half], t[half])
    return synthetic_preview_figure(
        x0, x_t, anomalies.mask[half], anomalies.simulated_mask[half], schedule.beta(t[half])
    )
