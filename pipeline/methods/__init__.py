"""The four generative model families behind one interface (`Method`), and
`build_method`, which builds one from params."""

from __future__ import annotations

import torch

from pipeline.config import Params
from pipeline.methods.base import Method
from pipeline.methods.ddpm import DdpmMethod
from pipeline.methods.gan import GanMethod
from pipeline.methods.vae import VaeMethod
from pipeline.models.gan import ConvDiscriminator, ConvGenerator, MlpDiscriminator, MlpGenerator
from pipeline.models.unet import UNet
from pipeline.models.vae import VAE

METHODS = ("vae", "gan", "gan_sd", "ddpm")
IMAGE_CHANNELS = 3  # RGB: the colour factor lives in the channels

__all__ = ["METHODS", "DdpmMethod", "GanMethod", "Method", "VaeMethod", "build_method"]


def build_method(name: str, params: Params, image_size: int, device: torch.device | str) -> Method:
    """The method `name` ("vae", "gan", "gan_sd" or "ddpm") for (3, image_size,
    image_size) images, its networks on `device` and its Adam optimizers built.

    "gan_sd" is the GAN of `params.gan` with the spectral-decoupling term of
    `params.gan_sd`; "gan" is the same GAN with that term off.
    """
    shape = (IMAGE_CHANNELS, image_size, image_size)
    if name == "vae":
        p = params.vae
        vae = VAE(image_size, p.latent_dim, p.width, IMAGE_CHANNELS).to(device)
        return VaeMethod(vae, p, shape)
    if name in ("gan", "gan_sd"):
        p = params.gan
        if p.architecture == "mlp":
            generator = MlpGenerator(p.latent_dim, image_size, IMAGE_CHANNELS)
            discriminator = MlpDiscriminator(image_size, IMAGE_CHANNELS)
        else:
            generator = ConvGenerator(p.latent_dim, image_size, p.width, IMAGE_CHANNELS)
            discriminator = ConvDiscriminator(image_size, p.width, IMAGE_CHANNELS)
        sd = params.gan_sd
        sd_lambda, sd_epochs = (sd.sd_lambda, sd.sd_epochs) if name == "gan_sd" else (0.0, 0)
        return GanMethod(generator.to(device), discriminator.to(device), p, shape, sd_lambda, sd_epochs)
    if name == "ddpm":
        p = params.ddpm
        return DdpmMethod(UNet(p.channels, IMAGE_CHANNELS).to(device), p, shape)
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
