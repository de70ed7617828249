"""Choose the torch device once, from a config string, so the rest stays device-agnostic."""

from __future__ import annotations

import re

import torch

_ALLOWED = '"auto", "cpu", "cuda", "cuda:N" or "mps"'
_CUDA_PATTERN = re.compile(r"cuda(?::(\d+))?")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    "auto" picks CUDA, then MPS, then CPU. An explicit accelerator that is not present is an error
    here rather than a confusing failure deep inside training.
    """
    if not isinstance(name, str):
        raise ValueError(f"Device name must be a string ({_ALLOWED}), got {name!r}.")
    key = name.strip().lower()
    if key == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "mps":
        if not _mps_available():
            raise ValueError(
                'Device "mps" was requested but MPS is not available; use "auto" or "cpu".'
            )
        return torch.device("mps")
    match = _CUDA_PATTERN.fullmatch(key)
    if match is None:
        raise ValueError(f"Unknown device {name!r}; allowed: {_ALLOWED}.")
    if not torch.cuda.is_available():
        raise ValueError(
            f"Device {name!r} was requested but CUDA is not available; use 'auto' or 'cpu'."
        )
    index = match.group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"Device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible."
        )
    return torch.device(key)
