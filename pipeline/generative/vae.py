"""The VAE family (Kingma & Welling, 2014): a convolutional Gaussian encoder
q(z|x) and Bernoulli decoder p(x|z) over (C, S, S) images, and the method
that trains them on the negative ELBO with Adam and samples by decoding
z ~ N(0, I).

The network is deterministic: it maps images to (mu, log sigma^2) and latents
to logits. Sampling z (the reparameterisation) and the ELBO belong to
`VaeMethod`, which owns the randomness.

Two changes of the recipe, each off at its default (the paper's VAE):
- `vae.kl_warmup` epochs: the KL term's weight rises linearly from 1/warmup
  to 1 over the first epochs (Bowman et al. 2016, section 3.1, "KL cost
  annealing"), so that the decoder learns to use z before the prior pulls q
  towards it. The reported loss stays the full negative ELBO.
- `vae.prior: gmm`: samples are decoded from a Gaussian mixture of
  `vae.prior_components` components fitted, after training, to the encoder's
  means of the training images (the ex-post density estimation of Ghosh et
  al. 2020, section 4, "Regularized autoencoders", a two-stage prior in the
  spirit of Dai & Wipf 2019): N(0, I) covers regions of latent space that the
  aggregate posterior leaves empty, and those decode to the blurred
  non-digits that the oracles misread. The mixture (full covariances,
  scikit-learn's `GaussianMixture`) is fitted to the model's latents only,
  never to labels or the factor, and kept in the checkpoint.
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
        self.kl_warmup = params.kl_warmup
        self.prior = params.prior
        self.optimizers = {"vae": torch.optim.Adam(vae.parameters(), lr=params.lr)}
        if self.prior == "gmm":  # the fitted mixture: weights, means and Cholesky factors of the covariances
            k, d = params.prior_components, vae.latent_dim
            device = next(vae.parameters()).device
            self.register_buffer("prior_weights", torch.full((k,), 1.0 / k, device=device))
            self.register_buffer("prior_means", torch.zeros(k, d, device=device))
            self.register_buffer("prior_scales", torch.eye(d, device=device).repeat(k, 1, 1))

    def kl_weight(self, epoch: int) -> float:
        """The KL term's weight in the training loss at `epoch` (0-based)."""
        return min(1.0, (epoch + 1) / self.kl_warmup) if self.kl_warmup > 0 else 1.0

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
        (losses["recon"] + self.kl_weight(epoch) * losses["kl"]).backward()
        opt.step()
        return {name: value.item() for name, value in losses.items()}

    @torch.no_grad()
    def encoded_means(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """The encoder's means of q(z|x) for uint8 (N, C, S, S) images, (N, latent_dim)."""
        with self.inference():
            return torch.cat(
                [
                    self.vae.encode(images[i : i + batch_size].float() / 255)[0]
                    for i in range(0, len(images), batch_size)
                ]
            )

    def after_training(self, images: torch.Tensor, seed: int) -> None:
        """With `prior: gmm`, fit the mixture to the training images' latent means.

        The fit runs on one thread (OpenMP and BLAS): scikit-learn's k-means
        initialisation adds its threads' partial sums in whatever order they
        finish, so on several threads the same seed could give other bits."""
        if self.prior != "gmm":
            return
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        latents = self.encoded_means(images).double().cpu().numpy()
        k = len(self.prior_weights)
        with threadpool_limits(limits=1):
            gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4).fit(latents)
        self.prior_weights.copy_(torch.from_numpy(gmm.weights_))
        self.prior_means.copy_(torch.from_numpy(gmm.means_))
        self.prior_scales.copy_(torch.linalg.cholesky(torch.from_numpy(gmm.covariances_)))

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        eps = self.randn(n, self.vae.latent_dim, generator=generator)
        if self.prior == "gmm":  # a component per sample, then its mean + its covariance's Cholesky factor x eps
            weights = self.prior_weights.to(generator.device)
            component = torch.multinomial(weights, n, replacement=True, generator=generator).to(self.device)
            z = self.prior_means[component] + (self.prior_scales[component] @ eps.unsqueeze(-1)).squeeze(-1)
        else:
            z = eps  # prior p(z) = N(0, I)
        return torch.sigmoid(self.vae.decode(z))  # the decoder's pixel means


def build(params: Params, image_size: int, device: torch.device | str) -> VaeMethod:
    """The VAE of `params.vae` for (3, image_size, image_size) images, on `device`."""
    p = params.vae
    vae = VAE(image_size, p.latent_dim, p.width, IMAGE_CHANNELS).to(device)
    return VaeMethod(vae, p, (IMAGE_CHANNELS, image_size, image_size))
