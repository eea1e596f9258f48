"""The EDM formulation of the diffusion family (Karras et al. 2022): its
preconditioning (Table 1), its noise levels (eq. 5) and its Heun sampler
(Algorithm 1), against answers known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.errors import ParamsError
from pipeline.generative.ddpm import RHO, SIGMA_DATA, SIGMA_MAX, SIGMA_MIN
from pipeline.generative.samplers import heun, karras_sigmas
from pipeline.params import parse_params
from tests.helpers import compose, with_key
from tests.test_methods import build


def test_preconditioning_at_sigma_data_halves_skip_and_scales_as_table_1():
    method = build("ddpm", ddpm={"formulation": "edm", "sampler": "heun"})
    c_skip, c_out, c_in, c_noise = method.preconditioning(torch.tensor([SIGMA_DATA, 2.0], dtype=torch.float64))
    assert c_skip.tolist() == pytest.approx([0.5, SIGMA_DATA**2 / (4 + SIGMA_DATA**2)])
    assert c_out.tolist() == pytest.approx([SIGMA_DATA / math.sqrt(2), 2 * SIGMA_DATA / math.sqrt(4 + SIGMA_DATA**2)])
    assert c_in.tolist() == pytest.approx([1 / (SIGMA_DATA * math.sqrt(2)), 1 / math.sqrt(4 + SIGMA_DATA**2)])
    assert c_noise.tolist() == pytest.approx([math.log(SIGMA_DATA) / 4, math.log(2.0) / 4])
    # the loss weighting lambda = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2 is 1 / c_out^2
    assert (1 / c_out**2).tolist() == pytest.approx(
        [(s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2 for s in (0.5, 2.0)]
    )


def test_noise_levels_run_from_sigma_max_to_sigma_min_then_zero():
    sigmas = karras_sigmas(18, SIGMA_MIN, SIGMA_MAX, RHO)
    assert len(sigmas) == 19 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(SIGMA_MAX) and sigmas[-2] == pytest.approx(SIGMA_MIN)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:], strict=False))
    # evenly spaced in sigma^(1/rho)
    roots = [s ** (1 / RHO) for s in sigmas[:-1]]
    gaps = [a - b for a, b in zip(roots, roots[1:], strict=False)]
    assert max(gaps) == pytest.approx(min(gaps))


def test_heun_lands_on_the_only_image_of_a_one_image_dataset():
    """With one training image x0 the exact denoiser is D = x0, and the ODE's
    straight path reaches it exactly from any starting noise."""
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).view(1, 3, 2, 2)
    start = torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * SIGMA_MAX
    out = heun(lambda x, sigma: x0.expand_as(x), start, karras_sigmas(5, SIGMA_MIN, SIGMA_MAX, RHO))
    assert torch.allclose(out, x0.expand_as(out), atol=1e-12)


def _gaussian_error(steps: int, second_order: bool = True) -> float:
    """Relative error at sigma = 0 for data N(0, s^2), whose exact denoiser is
    D(x; sigma) = x s^2 / (s^2 + sigma^2) and whose probability-flow ODE maps
    x(sigma_max) to x sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2)."""
    s = SIGMA_DATA
    start = torch.tensor([SIGMA_MAX], dtype=torch.float64)
    exact = start * s / math.sqrt(s**2 + SIGMA_MAX**2)
    sigmas = karras_sigmas(steps, SIGMA_MIN, SIGMA_MAX, RHO)
    if second_order:
        out = heun(lambda x, sigma: x * s**2 / (s**2 + sigma**2), start, sigmas)
    else:  # Euler: the same steps without Heun's correction
        out = start.clone()
        for sigma, following in zip(sigmas[:-1], sigmas[1:], strict=True):
            out = out + (following - sigma) * (out - out * s**2 / (s**2 + sigma**2)) / sigma
    return abs(float(out / exact) - 1)


def test_heun_follows_the_exact_flow_of_gaussian_data_to_second_order():
    """Doubling the steps divides Heun's error by about 4 (second order) and
    Euler's by about 2; at EDM's 18 steps Heun is within 6% where Euler is off 15%."""
    heun_18, heun_35, heun_69 = (_gaussian_error(n) for n in (18, 35, 69))
    assert heun_18 < 0.06 and _gaussian_error(18, second_order=False) > 0.15
    assert heun_18 / heun_35 > 3.5 and heun_35 / heun_69 > 3.5
    assert 1.6 < _gaussian_error(35, second_order=False) / _gaussian_error(69, second_order=False) < 2.4


@pytest.mark.parametrize(("formulation", "sampler"), [("edm", "ddim"), ("edm", "ddpm"), ("ddpm", "heun")])
def test_a_sampler_of_the_other_formulation_is_refused(formulation, sampler):
    raw = with_key(with_key(compose("smoke"), "ddpm.formulation", formulation), "ddpm.sampler", sampler)
    with pytest.raises(ParamsError, match=f"sampler '{sampler}' does not sample formulation '{formulation}'"):
        parse_params(raw)


def test_edm_training_lowers_its_loss_on_one_batch():
    torch.manual_seed(0)
    method = build("ddpm", ddpm={"formulation": "edm", "sampler": "heun", "lr": 2e-3})
    x = torch.rand(16, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    first = sum(method.train_step(x, 0)["loss"] for _ in range(5)) / 5
    for _ in range(40):
        method.train_step(x, 0)
    last = sum(method.train_step(x, 0)["loss"] for _ in range(5)) / 5
    assert last < first
