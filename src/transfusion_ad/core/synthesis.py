"""Synthetic anomalies for training (spec §2): Perlin masks, simulated masks and anomaly appearance.

Everything is batched torch on the device of the data, with random draws from an optional
``torch.Generator`` on that device. On an accelerator nothing synchronises with the host (no
``.item()``, no data-dependent indexing), so synthesis costs little next to the network; on the
CPU, where reading a value costs nothing, each appearance operation runs only on the samples
that drew it (see ``apply_random_operations``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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

    @classmethod
    def from_params(cls, synthesis: dict[str, Any]) -> SynthesisConfig:
        """From the ``synthesis`` parameter group (its other keys are pipeline settings)."""
        return cls(**{key: synthesis[key] for key in cls.__dataclass_fields__ if key in synthesis})

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


@functools.cache
def _pixel_steps(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Row then column indices (H + W,) as floats, and which axis each belongs to (H + W,)."""
    steps = torch.cat([torch.arange(height, device=device), torch.arange(width, device=device)])
    axis = (torch.arange(height + width, device=device) >= height).long()
    return steps.float(), axis


@functools.cache
def _corner_offsets(side: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Lattice index offsets of the four cell corners (1, 4, 1, 1) and their (dy, dx) (4, 2)."""
    corners = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], device=device)
    offsets = (corners[:, 0] * side + corners[:, 1]).view(1, 4, 1, 1)
    return offsets, corners.float()


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
    generator the authors use). Pixel row y sits at lattice coordinate y·2^a/H. Rows and
    columns are handled together as one (B, H + W) vector, and the four corners as one
    (B, 4, H, W) gather, because at training sizes the cost is the number of torch calls.
    """
    device = _resolve_device(generator, device)
    exponents = torch.randint(0, scale_max + 1, (batch, 2), generator=generator, device=device)
    side = 2**scale_max + 1
    angles = 2.0 * math.pi * torch.rand(batch, side * side, generator=generator, device=device)
    # Gradients as complex numbers (y + ix), so one gather fetches both components; √2
    # scales them (B, side²) instead of every pixel: the noise is linear in them.
    gradients = torch.polar(torch.full_like(angles, math.sqrt(2.0)), angles)

    steps, axis = _pixel_steps(height, width, device)
    lattice_per_pixel = torch.exp2(exponents.float()) / torch.tensor(
        [height, width], device=device
    )  # (B, 2): 2^a / H and 2^b / W
    position = steps * lattice_per_pixel[:, axis]  # (B, H + W) lattice coordinates
    cell = position.floor()
    frac = position - cell
    fade = _fade(frac)
    cell_y, cell_x = cell.long().split([height, width], dim=1)
    frac_y, frac_x = frac.split([height, width], dim=1)
    fade_y, fade_x = fade.split([height, width], dim=1)

    offsets, corners = _corner_offsets(side, device)
    top_left = (cell_y * side).view(batch, 1, height, 1) + cell_x.view(batch, 1, 1, width)
    index = (top_left.expand(batch, 4, height, width) + offsets).view(batch, -1)
    gy, gx = (
        torch.view_as_real(gradients.gather(1, index)).view(batch, 4, height, width, 2).unbind(-1)
    )
    # Dot product of each corner's gradient with the offset from that corner: (B, 4, H, W).
    to_y = frac_y.view(batch, 1, height, 1) - corners[:, 0].view(1, 4, 1, 1)
    to_x = frac_x.view(batch, 1, 1, width) - corners[:, 1].view(1, 4, 1, 1)
    dots = torch.addcmul(gy * to_y, gx, to_x)
    rows = torch.lerp(dots[:, 0::2], dots[:, 1::2], fade_x.view(batch, 1, 1, width))
    return torch.lerp(rows[:, :1], rows[:, 1:], fade_y.view(batch, 1, height, 1))


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


def _threshold_mask(
    magnitude: Tensor, threshold: Tensor | float, foreground: Tensor, out: Tensor | None = None
) -> Tensor:
    """1[|P| > τ] ⊙ FG (B, 1, H, W) from magnitude |P| and foreground (nonzero = inside):
    bool, or written as 0/1 into ``out`` of any dtype."""
    return torch.logical_and(magnitude > threshold, foreground, out=out)


def _tile_shuffle(
    images: Tensor, grid: int, generator: torch.Generator | None, keep: Tensor | None = None
) -> Tensor:
    """Cut each image into grid × grid tiles and permute them, per sample: (B, C, H, W).

    keep: optional (B,) bool, samples whose tiles stay in place (the permutation is still
    drawn, so the random stream does not depend on it).
    """
    batch, channels, height, width = images.shape
    th, tw, count = height // grid, width // grid, grid * grid
    tiles = images.view(batch, channels, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(batch * count, channels, th, tw)
    keys = torch.rand(batch, count, generator=generator, device=images.device)
    order = keys.argsort(dim=1)
    if keep is not None:
        order = torch.where(keep.view(batch, 1), torch.arange(count, device=images.device), order)
    # Tile k of sample b is row b·count + k of ``tiles``: one index_select moves whole tiles.
    first = torch.arange(0, batch * count, count, device=images.device).view(batch, 1)
    shuffled = tiles.index_select(0, (order + first).flatten())
    shuffled = shuffled.view(batch, grid, grid, channels, th, tw).permute(0, 3, 1, 4, 2, 5)
    return shuffled.reshape(batch, channels, height, width)


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
        self._pool_cache: dict[torch.device, Tensor] = {}

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

    def _sources(self, x0: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """The uint8 images (B, 3, H, W) the operations start from, and which are textures (B,).

        The images are quantised into spare rows after the bank, so one ``index_select``
        picks texture or own image per sample (a per-sample ``torch.where`` on uint8 images
        costs more than the rest of the selection together).
        """
        batch, device = x0.shape[0], x0.device
        pool = self._pool(device, x0.shape)
        textures = len(pool) - batch
        pool[textures:].copy_((x0 + 1.0).mul_(127.5).round_().clamp_(0, 255))
        index = torch.arange(textures, textures + batch, device=device)
        use_texture = torch.zeros(batch, dtype=torch.bool, device=device)
        if textures:
            draw = torch.rand(batch, generator=generator, device=device)
            use_texture = draw < self.config.texture_probability
            choice = torch.randint(0, textures, (batch,), generator=generator, device=device)
            index = torch.where(use_texture, choice, index)
        return pool.index_select(0, index), use_texture

    def _pool(self, device: torch.device, shape: torch.Size) -> Tensor:
        """The texture bank followed by B spare rows, (K + B, 3, H, W) uint8 for images of
        ``shape`` (B, 3, H, W); kept per device, so the bank is copied there once."""
        textures = 0 if self.textures is None else len(self.textures)
        pool = self._pool_cache.get(device)
        if pool is None or pool.shape != (textures + shape[0], *shape[1:]):
            spare = torch.zeros(shape, dtype=torch.uint8, device=device)
            pool = spare if self.textures is None else torch.cat([self.textures.to(device), spare])
            self._pool_cache[device] = pool
        return pool

    def _appearance(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """Anomaly appearance A (B, 3, H, W) in [-1, 1] from textures or shuffled self-tiles."""
        source, use_texture = self._sources(x0, generator)
        augmented = apply_random_operations(source, self.config.num_operations, generator)
        chosen = _tile_shuffle(augmented, self.config.tile_grid, generator, keep=use_texture)
        return chosen.to(x0.dtype).div_(127.5).sub_(1.0)

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
        # τ = ∞ empties M_a at the last step, where the network sees no anomaly.
        tau = tau.masked_fill((t[:count] == self.num_steps - 1).view(count, 1, 1, 1), math.inf)

        fg = foreground[:count] > 0.5
        magnitude = noise.abs()
        mask = x0.new_zeros(batch, 1, height, width)
        simulated = x0.new_zeros(batch, 1, height, width)
        _threshold_mask(magnitude, cfg.threshold, fg, out=mask[:count])
        _threshold_mask(magnitude, tau, fg, out=simulated[:count])
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
