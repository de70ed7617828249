"""The training loop: the objective's wiring (spec §2.6, §3, §5), epochs, learning-rate schedule,
seeding, checkpoints, interruption/resume and non-finite losses, on a tiny model at 32 px."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from transfusion_ad.core import trainer as trainer_module
from transfusion_ad.core.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint
from transfusion_ad.core.losses import LossWeights
from transfusion_ad.core.objective import compute_training_loss
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer, random_rotation
from transfusion_ad.core.trainer import (
    EpochResult,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    seed_everything,
)
from transfusion_ad.core.unet import TransFusionUNet

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

SIZE = 32
LOSS_KEYS = {"total", "anomaly", "mask", "normal", "step"}


def _images(count: int, seed: int = 0) -> Tensor:
    """Smooth random images (B, 3, 32, 32) in [-1, 1]: upsampled 4×4 noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator) * 2 - 1
    return nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear")


def _dataset(count: int, seed: int = 0) -> TensorDataset:
    return TensorDataset(_images(count, seed), torch.ones(count, 1, SIZE, SIZE))


def _synthesizer(num_steps: int = 20) -> AnomalySynthesizer:
    textures = torch.randint(0, 256, (3, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    return AnomalySynthesizer(textures.to(torch.uint8), num_steps=num_steps)


def _model(init_seed: int = 0, base_width: int = 32) -> TransFusionUNet:
    seed_everything(init_seed)
    return TransFusionUNet(
        base_width=base_width, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,)
    )


def _trainer(checkpoint_dir: Path | None = None, model: nn.Module | None = None, **overrides):
    settings = {
        "epochs": 3,
        "batch_size": 2,
        "lr": 1e-3,
        "lr_step_epochs": 2,
        "lr_gamma": 0.5,
        "checkpoint_every": 1,
        "device": "cpu",
        "seed": 0,
        "progress": False,
    }
    settings.update(overrides)
    return Trainer(
        model if model is not None else _model(),
        TransparencySchedule(20),
        _synthesizer(),
        TrainConfig(**settings),
        checkpoint_dir,
    )


def _file_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


# --- the objective ---------------------------------------------------------------------------


class _Oracle(nn.Module):
    """Returns the ground truth the loss expects, computed independently of the trainer."""

    def __init__(self, mask: Tensor, anomaly: Tensor, normal: Tensor) -> None:
        super().__init__()
        self.mask, self.anomaly, self.normal = mask, anomaly, normal
        self.seen: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.seen.append((x.clone(), t.clone()))
        return 30.0 * (2.0 * self.mask - 1.0), self.anomaly, self.normal


@pytest.mark.parametrize("rotation_probability", [0.0, 1.0])
def test_training_loss_is_zero_for_the_ground_truth_predictions(rotation_probability: float):
    """Independently rebuild t, M, M_a, A, the rotation and β_t·M⊙A; an oracle returning exactly
    those targets must score (almost) zero on every term, proving the trainer's wiring."""
    schedule, synthesizer = TransparencySchedule(20), _synthesizer()
    x0, foreground = _images(6), torch.ones(6, 1, SIZE, SIZE)

    replay = torch.Generator().manual_seed(7)
    t = torch.randint(1, 20, (6,), generator=replay)
    synthetic = synthesizer(x0, foreground, t, generator=replay)
    noise = synthetic.mask * synthetic.appearance
    x_t = x0 + schedule.beta(t) * synthetic.mask * (synthetic.appearance - x0)
    x_t, x0_rot, noise, mask, simulated = random_rotation(
        [x_t, x0, noise, synthetic.mask, synthetic.simulated_mask],
        probability=rotation_probability,
        max_degrees=20.0,
        generator=replay,
    )
    assert mask.sum() > 0, "the replayed batch should contain a visible anomaly"
    oracle = _Oracle(mask, schedule.beta(t) * noise, x0_rot)

    losses = compute_training_loss(
        oracle,
        schedule,
        synthesizer,
        x0,
        foreground,
        generator=torch.Generator().manual_seed(7),
        rotation_probability=rotation_probability,
        rotation_degrees=20.0,
    )
    assert set(losses) == LOSS_KEYS
    for name, value in losses.items():
        assert value.item() < 1e-5, f"{name} = {value.item()}"
    (network_input, steps) = oracle.seen[0]
    assert torch.equal(steps, t)
    assert torch.equal(network_input[:, :3], x_t)
    assert torch.equal(network_input[:, 3:], simulated)  # M_a is the input, M the target


def test_training_steps_cover_one_to_t_minus_one_and_never_zero() -> None:
    schedule, synthesizer = TransparencySchedule(5), _synthesizer(num_steps=5)
    x0 = _images(64)
    zeros = torch.zeros_like(x0)
    oracle = _Oracle(torch.zeros(64, 1, SIZE, SIZE), zeros, x0)
    compute_training_loss(
        oracle,
        schedule,
        synthesizer,
        x0,
        torch.ones(64, 1, SIZE, SIZE),
        generator=torch.Generator().manual_seed(0),
        rotation_probability=0.0,
    )
    steps = oracle.seen[0][1]
    assert steps.dtype == torch.int64
    assert set(steps.tolist()) == {1, 2, 3, 4}


# --- configuration and inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 0),
        ("batch_size", 1),
        ("lr", 0.0),
        ("lr", "1e-5"),
        ("weight_decay", -0.1),
        ("lr_step_epochs", 0),
        ("lr_gamma", 1.5),
        ("checkpoint_every", 0),
        ("bf16", "yes"),
        ("seed", -1),
        ("seed", 2**32),
        ("num_workers", -1),
        ("epochs", 2.5),
        ("loss_weights", {"anomaly": 1.0, "bogus": 2.0}),
        ("normal_ssim_range", "Unit"),
    ],
)
def test_bad_config_values_are_rejected_with_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})


