import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline import registry
from pipeline.evaluation.figures import loss_rows
from pipeline.generative.base import IMAGE_CHANNELS, Method
from pipeline.generative.build import build_method
from pipeline.generative.ddpm import DdpmMethod, UNet
from pipeline.generative.gan import GanMethod, conv_pyramid, mode_seeking_term
from pipeline.generative.loop import Run, train
from pipeline.generative.vae import VAE, VaeMethod
from pipeline.params import parse_params
from tests.helpers import REPO, compose

# tiny networks so that every test runs in seconds on one CPU core
TINY = {
    "vae": {"width": 4, "latent_dim": 4, "lr": 1e-2},
    "gan": {"width": 4, "latent_dim": 8, "architecture": "conv", "mode_seeking": 0.0},
    "gan_sd": {"sd_lambda": 0.8, "sd_epochs": 2},
    "ddpm": {"channels": [4, 8], "timesteps": 20, "sampling_steps": 5, "lr": 1e-2, "ema_decay": 0.9},
}
KEYS = {"vae": {"loss", "recon", "kl"}, "gan": {"d_loss", "g_loss", "sd_penalty"}, "ddpm": {"loss"}}
KEYS["gan_sd"] = KEYS["gan"]
SIZES = [28, 32, 64]  # MNIST, and the manifest source's sizes (CompCars: 64)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny networks gain nothing from threads, and on a busy machine intra-op threads only wait for each other
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_params(**sections):
    raw = compose("smoke")
    for name, section in TINY.items():
        raw[name] = {**raw[name], **section, **sections.get(name, {})}
    return parse_params(raw)


def build(name, size=28, **sections):
    torch.manual_seed(0)
    return build_method(name, make_params(**sections), size, "cpu")


def batch(size=28, n=8, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


VARIANTS = [
    pytest.param("vae", {}, id="vae"),
    pytest.param(
        "vae", {"vae": {"kl_warmup": 3, "epochs": 3, "prior": "gmm", "prior_components": 3}}, id="vae-annealed-gmm"
    ),
    pytest.param("gan", {"gan": {"architecture": "conv"}}, id="gan-conv"),
    pytest.param("gan", {"gan": {"architecture": "mlp"}}, id="gan-mlp"),
    pytest.param("gan", {"gan": {"architecture": "conv", "ema_decay": 0.9}}, id="gan-conv-ema"),
    pytest.param("gan", {"gan": {"loss": "hinge", "spectral_norm": True, "augment": True}}, id="gan-hinge-sn-augment"),
    pytest.param("gan_sd", {}, id="gan_sd-conv"),
    pytest.param("gan_sd", {"gan": {"loss": "hinge", "spectral_norm": True, "r1": 1.0}}, id="gan_sd-hinge-sn-r1"),
    pytest.param("ddpm", {"ddpm": {"sampler": "ddim", "target": "eps"}}, id="ddpm-ddim-eps"),
    pytest.param("ddpm", {"ddpm": {"sampler": "ddpm", "target": "v"}}, id="ddpm-ancestral-v"),
    pytest.param("ddpm", {"ddpm": {"sampler": "ddim", "target": "x0"}}, id="ddpm-ddim-x0"),
    pytest.param("ddpm", {"ddpm": {"formulation": "edm", "sampler": "heun"}}, id="ddpm-edm-heun"),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "sections"), VARIANTS)
def test_train_step_and_reproducible_samples(name, sections, size):
    method = build(name, size, **sections)
    losses = method.train_step(batch(size), epoch=0)
    assert set(losses) == KEYS[name] | ({"r1"} if sections.get("gan", {}).get("r1") else set())
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values())

    assert method.training
    first = method.sample(5, torch.Generator().manual_seed(1))
    again = method.sample(5, torch.Generator().manual_seed(1))
    assert method.training, "sample must restore train mode"
    assert first.shape == (5, 3, size, size) and first.dtype == torch.float32
    assert not first.requires_grad
    assert 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again)
    assert not torch.equal(first, method.sample(5, torch.Generator().manual_seed(2)))


