import json

import numpy as np
import pytest
from scipy.stats import fisher_exact, norm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from pipeline.evaluation.stats import (
    TESTS,
    cohen_h,
    compare,
    counts_from_labels,
    false_positive_rate,
    fisher,
    newcombe,
    one_sample_z,
    skew_direction,
    two_proportion_z,
    verdict,
    wilson,
)
from pipeline.files import ClassResult

KEYS = [str(c) for c in range(10)] + ["total"]


def _random_tables(n_tables=300, seed=0):
    """Non-degenerate (k_s, n_s, k_b, n_b): 0 < k_b < n_b and 0 < k_s + k_b < n_s + n_b."""
    rng = np.random.default_rng(seed)
    n_s = rng.integers(5, 500, n_tables)
    n_b = rng.integers(5, 500, n_tables)
    k_s = rng.binomial(n_s, rng.uniform(0.05, 0.95, n_tables))
    k_b = np.clip(rng.binomial(n_b, rng.uniform(0.05, 0.95, n_tables)), 1, n_b - 1)
    return [tuple(int(x) for x in row) for row in zip(k_s, n_s, k_b, n_b, strict=True)]


def _balanced():
    return np.full((10, 2), 50, dtype=np.int64)


def _oracle_skewed(rare):
    counts = np.zeros((10, 2), dtype=np.int64)
    counts[:, 0] = 100
    counts[rare] = (0, 100)
    return counts


# ---- the three tests against reference implementations ----


def test_one_sample_matches_statsmodels():
    tables = _random_tables()
    assert len(tables) >= 200
    for k_s, n_s, k_b, n_b in tables:
        p_b = k_b / n_b
        z, p = one_sample_z(k_s, n_s, p_b)
        z_ref, p_ref = proportions_ztest(k_s, n_s, value=p_b, prop_var=p_b)
        assert z == pytest.approx(z_ref, abs=1e-9, rel=1e-9)
        assert p == pytest.approx(p_ref, abs=1e-9)


def test_two_proportion_matches_statsmodels():
    for k_s, n_s, k_b, n_b in _random_tables(seed=1):
        z, p = two_proportion_z(k_s, n_s, k_b, n_b)
        z_ref, p_ref = proportions_ztest([k_s, k_b], [n_s, n_b])
        assert z == pytest.approx(z_ref, abs=1e-9, rel=1e-9)
        assert p == pytest.approx(p_ref, abs=1e-9)


def test_fisher_matches_scipy_and_z_is_normal_equivalent():
    for k_s, n_s, k_b, n_b in _random_tables(n_tables=200, seed=2):
        z, p = fisher(k_s, n_s, k_b, n_b)
        p_ref = fisher_exact([[k_s, n_s - k_s], [k_b, n_b - k_b]])[1]
        assert p == pytest.approx(min(p_ref, 1.0), abs=1e-12)
        assert 2 * norm.sf(abs(z)) == pytest.approx(p, rel=1e-9)
        if p < 1.0:  # p == 1 maps to z == 0 whatever the sign of the difference
            assert np.sign(z) == np.sign(k_s / n_s - k_b / n_b) != 0
        else:
            assert z == 0.0


def test_fisher_underflow_gives_finite_z():
    z, p = fisher(5000, 5000, 0, 5000)
    assert p == 0.0
    assert np.isfinite(z) and z > 30


def test_hand_computed_one_sample():
    z, p = one_sample_z(30, 100, 0.5)
    assert z == -4.0
    assert p == pytest.approx(2 * norm.sf(4.0), rel=1e-12)


