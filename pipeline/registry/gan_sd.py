"""GAN-SD: the same GAN with the spectral-decoupling term (section 6.3),
trained under the `gan` section plus its own `gan_sd`."""

from typing import Annotated

from pydantic import Field

from pipeline.registry import Family
from pipeline.schema import Section


class GanSdParams(Section):
    """Spectral decoupling (Pezeshki et al. 2021) on top of `gan` (section 6.3)."""

    sd_lambda: Annotated[float, Field(ge=0.0)]
    sd_epochs: Annotated[int, Field(ge=0)]  # SD active for the first sd_epochs epochs


ENTRIES = (
    Family(
        "gan_sd",
        "GAN-SD",
        "pipeline.generative.gan",
        "build_sd",
        ("gan", "gan_sd"),
        schema=GanSdParams,
        probe=True,
        rank=30,
    ),
)
