"""How good a run's samples are, measured in the label oracle's penultimate
features (`OracleCNN.features`, 128-d): pure functions over feature arrays.

- Frechet distance (Heusel et al. 2017, eq. 2; FID with the oracle in place of
  Inception): d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) between
  Gaussians fitted to the two sets.
- Improved precision and recall (Kynkaenniemi et al. 2019, section 3): each
  set's manifold is the union of balls around its points, of radius the
  distance to the k-th nearest neighbour in the same set; precision is the
  share of fake points inside the real manifold, recall the share of real
  points inside the fake one.
- Ambiguity: the share of samples whose factor-oracle top probability is below
  a threshold (mixed ink that the factor oracle must still call one way).

We compute the distance with scipy rather than torchmetrics' FID. torchmetrics
1.9.0 installs offline here without CUDA (it adds lightning-utilities), but its
FID is a stateful metric over images that runs the extractor itself, while the
same features here also feed precision/recall and the per-class splits.
Tr((S1 S2)^{1/2}) is taken as Tr((S1^{1/2} S2 S1^{1/2})^{1/2}), a symmetric PSD
matrix whose eigenvalues `eigh` returns real and clipped at 0. pytorch-fid
instead calls `sqrtm` on the non-symmetric S1 S2 and retries with eps added to
the diagonal when the result is not finite. The symmetric form needs no retry
for near-singular covariances (fewer samples than dimensions, as per class).
"""

from __future__ import annotations

from functools import wraps

import numpy as np
from scipy import linalg
from threadpoolctl import threadpool_limits

from pipeline.errors import ParamsError

FIX = "raise evaluation.num_samples (or use a larger test split)"


def _one_blas_thread(func):
    # The matrices here are small (128 x 128, 1,000 x 2,000): a second BLAS
    # thread buys nothing and, on a loaded 2-core machine, made quality_block
    # 30x slower (5.8 s against 0.19 s measured); the limit is undone on return.
    @wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


def _features(x, name: str, min_rows: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected (N, D) features, got shape {x.shape}")
    if len(x) < min_rows:
        raise ParamsError(f"{name}: {len(x)} samples, at least {min_rows} needed; {FIX}")
    return x


def gaussian_moments(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D), unbiased) of (N, D) features, N >= 2."""
    x = _features(feats, "feats", 2)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = linalg.eigh(sigma, driver="evd")  # divide and conquer: several times faster than the default here
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


@_one_blas_thread
def frechet_distance_from_moments(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"moments disagree: {mu1.shape}, {sigma1.shape} vs {mu2.shape}, {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2  # symmetric up to rounding; eigvalsh reads one triangle
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh(middle), 0.0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(fd, 0.0))  # rounding can take an exact 0 a hair below


@_one_blas_thread
def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to (Na, D) and (Nb, D) features."""
    return frechet_distance_from_moments(*gaussian_moments(feats_a), *gaussian_moments(feats_b))


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, (len(a), len(b)); clipped: rounding can go below 0
    d2 = (a * a).sum(axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0, out=d2)


def knn_sq_radii(feats, k: int = 3, chunk_size: int = 1024) -> np.ndarray:
    """Squared distance (N,) from each point to its k-th nearest other point."""
    x = _features(feats, "feats", k + 1)
    x_sq = (x * x).sum(axis=1)
    out = np.empty(len(x))
    for start in range(0, len(x), chunk_size):
        d2 = _sq_dists(x[start : start + chunk_size], x, x_sq)  # (chunk, N), the point itself at ~0
        out[start : start + len(d2)] = np.partition(d2, k, axis=1)[:, k]
    return out


@_one_blas_thread
def covered(queries: np.ndarray, points: np.ndarray, sq_radii: np.ndarray, chunk_size: int = 1024) -> np.ndarray:
    """Whether each query lies in some ball (points[i], radius sqrt(sq_radii[i]))."""
    p_sq = (points * points).sum(axis=1)
    inside = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), chunk_size):
        d2 = _sq_dists(queries[start : start + chunk_size], points, p_sq)  # (chunk, len(points))
        inside[start : start + len(d2)] = (d2 <= sq_radii[None, :]).any(axis=1)
    return inside


