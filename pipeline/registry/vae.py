"""The variational autoencoder (pipeline/generative/vae.py) and its params section."""

from typing import Annotated

from pydantic import Field

from pipeline.registry import Family
from pipeline.schema import BatchSize, Section, Width


class VaeParams(Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: BatchSize
    lr: Annotated[float, Field(gt=0.0)]
    latent_dim: Width
    width: Width  # channels of the first conv layer


ENTRIES = (Family("vae", "VAE", "pipeline.generative.vae", "build", ("vae",), schema=VaeParams, rank=10),)
