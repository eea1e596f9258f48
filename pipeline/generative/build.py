"""A trained family's method and identity, from its registry entry
(pipeline/registry.py) and params.

`build_method` imports the family's module by the name its entry gives,
at call time: a train or sample stage loads only its own family's code,
and dvc.yaml's per-model stage groups list only that family's files.

A run's identity is what shapes its weights: a checkpoint made under other
values is refused, and the family's train stage depends on exactly those
params (its sections, less the sampling keys, plus `epochs`; a test keeps
dvc.yaml in step).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pydantic import BaseModel

from pipeline import registry
from pipeline.params import Params

if TYPE_CHECKING:
    import torch

    from pipeline.generative.base import Method

# left out of a checkpoint's identity, so that a finished run can be extended
# rather than retrained (epochs), and sampled in other ways (a family's sampling keys)
NOT_SHAPING = ("epochs",)


def build_method(name: str, params: Params, image_size: int, device: torch.device | str) -> Method:
    """The method of family `name` for (3, image_size, image_size) images,
    its networks on `device` and its optimizers built."""
    family = registry.family(name)
    builder = getattr(importlib.import_module(family.module), family.builder)
    return builder(params, image_size, device)


def section(params: Params, model: str) -> BaseModel:
    """The params section a family trains under (gan for gan_sd)."""
    return getattr(params, registry.family(model).section)


def epochs(params: Params, model: str) -> int:
    return section(params, model).epochs


def batch_size(params: Params, model: str) -> int:
    return section(params, model).batch_size


def run_params(params: Params, model: str, factor: str, dataset: str, seed: int, image_size: int) -> dict:
    """Everything that shapes a run's weights; a checkpoint made under any
    other values is refused."""
    family = registry.family(model)
    left_out = {*NOT_SHAPING, *family.sampling}
    out = {"model": model, "factor": factor, "dataset": dataset, "seed": seed, "image_size": image_size}
    out["channels_last"] = params.train.channels_last  # the same math, other rounding: other weights
    for name in family.sections:
        out.update({k: v for k, v in getattr(params, name).model_dump().items() if k not in left_out})
    return out
