"""The short-run options: the cosine schedule with warm-up, the weight average (EMA) and the
t-sampling forms; each off by default, resumable, and part of the run identity when on."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from transfusion_ad.core.checkpoint import checkpoint_path, load_checkpoint
from transfusion_ad.core.identity import identity_recipe, run_identity
from transfusion_ad.core.objective import sample_steps
from transfusion_ad.core.optimisation import WeightAverage, make_scheduler
from transfusion_ad.core.resume import seed_everything
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer
from transfusion_ad.core.train_config import TrainConfig
from transfusion_ad.core.trainer import Trainer
from transfusion_ad.core.unet import TransFusionUNet

SIZE = 32


def _dataset(count: int = 4) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(count, 3, 4, 4, generator=generator) * 2 - 1
    images = nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear")
    return TensorDataset(images, torch.ones(count, 1, SIZE, SIZE))


def _trainer(checkpoint_dir: Path | None = None, init_seed: int = 0, **overrides) -> Trainer:
    settings = {
        "epochs": 3,
        "batch_size": 2,
        "lr": 1e-3,
        "checkpoint_every": 1,
        "device": "cpu",
        "seed": 0,
        "progress": False,
        "lr_schedule": "cosine",
        "warmup_steps": 2,
        "ema_decay": 0.9,
        "t_sampling": "opaque",
    }
    settings.update(overrides)
    seed_everything(init_seed)
    model = TransFusionUNet(
        base_width=32, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,)
    )
    textures = torch.randint(0, 256, (3, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    synthesizer = AnomalySynthesizer(textures.to(torch.uint8), num_steps=20)
    return Trainer(
        model, TransparencySchedule(20), synthesizer, TrainConfig(**settings), checkpoint_dir
    )


# --- the schedule -----------------------------------------------------------------------------


def _lrs(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    scheduler, per_step = make_scheduler(optimizer, config, steps_per_epoch)
    assert per_step
    seen = []
    for _ in range(config.epochs * steps_per_epoch):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_cosine_warms_up_linearly_then_decays_to_zero_at_the_last_step() -> None:
    config = TrainConfig(epochs=2, lr=1.0, lr_schedule="cosine", warmup_steps=4)
    lrs = _lrs(config, steps_per_epoch=10)  # 20 steps
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # after the warm-up: a half cosine over the 16 remaining steps
    expected = [0.5 * (1 + math.cos(math.pi * k / 16)) for k in range(16)]
    assert lrs[4:] == pytest.approx(expected)
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))


def test_the_paper_schedule_stays_step_lr_stepped_per_epoch() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler, per_step = make_scheduler(optimizer, TrainConfig(), steps_per_epoch=10)
    assert not per_step
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert (scheduler.step_size, scheduler.gamma) == (800, 0.1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"warmup_steps": 5}, "needs lr_schedule 'cosine'"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of step, cosine"),
        ({"ema_decay": 1.0}, "ema_decay must be null or a number in (0, 1)"),
        ({"t_sampling": "late"}, "t_sampling must be one of uniform, opaque, transparent"),
    ],
)
def test_bad_short_run_options_are_refused_naming_the_key(overrides, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**overrides)


# --- the weight average -----------------------------------------------------------------------


def test_weight_average_follows_the_warmed_up_decay() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.99)
    expected = 0.0
    for update in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(update))
        average.update(model)
        decay = min(0.99, (1 + update) / (10 + update))
        expected = decay * expected + (1 - decay) * update
    assert average.shadow["weight"].item() == pytest.approx(expected)
    average.copy_to(model)
    assert model.weight.item() == pytest.approx(expected)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted 3-epoch run with every short-run option on, and its checkpoints."""
    directory = tmp_path_factory.mktemp("reference")
    trainer = _trainer(directory)
    history = trainer.fit(_dataset())
    return history, {k: v.clone() for k, v in trainer.model.state_dict().items()}, directory


