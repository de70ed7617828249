"""Training checkpoints on disk: written atomically, read back with corruption detection, and
rotated so that the previous good checkpoint survives a damaged last one.

A checkpoint is a model bundle (core.bundle) with a training state, read with
``torch.load(weights_only=True)``, so loading one never runs pickled code.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from transfusion_ad.core.atomic_files import atomic_save
from transfusion_ad.core.bundle import BundleFormatError, BundleVersionError, check_bundle

logger = logging.getLogger(__name__)

KEEP_LAST = 2
_NAME_PATTERN = re.compile(r"^checkpoint-epoch(\d+)\.pt$")
_TEMPORARY_PATTERN = re.compile(r"^\.checkpoint-epoch\d+\.pt\..+\.tmp$")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read back (truncated, not a checkpoint, ...)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"Checkpoint {self.path} is unreadable or corrupt ({reason}). Delete it to fall back "
            "to an older checkpoint, or start training afresh with resume=False."
        )


def checkpoint_path(directory: Path, epoch: int) -> Path:
    """The file name a checkpoint taken after ``epoch`` (1-based) gets inside ``directory``."""
    return Path(directory) / f"checkpoint-epoch{epoch:05d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Checkpoints in ``directory`` as (epoch, path), newest first; [] if the folder is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the trainer; tensors are mapped to ``map_location``.

    Raises FileNotFoundError if ``path`` does not exist and CorruptCheckpointError if it exists
    but is truncated, empty, not a torch file, not a bundle or a bundle without training state.
    A bundle of another format version raises core.bundle.BundleVersionError (it is not corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(path, "empty file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch reports truncation as RuntimeError, EOFError, ...
        raise CorruptCheckpointError(path, f"{type(error).__name__}: {error}") from error
    try:
        bundle = check_bundle(payload, source=str(path))
    except BundleVersionError:
        raise
    except BundleFormatError as error:
        raise CorruptCheckpointError(path, str(error)) from error
    if bundle["training_state"] is None:
        raise CorruptCheckpointError(path, "a model bundle without training state")
    return bundle


def save_rotating(payload: dict[str, Any], directory: Path, epoch: int) -> Path:
    """Save the checkpoint of ``epoch`` atomically and delete all but the newest KEEP_LAST ones."""
    path = checkpoint_path(directory, epoch)
    atomic_save(payload, path)
    for _, old in list_checkpoints(directory)[KEEP_LAST:]:
        old.unlink(missing_ok=True)
    return path


def remove_temporaries(directory: Path) -> int:
    """Delete half-written temporary files left by a process killed inside ``atomic_save``.

    Only safe while no other process writes checkpoints into ``directory`` (one training run
    per folder). Returns how many were removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    stale = [p for p in directory.iterdir() if _TEMPORARY_PATTERN.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("Removed %d half-written checkpoint file(s) from %s.", len(stale), directory)
    return len(stale)


def latest_good_checkpoint(
    directory: Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint in ``directory`` as (path, payload); None if there is none.

    A corrupt checkpoint is renamed to ``<name>.corrupt`` (kept for inspection, never picked up
    again) with a warning, and the next older one is tried. If checkpoints exist but none is
    readable, CorruptCheckpointError names the folder.
    """
    candidates = list_checkpoints(directory)
    for _, path in candidates:
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CorruptCheckpointError as error:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            logger.warning(
                "Checkpoint %s is corrupt (%s); moved it to %s and trying the previous one.",
                path,
                error.reason,
                aside.name,
            )
    if candidates:
        raise CorruptCheckpointError(
            Path(directory), "every checkpoint in this folder is corrupt (renamed to *.corrupt)"
        )
    return None
