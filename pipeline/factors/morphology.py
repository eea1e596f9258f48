"""Morpho-MNIST's perturbations (Castro et al., 2019, section 3), batched.

Every perturbation works on a 4x upscaled, binarised digit: we measure the
stroke from its medial axis and distance map, change the binary image, and
reduce it back to 28x28. The steps and constants follow the paper's
description and its defaults; up/down-sampling matches scikit-image's pyramid
functions exactly (see `resample`). Each function takes a whole batch and a
numpy Generator, so a batch is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import medial_axis

from pipeline.factors.resample import pyramid_expand, pyramid_reduce
from pipeline.factors.tiling import tile


@dataclass(frozen=True)
class Morphology:
    """A batch of digits at high resolution with their stroke geometry."""

    binary: np.ndarray  # (N, H, W) bool, the binarised upscaled digit
    skeleton: np.ndarray  # (N, H, W) bool, its medial axis
    distance: np.ndarray  # (N, H, W) float, distance to the background
    scale: int

    @property
    def thickness(self) -> np.ndarray:
        """(N,) mean stroke thickness in original pixels (2 x mean distance on
        the skeleton, Morpho-MNIST's definition); NaN for a blank image."""
        on_skel = np.where(self.skeleton, self.distance, 0.0).sum(axis=(1, 2))
        count = self.skeleton.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2.0 * on_skel / count / self.scale


def analyse(images: np.ndarray, scale: int, rng: np.random.Generator) -> Morphology:
    """Upscale (N, h, w) uint8 digits, binarise half-way between each image's
    min and max, and compute medial axis and distance map in one mosaic."""
    up = pyramid_expand(images / 255.0, scale)
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    binary = (up > (lo + hi) / 2) & (hi > lo)
    tiling = tile(binary, margin=1)
    # medial_axis breaks ties between equally ranked pixels at random
    skel, dist = medial_axis(tiling.pack(binary), return_distance=True, rng=int(rng.integers(2**31)))
    return Morphology(binary, tiling.unpack(skel), tiling.unpack(dist, 0.0), scale)


def to_uint8(binary: np.ndarray, scale: int) -> np.ndarray:
    """Reduce a high-resolution binary batch to uint8 digits, truncating as
    Morpho-MNIST does."""
    return (255.0 * pyramid_reduce(binary.astype(np.float64), scale)).astype(np.uint8)


def _radius(morph: Morphology, amount: float) -> np.ndarray:
    # (N,) disk radius in high-resolution pixels for a relative change `amount`
    return (amount * morph.scale * np.nan_to_num(morph.thickness) / 2).astype(int)


def thin(morph: Morphology, amount: float) -> np.ndarray:
    """Erode every digit with a disk of radius int(amount x scale x thickness / 2).
    A pixel survives erosion by a disk of radius r exactly when the nearest
    background pixel is farther than r, so the distance map does it in one step."""
    return morph.distance > _radius(morph, amount)[:, None, None]


def thicken(morph: Morphology, amount: float) -> np.ndarray:
    """Dilate every digit with a disk of radius int(amount x scale x thickness / 2):
    a pixel joins when some ink lies within r of it."""
    r = _radius(morph, amount)
    tiling = tile(morph.binary, margin=int(r.max(initial=0)) + 1)
    to_ink = tiling.unpack(ndi.distance_transform_edt(~tiling.pack(morph.binary)), np.inf)
    return to_ink <= r[:, None, None]


def _pick(candidates: np.ndarray, fallback: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(N, k, 2) coordinates of k random `candidates` pixels per image, topped
    up from `fallback` pixels where too few candidates exist; -1 when none."""
    n, h, w = candidates.shape
    keys = rng.random((n, h, w))
    keys = np.where(candidates, keys, np.where(fallback, keys + 1.0, np.inf)).reshape(n, -1)
    flat = np.argpartition(keys, k - 1, axis=1)[:, :k]
    flat = np.take_along_axis(flat, np.argsort(np.take_along_axis(keys, flat, axis=1), axis=1), axis=1)
    found = np.isfinite(np.take_along_axis(keys, flat, axis=1))
    coords = np.stack([flat // w, flat % w], axis=-1)
    return np.where(found[..., None], coords, -1)


def swell(morph: Morphology, strength: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Swell each digit around a random skeleton point c: within
    R = radius x sqrt(thickness) / 2 x scale of c, output pixel x takes the
    input at c + (x - c) (|x - c| / R)^(strength - 1), nearest neighbour."""
    n, h, w = morph.binary.shape
    centre = _pick(morph.skeleton, morph.skeleton, 1, rng)[:, 0]  # (N, 2), -1 if blank
    big_r = radius * np.sqrt(np.nan_to_num(morph.thickness)) / 2 * morph.scale  # (N,)
    big_r = np.where(centre[:, 0] >= 0, big_r, 0.0)
    # only a window of half-width R around c moves, so work on that window
    reach = int(np.ceil(big_r.max(initial=0)))
    d = np.arange(-reach, reach + 1)
    offset = np.stack(np.broadcast_arrays(d[:, None], d[None, :]), axis=-1).astype(float)  # (P, P, 2)
    dist = np.hypot(offset[..., 0], offset[..., 1])  # (P, P)
    rel = dist / np.where(big_r > 0, big_r, 1.0)[:, None, None]  # (N, P, P)
    target = centre[:, None, None, :] + offset.astype(int)  # (N, P, P, 2)
    inside = (rel < 1) & (target >= 0).all(-1) & (target < [h, w]).all(-1)
    src = centre[:, None, None, :] + offset * (rel ** (strength - 1))[..., None]
    # nearest neighbour as ndimage's order-0 sampling rounds: floor(x + 0.5)
    src = np.clip(np.floor(src + 0.5).astype(int), 0, [h - 1, w - 1])
    img, pr, pc = np.nonzero(inside)
    out = morph.binary.copy()
    out[img, target[img, pr, pc, 0], target[img, pr, pc, 1]] = morph.binary[
        img, src[img, pr, pc, 0], src[img, pr, pc, 1]
    ]
    return out


def _neighbours(skeleton: np.ndarray) -> np.ndarray:
    # (N, H, W) number of 8-connected skeleton neighbours of every pixel
    _, h, w = skeleton.shape
    padded = np.pad(skeleton, ((0, 0), (1, 1), (1, 1))).astype(np.uint8)
    shifts = [(dr, dc) for dr in range(3) for dc in range(3) if (dr, dc) != (1, 1)]
    return sum(padded[:, dr : dr + h, dc : dc + w] for dr, dc in shifts)


def _local_direction(skeleton: np.ndarray, points: np.ndarray, window: int) -> np.ndarray:
    """(N, F, 2) unit stroke direction at each point: the principal axis of
    the skeleton pixels within `window` of it."""
    n, f, _ = points.shape
    padded = np.pad(skeleton, ((0, 0), (window, window), (window, window)))
    d = np.arange(-window, window + 1)
    rows = points[..., 0, None, None] + window + d[:, None]  # (N, F, P, 1)
    cols = points[..., 1, None, None] + window + d[None, :]  # (N, F, 1, P)
    near = padded[np.arange(n)[:, None, None, None], rows, cols]  # (N, F, P, P)
    near &= (d[:, None] ** 2 + d[None, :] ** 2) <= window**2
    dr, dc = np.broadcast_arrays(d[:, None], d[None, :])
    m = near.sum(axis=(2, 3)).clip(min=1)
    mr, mc = (near * dr).sum(axis=(2, 3)) / m, (near * dc).sum(axis=(2, 3)) / m
    crr = (near * dr**2).sum(axis=(2, 3)) / m - mr**2
    ccc = (near * dc**2).sum(axis=(2, 3)) / m - mc**2
    crc = (near * dr * dc).sum(axis=(2, 3)) / m - mr * mc
    angle = 0.5 * np.arctan2(2 * crc, crr - ccc)  # principal axis of the 2x2 covariance
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def fracture(
    morph: Morphology, num_fractures: int, thickness: float, prune: float, window: float, rng: np.random.Generator
) -> np.ndarray:
    """Cut each digit's strokes at `num_fractures` random skeleton points at
    least `prune` px from stroke tips and forks: erase a line of `thickness`
    px across the local stroke direction, long enough to cross the stroke
    (the local half-width plus half a pixel on each side)."""
    s = morph.scale
    skel = morph.skeleton
    nbrs = _neighbours(skel)
    ends = skel & ((nbrs == 1) | (nbrs >= 3))
    near_end = np.zeros_like(skel)
    if ends.any():
        margin = int(np.ceil(prune * s)) + 1
        tiling = tile(morph.binary, margin=margin)
        to_end = tiling.unpack(ndi.distance_transform_edt(~tiling.pack(ends)), np.inf)
        near_end = to_end < prune * s
    points = _pick(skel & ~near_end, skel, num_fractures, rng)  # (N, F, 2)
    valid = points[..., 0] >= 0
    points = np.where(valid[..., None], points, 0)
    across = _local_direction(skel, points, int(round(window * s)))[..., ::-1] * [1, -1]  # perpendicular
    n = len(points)
    half_len = morph.distance[np.arange(n)[:, None], points[..., 0], points[..., 1]] + 0.5 * s  # (N, F)
    brush = thickness * s / 2
    reach = int(np.ceil(half_len.max(initial=0) + brush))
    d = np.arange(-reach, reach + 1)
    offset = np.stack(np.broadcast_arrays(d[:, None], d[None, :]), axis=-1).astype(float)  # (P, P, 2)
    # nearest point of each segment p + t * across, |t| <= half_len, to every offset
    along = np.einsum("pqk,nfk->nfpq", offset, across)  # (N, F, P, P)
    along = np.clip(along, -half_len[..., None, None], half_len[..., None, None])
    gap = offset - along[..., None] * across[:, :, None, None, :]
    cut = (np.hypot(gap[..., 0], gap[..., 1]) <= brush) & valid[..., None, None]
    out = morph.binary.copy()
    img, fr, pr, pc = np.nonzero(cut)
    rows, cols = points[img, fr, 0] + d[pr], points[img, fr, 1] + d[pc]
    keep = (rows >= 0) & (rows < out.shape[1]) & (cols >= 0) & (cols < out.shape[2])
    out[img[keep], rows[keep], cols[keep]] = False
    return out
