"""The GPU benchmark (`python -m pytest -m gpu -s`): one epoch of every model
family at the paper profile's sizes on 60,000 digits, one oracle epoch, and
1,000-step ancestral sampling of 1,000 DDPM samples, with throughput printed
and the wall time of the whole paper grid extrapolated from them.

Skipped without CUDA, and in any run not selected with `-m gpu`. Real MNIST is
used when ../shared/data/mnist holds it, else random uint8 digits of the same
shape (the throughput does not depend on what the pixels show). With $OUT
set, the numbers are also written to $OUT/gpu_benchmark.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.generative import build as runs
from pipeline.registry import FAMILIES as GENERATIVE
from tests.helpers import SHARED_MNIST, params

pytestmark = pytest.mark.gpu

TRAIN_SIZE = 60_000  # MNIST's training split; the skewed sets are no larger than the balanced one
SEEDS = 3  # seeds per run in the paper grid (issue 11: 5 factors x 3 datasets x 4 models x 3 seeds)
NUM_SAMPLES = 1_000  # DDPM samples drawn by ancestral sampling
WARMUP_STEPS = 3  # steps before timing: cuDNN autotuning and the allocator's first growth


@pytest.fixture(scope="module", autouse=True)
def _gpu_only(request):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False): the GPU benchmark needs one")
    if "gpu" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the GPU benchmark runs only when selected: python -m pytest -m gpu -s")


def timed(fn, device: torch.device) -> tuple[object, float]:
    """(fn(), its wall seconds), the device's queue drained on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def digits(n: int) -> np.ndarray:
    """(n, 28, 28, 3) uint8: real MNIST training digits in grey, else random pixels."""
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        from pipeline.data.mnist import load_mnist_dir

        train, _ = load_mnist_dir(SHARED_MNIST, verify=False)
        grey = train.images[:n]
    else:
        grey = np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def epoch_seconds(family: str, p, images: np.ndarray, device: torch.device, resume_dir: Path) -> float:
    """Seconds of one training epoch of `family` through the pipeline's loop."""
    from pipeline.generative.build import build_method
    from pipeline.generative.loop import Run, train

    torch.manual_seed(0)
    method = build_method(family, p, images.shape[1], device)
    batch = runs.batch_size(p, family)
    warm = torch.from_numpy(images[:batch]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    for _ in range(WARMUP_STEPS):
        method.train_step(warm, 0)
    run = Run(family, method, {"benchmark": family}, 1, batch, 0, resume_dir, checkpoint_every=10**9)
    _, seconds = timed(lambda: train(run, images, live=False), device)
    return seconds


def sample_seconds(family: str, p, n: int, device: torch.device) -> float:
    """Seconds to draw n samples of `family` as the sample stage does (untrained weights)."""
    from pipeline.generative.build import build_method

    torch.manual_seed(0)
    method = build_method(family, p, 28, device)
    if family != "ddpm":  # warm-up (a DDPM draw is long enough to need none)
        method.sample(2, torch.Generator(device=device).manual_seed(1))
    gen = torch.Generator(device=device).manual_seed(0)
    batches = [min(p.train.sample_batch, n - i) for i in range(0, n, p.train.sample_batch)]
    _, seconds = timed(lambda: [method.sample(b, gen) for b in batches], device)
    return seconds


def oracle_epoch_seconds(p, images: np.ndarray, device: torch.device) -> float:
    """Seconds of one epoch of a label oracle (section 5.2) on `images`."""
    from pipeline.oracle.fit import train_oracle

    labels = np.arange(len(images)) % 10
    once = p.oracle.model_copy(update={"epochs": 1})
    train_oracle(images[: 4 * once.batch_size], labels[: 4 * once.batch_size], 10, once, 0, device)  # warm-up
    _, seconds = timed(lambda: train_oracle(images, labels, 10, once, 0, device), device)
    return seconds


def grid_hours(p, epoch_s: dict[str, float], sample_s: dict[str, float], oracle_epoch_s: float) -> dict:
    """The paper grid's wall time on one device, per model and in all, in hours."""
    runs_per_model = len(p.factors) * len(p.datasets) * SEEDS
    hours = {}
    for family in GENERATIVE:
        epochs = runs.epochs(p, family)
        if family == "gan_sd":  # the spectral-decoupling term is on for the first sd_epochs only
            sd = min(p.gan_sd.sd_epochs, epochs)
            train_s = sd * epoch_s["gan_sd"] + (epochs - sd) * epoch_s["gan"]
        else:
            train_s = epochs * epoch_s[family]
        hours[family] = runs_per_model * (train_s + sample_s[family]) / 3600
    # two oracles (label, factor) per factor and seed
    hours["oracles"] = len(p.factors) * SEEDS * 2 * p.oracle.epochs * oracle_epoch_s / 3600
    hours["total"] = sum(hours.values())
    return hours


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    p = params("paper")  # the device is passed explicitly below
    return p, digits(TRAIN_SIZE), torch.device("cuda"), tmp_path_factory.mktemp("resume")


_EPOCH_S: dict[str, float] = {}  # measured once per session, shared by the per-family tests and the grid


def epoch_of(family: str, setting) -> float:
    if family not in _EPOCH_S:
        p, images, device, resume_dir = setting
        _EPOCH_S[family] = epoch_seconds(family, p, images, device, resume_dir)
    return _EPOCH_S[family]


@pytest.mark.parametrize("family", GENERATIVE)
def test_one_epoch_at_paper_sizes(family, setting):
    p, images, _, _ = setting
    seconds = epoch_of(family, setting)
    print(
        f"\n{family}: one epoch of {len(images)} images, batch {runs.batch_size(p, family)}: {seconds:.1f} s, "
        f"{len(images) / seconds:,.0f} images/s"
    )
    assert seconds > 0


def test_ddpm_ancestral_sampling_of_1000_samples(setting):
    p, _, device, _ = setting
    assert p.ddpm.sampler == "ddpm" and p.ddpm.timesteps == 1000  # the paper's sampler: all T steps
    seconds = sample_seconds("ddpm", p, NUM_SAMPLES, device)
    rate = NUM_SAMPLES * p.ddpm.timesteps / seconds
    print(
        f"\nddpm: {NUM_SAMPLES} samples x {p.ddpm.timesteps} ancestral steps: {seconds:.1f} s, "
        f"{rate:,.0f} image-steps/s"
    )
    assert seconds > 0


def test_paper_grid_wall_time(setting):
    p, images, device, _ = setting
    epoch_s = {family: epoch_of(family, setting) for family in GENERATIVE}
    sample_s = {family: sample_seconds(family, p, p.evaluation.num_samples, device) for family in GENERATIVE}
    oracle_s = oracle_epoch_seconds(p, images, device)
    hours = grid_hours(p, epoch_s, sample_s, oracle_s)
    name = torch.cuda.get_device_name(device)
    lines = [
        f"paper grid on one {name}: {len(p.factors)} factors x {len(p.datasets)} datasets x "
        f"{len(GENERATIVE)} models x {SEEDS} seeds, {len(images)} training digits",
        f"{'model':8} {'epoch s':>8} {'epochs':>7} {'sample s':>9} {'hours':>7}",
    ]
    for family in GENERATIVE:
        lines.append(
            f"{family:8} {epoch_s[family]:8.1f} {runs.epochs(p, family):7d} {sample_s[family]:9.1f} "
            f"{hours[family]:7.2f}"
        )
    lines.append(f"{'oracles':8} {oracle_s:8.1f} {p.oracle.epochs:7d} {'':>9} {hours['oracles']:7.2f}")
    lines.append(f"total: {hours['total']:.1f} hours (data preparation and evaluation, on CPUs, not included)")
    print("\n" + "\n".join(lines))
    if os.environ.get("OUT"):
        record = {"device": name, "epoch_s": epoch_s, "sample_s": sample_s, "oracle_epoch_s": oracle_s, "hours": hours}
        Path(os.environ["OUT"], "gpu_benchmark.json").write_text(json.dumps(record, indent=2))
    assert hours["total"] > 0
