"""The interface through which the one training loop drives every model family.

A *method* owns its networks, its optimizers, its loss and its sampler. The
loop only calls, per batch, `train_step(x, epoch)`, once after the last
epoch `after_training(images, seed)`, and, to generate, `sample(n, generator)`. Images cross the interface as float
(B, C, S, S) in [0, 1]; a method rescales internally if its networks want
[-1, 1].

Randomness: training draws from torch's global RNG (the loop seeds it);
`sample` draws only from the generator it is given, so the same generator
state gives the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

IMAGE_CHANNELS = 3  # RGB: the colour factor lives in the channels


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1]."""
    return 2 * x - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


class Method(nn.Module):
    """A generative model family: networks + optimizers + loss + sampler.

    Subclasses set `optimizers` and `image_shape`, and implement
    `train_step` and `_generate`.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    image_shape: tuple[int, int, int]  # (C, S, S)

    @property
    def device(self) -> torch.device:
        """The device of the method's parameters."""
        return next(self.parameters()).device

    def train_step(self, x: torch.Tensor, epoch: int) -> dict[str, float]:
        """One optimisation step (zero_grad, backward, step) on a batch of
        images x (B, C, S, S) in [0, 1]; returns the losses as floats."""
        raise NotImplementedError

    def after_training(self, images: torch.Tensor, seed: int) -> None:
        """Called once the last epoch is done, with the uint8 (N, C, S, S)
        training images and the run's seed: a family that fits something
        to the trained network (the VAE's ex-post prior) does it here. Its
        result must live in the state dict, which the checkpoint keeps."""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images (n, C, S, S) in [0, 1] on the method's device, drawn in
        eval mode without gradients, all noise taken from `generator`."""
        with self.inference():
            return self._generate(n, generator).clamp(0, 1)

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    @contextmanager
    def inference(self) -> Iterator[None]:
        """Eval mode and no gradients inside; the previous mode restored after."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def randn(self, *shape: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise from `generator`, on the method's device.

        Drawn on the generator's own device and then moved, so a CPU generator
        gives the same noise whether the method runs on CPU or CUDA.
        """
        return torch.randn(shape, generator=generator, device=generator.device).to(self.device)
