"""The model bundle: the one file format for a trained TransFusion network, from a resumable
training checkpoint to the file a line computer loads.

A bundle is a plain dict (tensors, numbers, strings, lists, dicts) so that
``torch.load(weights_only=True)`` reads it without unpickling code:

- ``format_version`` (int): the layout below; this code reads FORMAT_VERSION only.
- ``model_state``, ``model_config``: the network's weights and constructor arguments.
- ``recipe``: what the network was trained at (``image_size``, ``num_steps`` and the model keys).
- ``train_config``, ``epochs``: the training settings and how many epochs made the weights.
- ``identity``, ``identity_recipe``: the run identity and the flat recipe it hashes (None for a
  model trained before run identities).
- ``thresholds``: None until calibrated; then the calibration (``image``, ``pixel``, the
  ``scoring`` they were computed with and the ``model`` binding of core.identity).
- ``scoring``: optional, the scoring a model is meant to be used with before any calibration
  (an imported model of the authors carries theirs); None for a model trained here.
- ``versions``: the transfusion_ad and torch versions that wrote it.
- ``training_state``: only in resumable checkpoints: ``epoch``, optimiser, scheduler and RNG
  states and the loss history.

Files written by the code before bundles (a ``model.pt`` without ``format_version``, or a
training checkpoint with ``format: transfusion_ad.checkpoint/1``) are read with a FutureWarning
and upgraded in memory; any other version is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from transfusion_ad import __version__
from transfusion_ad.core.atomic_files import atomic_save
from transfusion_ad.core.identity import check_model_binding, to_plain
from transfusion_ad.core.unet import TransFusionUNet

FORMAT_VERSION = 1
_LEGACY_CHECKPOINT_FORMAT = "transfusion_ad.checkpoint/1"
_REQUIRED = ("model_state", "model_config", "recipe", "train_config", "epochs")
TRAINING_STATE_KEYS = frozenset(
    {"epoch", "optimizer_state", "scheduler_state", "rng_state", "history"}
)


class BundleFormatError(ValueError):
    """A file or payload that is not a model bundle this code can read."""


class BundleVersionError(BundleFormatError):
    """A model bundle of a format version that this code does not read."""


def current_versions() -> dict[str, str]:
    """The versions a new bundle records."""
    return {"transfusion_ad": __version__, "torch": str(torch.__version__)}


def make_bundle(
    network: nn.Module,
    *,
    recipe: Mapping[str, Any],
    train_config: Mapping[str, Any],
    epochs: int,
    identity: str | None = None,
    identity_recipe: Mapping[str, Any] | None = None,
    training_state: Mapping[str, Any] | None = None,
    scoring: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle of ``network`` (weights copied to the CPU), without thresholds."""
    return {
        "format_version": FORMAT_VERSION,
        "model_state": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "model_config": to_plain(dict(network.config)),
        "recipe": to_plain(dict(recipe)),
        "train_config": to_plain(dict(train_config)),
        "epochs": int(epochs),
        "identity": identity,
        "identity_recipe": to_plain(dict(identity_recipe)) if identity_recipe else None,
        "thresholds": None,
        "scoring": dict(scoring) if scoring is not None else None,
        "versions": current_versions(),
        "training_state": dict(training_state) if training_state is not None else None,
    }


