"""Check run parameters before any work starts: each error names the key, the value and the rule."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from transfusion_ad.core.detector import PRECISIONS
from transfusion_ad.core.foreground import FOREGROUND_MODES
from transfusion_ad.core.identity import flatten
from transfusion_ad.core.losses import SSIM_RANGES
from transfusion_ad.core.objective import T_SAMPLINGS
from transfusion_ad.core.protocol import PROTOCOLS
from transfusion_ad.core.resize import RESOLUTIONS
from transfusion_ad.core.sampler import MASK_DIVISORS, MIN_EARLY_EXIT, MIN_REVERSE_CALLS
from transfusion_ad.core.train_config import BATCH_SIZE_RULE, LR_SCHEDULES, MIN_BATCH_SIZE
from transfusion_ad.core.training_folder import LOCK_MODES, RESUME_MODES
from transfusion_ad.data.index import LAYOUTS

DATASETS = ("mvtec_ad", "visa", "folder")


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
        lambda v: _is_int(v) and v >= MIN_BATCH_SIZE,
        BATCH_SIZE_RULE,
    ),
    ("training.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("training.lr", lambda v: _is_number(v) and v > 0, "a number > 0"),
    (
        "training.resume",
        lambda v: v in RESUME_MODES or isinstance(v, bool),
        f"one of {', '.join(RESUME_MODES)} (true and false mean auto and never)",
    ),
    ("training.lock", lambda v: v in LOCK_MODES, f"one of {', '.join(LOCK_MODES)}"),
    ("training.deterministic", lambda v: isinstance(v, bool), "true or false"),
    (
        "training.lr_schedule",
        lambda v: v in LR_SCHEDULES,
        f"one of {', '.join(LR_SCHEDULES)} (warm-up needs cosine)",
    ),
    ("training.warmup_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    (
        "training.ema_decay",
        lambda v: v is None or (_is_number(v) and 0 < v < 1),
        "null (no weight average, the paper) or a number in (0, 1)",
    ),
    ("training.t_sampling", lambda v: v in T_SAMPLINGS, f"one of {', '.join(T_SAMPLINGS)}"),
    (
        "losses.normal_ssim_range",
        lambda v: v in SSIM_RANGES,
        f"one of {', '.join(SSIM_RANGES)} (docs/normal_loss.md)",
    ),
    ("inference.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("inference.mask_divisor", lambda v: v in MASK_DIVISORS, f"one of {', '.join(MASK_DIVISORS)}"),
    (
        "inference.num_steps",
        lambda v: v is None or (_is_int(v) and v >= MIN_REVERSE_CALLS),
        f"null (all T-2 steps, the paper) or an integer >= {MIN_REVERSE_CALLS} and <= T-2",
    ),
    ("inference.precision", lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    (
        "inference.early_exit",
        lambda v: v is None or (_is_int(v) and v >= MIN_EARLY_EXIT),
        f"null (off, the paper) or an integer >= {MIN_EARLY_EXIT}",
    ),
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
    (
        "protocol",
        lambda v: v in PROTOCOLS,
        f"one of {', '.join(PROTOCOLS)} (README, 'The authors' protocol')",
    ),
    ("data.holdout_fraction", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("data.require_masks", lambda v: isinstance(v, bool), "true or false"),
    (
        "false_reject_rate",
        lambda v: v is None or (_is_number(v) and 0 <= v < 1),
        "null or a number in [0, 1)",
    ),
    ("thresholds.image", lambda v: v is None or _is_number(v), "null or a number"),
    ("thresholds.pixel", lambda v: v is None or _is_number(v), "null or a number"),
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
    _, calls = _lookup(params, "inference.num_steps")
    _, total = _lookup(params, "model.num_steps")
    if _is_int(calls) and _is_int(total) and calls > total - 2:
        problems.append(
            f"'inference.num_steps' is {calls} but the reverse process has only "
            f"model.num_steps - 2 = {total - 2} steps: use null or an integer <= {total - 2}"
        )
    present, layout = _lookup(params, "layout")
    if present and layout not in LAYOUTS:
        problems.append(f"'layout' is {layout!r} but must be one of {', '.join(LAYOUTS)}")
    if problems:
        raise ParameterError(
            "Invalid parameters (fix them in conf/ or in --params):\n  - " + "\n  - ".join(problems)
        )


_RUNTIME_NAME = re.compile(r"\$\{runtime_params:\s*([A-Za-z0-9_.]+)")


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a nested mapping, inner nodes included ("a", "a.b", ...)."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        name = f"{prefix}{key}"
        yield name
        yield from _dotted_keys(value, f"{name}.")


def _parameter_files(folder: Path) -> list[Path]:
    """Kedro's parameter files of one environment folder (parameters*.yml, any depth)."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in (".yml", ".yaml")
        and any(part.startswith("parameters") for part in path.relative_to(folder).parts)
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def known_parameter_keys(conf_source: Path, base_env: str = "base") -> set[str]:
    """The schema: every key path of conf/<base_env>'s parameter files, plus the runtime-only
    names that any conf file reads with ``${runtime_params:NAME}`` (data_root, ...)."""
    known: set[str] = set()
    for path in _parameter_files(Path(conf_source) / base_env):
        known.update(key for key in _dotted_keys(_read_yaml(path)) if not key.startswith("_"))
    for path in Path(conf_source).rglob("*.y*ml"):
        known.update(_RUNTIME_NAME.findall(path.read_text()))
    return known


def unknown_parameter_problems(sources: dict[str, dict[str, Any]], known: set[str]) -> list[str]:
    """One line per key of ``sources`` (a label -> nested parameters) outside ``known``:
    ``unknown parameter trainig.epochs: did you mean training.epochs? (given in --params)``."""
    problems = []
    for label, params in sources.items():
        for key in flatten(params):
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "no parameter has this name"
            problems.append(f"unknown parameter {key}: {hint} ({label})")
    return problems


def nest_params(flat_or_nested: dict[str, Any]) -> dict[str, Any]:
    """Runtime parameters as a nested mapping, whether given as "a.b" keys or nested."""
    nested: dict[str, Any] = {}
    for key, value in flat_or_nested.items():
        node = nested
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf].update(nest_params(value))
        else:
            node[leaf] = nest_params(value) if isinstance(value, dict) else value
    return nested


def check_parameter_keys(
    conf_source: Path,
    envs: list[str],
    runtime_params: dict[str, Any] | None,
    base_env: str = "base",
) -> None:
    """Refuse keys that no parameter of conf/<base_env> has, in the run's environment folders or
    in --params, before any work; each problem names the key and the closest valid key."""
    known = known_parameter_keys(conf_source, base_env)
    sources: dict[str, dict[str, Any]] = {}
    for env in envs:
        for path in _parameter_files(Path(conf_source) / env):
            sources[f"in {path}"] = _read_yaml(path)
    if runtime_params:
        sources["given in --params"] = nest_params(runtime_params)
    problems = unknown_parameter_problems(sources, known)
    if problems:
        raise ParameterError(
            "Unknown parameters (fix the spelling in conf/ or in --params):\n  - "
            + "\n  - ".join(problems)
        )
