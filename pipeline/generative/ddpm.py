"""The DDPM family (Ho et al., 2020): a small U-Net, a linear noise schedule,
MSE training on one of three targets and an EMA copy of the network for
sampling. The samplers themselves live apart, in `samplers.py`.

Targets (`ddpm.target`), all of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps:
- eps: the noise (Ho et al. 2020, eq. 14, the simplified objective);
- x0:  the clean image;
- v:   sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho, 2022, section 4).

The U-Net (Ho et al., 2020, Appendix B) is scaled down for 28-64 px images:
one residual block per level on the way down and one on the way up, no
attention, and no separate middle block (the deepest level's two blocks are
the bottleneck). Level i works at side S / 2^i with `channels[i]` channels;
every residual block receives the sinusoidal time embedding. Downsampling is
a stride-2 convolution (ceil(S/2), so odd sides such as 7 work) and
upsampling resizes to the exact side of the matching skip connection, so any
S >= 1 works; with [16, 32, 64] a 28 px image goes 28 -> 14 -> 7.

Timesteps are 0-based here: t = 0..T-1 is the paper's 1..T.

With `ddpm.formulation: edm` the same U-Net is trained and sampled as in
Karras et al. 2022 ("Elucidating the design space of diffusion-based
generative models", Table 1): x + sigma n with log-normal sigma, the network
F preconditioned as D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) and
trained with the weighting that makes F's target unit-variance, sampled by
the deterministic Heun solver (their Algorithm 1) over `sampling_steps`
noise levels spaced with rho = 7. The U-Net's time embedding then reads
c_noise = ln(sigma) / 4, scaled by NOISE_SCALE to the range timesteps span.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.generative import ema
from pipeline.generative.base import IMAGE_CHANNELS, Method, to_signed, to_unit
from pipeline.generative.samplers import ancestral, ddim, heun, karras_sigmas
from pipeline.params import Params
from pipeline.registry.ddpm import DdpmParams

MAX_GROUPS = 8  # GroupNorm groups (Ho et al. use 32 at widths >= 128)
TIME_EMBEDDING_FACTOR = 4  # embedding width = 4 * channels[0] (Ho et al.)
MAX_PERIOD = 10_000  # Vaswani et al. (2017), section 3.5

# EDM (Karras et al. 2022, Table 1 and section 5): data standard deviation,
# the log-normal training distribution of sigma, the sampler's range and spacing
SIGMA_DATA = 0.5
P_MEAN, P_STD = -1.2, 1.2
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
NOISE_SCALE = 1000.0  # c_noise in about [-1.6, 1.1] -> the span of 0..1000 timesteps in the sinusoid


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


def _per_image(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1), to broadcast over images


class DdpmMethod(Method):
    """Denoising diffusion on images rescaled to [-1, 1]; samples with the EMA U-Net.

    The EMA is updated inside `train_step`, right after the optimizer step.
    """

    def __init__(self, unet: UNet, params: DdpmParams, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.unet = unet
        self.ema = copy.deepcopy(unet).requires_grad_(False)
        self.image_shape = image_shape
        self.timesteps = params.timesteps
        self.target = params.target
        self.formulation = params.formulation
        self.sampler = params.sampler
        self.sampling_steps = (
            params.sampling_steps if params.formulation == "edm" else min(params.sampling_steps, params.timesteps)
        )
        self.ema_decay = params.ema_decay
        self.optimizers = {"unet": torch.optim.Adam(unet.parameters(), lr=params.lr)}

        device = next(unet.parameters()).device
        # linear schedule beta_1..beta_T (Ho et al. 2020, section 4), computed in float64 then stored as float32
        betas = torch.linspace(params.beta_start, params.beta_end, params.timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        alphas_cumprod_prev = torch.cat(
            [torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]]
        )  # abar_{t-1}; 1 before step 0
        # derived from params, so left out of checkpoints
        for name, value in [
            ("betas", betas),
            ("alphas_cumprod", alphas_cumprod),
            ("alphas_cumprod_prev", alphas_cumprod_prev),
        ]:
            self.register_buffer(name, value.float().to(device), persistent=False)
        # kept in checkpoints, so that a resumed run continues the EMA warm-up where it stopped
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long, device=device))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4)."""
        abar = _per_image(self.alphas_cumprod, t)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def training_target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network learns to predict at (x0, eps, t) for the configured target."""
        if self.target == "eps":
            return eps
        if self.target == "x0":
            return x0
        abar = _per_image(self.alphas_cumprod, t)
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0  # v (Salimans & Ho 2022, section 4)

    def to_x0_eps(
        self, x_t: torch.Tensor, t: torch.Tensor, prediction: torch.Tensor, clip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) implied by a network prediction of the configured target at (x_t, t).

        With `clip`, x0_hat is clipped to the data range [-1, 1] and eps_hat
        re-derived from the clipped x0_hat, so the pair still satisfies
        x_t = sqrt(abar) x0_hat + sqrt(1 - abar) eps_hat (as in the DDIM
        sampler of Dhariwal & Nichol's guided-diffusion).
        """
        abar = _per_image(self.alphas_cumprod, t)
        a, s = abar.sqrt(), (1 - abar).sqrt()  # signal and noise scales
        if self.target == "eps":
            eps = prediction
            x0 = (x_t - s * eps) / a
        elif self.target == "x0":
            x0 = prediction
            eps = (x_t - a * x0) / s
        else:  # v: rotate (x_t, v) back to (x0, eps); Salimans & Ho 2022, section 4
            x0 = a * x_t - s * prediction
            eps = s * x_t + a * prediction
        if clip:
            clipped = x0.clamp(-1, 1)
            # exact when nothing was clipped; x_t - a * clipped = s * eps + a * (x0 - clipped)
            eps = eps + a / s * (x0 - clipped)
            x0 = clipped
        return x0, eps

    def ema_decay_at(self, updates: int) -> float:
        """The EMA decay used by update number `updates` (1-based), warm-up included."""
        return ema.decay_at(self.ema_decay, updates)

    def update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * weights, d = `ema_decay_at` this update."""
        self.ema_updates += 1
        ema.update(self.ema, self.unet, self.ema_decay_at(int(self.ema_updates)))

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise) at noise levels `sigma` (Karras et al. 2022, Table 1)."""
        total = sigma**2 + SIGMA_DATA**2
        return SIGMA_DATA**2 / total, sigma * SIGMA_DATA / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4

    def edm_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """E ||F(c_in y; c_noise) - (x0 - c_skip y) / c_out||^2 with y = x0 + sigma n,
        ln sigma ~ N(P_MEAN, P_STD^2): lambda(sigma) ||D(y; sigma) - x0||^2 with
        lambda = 1 / c_out^2 (Karras et al. 2022, eq. 8 and Table 1)."""
        sigma = (torch.randn(len(x0), 1, 1, 1, device=x0.device) * P_STD + P_MEAN).exp()
        noisy = x0 + sigma * torch.randn_like(x0)
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        prediction = self.unet(c_in * noisy, NOISE_SCALE * c_noise.flatten())
        return F.mse_loss(prediction, (x0 - c_skip * noisy) / c_out)

    def denoised(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """D(x; sigma) of the EMA network: the EDM denoiser's estimate of x0."""
        level = torch.full((len(x), 1, 1, 1), sigma, device=x.device)
        c_skip, c_out, c_in, c_noise = self.preconditioning(level)
        return c_skip * x + c_out * self.ema(c_in * x, NOISE_SCALE * c_noise.flatten())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """MSE between the U-Net's output and the target, for images x in [0, 1]
        at uniformly drawn timesteps (Ho et al. 2020, Algorithm 1), or EDM's loss."""
        x0 = to_signed(x)
        if self.formulation == "edm":
            return self.edm_loss(x0)
        t = torch.randint(0, self.timesteps, (len(x),), device=x.device)
        eps = torch.randn_like(x0)
        prediction = self.unet(self.q_sample(x0, t, eps), t)
        return F.mse_loss(prediction, self.training_target(x0, eps, t))

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        opt = self.optimizers["unet"]
        opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        opt.step()
        self.update_ema()
        return {"loss": loss.item()}

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x = self.randn(n, *self.image_shape, generator=generator)  # x_T ~ N(0, I)
        if self.formulation == "edm":
            sigmas = karras_sigmas(self.sampling_steps, SIGMA_MIN, SIGMA_MAX, RHO)
            return to_unit(heun(self.denoised, x * SIGMA_MAX, sigmas))
        x = ancestral(self, x, generator) if self.sampler == "ddpm" else ddim(self, x, self.sampling_steps)
        return to_unit(x)

    def denoise(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) from the EMA network at integer timestep `step`."""
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        return self.to_x0_eps(x, t, self.ema(x, t))


def build(params: Params, image_size: int, device: torch.device | str) -> DdpmMethod:
    """The DDPM of `params.ddpm` for (3, image_size, image_size) images, on `device`."""
    p = params.ddpm
    return DdpmMethod(UNet(p.channels, IMAGE_CHANNELS).to(device), p, (IMAGE_CHANNELS, image_size, image_size))
