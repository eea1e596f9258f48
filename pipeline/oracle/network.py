"""The oracle classifier of section 5.2: a small CNN in the spirit of the
pytorch/examples MNIST net, used twice per factor, once to read a sample's
digit class and once to read whether the factor is present."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OracleCNN(nn.Module):
    """Two 3x3 convolutions (32, 64), each followed by a 2x2 max-pool, then
    dropout, a 128-unit FC layer and the output. Pooling after every
    convolution (rather than once at the end, as pytorch/examples does) costs
    about a third of the compute at the same MNIST accuracy, which is what
    makes the paper's 60,000-digit oracles trainable on a CPU."""

    def __init__(self, num_outputs: int, channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        side = image_size // 4  # two 'same' convolutions, each halved by a pool
        if side < 1:
            raise ValueError(f"image_size must be at least 4, got {image_size}")
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, num_outputs)

    def _hidden(self, x: torch.Tensor, dropout: bool) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 32, S/2, S/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 64, S/4, S/4)
        if dropout:
            x = self.dropout1(x)
        return F.relu(self.fc1(torch.flatten(x, 1)))  # (N, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for float (N, C, H, W) images in [0, 1]."""
        return self.fc2(self.dropout2(self._hidden(x, dropout=True)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (N, 128) of float (N, C, H, W) images in
        [0, 1]: fc1's activations after the ReLU, never dropped out (the same
        in train and eval mode), so `fc2(features(x))` are eval-mode logits.
        The space in which `pipeline.evaluation.quality` measures samples."""
        return self._hidden(x, dropout=False)