@_one_blas_thread
def precision_recall(real_feats, fake_feats, k: int = 3, chunk_size: int = 1024) -> dict[str, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019) with k-NN
    manifolds; exact distances, `chunk_size` query rows at a time.
    {"precision": share of fake in the real manifold, "recall": share of real in the fake one}."""
    real = _features(real_feats, "real features", k + 1)
    fake = _features(fake_feats, "fake features", k + 1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features are {real.shape[1]}-d, fake ones {fake.shape[1]}-d")
    precision = covered(fake, real, knn_sq_radii(real, k, chunk_size), chunk_size).mean()
    recall = covered(real, fake, knn_sq_radii(fake, k, chunk_size), chunk_size).mean()
    return {"precision": float(precision), "recall": float(recall)}


def ambiguity(factor_confidence, threshold: float = 0.9, labels=None, min_class_samples: int = 1) -> dict:
    """Share of samples whose factor-oracle top probability is below `threshold`:
    {"share", "samples", "per_class": {"<c>": {"share", "samples"}}}, per class
    (given `labels`, e.g. the label oracle's classes) where a class has at
    least `min_class_samples` samples; "per_class" is empty without labels."""
    conf = np.asarray(factor_confidence, dtype=np.float64).ravel()
    if len(conf) == 0:
        raise ParamsError(f"ambiguity of no samples; {FIX}")
    low = conf < threshold
    per_class = {}
    if labels is not None:
        labels = np.asarray(labels).ravel()
        if len(labels) != len(conf):
            raise ValueError(f"{len(labels)} labels for {len(conf)} confidences")
        for c in np.unique(labels).tolist():
            mask = labels == c
            if mask.sum() >= min_class_samples:
                per_class[str(c)] = {"share": float(low[mask].mean()), "samples": int(mask.sum())}
    return {"share": float(low.mean()), "samples": int(len(conf)), "per_class": per_class}


def _halves(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint random halves, split within each class."""
    a, b = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        a.append(members[: len(members) // 2])
        b.append(members[len(members) // 2 :])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def _subsample(idx: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    return idx if len(idx) == m else np.sort(rng.choice(idx, size=m, replace=False))


def _compare(fake, half_a, half_b, rng, k, chunk_size) -> dict:
    """fake and half_a, both cut to the same size m, each against half_b."""
    m = min(len(fake), len(half_a))
    fake = fake[_subsample(np.arange(len(fake)), m, rng)]
    half_a = half_a[_subsample(np.arange(len(half_a)), m, rng)]
    return {
        "compared": m,
        "reference": len(half_b),
        "fd": frechet_distance(fake, half_b),
        **precision_recall(half_b, fake, k, chunk_size),
        "baseline": {"fd": frechet_distance(half_a, half_b), **precision_recall(half_b, half_a, k, chunk_size)},
    }


@_one_blas_thread
def quality_block(
    real_feats,
    real_labels,
    fake_feats,
    fake_labels,
    factor_confidence,
    rng: np.random.Generator,
    k: int = 3,
    threshold: float = 0.9,
    min_class_samples: int = 50,
    chunk_size: int = 1024,
) -> dict:
    """The quality of one run's samples (JSON-ready).

    real_feats (N, D) / real_labels (N,): the real test images' features and
    classes; fake_feats (M, D) / fake_labels (M,): the samples' features and
    their label-oracle classes; factor_confidence (M,): the factor oracle's
    top probability per sample. The real images are split into two halves
    A and B within each class (with `rng`). The samples and A are each cut
    (with `rng`) to the same size m = min(M, |A|) and compared against B, so
    the sample-vs-real and real-vs-real ("baseline") figures have the same
    sample sizes; FD's small-sample bias is then the same on both sides.

    Returns {"samples": M, "compared": m, "reference": |B|, "fd", "precision",
    "recall", "baseline": {"fd", "precision", "recall"}, "ambiguity": share,
    "ambiguity_threshold", "k", "per_class": {"<c>": {"samples", "ambiguity",
    "compared", "reference", "fd", "precision", "recall", "baseline"}}}.
    A class is in "per_class" when it has at least `min_class_samples` samples;
    its "fd", "precision", "recall" and "baseline" are None unless both its
    compared size and its half B also reach `min_class_samples`.
    """
    if min_class_samples < k + 1:
        raise ParamsError(f"min_class_samples {min_class_samples} must be at least k + 1 = {k + 1}")
    real = _features(real_feats, "real features", 2 * (k + 1))
    fake = _features(fake_feats, "sample features", k + 1)
    real_labels, fake_labels = np.asarray(real_labels).ravel(), np.asarray(fake_labels).ravel()
    if len(real_labels) != len(real) or len(fake_labels) != len(fake):
        raise ValueError(f"{len(real_labels)} labels for {len(real)} real, {len(fake_labels)} for {len(fake)} samples")
    half_a, half_b = _halves(real_labels, rng)
    amb = ambiguity(factor_confidence, threshold, fake_labels, min_class_samples)
    if amb["samples"] != len(fake):
        raise ValueError(f"{amb['samples']} factor confidences for {len(fake)} samples")
    block = {
        "samples": len(fake),
        **_compare(fake, real[half_a], real[half_b], rng, k, chunk_size),
        "ambiguity": amb["share"],
        "ambiguity_threshold": float(threshold),
        "k": k,
        "per_class": {},
    }
    none = {"compared": None, "reference": None, "fd": None, "precision": None, "recall": None, "baseline": None}
    for c in np.unique(fake_labels).tolist():
        if (entry := amb["per_class"].get(str(c))) is None:
            continue  # fewer than min_class_samples samples
        fake_c = fake[fake_labels == c]
        a_c, b_c = half_a[real_labels[half_a] == c], half_b[real_labels[half_b] == c]
        row = {"samples": entry["samples"], "ambiguity": entry["share"], **none}
        if min(len(fake_c), len(a_c)) >= min_class_samples and len(b_c) >= min_class_samples:
            row.update(_compare(fake_c, real[a_c], real[b_c], rng, k, chunk_size))
        block["per_class"][str(c)] = row
    return block
