"""The model bundle: one versioned format, read with weights_only, refused when foreign."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from transfusion_ad import __version__
from transfusion_ad.core.bundle import (
    FORMAT_VERSION,
    BundleFormatError,
    BundleVersionError,
    build_network,
    load_bundle,
    make_bundle,
    save_bundle,
    with_thresholds,
)
from transfusion_ad.core.identity import ModelMismatchError, model_binding
from transfusion_ad.core.unet import TransFusionUNet

RECIPE = {"image_size": 32, "num_steps": 6, "base_width": 32}


def _network(seed: int = 0) -> TransFusionUNet:
    torch.manual_seed(seed)
    return TransFusionUNet(base_width=32, channel_mults=(1,), num_res_blocks=1, attention_levels=())


def _bundle(seed: int = 0) -> dict:
    return make_bundle(
        _network(seed),
        recipe=RECIPE,
        train_config={"epochs": 2, "lr": 3e-4},
        epochs=2,
        identity="abc123",
        identity_recipe={"seed": 3},
    )


def test_a_saved_bundle_rebuilds_the_same_network(tmp_path: Path) -> None:
    path = save_bundle(_bundle(), tmp_path / "model.pt")
    torch.load(path, weights_only=True)  # nothing in it needs unpickling
    bundle = load_bundle(path)
    assert bundle["format_version"] == FORMAT_VERSION
    assert bundle["versions"] == {"transfusion_ad": __version__, "torch": str(torch.__version__)}
    assert (bundle["identity"], bundle["recipe"], bundle["thresholds"]) == ("abc123", RECIPE, None)
    rebuilt, original = build_network(bundle), _network().eval()
    assert not rebuilt.training
    x, t = torch.rand(2, 4, 32, 32), torch.tensor([1, 4])
    for ours, theirs in zip(rebuilt(x, t), original(x, t), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)  # channels_last sums differ


@pytest.mark.parametrize(
    ("version", "advice"), [(FORMAT_VERSION + 1, "newer"), (0, "retrain"), ("1", "retrain")]
)
def test_other_format_versions_are_refused_naming_the_file(
    tmp_path: Path, version, advice: str
) -> None:
    path = tmp_path / "model.pt"
    torch.save({**_bundle(), "format_version": version}, path)
    with pytest.raises(BundleVersionError, match=advice) as info:
        load_bundle(path)
    assert str(path) in str(info.value) and f"reads format {FORMAT_VERSION}" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file", "not a readable model bundle"),
        ([1, 2], "holds a list"),
        ({"weights": 1}, "not the keys of a model file"),
    ],
)
def test_files_that_are_no_bundle_are_refused(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(BundleFormatError, match=message):
        load_bundle(path)


def test_a_model_file_from_before_bundles_loads_with_a_deprecation_warning(tmp_path: Path) -> None:
    current = _bundle()
    legacy = {key: current[key] for key in ("model_state", "model_config", "recipe")}
    legacy |= {"train_config": {}, "epochs": 2, "identity": "abc123"}
    path = tmp_path / "model.pt"
    torch.save(legacy, path)
    with pytest.warns(FutureWarning, match="written before model bundles"):
        bundle = load_bundle(path)
    assert bundle["format_version"] == FORMAT_VERSION and bundle["identity"] == "abc123"
    assert bundle["thresholds"] is None and bundle["training_state"] is None


def test_a_training_checkpoint_from_before_bundles_keeps_its_training_state(
    tmp_path: Path,
) -> None:
    current = _bundle()
    state = {"epoch": 2, "optimizer_state": {}, "scheduler_state": {}, "rng_state": {}}
    legacy = {
        "format": "transfusion_ad.checkpoint/1",
        "model_state": current["model_state"],
        "model_config": current["model_config"],
        "train_config": {"epochs": 2},
        "metadata": {"recipe": RECIPE, "identity": "abc123"},
        "history": {"results": [], "step_losses": [0.1]},
        **state,
    }
    with pytest.warns(FutureWarning):
        bundle = load_bundle(legacy)
    assert bundle["epochs"] == 2 and bundle["recipe"] == RECIPE
    assert bundle["training_state"]["history"] == {"results": [], "step_losses": [0.1]}


def test_a_current_bundle_loads_without_warning(tmp_path: Path) -> None:
    path = save_bundle(_bundle(), tmp_path / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(path)


def test_thresholds_join_only_the_model_they_were_calibrated_for() -> None:
    model, other = _bundle(0), _bundle(1)
    thresholds = {"image": 0.4, "pixel": 0.5, "model": model_binding(model)}
    deployable = with_thresholds({**model, "training_state": {"epoch": 2}}, thresholds)
    assert deployable["thresholds"] == thresholds and deployable["training_state"] is None
    with pytest.raises(ModelMismatchError, match="calibrated for the model with weights"):
        with_thresholds(other, thresholds)
