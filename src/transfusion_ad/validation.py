"""Check run parameters before any work starts: each error names the key, the value and the rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transfusion_ad.core.losses import SSIM_RANGES

DATASETS = ("mvtec_ad", "visa", "folder")
LAYOUTS = ("auto", "mvtec", "visa_1cls", "folder", "visa_raw")
FOREGROUND_MODES = ("estimate", "folder", "none")
RESOLUTIONS = ("model", "native")
MASK_DIVISORS = ("paper", "steps")


class ParameterError(ValueError):
    """A run parameter breaks a rule of the method or the project."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _device_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value in ("auto", "cpu", "cuda", "mps"):
        return True
    prefix, _, index = value.partition(":")
    return prefix == "cuda" and index.isdigit()


# (dotted key, predicate, rule shown to the user)
RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("dataset", lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    (
        "image_size",
        lambda v: _is_int(v) and v >= 32 and v % 32 == 0,
        "a positive multiple of 32 (Perlin lattice up to 32 cells, 8x8 tiles, down-sampling)",
    ),
    ("seed", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("device", _device_ok, "auto, cpu, cuda, cuda:N or mps"),
    (
        "model.base_width",
        lambda v: _is_int(v) and v > 0 and v % 32 == 0,
        "a positive multiple of 32 (GroupNorm(32) on every concatenation)",
    ),
    (
        "model.num_steps",
        lambda v: _is_int(v) and v >= 3,
        "an integer >= 3 (the reverse process runs t = T-2 ... 1)",
    ),
    (
        "training.batch_size",
        lambda v: _is_int(v) and v >= 2,
        "an integer >= 2 (each batch needs one anomalous and one normal sample)",
    ),
    ("training.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("training.lr", lambda v: _is_number(v) and v > 0, "a number > 0"),
    (
        "losses.normal_ssim_range",
        lambda v: v in SSIM_RANGES,
        f"one of {', '.join(SSIM_RANGES)} (docs/normal_loss.md)",
    ),
    ("inference.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("inference.mask_divisor", lambda v: v in MASK_DIVISORS, f"one of {', '.join(MASK_DIVISORS)}"),
    ("evaluation.fusion_weight", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("evaluation.box_size", lambda v: _is_int(v) and v >= 1 and v % 2 == 1, "an odd integer >= 1"),
    ("evaluation.fpr_limit", lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    ("evaluation.resolution", lambda v: v in RESOLUTIONS, f"one of {', '.join(RESOLUTIONS)}"),
    (
        "evaluation.threshold_quantile",
        lambda v: _is_number(v) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    (
        "evaluation.pixel_threshold_quantile",
        lambda v: _is_number(v) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    ("data.holdout_fraction", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    (
        "synthesis.foreground.mode",
        lambda v: v in FOREGROUND_MODES,
        f"one of {', '.join(FOREGROUND_MODES)}",
    ),
)


def _lookup(params: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_parameters(params: dict[str, Any]) -> None:
    """Raise ParameterError listing every broken rule; keys that are absent are not checked."""
    problems = []
    for key, predicate, rule in RULES:
        present, value = _lookup(params, key)
        if present and not predicate(value):
            problems.append(f"'{key}' is {value!r} but must be {rule}")
    present, layout = _lookup(params, "layout")
    if present and layout not in LAYOUTS:
        problems.append(f"'layout' is {layout!r} but must be one of {', '.join(LAYOUTS)}")
    if problems:
        raise ParameterError(
            "Invalid parameters (fix them in conf/ or in --params):\n  - " + "\n  - ".join(problems)
        )
