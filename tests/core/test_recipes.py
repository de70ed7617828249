"""The recipes conf/ defines (the paper's in conf/base, the small CPU one in conf/quick) and the
network each describes."""

import pytest
import torch
from support import PAPER_RECIPE, SMALL_RECIPE

from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.core.unet import TransFusionUNet


def test_paper_recipe_is_the_published_configuration():
    # docs/method.md §4, §5: 256 px, width 64, multipliers (1, 2, 2, 2), 2 blocks, attention at
    # levels 2 and 3 (and the middle), T = 20.
    assert PAPER_RECIPE == {
        "image_size": 256,
        "base_width": 64,
        "channel_mults": [1, 2, 2, 2],
        "num_res_blocks": 2,
        "attention_levels": [2, 3],
        "num_steps": 20,
    }
    assert model_from_recipe(PAPER_RECIPE).config == TransFusionUNet().config


@pytest.mark.parametrize("recipe", [PAPER_RECIPE, SMALL_RECIPE])
def test_recipes_keep_every_mechanism(recipe):
    levels = len(recipe["channel_mults"])
    assert recipe["image_size"] % 32 == 0  # Perlin lattice up to 32 cells, 8x8 tiles
    assert recipe["image_size"] % 2 ** (levels - 1) == 0
    assert recipe["base_width"] % 32 == 0  # GroupNorm(32) everywhere
    # attention at the two lowest levels (the middle block always has it)
    assert tuple(recipe["attention_levels"]) == (levels - 2, levels - 1)
    assert recipe["num_steps"] == 20


def test_small_recipe_builds_and_runs_at_its_image_size():
    torch.manual_seed(0)
    model = model_from_recipe(SMALL_RECIPE).eval()
    size = SMALL_RECIPE["image_size"]
    with torch.no_grad():
        logits, anomaly, normal = model(torch.zeros(1, 4, size, size), torch.tensor([3]))
    assert logits.shape == (1, 1, size, size)
    assert anomaly.shape == normal.shape == (1, 3, size, size)
    assert sum(p.numel() for p in model.parameters()) < 5e6


def test_extra_keys_are_ignored_and_missing_keys_are_named():
    model = model_from_recipe({**SMALL_RECIPE, "lr": 3e-4})
    assert model.config["base_width"] == SMALL_RECIPE["base_width"]
    incomplete = {k: v for k, v in SMALL_RECIPE.items() if k != "num_res_blocks"}
    with pytest.raises(ValueError, match="num_res_blocks"):
        model_from_recipe(incomplete)
