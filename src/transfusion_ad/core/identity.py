"""The run identity: a short, stable hash of everything that changes the trained weights.

Two runs with the same identity train the same model, so one may resume the other's
checkpoints. Two runs with different identities never share checkpoints, a final model or
thresholds. The identity covers the recipe (image size, network, T, seed, optimisation,
synthesis, losses) and the training data (file names and sizes). It leaves out the settings
that may change between an interrupted run and its resumption (``RESUMABLE_TRAINING_KEYS``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Settings that do not change what a finished epoch computes: they may differ on resume.
# epochs extends or ends a run (StepLR is indexed by epoch, so epoch k is the same either way).
RESUMABLE_TRAINING_KEYS = frozenset(
    {
        "epochs",
        "checkpoint_every",
        "checkpoint_dir",
        "resume",
        "lock",
        "progress",
        "num_workers",
        "deterministic",
    }
)
# Training options added after the first checkpoints were written, left out of the identity at
# their paper values so that those recipes keep their identity (and their checkpoints).
_OMITTED_AT_DEFAULT = {
    "lr_schedule": "step",
    "warmup_steps": 0,
    "ema_decay": None,
    "t_sampling": "uniform",
}
# Synthesis settings that only shape the preview figure.
_PREVIEW_SYNTHESIS_KEYS = frozenset({"preview_count"})
IDENTITY_LENGTH = 12


def to_plain(value: Any) -> Any:
    """Tuples to lists, recursively, so configs compare and hash the same after a YAML, JSON or
    checkpoint round trip."""
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


def training_data_digest(paths: Iterable[str]) -> str:
    """sha256 of the training files' names (last two path parts, e.g. ``good/000.JPG``) and byte
    sizes on disk, in sorted order: the same images wherever the data set lives."""
    entries = sorted(
        (Path(path).parent.name + "/" + Path(path).name, Path(path).stat().st_size)
        for path in paths
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def identity_recipe(
    *,
    image_size: int,
    seed: int,
    model: Mapping[str, Any],
    training: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    losses: Mapping[str, Any],
    train_data: str,
) -> dict[str, Any]:
    """The flat recipe the identity hashes: ``image_size``, the model keys (``num_steps``,
    ``base_width``, ...), ``seed``, ``training.*``, ``synthesis.*``, ``losses.*`` and
    ``train_data``."""
    nested = {
        "image_size": image_size,
        **dict(model),
        "seed": seed,
        "training": _training_identity(training),
        "synthesis": {k: v for k, v in synthesis.items() if k not in _PREVIEW_SYNTHESIS_KEYS},
        "losses": dict(losses),
        "train_data": train_data,
    }
    return flatten(to_plain(nested))


def _training_identity(training: Mapping[str, Any]) -> dict[str, Any]:
    """The training keys that change the weights. With the cosine schedule the number of epochs
    sets the decay, so it is one of them."""
    per_run = RESUMABLE_TRAINING_KEYS - (
        {"epochs"} if training.get("lr_schedule") == "cosine" else set()
    )
    return {
        key: value
        for key, value in training.items()
        if key not in per_run
        and not (key in _OMITTED_AT_DEFAULT and value == _OMITTED_AT_DEFAULT[key])
    }


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def run_identity(recipe: Mapping[str, Any]) -> str:
    """The first 12 hex digits of the sha256 of the recipe as canonical JSON."""
    canonical = json.dumps(to_plain(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:IDENTITY_LENGTH]


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``key old -> new`` for every key whose value differs, in the order of ``after``."""
    changes = [
        f"{key} {_show(before.get(key))} -> {_show(value)}"
        for key, value in after.items()
        if before.get(key) != value
    ]
    changes += [
        f"{key} {_show(value)} -> (absent)" for key, value in before.items() if key not in after
    ]
    return changes


def _show(value: Any) -> str:
    """Numbers as they are, strings, lists and None as JSON (so "" and None stay visible)."""
    if isinstance(value, str | list | dict) or value is None:
        return json.dumps(value)
    return str(value)


def weights_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes: names one trained model
    exactly, so thresholds can prove which model they were calibrated for."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class ModelMismatchError(ValueError):
    """Thresholds used with a model they were not calibrated for."""


def model_binding(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What thresholds record of the model they were calibrated for: its weights digest (always
    computed from the weights) and its run identity (None for a model trained before identities)."""
    return {
        "weights_digest": weights_digest(payload["model_state"]),
        "identity": payload.get("identity"),
    }


def check_model_binding(
    payload: Mapping[str, Any],
    thresholds: Mapping[str, Any],
    model_version: str | None = None,
    thresholds_version: str | None = None,
) -> None:
    """Raise ModelMismatchError unless ``thresholds`` were calibrated for this very model."""
    model_name = f"model.pt version {model_version}" if model_version else "the model"
    thresholds_name = (
        f"thresholds.json version {thresholds_version}" if thresholds_version else "the thresholds"
    )
    fix = (
        "Calibrate thresholds for this model with `kedro run --pipelines=evaluation` (the same "
        "--env and --params as its training), or pin the model and thresholds of one train_eval "
        "run with `--load-versions model_checkpoint:<version>,thresholds:<version>`."
    )
    bound = thresholds.get("model")
    if not isinstance(bound, Mapping) or "weights_digest" not in bound:
        raise ModelMismatchError(
            f"{thresholds_name} record no model, so nothing shows that they belong to "
            f"{model_name} (they were calibrated by an older version of this project). {fix}"
        )
    actual = model_binding(payload)
    if bound["weights_digest"] != actual["weights_digest"]:
        raise ModelMismatchError(
            f"{thresholds_name} were calibrated for the model with weights "
            f"{bound['weights_digest']} (run identity {bound.get('identity')}), not for "
            f"{model_name} (weights {actual['weights_digest']}, run identity "
            f"{actual['identity']}). {fix}"
        )
