"""lwgan.report.contrast against scipy / statsmodels and hand computations."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from lwgan.report import contrast as C


def _seeds(values, start=0):
    return {start + i: v for i, v in enumerate(values)}


def test_paired_contrast_is_scipys_paired_t_test():
    a = [1.30, 1.10, 1.52, 1.21, 1.44]
    b = [1.00, 0.95, 1.31, 1.02, 1.20]
    c = C.contrast(_seeds(a), _seeds(b))
    ref = sps.ttest_rel(a, b)
    lo, hi = ref.confidence_interval(0.95)
    assert c.test == C.PAIRED and c.n_pairs == 5
    assert c.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (c.diff_lo, c.diff_hi) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert c.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert c.sd == pytest.approx(np.std(np.subtract(a, b), ddof=1))


def test_disjoint_seeds_give_scipys_welch_test():
    a = [2.0, 2.4, 1.9, 2.2]
    b = [1.5, 1.9, 1.7]
    c = C.contrast(_seeds(a, 10), _seeds(b, 0))
    ref = sps.ttest_ind(a, b, equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    assert c.test == C.WELCH and c.n_pairs == 0
    assert c.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (c.diff_lo, c.diff_hi) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))


def test_pairing_uses_only_the_shared_seeds_and_can_be_forced_off():
    a = {0: 1.0, 1: 2.0, 2: 3.5, 3: 9.0}
    b = {0: 0.5, 1: 1.4, 2: 3.0}
    c = C.contrast(a, b)
    assert c.paired and c.seeds == (0, 1, 2) and (c.n_a, c.n_b) == (4, 3)
    assert c.p == pytest.approx(sps.ttest_rel([1.0, 2.0, 3.5], [0.5, 1.4, 3.0]).pvalue)
    w = C.contrast(a, b, paired=False)
    assert w.test == C.WELCH and w.p == pytest.approx(sps.ttest_ind(list(a.values()), list(b.values()), equal_var=False).pvalue)


def test_fewer_than_three_seeds_give_the_range_and_no_interval():
    c = C.contrast({0: 1.2, 1: 1.6}, {0: 1.0, 1: 1.0})
    assert c.test == C.NO_TEST and not c.tested
    assert math.isnan(c.p) and math.isnan(c.diff_lo) and math.isnan(c.pct_lo)
    assert (c.range_lo, c.range_hi) == (pytest.approx(0.2), pytest.approx(0.6))
    assert (c.pct_range_lo, c.pct_range_hi) == (pytest.approx(20.0), pytest.approx(60.0))
    u = C.contrast({5: 3.0, 6: 4.0}, {0: 1.0, 1: 2.0})  # unpaired: every A minus every B
    assert u.test == C.NO_TEST and (u.range_lo, u.range_hi) == (1.0, 3.0)


def test_identical_arms_have_no_test():
    same = _seeds([1.0, 2.0, 3.0])
    c = C.contrast(same, same)
    assert c.test == C.PAIRED and c.diff == 0 and math.isnan(c.p) and not c.tested


def test_fieller_reduces_to_the_difference_interval_when_the_baseline_is_exact():
    a = [11.0, 12.5, 10.4, 11.9]
    b = {i: 10.0 for i in range(4)}  # no spread in the reference: its mean is a fixed scale
    c = C.contrast(_seeds(a), b)
    assert c.pct == pytest.approx(100 * (np.mean(a) - 10) / 10)
    assert c.pct_lo == pytest.approx(100 * c.diff_lo / 10, rel=1e-9)
    assert c.pct_hi == pytest.approx(100 * c.diff_hi / 10, rel=1e-9)


def test_fieller_includes_the_baseline_uncertainty_and_covers():
    """The Δ% interval is wider than diff-CI/|mean_B| when the baseline varies independently, and its
    coverage over simulated studies is close to 95% (paired and Welch)."""
    rng = np.random.default_rng(3)
    true_pct = 100 * (12.0 - 10.0) / 10.0
    for paired in (True, False):
        hits = 0
        sims = 1500
        for _ in range(sims):
            seed_effect = rng.normal(0, 1.0, 12) if paired else 0
            b = 10.0 + seed_effect + rng.normal(0, 0.8, 12)
            a = 12.0 + seed_effect + rng.normal(0, 0.8, 12)
            c = C.contrast(_seeds(a), _seeds(b) if paired else _seeds(b, 100))
            hits += c.pct_lo <= true_pct <= c.pct_hi
        assert 0.925 <= hits / sims <= 0.975, (paired, hits / sims)
    a, b = _seeds([12.0, 13.0, 11.0, 12.5]), _seeds([9.0, 11.0, 10.0, 10.5], 10)
    c = C.contrast(a, b)
    assert (c.pct_hi - c.pct_lo) > 100 * (c.diff_hi - c.diff_lo) / abs(c.mean_b)


def test_holm_matches_statsmodels_and_skips_nans():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, math.nan, 0.03, 0.2]
    out = C.holm(p)
    ref = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    assert math.isnan(out[2])
    assert np.allclose(out[[0, 1, 3, 4]], ref)
    assert np.allclose(out[[0, 1, 3, 4]], [0.04, 0.09, 0.09, 0.2])  # by hand: 4p, max(3p...), ...


def test_fisher_interval_is_scipys():
    rng = np.random.default_rng(0)
    x = rng.normal(size=20)
    y = 0.6 * x + rng.normal(size=20)
    res = sps.pearsonr(x, y)
    lo, hi = C.fisher_ci(float(res.statistic), 20)
    ci = res.confidence_interval(0.95)
    assert (lo, hi) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
    assert C.fisher_ci(0.5, 3) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True))


def _paired_power(effect, sd, n, alpha=0.05):
    """Exact power of the two-sided one-sample t-test from the noncentral t (independent of statsmodels)."""
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = effect / sd * math.sqrt(n)
    return sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)


def test_minimum_detectable_effect_has_the_stated_power():
    for n in (3, 5, 10):
        mde = C.min_detectable(n, sd=2.0, paired=True)
        assert _paired_power(mde, 2.0, n) == pytest.approx(0.8, abs=1e-4)
    assert math.isnan(C.min_detectable(1, 2.0, True)) and math.isnan(C.min_detectable(5, 0.0, True))
    assert C.min_detectable(5, 1.0, paired=False) > C.min_detectable(5, 1.0, paired=True)


def test_seeds_needed_is_the_smallest_n_with_the_power():
    for effect in (0.5, 1.0, 3.0):
        n = int(C.seeds_needed(effect, sd=1.0, paired=True))
        assert _paired_power(effect, 1.0, n) >= 0.8
        if n > 2:
            assert _paired_power(effect, 1.0, n - 1) < 0.8
    assert C.seeds_needed(1e-6, 1.0, True) == math.inf
    assert math.isnan(C.seeds_needed(1.0, 0.0, True))


def test_fieller_interval_excludes_zero_exactly_when_the_test_is_significant():
    rng = np.random.default_rng(11)
    agree = 0
    for i in range(400):
        n = 3 + i % 4
        shift = rng.normal(0, 0.3)
        b = 2.0 + rng.normal(0, 0.5, n)
        a = b * (1 + shift * 0.2) + rng.normal(0, 0.2, n)
        for c in (C.contrast(_seeds(a), _seeds(b)), C.contrast(_seeds(a), _seeds(b, 50))):
            if not math.isfinite(c.pct_lo):
                continue
            excludes = c.pct_lo > 0 or c.pct_hi < 0
            assert excludes == (c.p < 0.05), (c.p, c.pct_lo, c.pct_hi)
            agree += 1
    assert agree > 600


def test_fieller_matches_a_hand_solved_quadratic():
    # Welch arms: mean_a 3, var(mean_a) 0.04; mean_b 2, var(mean_b) 0.01; t = 2
    # (3 - 2r)^2 = 4 (0.04 + 0.01 r^2)  ->  3.96 r^2 - 12 r + 8.84 = 0
    lo, hi = C.fieller_pct(3.0, 2.0, 0.04, 0.01, 0.0, 2.0)
    roots = sorted(np.roots([3.96, -12.0, 8.84]).real)
    assert (lo, hi) == (pytest.approx(100 * (roots[0] - 1)), pytest.approx(100 * (roots[1] - 1)))
    assert C.fieller_pct(3.0, 0.1, 0.04, 0.01, 0.0, 2.0) == (pytest.approx(math.nan, nan_ok=True),) * 2  # b ~ 0: unbounded
