"""Generators and discriminators for the GAN of the study (sections 6.2-6.3).

Two families, chosen by `gan.architecture`:

- mlp: fully connected nets in the style of Goodfellow et al. (2014), the
  paper's GAN: G latent-256-512-1024-(C*S*S), D (C*S*S)-512-256-1.
- conv: a small DCGAN (Radford et al., 2016) whose depth follows the image
  size: G starts from a `start x start` map (start in 4..7) and doubles it
  with stride-2 transposed convolutions until it reaches S (28 = 7 * 2^2,
  32 = 4 * 2^3, 64 = 4 * 2^4); D mirrors it.

Generators map (B, latent_dim) noise to (B, C, S, S) images in [-1, 1] (tanh);
discriminators map such images to one logit per image, shape (B,).
"""

from __future__ import annotations

import torch
from torch import nn

MLP_GENERATOR_HIDDEN = (256, 512, 1024)
MLP_DISCRIMINATOR_HIDDEN = (512, 256)
LEAKY_SLOPE = 0.2  # Radford et al. 2016, section 4
START_SIDES = range(4, 8)  # smallest feature map of the conv nets

# a stride-2 (transposed) convolution with kernel 4 and padding 1 halves (doubles) a side exactly
_KERNEL, _STRIDE, _PADDING = 4, 2, 1


def conv_pyramid(image_size: int) -> tuple[int, int]:
    """(start, n): image_size = start * 2**n with start in 4..7 and n >= 1."""
    side, n = image_size, 0
    while side % 2 == 0 and side // 2 >= START_SIDES.start:
        side, n = side // 2, n + 1
    if n == 0 or side not in START_SIDES:
        raise ValueError(
            f"the conv GAN needs image_size = s * 2**n with s in 4..7 and n >= 1 (e.g. 28, 32, 64), got {image_size}"
        )
    return side, n


class MlpGenerator(nn.Module):
    """Goodfellow et al. (2014) style G: latent -> 256 -> 512 -> 1024 -> C*S*S, tanh."""

    def __init__(self, latent_dim: int, image_size: int, channels: int = 3) -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in MLP_GENERATOR_HIDDEN:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(LEAKY_SLOPE)]
            width = hidden
        layers += [nn.Linear(width, channels * image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # (B, C*S*S) -> (B, C, S, S)


class MlpDiscriminator(nn.Module):
    """Goodfellow et al. (2014) style D: C*S*S -> 512 -> 256 -> 1 logit."""

    def __init__(self, image_size: int, channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, S, S) -> (B, C*S*S)
        width = channels * image_size * image_size
        for hidden in MLP_DISCRIMINATOR_HIDDEN:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(LEAKY_SLOPE)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B, 1) -> (B,)


class ConvGenerator(nn.Module):
    """DCGAN G: project noise to (width * 2^n, start, start), then n stride-2
    transposed convolutions, each halving the channels, up to (width, S, S),
    and a 3x3 convolution to C channels, tanh."""

    def __init__(self, latent_dim: int, image_size: int, width: int, channels: int = 3) -> None:
        super().__init__()
        self.start, n = conv_pyramid(image_size)
        self.top = width * 2**n
        self.project = nn.Sequential(
            nn.Linear(latent_dim, self.top * self.start * self.start),
            nn.BatchNorm1d(self.top * self.start * self.start),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        c = self.top
        for _ in range(n):  # (c, s, s) -> (c/2, 2s, 2s)
            layers += [nn.ConvTranspose2d(c, c // 2, _KERNEL, _STRIDE, _PADDING), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, channels, 3, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.top, self.start, self.start)  # (B, w*2^n, start, start)
        return self.upsample(h)


class ConvDiscriminator(nn.Module):
    """DCGAN D: a 3x3 convolution to `width` channels, n stride-2 convolutions
    doubling them down to (width * 2^n, start, start), and a linear logit.

    No BatchNorm: the discriminator probe (section 6.2) scores images one by
    one in eval mode, and batch statistics would make a score depend on the
    batch (and on running averages that mix real and fake batches).
    """

    def __init__(self, image_size: int, width: int, channels: int = 3) -> None:
        super().__init__()
        start, n = conv_pyramid(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        c = width
        for _ in range(n):  # (c, s, s) -> (2c, s/2, s/2)
            layers += [nn.Conv2d(c, 2 * c, _KERNEL, _STRIDE, _PADDING), nn.LeakyReLU(LEAKY_SLOPE)]
            c *= 2
        layers.append(nn.Flatten())  # (B, w*2^n, start, start) -> (B, w*2^n*start^2)
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(c * start * start, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x)).squeeze(1)  # (B, 1) -> (B,)
