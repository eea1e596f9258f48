"""The GAN family (Goodfellow et al., 2014) with non-saturating losses, and
GAN-SD (section 6.3): the same GAN whose discriminator loss on real images
gets a spectral-decoupling penalty (Pezeshki et al., 2021) during the first
`sd_epochs` epochs. With sd_lambda = 0 it is the plain GAN.

Two network families, chosen by `gan.architecture`:

- mlp: fully connected nets in the style of Goodfellow et al. (2014), the
  paper's GAN: G latent-256-512-1024-(C*S*S), D (C*S*S)-512-256-1.
- conv: a small DCGAN (Radford et al., 2016) whose depth follows the image
  size: G starts from a `start x start` map (start in 4..7) and doubles it
  with stride-2 transposed convolutions until it reaches S (28 = 7 * 2^2,
  32 = 4 * 2^3, 64 = 4 * 2^4); D mirrors it.

Generators map (B, latent_dim) noise to (B, C, S, S) images in [-1, 1] (tanh);
discriminators map such images to one logit per image, shape (B,). The
method's interface takes and returns images in [0, 1].

`gan.mode_seeking` > 0 adds the mode-seeking term of Mao et al. (2019) to
G's loss. On the colour factor the small conv GAN otherwise puts every sample
in one colour (P_c^u = 0 in every class, so nothing can be tested); the term
rewards images that differ when their noise differs. D and its probe are
unchanged.

`gan.ema_decay` > 0 samples with an exponential moving average of G's
weights (Yazıcı et al. 2019; `ema.py`) instead of G itself; D, its probe and
training are unchanged.

The stabilisers that make a GAN train on a few thousand images, each an
option, off at its default (the paper's GAN):
- `gan.loss: hinge`: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]
  and G minimises -E[D(G(z))] (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17)
  instead of the non-saturating BCE.
- `gan.spectral_norm`: every layer of D divided by its largest singular
  value, estimated by one power iteration per step (Miyato et al. 2018;
  `torch.nn.utils.parametrizations.spectral_norm`).
- `gan.r1` = gamma > 0: gamma / 2 * E||grad_x D(x)||^2 on real images added
  to D's loss (Mescheder et al. 2018, eq. 9).
- `gan.augment`: DiffAugment (Zhao et al. 2020) on every image D sees, real
  or generated, in both players' steps: a random translation by up to 1/8
  of the side and a cutout of half the side. Only these two: its colour
  transforms would change the colour factor itself.
The discriminator probe (section 6.2) stays D's BCE against "real" on the
un-augmented images; under the hinge loss its logits are on another scale,
and with `augment` D never trains on an uncut image (the cutout is always
applied, as in DiffAugment) while the probe shows it whole, so the probe's
level is comparable within a run, not with the plain GAN's. With `augment`
the SD penalty acts on the logits of the augmented real images D trains on.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pipeline.generative import ema
from pipeline.generative.base import IMAGE_CHANNELS, Method, to_signed, to_unit
from pipeline.params import Params
from pipeline.registry.gan import GanParams

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

    def __init__(self, image_size: int, channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, S, S) -> (B, C*S*S)
        width = channels * image_size * image_size
        for hidden in MLP_DISCRIMINATOR_HIDDEN:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(LEAKY_SLOPE)]
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


ADAM_BETA2 = 0.999  # PyTorch's default; DCGAN changes only beta1 (Radford et al. 2016, section 4)
TRANSLATION_RATIO = 0.125  # DiffAugment (Zhao et al. 2020): shifts of up to 1/8 of the side
CUTOUT_RATIO = 0.5  # ... and a square cutout of half the side
MODE_SEEKING_EPS = 1e-5  # Mao et al. (2019): the term is 1 / (ratio + eps)


def diff_augment(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment's translation and cutout (Zhao et al. 2020, section 3) of
    images (B, C, S, S) in [-1, 1], differentiable in x, drawn from torch's
    global RNG: each image shifted by up to S/8 pixels in each direction,
    then a square of side S/2 centred anywhere in it blanked; what comes in
    from beyond the edge, and the blanked square, is the background (-1)."""
    b, _, s, _ = x.shape
    grid = torch.arange(s, device=x.device)
    shift = round(s * TRANSLATION_RATIO)
    dy, dx = torch.randint(-shift, shift + 1, (2, b, 1, 1), device=x.device)
    # out[r, c] = x[r + dy, c + dx]; indices beyond the image land on the one-pixel background border
    rows = (grid.view(1, s, 1) + dy).clamp(-1, s) + 1
    cols = (grid.view(1, 1, s) + dx).clamp(-1, s) + 1
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0).permute(0, 2, 3, 1)  # (B, S+2, S+2, C)
    x = padded[torch.arange(b, device=x.device).view(b, 1, 1), rows, cols].permute(0, 3, 1, 2)
    size = round(s * CUTOUT_RATIO)
    cy, cx = torch.randint(0, s, (2, b, 1, 1), device=x.device)
    top, left = cy - size // 2, cx - size // 2
    inside = (grid.view(1, s, 1) >= top) & (grid.view(1, s, 1) < top + size)
    inside = inside & (grid.view(1, 1, s) >= left) & (grid.view(1, 1, s) < left + size)
    return x.masked_fill(inside.unsqueeze(1), -1.0)


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
        self.ema_decay = params.ema_decay
        self.hinge = params.loss == "hinge"
        self.r1 = params.r1
        self.augment = params.augment
        # G's moving average, sampled from when ema_decay > 0; its update count is
        # checkpointed so that a resumed run continues the warm-up where it stopped
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False) if self.ema_decay > 0 else None
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long, device=self.device))
        betas = (params.beta1, ADAM_BETA2)
        self.optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=params.lr, betas=betas),
            "discriminator": torch.optim.Adam(discriminator.parameters(), lr=params.lr, betas=betas),
        }

    def sd_active(self, epoch: int) -> bool:
        """Whether the spectral-decoupling term is on at this epoch (0-based)."""
        return self.sd_lambda > 0 and epoch < self.sd_epochs

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """D's logits on images in [-1, 1] as D sees them in training (augmented with `augment`)."""
        return self.discriminator(diff_augment(x) if self.augment else x)

    def d_loss(
        self, real: torch.Tensor, fake: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's loss and, within it, the SD penalty and the R1 penalty, on real
        and fake images in [-1, 1].

        BCE of D(real) against 1 and of D(fake) against 0 (Goodfellow et al.
        2014, eq. 1, maximised by D), or the hinge loss; plus sd_lambda / 2 *
        mean(D(real)^2) while the SD term is active (Pezeshki et al. 2021,
        section 4, "Spectral Decoupling": an L2 penalty on the logits, not on
        the weights; here on real images only, as in section 6.3); plus
        r1 / 2 * mean ||grad D(real)||^2 (Mescheder et al. 2018, eq. 9).
        """
        if self.r1 > 0:
            real = real.detach().requires_grad_(True)
        logits_real = self.critic(real)
        logits_fake = self.critic(fake)
        if self.hinge:
            loss = F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()
        else:
            loss = _bce(logits_real, 1.0) + _bce(logits_fake, 0.0)
        penalty = torch.zeros((), device=loss.device)
        if self.sd_active(epoch):
            penalty = self.sd_lambda / 2 * logits_real.pow(2).mean()
        r1 = torch.zeros((), device=loss.device)
        if self.r1 > 0:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            r1 = self.r1 / 2 * grad.pow(2).sum(dim=(1, 2, 3)).mean()
        return loss + penalty + r1, penalty, r1

    def g_loss(self, fake: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-saturating G loss -log D(G(z)) (Goodfellow et al. 2014, section
        3), or the hinge G loss -D(G(z)), plus mode_seeking x the
        mode-seeking term, which is returned too."""
        logits = self.critic(fake)
        loss = -logits.mean() if self.hinge else _bce(logits, 1.0)
        term = mode_seeking_term(fake, z) if self.mode_seeking > 0 else torch.zeros((), device=loss.device)
        return loss + self.mode_seeking * term, term

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        real = to_signed(x)
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        fake = self.generator(z)

        d_opt = self.optimizers["discriminator"]
        d_opt.zero_grad(set_to_none=True)
        d_loss, penalty, r1 = self.d_loss(real, fake.detach(), epoch)  # detach: this step updates D only
        d_loss.backward()
        d_opt.step()

        # G step against the freshly updated D; D's gradients from it are cleared before D's next step
        g_opt = self.optimizers["generator"]
        g_opt.zero_grad(set_to_none=True)
        g_loss, seeking = self.g_loss(fake, z)
        g_loss.backward()
        g_opt.step()
        if self.generator_ema is not None:
            self.ema_updates += 1
            ema.update(self.generator_ema, self.generator, ema.decay_at(self.ema_decay, int(self.ema_updates)))
        losses = {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "sd_penalty": penalty.item()}
        if self.mode_seeking > 0:
            losses["mode_seeking"] = seeking.item()
        if self.r1 > 0:
            losses["r1"] = r1.item()
        return losses

    def real_loss_per_image(self, x: torch.Tensor) -> torch.Tensor:
        """D's BCE against the "real" label, -log D(x), per image (B,) for x in
        [0, 1]; eval mode, no gradients (the discriminator probe, section 6.2)."""
        with self.inference():
            return _bce(self.discriminator(to_signed(x)), 1.0, reduction="none")

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = self.randn(n, self.latent_dim, generator=generator)
        network = self.generator if self.generator_ema is None else self.generator_ema
        return to_unit(network(z))


def with_spectral_norm(network: nn.Module) -> nn.Module:
    """Every convolution and linear layer of `network` spectrally normalised
    (Miyato et al. 2018), in place; returns it."""
    for name, module in list(network.named_modules()):
        if isinstance(module, nn.Conv2d | nn.Linear):
            parent = network.get_submodule(name.rpartition(".")[0]) if "." in name else network
            setattr(parent, name.rpartition(".")[2], spectral_norm(module))
    return network


def build(params: Params, image_size: int, device: torch.device | str, spectral_decoupling: bool = False) -> GanMethod:
    """The GAN of `params.gan` for (3, image_size, image_size) images, on
    `device`; with `spectral_decoupling`, GAN-SD: the same GAN with the term
    of `params.gan_sd`."""
    p = params.gan
    if p.architecture == "mlp":
        generator = MlpGenerator(p.latent_dim, image_size, IMAGE_CHANNELS)
        discriminator = MlpDiscriminator(image_size, IMAGE_CHANNELS)
    else:
        generator = ConvGenerator(p.latent_dim, image_size, p.width, IMAGE_CHANNELS)
        discriminator = ConvDiscriminator(image_size, p.width, IMAGE_CHANNELS)
    if p.spectral_norm:
        with_spectral_norm(discriminator)
    sd = params.gan_sd
    sd_lambda, sd_epochs = (sd.sd_lambda, sd.sd_epochs) if spectral_decoupling else (0.0, 0)
    shape = (IMAGE_CHANNELS, image_size, image_size)
    return GanMethod(generator.to(device), discriminator.to(device), p, shape, sd_lambda, sd_epochs)


def build_sd(params: Params, image_size: int, device: torch.device | str) -> GanMethod:
    """GAN-SD (section 6.3): `build` with spectral decoupling on."""
    return build(params, image_size, device, spectral_decoupling=True)