def test_one_sample_standard_error_uses_the_skewed_count():
    """compare() must divide by n_s, the skewed model's count in the class, not n_b."""
    bal, skw = _balanced(), _balanced()  # the other nine classes: 100 samples, 50 with f
    bal[3] = (70, 30)  # k_b = 30, n_b = 100 -> p_b = 0.3
    skw[3] = (5, 20)  # k_s = 20, n_s = 25 -> p_s = 0.8
    res = compare(bal, skw, rare_class=0, test="one_sample")
    row = res["3"]
    assert (row.n_b, row.k_b, row.n_s, row.k_s) == (100, 30, 25, 20)
    assert row.p_balanced == pytest.approx(0.3) and row.p_skewed == pytest.approx(0.8)
    # z = (0.8 - 0.3) / sqrt(0.3 * 0.7 / 25) = 0.5 / sqrt(0.0084) = 5.455447...
    # (with n_b = 100 in place of n_s = 25 it would be 0.5 / sqrt(0.0021) = 10.91)
    assert row.z == pytest.approx(5.455447255899809, rel=1e-12)
    assert row.verdict == "opposite"  # class 3 is not the rare class: the skew pushes it towards f = 0
    # total: k_b = 9 * 50 + 30 = 480, n_b = 1000 -> p_b = 0.48; k_s = 9 * 50 + 20 = 470, n_s = 900 + 25 = 925
    # z = (470 / 925 - 0.48) / sqrt(0.48 * 0.52 / 925) = 0.0281081 / 0.0164267 = 1.711119 (n_b: 1.779137)
    assert res["total"].z == pytest.approx(1.711118911101136, rel=1e-12)


def test_big_z_p_value_does_not_round_to_zero():
    z, p = one_sample_z(900, 900, 0.5)  # z = 450 / 15
    assert z == 30.0
    assert p > 0.0  # 2 * (1 - cdf(30)) would be exactly 0
    assert p == pytest.approx(2 * norm.sf(30.0), rel=1e-12)


@pytest.mark.parametrize(
    "func, args",
    [
        (one_sample_z, (0, 0, 0.5)),
        (one_sample_z, (3, 10, 0.0)),
        (one_sample_z, (3, 10, 1.0)),
        (two_proportion_z, (0, 0, 5, 10)),
        (two_proportion_z, (5, 10, 0, 0)),
        (two_proportion_z, (0, 10, 0, 10)),
        (two_proportion_z, (10, 10, 7, 7)),
        (fisher, (0, 0, 5, 10)),
        (fisher, (5, 10, 0, 0)),
    ],
)
def test_degenerate_tables_give_none(func, args):
    assert func(*args) == (None, None)


# ---- compare: undefined rows ----


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize(
    "bal_row, skw_row, reason",
    [
        ((50, 50), (0, 0), "n_s=0"),
        ((0, 0), (50, 50), "n_b=0"),
        ((100, 0), (50, 50), "p_b=0"),
        ((0, 100), (50, 50), "p_b=1"),
    ],
)
def test_undefined_rows(test, bal_row, skw_row, reason):
    bal, skw = _balanced(), _balanced()
    bal[3], skw[3] = bal_row, skw_row
    row = compare(bal, skw, rare_class=0, test=test)["3"]
    assert row.verdict == "undefined", reason
    assert row.z is None and row.p_value is None
    # The other rows stay defined and unaffected.
    assert compare(bal, skw, rare_class=0, test=test)["4"].verdict == "learned"
    if reason == "n_s=0":
        assert row.p_skewed is None and row.p_balanced == 0.5
    if reason == "n_b=0":
        assert row.p_balanced is None and row.p_skewed == 0.5


# ---- verdicts ----


def test_verdict_directions():
    rare, other = 2, 7
    assert verdict(3.0, 0.001, 0.05, skew_direction(rare, rare)) == "memorized"
    assert verdict(-3.0, 0.001, 0.05, skew_direction(rare, rare)) == "opposite"
    assert verdict(-3.0, 0.001, 0.05, skew_direction(other, rare)) == "memorized"
    assert verdict(3.0, 0.001, 0.05, skew_direction(other, rare)) == "opposite"
    assert verdict(3.0, 0.2, 0.05, skew_direction(rare, rare)) == "learned"
    assert verdict(-3.0, 0.0500001, 0.05, -1) == "learned"
    assert verdict(-3.0, 0.05, 0.05, -1) == "memorized"  # p <= alpha rejects
    assert verdict(None, None, 0.05, 1) == "undefined"


def test_skew_direction():
    assert [skew_direction(c, 4) for c in range(10)] == [-1] * 4 + [1] + [-1] * 5
    assert skew_direction("4", 4) == 1
    assert skew_direction("total", 4) == -1
    assert skew_direction("total", 4, total_direction=1) == 1