def test_the_loss_plot_draws_every_logged_term_and_no_probe_column():
    """`dvc plots show` draws reports/plots/train/<run>.csv through
    .dvc/plots/losses.json, one panel per `term`: every term a method logs
    must become rows of it, the discriminator probe's columns must not (they
    have their own chart), and both runs of a stage are overlaid."""
    template = json.loads((REPO / ".dvc" / "plots" / "losses.json").read_text())
    assert template["facet"]["field"] == "term" and template["spec"]["encoding"]["color"]["field"] == "dataset"
    for family, keys in KEYS.items():
        history = [{"epoch": 1.0, **dict.fromkeys(keys, 0.5), "d_loss_k1_with": 0.3, "d_loss_k1_without": 0.7}]
        rows = loss_rows({"balanced": history, "skewed_k1": history}, f"{family} · colour")
        assert {r["term"] for r in rows} == keys, family
        assert {r["dataset"] for r in rows} == {"balanced", "skewed_k1"}
    assert loss_rows({"balanced": [{"epoch": 1.0}]}, "Learner · colour") == []  # a control: no chart


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match="'flow' is not a trained model family; choose one of vae, gan, gan_sd, ddpm"):
        build_method("flow", make_params(), 28, "cpu")


def test_the_registry_builds_every_generative_model():
    params = make_params()
    expected = {"vae": VaeMethod, "gan": GanMethod, "gan_sd": GanMethod, "ddpm": DdpmMethod}
    assert registry.FAMILIES == tuple(expected)
    for name in registry.FAMILIES:
        method = build_method(name, params, 32, "cpu")
        assert type(method) is expected[name], name
        assert method.image_shape == (3, 32, 32) and set(method.optimizers)
    # GAN-SD is the GAN plus the spectral-decoupling term, off in the plain GAN
    assert build_method("gan", params, 28, "cpu").sd_lambda == 0
    assert build_method("gan_sd", params, 28, "cpu").sd_lambda == 0.8


# ---- adding a model family: one file (network, Method, build) plus one registry entry ----


