"""The oracle classifier of section 5.2: a small CNN in the spirit of the
pytorch/examples MNIST net, used twice per factor, once to read a sample's
digit class and once to read whether the factor is present."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OracleCNN(nn.Module):
    """Two 3x3 convolutions (32, 64) + max-pool + dropout + 128-unit FC + output."""

    def __init__(self, num_outputs: int, channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        # two unpadded 3x3 convolutions, then a 2x2 pool: 28 -> 26 -> 24 -> 12
        side = (image_size - 4) // 2
        if side < 1:
            raise ValueError(f"image_size must be at least 6, got {image_size}")
        self.conv1 = nn.Conv2d(channels, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for float (N, C, H, W) images in [0, 1]."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)
