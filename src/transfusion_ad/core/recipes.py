"""The network a recipe describes. The recipes themselves (the paper's, the small CPU one) are
conf/'s, read by transfusion_ad.conf_recipes or recorded in a model bundle."""

from __future__ import annotations

from typing import Any

from transfusion_ad.core.unet import TransFusionUNet

_MODEL_KEYS = ("base_width", "channel_mults", "num_res_blocks", "attention_levels")


def model_from_recipe(recipe: dict[str, Any]) -> TransFusionUNet:
    """Build the network a recipe describes (extra keys such as image_size are ignored here)."""
    missing = [key for key in _MODEL_KEYS if key not in recipe]
    if missing:
        raise ValueError(f"Recipe is missing {missing}; it needs {list(_MODEL_KEYS)}.")
    return TransFusionUNet(**{key: recipe[key] for key in _MODEL_KEYS})
