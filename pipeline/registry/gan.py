"""The GAN (pipeline/generative/gan.py) and its params section; it has a
discriminator to probe (section 6.2)."""

from typing import Annotated, Literal

from pydantic import Field

from pipeline.registry import Family
from pipeline.schema import BatchSize, Section, Width


class GanParams(Section):
    epochs: Annotated[int, Field(ge=0)]
    batch_size: BatchSize
    lr: Annotated[float, Field(gt=0.0)]
    beta1: Annotated[float, Field(ge=0.0, lt=1.0)]
    latent_dim: Width
    architecture: Literal["mlp", "conv"]  # mlp: Goodfellow et al. 2014
    width: Width  # conv: base channels
    # weight of the mode-seeking term (Mao et al. 2019); 0 is the plain GAN
    mode_seeking: Annotated[float, Field(ge=0.0)]
    # decay of the moving average of G's weights that samples are drawn from; 0: sample G itself
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    loss: Literal["nonsaturating", "hinge"]  # Goodfellow et al. 2014 | Lim & Ye 2017
    spectral_norm: bool  # D's layers spectrally normalised (Miyato et al. 2018)
    r1: Annotated[float, Field(ge=0.0)]  # gamma of the R1 penalty on real images (Mescheder et al. 2018); 0: off
    augment: bool  # DiffAugment's translation and cutout on D's inputs (Zhao et al. 2020)


ENTRIES = (Family("gan", "GAN", "pipeline.generative.gan", "build", ("gan",), schema=GanParams, probe=True, rank=20),)
