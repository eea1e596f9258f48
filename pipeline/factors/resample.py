"""Batched pyramid up/down-sampling, equal to scikit-image's `pyramid_expand` /
`pyramid_reduce` (order=3, mode='reflect') as Morpho-MNIST uses them.

Both are a separable cubic-spline resize, a per-image clip to the input's
range and a Gaussian blur. Instead of resampling image by image we build the
1-D resize operator once, by running scikit-image's own `resize` on unit
impulses, apply it to a whole batch with two matrix products, and blur the
batch with the same ndimage filter scikit-image calls. The result matches scikit-image to float rounding
(tests/test_resample.py) and costs microseconds per image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize


@lru_cache(maxsize=8)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of scikit-image's 1-D bicubic resize, unclipped."""
    eye = np.eye(n_in)
    cols = [resize(e, (n_out,), order=3, mode="reflect", anti_aliasing=False, clip=False) for e in eye]
    return np.stack(cols, axis=1)


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    # scikit-image's `gaussian` is ndimage's filter with these settings; the
    # batch axis gets sigma 0, which ndimage skips
    return ndi.gaussian_filter(images, sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)


def _separable(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    # (N, h, w) -> (N, H, W): rows @ image @ cols.T for every image, as two
    # large GEMMs (a batched matmul of small matrices is ~10x slower)
    n, h, w = images.shape
    left = (rows @ images.transpose(1, 0, 2).reshape(h, n * w)).reshape(-1, n, w)
    return (left.transpose(1, 0, 2).reshape(-1, w) @ cols.T).reshape(n, rows.shape[0], cols.shape[0])


def _clip_to_input(out: np.ndarray, images: np.ndarray) -> np.ndarray:
    # scikit-image clips every resize to the range of that image's input
    lo = images.min(axis=(1, 2), keepdims=True)
    hi = images.max(axis=(1, 2), keepdims=True)
    return np.clip(out, lo, hi, out=out)


def _sigma(scale: int) -> float:
    # scikit-image's default: covers > 99% of the Gaussian at this scale
    return 2 * scale / 6.0


def pyramid_expand(images: np.ndarray, scale: int) -> np.ndarray:
    """Upscale a batch (N, h, w) of images in [0, 1] to (N, scale*h, scale*w)."""
    images = np.asarray(images, dtype=np.float64)
    _, h, w = images.shape
    up_r, up_c = _resize_matrix(h, h * scale), _resize_matrix(w, w * scale)
    resized = _clip_to_input(_separable(images, up_r, up_c), images)
    return _blur(resized, _sigma(scale))


def pyramid_reduce(images: np.ndarray, scale: int) -> np.ndarray:
    """Downscale a batch (N, H, W) by an integer factor, as `pyramid_reduce`."""
    images = np.asarray(images, dtype=np.float64)
    _, big_h, big_w = images.shape
    h, w = -(-big_h // scale), -(-big_w // scale)
    smoothed = _blur(images, _sigma(scale))
    out = _separable(smoothed, _resize_matrix(big_h, h), _resize_matrix(big_w, w))
    return _clip_to_input(out, smoothed)
