"""The names of the study: factors, datasets, verdicts. Models are in
pipeline/registry.py, how runs and files are named in pipeline/paths.py.
Nothing heavy is imported here, so any module (the params loader
included) can use it."""

from __future__ import annotations

# Factors on MNIST (method, step 2): colour and four Morpho-MNIST perturbations
FACTORS = ("colour", "thin", "thick", "swell", "fracture")
MORPHOLOGICAL = FACTORS[1:]
MNIST_CLASSES = 10

# the two oracles of a factor (section 5.2): the class and the factor
TARGETS = ("label", "factor")

BALANCED = "balanced"

# the verdict of one class (method, step 5)
VERDICTS = ("learned", "memorized", "opposite", "undefined")
# why a class is undefined: no samples in one run; fewer than evaluation.min_count
# in one run; P_c^u of 0 or 1 (no variance to test against)
REASONS = ("no_samples", "low_support", "degenerate_balanced")


def skewed(rare_class: int) -> str:
    """The name of the dataset skewed towards `rare_class`: skewed_k<k>."""
    return f"skewed_k{rare_class}"


def datasets(rare_classes: list[int]) -> list[str]:
    """The training sets of a study: balanced, then one skewed set per rare class."""
    return [BALANCED] + [skewed(k) for k in rare_classes]
