"""What every params section shares, for the loader (pipeline/params.py)
and the families' own sections (their registry entries): strict types,
unknown keys refused, and bounds on the numbers a typo can blow up."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Upper bounds, far above any real study, on the numbers a typo can blow up
# (`num_samples: 1e12` asks for 7 TiB; `seed: 2**70` overflows two stages in)
MAX_SEED = 2**32 - 1  # numpy's SeedSequence and torch.manual_seed both take it
MAX_IMAGES = 10_000_000  # data.*_size: 100x MNIST
MAX_SAMPLES = 1_000_000  # evaluation.num_samples, per trained model
MAX_BATCH = 16_384  # batch sizes and chunks: images in memory at once
MAX_WIDTH = 4_096  # channels and latent sizes of a network
MAX_STEPS = 100_000  # diffusion timesteps and sampling steps
MAX_PROCESSES = 256  # workers and threads
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class Section(BaseModel):
    # strict: `epochs: true` is not 1 and `num_samples: 1.0e12` not an int;
    # a float key still takes an int (`lr: 1`)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
