"""One folder per run identity: the resume decision, the changed-recipe line and the lock."""

from __future__ import annotations

import json
import logging
import os

import pytest

from transfusion_ad.core import training_folder
from transfusion_ad.core.checkpoint import checkpoint_path
from transfusion_ad.core.training_folder import (
    NothingToResumeError,
    TrainingLockedError,
    hold_lock,
    prepare,
    resume_mode,
)


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger=training_folder.__name__)
    return caplog


def test_a_changed_recipe_is_announced_with_what_changed(tmp_path, log):
    prepare(tmp_path, "aaa", {"image_size": 32, "num_steps": 20}, "folder/cookies", "auto")
    folder = prepare(tmp_path, "bbb", {"image_size": 64, "num_steps": 6}, "folder/cookies", "auto")
    assert folder == tmp_path / "bbb" and folder.is_dir()
    assert (
        "recipe changed since the last run of folder/cookies: image_size 32 -> 64; "
        "num_steps 20 -> 6; training afresh"
    ) in log.messages
    record = json.loads((tmp_path / "last_run.json").read_text())
    assert record == {"identity": "bbb", "recipe": {"image_size": 64, "num_steps": 6}}


def test_going_back_to_a_recipe_with_checkpoints_says_it_resumes(tmp_path, log):
    prepare(tmp_path, "aaa", {"seed": 3}, "visa/fryum", "auto")
    checkpoint_path(tmp_path / "aaa", 1).write_bytes(b"")
    prepare(tmp_path, "bbb", {"seed": 4}, "visa/fryum", "auto")
    prepare(tmp_path, "aaa", {"seed": 3}, "visa/fryum", "auto")
    assert log.messages[-1] == (
        f"recipe changed since the last run of visa/fryum: seed 4 -> 3; resuming this recipe's "
        f"checkpoints in {tmp_path / 'aaa'}"
    )


def test_the_same_recipe_logs_no_change(tmp_path, log):
    prepare(tmp_path, "aaa", {"seed": 3}, "visa/fryum", "auto")
    prepare(tmp_path, "aaa", {"seed": 3}, "visa/fryum", "auto")
    assert not [m for m in log.messages if "recipe changed" in m]


def test_resume_must_fails_without_checkpoints_and_passes_with_one(tmp_path):
    with pytest.raises(NothingToResumeError, match="holds no checkpoint of this recipe"):
        prepare(tmp_path, "aaa", {}, "visa/fryum", "must")
    checkpoint_path(tmp_path / "aaa", 3).write_bytes(b"")
    assert prepare(tmp_path, "aaa", {}, "visa/fryum", "must") == tmp_path / "aaa"


@pytest.mark.parametrize(
    ("value", "mode"), [(True, "auto"), (False, "never"), ("auto", "auto"), ("must", "must")]
)
def test_resume_modes_and_the_old_booleans(value, mode):
    assert resume_mode(value) == mode


def test_an_unknown_resume_mode_is_refused():
    with pytest.raises(ValueError, match="auto, never, must"):
        resume_mode("yes")


def test_a_held_lock_fails_at_once_naming_the_file_and_the_pid(tmp_path):
    with hold_lock(tmp_path / "aaa"):
        with pytest.raises(TrainingLockedError) as error, hold_lock(tmp_path / "aaa"):
            pass
        assert f"{tmp_path / 'aaa' / '.lock'} is held by pid {os.getpid()}" in str(error.value)
        assert "training.lock=wait" in str(error.value)
        with hold_lock(tmp_path / "bbb"):  # another recipe of the category
            pass
    with hold_lock(tmp_path / "aaa"):  # released on exit
        pass


def test_checkpoints_from_before_identities_are_not_resumed_and_said_so(tmp_path, log):
    checkpoint_path(tmp_path, 5).write_bytes(b"")
    prepare(tmp_path, "aaa", {}, "visa/fryum", "auto")
    assert any("written before run identities" in m for m in log.messages)
    assert (tmp_path / "checkpoint-epoch00005.pt").exists()  # kept for the user to decide
