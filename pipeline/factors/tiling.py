"""Pack a batch of images into one 2-D mosaic so that 2-D-only library
routines (scikit-image's `medial_axis`, scipy's Euclidean distance transform)
run once per batch instead of once per image.

Each image is cropped to the bounding box of its foreground plus a margin of
background and the crops are laid side by side. With a margin of at least one
pixel the distance from a foreground pixel to the nearest background pixel is
the same in the mosaic as in the image (the margin's ring of background is
always at least as close as anything beyond it), and the medial-axis thinning
only looks at 3x3 neighbourhoods, so crops never interact. Cropping also skips
the empty border, which is most of every upscaled MNIST digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tiling:
    """Where every image's crop sits in the mosaic."""

    shape: tuple[int, int, int]  # (N, H, W) of the batch
    boxes: np.ndarray  # (N, 4) int: r0, r1, c0, c1 of each crop in its image
    offsets: np.ndarray  # (N,) int: column of each crop in the mosaic
    mosaic_shape: tuple[int, int]

    def pack(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W) -> mosaic; cells outside every crop hold zeros."""
        mosaic = np.zeros(self.mosaic_shape, dtype=batch.dtype)
        for i, (r0, r1, c0, c1) in enumerate(self.boxes):
            off = self.offsets[i]
            mosaic[: r1 - r0, off : off + c1 - c0] = batch[i, r0:r1, c0:c1]
        return mosaic

    def unpack(self, mosaic: np.ndarray, fill=0) -> np.ndarray:
        """Mosaic -> (N, H, W); pixels outside an image's crop get `fill`."""
        batch = np.full(self.shape, fill, dtype=mosaic.dtype)
        for i, (r0, r1, c0, c1) in enumerate(self.boxes):
            off = self.offsets[i]
            batch[i, r0:r1, c0:c1] = mosaic[: r1 - r0, off : off + c1 - c0]
        return batch


def tile(foreground: np.ndarray, margin: int) -> Tiling:
    """Plan a mosaic of the crops of `foreground` (N, H, W) bool, each grown by
    `margin` pixels on every side (clipped to the image)."""
    n, h, w = foreground.shape
    rows = foreground.any(axis=2)  # (N, H)
    cols = foreground.any(axis=1)  # (N, W)
    has_ink = rows.any(axis=1)
    r0 = np.where(has_ink, rows.argmax(axis=1), 0)
    r1 = np.where(has_ink, h - rows[:, ::-1].argmax(axis=1), 0)
    c0 = np.where(has_ink, cols.argmax(axis=1), 0)
    c1 = np.where(has_ink, w - cols[:, ::-1].argmax(axis=1), 0)
    boxes = np.stack(
        [
            np.maximum(r0 - margin, 0),
            np.minimum(r1 + margin, h),
            np.maximum(c0 - margin, 0),
            np.minimum(c1 + margin, w),
        ],
        axis=1,
    )
    boxes[~has_ink] = 0  # a blank image takes no room
    widths = boxes[:, 3] - boxes[:, 2]
    # one column of background between crops keeps clipped crops apart too
    offsets = np.concatenate([[0], np.cumsum(widths + 1)[:-1]]).astype(int)
    height = int((boxes[:, 1] - boxes[:, 0]).max(initial=0)) + 1
    return Tiling((n, h, w), boxes, offsets, (height, int(offsets[-1] + widths[-1] + 1) if n else 1))
