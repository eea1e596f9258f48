"""The diffusion model (pipeline/generative/ddpm.py) and its params section;
its sampler and number of sampling steps change how a trained model
samples, not its weights.

`formulation` picks the training and sampling recipe: `ddpm` is the paper's
(Ho et al. 2020: a discrete schedule of `timesteps`, the ancestral or DDIM
sampler); `edm` is Karras et al. 2022 (preconditioning, log-normal noise
levels and their loss weighting, the deterministic Heun sampler over
`sampling_steps` noise levels), where `target`, `timesteps` and the betas
are not used."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

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
    formulation: Literal["ddpm", "edm"]
    sampler: Literal["ddpm", "ddim", "heun"]  # heun: edm only
    sampling_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)]  # ddim and heun

    @model_validator(mode="after")
    def _sampler_fits_the_formulation(self) -> Self:
        if (self.formulation == "edm") != (self.sampler == "heun"):
            raise ValueError(
                f"sampler {self.sampler!r} does not sample formulation {self.formulation!r}: "
                "edm samples with heun, ddpm with ddpm or ddim"
            )
        return self


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
