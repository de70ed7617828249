"""The optimised library path and the benchmark's naive faithful path compute the same thing.

Speed is measured in benchmarks/run.py; here only equality: sdpa vs explicit softmax(QKᵀ)V
(forward and gradients), channels_last vs contiguous NCHW, the batched reverse process under
inference_mode vs one image at a time with autograd on, and each per-sample NumPy synthesis
operation vs the batched torch operation given the same random parameters (the parameters are
replayed from the torch generator the way the library documents drawing them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.naive import NaiveSynthesizer, aupro_reference, reverse_process_one_by_one
from benchmarks.naive import ops as naive_ops
from benchmarks.naive.geometry import rotate_image
from benchmarks.naive.synthesis import rand_perlin_2d, simulated_threshold, tile_shuffle
from transfusion_ad.core import augment
from transfusion_ad.core.metrics import aupro
from transfusion_ad.core.sampler import reverse_process
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import _draw_thresholds, _tile_shuffle, perlin_noise
from transfusion_ad.core.unet import AttentionBlock, TransFusionUNet

TOL = {"atol": 1e-4, "rtol": 1e-4}
SMALL = {"base_width": 32, "channel_mults": (1, 2), "num_res_blocks": 1, "attention_levels": (0, 1)}


# Tiny tensors: one thread avoids OpenMP contention on a busy CI machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _twin_models(**config) -> tuple[TransFusionUNet, TransFusionUNet]:
    """Same weights: the library default (sdpa, activations recomputed in the backward pass)
    and the authors' way (explicit score matrices, plain autograd)."""
    torch.manual_seed(0)
    fast = TransFusionUNet(**config, attention="sdpa").enable_recompute()
    naive = TransFusionUNet(**config, attention="naive")
    naive.load_state_dict(fast.state_dict())
    return fast, naive


def _loss_and_grads(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor):
    outputs = model(x, t)
    weights = torch.Generator().manual_seed(1)
    loss = sum(
        (out * torch.randn(out.shape, generator=weights)).mean() for out in outputs
    )  # a loss that reaches every output element
    grads = torch.autograd.grad(loss, [*model.parameters(), x])
    return outputs, grads


