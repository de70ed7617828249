"""One checkpoint folder per run identity: the resume decision, the last-run record, the lock.

``<checkpoint_dir>/<identity>/`` holds the resumable checkpoints of one recipe.
``<checkpoint_dir>/last_run.json`` remembers the recipe of the category's last run, so that a
changed recipe is announced with what changed. A lock file per identity folder keeps two runs of
one recipe from writing (and rotating, and cleaning up) the same checkpoints; different recipes
of a category train side by side.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from transfusion_ad.core.atomic_files import atomic_write_text
from transfusion_ad.core.checkpoint import list_checkpoints
from transfusion_ad.core.identity import describe_changes

logger = logging.getLogger(__name__)

RESUME_MODES = ("auto", "never", "must")
LOCK_MODES = ("fail", "wait")
LAST_RUN_FILE = "last_run.json"
LOCK_FILE = ".lock"
_HOLDER_FILE = ".lock.holder"


class NothingToResumeError(RuntimeError):
    """``resume: must`` but the identity folder holds no checkpoint."""


class TrainingLockedError(RuntimeError):
    """Another process trains the same recipe of the same category right now."""


def resume_mode(value: Any) -> str:
    """auto, never or must; the booleans of older configurations mean auto (true), never (false)."""
    if value is True:
        return "auto"
    if value is False:
        return "never"
    if value not in RESUME_MODES:
        raise ValueError(
            f"training.resume is {value!r} but must be one of {', '.join(RESUME_MODES)}."
        )
    return value


def _read_last_run(root: Path) -> dict[str, Any] | None:
    path = root / LAST_RUN_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Ignoring unreadable %s (%s).", path, error)
        return None
    return record if isinstance(record, dict) and "identity" in record else None


def prepare(root: Path, identity: str, recipe: Mapping[str, Any], label: str, resume: str) -> Path:
    """The identity folder to train in; announces a changed recipe and records this run.

    Call it with the folder's lock held (``hold_lock``). Raises NothingToResumeError for
    ``resume="must"`` when the folder has no checkpoint.
    """
    folder = Path(root) / identity
    folder.mkdir(parents=True, exist_ok=True)
    has_checkpoints = bool(list_checkpoints(folder))
    if resume == "must" and not has_checkpoints:
        raise NothingToResumeError(
            f"training.resume is 'must' but {folder} holds no checkpoint of this recipe "
            f"(identity {identity}). Run with training.resume=auto to train afresh."
        )
    if list_checkpoints(Path(root)):
        logger.warning(
            "%s holds checkpoints written before run identities; they are not resumed (nothing "
            "shows which recipe made them). Delete them, or move them into %s if they were "
            "trained with this very recipe.",
            root,
            folder,
        )
    last = _read_last_run(Path(root))
    if last is not None and last["identity"] != identity:
        changes = describe_changes(last.get("recipe", {}), recipe)
        outcome = (
            f"resuming this recipe's checkpoints in {folder}"
            if has_checkpoints and resume != "never"
            else "training afresh"
        )
        logger.info(
            "recipe changed since the last run of %s: %s; %s", label, "; ".join(changes), outcome
        )
    record = {"identity": identity, "recipe": dict(recipe)}
    atomic_write_text(Path(root) / LAST_RUN_FILE, json.dumps(record, indent=1, sort_keys=True))
    return folder


@contextmanager
def hold_lock(folder: Path, mode: str = "fail") -> Iterator[None]:
    """Hold ``folder/.lock`` for the duration: fail at once naming the holder, or wait for it."""
    if mode not in LOCK_MODES:
        raise ValueError(f"training.lock is {mode!r} but must be one of {', '.join(LOCK_MODES)}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    holder = folder / _HOLDER_FILE
    try:
        lock.acquire(timeout=-1 if mode == "wait" else 0)
    except Timeout:
        raise TrainingLockedError(
            f"Another run trains this recipe now: {folder / LOCK_FILE} is held by pid "
            f"{_holder_pid(holder)}. Wait for it to finish, or set training.lock=wait to queue "
            "behind it; a different recipe of the category may train at the same time."
        ) from None
    try:
        holder.write_text(str(os.getpid()))
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _holder_pid(holder: Path) -> str:
    try:
        return holder.read_text().strip() or "unknown"
    except OSError:
        return "unknown"