def test_the_fitted_model_is_the_average_and_checkpoints_hold_both(reference) -> None:
    _, final_state, directory = reference
    checkpoint = load_checkpoint(checkpoint_path(directory, 3))
    shadow = checkpoint["training_state"]["ema_state"]["shadow"]
    online = checkpoint["model_state"]
    assert checkpoint["training_state"]["ema_state"]["updates"] == 6  # 3 epochs x 2 steps
    for name, value in final_state.items():  # integer buffers (BatchNorm counts) are not averaged
        assert torch.equal(value, shadow[name] if name in shadow else online[name]), name
    assert set(shadow) == {name for name, value in final_state.items() if value.is_floating_point()}
    assert any(not torch.equal(online[name], shadow[name]) for name in shadow)


def test_resumed_cosine_ema_run_reproduces_the_uninterrupted_one(reference, tmp_path: Path):
    reference_history, reference_state, reference_dir = reference
    directory = tmp_path / "checkpoints"
    shutil.copytree(reference_dir, directory)
    checkpoint_path(directory, 3).unlink()  # as if stopped after epoch 2
    trainer = _trainer(directory, init_seed=123)  # other initial weights: all from the checkpoint
    history = trainer.fit(_dataset())
    assert [r.lr for r in history.results] == [r.lr for r in reference_history.results]
    assert history.step_losses == pytest.approx(reference_history.step_losses, abs=1e-6, rel=0)
    for name, value in trainer.model.state_dict().items():
        assert torch.allclose(value, reference_state[name], atol=1e-6, rtol=0), name


def test_a_cosine_run_does_not_resume_with_another_length(reference, tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    shutil.copytree(reference[2], directory)
    with pytest.raises(ValueError, match="cosine schedule over 3 epochs, not epochs=5"):
        _trainer(directory, epochs=5).fit(_dataset())


# --- t sampling -------------------------------------------------------------------------------


def _draws(form: str, count: int = 20000) -> Tensor:
    return sample_steps(20, count, form, generator=torch.Generator().manual_seed(0))


def test_uniform_t_is_the_paper_draw_and_the_other_forms_lean_as_named() -> None:
    generator = torch.Generator().manual_seed(0)
    expected = torch.randint(1, 20, (64,), generator=generator, dtype=torch.int64)
    assert torch.equal(sample_steps(20, 64, generator=torch.Generator().manual_seed(0)), expected)
    for form in ("uniform", "opaque", "transparent"):
        draws = _draws(form)
        assert int(draws.min()) == 1 and int(draws.max()) == 19, form
    # p(t) ~ t over 1..19: mean sum(t^2)/sum(t) = 13; p(t) ~ 20 - t: mean 7; uniform: 10
    assert _draws("uniform").float().mean().item() == pytest.approx(10.0, abs=0.15)
    assert _draws("opaque").float().mean().item() == pytest.approx(13.0, abs=0.15)
    assert _draws("transparent").float().mean().item() == pytest.approx(7.0, abs=0.15)


# --- identity ---------------------------------------------------------------------------------


def _identity(**training) -> str:
    base = {"epochs": 60, "batch_size": 8, "lr": 3e-4}
    flat = identity_recipe(
        image_size=64,
        seed=3,
        model={"base_width": 32},
        training={**base, **training},
        synthesis={},
        losses={},
        train_data="d",
    )
    return run_identity(flat)


def test_options_at_their_paper_values_leave_the_identity_unchanged() -> None:
    paper_values = {
        "lr_schedule": "step",
        "warmup_steps": 0,
        "ema_decay": None,
        "t_sampling": "uniform",
    }
    assert _identity(**paper_values) == _identity()
    assert _identity(epochs=30) == _identity()  # step schedule: the length may change on resume
    assert _identity(ema_decay=0.995) != _identity()
    assert _identity(t_sampling="opaque") != _identity()
    cosine = _identity(lr_schedule="cosine", warmup_steps=50)
    assert cosine != _identity()
    assert _identity(lr_schedule="cosine", warmup_steps=50, epochs=30) != cosine
