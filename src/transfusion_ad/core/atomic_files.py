"""Files that are either the old version or the new one, never half of each: the data go to a
temporary file beside the target, are fsync'ed and renamed over it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch


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