def test_compare_verdict_directions_from_counts():
    bal, skw = _balanced(), _balanced()
    skw[2] = (35, 65)  # rare class: more f=1 -> memorized
    skw[5] = (65, 35)  # other class: less f=1 -> memorized
    skw[6] = (35, 65)  # other class: more f=1 -> opposite
    res = compare(bal, skw, rare_class=2, test="two_proportion")
    assert res["2"].verdict == "memorized" and res["2"].z > 0
    assert res["5"].verdict == "memorized" and res["5"].z < 0
    assert res["6"].verdict == "opposite" and res["6"].z > 0
    assert res["0"].verdict == "learned" and res["0"].z == 0.0


# ---- oracle inputs ----


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("rare", [0, 7])
def test_oracle_memorization_everywhere(test, rare):
    res = compare(_balanced(), _oracle_skewed(rare), rare_class=rare, test=test)
    assert list(res) == KEYS
    assert all(r.verdict == "memorized" for r in res.values())
    assert res[str(rare)].z > 0 and res[str(rare)].p_skewed == 1.0
    assert res["total"].n_s == 1000 and res["total"].k_s == 100
    assert res["total"].n_b == 1000 and res["total"].k_b == 500


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("correction", ["none", "holm", "fdr_bh"])
def test_identical_counts_all_learned(test, correction):
    counts = _balanced()
    counts[4] = (80, 20)
    res = compare(counts, counts.copy(), rare_class=4, test=test, correction=correction)
    for row in res.values():
        assert row.verdict == "learned"
        assert row.z == 0.0
        assert row.p_value == pytest.approx(1.0)


# ---- multiple-testing correction ----


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_correction_matches_multipletests(method):
    rng = np.random.default_rng(3)
    bal = rng.integers(20, 80, size=(10, 2))
    skw = rng.integers(20, 80, size=(10, 2))
    skw[6] = 0  # undefined row: must stay out of the family
    raw = compare(bal, skw, rare_class=1, test="two_proportion")
    adj = compare(bal, skw, rare_class=1, test="two_proportion", correction=method)
    keys = [str(c) for c in range(10) if c != 6]
    expected = multipletests([raw[k].p_value for k in keys], method=method)[1]
    np.testing.assert_allclose([adj[k].p_value for k in keys], expected, rtol=0, atol=1e-15)
    assert adj["6"].verdict == "undefined"
    assert adj["total"].p_value == raw["total"].p_value  # total row not corrected
    assert all(adj[k].z == raw[k].z for k in keys)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_correction_turns_borderline_into_learned(method):
    bal, skw = _balanced(), _balanced()
    skw[3] = (61, 39)  # one-sample z = -2.2, p = 0.028
    raw = compare(bal, skw, rare_class=0)
    assert raw["3"].z == pytest.approx(-2.2)
    assert raw["3"].p_value == pytest.approx(0.0278, abs=1e-4)
    assert raw["3"].verdict == "memorized"
    adj = compare(bal, skw, rare_class=0, correction=method)
    assert adj["3"].p_value == pytest.approx(10 * raw["3"].p_value)
    assert adj["3"].verdict == "learned"


# ---- false-positive rate under the null ----


def _simulated_rejection_rate(test, n=100, p=0.5, reps=20000, seed=11):
    """Rejection rate at alpha 0.05 with p_b and p_s both drawn at the same true p.

    Each distinct (k_s, k_b) pair is tested once and weighted by its frequency,
    so thousands of draws cost only a few hundred test calls.
    """
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n, p, size=(reps, 2))
    pairs, freq = np.unique(draws, axis=0, return_counts=True)
    results = []
    for (k_s, k_b), count in zip(pairs, freq, strict=True):
        bal = np.zeros((10, 2), dtype=np.int64)
        skw = np.zeros((10, 2), dtype=np.int64)
        bal[0] = (n - k_b, k_b)
        skw[0] = (n - k_s, k_s)
        results += [compare(bal, skw, rare_class=0, test=test)] * int(count)
    rejected, defined = false_positive_rate(results)
    assert defined == reps  # the other nine rows are empty, hence undefined
    return rejected / defined


