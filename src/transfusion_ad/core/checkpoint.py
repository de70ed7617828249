"""Training checkpoints on disk: written atomically, read back with corruption detection, and
rotated so that the previous good checkpoint survives a damaged last one.

A checkpoint is a plain dict saved with ``torch.save`` that ``torch.load(weights_only=True)`` can
read (tensors, numbers, strings, lists, dicts only), so loading one never runs pickled code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from transfusion_ad.core.unet import TransFusionUNet

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "transfusion_ad.checkpoint/1"
REQUIRED_KEYS = frozenset(
    {
        "format",
        "epoch",
        "model_state",
        "model_config",
        "optimizer_state",
        "scheduler_state",
        "rng_state",
        "train_config",
        "history",
    }
)
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


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` with torch.save so that ``path`` is always either the old file or the
    new one (see ``_atomic_write``)."""
    _atomic_write(Path(path), lambda stream: torch.save(payload, stream))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` so that ``path`` is always either the old file or the new one."""
    _atomic_write(Path(path), lambda stream: stream.write(text.encode()))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """The data go to a temporary file in the same folder (same file system, so the final
    ``os.replace`` is atomic), are flushed and fsync'ed, and only then renamed over ``path``.
    A failure at any point leaves ``path`` untouched and removes the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened exclusively ("x"), not mkstemp, so the file gets the usual umask
    # permissions instead of 0600.
    tmp_name = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp_name, "xb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable where the OS allows opening a directory (POSIX)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the trainer; tensors are mapped to ``map_location``.

    Raises FileNotFoundError if ``path`` does not exist and CorruptCheckpointError if it exists
    but is truncated, empty, not a torch file, or lacks the keys a training checkpoint has.
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
    if not isinstance(payload, dict):
        raise CorruptCheckpointError(path, f"holds a {type(payload).__name__}, not a dict")
    missing = sorted(REQUIRED_KEYS - payload.keys())
    if missing:
        raise CorruptCheckpointError(path, f"missing keys {missing}")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(
            path, f"format {payload['format']!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    return payload


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


def model_from_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> TransFusionUNet:
    """Rebuild the trained network of a checkpoint, weights loaded, in eval mode."""
    payload = load_checkpoint(path, map_location=map_location)
    model = TransFusionUNet(**payload["model_config"])
    model.load_state_dict(payload["model_state"])
    return model.to(map_location).eval()
