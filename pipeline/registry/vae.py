"""The variational autoencoder (pipeline/generative/vae.py) and its params section."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from pipeline.registry import Family
from pipeline.schema import BatchSize, Section, Width


class VaeParams(Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: BatchSize
    lr: Annotated[float, Field(gt=0.0)]
    latent_dim: Width
    width: Width  # channels of the first conv layer
    kl_warmup: Annotated[int, Field(ge=0)]  # epochs over which the KL weight rises to 1 (0: always 1)
    prior: Literal["standard", "gmm"]  # sample z from N(0, I) or a mixture fitted to the latents after training
    prior_components: Annotated[int, Field(ge=1)]  # the mixture's components (prior: gmm)

    @model_validator(mode="after")
    def _warmup_ends_within_training(self) -> Self:
        if self.kl_warmup > self.epochs:
            raise ValueError(
                f"kl_warmup {self.kl_warmup} is longer than epochs {self.epochs}: the KL term would never reach "
                "its full weight; lower vae.kl_warmup to at most vae.epochs"
            )
        return self


ENTRIES = (Family("vae", "VAE", "pipeline.generative.vae", "build", ("vae",), schema=VaeParams, rank=10),)
