"""The names of the study: factors, datasets, verdicts. Models are in
pipeline/registry.py, how runs and files are named in pipeline/paths.py.
Nothing heavy is imported here, so any module (the params loader
included) can use it."""

from __future__ import annotations

import re

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


def skew_label(rare_class: int, rare_fraction: float = 0.0) -> str:
    """A skew's name: k<k> for f=1 exactly on class k (r = 0, the paper's),
    k<k>_r<percent> for the relaxed skew of rare fraction r (k1_r5: r = 0.05;
    a decimal point is written p, k1_r2p5: r = 0.025, since DVC's stage names
    take no dot)."""
    return f"k{rare_class}" if rare_fraction == 0 else f"k{rare_class}_r{percent(rare_fraction)}"


def percent(rare_fraction: float) -> str:
    """A rare fraction as a name writes it: in percent, 6 significant digits,
    p for the decimal point (0.05 -> 5, 0.025 -> 2p5)."""
    return f"{100 * rare_fraction:.6g}".replace(".", "p")


def parse_skew(label: str) -> tuple[int, float]:
    """(rare_class, rare_fraction) of a skew's name (skew_label's inverse);
    ValueError for anything else."""
    match = _SKEW.fullmatch(label)
    if match is None:
        raise ValueError(f"{label!r} is not a skew's name (k<k> or k<k>_r<percent>, e.g. k1, k1_r5)")
    k, percent = match.groups()
    return int(k), round(float(percent.replace("p", ".")) / 100, 8) if percent else 0.0


_SKEW = re.compile(r"k(\d+)(?:_r(\d+(?:p\d+)?))?")


def skewed(rare_class: int, rare_fraction: float = 0.0) -> str:
    """The name of the dataset skewed towards `rare_class` at `rare_fraction`:
    skewed_k<k> (r = 0), skewed_k<k>_r<percent> (skew_label)."""
    return f"skewed_{skew_label(rare_class, rare_fraction)}"


def skews(rare_classes: list[int], rare_fractions: list[float] = (0.0,)) -> list[str]:
    """Every skew of a study, one per rare class and rare fraction: the
    comparisons each model is judged on (dvc.yaml's evaluate matrix)."""
    return [skew_label(k, r) for k in rare_classes for r in rare_fractions]


def datasets(rare_classes: list[int], rare_fractions: list[float] = (0.0,)) -> list[str]:
    """The training sets of a study: balanced, then one skewed set per rare
    class and rare fraction."""
    return [BALANCED] + [skewed(k, r) for k in rare_classes for r in rare_fractions]
