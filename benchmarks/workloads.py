"""What the speed benchmark measures: the recipes, the inputs, and one callable per task and path.

Each ``*_call`` builds, for one measurement spec (task, recipe, path, batch, device options),
the call a worker times: the training step, the reverse process, a synthesis batch or AUPRO,
either on the library's optimised path or on the naive faithful path of ``benchmarks/naive``.
``TASKS`` maps a spec's task to its builder, so the worker reaches them by name. The synthetic
images and the texture bank are shared with ``bench_synthesis_parts.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage

from benchmarks import authors_path
from benchmarks.naive import (
    NaiveSynthesizer,
    aupro_reference,
    reverse_process_one_by_one,
)
from transfusion_ad.conf_recipes import conf_recipe, project_parameters
from transfusion_ad.core.detector import Scoring, TransFusionDetector
from transfusion_ad.core.metrics import aupro
from transfusion_ad.core.objective import compute_training_loss
from transfusion_ad.core.schedule import TransparencySchedule
from transfusion_ad.core.synthesis import AnomalySynthesizer
from transfusion_ad.core.unet import TransFusionUNet

ROOT = Path(__file__).resolve().parents[1]
TEXTURE_DIR = ROOT / "data" / "01_raw" / "sample" / "textures"
TRAIN_BATCH = 8
SYNTH_BATCH = 8
AUPRO_MAPS, AUPRO_SIZE = 500, 256
# The paper's recipe from conf/base, and the same architecture at two smaller sizes.
_PAPER = conf_recipe(ROOT)
RECIPES: dict[str, dict[str, Any]] = {
    "smoke": {**_PAPER, "image_size": 64, "base_width": 32},
    "mid": {**_PAPER, "image_size": 128},
    "paper": _PAPER,
}


def random_images(batch: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Smooth random images (B, 3, S, S) in [-1, 1] standing in for a category's photos."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 16, size // 16, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    detail = 0.1 * torch.rand(batch, 3, size, size, generator=g)
    return ((smooth + detail).clamp(0, 1) * 2 - 1).to(device)


def texture_files() -> list[Path]:
    """The shipped sample textures, which the naive path decodes per sample."""
    files = sorted(p for p in TEXTURE_DIR.glob("*") if p.suffix.lower() in {".jpg", ".png"})
    if not files:
        raise FileNotFoundError(
            f"No texture images in {TEXTURE_DIR}; the shipped sample textures are needed."
        )
    return files


def texture_bank(size: int, device: torch.device) -> torch.Tensor:
    """Textures decoded and resized once, (K, 3, S, S) uint8 on the device (the pipeline's bank)."""
    bank = []
    for path in texture_files():
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        bank.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(bank)).permute(0, 3, 1, 2).contiguous().to(device)


def _model(spec: dict[str, Any], device: torch.device) -> TransFusionUNet:
    """The recipe's network, set up as the spec's path runs it (seeded: same weights for both)."""
    recipe = RECIPES[spec["recipe"]]
    torch.manual_seed(0)
    model = TransFusionUNet(
        base_width=recipe["base_width"],
        channel_mults=recipe["channel_mults"],
        num_res_blocks=recipe["num_res_blocks"],
        attention_levels=recipe["attention_levels"],
        attention="naive" if spec["path"] == "naive" else "sdpa",
    ).to(device)
    if spec["path"] == "optimised" and not spec.get("no_recompute"):
        model.enable_recompute()  # the trainer's default; naive: plain autograd keeps all
    cpu_layout = device.type == "cpu" and not spec.get("nchw")
    if spec["path"] == "optimised" and (cpu_layout or spec.get("channels_last")):
        model = model.to(memory_format=torch.channels_last)  # the library's CPU default
    if spec["path"] == "optimised" and spec.get("compile"):
        model = torch.compile(model)
    return model


