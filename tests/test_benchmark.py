"""Throughput of the perturbations on one core (`pytest -m benchmark --benchmark-enable`).

Target: at least 400 images/s per perturbation on one core; the
Morpho-MNIST reference does about 19 here.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.factors import perturb
from tests.helpers import params

BATCH = 1024
pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def batch(bundled):
    images, _ = bundled
    return images[np.random.default_rng(0).permutation(len(images))[:BATCH]]


@pytest.mark.parametrize("factor", ["thin", "thick", "swell", "fracture"])
def test_perturbation_throughput(benchmark, batch, factor):
    settings = params("smoke").perturb
    size = settings.chunk_size

    def run():
        rng = np.random.default_rng(0)
        return [perturb(factor, batch[i : i + size], settings, rng) for i in range(0, BATCH, size)]

    with threadpool_limits(1):
        benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    rate = BATCH / benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = round(rate)
    print(f"\n{factor}: {rate:.0f} images/s on one core")
    assert rate >= 400, f"{factor}: {rate:.0f} images/s is below the 400/s target"
