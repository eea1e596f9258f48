"""The diffusion model (pipeline/generative/ddpm.py); its sampler and number of
sampling steps change how a trained model samples, not its weights."""

from pipeline.registry import Family

ENTRIES = (
    Family(
        "ddpm", "DM", "pipeline.generative.ddpm", "build", ("ddpm",), sampling=("sampler", "sampling_steps"), rank=40
    ),
)
