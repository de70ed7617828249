"""The CUDA path: training, synthesis, the reverse process and the detector on a GPU, with the
bf16 and compile options. Skipped without a GPU (CI has none); benchmarks/gpu_check.sh runs
them on a machine that has one."""

from __future__ import annotations

import pytest
import torch
from support import SMALL_RECIPE

from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.recipes import model_from_recipe
from transfusion_ad.core.sampler import reverse_process
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer
from transfusion_ad.core.trainer import TrainConfig, Trainer
from transfusion_ad.data import TrainingImages

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SIZE = SMALL_RECIPE["image_size"]
SCORING = Scoring(mask_divisor="paper", fusion_weight=0.95, box_size=5)


def _images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 3, SIZE, SIZE, generator=generator) * 255).to(torch.uint8)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return model_from_recipe(SMALL_RECIPE)


@pytest.mark.parametrize("bf16", [False, True])
def test_a_training_epoch_on_cuda_gives_finite_falling_losses(bf16):
    textures = _images(4, seed=1)
    synthesizer = AnomalySynthesizer(textures, num_steps=SMALL_RECIPE["num_steps"])
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-3, device="cuda", bf16=bf16, progress=False)
    trainer = Trainer(
        _model(), TransparencySchedule(SMALL_RECIPE["num_steps"]), synthesizer, config
    )
    images = _images(8)
    history = trainer.fit(TrainingImages(images, torch.ones(8, 1, SIZE, SIZE, dtype=torch.bool)))
    totals = [result.losses["total"] for result in history.results]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[-1] < totals[0]
    assert next(trainer.model.parameters()).device.type == "cuda"


def test_synthesis_on_cuda_stays_on_the_device_and_in_range():
    device = torch.device("cuda")
    synthesizer = AnomalySynthesizer(_images(4, seed=1).to(device), num_steps=20)
    x0 = _images(8).to(device).float() / 127.5 - 1
    t = torch.randint(1, 20, (8,), device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    out = synthesizer(x0, torch.ones(8, 1, SIZE, SIZE, device=device), t, generator=generator)
    assert out.mask.device.type == out.appearance.device.type == "cuda"
    assert out.appearance.min() >= -1 and out.appearance.max() <= 1
    assert out.mask[4:].sum() == 0, "the second half of a batch stays normal"


def test_the_reverse_process_on_cuda_matches_the_cpu():
    model = _model().eval()
    schedule = TransparencySchedule(SMALL_RECIPE["num_steps"])
    x = _images(2).float() / 127.5 - 1
    on_cpu = reverse_process(model, schedule, x)
    on_gpu = reverse_process(model.cuda(), schedule, x.cuda())
    # cuDNN convolutions may use TF32, so the GPU is held to 1e-2, not to float32 rounding.
    torch.testing.assert_close(on_gpu.mask.cpu(), on_cpu.mask, atol=1e-2, rtol=0)
    torch.testing.assert_close(
        on_gpu.reconstruction.cpu(), on_cpu.reconstruction, atol=1e-2, rtol=0
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_detector_on_cuda_scores_as_on_the_cpu(precision):
    schedule = TransparencySchedule(SMALL_RECIPE["num_steps"])
    images = _images(3)
    reference = TransFusionDetector(_model(), schedule, SIZE, SCORING)
    gpu = TransFusionDetector(_model().cuda(), schedule, SIZE, SCORING, precision=precision)
    expected = reference.score_prepared(images)["scores"]
    got = gpu.score_prepared(images)["scores"]
    torch.testing.assert_close(got, expected, atol=1e-2 if precision == "fp32" else 5e-2, rtol=0)


def test_a_compiled_network_gives_the_eager_outputs():
    model = _model().cuda().eval()
    compiled = torch.compile(model)
    x = torch.randn(2, 4, SIZE, SIZE, device="cuda")
    t = torch.tensor([3, 11], device="cuda")
    with torch.inference_mode():
        for eager, traced in zip(model(x, t), compiled(x, t), strict=True):
            torch.testing.assert_close(traced, eager, atol=1e-3, rtol=1e-3)


def test_deterministic_training_on_cuda_repeats_bit_for_bit():
    def losses() -> list[float]:
        synthesizer = AnomalySynthesizer(_images(4, seed=1), num_steps=SMALL_RECIPE["num_steps"])
        config = TrainConfig(
            epochs=2, batch_size=4, lr=1e-3, device="cuda", deterministic=True, progress=False
        )
        schedule = TransparencySchedule(SMALL_RECIPE["num_steps"])
        foreground = torch.ones(8, 1, SIZE, SIZE, dtype=torch.bool)
        trainer = Trainer(_model(), schedule, synthesizer, config)
        return trainer.fit(TrainingImages(_images(8), foreground)).step_losses

    try:
        assert losses() == losses()
    finally:
        torch.use_deterministic_algorithms(False)
