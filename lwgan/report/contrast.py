"""One arm against another on one metric, from per-seed values: the statistics every table, factor
contrast and verdict of the report is built from.

- **Paired by seed** (the default): a seed fixes the initialisation and the data stream in every
  variant (common random numbers), so when the two arms share >= 2 completed seeds the contrast is
  taken on the per-seed differences of those seeds: paired t-test (``scipy.stats.ttest_rel``) and
  the t-interval of the mean difference. Seeds only one arm completed are left out of a paired
  contrast.
- **Welch** otherwise (no shared seeds, e.g. a copy of the baseline run on other seeds): Welch's
  unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``) and the Welch-Satterthwaite
  interval of the difference of means.
- With fewer than ``MIN_SEEDS_TEST`` seeds (pairs, or per arm) there is no test and no t-interval:
  the per-seed values and their range are reported instead (a t-interval with 1 degree of freedom,
  t = 12.7, is not information).
- **Relative change** ``pct = 100 (mean_A - mean_B) / |mean_B|`` with **Fieller's** interval for the
  ratio mean_A / mean_B: it includes the reference arm's own uncertainty (and, paired, the covariance
  of the arms), and it excludes 0% exactly when the t-test of the difference is significant (the
  delta method, its linearisation, can disagree with the test at small n).
- Power (``statsmodels.stats.power``): the minimum detectable difference at this n, and the seeds a
  given difference needs, at a given alpha and power.

Every function is pure: values in, numbers out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import special as spsp
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
MIN_SEEDS_TEST = 3  # tests and t-intervals from 3 seeds (pairs, or per arm) on
MAX_SEEDS_REPORTED = 1000  # a "seeds needed" above this is reported as "> 1000"
_REL_TOL = 1e-9  # a spread below this fraction of the values' magnitude is rounding noise: treated as 0

PAIRED = "paired t"
WELCH = "Welch t"
NO_TEST = "none"


@dataclass(frozen=True)
class Contrast:
    """Arm A against arm B (the reference) on one metric. ``diff`` = mean_A - mean_B.

    ``test``: PAIRED, WELCH or NO_TEST (too few seeds). With a test: ``diff_lo/hi`` is the 95%
    t-interval, ``p`` the two-sided p-value, ``pct_lo/hi`` Fieller's interval of ``pct`` (NaN when
    the reference mean is not distinguishable from 0).
    Without: ``range_lo/hi`` (and ``pct_range_lo/hi``) bound the per-seed differences (paired) or
    every difference of an A value and a B value (unpaired). ``sd``: the sd that power uses (of the
    paired differences, or the pooled sd of the arms).
    """

    test: str
    n_a: int
    n_b: int
    n_pairs: int
    mean_a: float
    mean_b: float
    diff: float
    diff_lo: float = math.nan
    diff_hi: float = math.nan
    p: float = math.nan
    pct: float = math.nan
    pct_lo: float = math.nan
    pct_hi: float = math.nan
    range_lo: float = math.nan
    range_hi: float = math.nan
    pct_range_lo: float = math.nan
    pct_range_hi: float = math.nan
    sd: float = math.nan
    df: float = math.nan
    seeds: tuple[int, ...] = ()  # the seeds that entered (paired: the shared ones)

    @property
    def paired(self) -> bool:
        return self.test == PAIRED

    @property
    def tested(self) -> bool:
        return self.test != NO_TEST and math.isfinite(self.p)

    @property
    def n(self) -> int:
        """Seeds per arm as power sees them (pairs, or the smaller arm)."""
        return self.n_pairs if self.n_pairs else min(self.n_a, self.n_b)


def _clean(values: Mapping[int, float]) -> dict[int, float]:
    return {int(s): float(v) for s, v in values.items() if v is not None and math.isfinite(float(v))}


def _var(arr: np.ndarray) -> float:
    """Sample variance, 0 when the values agree up to floating-point rounding."""
    if arr.size < 2:
        return math.nan
    var = float(arr.var(ddof=1))
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    return 0.0 if var <= (_REL_TOL * max(scale, 1e-300)) ** 2 else var


def _tq(df: float, confidence: float) -> float:
    """Student-t quantile (``scipy.special.stdtrit``: the ufunc behind ``scipy.stats.t.ppf``, without its overhead)."""
    return float(spsp.stdtrit(df, 0.5 + confidence / 2))


def _t_p(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic (``scipy.special.stdtr``, as ``scipy.stats.t.sf``)."""
    return float(2.0 * spsp.stdtr(df, -abs(t)))


def _pct(x: float, scale: float) -> float:
    return 100.0 * x / scale if scale > 1e-12 else math.nan