def test_one_sample_false_positive_rate_exceeds_alpha():
    rate = _simulated_rejection_rate("one_sample")
    assert 0.12 <= rate <= 0.22


def test_two_proportion_false_positive_rate_near_alpha():
    rate = _simulated_rejection_rate("two_proportion")
    assert 0.03 <= rate <= 0.07


def test_false_positive_rate_counts():
    row = dict(n_b=1, k_b=0, n_s=1, k_s=0, p_balanced=0.0, p_skewed=0.0, z=None, p_value=None)
    results = [
        {
            "0": ClassResult(**row, verdict="learned"),
            "1": ClassResult(**row, verdict="memorized"),
            "total": ClassResult(**row, verdict="memorized"),
        },
        {"0": ClassResult(**row, verdict="opposite"), "1": ClassResult(**row, verdict="undefined")},
    ]
    assert false_positive_rate(results) == (2, 3)
    assert false_positive_rate([]) == (0, 0)


# ---- helpers ----


def test_counts_from_labels():
    labels = np.array([0, 0, 3, 3, 3, 9])
    factor = np.array([True, True, False, True, False, True])
    counts = counts_from_labels(labels, factor)
    expected = np.zeros((10, 2), dtype=np.int64)
    expected[0] = (0, 2)
    expected[3] = (2, 1)
    expected[9] = (0, 1)
    np.testing.assert_array_equal(counts, expected)
    assert counts_from_labels(np.array([], dtype=int), np.array([], dtype=int)).sum() == 0


def test_to_dict_is_json_ready():
    res = compare(_balanced(), _oracle_skewed(1), rare_class=1)
    d = res["1"].to_dict()
    assert set(d) == {
        *("n_b", "k_b", "n_s", "k_s", "p_balanced", "p_skewed", "z", "p_value", "verdict", "reason"),
        *("ci_balanced", "ci_skewed", "difference", "ci_difference", "cohen_h", "verdicts"),
    }
    assert type(d["n_b"]) is int and type(d["z"]) is float and type(d["p_value"]) is float
    assert d["z"] == pytest.approx(10.0) and d["verdict"] == "memorized"
    json.dumps(d, allow_nan=False)
    skw = _balanced()
    skw[2] = 0
    undefined = compare(_balanced(), skw, rare_class=1)["2"].to_dict()
    assert undefined["z"] is None and undefined["p_value"] is None and undefined["p_skewed"] is None
    json.dumps(undefined, allow_nan=False)


# ---- input validation ----


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(counts_balanced=np.zeros((9, 2), dtype=int)), "counts_balanced"),
        (dict(counts_skewed=np.zeros((10, 3), dtype=int)), "counts_skewed"),
        (dict(counts_skewed=np.full((10, 2), 5.0)), "counts_skewed"),
        (dict(counts_balanced=np.full((10, 2), -1)), "counts_balanced"),
        (dict(test="chi2"), "test"),
        (dict(correction="bonferroni"), "correction"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.0), "alpha"),
        (dict(rare_class=10), "rare_class"),
        (dict(rare_class=-1), "rare_class"),
        (dict(rare_class=True), "rare_class"),
        (dict(total_direction=0), "total_direction"),
        (dict(num_classes=0), "num_classes"),
    ],
)
def test_compare_validation(kwargs, match):
    args = dict(counts_balanced=_balanced(), counts_skewed=_balanced(), rare_class=0) | kwargs
    with pytest.raises(ValueError, match=match):
        compare(**args)


