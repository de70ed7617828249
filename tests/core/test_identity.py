"""The run identity changes with everything that changes the weights, and only with that."""

from __future__ import annotations

import pytest
import torch

from transfusion_ad.core.identity import (
    ModelMismatchError,
    check_model_binding,
    describe_changes,
    identity_recipe,
    model_binding,
    run_identity,
    training_data_digest,
    weights_digest,
)

BASE = {
    "image_size": 32,
    "seed": 3,
    "model": {"base_width": 32, "channel_mults": [1, 2], "num_steps": 6},
    "training": {"lr": 3e-4, "batch_size": 8, "epochs": 2, "checkpoint_dir": "a", "resume": "auto"},
    "synthesis": {"texture_probability": 0.5, "preview_count": 8},
    "losses": {"normal_ssim_range": "unit"},
    "train_data": "digest",
}


def _identity(**changes) -> str:
    recipe = {**BASE, **changes}
    return run_identity(identity_recipe(**recipe))


@pytest.mark.parametrize(
    "changes",
    [
        {"image_size": 64},
        {"seed": 4},
        {"model": {**BASE["model"], "num_steps": 20}},
        {"model": {**BASE["model"], "channel_mults": (1, 2, 2)}},
        {"training": {**BASE["training"], "lr": 1e-5}},
        {"synthesis": {**BASE["synthesis"], "texture_probability": 0.4}},
        {"losses": {"normal_ssim_range": "signed"}},
        {"train_data": "other"},
    ],
)
def test_everything_that_changes_the_weights_changes_the_identity(changes):
    assert _identity(**changes) != _identity()


@pytest.mark.parametrize(
    "training",
    [
        {**BASE["training"], "epochs": 50},
        {**BASE["training"], "checkpoint_dir": "b", "resume": "must", "lock": "wait"},
        {**BASE["training"], "progress": False, "num_workers": 2, "checkpoint_every": 1},
    ],
)
def test_settings_that_may_change_on_resume_keep_the_identity(training):
    assert _identity(training=training) == _identity()


def test_the_preview_size_and_tuples_versus_lists_keep_the_identity():
    assert _identity(synthesis={**BASE["synthesis"], "preview_count": 2}) == _identity()
    assert _identity(model={**BASE["model"], "channel_mults": (1, 2)}) == _identity()


def test_identity_is_twelve_hex_digits_and_stable():
    identity = _identity()
    assert len(identity) == 12 and int(identity, 16) >= 0
    assert identity == _identity()


def test_changes_read_key_old_new_as_the_log_line_shows():
    before = identity_recipe(**BASE)
    after = identity_recipe(
        **{**BASE, "image_size": 64, "model": {**BASE["model"], "num_steps": 20}}
    )
    assert describe_changes(before, after) == ["image_size 32 -> 64", "num_steps 6 -> 20"]


def test_training_data_digest_uses_names_and_sizes_not_the_root(tmp_path):
    for root in ("a", "b"):
        (tmp_path / root / "good").mkdir(parents=True)
        (tmp_path / root / "good" / "1.png").write_bytes(b"xx")
    first = training_data_digest([str(tmp_path / "a" / "good" / "1.png")])
    assert first == training_data_digest([str(tmp_path / "b" / "good" / "1.png")])
    (tmp_path / "b" / "good" / "1.png").write_bytes(b"xxx")
    assert first != training_data_digest([str(tmp_path / "b" / "good" / "1.png")])


def test_weights_digest_names_the_weights_exactly():
    state = {"w": torch.zeros(2, 3), "b": torch.ones(3, dtype=torch.bfloat16)}
    same = {"b": torch.ones(3, dtype=torch.bfloat16), "w": torch.zeros(2, 3)}
    assert weights_digest(state) == weights_digest(same)
    nudged = {**state, "w": torch.zeros(2, 3).index_fill(1, torch.tensor([0]), 1e-7)}
    assert weights_digest(nudged) != weights_digest(state)
    assert weights_digest({**state, "w": torch.zeros(3, 2)}) != weights_digest(state)


def test_thresholds_of_another_model_are_refused_naming_both_versions():
    model = {"model_state": {"w": torch.zeros(2)}, "identity": "aaa"}
    other = {"model_state": {"w": torch.ones(2)}, "identity": "bbb"}
    thresholds = {"image": 0.5, "pixel": 0.5, "model": model_binding(model)}
    check_model_binding(model, thresholds)
    with pytest.raises(ModelMismatchError) as error:
        check_model_binding(other, thresholds, model_version="V2", thresholds_version="V1")
    message = str(error.value)
    assert "model.pt version V2" in message and "thresholds.json version V1" in message
    assert "run identity aaa" in message and "run identity bbb" in message
    assert "kedro run --pipelines=evaluation" in message and "--load-versions" in message


def test_thresholds_that_record_no_model_are_refused():
    model = {"model_state": {"w": torch.zeros(2)}}
    with pytest.raises(ModelMismatchError, match="record no model"):
        check_model_binding(model, {"image": 0.5, "pixel": 0.5})
