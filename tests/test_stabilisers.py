"""The recipe changes of issue 23, each against its definition: DiffAugment's
translation and cutout, the hinge loss, the R1 penalty, spectral
normalisation, KL annealing and the VAE's ex-post mixture prior."""

import copy
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info
from torch import nn

from pipeline.errors import ParamsError
from pipeline.generative.gan import diff_augment
from tests.helpers import REPO
from tests.test_methods import build, make_params


def _scripted_randint(monkeypatch, *draws):
    """torch.randint returns `draws` in order (each a list, shaped as asked)."""
    queue = list(draws)

    def randint(low, high, size, device=None):
        value = torch.tensor(queue.pop(0), dtype=torch.long).reshape(size)
        assert ((low <= value) & (value < high)).all(), (value, low, high)
        return value

    monkeypatch.setattr(torch, "randint", randint)
    return queue


def test_diff_augment_shifts_then_blanks_a_square(monkeypatch):
    x = -torch.ones(2, 3, 8, 8)
    x[:, :, 2, 3] = 1.0  # one bright pixel in each image
    # image 0: shifted by (dy, dx) = (1, -1), a 4x4 square centred at (6, 6) blanked
    # image 1: shifted by (0, 1), the square centred at (1, 4): rows 0..2, cols 2..5
    queue = _scripted_randint(monkeypatch, [[1, 0], [-1, 1]], [[6, 1], [6, 4]])
    out = diff_augment(x)
    assert queue == []
    expected = -torch.ones_like(x)
    expected[0, :, 1, 4] = 1.0  # out[r, c] = x[r + 1, c - 1]; the square (rows, cols 4..7) misses it
    # image 1: out[r, c] = x[r, c + 1] puts it at (2, 2), inside the blanked square
    assert torch.equal(out, expected)


def test_diff_augment_brings_in_background_and_passes_gradients(monkeypatch):
    x = torch.ones(1, 3, 8, 8, requires_grad=True)  # all ink
    _scripted_randint(monkeypatch, [[1], [1]], [[0], [0]])  # shift by (1, 1); square at rows, cols -2..1
    out = diff_augment(x)
    ink = out[0, 0] > 0
    # the last row and column came from beyond the edge; rows and cols 0..1 are blanked
    assert ink.sum() == 8 * 8 - 8 - 8 + 1 - (2 * 2)
    assert not ink[7].any() and not ink[:, 7].any() and not ink[:2, :2].any()
    out.sum().backward()
    assert x.grad.sum() == 3 * ink.sum(), "each kept pixel's gradient flows to its source pixel"


