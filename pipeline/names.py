"""The names of the study, in one registry: factors, models, their display
names and how runs and datasets are called. Nothing heavy is imported here,
so any module (the params loader included) can use it."""

from __future__ import annotations

# Factors on MNIST (method, step 2): colour and four Morpho-MNIST perturbations
FACTORS = ("colour", "thin", "thick", "swell", "fracture")
MORPHOLOGICAL = FACTORS[1:]
MNIST_CLASSES = 10

# Models (method, step 3): the generative families, then the two controls
GENERATIVE = ("vae", "gan", "gan_sd", "ddpm")
CONTROLS = ("data-memorizer", "data-learner", "data-mixer")
MODELS = GENERATIVE + CONTROLS
# the paper's names, used in tables
DISPLAY = {
    "vae": "VAE",
    "gan": "GAN",
    "gan_sd": "GAN-SD",
    "ddpm": "DM",
    "data-memorizer": "Memorizer",
    "data-learner": "Learner",
    "data-mixer": "Mixer",
}

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


def run_name(model: str, factor: str, dataset: str, seed: int) -> str:
    """The name a run has everywhere: paths, checkpoints, logs (gan_sd-thick-skewed_k1-s0)."""
    return f"{model}-{factor}-{dataset}-s{seed}"


def train_name(model: str, factor: str, seed: int) -> str:
    """The folder of one model's runs on every dataset of a factor, for one seed (gan_sd-thick-s0)."""
    return f"{model}-{factor}-s{seed}"


def display(model: str) -> str:
    """The paper's name of a model (GAN-SD for gan_sd); unknown names unchanged."""
    return DISPLAY.get(model, model)
