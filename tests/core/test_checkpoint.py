"""Checkpoint files: atomic writes, corruption detection, rotation and fallback."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import torch

from transfusion_ad.core import atomic_files
from transfusion_ad.core import checkpoint as ckpt
from transfusion_ad.core.atomic_files import atomic_save
from transfusion_ad.core.bundle import FORMAT_VERSION, BundleVersionError
from transfusion_ad.core.checkpoint import (
    CorruptCheckpointError,
    checkpoint_path,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_temporaries,
    save_rotating,
)


def _payload(epoch: int) -> dict:
    """A bundle with a training state, as the trainer writes one after ``epoch``."""
    return {
        "format_version": FORMAT_VERSION,
        "model_state": {"weight": torch.full((4, 4), float(epoch))},
        "model_config": {"base_width": 32},
        "recipe": {"image_size": 32, "num_steps": 20, "base_width": 32},
        "train_config": {"epochs": 10},
        "epochs": epoch,
        "training_state": {
            "epoch": epoch,
            "optimizer_state": {},
            "scheduler_state": {},
            "rng_state": {"torch": torch.get_rng_state()},
            "history": {"results": [], "step_losses": [0.5] * epoch},
        },
    }


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_atomic_save_round_trip_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "checkpoint-epoch00001.pt"
    atomic_save(_payload(1), path)
    loaded = load_checkpoint(path)
    assert loaded["epochs"] == 1
    assert torch.equal(loaded["model_state"]["weight"], torch.full((4, 4), 1.0))
    assert _leftovers(path.parent) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = tmp_path / "checkpoint-epoch00001.pt"
        atomic_save(_payload(1), path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the team, not 0600


def test_failed_save_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint-epoch00001.pt"
    atomic_save(_payload(1), path)
    before = path.read_bytes()

    def crash_midway(payload: dict, stream) -> None:
        stream.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(atomic_files.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        atomic_save(_payload(2), path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "RuntimeError|EOFError|Unpickl"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not a torch file"), "Error"),
        (lambda p: torch.save([1, 2, 3], p), "holds a list, not a model bundle"),
        (lambda p: torch.save({"epoch": 3}, p), "not a model bundle"),
        (
            lambda p: torch.save({k: v for k, v in _payload(1).items() if k != "recipe"}, p),
            r"without \['recipe'\]",
        ),
        (lambda p: torch.save({**_payload(1), "training_state": None}, p), "without training"),
        (
            lambda p: torch.save({**_payload(1), "training_state": {"epoch": 1}}, p),
            "training state without",
        ),
    ],
    ids=[
        "truncated",
        "empty",
        "garbage",
        "list",
        "not-a-bundle",
        "no-recipe",
        "final-model-only",
        "partial-state",
    ],
)
def test_load_detects_damaged_files_and_names_them(tmp_path: Path, damage, reason: str) -> None:
    path = tmp_path / "checkpoint-epoch00001.pt"
    atomic_save(_payload(1), path)
    damage(path)
    with pytest.raises(CorruptCheckpointError, match=reason) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert info.value.path == path


def test_load_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_half_written_temporaries_of_a_killed_save_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = save_rotating(_payload(1), tmp_path, 1)
    unrelated = tmp_path / ".notes.tmp"
    unrelated.write_text("not ours")

    def killed(payload: dict, stream) -> None:
        stream.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # stands in for a kill: the cleanup below must not rely on it

    monkeypatch.setattr(atomic_files.os, "unlink", lambda path: None)  # as if it had died
    monkeypatch.setattr(atomic_files.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_payload(2), checkpoint_path(tmp_path, 2))
    monkeypatch.undo()
    assert len(_leftovers(tmp_path)) == 2  # ours and the unrelated one

    assert remove_temporaries(tmp_path) == 1
    assert _leftovers(tmp_path) == [unrelated.name]
    assert keep.exists()


def test_save_rotating_keeps_the_newest_two(tmp_path: Path) -> None:
    for epoch in (5, 10, 15):
        written = save_rotating(_payload(epoch), tmp_path, epoch)
        assert written == checkpoint_path(tmp_path, epoch)
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [15, 10]


def test_corrupt_newest_checkpoint_falls_back_to_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_rotating(_payload(1), tmp_path, 1)
    newest = save_rotating(_payload(2), tmp_path, 2)
    _truncate(newest)
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        path, payload = latest_good_checkpoint(tmp_path)
    assert path == checkpoint_path(tmp_path, 1)
    assert payload["epochs"] == 1
    assert newest.name in caplog.text and "corrupt" in caplog.text
    # Set aside, so neither the next resume nor the rotation picks it up again.
    assert not newest.exists()
    assert newest.with_name(newest.name + ".corrupt").exists()
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [1]


def test_all_checkpoints_corrupt_is_an_error(tmp_path: Path) -> None:
    for epoch in (1, 2):
        _truncate(save_rotating(_payload(epoch), tmp_path, epoch))
    with pytest.raises(CorruptCheckpointError, match="every checkpoint"):
        latest_good_checkpoint(tmp_path)


def test_no_checkpoint_means_none(tmp_path: Path) -> None:
    assert latest_good_checkpoint(tmp_path) is None
    assert latest_good_checkpoint(tmp_path / "absent") is None


def test_a_checkpoint_of_another_format_version_is_refused_not_set_aside(tmp_path: Path) -> None:
    path = save_rotating({**_payload(1), "format_version": FORMAT_VERSION + 1}, tmp_path, 1)
    with pytest.raises(BundleVersionError, match=f"format {FORMAT_VERSION + 1}.*newer"):
        latest_good_checkpoint(tmp_path)
    assert path.exists()  # a newer file is not corrupt: it stays where it is
