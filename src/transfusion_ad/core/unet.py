"""TransFusion network (spec §4): a DDPM-style residual UNet with a positional channel, a sinusoidal
step embedding and three heads (mask logits, anomaly appearance, normal appearance)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transfusion_ad.core.recompute import recomputed_norm_act_conv

ATTENTION_MODES = ("sdpa", "naive")
_GROUPS = 32


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the raw integer step (dim/8 frequencies) followed by an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.half = dim // 8
        self.linear_1 = nn.Linear(dim // 4, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor) -> Tensor:
        """t: (B,) int64 -> (B, dim)."""
        exponent = -math.log(10_000.0) / (self.half - 1)
        freqs = torch.exp(torch.arange(self.half, device=t.device, dtype=torch.float32) * exponent)
        angles = t.to(torch.float32)[:, None] * freqs[None, :]
        features = torch.cat((angles.sin(), angles.cos()), dim=1)
        return self.linear_2(F.silu(self.linear_1(features)))


class ResidualBlock(nn.Module):
    """GroupNorm(32)-SiLU-conv, plus the projected step embedding, twice, with a residual path.

    ``recompute`` (off unless ``TransFusionUNet.enable_recompute``) keeps only the block input
    and the mid-block map for the backward pass (core.recompute); the values are the same.
    """

    recompute: bool = False

    def __init__(self, in_channels: int, out_channels: int, time_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_GROUPS, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_proj = nn.Linear(time_channels, out_channels)
        self.norm2 = nn.GroupNorm(_GROUPS, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.shortcut: nn.Module = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        """x: (B, C_in, H, W), temb: (B, time_channels) -> (B, C_out, H, W)."""
        h = self._norm_act_conv(self.norm1, self.conv1, x)
        h = h + self.time_proj(temb)[:, :, None, None]
        h = self._norm_act_conv(self.norm2, self.conv2, h)
        return h + self.shortcut(x)

    def _norm_act_conv(self, norm: nn.GroupNorm, conv: nn.Conv2d, x: Tensor) -> Tensor:
        if self.recompute:
            return recomputed_norm_act_conv(norm, conv, x)
        return conv(F.silu(norm(x)))


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H·W tokens (d_k = C, no normalisation), residual."""

    def __init__(self, channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        batch, channels, height, width = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        if self.mode == "sdpa":
            attended = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(channels)
            attended = torch.bmm(scores.softmax(dim=-1), v)
        tokens = tokens + self.out(attended)
        return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


class Stage(nn.Module):
    """One ResidualBlock, optionally followed by attention."""

    def __init__(
        self, in_channels: int, out_channels: int, time_channels: int, attention: str | None
    ) -> None:
        super().__init__()
        self.res = ResidualBlock(in_channels, out_channels, time_channels)
        self.attn = AttentionBlock(out_channels, attention) if attention else None

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        x = self.res(x, temb)
        return self.attn(x) if self.attn is not None else x


def _row_encoding(x: Tensor) -> Tensor:
    """The one-channel positional map sin(row index) for x (B, C, H, W) -> (B, 1, H, W)."""
    batch, _, height, width = x.shape
    rows = torch.arange(height, device=x.device, dtype=x.dtype).sin()
    return rows.view(1, 1, height, 1).expand(batch, 1, height, width)


class TransFusionUNet(nn.Module):
    """Residual UNet of spec §4.

    Input: concat[image (B, in_channels, H, W), mask (B, 1, H, W)] and the step t (B,); the
    positional channel is appended inside. H and W must be divisible by 2^(levels − 1).
    Widths are base_width·cumprod(channel_mults); attention_levels are 0-based level indices
    (the middle block always has attention).
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        base_width: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (2, 3),
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        channel_mults = tuple(int(m) for m in channel_mults)
        attention_levels = tuple(int(level) for level in attention_levels)
        self.config = {
            "in_channels": in_channels,
            "base_width": base_width,
            "channel_mults": channel_mults,
            "num_res_blocks": num_res_blocks,
            "attention_levels": attention_levels,
            "attention": attention,
        }
        _validate(self.config)
        self.in_channels = in_channels
        self.num_levels = len(channel_mults)
        time_channels = 4 * base_width

        self.stem = nn.Conv2d(in_channels + 2, base_width, kernel_size=3, padding=1)
        self.time_embedding = TimeEmbedding(time_channels)

        skip_channels = [base_width]
        self.down = nn.ModuleList()
        width = base_width
        for level, mult in enumerate(channel_mults):
            attn = attention if level in attention_levels else None
            out = width * mult
            for _ in range(num_res_blocks):
                self.down.append(Stage(width, out, time_channels, attn))
                width = out
                skip_channels.append(width)
            if level < self.num_levels - 1:
                self.down.append(nn.Conv2d(width, width, kernel_size=3, stride=2, padding=1))
                skip_channels.append(width)

        self.middle = nn.ModuleList(
            [
                ResidualBlock(width, width, time_channels),
                AttentionBlock(width, attention),
                ResidualBlock(width, width, time_channels),
            ]
        )

        self.up = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            attn = attention if level in attention_levels else None
            for block in range(num_res_blocks + 1):
                out = width // channel_mults[level] if block == num_res_blocks else width
                self.up.append(Stage(width + skip_channels.pop(), out, time_channels, attn))
                width = out
            if level > 0:
                self.up.append(nn.ConvTranspose2d(width, width, kernel_size=4, stride=2, padding=1))

        self.anomaly_head = nn.Sequential(
            nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1)
        )
        self.normal_head = nn.Conv2d(width, in_channels, 3, padding=1)
        self.mask_head = nn.Sequential(
            nn.BatchNorm2d(width), nn.SiLU(), nn.Conv2d(width, 1, 3, padding=1)
        )

    def enable_recompute(self, enabled: bool = True) -> TransFusionUNet:
        """Recompute each residual block's GroupNorm+SiLU in the backward pass instead of
        keeping it (core.recompute): the same values and gradients, for much less activation
        memory in training. The trainer turns it on; inference does not record gradients, so
        it changes nothing there. Returns the model."""
        for module in self.modules():
            if isinstance(module, ResidualBlock):
                module.recompute = enabled
        return self

    def forward(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, in_channels + 1, H, W) = [image, mask]; t: (B,) int64.

        Returns mask logits (B, 1, H, W), anomaly appearance (B, 3, H, W), normal appearance
        (B, 3, H, W).
        """
        self._check_input(x, t)
        temb = self.time_embedding(t)
        h = self.stem(torch.cat((x, _row_encoding(x)), dim=1))
        skips = [h]
        for module in self.down:
            h = module(h, temb) if isinstance(module, Stage) else module(h)
            skips.append(h)
        h = self.middle[0](h, temb)
        h = self.middle[1](h)
        h = self.middle[2](h, temb)
        for module in self.up:
            if isinstance(module, Stage):
                h = module(torch.cat((h, skips.pop()), dim=1), temb)
            else:
                h = module(h)
        return self.mask_head(h), self.anomaly_head(h), self.normal_head(h)

    def _check_input(self, x: Tensor, t: Tensor) -> None:
        expected = self.in_channels + 1
        if x.dim() != 4 or x.shape[1] != expected:
            raise ValueError(
                f"Expected input (B, {expected}, H, W) = concat[image, mask], got {tuple(x.shape)}."
            )
        factor = 2 ** (self.num_levels - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"Image size {tuple(x.shape[2:])} must be divisible by {factor} for "
                f"{self.num_levels} levels; resize the images."
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"Expected steps t of shape ({x.shape[0]},), got {tuple(t.shape)}.")


def _validate(config: dict) -> None:
    """Reject configurations the architecture cannot build, naming the offending value."""
    in_channels, base_width = config["in_channels"], config["base_width"]
    channel_mults, num_res_blocks = config["channel_mults"], config["num_res_blocks"]
    attention_levels, attention = config["attention_levels"], config["attention"]
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}.")
    if base_width < _GROUPS or base_width % _GROUPS:
        raise ValueError(
            f"base_width must be a positive multiple of {_GROUPS} (GroupNorm groups), "
            f"got {base_width}."
        )
    if not channel_mults or any(m < 1 for m in channel_mults):
        raise ValueError(
            f"channel_mults must be a non-empty list of ints >= 1, got {channel_mults}."
        )
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}.")
    bad = [level for level in attention_levels if not 0 <= level < len(channel_mults)]
    if bad:
        raise ValueError(
            f"attention_levels {bad} out of range for {len(channel_mults)} levels "
            f"(0-based, 0..{len(channel_mults) - 1})."
        )
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}.")
