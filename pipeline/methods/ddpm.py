"""The DDPM method (Ho et al., 2020): a linear noise schedule, a U-Net trained
by MSE on one of three targets, an EMA copy of it for sampling, and two
samplers.

Targets (`ddpm.target`), all of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps:
- eps: the noise (Ho et al. 2020, eq. 14, the simplified objective);
- x0:  the clean image;
- v:   sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho, 2022, section 4).

Samplers (`ddpm.sampler`): ancestral sampling through all T steps (Ho et al.
2020, Algorithm 2, written with the posterior q(x_{t-1} | x_t, x0) of eqs.
6-7), or deterministic DDIM (Song et al., 2021, eq. 12 with sigma = 0) over
`sampling_steps` evenly spaced timesteps. Both read the network's output
through `to_x0_eps`, so the three targets share one sampler.

Timesteps are 0-based here: t = 0..T-1 is the paper's 1..T.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from pipeline.config import DdpmParams
from pipeline.methods.base import Method, to_signed, to_unit
from pipeline.models.unet import UNet

# the EMA decay after n updates is min(ema_decay, (1 + n) / (EMA_WARMUP + n)), as in
# TensorFlow's ExponentialMovingAverage(num_updates) and diffusers' EMAModel: with a short
# run and a decay of 0.999 the average would otherwise keep a large share of the random init
EMA_WARMUP = 10


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
        self.sampler = params.sampler
        self.sampling_steps = min(params.sampling_steps, params.timesteps)
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
        return min(self.ema_decay, (1 + updates) / (EMA_WARMUP + updates))

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * weights, d = `ema_decay_at` this update."""
        self.ema_updates += 1
        decay = self.ema_decay_at(int(self.ema_updates))
        for shadow, weight in zip(self.ema.parameters(), self.unet.parameters(), strict=True):
            shadow.lerp_(weight, 1 - decay)
        for shadow, buffer in zip(self.ema.buffers(), self.unet.buffers(), strict=True):
            shadow.copy_(buffer)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """MSE between the U-Net's output and the target, for images x in [0, 1]
        at uniformly drawn timesteps (Ho et al. 2020, Algorithm 1)."""
        x0 = to_signed(x)
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
        x = self._ancestral(x, generator) if self.sampler == "ddpm" else self._ddim(x)
        return to_unit(x)

    def _denoise(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        return self.to_x0_eps(x, t, self.ema(x, t))

    def _ancestral(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in reversed(range(self.timesteps)):
            x0, _ = self._denoise(x, step)
            beta, abar, abar_prev = self.betas[step], self.alphas_cumprod[step], self.alphas_cumprod_prev[step]
            # posterior mean of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eq. 7)
            mean = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x) / (1 - abar)
            if step == 0:
                return mean  # the last step adds no noise (Algorithm 2, z = 0 at t = 1)
            beta_tilde = (1 - abar_prev) / (1 - abar) * beta  # posterior variance (eq. 7)
            x = mean + beta_tilde.sqrt() * self.randn(*x.shape, generator=generator)
        return x

    def _ddim(self, x: torch.Tensor) -> torch.Tensor:
        # evenly spaced from T-1 down to 0, so the first step starts from pure noise
        steps = torch.linspace(self.timesteps - 1, 0, self.sampling_steps).round().long().unique_consecutive().tolist()
        for i, step in enumerate(steps):
            x0, eps = self._denoise(x, step)
            abar_prev = self.alphas_cumprod[steps[i + 1]] if i + 1 < len(steps) else torch.ones_like(self.betas[0])
            x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps  # Song et al. 2021, eq. 12, sigma_t = 0
        return x
