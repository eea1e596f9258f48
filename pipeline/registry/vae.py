"""The variational autoencoder (pipeline/generative/vae.py)."""

from pipeline.registry import Family

ENTRIES = (Family("vae", "VAE", "pipeline.generative.vae", "build", ("vae",), rank=10),)
