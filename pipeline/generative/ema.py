"""An exponential moving average (EMA) of a network's weights, the copy the
DDPM samples with (Ho et al. 2020, Appendix B) and the GAN's generator may
(`gan.ema_decay`; Yazıcı et al. 2019, "The unusual effectiveness of averaging
in GAN training").

The decay after n updates is min(decay, (1 + n) / (WARMUP + n)), as in
TensorFlow's ExponentialMovingAverage(num_updates) and diffusers' EMAModel:
with a short run and a decay of 0.999 the average would otherwise keep a large
share of the random initialisation. Buffers (BatchNorm's running statistics)
are copied, not averaged.
"""

from __future__ import annotations

import torch
from torch import nn

WARMUP = 10


def decay_at(decay: float, updates: int) -> float:
    """The decay used by update number `updates` (1-based), warm-up included."""
    return min(decay, (1 + updates) / (WARMUP + updates))


@torch.no_grad()
def update(shadow: nn.Module, model: nn.Module, decay: float) -> None:
    """shadow <- decay * shadow + (1 - decay) * model, parameter by parameter;
    buffers copied."""
    for average, weight in zip(shadow.parameters(), model.parameters(), strict=True):
        average.lerp_(weight, 1 - decay)
    for average, buffer in zip(shadow.buffers(), model.buffers(), strict=True):
        average.copy_(buffer)