def contrast(
    a: Mapping[int, float],
    b: Mapping[int, float],
    confidence: float = CONFIDENCE,
    paired: bool | None = None,
    min_seeds: int = MIN_SEEDS_TEST,
) -> Contrast:
    """Arm ``a`` against reference arm ``b``, both ``{seed: final value}`` (NaNs dropped).

    ``paired``: None = paired when the arms share >= 2 seeds, else Welch; True / False forces it
    (True with < 2 shared seeds falls back to Welch).
    """
    a, b = _clean(a), _clean(b)
    common = sorted(set(a) & set(b))
    use_paired = len(common) >= 2 if paired is None else (paired and len(common) >= 2)
    if use_paired:
        va = np.array([a[s] for s in common])
        vb = np.array([b[s] for s in common])
        return _paired(va, vb, tuple(common), len(a), len(b), confidence, min_seeds)
    return _welch(np.array(list(a.values())), np.array(list(b.values())), tuple(sorted(set(a) | set(b))), confidence, min_seeds)


def _paired(va: np.ndarray, vb: np.ndarray, seeds: tuple[int, ...], n_a: int, n_b: int, confidence: float, min_seeds: int) -> Contrast:
    n = va.size
    d = va - vb
    mean_a, mean_b, diff = float(va.mean()), float(vb.mean()), float(d.mean())
    scale = abs(mean_b)
    var_d = _var(d)
    sd = math.sqrt(var_d) if math.isfinite(var_d) else math.nan
    base = dict(n_a=n_a, n_b=n_b, n_pairs=n, mean_a=mean_a, mean_b=mean_b, diff=diff, pct=_pct(diff, scale), sd=sd, seeds=seeds)
    if n < min_seeds:
        pct_d = 100.0 * d / scale if scale > 1e-12 else np.full(n, math.nan)
        return Contrast(NO_TEST, **base, range_lo=float(d.min()), range_hi=float(d.max()),
                        pct_range_lo=float(pct_d.min()), pct_range_hi=float(pct_d.max()))
    df = n - 1
    half = _tq(df, confidence) * sd / math.sqrt(n)
    # The paired t-test (scipy.stats.ttest_rel, computed here from its definition: tests check they agree).
    p = _t_p(diff / (sd / math.sqrt(n)), df) if var_d > 0 else math.nan
    cov = np.cov(va, vb, ddof=1)
    pct_lo, pct_hi = fieller_pct(mean_a, mean_b, cov[0, 0] / n, cov[1, 1] / n, cov[0, 1] / n, _tq(df, confidence))
    return Contrast(PAIRED, **base, diff_lo=diff - half, diff_hi=diff + half, p=p, pct_lo=pct_lo, pct_hi=pct_hi, df=float(df))


def _welch(va: np.ndarray, vb: np.ndarray, seeds: tuple[int, ...], confidence: float, min_seeds: int) -> Contrast:
    n_a, n_b = va.size, vb.size
    mean_a = float(va.mean()) if n_a else math.nan
    mean_b = float(vb.mean()) if n_b else math.nan
    diff = mean_a - mean_b
    scale = abs(mean_b) if n_b else 0.0
    var_a, var_b = _var(va), _var(vb)
    sd = math.sqrt((var_a + var_b) / 2) if math.isfinite(var_a) and math.isfinite(var_b) else math.nan
    base = dict(n_a=n_a, n_b=n_b, n_pairs=0, mean_a=mean_a, mean_b=mean_b, diff=diff, pct=_pct(diff, scale), sd=sd, seeds=seeds)
    if n_a == 0 or n_b == 0:
        return Contrast(NO_TEST, **base)
    if n_a < min_seeds or n_b < min_seeds:
        lo, hi = float(va.min() - vb.max()), float(va.max() - vb.min())
        return Contrast(NO_TEST, **base, range_lo=lo, range_hi=hi, pct_range_lo=_pct(lo, scale), pct_range_hi=_pct(hi, scale))
    sa, sb = var_a / n_a, var_b / n_b
    se2 = sa + sb
    if se2 == 0:
        return Contrast(WELCH, **base, diff_lo=diff, diff_hi=diff, df=math.nan)
    df = se2**2 / (sa**2 / (n_a - 1) + sb**2 / (n_b - 1))
    half = _tq(df, confidence) * math.sqrt(se2)
    p = _t_p(diff / math.sqrt(se2), df)  # Welch's t-test (scipy.stats.ttest_ind(equal_var=False))
    pct_lo, pct_hi = fieller_pct(mean_a, mean_b, sa, sb, 0.0, _tq(df, confidence))
    return Contrast(WELCH, **base, diff_lo=diff - half, diff_hi=diff + half, p=p, pct_lo=pct_lo, pct_hi=pct_hi, df=float(df))