def _train_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    """One training step: synthesis, forward, losses, backward, AdamW, and the loss logging."""
    recipe = RECIPES[spec["recipe"]]
    size, steps = recipe["image_size"], recipe["num_steps"]
    if spec["path"] == "authors":
        images = random_images(TRAIN_BATCH, size, device)
        return authors_path.train_call(recipe, Path(spec["authors_repo"]), texture_files(), images)
    model = _model(spec, device).train()
    schedule = TransparencySchedule(steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    x0 = random_images(TRAIN_BATCH, size, device)
    foreground = torch.ones(TRAIN_BATCH, 1, size, size, device=device)
    if spec["path"] == "naive":
        synthesizer = NaiveSynthesizer(texture_files(), num_steps=steps, seed=0)

        def step() -> None:
            losses = compute_training_loss(model, schedule, synthesizer, x0, foreground)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
            [value.item() for value in losses.values()]  # per-term logging, one sync each

        return step
    synthesizer = AnomalySynthesizer(texture_bank(size, device), num_steps=steps)
    generator = torch.Generator(device=device).manual_seed(0)
    autocast = torch.bfloat16 if spec.get("bf16") else None

    def optimised_step() -> None:
        losses = compute_training_loss(
            model, schedule, synthesizer, x0, foreground, generator=generator,
            autocast_dtype=autocast,
        )  # fmt: skip
        torch.stack([value.detach() for value in losses.values()]).tolist()  # the trainer's sync
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()

    return optimised_step


def _infer_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    """The whole reverse process of a batch: the detector's, the naive one image at a time, or
    the authors' own code's (one image at a time)."""
    recipe = RECIPES[spec["recipe"]]
    images = random_images(spec["batch"], recipe["image_size"], device, seed=1)
    if spec["path"] == "authors":
        return authors_path.infer_call(recipe, Path(spec["authors_repo"]), texture_files(), images)
    model = _model(spec, device).eval()
    schedule = TransparencySchedule(recipe["num_steps"])
    if spec["path"] == "naive":
        return lambda: reverse_process_one_by_one(model, schedule, images)
    detector = TransFusionDetector(
        model,
        schedule,
        recipe["image_size"],
        dataclasses.replace(_conf_scoring(), reverse_steps=spec.get("num_steps")),
        precision="bf16" if spec.get("bf16") else "fp32",
    )
    pixels = ((images + 1) * 127.5).round().to(torch.uint8)  # the detector's input
    return lambda: detector.reverse(pixels)


def _conf_scoring() -> Scoring:
    """The scoring of the project's configuration (conf/base), as a run would use it."""
    parameters = project_parameters(ROOT)
    return Scoring.from_params(parameters["inference"], parameters["evaluation"])


def _synth_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    """Anomaly synthesis of one batch: batched torch, or per-sample NumPy from texture files."""
    recipe = RECIPES[spec["recipe"]]
    size, steps = recipe["image_size"], recipe["num_steps"]
    x0 = random_images(SYNTH_BATCH, size, device)
    foreground = torch.ones(SYNTH_BATCH, 1, size, size, device=device)
    t = torch.randint(1, steps, (SYNTH_BATCH,), generator=torch.Generator().manual_seed(0))
    t = t.to(device)
    if spec["path"] == "naive":
        naive = NaiveSynthesizer(texture_files(), num_steps=steps, seed=0)
        return lambda: naive(x0, foreground, t)
    synthesizer = AnomalySynthesizer(texture_bank(size, device), num_steps=steps)
    generator = torch.Generator(device=device).manual_seed(0)
    return lambda: synthesizer(x0, foreground, t, generator=generator)


def aupro_category(images: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Box-filtered noise maps (N, S, S) float32 with disc defects on every other image."""
    rng = np.random.default_rng(seed)
    maps = ndimage.uniform_filter(
        rng.random((images, size, size), dtype=np.float32), size=(1, 7, 7)
    )
    masks = np.zeros((images, size, size), dtype=bool)
    rows, cols = np.ogrid[:size, :size]
    for index in range(1, images, 2):
        for _ in range(int(rng.integers(1, 4))):
            row, col = rng.integers(size // 8, size - size // 8, 2)
            masks[index] |= (rows - row) ** 2 + (cols - col) ** 2 < int(rng.integers(3, 20)) ** 2
        maps[index][masks[index]] += np.float32(rng.uniform(0.02, 0.1))
    return maps, masks


def _aupro_call(spec: dict[str, Any], device: torch.device) -> Callable[[], object]:
    """AUPRO of one synthetic category: the library's, or the official implementation."""
    maps, masks = aupro_category(AUPRO_MAPS, AUPRO_SIZE)
    function = aupro_reference if spec["path"] == "naive" else aupro
    return lambda: function(maps, masks)


TASKS = {"train": _train_call, "infer": _infer_call, "synth": _synth_call, "aupro": _aupro_call}
