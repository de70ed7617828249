import pytest
import torch

from transfusion_ad.core.schedule import TransparencySchedule


def _batch(batch: int = 3, size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    appearance = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = (torch.rand(batch, 1, size, size, generator=g) > 0.5).float()
    return x0, mask, appearance


def test_betas_are_linear_from_clean_to_opaque():
    schedule = TransparencySchedule(20)
    assert schedule.num_steps == 20
    assert schedule.betas.shape == (20,)
    assert schedule.betas.dtype == torch.float32
    assert schedule.betas[0] == 0.0
    assert schedule.betas[-1] == 1.0
    t = torch.arange(1, 20)
    torch.testing.assert_close(schedule.delta_beta(t).flatten(), torch.full((19,), 1 / 19))
    torch.testing.assert_close(schedule.beta(t).flatten(), t.float() / 19)
    assert schedule.beta(t).shape == (19, 1, 1, 1)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, "20"])
def test_invalid_number_of_steps(bad):
    with pytest.raises(ValueError, match="num_steps"):
        TransparencySchedule(bad)


def test_fully_opaque_anomaly_is_appearance_inside_and_clean_outside():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _batch()
    x_t = schedule.add_anomaly(x0, mask, appearance, torch.full((3,), 19))
    inside = mask.expand_as(x0).bool()
    assert torch.equal(x_t[inside], appearance[inside])
    assert torch.equal(x_t[~inside], x0[~inside])


def test_step_zero_is_the_clean_image():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _batch()
    assert torch.equal(
        schedule.add_anomaly(x0, mask, appearance, torch.zeros(3, dtype=torch.long)), x0
    )


def test_per_sample_steps_in_one_batch():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _batch()
    t = torch.tensor([3, 11, 19])
    batched = schedule.add_anomaly(x0, mask, appearance, t)
    for i in range(3):
        beta = t[i].item() / 19
        expected = (
            (1 - mask[i]) * x0[i] + (1 - beta) * mask[i] * x0[i] + beta * mask[i] * appearance[i]
        )
        torch.testing.assert_close(batched[i], expected)


@pytest.mark.parametrize("num_steps", [5, 20])
def test_ground_truth_step_maps_x_t_to_x_t_minus_one(num_steps):
    schedule = TransparencySchedule(num_steps)
    x0, mask, appearance = _batch(batch=num_steps - 1)
    t = torch.arange(1, num_steps)
    x_t = schedule.add_anomaly(x0, mask, appearance, t)
    anomaly_hat = schedule.beta(t) * mask * appearance
    previous = schedule.step(x_t, t, mask, anomaly_hat, x0)
    torch.testing.assert_close(
        previous, schedule.add_anomaly(x0, mask, appearance, t - 1), atol=1e-6, rtol=0
    )


def test_step_leaves_pixels_outside_the_mask_untouched():
    schedule = TransparencySchedule(20)
    x0, mask, appearance = _batch()
    t = torch.tensor([2, 9, 18])
    x_t = schedule.add_anomaly(x0, mask, appearance, t)
    garbage = torch.randn_like(x0) * 10
    previous = schedule.step(x_t, t, mask, garbage, -garbage)
    outside = ~mask.expand_as(x0).bool()
    assert torch.equal(previous[outside], x_t[outside])
    assert not torch.allclose(previous, x_t)
