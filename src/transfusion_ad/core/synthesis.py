"""Synthetic anomalies for training (spec §2): Perlin masks, simulated masks and anomaly appearance.

Everything is batched torch on the device of the data, with random draws from an optional
``torch.Generator`` on that device. On an accelerator nothing synchronises with the host (no
``.item()``, no data-dependent indexing), so synthesis costs little next to the network; on the
CPU, where reading a value costs nothing, each appearance operation runs only on the samples
that drew it (see ``apply_random_operations``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from transfusion_ad.core.augment import OPERATIONS, apply_random_operations, rotate

_NUM_REGIMES = 4
_REGIME_EMPTY, _REGIME_SHRUNK, _REGIME_EXACT, _REGIME_ENLARGED = range(_NUM_REGIMES)


@dataclass(frozen=True)
class SynthesisConfig:
    """Numbers of the anomaly generator; the defaults are the paper's (spec §2)."""

    perlin_scale_max: int = 5
    threshold: float = 0.5
    noise_rotation_degrees: float = 90.0
    texture_probability: float = 0.5
    tile_grid: int = 8
    num_operations: int = 3
    rotation_probability: float = 0.3
    rotation_degrees: float = 20.0

    def __post_init__(self) -> None:
        if self.perlin_scale_max < 0:
            raise ValueError(f"perlin_scale_max must be >= 0, got {self.perlin_scale_max}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        for name in ("texture_probability", "rotation_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.tile_grid < 1:
            raise ValueError(f"tile_grid must be >= 1, got {self.tile_grid}")
        if not 0 <= self.num_operations <= len(OPERATIONS):
            raise ValueError(
                f"num_operations must be in 0..{len(OPERATIONS)}, got {self.num_operations}"
            )


@dataclass
class SyntheticAnomalies:
    """One batch of synthetic anomalies.

    mask: (B, 1, H, W) true mask M; simulated_mask: (B, 1, H, W) network-input mask M_a;
    appearance: (B, 3, H, W) anomaly appearance A in [-1, 1]; anomalous: (B,) bool.
    """

    mask: Tensor
    simulated_mask: Tensor
    appearance: Tensor
    anomalous: Tensor


def _resolve_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device:
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def _fade(t: Tensor) -> Tensor:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    batch: int,
    height: int,
    width: int,
    *,
    scale_max: int = 5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """2-D gradient (Perlin) noise, one independent map per sample: (B, 1, H, W), values ×√2.

    Each sample has its own lattice of 2^a × 2^b cells (a, b uniform in 0..scale_max), random
    gradient angles at the lattice points and the quintic fade 6t⁵ − 15t⁴ + 10t³ (the DRAEM
    generator the authors use). Pixel row y sits at lattice coordinate y·2^a/H.
    """
    device = _resolve_device(generator, device)
    exponents = torch.randint(0, scale_max + 1, (batch, 2), generator=generator, device=device)
    cells = 2.0**exponents  # (B, 2) float: lattice cells along y and x
    side = 2**scale_max + 1
    angles = 2.0 * math.pi * torch.rand(batch, side * side, generator=generator, device=device)
    grad_y, grad_x = torch.cos(angles), torch.sin(angles)

    pos_y = torch.arange(height, device=device) * (cells[:, :1] / height)  # (B, H)
    pos_x = torch.arange(width, device=device) * (cells[:, 1:] / width)  # (B, W)
    cell_y, cell_x = pos_y.floor(), pos_x.floor()
    frac_y, frac_x = pos_y - cell_y, pos_x - cell_x
    # Lattice index of each pixel's top-left corner, (B, H·W); the other corners are offsets.
    top_left = (cell_y.long()[:, :, None] * side + cell_x.long()[:, None, :]).flatten(1)

    def corner(dy: int, dx: int) -> Tensor:
        """Dot product of the corner's gradient with the offset to it: (B, H, W)."""
        index = top_left + (dy * side + dx) if dy or dx else top_left
        gy = grad_y.gather(1, index).view(batch, height, width)
        gx = grad_x.gather(1, index).view(batch, height, width)
        return gy * (frac_y - dy)[:, :, None] + gx * (frac_x - dx)[:, None, :]

    fade_y, fade_x = _fade(frac_y)[:, :, None], _fade(frac_x)[:, None, :]
    top = torch.lerp(corner(0, 0), corner(0, 1), fade_x)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), fade_x)
    return (math.sqrt(2.0) * torch.lerp(top, bottom, fade_y)).unsqueeze(1)


