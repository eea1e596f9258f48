"""GAN-SD: the same GAN with the spectral-decoupling term (section 6.3), trained
under the `gan` section plus its own `gan_sd`."""

from pipeline.registry import Family

ENTRIES = (Family("gan_sd", "GAN-SD", "pipeline.generative.gan", "build_sd", ("gan", "gan_sd"), probe=True, rank=30),)
