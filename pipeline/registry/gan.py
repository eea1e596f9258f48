"""The GAN (pipeline/generative/gan.py); it has a discriminator to probe (section 6.2)."""

from pipeline.registry import Family

ENTRIES = (Family("gan", "GAN", "pipeline.generative.gan", "build", ("gan",), probe=True, rank=20),)
