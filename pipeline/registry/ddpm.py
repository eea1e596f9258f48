"""The diffusion model (pipeline/generative/ddpm.py) and its params section;
its sampler and number of sampling steps change how a trained model
samples, not its weights."""

from typing import Annotated, Literal

from pydantic import Field

from pipeline.registry import Family
from pipeline.schema import MAX_STEPS, BatchSize, Section, Width


class DdpmParams(Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: BatchSize
    lr: Annotated[float, Field(gt=0.0)]
    timesteps: Annotated[int, Field(ge=2, le=MAX_STEPS)]
    beta_start: Annotated[float, Field(gt=0.0, lt=1.0)]
    beta_end: Annotated[float, Field(gt=0.0, lt=1.0)]
    target: Literal["eps", "x0", "v"]  # eps: Ho et al. 2020
    channels: list[Width]  # U-Net widths per level
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    sampler: Literal["ddpm", "ddim"]
    sampling_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)]  # ddim only


ENTRIES = (
    Family(
        "ddpm",
        "DM",
        "pipeline.generative.ddpm",
        "build",
        ("ddpm",),
        schema=DdpmParams,
        sampling=("sampler", "sampling_steps"),
        rank=40,
    ),
)
