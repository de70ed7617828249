import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from transfusion_ad.core.losses import LossWeights, ssim, transfusion_loss
from transfusion_ad.core.recipes import SMALL_RECIPE, model_from_recipe
from transfusion_ad.core.schedule import TransparencySchedule


@pytest.fixture
def one_thread():
    """Training/sampling a model with two OpenMP threads on a shared 2-core machine can be 100x
    slower (threads spin waiting for each other); one thread keeps these tests fast everywhere."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _reference_ssim(pred: np.ndarray, target: np.ndarray, dynamic_range: float) -> float:
    """Independent SSIM: scipy 'same' convolution (zero fill) with the 11x11, sigma 1.5 Gaussian."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2

    def blur(a):
        return convolve2d(a, window, mode="same", boundary="fill", fillvalue=0)

    maps = []
    planes = zip(
        pred.reshape(-1, *pred.shape[2:]), target.reshape(-1, *target.shape[2:]), strict=True
    )
    for p, t in planes:
        mp, mt = blur(p), blur(t)
        vp, vt, cov = blur(p * p) - mp**2, blur(t * t) - mt**2, blur(p * t) - mp * mt
        maps.append(((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp**2 + mt**2 + c1) * (vp + vt + c2)))
    return float(np.mean(maps))


@pytest.mark.parametrize(
    ("low", "high", "dynamic_range"),
    [(-1.0, 1.0, 2.0), (0.0, 1.0, 1.0), (0.0, 255.0, 255.0), (-1.0, 255.0, 256.0)],
)
def test_ssim_matches_an_independent_implementation_and_its_dynamic_range(low, high, dynamic_range):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 20, 24, generator=g, dtype=torch.float64) * (high - low) + low
    pred = target + 0.1 * (high - low) * torch.randn(target.shape, generator=g, dtype=torch.float64)
    pred = pred.clamp(low, high)
    pred[0, 0, 0, 0], pred[0, 0, 0, 1] = low, high  # make the prediction span the range
    expected = _reference_ssim(pred.numpy(), target.numpy(), dynamic_range)
    assert ssim(pred, target).item() == pytest.approx(expected, abs=1e-8)


def test_ssim_of_an_image_with_itself_is_one_and_falls_with_noise():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert ssim(noisy, x).item() < 0.9


def test_ssim_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def _scene(batch: int = 4, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    schedule = TransparencySchedule(20)
    x0 = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    appearance = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[: batch // 2, :, 4:12, 3:10] = 1
    t = torch.randint(1, 20, (batch,), generator=g)
    x_t = schedule.add_anomaly(x0, mask, appearance, t)
    target = schedule.beta(t) * mask * appearance
    return schedule, x0, mask, target, t, x_t


def _loss(logits, anomaly, normal, scene, weights=None):
    schedule, x0, mask, target, t, x_t = scene
    return transfusion_loss(
        logits,
        anomaly,
        normal,
        x_t=x_t,
        x0=x0,
        mask=mask,
        anomaly_target=target,
        t=t,
        schedule=schedule,
        weights=weights,
    )


def test_perfect_predictions_give_zero_loss():
    scene = _scene()
    _, x0, mask, target, _, _ = scene
    losses = _loss(60.0 * (2 * mask - 1), target, x0, scene)
    assert set(losses) == {"total", "anomaly", "mask", "normal", "step"}
    for name, value in losses.items():
        assert value.item() == pytest.approx(0.0, abs=1e-6), name


def test_random_predictions_give_finite_positive_terms_that_sum_to_total():
    scene = _scene()
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 1, 16, 16, generator=g)
    anomaly = torch.randn(4, 3, 16, 16, generator=g)
    normal = torch.randn(4, 3, 16, 16, generator=g)
    losses = _loss(logits, anomaly, normal, scene)
    for value in losses.values():
        assert torch.isfinite(value) and value.item() > 0
    parts = losses["anomaly"] + losses["mask"] + losses["normal"] + losses["step"]
    torch.testing.assert_close(losses["total"], parts)


def test_mask_term_is_five_times_the_mean_focal_loss_plus_smooth_l1():
    scene = _scene()
    mask = scene[2]
    logits = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    losses = _loss(logits, scene[3], scene[1], scene)
    p = torch.sigmoid(logits)
    focal = torch.where(
        mask > 0, -0.25 * (1 - p) ** 2 * torch.log(p), -0.75 * p**2 * torch.log(1 - p)
    ).mean()
    diff = (p - mask).abs()
    smooth = torch.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    torch.testing.assert_close(losses["mask"], 5 * focal + smooth)


def test_weights_scale_their_terms():
    scene = _scene()
    g = torch.Generator().manual_seed(3)
    args = (
        torch.randn(4, 1, 16, 16, generator=g),
        torch.randn(4, 3, 16, 16, generator=g),
        torch.randn(4, 3, 16, 16, generator=g),
    )
    base = _loss(*args, scene)
    doubled = _loss(*args, scene, LossWeights(2.0, 10.0, 2.0, 2.0, 2.0, 2.0))
    for name in base:
        torch.testing.assert_close(doubled[name], 2 * base[name])
    no_step = _loss(*args, scene, LossWeights(step=0.0))
    assert no_step["step"].item() == 0.0


def test_step_loss_back_propagates_only_through_the_appearance_heads():
    scene = _scene()
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(4, 1, 16, 16, generator=g, requires_grad=True)
    anomaly = torch.randn(4, 3, 16, 16, generator=g, requires_grad=True)
    normal = torch.randn(4, 3, 16, 16, generator=g, requires_grad=True)
    only_step = LossWeights(0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    _loss(logits, anomaly, normal, scene, only_step)["total"].backward()
    assert logits.grad is None or not logits.grad.any()
    assert anomaly.grad.abs().sum() > 0
    assert normal.grad.abs().sum() > 0


def test_small_model_overfits_one_fixed_batch(one_thread):
    torch.manual_seed(0)
    model = model_from_recipe(SMALL_RECIPE)
    schedule, x0, mask, target, t, x_t = _scene(batch=2, size=32, seed=1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(15):
        logits, anomaly, normal = model(torch.cat((x_t, mask), dim=1), t)
        losses = transfusion_loss(
            logits,
            anomaly,
            normal,
            x_t=x_t,
            x0=x0,
            mask=mask,
            anomaly_target=target,
            t=t,
            schedule=schedule,
        )
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        history.append(losses["total"].item())
    assert min(history[-3:]) < 0.5 * history[0], history