def test_loss_weights_accept_a_plain_dict() -> None:
    config = TrainConfig(loss_weights={"mask_focal": 2.0})
    assert config.loss_weights == LossWeights(mask_focal=2.0)


def test_bf16_autocasts_on_the_cpu_and_is_ignored_with_a_warning_elsewhere() -> None:
    assert _trainer(bf16=True).autocast_dtype == torch.bfloat16
    assert _trainer().autocast_dtype is None
    with pytest.warns(UserWarning, match="bf16=True is supported on CUDA and CPUs"):
        assert TrainConfig(bf16=True).autocast_dtype(torch.device("mps")) is None


def test_schedule_and_synthesizer_must_agree_on_num_steps() -> None:
    with pytest.raises(ValueError, match="num_steps=5"):
        Trainer(_model(), TransparencySchedule(20), _synthesizer(num_steps=5), TrainConfig())


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (_dataset(1), "at least 2"),
        (TensorDataset(_images(4)), "item 0"),
        (TensorDataset(_images(4), torch.ones(4, 1, 16, 16)), r"\(1, 16, 16\)"),
    ],
    ids=["one-image", "no-foreground", "foreground-size"],
)
def test_unusable_datasets_are_rejected_before_training(dataset, message: str) -> None:
    trainer = _trainer()
    before = [p.clone() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=message):
        trainer.fit(dataset)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


# --- the loop --------------------------------------------------------------------------------


def test_fit_reports_every_epoch_steps_the_lr_and_checkpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 3 images, batch 2: the lone third image would make a batch of one, so it is dropped.
    trainer = _trainer(tmp_path, checkpoint_every=2)
    reported: list[EpochResult] = []
    with caplog.at_level(logging.INFO, logger=trainer_module.__name__):
        history = trainer.fit(_dataset(3), callback=reported.append)

    assert [r.epoch for r in reported] == [1, 2, 3]
    assert reported == history.results
    assert [r.lr for r in reported] == pytest.approx([1e-3, 1e-3, 5e-4])
    assert all(set(r.losses) == LOSS_KEYS and r.seconds > 0 for r in reported)
    assert len(history.step_losses) == 3  # one step per epoch
    assert [r.losses["total"] for r in reported] == pytest.approx(history.step_losses)
    assert history.losses == [r.losses for r in reported]
    assert [line for line in caplog.messages if line.startswith("epoch ")][-1].startswith(
        "epoch 3/3  loss"
    )
    assert not trainer.model.training
    # Every 2nd epoch and the last one.
    assert [epoch for epoch, _ in list_checkpoints(tmp_path)] == [3, 2]


