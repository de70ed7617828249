"""Every parameter rule stops a run before work, naming the key, the value and the rule."""

from __future__ import annotations

import pytest

from transfusion_ad.validation import ParameterError, validate_parameters

GOOD = {
    "dataset": "mvtec_ad",
    "layout": "auto",
    "image_size": 256,
    "seed": 3,
    "device": "auto",
    "model": {"base_width": 64, "num_steps": 20},
    "training": {"batch_size": 8, "epochs": 1500, "lr": 1e-5},
    "inference": {"batch_size": 8, "mask_divisor": "paper"},
    "evaluation": {
        "fusion_weight": 0.95,
        "box_size": 7,
        "fpr_limit": 0.3,
        "resolution": "model",
        "threshold_quantile": 0.99,
        "pixel_threshold_quantile": 0.999,
    },
    "losses": {"normal_ssim_range": "unit"},
    "data": {"holdout_fraction": 0.1},
    "synthesis": {"foreground": {"mode": "estimate"}},
}


def _with(key: str, value):
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node[part] = dict(node[part])
        node = node[part]
    node[leaf] = value
    return params


def test_paper_recipe_is_valid():
    validate_parameters(GOOD)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("image_size", 100, "multiple of 32"),
        ("image_size", 0, "multiple of 32"),
        ("model.base_width", 48, "multiple of 32"),
        ("training.batch_size", 1, "one anomalous and one normal"),
        ("evaluation.fusion_weight", 1.5, r"in \[0, 1\]"),
        ("evaluation.fusion_weight", -0.1, r"in \[0, 1\]"),
        ("evaluation.box_size", 6, "odd integer"),
        ("evaluation.box_size", 0, "odd integer"),
        ("model.num_steps", 2, ">= 3"),
        ("device", "gpu", "auto, cpu, cuda, cuda:N or mps"),
        ("device", "cuda:x", "auto, cpu, cuda, cuda:N or mps"),
        ("dataset", "mvtec", "mvtec_ad, visa, folder"),
        ("layout", "mvtec3d", "auto, mvtec"),
        ("evaluation.resolution", "full", "model, native"),
        ("synthesis.foreground.mode", "sam", "estimate, folder, none"),
        ("training.lr", 0, "> 0"),
        ("losses.normal_ssim_range", "0-1", "unit, signed"),
    ],
)
def test_each_rule_names_key_value_and_rule(key, value, rule):
    with pytest.raises(ParameterError, match=rf"'{key}' is {value!r} but must be .*{rule}"):
        validate_parameters(_with(key, value))


def test_all_problems_are_listed_at_once():
    params = _with("image_size", 100)
    params["training"]["batch_size"] = 1
    with pytest.raises(ParameterError) as error:
        validate_parameters(params)
    assert "image_size" in str(error.value) and "training.batch_size" in str(error.value)