class LinearCritic(nn.Module):
    """D(x) = <w, x>: its gradient in x is w, so R1 = gamma / 2 * ||w||^2."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, int(np.prod(shape))).reshape(shape))

    def forward(self, x):
        return (x * self.w).sum(dim=(1, 2, 3))


def _with_critic(method):
    method.discriminator = LinearCritic(method.image_shape)
    return method


def test_hinge_loss_and_r1_penalty_by_their_definitions():
    gan = _with_critic(build("gan", gan={"loss": "hinge", "r1": 2.0}))
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 28, 28) * 2 - 1, torch.rand(4, 3, 28, 28) * 2 - 1
    w = gan.discriminator.w.detach()
    d_real, d_fake = (real * w).sum(dim=(1, 2, 3)), (fake * w).sum(dim=(1, 2, 3))
    loss, sd, r1 = gan.d_loss(real, fake, epoch=0)
    hinge = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
    assert torch.isclose(r1, w.pow(2).sum()) and sd == 0  # gamma / 2 = 1
    assert torch.isclose(loss, hinge + w.pow(2).sum())
    g, _ = gan.g_loss(fake, torch.zeros(4, 8))
    assert torch.isclose(g, -d_fake.mean())
    # without the options: the non-saturating BCE and no R1
    plain = _with_critic(build("gan"))
    loss, _, r1 = plain.d_loss(real, fake, epoch=0)
    bce = nn.functional.softplus(-d_real).mean() + nn.functional.softplus(d_fake).mean()
    assert r1 == 0 and torch.isclose(loss, bce)


def test_a_stabilised_gan_trains_and_reports_r1():
    gan = build("gan", gan={"loss": "hinge", "r1": 1.0, "augment": True, "spectral_norm": True})
    torch.manual_seed(0)
    losses = gan.train_step(torch.rand(8, 3, 28, 28), epoch=0)
    assert set(losses) == {"d_loss", "g_loss", "sd_penalty", "r1"} and losses["r1"] > 0


def test_spectral_norm_bounds_every_layer_of_d_by_one():
    gan = build("gan", gan={"spectral_norm": True})
    layers = [m for m in gan.discriminator.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(layers) == 4 and all(hasattr(m, "parametrizations") for m in layers)
    with torch.no_grad():
        for _ in range(50):  # power iterations, one per forward pass in training mode
            gan.discriminator(torch.rand(2, 3, 28, 28))
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02)
    # G is left alone
    assert not any(hasattr(m, "parametrizations") for m in gan.generator.modules())


def test_kl_annealing_weights_the_kl_term_and_reports_the_full_elbo():
    vae = build("vae", vae={"kl_warmup": 4, "epochs": 4})
    assert [vae.kl_weight(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert build("vae").kl_weight(0) == 1.0
    x = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(3))
    weighted, full = copy.deepcopy(vae), copy.deepcopy(vae)  # the same weights, stepped by hand
    torch.manual_seed(0)  # the same reparameterisation noise in every pass
    losses = vae.train_step(x, epoch=0)
    assert losses["loss"] == pytest.approx(losses["recon"] + losses["kl"])  # the log shows the full ELBO
    for twin, kl_weight in ((weighted, 0.25), (full, 1.0)):
        torch.manual_seed(0)
        terms = twin.loss(x)
        (terms["recon"] + kl_weight * terms["kl"]).backward()
    # the step followed the gradient of recon + 0.25 kl (epoch 1 of 4), not the full ELBO's
    grads = [(p.grad, w.grad, f.grad) for p, w, f in zip(*(m.parameters() for m in (vae, weighted, full)), strict=True)]
    assert all(torch.allclose(g, w, rtol=1e-5, atol=1e-7) for g, w, _ in grads)
    assert not all(torch.allclose(g, f, rtol=1e-5, atol=1e-7) for g, _, f in grads)


def test_a_kl_warmup_longer_than_training_is_refused():
    with pytest.raises(ParamsError, match="kl_warmup 5 is longer than epochs 4.*lower vae.kl_warmup"):
        make_params(vae={"kl_warmup": 5, "epochs": 4})


def test_the_mixture_prior_is_fitted_to_the_latents_and_sampled_from(monkeypatch):
    vae = build("vae", vae={"prior": "gmm", "prior_components": 2})  # latent_dim 4
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(3.0, 0.1, (300, 4)), rng.normal(-3.0, 0.1, (100, 4))])
    monkeypatch.setattr(vae, "encoded_means", lambda images: torch.from_numpy(clusters).float())
    threads = []  # the fit's thread pools: one thread each, so the seed fixes the bits (k-means sums per thread)
    fit = GaussianMixture.fit
    monkeypatch.setattr(
        GaussianMixture,
        "fit",
        lambda self, x: threads.extend(p["num_threads"] for p in threadpool_info()) or fit(self, x),
    )
    vae.after_training(torch.zeros(1, 3, 28, 28, dtype=torch.uint8), seed=0)
    assert threads and set(threads) == {1}
    order = torch.argsort(vae.prior_means[:, 0], descending=True)
    assert vae.prior_weights[order].tolist() == pytest.approx([0.75, 0.25], abs=1e-6)
    assert vae.prior_means[order].numpy() == pytest.approx(np.array([[3.0] * 4, [-3.0] * 4]), abs=0.05)
    assert {"prior_weights", "prior_means", "prior_scales"} <= set(vae.state_dict())

    decoded = []
    monkeypatch.setattr(vae.vae, "decode", lambda z: decoded.append(z) or torch.zeros(len(z), 3, 28, 28))
    vae.sample(400, torch.Generator().manual_seed(1))
    (z,) = decoded
    upper = z[:, 0] > 0
    assert 0.7 < upper.float().mean() < 0.8, "the components are drawn by their weights"
    assert z[upper].mean(0).numpy() == pytest.approx([3.0] * 4, abs=0.05)
    assert z[upper].std(0).numpy() == pytest.approx([0.1] * 4, abs=0.03)
    # the same generator state gives the same latents; the standard prior ignores the mixture
    vae.sample(400, torch.Generator().manual_seed(1))
    assert torch.equal(decoded[1], z)
    plain = build("vae")
    assert not any(name.startswith("prior_") for name in plain.state_dict())


def _tune():
    spec = importlib.util.spec_from_file_location("tune", REPO / "scripts" / "tune.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_the_tuning_harness_sets_overrides_and_tabulates_its_lines(tmp_path):
    tune = _tune()
    raw = tune.with_overrides({"gan": {"loss": "nonsaturating"}}, ["gan.loss=hinge", "gan.r1=0.5", "new.key=[1, 2]"])
    assert raw == {"gan": {"loss": "hinge", "r1": 0.5}, "new": {"key": [1, 2]}}
    with pytest.raises(ParamsError, match="expected key=value"):
        tune.with_overrides({}, ["gan.loss"])
    run = {"train_seconds": 90.0, "fd": 42.25, "precision": 0.5, "recall": 0.25, "confidence": 0.875}
    lines = tmp_path / "tuning.jsonl"
    row = {"label": "GAN, hinge", "model": "gan", "balanced": run, "skewed_k1": {**run, "fd": 30.0}}
    lines.write_text(json.dumps(row) + "\n")
    assert tune.table(lines).splitlines()[2] == (
        "| GAN, hinge | 1.5 / 1.5 (wall) | 42.2 / 30.0 | 0.50 / 0.50 | 0.25 / 0.25 | 0.88 / 0.88 |"
    )
    cpu = {**run, "train_cpu_seconds": 60.0}  # CPU seconds, where recorded, are what the table shows
    lines.write_text(json.dumps({**row, "balanced": cpu, "skewed_k1": cpu}) + "\n")
    assert tune.table(lines).splitlines()[2].startswith("| GAN, hinge | 1.0 / 1.0 | 42.2 / 42.2 |")
