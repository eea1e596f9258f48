"""A run's identity: its name, the params section of its model family and the
params that shape its weights.

A run is one model trained on one dataset of one factor
(`gan_sd-thick-skewed_k1`). GAN-SD is the GAN with one extra term, so it
trains under the `gan` section plus `gan_sd`. Which keys shape a run's
weights decides two things: a checkpoint made under other values is refused,
and `dvc.yaml`'s train stage depends on exactly those keys (plus `epochs`);
a test keeps the two in step.
"""

from __future__ import annotations

from pydantic import BaseModel

from pipeline.params import Params

# the family section each generative model trains under
SECTION = {"vae": "vae", "gan": "gan", "gan_sd": "gan", "ddpm": "ddpm"}
# extra sections on top of the family's (GAN-SD: the spectral-decoupling term)
EXTRA_SECTIONS = {"gan_sd": ("gan_sd",)}
# how a trained model is sampled: changing it needs no retraining
SAMPLING = {"ddpm": ("sampler", "sampling_steps")}
# left out of a checkpoint's identity, so that a finished run can be extended
# rather than retrained, and so that it can be sampled in other ways
NOT_SHAPING = {"epochs", *(key for keys in SAMPLING.values() for key in keys)}


def section(params: Params, model: str) -> BaseModel:
    """The params section a generative model trains under (gan for gan_sd)."""
    return getattr(params, SECTION[model])


def epochs(params: Params, model: str) -> int:
    return section(params, model).epochs


def batch_size(params: Params, model: str) -> int:
    return section(params, model).batch_size


def run_params(params: Params, model: str, factor: str, dataset: str, seed: int, image_size: int) -> dict:
    """Everything that shapes a run's weights; a checkpoint made under any
    other values is refused. Left out: NOT_SHAPING."""
    shaped = {k: v for k, v in section(params, model).model_dump().items() if k not in NOT_SHAPING}
    out = {
        "model": model,
        "factor": factor,
        "dataset": dataset,
        "seed": seed,
        "image_size": image_size,
        **shaped,
    }
    for extra in EXTRA_SECTIONS.get(model, ()):
        out.update(getattr(params, extra).model_dump())
    return out
