"""Anomaly synthesis as the authors' code does it (spec §2): inside the loss, one sample at a
time, on the host in NumPy, texture files decoded from disk per sample, and the finished batch
copied to the training device at the end.

The building blocks take their random draws as arguments (gradient angles, rotation angle,
threshold, tile permutation) so a test can feed them what the batched torch code drew.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from benchmarks.naive.geometry import rotate_image
from benchmarks.naive.ops import apply_random_operations
from transfusion_ad.core.synthesis import SynthesisConfig, SyntheticAnomalies


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def _lerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return a + weight * (b - a)


def rand_perlin_2d(shape: tuple[int, int], res: tuple[int, int], angles: np.ndarray) -> np.ndarray:
    """DRAEM's 2-D Perlin noise ×√2: (H, W) from gradient angles (res_y + 1, res_x + 1).

    The image side must be divisible by the lattice resolution along it.
    """
    delta = (res[0] / shape[0], res[1] / shape[1])
    cell = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : delta[0], 0 : res[1] : delta[1]].transpose(1, 2, 0) % 1
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)

    def tiled(rows: slice, cols: slice) -> np.ndarray:
        block = gradients[rows, cols]
        return np.repeat(np.repeat(block, cell[0], axis=0), cell[1], axis=1)

    def dot(grad: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
        offsets = np.stack((grid[..., 0] + shift[0], grid[..., 1] + shift[1]), axis=-1)
        return (offsets * grad).sum(axis=-1)

    n00 = dot(tiled(slice(0, -1), slice(0, -1)), (0, 0))
    n10 = dot(tiled(slice(1, None), slice(0, -1)), (-1, 0))
    n01 = dot(tiled(slice(0, -1), slice(1, None)), (0, -1))
    n11 = dot(tiled(slice(1, None), slice(1, None)), (-1, -1))
    t = _fade(grid)
    top = _lerp(n00, n10, t[..., 0])
    bottom = _lerp(n01, n11, t[..., 0])
    return math.sqrt(2.0) * _lerp(top, bottom, t[..., 1])


def simulated_threshold(noise: np.ndarray, regime: int, u: float, threshold: float) -> float:
    """τ of the simulated mask: 0 max P, 1 U[threshold, 1), 2 threshold, 3 U(0, threshold]."""
    return (
        float(noise.max()),
        threshold + (1.0 - threshold) * u,
        threshold,
        threshold * (1.0 - u),
    )[regime]


def tile_shuffle(image: np.ndarray, grid: int, permutation: np.ndarray) -> np.ndarray:
    """Cut (H, W, C) into grid × grid tiles (row-major) and put tile permutation[k] at slot k."""
    height, width, channels = image.shape
    th, tw = height // grid, width // grid
    tiles = image.reshape(grid, th, grid, tw, channels).transpose(0, 2, 1, 3, 4)
    tiles = tiles.reshape(grid * grid, th, tw, channels)[permutation]
    return tiles.reshape(grid, grid, th, tw, channels).transpose(0, 2, 1, 3, 4).reshape(image.shape)


def _read_texture(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A texture file decoded and resized (cv2 bilinear) to size (H, W): (H, W, 3) uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read texture {path}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


class NaiveSynthesizer:
    """Per-sample host synthesis with the same outputs as ``AnomalySynthesizer``.

    texture_files: anomaly-source images read from disk each time one is drawn (the authors'
    anomaly-source dataset); empty means every anomaly uses the shuffled-tiles source.
    The torch ``generator`` argument of ``__call__`` is ignored: draws come from ``seed``.
    """

    def __init__(
        self,
        texture_files: Sequence[Path] = (),
        config: SynthesisConfig | None = None,
        num_steps: int = 20,
        seed: int = 0,
    ) -> None:
        self.texture_files = list(texture_files)
        self.config = config if config is not None else SynthesisConfig()
        self.num_steps = num_steps
        self.rng = np.random.default_rng(seed)

    def _sample(
        self, image: np.ndarray, foreground: np.ndarray, step: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One anomalous sample: (M (H, W), M_a (H, W), A (H, W, 3) in [-1, 1])."""
        cfg, rng = self.config, self.rng
        height, width = foreground.shape
        res_y, res_x = (2 ** rng.integers(0, cfg.perlin_scale_max + 1, 2)).tolist()
        angles = 2 * math.pi * rng.random((res_y + 1, res_x + 1))
        noise = rand_perlin_2d((height, width), (res_y, res_x), angles)
        degrees = rng.uniform(-cfg.noise_rotation_degrees, cfg.noise_rotation_degrees)
        noise = rotate_image(noise, degrees)
        mask = (np.abs(noise) > cfg.threshold) * foreground
        tau = simulated_threshold(noise, int(rng.integers(4)), rng.random(), cfg.threshold)
        visible = step != self.num_steps - 1
        simulated = (np.abs(noise) > tau) * foreground * visible
        if self.texture_files and rng.random() < cfg.texture_probability:
            path = self.texture_files[int(rng.integers(len(self.texture_files)))]
            source = _read_texture(path, (height, width))
            appearance = apply_random_operations(source, rng, cfg.num_operations)
        else:
            own = np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
            augmented = apply_random_operations(own, rng, cfg.num_operations)
            permutation = rng.permutation(cfg.tile_grid**2)
            appearance = tile_shuffle(augmented, cfg.tile_grid, permutation)
        return mask, simulated, appearance.astype(np.float32) / 127.5 - 1.0

    def __call__(
        self,
        x0: Tensor,
        foreground: Tensor,
        t: Tensor,
        generator: torch.Generator | None = None,
    ) -> SyntheticAnomalies:
        """x0 (B, 3, H, W), foreground (B, 1, H, W), t (B,) -> SyntheticAnomalies on x0's device."""
        batch, _, height, width = x0.shape
        images = x0.detach().cpu().numpy().transpose(0, 2, 3, 1)
        fg = (foreground.detach().cpu().numpy()[:, 0] > 0.5).astype(np.float32)
        steps = t.cpu().numpy()
        num_anomalous = batch // 2 if batch > 1 else 1
        masks = np.zeros((batch, height, width), dtype=np.float32)
        simulated = np.zeros_like(masks)
        appearance = images.copy()
        for index in range(num_anomalous):
            masks[index], simulated[index], appearance[index] = self._sample(
                images[index], fg[index], int(steps[index])
            )
        device = x0.device
        return SyntheticAnomalies(
            mask=torch.from_numpy(masks[:, None]).to(device),
            simulated_mask=torch.from_numpy(simulated[:, None]).to(device),
            appearance=torch.from_numpy(appearance.transpose(0, 3, 1, 2).copy()).to(device),
            anomalous=(torch.arange(batch) < num_anomalous).to(device),
        )