def _draw_thresholds(
    noise: Tensor, threshold: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Threshold τ of the simulated mask per sample, one of four regimes with p = 1/4 each.

    noise: (B, 1, H, W). Returns (τ (B, 1, 1, 1), regime (B,) int64): 0 τ = max P (near-empty),
    1 τ ~ U[threshold, 1) (shrunk), 2 τ = threshold (exact), 3 τ ~ U(0, threshold] (enlarged).
    """
    batch = noise.shape[0]
    regime = torch.randint(0, _NUM_REGIMES, (batch,), generator=generator, device=noise.device)
    u = torch.rand(batch, generator=generator, device=noise.device)
    candidates = torch.stack(
        [
            noise.amax(dim=(1, 2, 3)),
            threshold + (1.0 - threshold) * u,
            torch.full_like(u, threshold),
            threshold * (1.0 - u),
        ],
        dim=1,
    )
    tau = candidates.gather(1, regime[:, None]).view(batch, 1, 1, 1)
    return tau, regime


def _threshold_mask(magnitude: Tensor, threshold: Tensor | float, foreground: Tensor) -> Tensor:
    """1[|P| > τ] ⊙ FG from magnitude |P|, float (B, 1, H, W)."""
    return (magnitude > threshold).to(foreground.dtype) * foreground


def _tile_shuffle(images: Tensor, grid: int, generator: torch.Generator | None) -> Tensor:
    """Cut each image into grid × grid tiles and permute them, per sample: (B, C, H, W)."""
    batch, channels, height, width = images.shape
    th, tw = height // grid, width // grid
    tiles = images.view(batch, channels, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(batch, grid * grid, channels, th, tw)
    keys = torch.rand(batch, grid * grid, generator=generator, device=images.device)
    order = keys.argsort(dim=1).view(batch, grid * grid, 1, 1, 1).expand_as(tiles)
    shuffled = tiles.gather(1, order).view(batch, grid, grid, channels, th, tw)
    return shuffled.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width)


class AnomalySynthesizer:
    """Builds (M, M_a, A) for a training batch (spec §2.1–2.4).

    textures: optional bank (K, 3, H, W) uint8, already at the image size, used as the texture
    source; ``None`` or an empty bank means every anomaly uses the self (shuffled tiles) source.
    """

    def __init__(
        self,
        textures: Tensor | None = None,
        config: SynthesisConfig | None = None,
        num_steps: int = 20,
    ) -> None:
        if textures is not None and (
            textures.dtype != torch.uint8 or textures.ndim != 4 or textures.shape[1] != 3
        ):
            raise ValueError(
                "textures must be a uint8 tensor (K, 3, H, W), got "
                f"{textures.dtype} {tuple(textures.shape)}"
            )
        if num_steps < 2:
            raise ValueError(f"num_steps must be >= 2, got {num_steps}")
        self.textures = textures if textures is not None and len(textures) > 0 else None
        self.config = config if config is not None else SynthesisConfig()
        self.num_steps = num_steps
        self._bank_cache: dict[torch.device, Tensor] = {}

    def _bank(self, device: torch.device) -> Tensor:
        """The texture bank on ``device``, copied there once."""
        if device not in self._bank_cache:
            self._bank_cache[device] = self.textures.to(device)
        return self._bank_cache[device]

    def _check_inputs(self, x0: Tensor, foreground: Tensor, t: Tensor) -> None:
        if x0.ndim != 4 or x0.shape[1] != 3 or x0.shape[0] == 0:
            raise ValueError(f"x0 must be (B, 3, H, W) with B >= 1, got {tuple(x0.shape)}")
        batch, _, height, width = x0.shape
        if foreground.shape != (batch, 1, height, width):
            raise ValueError(
                f"foreground must be {(batch, 1, height, width)} to match x0, "
                f"got {tuple(foreground.shape)}"
            )
        if t.shape != (batch,):
            raise ValueError(f"t must be ({batch},) to match x0, got {tuple(t.shape)}")
        grid = self.config.tile_grid
        if height % grid or width % grid:
            raise ValueError(
                f"image size {height}x{width} is not divisible by tile_grid={grid}; "
                "resize the images or change tile_grid"
            )
        if self.textures is not None and self.textures.shape[2:] != x0.shape[2:]:
            raise ValueError(
                f"textures are {tuple(self.textures.shape[2:])} but images are "
                f"{(height, width)}; resize the texture bank to the image size"
            )

    def _appearance(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """Anomaly appearance A (B, 3, H, W) in [-1, 1] from textures or shuffled self-tiles."""
        batch = x0.shape[0]
        own = ((x0 + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        use_texture = torch.zeros(batch, dtype=torch.bool, device=x0.device)
        source = own
        if self.textures is not None:
            bank = self._bank(x0.device)
            draw = torch.rand(batch, generator=generator, device=x0.device)
            use_texture = draw < self.config.texture_probability
            index = torch.randint(0, len(bank), (batch,), generator=generator, device=x0.device)
            source = torch.where(use_texture.view(batch, 1, 1, 1), bank[index], own)
        augmented = apply_random_operations(source, self.config.num_operations, generator)
        shuffled = _tile_shuffle(augmented, self.config.tile_grid, generator)
        chosen = torch.where(use_texture.view(batch, 1, 1, 1), augmented, shuffled)
        return chosen.to(x0.dtype) / 127.5 - 1.0

    def __call__(
        self,
        x0: Tensor,
        foreground: Tensor,
        t: Tensor,
        generator: torch.Generator | None = None,
    ) -> SyntheticAnomalies:
        """x0 (B, 3, H, W) in [-1, 1], foreground (B, 1, H, W) {0, 1} (any dtype), t (B,) int64.

        The first ⌊B/2⌋ samples are anomalous (all of them when B = 1); the others get
        M = M_a = 0, so ε = M ⊙ A is zero, and their A is simply x0 (only the anomalous
        samples pay for the appearance operations). M_a is also 0 where t = T − 1.
        """
        self._check_inputs(x0, foreground, t)
        batch, _, height, width = x0.shape
        device, cfg = x0.device, self.config
        count = batch // 2 if batch > 1 else 1  # the anomalous samples come first
        noise = perlin_noise(
            count, height, width, scale_max=cfg.perlin_scale_max, generator=generator, device=device
        )
        angles = (
            torch.rand(count, generator=generator, device=device) * 2.0 - 1.0
        ) * cfg.noise_rotation_degrees
        noise = rotate(noise, angles, mode="bilinear")
        tau, _ = _draw_thresholds(noise, cfg.threshold, generator)

        fg = (foreground[:count] > 0.5).to(x0.dtype)
        magnitude = noise.abs()
        visible = (t[:count] != self.num_steps - 1).to(x0.dtype).view(count, 1, 1, 1)
        normal = x0.new_zeros(batch - count, 1, height, width)
        mask = torch.cat([_threshold_mask(magnitude, cfg.threshold, fg), normal])
        simulated = torch.cat([_threshold_mask(magnitude, tau, fg) * visible, normal])
        appearance = torch.cat([self._appearance(x0[:count], generator), x0[count:]])
        anomalous = torch.arange(batch, device=device) < count
        return SyntheticAnomalies(mask, simulated, appearance, anomalous)


def random_rotation(
    tensors: Sequence[Tensor],
    *,
    probability: float = 0.3,
    max_degrees: float = 20.0,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Rotate each sample, with the given probability, by one angle ~ U[−max, max] (spec §2.6).

    tensors: (B, C_i, H, W) each, sharing B, H, W and device; every tensor gets the same
    per-sample rotation (nearest neighbour, about the centre, no expand, fill 0). Samples that
    are not rotated come back bit-identical. Returns new tensors of the input dtypes.
    """
    if not tensors:
        return []
    first = tensors[0]
    for tensor in tensors:
        if (
            tensor.ndim != 4
            or tensor.shape[0] != first.shape[0]
            or (tensor.shape[2:] != first.shape[2:])
        ):
            raise ValueError(
                "random_rotation needs (B, C, H, W) tensors sharing B, H and W, got "
                f"{[tuple(x.shape) for x in tensors]}"
            )
    batch, device = first.shape[0], first.device
    apply = torch.rand(batch, generator=generator, device=device) < probability
    degrees = (torch.rand(batch, generator=generator, device=device) * 2.0 - 1.0) * max_degrees
    selected = apply.view(batch, 1, 1, 1)
    return [torch.where(selected, rotate(x, degrees, mode="nearest"), x) for x in tensors]
