"""Synthetic anomalies (spec §2): Perlin noise, masks and their regimes, appearance, rotation."""

from __future__ import annotations

import pytest
import torch

from transfusion_ad.core import synthesis
from transfusion_ad.core.synthesis import (
    AnomalySynthesizer,
    SynthesisConfig,
    perlin_noise,
    random_rotation,
)

SIZE = 32
T = 20


def make_batch(batch: int = 8, size: int = SIZE, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    foreground = torch.ones(batch, 1, size, size)
    t = torch.randint(1, T - 1, (batch,), generator=g)
    return x0, foreground, t


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def subset(inner: torch.Tensor, outer: torch.Tensor) -> torch.Tensor:
    """Per sample: is every pixel set in ``inner`` also set in ``outer``? (B,) bool."""
    return ((inner > 0) & (outer == 0)).flatten(1).sum(dim=1) == 0


# --- Perlin noise -----------------------------------------------------------------------------


def test_perlin_is_reproducible_and_seed_dependent():
    first = perlin_noise(4, 64, 64, generator=seeded(0))
    assert first.shape == (4, 1, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, perlin_noise(4, 64, 64, generator=seeded(0)))
    assert not torch.equal(first, perlin_noise(4, 64, 64, generator=seeded(1)))


def test_perlin_is_zero_on_the_lattice_and_bounded_by_one():
    noise = perlin_noise(64, 64, 96, generator=seeded(2))
    assert torch.all(noise[:, 0, 0, 0] == 0)  # pixel (0, 0) is a lattice point for every scale
    # 2-D gradient noise with unit gradients lies within ±√½, i.e. ±1 after the ×√2.
    assert noise.abs().max() <= 1.0 + 1e-5
    assert noise.abs().max() > 0.5  # and it does cross the 0.5 anomaly threshold


def test_perlin_scale_sets_the_lattice_frequency():
    """Sign changes along a row grow with the lattice: scale 0 has 1 cell, scale 5 up to 32."""

    def crossings(noise):
        signs = torch.sign(noise[:, 0])
        return (signs[:, :, 1:] != signs[:, :, :-1]).float().sum(dim=2).mean()

    coarse = perlin_noise(32, 128, 128, scale_max=0, generator=seeded(3))
    fine = perlin_noise(32, 128, 128, scale_max=5, generator=seeded(3))
    assert crossings(coarse) <= 2.0
    assert crossings(fine) > 3 * crossings(coarse)


def test_perlin_runs_on_the_requested_device():
    noise = perlin_noise(2, 32, 32, device="cpu")
    assert noise.device.type == "cpu"


# --- simulated-mask regimes --------------------------------------------------------------------


def test_threshold_regimes_nest_around_the_true_mask():
    noise = perlin_noise(400, SIZE, SIZE, generator=seeded(4))
    foreground = torch.ones(400, 1, SIZE, SIZE)
    tau, regime = synthesis._draw_thresholds(noise, 0.5, seeded(5))
    true_mask = synthesis._threshold_mask(noise, 0.5, foreground)
    simulated = synthesis._threshold_mask(noise, tau, foreground)
    shrunk, exact, enlarged = (regime == 1), (regime == 2), (regime == 3)
    assert subset(simulated, true_mask)[shrunk | exact].all()  # eroded ⊆ M
    assert subset(true_mask, simulated)[enlarged | exact].all()  # M ⊆ dilated
    assert torch.equal(simulated[exact], true_mask[exact])
    assert (tau[shrunk] >= 0.5).all() and (tau[shrunk] < 1.0).all()
    assert (tau[enlarged] > 0.0).all() and (tau[enlarged] <= 0.5).all()


def test_max_regime_keeps_only_pixels_below_minus_max():
    noise = perlin_noise(400, SIZE, SIZE, generator=seeded(6))
    tau, regime = synthesis._draw_thresholds(noise, 0.5, seeded(7))
    empty = regime == 0
    peak = noise.amax(dim=(1, 2, 3), keepdim=True)
    simulated = synthesis._threshold_mask(noise, tau, torch.ones_like(noise))
    assert torch.equal(tau[empty], peak[empty])
    survivors = simulated[empty] > 0
    assert (noise[empty][survivors] < -peak[empty].expand_as(noise[empty])[survivors]).all()


def test_regimes_are_drawn_with_equal_probability():
    noise = perlin_noise(4000, 8, 8, generator=seeded(8))
    _, regime = synthesis._draw_thresholds(noise, 0.5, seeded(9))
    rates = torch.bincount(regime, minlength=4).float() / 4000
    assert torch.allclose(rates, torch.full((4,), 0.25), atol=0.03)


# --- the synthesizer ---------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "anomalous"), [(1, 1), (2, 1), (3, 1), (8, 4)])
def test_first_half_of_the_batch_is_anomalous(batch, anomalous):
    x0, fg, t = make_batch(batch)
    out = AnomalySynthesizer(None)(x0, fg, t, seeded(0))
    assert out.anomalous.tolist() == [i < anomalous for i in range(batch)]
    assert out.mask[anomalous:].sum() == 0 and out.simulated_mask[anomalous:].sum() == 0
    assert torch.equal(out.appearance[anomalous:], x0[anomalous:])


def test_outputs_have_the_contract_shapes_and_ranges():
    x0, fg, t = make_batch(8)
    out = AnomalySynthesizer(None)(x0, fg, t, seeded(1))
    assert out.mask.shape == out.simulated_mask.shape == (8, 1, SIZE, SIZE)
    assert out.appearance.shape == (8, 3, SIZE, SIZE)
    assert out.mask.dtype == out.simulated_mask.dtype == out.appearance.dtype == torch.float32
    assert out.anomalous.dtype == torch.bool
    for mask in (out.mask, out.simulated_mask):
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert out.appearance.min() >= -1.0 and out.appearance.max() <= 1.0


def test_synthesis_is_reproducible_under_a_seed():
    x0, fg, t = make_batch(8)
    textures = torch.randint(0, 256, (3, 3, SIZE, SIZE), dtype=torch.uint8, generator=seeded(9))
    synth = AnomalySynthesizer(textures)
    first, second = synth(x0, fg, t, seeded(11)), synth(x0, fg, t, seeded(11))
    other = synth(x0, fg, t, seeded(12))
    for name in ("mask", "simulated_mask", "appearance", "anomalous"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert not torch.equal(first.appearance, other.appearance)
    assert not torch.equal(first.mask, other.mask)


def test_masks_stay_inside_the_foreground_and_do_appear():
    batch = 32
    x0, _, t = make_batch(batch)
    foreground = torch.zeros(batch, 1, SIZE, SIZE)
    foreground[..., :, : SIZE // 2] = 1
    out = AnomalySynthesizer(None)(x0, foreground, t, seeded(2))
    assert out.mask[..., SIZE // 2 :].sum() == 0
    assert out.simulated_mask[..., SIZE // 2 :].sum() == 0
    assert out.mask.sum() > 0


def test_simulated_mask_is_empty_at_the_last_step_and_nested_otherwise():
    batch = 32
    x0, fg, _ = make_batch(batch)
    t = torch.full((batch,), T - 1)
    t[: batch // 4] = 5
    out = AnomalySynthesizer(None, num_steps=T)(x0, fg, t, seeded(3))
    assert out.simulated_mask[batch // 4 :].sum() == 0
    assert out.mask[batch // 4 : batch // 2].sum() > 0  # the true mask is still there at t = T−1
    early = slice(0, batch // 4)
    nested = subset(out.simulated_mask[early], out.mask[early]) | subset(
        out.mask[early], out.simulated_mask[early]
    )
    assert nested.all()


def test_texture_source_uses_the_bank():
    textures = torch.randint(0, 256, (3, 3, SIZE, SIZE), dtype=torch.uint8, generator=seeded(4))
    config = SynthesisConfig(texture_probability=1.0, num_operations=0)
    x0, fg, t = make_batch(8)
    out = AnomalySynthesizer(textures, config)(x0, fg, t, seeded(5))
    bank = textures.float() / 127.5 - 1.0
    for appearance in out.appearance[:4]:
        assert any(torch.allclose(appearance, texture) for texture in bank)


def test_self_source_is_a_tile_permutation_of_the_image():
    grid = 4
    config = SynthesisConfig(texture_probability=0.0, num_operations=0, tile_grid=grid)
    x0, fg, t = make_batch(4)
    out = AnomalySynthesizer(torch.zeros(0, 3, SIZE, SIZE, dtype=torch.uint8), config)(
        x0, fg, t, seeded(6)
    )
    side = SIZE // grid

    def tiles(image):
        blocks = image.unfold(1, side, side).unfold(2, side, side)  # (3, g, g, s, s)
        return sorted(
            tuple(b.flatten().tolist()) for b in blocks.permute(1, 2, 0, 3, 4).flatten(0, 1)
        )

    for image, appearance in zip(x0[:2], out.appearance[:2], strict=True):
        quantised = ((image + 1) * 127.5).round() / 127.5 - 1
        assert tiles(appearance) == tiles(quantised)
        assert not torch.allclose(appearance, quantised)


def test_kept_samples_keep_their_tiles_and_draw_the_same_permutations():
    images = torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8, generator=seeded(8))
    keep = torch.tensor([True, False, True, False])
    shuffled = synthesis._tile_shuffle(images, 4, seeded(9))
    partly = synthesis._tile_shuffle(images, 4, seeded(9), keep=keep)
    assert torch.equal(partly[keep], images[keep])
    assert torch.equal(partly[~keep], shuffled[~keep])
    assert not torch.equal(shuffled[~keep], images[~keep])


def test_one_synthesizer_serves_any_batch_size_like_a_fresh_one():
    """The bank and the spare rows for the own images are kept between calls; a call must not
    see what an earlier call, of another batch size, left there."""
    textures = torch.randint(0, 256, (3, 3, SIZE, SIZE), dtype=torch.uint8, generator=seeded(10))
    reused = AnomalySynthesizer(textures)
    for batch, seed in ((8, 11), (5, 12), (8, 13)):
        x0, fg, t = make_batch(batch, seed=seed)
        got = reused(x0, fg, t, seeded(seed))
        want = AnomalySynthesizer(textures)(x0, fg, t, seeded(seed))
        for name in ("mask", "simulated_mask", "appearance", "anomalous"):
            assert torch.equal(getattr(got, name), getattr(want, name)), (batch, name)
        assert got.mask.dtype == x0.dtype and set(got.mask.unique().tolist()) <= {0.0, 1.0}


def test_appearance_gets_operations_applied():
    config = SynthesisConfig(texture_probability=0.0, tile_grid=1)
    x0, fg, t = make_batch(8)
    out = AnomalySynthesizer(None, config)(x0, fg, t, seeded(7))
    quantised = ((x0 + 1) * 127.5).round() / 127.5 - 1
    assert (out.appearance[:4] != quantised[:4]).flatten(1).any(dim=1).all()


def test_bad_inputs_are_rejected_with_the_offending_value():
    x0, fg, t = make_batch(4)
    synth = AnomalySynthesizer(None)
    with pytest.raises(ValueError, match="foreground"):
        synth(x0, fg[:, :, :-1], t)
    with pytest.raises(ValueError, match="t must be"):
        synth(x0, fg, t[:2])
    with pytest.raises(ValueError, match="x0"):
        synth(x0[:, :1], fg, t)
    with pytest.raises(ValueError, match="tile_grid=8"):
        synth(x0[..., :30, :30], fg[..., :30, :30], t)
    with pytest.raises(ValueError, match="uint8"):
        AnomalySynthesizer(torch.zeros(2, 3, SIZE, SIZE))
    small_bank = AnomalySynthesizer(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="resize the texture bank"):
        small_bank(x0, fg, t)
    with pytest.raises(ValueError, match="num_steps"):
        AnomalySynthesizer(None, num_steps=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("perlin_scale_max", -1),
        ("threshold", 1.0),
        ("texture_probability", 1.5),
        ("rotation_probability", -0.1),
        ("tile_grid", 0),
        ("num_operations", 11),
    ],
)
def test_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ValueError, match=field):
        SynthesisConfig(**{field: value})


# --- geometric augmentation --------------------------------------------------------------------


def test_random_rotation_applies_the_same_rotation_to_every_tensor():
    g = seeded(8)
    images = torch.rand(16, 3, SIZE, SIZE, generator=g)
    masks = (torch.rand(16, 1, SIZE, SIZE, generator=g) > 0.5).float()
    steps = torch.arange(16)
    rot_images, rot_masks, rot_copy = random_rotation(
        [images, masks, images[:, :1].clone()], probability=0.5, generator=seeded(9)
    )
    assert torch.equal(rot_copy, rot_images[:, :1])
    assert set(rot_masks.unique().tolist()) <= {0.0, 1.0}  # nearest keeps masks binary
    assert rot_images.dtype == images.dtype and rot_masks.shape == masks.shape
    rotated = (rot_images != images).flatten(1).any(dim=1)
    assert 0 < rotated.sum() < 16, steps[rotated]
    assert torch.equal(rot_images[~rotated], images[~rotated])
    assert torch.equal(rot_masks[~rotated], masks[~rotated])


def test_random_rotation_probability_and_fill():
    ones = torch.ones(2000, 1, SIZE, SIZE)
    (out,) = random_rotation([ones], probability=0.3, max_degrees=20.0, generator=seeded(10))
    changed = (out != ones).flatten(1).any(dim=1).float().mean()
    # Rotations under ~2° leave a 32-px square intact, so slightly fewer than 30 % change.
    assert 0.22 < changed < 0.34
    assert set(out.unique().tolist()) <= {0.0, 1.0}  # the corners are filled with 0
    (never,) = random_rotation([ones], probability=0.0, generator=seeded(10))
    assert torch.equal(never, ones)


def test_random_rotation_keeps_integer_dtypes_and_checks_shapes():
    labels = torch.randint(0, 5, (4, 1, SIZE, SIZE), dtype=torch.uint8)
    (out,) = random_rotation([labels], probability=1.0, generator=seeded(11))
    assert out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= set(labels.unique().tolist()) | {0}
    with pytest.raises(ValueError, match="sharing B, H and W"):
        random_rotation([labels, labels[:2]])
    assert random_rotation([]) == []