def test_other_validation():
    with pytest.raises(ValueError, match="k_s/n_s"):
        one_sample_z(11, 10, 0.5)
    with pytest.raises(ValueError, match="p_b"):
        one_sample_z(5, 10, 1.5)
    with pytest.raises(ValueError, match="k_b/n_b"):
        two_proportion_z(5, 10, -1, 10)
    with pytest.raises(ValueError, match="k_b/n_b"):
        fisher(5, 10, 11, 10)
    with pytest.raises(ValueError, match="direction"):
        verdict(1.0, 0.01, 0.05, 0)
    with pytest.raises(ValueError, match="labels"):
        counts_from_labels(np.array([0, 10]), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels/factor"):
        counts_from_labels(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="factor"):
        counts_from_labels(np.array([0, 1]), np.array([0, 2]))


# ---- support, reasons, intervals, every test's verdict ----


def _one_row(n_b, k_b, n_s, k_s, **kw):
    """compare() on a 2-class table whose class 0 is (n_b, k_b) / (n_s, k_s); k = 1."""
    bal = np.array([[n_b - k_b, k_b], [50, 50]])
    skw = np.array([[n_s - k_s, k_s], [50, 50]])
    return compare(bal, skw, rare_class=1, num_classes=2, **kw)["0"]


@pytest.mark.parametrize(
    ("row", "min_count", "reason"),
    [
        ((0, 0, 30, 10), 1, "no_samples"),
        ((30, 10, 0, 0), 20, "no_samples"),
        ((16, 8, 7, 0), 20, "low_support"),  # the default study's GAN class 1 had n_s = 7
        ((16, 8, 7, 0), 7, None),
        ((30, 0, 30, 10), 20, "degenerate_balanced"),
        ((5, 5, 30, 10), 20, "low_support"),  # low support wins over a degenerate P_c^u
        ((30, 10, 30, 10), 20, None),
    ],
)
def test_a_row_below_min_count_is_undefined_with_its_reason(row, min_count, reason):
    result = _one_row(*row, min_count=min_count)
    assert result.reason == reason
    assert (result.verdict == "undefined") == (reason is not None)
    assert (result.z is None) == (reason is not None)
    if reason is not None:
        assert set(result.verdicts.values()) == {"undefined"}


def test_a_large_shift_at_n_7_is_memorized_only_without_the_support_rule():
    # 8/16 against 0/7: one-sample z = (0 - 0.5) / sqrt(0.25 / 7) = -2.65
    assert _one_row(16, 8, 7, 0, min_count=1).verdict == "memorized"
    assert _one_row(16, 8, 7, 0, min_count=20).verdict == "undefined"


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    # Newcombe (1998a), Statistics in Medicine 17:857, Table I, method 3 (Wilson score)
    [(81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718))],
)
def test_wilson_interval_matches_newcombes_table(k, n, expected):
    assert wilson(k, n) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(
    ("counts", "expected"),
    # Newcombe (1998b), Statistics in Medicine 17:873, Table II, method 10 (hybrid score)
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0)),
    ],
)
def test_newcombe_difference_interval_matches_newcombes_table(counts, expected):
    assert newcombe(*counts) == pytest.approx(expected, abs=5e-5)


def test_every_row_carries_intervals_effect_size_and_every_tests_verdict():
    result = _one_row(100, 30, 25, 20)  # p_b 0.3, p_s 0.8
    assert result.ci_balanced == pytest.approx(wilson(30, 100)) and result.ci_skewed == pytest.approx(wilson(20, 25))
    assert result.difference == pytest.approx(0.5) and result.ci_difference == pytest.approx(newcombe(20, 25, 30, 100))
    # Cohen's h = 2 asin(sqrt(0.8)) - 2 asin(sqrt(0.3)) = 2.214297 - 1.159279
    assert result.cohen_h == pytest.approx(1.0550177, abs=1e-6)
    assert set(result.verdicts) == set(TESTS) and result.verdicts["one_sample"] == result.verdict
    assert cohen_h(0.5, 0.5) == 0.0


def test_the_one_sample_test_flags_what_the_pooled_test_does_not():
    # 45/100 against 35/100: one-sample z = (0.35 - 0.45) / sqrt(0.45 * 0.55 / 100) = -2.01 (p 0.044);
    # pooled z = -0.10 / sqrt(0.4 * 0.6 * 2 / 100) = -1.44 (p 0.15)
    result = _one_row(100, 45, 100, 35, test="one_sample")
    assert result.verdict == "memorized" and result.verdicts["two_proportion"] == "learned"
    assert _one_row(100, 45, 100, 35, test="two_proportion").verdict == "learned"


def test_min_count_must_be_positive():
    with pytest.raises(ValueError, match="min_count"):
        _one_row(30, 10, 30, 10, min_count=0)