def test_sdpa_attention_matches_explicit_scores_on_4096_tokens() -> None:
    torch.manual_seed(0)
    fast, naive = AttentionBlock(32, "sdpa"), AttentionBlock(32, "naive")
    naive.load_state_dict(fast.state_dict())
    x = torch.randn(1, 32, 64, 64, requires_grad=True)
    out_fast, out_naive = fast(x), naive(x)
    torch.testing.assert_close(out_fast, out_naive, **TOL)
    upstream = torch.randn_like(out_fast)
    grads_fast = torch.autograd.grad(out_fast, [x, *fast.parameters()], upstream)
    grads_naive = torch.autograd.grad(out_naive, [x, *naive.parameters()], upstream)
    for a, b in zip(grads_fast, grads_naive, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_sdpa_network_matches_naive_network_forward_and_gradients() -> None:
    fast, naive = _twin_models(**SMALL)
    x = torch.randn(2, 4, 32, 32, requires_grad=True)
    t = torch.tensor([3, 17])
    outs_fast, grads_fast = _loss_and_grads(fast, x, t)
    outs_naive, grads_naive = _loss_and_grads(naive, x, t)
    for a, b in zip(outs_fast, outs_naive, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(grads_fast, grads_naive, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def _saved_bytes(model: TransFusionUNet, x: torch.Tensor, t: torch.Tensor) -> int:
    """Bytes of the distinct tensors a forward pass keeps for the backward pass."""
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model(x, t)
    return sum(storages.values())


def test_recomputed_activations_give_the_same_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    lean = TransFusionUNet(**SMALL).enable_recompute()
    plain = TransFusionUNet(**SMALL)
    plain.load_state_dict(lean.state_dict())
    assert not any(getattr(m, "recompute", False) for m in plain.modules()), "off by default"
    x = torch.randn(2, 4, 32, 32, requires_grad=True)
    t = torch.tensor([2, 11])
    assert _saved_bytes(lean, x, t) < 0.7 * _saved_bytes(plain, x, t)  # the point of it
    outs_lean, grads_lean = _loss_and_grads(lean, x, t)
    outs_plain, grads_plain = _loss_and_grads(plain, x, t)
    for a, b in zip(outs_lean, outs_plain, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(grads_lean, grads_plain, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_channels_last_matches_contiguous_forward_and_gradients() -> None:
    contiguous, _ = _twin_models(**SMALL)
    channels_last, _ = _twin_models(**SMALL)
    channels_last = channels_last.to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 32, 32)
    x_last = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    t = torch.tensor([1, 9])
    outs_a, grads_a = _loss_and_grads(contiguous, x.requires_grad_(), t)
    outs_b, grads_b = _loss_and_grads(channels_last, x_last, t)
    assert x_last.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(outs_a, outs_b, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def _reverse_both_ways(fast, naive, size: int):
    schedule = TransparencySchedule(6)
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    output = reverse_process(fast, schedule, images, mask_divisor="paper", return_steps=True)
    mask, reconstruction = reverse_process_one_by_one(naive, schedule, images)
    assert not torch.equal(reconstruction, images)  # the masks did change the images
    torch.testing.assert_close(output.mask, mask, **TOL)
    torch.testing.assert_close(output.reconstruction, reconstruction, **TOL)
    return torch.stack([(step.mask > 0.5).float().mean() for step in output.steps])


def test_batched_reverse_process_matches_one_image_at_a_time_with_autograd() -> None:
    """Random mask head: the fed-back masks cover part of each image."""
    fast, naive = _twin_models(**SMALL)
    masked_fraction = _reverse_both_ways(fast, naive, size=16)
    assert ((masked_fraction > 0.1) & (masked_fraction < 0.9)).all()


def test_batched_reverse_process_matches_with_a_confident_mask_head() -> None:
    """Every σ(m̂) far from 0.5, so no rounding difference can flip the binarised mask (with the
    random head above a few σ(m̂) lie within 1e-5 of the threshold)."""
    fast, naive = _twin_models(**SMALL)
    for model in (fast, naive):
        model.mask_head[2].weight.data.zero_()
        model.mask_head[2].bias.data.fill_(4.0)
    masked_fraction = _reverse_both_ways(fast, naive, size=32)
    assert (masked_fraction == 1).all()


# --- synthesis: replay the library's documented draws, run the per-sample NumPy operation ----


def _uniform(g: torch.Generator, batch: int, low: float, high: float, channels: int = 1):
    return low + (high - low) * torch.rand(batch, channels, 1, 1, generator=g)


def _replayed_parameters(name: str, g: torch.Generator, batch: int) -> list[dict]:
    """Per-sample keyword arguments of the NumPy operation, drawn like the torch operation."""
    if name == "gamma_contrast":
        gamma = _uniform(g, batch, 0.5, 2.0, channels=3).view(batch, 3).numpy()
        return [{"gamma": gamma[i]} for i in range(batch)]
    if name == "multiply_and_add_to_brightness":
        mul, add = _uniform(g, batch, 0.8, 1.2).flatten(), _uniform(g, batch, -30, 30).flatten()
        return [{"mul": mul[i].item(), "add": add[i].item()} for i in range(batch)]
    if name == "enhance_sharpness":
        factor = _uniform(g, batch, 0.0, 2.0).flatten()
        return [{"factor": factor[i].item()} for i in range(batch)]
    if name == "add_to_hue_and_saturation":
        shifts = _uniform(g, batch, -50.0, 50.0, channels=2).view(batch, 2)
        return [
            {"hue_shift": shifts[i, 0].item(), "saturation_shift": shifts[i, 1].item()}
            for i in range(batch)
        ]
    if name == "solarize":
        apply = (_uniform(g, batch, 0.0, 1.0) < 0.5).flatten()
        threshold = _uniform(g, batch, 32.0, 128.0).flatten()
        return [{"apply": bool(apply[i]), "threshold": threshold[i].item()} for i in range(batch)]
    if name == "posterize":
        bits = torch.randint(1, 9, (batch, 1, 1, 1), generator=g).flatten()
        return [{"bits": int(bits[i])} for i in range(batch)]
    if name == "autocontrast":
        cutoff = torch.randint(0, 21, (batch, 1, 1), generator=g).flatten()
        return [{"cutoff": int(cutoff[i])} for i in range(batch)]
    if name == "affine_rotate":
        degrees = _uniform(g, batch, -45.0, 45.0).flatten()
        return [{"degrees": degrees[i].item()} for i in range(batch)]
    return [{} for _ in range(batch)]  # invert, equalize: no draws


def _test_images(batch: int = 4, size: int = 48) -> torch.Tensor:
    """Smooth gradients plus noise plus a flat image (autocontrast/equalize edge cases)."""
    g = torch.Generator().manual_seed(5)
    ramp = torch.linspace(0, 255, size).view(1, 1, 1, size).expand(batch, 3, size, size)
    noise = torch.rand(batch, 3, size, size, generator=g) * 120
    images = (ramp * 0.6 + noise).clamp(0, 255).to(torch.uint8)
    images[-1] = 77
    return images


@pytest.mark.parametrize("name", list(augment.OPERATIONS))
def test_numpy_operation_matches_torch_operation(name: str) -> None:
    images = _test_images()
    batch = images.shape[0]
    expected = augment.OPERATIONS[name](images, torch.Generator().manual_seed(7))
    parameters = _replayed_parameters(name, torch.Generator().manual_seed(7), batch)
    got = np.stack(
        [
            naive_ops.OPERATIONS[name](images[i].permute(1, 2, 0).numpy(), **parameters[i])
            for i in range(batch)
        ]
    )
    want = expected.permute(0, 2, 3, 1).numpy()
    difference = np.abs(got.astype(int) - want.astype(int))
    if name == "affine_rotate":  # float32 vs float64 coordinates: rare rounding ties
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    else:
        assert difference.max() == 0, f"{name}: {int((difference > 0).sum())} pixels differ"
    assert got.shape == want.shape and got.dtype == np.uint8


def test_numpy_perlin_and_rotation_match_torch_given_the_same_draws() -> None:
    batch, size, scale_max = 4, 64, 5
    noise = perlin_noise(
        batch, size, size, scale_max=scale_max, generator=torch.Generator().manual_seed(3)
    )
    g = torch.Generator().manual_seed(3)
    exponents = torch.randint(0, scale_max + 1, (batch, 2), generator=g)
    side = 2**scale_max + 1
    angles = 2.0 * torch.pi * torch.rand(batch, side * side, generator=g)
    angles = angles.view(batch, side, side).numpy()
    degrees = torch.tensor([0.0, 30.0, -75.5, 90.0])
    rotated = augment.rotate(noise, degrees, mode="bilinear")
    for i in range(batch):
        res_y, res_x = (2 ** exponents[i]).tolist()
        ours = rand_perlin_2d((size, size), (res_y, res_x), angles[i, : res_y + 1, : res_x + 1])
        np.testing.assert_allclose(ours, noise[i, 0].numpy(), atol=1e-4)
        ours_rotated = rotate_image(noise[i, 0].numpy(), float(degrees[i]))
        np.testing.assert_allclose(ours_rotated, rotated[i, 0].numpy(), atol=1e-4)


def test_numpy_thresholds_and_tile_shuffle_match_torch_given_the_same_draws() -> None:
    noise = perlin_noise(8, 32, 32, generator=torch.Generator().manual_seed(4))
    tau, _ = _draw_thresholds(noise, 0.5, torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(6)
    regime, u = torch.randint(0, 4, (8,), generator=g), torch.rand(8, generator=g)
    for i in range(8):
        ours = simulated_threshold(noise[i, 0].numpy(), int(regime[i]), float(u[i]), 0.5)
        assert ours == pytest.approx(float(tau[i]), abs=1e-6)

    images = _test_images(batch=4, size=32)[:3]  # not the flat one
    shuffled = _tile_shuffle(images, 8, torch.Generator().manual_seed(8))
    order = torch.rand(3, 64, generator=torch.Generator().manual_seed(8)).argsort(dim=1)
    for i in range(3):
        ours = tile_shuffle(images[i].permute(1, 2, 0).numpy(), 8, order[i].numpy())
        np.testing.assert_array_equal(ours, shuffled[i].permute(1, 2, 0).numpy())
        assert not np.array_equal(ours, images[i].permute(1, 2, 0).numpy())


def test_naive_synthesizer_keeps_the_method_invariants(sample_root: Path) -> None:
    textures = sorted((sample_root / "textures").glob("*.jpg"))[:2]
    synthesizer = NaiveSynthesizer(textures, num_steps=20, seed=0)
    x0 = torch.rand(6, 3, 32, 32) * 2 - 1
    foreground = torch.ones(6, 1, 32, 32)
    foreground[:, :, :, :8] = 0
    t = torch.tensor([19, 5, 7, 3, 19, 1])
    out = synthesizer(x0, foreground, t)
    assert out.anomalous.tolist() == [True, True, True, False, False, False]
    assert out.mask[:3].sum() > 0 and out.mask[3:].sum() == 0
    assert out.simulated_mask[0].sum() == 0 and out.simulated_mask[3:].sum() == 0  # t = T−1
    assert (out.mask * (1 - foreground)).sum() == 0  # only on the foreground
    assert set(out.mask.unique().tolist()) <= {0.0, 1.0}
    assert out.appearance.min() >= -1 and out.appearance.max() <= 1
    torch.testing.assert_close(out.appearance[3:], x0[3:])


def test_reference_aupro_matches_library_aupro_with_ties() -> None:
    rng = np.random.default_rng(0)
    maps = np.round(rng.random((6, 40, 40)), 2).astype(np.float32)  # many tied scores
    masks = np.zeros((6, 40, 40), dtype=bool)
    masks[1, 5:12, 5:15] = masks[1, 30:33, 30:38] = masks[3, 20:30, 2:6] = True
    maps[masks] += 0.3
    assert aupro_reference(maps, masks) == pytest.approx(aupro(maps, masks), abs=1e-9)