def fieller_pct(mean_a: float, mean_b: float, var_a: float, var_b: float, cov_ab: float, t: float) -> tuple[float, float]:
    """Fieller's interval of the relative change 100 (mean_a - mean_b) / |mean_b|, in %.

    The ratio rho = mean_a / mean_b is in the interval when |mean_a - rho mean_b| <= t se(mean_a - rho mean_b),
    with var_a, var_b, cov_ab the (co)variances of the two *means*: the reference's own uncertainty is
    included, and at rho = 1 the criterion is the t-test of the difference itself, so the interval
    excludes 0% exactly when that test is significant. (``t``: the test's quantile.) NaN when the
    reference mean is not distinguishable from 0 (the set is then unbounded)."""
    if not all(math.isfinite(x) for x in (mean_a, mean_b, var_a, var_b, cov_ab, t)) or abs(mean_b) <= 1e-12:
        return math.nan, math.nan
    q = t * t
    qa = mean_b * mean_b - q * var_b
    qb = -2.0 * (mean_a * mean_b - q * cov_ab)
    qc = mean_a * mean_a - q * var_a
    disc = qb * qb - 4.0 * qa * qc
    if qa <= 0 or disc < 0:
        return math.nan, math.nan
    root = math.sqrt(disc)
    lo, hi = (-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)
    sign = 1.0 if mean_b > 0 else -1.0
    ends = sorted((100.0 * (lo - 1.0) * sign, 100.0 * (hi - 1.0) * sign))
    return ends[0], ends[1]


# ----------------------------------------------------------------------------------
# Multiplicity
# ----------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, as ``statsmodels.stats.multitest.multipletests(method='holm')``
    (tested against it; that function runs the garbage collector on every call, too slow for the
    simulations); NaNs stay NaN and are not counted in the family."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


# ----------------------------------------------------------------------------------
# Correlations
# ----------------------------------------------------------------------------------


def fisher_ci(r: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of a Pearson correlation from ``n`` pairs on Fisher's z (as
    ``scipy.stats.pearsonr(...).confidence_interval()``); NaN below 4 pairs."""
    if not math.isfinite(r) or n < 4:
        return math.nan, math.nan
    z = math.atanh(max(-1 + 1e-15, min(1 - 1e-15, r)))
    half = float(sps.norm.ppf(0.5 + confidence / 2)) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


# ----------------------------------------------------------------------------------
# Power
# ----------------------------------------------------------------------------------


def _power_solver(paired: bool):
    # statsmodels' sm_exceptions runs warnings.simplefilter("always", ConvergenceWarning) when first
    # imported, which it does lazily inside a failed solve, i.e. inside our catch_warnings: its filter
    # then outranks our "ignore" and the warning reaches the user. Importing it here, first, keeps it quiet.
    import statsmodels.tools.sm_exceptions  # noqa: F401
    from statsmodels.stats.power import TTestIndPower, TTestPower

    return TTestPower() if paired else TTestIndPower()


def min_detectable(n: int, sd: float, paired: bool, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest |difference| a two-sided t-test detects with ``power`` at ``alpha`` with ``n`` seeds
    (pairs, or per arm), given the seed-to-seed ``sd`` (of the differences when paired, pooled
    otherwise). NaN when n < 2 or sd is not positive."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return math.nan
    solver = _power_solver(paired)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            d = solver.solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
        else:
            d = solver.solve_power(effect_size=None, nobs1=n, ratio=1.0, alpha=alpha, power=power, alternative="two-sided")
    return float(np.asarray(d).item()) * sd


def seeds_needed(effect: float, sd: float, paired: bool, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds (pairs, or per arm) a two-sided t-test needs to detect a true difference ``effect`` with
    ``power`` at ``alpha``, given the seed-to-seed ``sd``; at least 2 (paired) / 2 per arm. NaN when
    undefined; ``inf`` above MAX_SEEDS_REPORTED."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd <= 0 or effect == 0:
        return math.nan
    es = abs(effect) / sd
    solver = _power_solver(paired)
    # The power at the smallest n already suffices: no solve needed (and the solver's bracket starts above it).
    if _power(solver, es, 2, alpha, paired) >= power:
        return 2.0
    if _power(solver, es, MAX_SEEDS_REPORTED, alpha, paired) < power:
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            n = solver.solve_power(effect_size=es, nobs=None, alpha=alpha, power=power, alternative="two-sided")
        else:
            n = solver.solve_power(effect_size=es, nobs1=None, ratio=1.0, alpha=alpha, power=power, alternative="two-sided")
    n = float(np.asarray(n).item())
    return float(math.ceil(n - 1e-9)) if math.isfinite(n) else math.nan


def _power(solver, es: float, n: int, alpha: float, paired: bool) -> float:
    if paired:
        return float(solver.power(effect_size=es, nobs=n, alpha=alpha, alternative="two-sided"))
    return float(solver.power(effect_size=es, nobs1=n, ratio=1.0, alpha=alpha, alternative="two-sided"))