def with_thresholds(bundle: Mapping[str, Any], thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The deployable bundle: the model with the thresholds calibrated for it (refused, as
    core.identity.check_model_binding does, when they were calibrated for another model) and
    without training state."""
    check_model_binding(bundle, thresholds)
    return {**bundle, "thresholds": to_plain(dict(thresholds)), "training_state": None}


def save_bundle(bundle: Mapping[str, Any], path: str | Path) -> Path:
    """Check ``bundle`` and write it atomically to ``path``."""
    payload = check_bundle(dict(bundle), source="the bundle to save")
    atomic_save(payload, Path(path))
    return Path(path)


def load_bundle(
    source: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """A bundle from a file (read with ``weights_only=True``) or from an in-memory payload,
    checked and, for files of the code before bundles, upgraded with a FutureWarning."""
    if isinstance(source, Mapping):
        return check_bundle(dict(source), source="the payload")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Model bundle {path} does not exist.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch reports damage as RuntimeError, EOFError, Unpickling...
        raise BundleFormatError(
            f"{path} is not a readable model bundle ({type(error).__name__}: {error}); it is "
            "truncated, corrupt or not a file of this project."
        ) from error
    return check_bundle(payload, source=str(path))


def check_bundle(payload: Any, source: str) -> dict[str, Any]:
    """``payload`` as a current bundle; ``source`` names it in the errors."""
    if not isinstance(payload, dict):
        raise BundleFormatError(
            f"{source} holds a {type(payload).__name__}, not a model bundle (a dict)."
        )
    if "format_version" not in payload:
        payload = _upgrade_legacy(payload, source)
    found = payload["format_version"]
    if found != FORMAT_VERSION:
        newer = isinstance(found, int) and found > FORMAT_VERSION
        remedy = (
            "it was written by a newer transfusion_ad: upgrade this installation"
            if newer
            else "retrain the model, or load it with the transfusion_ad version that wrote it "
            "and save it again"
        )
        raise BundleVersionError(
            f"{source} is model bundle format {found!r}, this code reads format "
            f"{FORMAT_VERSION} only; {remedy}."
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise BundleFormatError(f"{source} is a model bundle without {missing}.")
    state = payload.get("training_state")
    if state is not None and not set(state) >= TRAINING_STATE_KEYS:
        raise BundleFormatError(
            f"{source} has a training state without {sorted(TRAINING_STATE_KEYS - set(state))}."
        )
    for key, default in (
        ("identity", None),
        ("identity_recipe", None),
        ("thresholds", None),
        ("scoring", None),
    ):
        payload.setdefault(key, default)
    payload.setdefault("training_state", None)
    payload.setdefault("versions", {})
    return payload


def _upgrade_legacy(payload: dict[str, Any], source: str) -> dict[str, Any]:
    """A model.pt or training checkpoint written before bundles, as format 1."""
    if payload.get("format") == _LEGACY_CHECKPOINT_FORMAT:
        metadata = payload.get("metadata") or {}
        if "recipe" not in metadata:
            raise BundleFormatError(
                f"{source} is a training checkpoint from before model bundles without a recipe; "
                "it cannot be resumed: train afresh (training.resume: never)."
            )
        upgraded = {
            "model_state": payload["model_state"],
            "model_config": payload["model_config"],
            "recipe": metadata["recipe"],
            "train_config": payload["train_config"],
            "epochs": payload["epoch"],
            "identity": metadata.get("identity"),
            "training_state": {key: payload[key] for key in TRAINING_STATE_KEYS},
            "versions": {"torch": payload.get("torch_version", "unknown")},
        }
    elif all(key in payload for key in _REQUIRED):
        upgraded = {**payload, "versions": {}}
    else:
        raise BundleFormatError(
            f"{source} is not a model bundle: it has no format_version and not the keys of a "
            f"model file of this project (found {sorted(payload)[:8]})."
        )
    warnings.warn(
        f"{source} was written before model bundles (format {FORMAT_VERSION}); it is read as "
        "one. Save it again with transfusion_ad.core.bundle.save_bundle, or retrain, before "
        "this reading is removed.",
        FutureWarning,
        stacklevel=4,
    )
    return {**upgraded, "format_version": FORMAT_VERSION}


def build_network(bundle: Mapping[str, Any], device: torch.device | str = "cpu") -> TransFusionUNet:
    """The bundle's network with its weights, on ``device``, in eval mode. On the CPU it is put
    in channels_last (same values; oneDNN convolutions run faster on NHWC)."""
    device = torch.device(device)
    network = TransFusionUNet(**bundle["model_config"])
    network.load_state_dict(bundle["model_state"])
    if device.type == "cpu":
        network = network.to(memory_format=torch.channels_last)
    return network.to(device).eval()


def check_recipe(bundle: Mapping[str, Any], image_size: int, model: Mapping[str, Any]) -> None:
    """Refuse a model trained with another recipe than the current parameters, naming both."""
    trained = bundle["recipe"]
    current = {"image_size": image_size, **{k: to_plain(v) for k, v in model.items()}}
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
