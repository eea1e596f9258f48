"""The VAE family (Kingma & Welling, 2014): a convolutional Gaussian encoder
q(z|x) and Bernoulli decoder p(x|z) over (C, S, S) images, and the method
that trains them on the negative ELBO with Adam and samples by decoding
z ~ N(0, I).

The network is deterministic: it maps images to (mu, log sigma^2) and latents
to logits. Sampling z (the reparameterisation) and the ELBO belong to
`VaeMethod`, which owns the randomness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.generative.base import IMAGE_CHANNELS, Method
from pipeline.params import Params
from pipeline.registry.vae import VaeParams

# each stride-2 convolution (kernel 4, padding 1) halves an even side exactly
_KERNEL, _STRIDE, _PADDING = 4, 2, 1
_NUM_DOWNSAMPLINGS = 2


def _latent_side(image_size: int) -> int:
    factor = _STRIDE**_NUM_DOWNSAMPLINGS
    if image_size < factor or image_size % factor:
        raise ValueError(f"the VAE needs an image_size divisible by {factor} (e.g. 28, 32, 64), got {image_size}")
    return image_size // factor


class Encoder(nn.Module):
    """(B, C, S, S) images -> the mean and log-variance of q(z|x), each (B, latent_dim)."""

    def __init__(self, image_size: int, latent_dim: int, width: int, channels: int = 3) -> None:
        super().__init__()
        side = _latent_side(image_size)
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, _KERNEL, _STRIDE, _PADDING),  # S -> S/2
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, _KERNEL, _STRIDE, _PADDING),  # S/2 -> S/4
            nn.ReLU(),
            nn.Flatten(),  # (B, 2w, S/4, S/4) -> (B, 2w * (S/4)^2)
        )
        self.mean = nn.Linear(2 * width * side * side, latent_dim)
        self.log_var = nn.Linear(2 * width * side * side, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.log_var(h)


class Decoder(nn.Module):
    """(B, latent_dim) latents -> (B, C, S, S) Bernoulli logits; the encoder mirrored."""

    def __init__(self, image_size: int, latent_dim: int, width: int, channels: int = 3) -> None:
        super().__init__()
        self.side = _latent_side(image_size)
        self.width = width
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * self.side * self.side), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, _KERNEL, _STRIDE, _PADDING),  # S/4 -> S/2
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, _KERNEL, _STRIDE, _PADDING),  # S/2 -> S
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, 2 * self.width, self.side, self.side)  # (B, 2w, S/4, S/4)
        return self.upsample(h)


class VAE(nn.Module):
    """Encoder and decoder for (channels, image_size, image_size) images.

    Two stride-2 convolutions (width, 2*width channels) down, two transposed
    ones up; `decode` returns logits (apply a sigmoid for pixel means).
    """

    def __init__(self, image_size: int, latent_dim: int, width: int, channels: int = 3) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = Encoder(image_size, latent_dim, width, channels)
        self.decoder = Decoder(image_size, latent_dim, width, channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x) for images x in [0, 1]."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x|z), shape (B, C, S, S)."""
        return self.decoder(z)


class VaeMethod(Method):
    """Trains a `VAE` on the negative ELBO, averaged over the batch."""

    def __init__(self, vae: VAE, params: VaeParams, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.vae = vae
        self.image_shape = image_shape
        self.optimizers = {"vae": torch.optim.Adam(vae.parameters(), lr=params.lr)}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative ELBO ("loss") = reconstruction + KL, each summed over
        pixels / latent dimensions and averaged over the batch of x in [0, 1]."""
        mu, log_var = self.vae.encode(x)
        # reparameterisation trick: z = mu + sigma * eps (Kingma & Welling 2014, eq. 10 / section 2.4)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        logits = self.vae.decode(z)
        # -log p(x|z) of a Bernoulli decoder; grey levels in [0, 1] act as soft targets
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        # KL(q(z|x) || N(0, I)) in closed form (Kingma & Welling 2014, Appendix B)
        kl = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp()) / len(x)
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        losses = self.loss(x)
        losses["loss"].backward()
        opt.step()
        return {name: value.item() for name, value in losses.items()}

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = self.randn(n, self.vae.latent_dim, generator=generator)  # prior p(z) = N(0, I)
        return torch.sigmoid(self.vae.decode(z))  # the decoder's pixel means


def build(params: Params, image_size: int, device: torch.device | str) -> VaeMethod:
    """The VAE of `params.vae` for (3, image_size, image_size) images, on `device`."""
    p = params.vae
    vae = VAE(image_size, p.latent_dim, p.width, IMAGE_CHANNELS).to(device)
    return VaeMethod(vae, p, (IMAGE_CHANNELS, image_size, image_size))