@pytest.mark.parametrize(("images", "batch_size", "steps"), [(5, 2, 2), (6, 4, 2), (5, 4, 1)])
def test_no_batch_of_one_image(images: int, batch_size: int, steps: int) -> None:
    history = _trainer(epochs=1, batch_size=batch_size).fit(_dataset(images))
    assert len(history.step_losses) == steps


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted 3-epoch run (2 steps per epoch) and its checkpoint folder."""
    directory = tmp_path_factory.mktemp("reference")
    trainer = _trainer(directory)
    history = trainer.fit(_dataset(4))
    return history, {k: v.clone() for k, v in trainer.model.state_dict().items()}, directory


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory):
    """The same command stopped after epoch 2: its history and checkpoint folder."""
    directory = tmp_path_factory.mktemp("interrupted")
    history = _trainer(directory, epochs=2).fit(_dataset(4))
    return history, directory


def _copy(directory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(directory, tmp_path / "checkpoints"))


def test_same_seed_gives_the_same_losses_and_another_seed_does_not(reference, interrupted):
    reference_history, _, _ = reference
    first_two_epochs = reference_history.step_losses[:4]
    assert interrupted[0].step_losses == first_two_epochs
    other_seed = _trainer(epochs=1, seed=1).fit(_dataset(4))
    assert other_seed.step_losses != first_two_epochs[:2]


def test_resumed_run_reproduces_the_uninterrupted_one(reference, interrupted, tmp_path: Path):
    reference_history, reference_state, _ = reference
    directory = _copy(interrupted[1], tmp_path)
    # Different initial weights: everything must come from the checkpoint.
    trainer = _trainer(directory, model=_model(init_seed=123))
    reported: list[EpochResult] = []
    history = trainer.fit(_dataset(4), callback=reported.append)

    assert [r.epoch for r in reported] == [3]  # only the missing epoch runs
    assert [r.epoch for r in history.results] == [1, 2, 3]
    assert [r.lr for r in history.results] == [r.lr for r in reference_history.results]
    assert history.step_losses == pytest.approx(reference_history.step_losses, abs=1e-6, rel=0)
    for ours, theirs in zip(history.losses, reference_history.losses, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-6, rel=0)
    for name, value in trainer.model.state_dict().items():
        assert torch.allclose(value, reference_state[name], atol=1e-6, rtol=0), name
    ours, theirs = (load_checkpoint(checkpoint_path(d, 3)) for d in (directory, reference[2]))
    ours, theirs = ours["training_state"], theirs["training_state"]
    assert ours["scheduler_state"] == theirs["scheduler_state"]
    assert ours["optimizer_state"]["param_groups"] == theirs["optimizer_state"]["param_groups"]


def test_checkpoint_holds_everything_needed_to_resume(reference) -> None:
    reference_history, reference_state, directory = reference
    assert [epoch for epoch, _ in list_checkpoints(directory)] == [3, 2]  # newest two kept
    state = load_checkpoint(checkpoint_path(directory, 3))
    assert state["epochs"] == state["training_state"]["epoch"] == 3
    assert TransFusionUNet(**state["model_config"]).config == _model().config
    assert all(torch.equal(state["model_state"][k], v) for k, v in reference_state.items())
    assert state["train_config"]["lr_step_epochs"] == 2
    resume = state["training_state"]
    assert resume["optimizer_state"]["state"], "AdamW moments must be saved"
    assert resume["scheduler_state"]["last_epoch"] == 3
    assert set(resume["rng_state"]) >= {"torch", "numpy", "python", "generator", "data_generator"}
    assert resume["history"]["step_losses"] == reference_history.step_losses


def test_corrupt_last_checkpoint_resumes_from_the_previous_one(
    reference, interrupted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _copy(interrupted[1], tmp_path)
    last = checkpoint_path(directory, 2)
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as by a full disk
    trainer = _trainer(directory)
    with caplog.at_level(logging.WARNING):
        history = trainer.fit(_dataset(4))

    assert last.name in caplog.text and "corrupt" in caplog.text
    assert [r.epoch for r in history.results] == [1, 2, 3]  # epoch 2 trained again
    assert history.step_losses == pytest.approx(reference[0].step_losses, abs=1e-6, rel=0)
    assert load_checkpoint(checkpoint_path(directory, 3))["epochs"] == 3


def test_finished_run_resumed_trains_nothing(interrupted, tmp_path: Path) -> None:
    history_before, source = interrupted
    directory = _copy(source, tmp_path)
    digests = _file_digests(directory)
    trainer = _trainer(directory, model=_model(init_seed=5), epochs=2)
    reported: list[EpochResult] = []
    history = trainer.fit(_dataset(4), callback=reported.append)
    assert reported == []
    assert history.step_losses == history_before.step_losses
    saved = load_checkpoint(checkpoint_path(directory, 2))["model_state"]
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items())
    assert not trainer.model.training
    assert _file_digests(directory) == digests


def test_resume_refuses_a_checkpoint_of_another_model(interrupted, tmp_path: Path) -> None:
    directory = _copy(interrupted[1], tmp_path)
    trainer = _trainer(directory, model=_model(base_width=64))
    with pytest.raises(ValueError, match="model_config"):
        trainer.fit(_dataset(4))


def test_resume_refuses_a_checkpoint_beyond_the_requested_epochs(interrupted, tmp_path: Path):
    directory = _copy(interrupted[1], tmp_path)
    with pytest.raises(ValueError, match="epoch 2, beyond epochs=1"):
        _trainer(directory, epochs=1).fit(_dataset(4))


def test_fresh_start_discards_old_checkpoints(interrupted, tmp_path: Path) -> None:
    directory = _copy(interrupted[1], tmp_path)
    history = _trainer(directory, epochs=1).fit(_dataset(4), resume=False)
    assert [r.epoch for r in history.results] == [1]
    assert [epoch for epoch, _ in list_checkpoints(directory)] == [1]
    saved = load_checkpoint(checkpoint_path(directory, 1))["training_state"]
    assert saved["history"]["step_losses"] == history.step_losses


def test_non_finite_loss_names_epoch_and_step_and_keeps_the_checkpoint(
    interrupted, tmp_path: Path
) -> None:
    directory = _copy(interrupted[1], tmp_path)
    digests = _file_digests(directory)
    images = _images(4)
    images[:] = float("nan")
    trainer = _trainer(directory)
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, step 1/2") as info:
        trainer.fit(TensorDataset(images, torch.ones(4, 1, SIZE, SIZE)))

    assert info.value.epoch == 3 and info.value.step == 1
    assert info.value.checkpoint == checkpoint_path(directory, 2)
    assert str(info.value.checkpoint) in str(info.value)
    assert _file_digests(directory) == digests
    # Raised before the optimiser step: the parameters are still the checkpoint's (only the
    # BatchNorm running statistics saw the bad batch).
    saved = load_checkpoint(checkpoint_path(directory, 2))["model_state"]
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.named_parameters())


def test_deterministic_training_turns_on_deterministic_algorithms(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        history = _trainer(epochs=1, deterministic=True).fit(_dataset(4))
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    # On the CPU the run is the same bits either way.
    assert history.step_losses == _trainer(epochs=1).fit(_dataset(4)).step_losses
