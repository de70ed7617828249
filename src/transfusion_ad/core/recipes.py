"""Model/schedule recipes as plain data: the paper's configuration and a small CPU one that keeps
every mechanism (positional channel, attention at the two lowest levels and in the middle, all
three heads, T = 20)."""

from __future__ import annotations

from typing import Any

from transfusion_ad.core.unet import TransFusionUNet

PAPER_RECIPE: dict[str, Any] = {
    "image_size": 256,
    "base_width": 64,
    "channel_mults": (1, 2, 2, 2),
    "num_res_blocks": 2,
    "attention_levels": (2, 3),
    "num_steps": 20,
}

SMALL_RECIPE: dict[str, Any] = {
    "image_size": 64,
    "base_width": 32,
    "channel_mults": (1, 2, 2),
    "num_res_blocks": 1,
    "attention_levels": (1, 2),
    "num_steps": 20,
}

_MODEL_KEYS = ("base_width", "channel_mults", "num_res_blocks", "attention_levels")


def model_from_recipe(recipe: dict[str, Any]) -> TransFusionUNet:
    """Build the network a recipe describes (extra keys such as image_size are ignored here)."""
    missing = [key for key in _MODEL_KEYS if key not in recipe]
    if missing:
        raise ValueError(f"Recipe is missing {missing}; it needs {list(_MODEL_KEYS)}.")
    return TransFusionUNet(**{key: recipe[key] for key in _MODEL_KEYS})
