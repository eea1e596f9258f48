"""A small U-Net for the DDPM (Ho et al., 2020, Appendix B), scaled down for
28-64 px digits: one residual block per level on the way down and one on the
way up, no attention, and no separate middle block (the deepest level's two
blocks are the bottleneck).

Level i works at side S / 2^i with `channels[i]` channels; every residual
block receives the sinusoidal time embedding. Downsampling is a stride-2
convolution (ceil(S/2), so odd sides such as 7 work) and upsampling resizes
to the exact side of the matching skip connection, so any S >= 1 works; with
[16, 32, 64] a 28 px image goes 28 -> 14 -> 7.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_GROUPS = 8  # GroupNorm groups (Ho et al. use 32 at widths >= 128)
TIME_EMBEDDING_FACTOR = 4  # embedding width = 4 * channels[0] (Ho et al.)
MAX_PERIOD = 10_000  # Vaswani et al. (2017), section 3.5


def _groups(c: int) -> int:
    # GroupNorm needs a group count that divides the channels: the largest <= MAX_GROUPS
    return next(g for g in range(min(MAX_GROUPS, c), 0, -1) if c % g == 0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al., 2017, section 3.5; Ho et al., 2020,
    Appendix B) of timesteps t (B,) as (B, dim): [sin(t w_k), cos(t w_k)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, 2 * half)
    return F.pad(emb, (0, dim - 2 * half))  # odd dim: one zero column


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between
    (Ho et al., 2020, Appendix B; the Wide ResNet block of their code)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]  # (B, c_out) -> (B, c_out, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Upsample(nn.Module):
    """Nearest-neighbour resize to a given side, then a 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class UNet(nn.Module):
    """eps/x0/v-prediction network f(x_t, t) for (image_channels, S, S) images.

    `channels` lists the widths per resolution level, e.g. [16, 32, 64]
    (three levels, two downsamplings); `forward` takes x_t (B, C, S, S) and
    integer timesteps t (B,) and returns a (B, C, S, S) prediction.
    """

    def __init__(self, channels: list[int], image_channels: int = 3) -> None:
        super().__init__()
        if not channels:
            raise ValueError("the U-Net needs at least one level in `channels`")
        self.base = channels[0]
        time_dim = TIME_EMBEDDING_FACTOR * self.base
        self.time_mlp = nn.Sequential(nn.Linear(self.base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(image_channels, self.base, 3, padding=1)

        ins = [self.base, *channels[:-1]]
        self.down = nn.ModuleList(ResidualBlock(c_in, c, time_dim) for c_in, c in zip(ins, channels, strict=True))
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in channels[:-1])
        # level i takes the upsampled level i+1 (reduced to channels[i]) and its skip: 2 * channels[i]
        self.upsample = nn.ModuleList(Upsample(c_up, c) for c, c_up in zip(channels[:-1], channels[1:], strict=True))
        self.up = nn.ModuleList(ResidualBlock(2 * c, c, time_dim) for c in channels)

        self.out_norm = nn.GroupNorm(_groups(self.base), self.base)
        self.out = nn.Conv2d(self.base, image_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.base))  # (B, 4 * channels[0])
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # side s -> ceil(s / 2)
        for i in reversed(range(len(self.up))):
            skip = skips[i]
            if i < len(self.upsample):
                h = self.upsample[i](h, skip.shape[-2:])  # back to the skip's side, channels[i]
            h = self.up[i](torch.cat([h, skip], dim=1), temb)  # (B, 2 * channels[i], s, s) -> (B, channels[i], s, s)
        return self.out(F.silu(self.out_norm(h)))
