"""Per-class tests of whether a model learned or memorized a rare factor f.

Everything here is a pure function over counts. For class c, n_b and k_b are
the balanced-model samples the label oracle puts in c and how many of those
have f=1; n_s and k_s are the same for the skewed-trained model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy.stats import fisher_exact, norm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from pipeline.files import ClassResult

TESTS = ("one_sample", "two_proportion", "fisher")
CORRECTIONS = ("none", "holm", "fdr_bh")
INTERVAL_LEVEL = 0.95  # Wilson intervals of the proportions, Newcombe interval of their difference

# fisher_exact can underflow to p=0; isf(0) is inf, which JSON cannot hold.
_TINY_P = np.finfo(float).tiny


def _check_count(k, n, name: str) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"{name}: need 0 <= k <= n, got k={k}, n={n}")


def _two_sided(z: float) -> float:
    # sf(|z|) keeps precision in the tail where 1 - cdf would round to 0.
    return float(2.0 * norm.sf(abs(z)))


def one_sample_z(k_s: int, n_s: int, p_b: float) -> tuple[float | None, float | None]:
    """One-sample z-test of p_s = k_s/n_s against a fixed p_b (the paper's test).

    z = (p_s - p_b) / sqrt(p_b (1 - p_b) / n_s), two-sided normal p-value.
    Returns (None, None) when n_s == 0 or p_b is 0 or 1 (zero variance).

    The paper prints M, the total number of samples, in the denominator, but
    its tables are only consistent with the per-class count, so n_s is used.
    The test treats p_b as known and ignores its own sampling noise, so its
    false-positive rate exceeds alpha: about 17% at alpha 0.05 when p_b is
    estimated from about as many samples as p_s (the true variance of
    p_s - p_b is then twice the one assumed).
    """
    _check_count(k_s, n_s, "k_s/n_s")
    if not 0.0 <= p_b <= 1.0:
        raise ValueError(f"p_b: must lie in [0, 1], got {p_b}")
    if n_s == 0 or p_b in (0.0, 1.0):
        return None, None
    # statsmodels' z-test with the variance taken at p_b (prop_var), as the paper's test does
    z, p = proportions_ztest(k_s, n_s, value=p_b, prop_var=p_b)
    return float(z), float(p)


def two_proportion_z(k_s: int, n_s: int, k_b: int, n_b: int) -> tuple[float | None, float | None]:
    """Pooled two-proportion z-test of p_s against p_b, two-sided.

    z = (p_s - p_b) / sqrt(p (1 - p) (1/n_s + 1/n_b)), p = (k_s + k_b)/(n_s + n_b).
    Unlike `one_sample_z` it accounts for the noise in both proportions.
    Returns (None, None) when either n is 0 or the pooled p is 0 or 1.
    """
    _check_count(k_s, n_s, "k_s/n_s")
    _check_count(k_b, n_b, "k_b/n_b")
    if n_s == 0 or n_b == 0 or k_s + k_b in (0, n_s + n_b):
        return None, None
    z, p = proportions_ztest([k_s, k_b], [n_s, n_b])  # pooled variance, two-sided
    return float(z), float(p)


def fisher(k_s: int, n_s: int, k_b: int, n_b: int) -> tuple[float | None, float | None]:
    """Two-sided Fisher exact test on [[k_s, n_s-k_s], [k_b, n_b-k_b]].

    Fisher gives no statistic, so z is the signed normal equivalent
    sign(p_s - p_b) * isf(p/2): the z whose two-sided normal p-value equals
    Fisher's p (0 when p_s == p_b). When p underflows to 0, z is capped at
    about +-37.5 to stay finite. Returns (None, None) when either n is 0.
    """
    _check_count(k_s, n_s, "k_s/n_s")
    _check_count(k_b, n_b, "k_b/n_b")
    if n_s == 0 or n_b == 0:
        return None, None
    p = float(min(fisher_exact([[k_s, n_s - k_s], [k_b, n_b - k_b]])[1], 1.0))
    # Compare k_s*n_b with k_b*n_s: exact in integers, no float ties.
    sign = np.sign(k_s * n_b - k_b * n_s)
    z = 0.0 if sign == 0 else float(sign * norm.isf(max(p, _TINY_P) / 2.0))
    return z, p


_TEST_FUNCS = {
    "one_sample": lambda k_s, n_s, k_b, n_b: one_sample_z(k_s, n_s, k_b / n_b),
    "two_proportion": two_proportion_z,
    "fisher": fisher,
}


def verdict(z: float | None, p_value: float | None, alpha: float, direction: int) -> str:
    """`learned` if not significant, else `memorized` if z points the way the
    skew pushes (`direction`, +1 or -1), else `opposite`; `undefined` if no test."""
    if direction not in (1, -1):
        raise ValueError(f"direction: must be +1 or -1, got {direction}")
    if z is None or p_value is None:
        return "undefined"
    if p_value > alpha:
        return "learned"
    return "memorized" if np.sign(z) == direction else "opposite"


def skew_direction(cls: int | str, rare_class: int, total_direction: int = -1) -> int:
    """Which way the skew moves P(f=1) in a row: +1 for the rare class (f is
    always on there), -1 for every other class (f never on). For the "total"
    row the caller passes sign(skewed_fraction - 0.5); the default -1 fits
    skewed data with fewer f=1 samples overall."""
    if cls == "total":
        return total_direction
    return 1 if int(cls) == rare_class else -1


def _check_table(counts, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.shape != (num_classes, 2):
        raise ValueError(f"{name}: expected shape ({num_classes}, 2), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: must hold integers, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise ValueError(f"{name}: counts must be non-negative")
    return arr.astype(np.int64)


def _check_settings(
    rare_class: int, test: str, alpha: float, correction: str, num_classes: int, total_direction: int
) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: must be a positive int, got {num_classes!r}")
    if test not in TESTS:
        raise ValueError(f"test: must be one of {TESTS}, got {test!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction: must be one of {CORRECTIONS}, got {correction!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    if (
        isinstance(rare_class, bool)
        or not isinstance(rare_class, (int, np.integer))
        or not 0 <= rare_class < num_classes
    ):
        raise ValueError(f"rare_class: must be an int in [0, {num_classes}), got {rare_class!r}")
    if total_direction not in (1, -1):
        raise ValueError(f"total_direction: must be +1 or -1, got {total_direction}")


def reason_undefined(n_b: int, k_b: int, n_s: int, min_count: int = 1) -> str | None:
    """Why a row cannot be tested, or None: no samples in a run, fewer than
    `min_count` in a run (a failure to reject at n = 7 is no evidence of
    learning), or P_c^u of 0 or 1 (the one-sample test has no variance there,
    so the row is left out under every test and the tests' tables stay
    comparable)."""
    if n_b == 0 or n_s == 0:
        return "no_samples"
    if n_b < min_count or n_s < min_count:
        return "low_support"
    if k_b in (0, n_b):
        return "degenerate_balanced"
    return None


def wilson(k: int, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float] | None:
    """Wilson score interval for k/n (Wilson 1927; Newcombe 1998, method 3); None when n = 0."""
    if n == 0:
        return None
    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return float(lo), float(hi)


def newcombe(k_s: int, n_s: int, k_b: int, n_b: int, level: float = INTERVAL_LEVEL) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p_s - p_b (Newcombe 1998, method 10,
    built from the two Wilson intervals); None when either n is 0."""
    if n_s == 0 or n_b == 0:
        return None
    lo, hi = confint_proportions_2indep(k_s, n_s, k_b, n_b, method="newcomb", compare="diff", alpha=1 - level)
    return float(lo), float(hi)


def cohen_h(p_s: float, p_b: float) -> float:
    """Cohen's h, the effect size of two proportions: 2 asin(sqrt(p_s)) - 2 asin(sqrt(p_b))."""
    return 2 * math.asin(math.sqrt(p_s)) - 2 * math.asin(math.sqrt(p_b))


Row = tuple[int, int, int, int]  # n_b, k_b, n_s, k_s


def _tested(rows: dict[str, Row], test: str, correction: str, min_count: int) -> dict[str, tuple]:
    """(z, p) of every row under `test`, p adjusted across the defined classes."""
    stats: dict[str, tuple[float | None, float | None]] = {}
    for key, (n_b, k_b, n_s, k_s) in rows.items():
        defined = reason_undefined(n_b, k_b, n_s, min_count) is None
        stats[key] = _TEST_FUNCS[test](k_s, n_s, k_b, n_b) if defined else (None, None)
    per_class = [k for k in rows if k != "total" and stats[k][1] is not None]
    if correction != "none" and per_class:
        adjusted = multipletests([stats[k][1] for k in per_class], method=correction)[1]
        for key, p in zip(per_class, adjusted, strict=True):
            stats[key] = (stats[key][0], float(p))
    return stats


def _row_result(row: Row, z: float | None, p: float | None, verdicts: dict[str, str], min_count: int) -> ClassResult:
    n_b, k_b, n_s, k_s = (int(v) for v in row)
    p_b = k_b / n_b if n_b else None
    p_s = k_s / n_s if n_s else None
    both = p_b is not None and p_s is not None
    return ClassResult(
        n_b=n_b,
        k_b=k_b,
        n_s=n_s,
        k_s=k_s,
        p_balanced=p_b,
        p_skewed=p_s,
        z=z,
        p_value=p,
        verdict=verdicts["configured"],
        reason=reason_undefined(n_b, k_b, n_s, min_count),
        ci_balanced=wilson(k_b, n_b),
        ci_skewed=wilson(k_s, n_s),
        difference=p_s - p_b if both else None,
        ci_difference=newcombe(k_s, n_s, k_b, n_b),
        cohen_h=cohen_h(p_s, p_b) if both else None,
        verdicts={t: v for t, v in verdicts.items() if t != "configured"},
    )


def compare(
    counts_balanced: np.ndarray,
    counts_skewed: np.ndarray,
    rare_class: int,
    test: str = "one_sample",
    alpha: float = 0.05,
    correction: str = "none",
    num_classes: int = 10,
    total_direction: int = -1,
    min_count: int = 1,
) -> dict[str, ClassResult]:
    """Test every class (keys "0".."num_classes-1") and all samples ("total").

    counts_* are (num_classes, 2) integer arrays: [c, 0] samples of class c with
    f=0, [c, 1] with f=1. A row is `undefined`, with its `reason`, when a run
    has no samples of it, fewer than `min_count`, or p_b is 0 or 1, under
    every test. `correction` adjusts the p-values of the defined per-class
    rows only (the total row is a different question); adjusted p-values
    replace p_value and drive the verdicts, while z stays the raw statistic.
    Every row also carries the verdict of every test (`verdicts`) under the
    same correction, so the paper's test can be read beside the others.
    """
    _check_settings(rare_class, test, alpha, correction, num_classes, total_direction)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count: must be a positive int, got {min_count!r}")
    bal = _check_table(counts_balanced, "counts_balanced", num_classes)
    skw = _check_table(counts_skewed, "counts_skewed", num_classes)

    rows = {str(c): (bal[c].sum(), bal[c, 1], skw[c].sum(), skw[c, 1]) for c in range(num_classes)}
    rows["total"] = (bal.sum(), bal[:, 1].sum(), skw.sum(), skw[:, 1].sum())
    by_test = {t: _tested(rows, t, correction, min_count) for t in TESTS}

    results = {}
    for key, row in rows.items():
        direction = skew_direction(key, int(rare_class), total_direction)
        verdicts = {t: verdict(*by_test[t][key], alpha, direction) for t in TESTS}
        verdicts["configured"] = verdicts[test]
        results[key] = _row_result(row, *by_test[test][key], verdicts, min_count)
    return results


def counts_from_labels(labels: np.ndarray, factor: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """(num_classes, 2) table of oracle labels x factor (0/1) counts."""
    labels = np.asarray(labels)
    factor = np.asarray(factor)
    if labels.shape != factor.shape or labels.ndim != 1:
        raise ValueError(f"labels/factor: need equal 1-d shapes, got {labels.shape}, {factor.shape}")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels: must be ints in [0, {num_classes})")
    if factor.size and not np.isin(factor, (0, 1)).all():
        raise ValueError("factor: must hold only 0/1 (or bool)")
    counts = np.zeros((num_classes, 2), dtype=np.int64)
    # add.at accumulates repeated (label, factor) pairs; fancy += would not.
    np.add.at(counts, (labels.astype(np.intp), factor.astype(np.intp)), 1)
    return counts


def false_positive_rate(results: Iterable[dict[str, ClassResult]]) -> tuple[int, int]:
    """(non-learned defined per-class rows, defined per-class rows) over many
    comparisons; on a control where nothing is memorized their ratio is the
    observed false-positive rate. The total row is left out."""
    rejected = defined = 0
    for result in results:
        for key, row in result.items():
            if key == "total" or row.verdict == "undefined":
                continue
            defined += 1
            rejected += row.verdict != "learned"
    return rejected, defined


def concentration(counts_balanced: np.ndarray, counts_skewed: np.ndarray, rare_class: int, alpha: float = 0.05) -> dict:
    """Among the samples that carry the factor (f = 1), the share the label
    oracle puts in the rare class k, skewed run against balanced run.

    The per-class test asks "of class k's samples, how many carry f?", so red
    samples misread as class k dilute it. This test asks the converse, "of
    the samples with f, how many are class k?": samples without f never enter
    it, so misread ones cannot dilute it. A model that ties f to class k
    raises the share (towards 1 on the skewed data, from about 1/num_classes
    on the balanced data); one that learned f as a concept keeps it.

    Pooled two-proportion z-test (both shares are estimated), Wilson
    intervals of each share, Newcombe's interval of their difference;
    verdict `memorized` when the share rises significantly, `opposite` when
    it falls, `learned` otherwise, `undefined` without samples with f in a run.
    """
    bal = _check_table(counts_balanced, "counts_balanced", len(np.asarray(counts_balanced)))
    skw = _check_table(counts_skewed, "counts_skewed", len(bal))
    _check_settings(rare_class, TESTS[0], alpha, CORRECTIONS[0], len(bal), 1)
    n_b, k_b = int(bal[:, 1].sum()), int(bal[rare_class, 1])
    n_s, k_s = int(skw[:, 1].sum()), int(skw[rare_class, 1])
    z, p = two_proportion_z(k_s, n_s, k_b, n_b)
    return {
        "n_b": n_b,
        "k_b": k_b,
        "n_s": n_s,
        "k_s": k_s,
        "share_balanced": k_b / n_b if n_b else None,
        "share_skewed": k_s / n_s if n_s else None,
        "ci_balanced": wilson(k_b, n_b),
        "ci_skewed": wilson(k_s, n_s),
        "ci_difference": newcombe(k_s, n_s, k_b, n_b),
        "z": z,
        "p_value": p,
        "verdict": verdict(z, p, alpha, 1),
    }
