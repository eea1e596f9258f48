"""The GAN method (Goodfellow et al., 2014) with non-saturating losses, and
GAN-SD (section 6.3): the same GAN whose discriminator loss on real images
gets a spectral-decoupling penalty (Pezeshki et al., 2021) during the first
`sd_epochs` epochs. With sd_lambda = 0 it is the plain GAN.

`gan.mode_seeking` > 0 adds the mode-seeking term of Mao et al. (2019) to
G's loss. On the colour factor the small conv GAN otherwise puts every sample
in one colour (P_c^u = 0 in every class, so nothing can be tested); the term
rewards images that differ when their noise differs. D and its probe are
unchanged.

Networks see images in [-1, 1] (tanh generators); the interface in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import GanParams
from pipeline.methods.base import Method, to_signed, to_unit

ADAM_BETA2 = 0.999  # PyTorch's default; DCGAN changes only beta1 (Radford et al. 2016, section 4)
MODE_SEEKING_EPS = 1e-5  # Mao et al. (2019): the term is 1 / (ratio + eps)


def _bce(logits: torch.Tensor, label: float, reduction: str = "mean") -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction=reduction)


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mao et al. (2019), eq. 3: 1 / (d_I / d_z + eps), the two halves of the
    batch paired, d_I and d_z mean absolute differences of images and noise.
    Small when images differ as much as their noise does."""
    half = len(fake) // 2
    if half == 0:
        return torch.zeros((), device=fake.device)
    d_image = (fake[:half] - fake[half : 2 * half]).abs().mean()
    d_noise = (z[:half] - z[half : 2 * half]).abs().mean()
    return 1 / (d_image / d_noise + MODE_SEEKING_EPS)


class GanMethod(Method):
    """Alternating D and G steps, one each per batch.

    `sd_lambda` > 0 adds sd_lambda / 2 * mean(D(x_real)^2) to D's loss while
    epoch < `sd_epochs` (GAN-SD); both default to off.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        params: GanParams,
        image_shape: tuple[int, int, int],
        sd_lambda: float = 0.0,
        sd_epochs: int = 0,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = params.latent_dim
        self.mode_seeking = params.mode_seeking
        self.image_shape = image_shape
        self.sd_lambda = sd_lambda
        self.sd_epochs = sd_epochs
        betas = (params.beta1, ADAM_BETA2)
        self.optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=params.lr, betas=betas),
            "discriminator": torch.optim.Adam(discriminator.parameters(), lr=params.lr, betas=betas),
        }

    def sd_active(self, epoch: int) -> bool:
        """Whether the spectral-decoupling term is on at this epoch (0-based)."""
        return self.sd_lambda > 0 and epoch < self.sd_epochs

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss and, within it, the SD penalty, on real and fake images in [-1, 1].

        BCE of D(real) against 1 and of D(fake) against 0 (Goodfellow et al.
        2014, eq. 1, maximised by D), plus sd_lambda / 2 * mean(D(real)^2) while
        the SD term is active (Pezeshki et al. 2021, section 4, "Spectral
        Decoupling": an L2 penalty on the logits, not on the weights; here on
        real images only, as in section 6.3).
        """
        logits_real = self.discriminator(real)
        logits_fake = self.discriminator(fake)
        loss = _bce(logits_real, 1.0) + _bce(logits_fake, 0.0)
        penalty = torch.zeros((), device=loss.device)
        if self.sd_active(epoch):
            penalty = self.sd_lambda / 2 * logits_real.pow(2).mean()
        return loss + penalty, penalty

    def g_loss(self, fake: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-saturating G loss -log D(G(z)) (Goodfellow et al. 2014, section
        3), plus mode_seeking x the mode-seeking term, which is returned too."""
        loss = _bce(self.discriminator(fake), 1.0)
        term = mode_seeking_term(fake, z) if self.mode_seeking > 0 else torch.zeros((), device=loss.device)
        return loss + self.mode_seeking * term, term

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        real = to_signed(x)
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        fake = self.generator(z)

        d_opt = self.optimizers["discriminator"]
        d_opt.zero_grad(set_to_none=True)
        d_loss, penalty = self.d_loss(real, fake.detach(), epoch)  # detach: this step updates D only
        d_loss.backward()
        d_opt.step()

        # G step against the freshly updated D; D's gradients from it are cleared before D's next step
        g_opt = self.optimizers["generator"]
        g_opt.zero_grad(set_to_none=True)
        g_loss, seeking = self.g_loss(fake, z)
        g_loss.backward()
        g_opt.step()
        losses = {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "sd_penalty": penalty.item()}
        if self.mode_seeking > 0:
            losses["mode_seeking"] = seeking.item()
        return losses

    def real_loss_per_image(self, x: torch.Tensor) -> torch.Tensor:
        """D's BCE against the "real" label, -log D(x), per image (B,) for x in
        [0, 1]; eval mode, no gradients (the discriminator probe, section 6.2)."""
        with self.inference():
            return _bce(self.discriminator(to_signed(x)), 1.0, reduction="none")

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = self.randn(n, self.latent_dim, generator=generator)
        return to_unit(self.generator(z))
