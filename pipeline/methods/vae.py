"""The VAE method (Kingma & Welling, 2014): the negative ELBO with a Bernoulli
decoder, minimised with Adam; samples decode z ~ N(0, I)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.config import VaeParams
from pipeline.methods.base import Method
from pipeline.models.vae import VAE


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