class MeanImage(Method):
    """A toy family: a learnable per-pixel mean image, fitted by MSE; a sample
    is the mean plus Gaussian noise."""

    def __init__(self, image_size: int, noise: float, lr: float) -> None:
        super().__init__()
        self.image_shape = (IMAGE_CHANNELS, image_size, image_size)
        self.mean = nn.Parameter(torch.zeros(self.image_shape))
        self.noise = noise
        self.optimizers = {"mean": torch.optim.Adam([self.mean], lr=lr)}

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        opt = self.optimizers["mean"]
        opt.zero_grad()
        loss = (x - self.mean).pow(2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.mean + self.noise * self.randn(n, *self.image_shape, generator=generator)


def build_mean_image(params, image_size, device):
    # a real family reads its own params section; the toy has fixed settings
    return MeanImage(image_size, noise=0.1, lr=0.05).to(device)


def test_a_new_family_is_one_method_plus_one_registry_entry(monkeypatch, tmp_path):
    tiny = registry.Family("tiny", "Tiny", __name__, "build_mean_image", ("vae",))
    monkeypatch.setitem(registry.BY_NAME, "tiny", tiny)
    torch.manual_seed(0)
    method = build_method("tiny", make_params(), 8, "cpu")
    assert isinstance(method, MeanImage)

    losses = method.train_step(batch(8, n=4), epoch=0)
    assert set(losses) == {"loss"} and math.isfinite(losses["loss"]) and losses["loss"] > 0
    assert method.mean.abs().sum() > 0, "the step moved the mean away from its zero start"

    first = method.sample(3, torch.Generator().manual_seed(1))
    assert first.shape == (3, 3, 8, 8) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, method.sample(3, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, method.sample(3, torch.Generator().manual_seed(2)))

    # the one training loop drives it like any other family
    images = np.random.default_rng(0).integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    run = Run(
        name="tiny-colour-balanced",
        method=method,
        params={"model": "tiny", "image_size": 8},
        epochs=2,
        batch_size=4,
        seed=0,
        resume_dir=tmp_path / "resume",
    )
    history = train(run, images, live=False)
    assert [row["epoch"] for row in history] == [1, 2] and all(set(row) == {"epoch", "loss"} for row in history)
    # the mean starts at 0 and moves towards the data's (about 0.5): the loss falls
    assert history[1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("size", [30, 7])
def test_unsupported_image_sizes_are_refused(size):
    with pytest.raises(ValueError, match="image_size"):
        conv_pyramid(size)
    with pytest.raises(ValueError, match="image_size"):
        VAE(size, 4, 4)


def test_unet_handles_odd_sides():
    x = torch.randn(2, 3, 7, 7)
    assert UNet([4, 8, 16])(x, torch.tensor([0, 5])).shape == x.shape


def _fixed_noise_loss(method, x, repeats=4):
    torch.manual_seed(123)
    with torch.no_grad():
        values = [method.loss(x) for _ in range(repeats)]
    return sum(float(v["loss"] if isinstance(v, dict) else v) for v in values) / repeats


@pytest.fixture(scope="module")
def red_digits(digits):
    """16 real digits, red ink on black, as (16, 3, 28, 28) floats in [0, 1]."""
    ink = torch.from_numpy(digits[0][:16]).float() / 255
    return torch.stack([ink, torch.zeros_like(ink), torch.zeros_like(ink)], dim=1)


@pytest.mark.parametrize("name", ["vae", "ddpm"])
def test_a_few_steps_reduce_the_loss(name, red_digits):
    method = build(name)
    x = red_digits
    before = _fixed_noise_loss(method, x)
    torch.manual_seed(0)
    for _ in range(30):
        method.train_step(x, epoch=0)
    assert _fixed_noise_loss(method, x) < 0.8 * before


@pytest.mark.parametrize(
    "name, options",
    [("gan", {}), ("gan", {"loss": "hinge", "spectral_norm": True, "augment": True}), ("gan_sd", {})],
    ids=["gan", "gan-hinge-sn-augment", "gan_sd"],
)
def test_a_few_gan_steps_move_the_samples_to_the_data(name, options, red_digits):
    """A GAN has no loss that must fall; what must happen is that G's
    samples approach the data: red ink on black, no green."""
    gan = build(name, gan={**options, "lr": 0.002})

    def distance():
        samples = gan.sample(64, torch.Generator().manual_seed(0))
        return float((samples.mean(0) - red_digits.mean(0)).abs().mean()), float(samples[:, 1].mean())

    (before, green_before), rng = distance(), torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for _ in range(100):
        gan.train_step(red_digits[torch.randperm(16, generator=rng)[:8]], epoch=0)
    after, green = distance()
    assert after < 0.4 * before and green < 0.2 * green_before, (before, after, green_before, green)


def test_sd_penalty_is_the_only_difference_and_stops_after_sd_epochs():
    sd = build("gan_sd")
    plain = build("gan")
    plain.load_state_dict(sd.state_dict())  # the same weights
    assert isinstance(sd, GanMethod) and plain.sd_lambda == 0
    real, fake = batch(28) * 2 - 1, torch.rand(8, 3, 28, 28) * 2 - 1

    with torch.no_grad():
        logits = sd.discriminator(real)
        expected = 0.8 / 2 * logits.pow(2).mean()
        for epoch in (0, 1):  # sd_epochs = 2
            loss_sd, penalty, r1 = sd.d_loss(real, fake, epoch)
            loss_plain, zero, _ = plain.d_loss(real, fake, epoch)
            assert zero == 0 and r1 == 0
            torch.testing.assert_close(penalty, expected)
            torch.testing.assert_close(loss_sd - loss_plain, expected)
        for epoch in (2, 5):
            loss_sd, penalty, _ = sd.d_loss(real, fake, epoch)
            assert penalty == 0
            torch.testing.assert_close(loss_sd, plain.d_loss(real, fake, epoch)[0])
    assert sd.train_step(batch(28), epoch=0)["sd_penalty"] > 0
    assert sd.train_step(batch(28), epoch=2)["sd_penalty"] == 0


def test_mode_seeking_term_is_mao_et_al_eq_3():
    z = torch.zeros(4, 8)
    z[2:] = 2.0  # the paired halves' noise differs by 2 in every entry
    same = torch.zeros(4, 3, 28, 28)
    torch.testing.assert_close(mode_seeking_term(same, z), torch.tensor(1 / 1e-5))  # identical images: maximal
    apart = same.clone()
    apart[2:] = 1.0  # images differ by 1: ratio 1 / 2
    torch.testing.assert_close(mode_seeking_term(apart, z), torch.tensor(1 / (0.5 + 1e-5)))
    odd = torch.cat([apart, torch.full((1, 3, 28, 28), 9.0)])  # an odd one out is left unpaired
    torch.testing.assert_close(mode_seeking_term(odd, torch.cat([z, z[:1]])), torch.tensor(1 / (0.5 + 1e-5)))
    assert mode_seeking_term(same[:1], z[:1]) == 0  # nothing to pair


def test_mode_seeking_adds_its_weighted_term_to_g_only():
    plain = build("gan")
    seeking = build("gan", gan={"mode_seeking": 2.0})
    seeking.load_state_dict(plain.state_dict())
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fake = seeking.generator(z)
        loss, term = seeking.g_loss(fake, z)
        base, zero = plain.g_loss(fake, z)
        assert zero == 0
        torch.testing.assert_close(loss - base, 2.0 * mode_seeking_term(fake, z))
        torch.testing.assert_close(term, mode_seeking_term(fake, z))
        real = batch(28) * 2 - 1
        torch.testing.assert_close(seeking.d_loss(real, fake, 0)[0], plain.d_loss(real, fake, 0)[0])
    assert "mode_seeking" not in plain.train_step(batch(28), epoch=0)
    assert seeking.train_step(batch(28), epoch=0)["mode_seeking"] > 0


def test_gan_ema_averages_g_and_samples_from_the_average():
    plain = build("gan")
    averaged = build("gan", gan={"ema_decay": 0.9})
    assert plain.generator_ema is None and "generator_ema.project.0.weight" not in plain.state_dict()
    assert averaged.generator_ema is not None
    for _ in range(3):
        before = [p.clone() for p in averaged.generator_ema.parameters()]
        averaged.train_step(batch(28), epoch=0)
        decay = min(0.9, (1 + int(averaged.ema_updates)) / (10 + int(averaged.ema_updates)))
        for old, new, weight in zip(
            before, averaged.generator_ema.parameters(), averaged.generator.parameters(), strict=True
        ):
            torch.testing.assert_close(new, decay * old + (1 - decay) * weight)
    assert int(averaged.ema_updates) == 3
    # BatchNorm's running statistics are copied, not averaged
    for average, live in zip(averaged.generator_ema.buffers(), averaged.generator.buffers(), strict=True):
        assert torch.equal(average, live)
    # samples come from the average, not from G: the same noise through G gives other images
    z = averaged.randn(4, 8, generator=torch.Generator().manual_seed(3))
    drawn = averaged.sample(4, torch.Generator().manual_seed(3))
    with averaged.inference():
        torch.testing.assert_close(drawn, ((averaged.generator_ema(z) + 1) / 2).clamp(0, 1))
        assert not torch.allclose(drawn, ((averaged.generator(z) + 1) / 2).clamp(0, 1))
    # D and its probe do not see the average: the same D loss as the plain GAN's with the same weights
    plain.load_state_dict({k: v for k, v in averaged.state_dict().items() if not k.startswith("generator_ema.")})
    real = batch(28) * 2 - 1
    with torch.no_grad():
        fake = averaged.generator(z)
        torch.testing.assert_close(averaged.d_loss(real, fake, 0)[0], plain.d_loss(real, fake, 0)[0])


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_real_loss_per_image_is_positive_per_image(architecture):
    method = build("gan", gan={"architecture": architecture})
    scores = method.real_loss_per_image(batch(28, n=6))
    assert scores.shape == (6,) and (scores > 0).all() and not scores.requires_grad
    assert method.training
    # one score per image: it does not depend on the rest of the batch
    torch.testing.assert_close(method.real_loss_per_image(batch(28, n=6)[:2]), scores[:2])


def _ddpm(target="eps", **overrides):
    method = build("ddpm", ddpm={"target": target, "timesteps": 1000, **overrides})
    assert isinstance(method, DdpmMethod)
    return method


def test_ddpm_schedule():
    method = _ddpm()
    abar = method.alphas_cumprod
    assert (abar[1:] < abar[:-1]).all() and abar[-1] < 1e-3
    torch.testing.assert_close(method.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    x0 = batch(28) * 2 - 1
    t = torch.zeros(len(x0), dtype=torch.long)
    assert (method.q_sample(x0, t, torch.randn_like(x0)) - x0).abs().max() < 0.06  # sqrt(1 - abar_0) = 0.01


@pytest.mark.parametrize("target", ["eps", "x0", "v"])
def test_target_conversion_round_trips(target):
    method = _ddpm(target).double()  # float64, so 1e-5 holds even at t = 0 where sqrt(1 - abar) = 0.01
    x0 = (batch(28) * 2 - 1).double()
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 1, 10, 100, 400, 700, 998, 999])
    x_t = method.q_sample(x0, t, eps)
    x0_hat, eps_hat = method.to_x0_eps(x_t, t, method.training_target(x0, eps, t))
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(eps_hat, eps, atol=1e-5, rtol=0)


def test_clipping_keeps_x0_and_eps_consistent():
    method = _ddpm("x0")
    x_t, t = torch.randn(4, 3, 28, 28), torch.tensor([5, 50, 500, 900])
    x0_hat, eps_hat = method.to_x0_eps(x_t, t, 3 * torch.randn(4, 3, 28, 28))
    assert x0_hat.abs().max() <= 1
    torch.testing.assert_close(method.q_sample(x0_hat, t, eps_hat), x_t, atol=1e-4, rtol=0)


def test_ema_moves_by_the_decay():
    method = _ddpm(ema_decay=0.9)
    for _ in range(100):  # past the warm-up: the decay is 0.9 from here on
        method.update_ema()
    assert method.ema_decay_at(int(method.ema_updates) + 1) == 0.9
    shadow_before = [p.clone() for p in method.ema.parameters()]
    method.train_step(batch(28), epoch=0)
    for old, new, weight in zip(shadow_before, method.ema.parameters(), method.unet.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * weight)
    changed = [not torch.equal(o, n) for o, n in zip(shadow_before, method.ema.parameters(), strict=True)]
    apart = [not torch.equal(n, w) for n, w in zip(method.ema.parameters(), method.unet.parameters(), strict=True)]
    assert any(changed) and any(apart)


def test_ema_warms_up():
    method = _ddpm(ema_decay=0.999)
    assert method.ema_decay_at(1) == pytest.approx(2 / 11)
    assert method.ema_decay_at(10**6) == 0.999


class IdealDenoiser(torch.nn.Module):
    """E[x0 | x_t] for data x0 ~ N(mean, std^2 I): the exact x0-prediction."""

    def __init__(self, alphas_cumprod, mean, std):
        super().__init__()
        self.abar, self.mean, self.var = alphas_cumprod, mean, std**2

    def forward(self, x_t, t):
        a2 = self.abar[t].view(-1, 1, 1, 1)
        return self.mean + a2.sqrt() * self.var / (a2 * self.var + 1 - a2) * (x_t - a2.sqrt() * self.mean)


# DDIM with all T steps: with 20 the last jump returns nearly the posterior mean, and the
# spread of Gaussian data shrinks (std 0.14 instead of 0.2): discretisation, not a bug
@pytest.mark.parametrize(("sampler", "steps"), [("ddpm", 1000), ("ddim", 1000)])
def test_samplers_recover_gaussian_data_from_the_ideal_denoiser(sampler, steps):
    method = _ddpm("x0", sampler=sampler, sampling_steps=steps)
    mean, std = 0.2, 0.2  # in [-1, 1] units, far enough from the clipping bounds
    method.ema = IdealDenoiser(method.alphas_cumprod, mean, std)
    x = method.sample(64, torch.Generator().manual_seed(0)) * 2 - 1  # 150k pixels
    assert abs(x.mean() - mean) < 0.005 and abs(x.std() - std) < 0.005
