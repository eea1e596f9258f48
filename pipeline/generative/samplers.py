"""The two samplers of the DDPM family, apart from its training (as
diffusers keeps schedulers apart from networks):

- `ancestral`: through all T steps (Ho et al. 2020, Algorithm 2, written with
  the posterior q(x_{t-1} | x_t, x0) of eqs. 6-7);
- `ddim`: deterministic DDIM (Song et al., 2021, eq. 12 with sigma = 0) over
  `steps` evenly spaced timesteps;
- `heun`: EDM's deterministic second-order solver of the probability-flow
  ODE (Karras et al. 2022, Algorithm 1) over noise levels from
  `karras_sigmas`, for `ddpm.formulation: edm`.

Both read the network through `method.denoise`, which turns any of the three
training targets into (x0_hat, eps_hat), so the targets share one sampler.
Images are in [-1, 1]; timesteps are 0-based.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pipeline.generative.ddpm import DdpmMethod


def ancestral(method: DdpmMethod, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x_0 from x_T = `x`, drawing the added noise from `generator`."""
    for step in reversed(range(method.timesteps)):
        x0, _ = method.denoise(x, step)
        beta, abar, abar_prev = method.betas[step], method.alphas_cumprod[step], method.alphas_cumprod_prev[step]
        # posterior mean of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eq. 7)
        mean = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x) / (1 - abar)
        if step == 0:
            return mean  # the last step adds no noise (Algorithm 2, z = 0 at t = 1)
        beta_tilde = (1 - abar_prev) / (1 - abar) * beta  # posterior variance (eq. 7)
        x = mean + beta_tilde.sqrt() * method.randn(*x.shape, generator=generator)
    return x


def ddim(method: DdpmMethod, x: torch.Tensor, sampling_steps: int) -> torch.Tensor:
    """x_0 from x_T = `x` in `sampling_steps` deterministic steps."""
    # evenly spaced from T-1 down to 0, so the first step starts from pure noise
    steps = torch.linspace(method.timesteps - 1, 0, sampling_steps).round().long().unique_consecutive().tolist()
    for i, step in enumerate(steps):
        x0, eps = method.denoise(x, step)
        abar_prev = method.alphas_cumprod[steps[i + 1]] if i + 1 < len(steps) else torch.ones_like(method.betas[0])
        x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps  # Song et al. 2021, eq. 12, sigma_t = 0
    return x


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """`steps` noise levels from sigma_max down to sigma_min, spaced evenly in
    sigma^(1/rho) (Karras et al. 2022, eq. 5), then 0."""
    if steps == 1:
        return [sigma_max, 0.0]
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(steps)] + [0.0]


def heun(denoised: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """x_0 from x ~ N(0, sigmas[0]^2 I): Euler steps along dx/dsigma = (x - D(x; sigma)) / sigma,
    each corrected by the slope at its end (Heun) except the last, to sigma = 0."""
    for sigma, following in zip(sigmas[:-1], sigmas[1:], strict=True):
        slope = (x - denoised(x, sigma)) / sigma
        stepped = x + (following - sigma) * slope
        if following > 0:
            corrected = (stepped - denoised(stepped, following)) / following
            stepped = x + (following - sigma) * (slope + corrected) / 2
        x = stepped
    return x
