"""Statistics of a study from its metric frames: final-window values, comparisons with the baseline
(paired-by-seed or Welch contrasts of lwgan.report.contrast, Δ% with a Fieller interval,
Holm-corrected marks, Hedges' g) and the EMA of the curves; the
stability measures are lwgan.report.stability's.

Every function is pure: DataFrames and arrays in, DataFrames and numbers out.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lwgan import vocab
from lwgan.report import contrast as C
from lwgan.report.contrast import holm  # noqa: F401 - the one Holm adjustment, re-exported for stats' callers

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_SEEDS_CI = 2  # a CI needs a standard deviation
MIN_SEEDS_TEST = 3  # tests, t-intervals and Hedges' g from 3 seeds per group on (fewer: per-seed values and range)

COMPARISON_COLUMNS = [
    "variant", "key", "scale", "test", "n_base", "n_var", "n_pairs", "base_mean", "base_ci", "base_min", "base_max",
    "var_mean", "var_ci", "var_min", "var_max", "diff", "diff_lo", "diff_hi", "delta_pct", "pct_lo", "pct_hi",
    "range_lo", "range_hi", "pct_range_lo", "pct_range_hi", "p", "p_holm", "hedges_g", "marked", "family",
]


# ----------------------------------------------------------------------------------
# Final window
# ----------------------------------------------------------------------------------


def window_size(n_points: int, frac: float) -> int:
    """Points in the final window: the last ``ceil(frac * n)`` logged points, at least one."""
    if n_points <= 0:
        return 0
    return max(1, min(n_points, math.ceil(frac * n_points - 1e-9)))


def final_window(metrics: pd.DataFrame, frac: float = 0.2) -> pd.DataFrame:
    """The rows of ``metrics`` (long: run_id, variant, seed, key, step, value, ...) in each (run, key)'s
    final window, runs in (variant, seed) order: what is summed over seeds later adds in seed order, not
    in the order of the (random) run ids, so the same values give the same report to the last digit."""
    if metrics.empty:
        return metrics.copy()
    ordered = metrics.sort_values(["variant", "seed", "run_id", "key", "step"], kind="stable", na_position="last")
    rank_from_end = ordered.groupby(["run_id", "key"], sort=False).cumcount(ascending=False)
    sizes = ordered.groupby(["run_id", "key"], sort=False)["step"].transform("size")
    keep = rank_from_end < np.maximum(1, np.ceil(frac * sizes.to_numpy(float) - 1e-9))
    return ordered[keep.to_numpy()]


def final_values(metrics: pd.DataFrame, frac: float = 0.2) -> pd.DataFrame:
    """One row per (run, key): the mean over the final window, with its size and step range."""
    cols = ["run_id", "variant", "seed", "key", "value", "n_points", "first_step", "last_step"]
    win = final_window(metrics, frac)
    if win.empty:
        return pd.DataFrame(columns=cols)
    grouped = win.groupby(["run_id", "variant", "seed", "key"], sort=False)
    out = grouped.agg(
        value=("value", "mean"), n_points=("value", "size"), first_step=("step", "min"), last_step=("step", "max")
    ).reset_index()
    return out[cols]


# ----------------------------------------------------------------------------------
# Confidence intervals and tests
# ----------------------------------------------------------------------------------

_REL_TOL = 1e-9  # a spread below this fraction of the values' magnitude is rounding noise: treated as 0


def _var(arr: np.ndarray) -> float:
    """Sample variance, 0 when the values agree up to floating-point rounding (identical seeds)."""
    if arr.size < 2:
        return math.nan
    var = float(arr.var(ddof=1))
    scale = float(np.max(np.abs(arr)))
    return 0.0 if var <= (_REL_TOL * scale) ** 2 else var



def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Mean and the half-width of its t-based confidence interval (NaN half-width for < 2 values)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan
    sem = math.sqrt(_var(arr) / arr.size)
    return mean, float(sps.t.ppf(0.5 + confidence / 2, arr.size - 1)) * sem


def welch_diff_ci(variant: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Difference of means (variant - baseline) and the half-width of its Welch-Satterthwaite CI."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    diff = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2:
        return diff, math.nan
    va, vb = _var(a) / a.size, _var(b) / b.size
    se2 = va + vb
    if se2 == 0:
        return diff, 0.0
    dof = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return diff, float(sps.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(se2)


def welch_p(variant: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when undefined."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.size < 2 or b.size < 2 or (_var(a) == 0 and _var(b) == 0):
        return math.nan  # no spread in either group: a t-test is undefined
    with warnings.catch_warnings():  # near-identical seeds: scipy warns of precision loss; the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.ttest_ind(a, b, equal_var=False).pvalue)


def hedges_g(variant: Sequence[float], baseline: Sequence[float]) -> float:
    """Standardised mean difference (variant - baseline) / pooled sd, with the small-sample correction J."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    n1, n2 = a.size, b.size
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * _var(a) + (n2 - 1) * _var(b)) / (n1 + n2 - 2))
    if pooled == 0:
        return math.nan
    correction = 1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0)
    return float((a.mean() - b.mean()) / pooled * correction)



# ----------------------------------------------------------------------------------
# Comparison with the baseline
# ----------------------------------------------------------------------------------


def compare_to_baseline(
    finals: pd.DataFrame,
    keys: Sequence[str],
    variants: Sequence[str],
    baseline: str = vocab.BASELINE,
    confidence: float = CONFIDENCE,
    families: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per (variant, key): the contrast of the variant with the baseline (``lwgan.report.contrast``:
    paired by seed where both ran the same seeds, Welch otherwise; no test and the per-seed range
    below 3 seeds), on the metric's scale: ``delta_pct`` with its Fieller interval for loss
    terms (the baseline's uncertainty included), the absolute ``diff`` for SSIM / LPIPS / PSNR (dB)
    and the rest (``scale``). ``p_holm``: Holm across every test of the same family (``families``:
    key -> family name, e.g. the table it is shown in; default: one family for all keys);
    ``marked`` = ``p_holm < ALPHA``, the only source of significance marks.

    ``finals`` holds one row per run and key (``final_values``) of *completed* runs only. Means come
    with their t-interval half-width from 3 seeds on, and always with their min and max.
    """
    from lwgan.report.verdicts import relative_scale, scale_unit

    lookup: dict[tuple[str, str], dict[int, float]] = {}
    for variant, seed, key, value in finals[["variant", "seed", "key", "value"]].itertuples(index=False):
        if pd.notna(seed) and value is not None and math.isfinite(float(value)):
            lookup.setdefault((str(variant), str(key)), {})[int(seed)] = float(value)

    def described(values: dict[int, float]) -> tuple[float, float, float, float]:
        arr = list(values.values())
        mean, half = mean_ci(arr, confidence)
        if len(arr) < MIN_SEEDS_TEST:
            half = math.nan
        return mean, half, min(arr, default=math.nan), max(arr, default=math.nan)

    rows = []
    for variant in variants:
        for key in keys:
            b = lookup.get((baseline, key), {})
            v = lookup.get((variant, key), {})
            relative = relative_scale(key)
            base_mean, base_ci, base_min, base_max = described(b)
            var_mean, var_ci, var_min, var_max = described(v)
            row = dict(
                variant=variant, key=key, scale=scale_unit(key, relative), test=C.NO_TEST, n_base=len(b), n_var=len(v),
                n_pairs=0, base_mean=base_mean, base_ci=base_ci, base_min=base_min, base_max=base_max,
                var_mean=var_mean, var_ci=var_ci, var_min=var_min, var_max=var_max,
                diff=math.nan, diff_lo=math.nan, diff_hi=math.nan, delta_pct=math.nan, pct_lo=math.nan, pct_hi=math.nan,
                range_lo=math.nan, range_hi=math.nan, pct_range_lo=math.nan, pct_range_hi=math.nan,
                p=math.nan, p_holm=math.nan, hedges_g=math.nan, marked=False, family=(families or {}).get(key, "all"),
            )
            if variant != baseline and b and v:
                c = C.contrast(v, b, confidence)
                row.update(
                    test=c.test, n_pairs=c.n_pairs, diff=c.diff, diff_lo=c.diff_lo, diff_hi=c.diff_hi, delta_pct=c.pct,
                    pct_lo=c.pct_lo, pct_hi=c.pct_hi, range_lo=c.range_lo, range_hi=c.range_hi,
                    pct_range_lo=c.pct_range_lo, pct_range_hi=c.pct_range_hi, p=c.p,
                )
                if c.tested:
                    row["hedges_g"] = hedges_g(list(v.values()), list(b.values()))
            rows.append(row)
    return apply_holm(pd.DataFrame(rows, columns=COMPARISON_COLUMNS))


def apply_holm(comparison: pd.DataFrame) -> pd.DataFrame:
    """``p_holm`` (Holm within each ``family`` over the rows with a finite ``p``) and ``marked``."""

    out = comparison.copy()
    for _, idx in out.groupby("family", sort=False).groups.items():
        out.loc[idx, "p_holm"] = C.holm(out.loc[idx, "p"].to_numpy(float))
    out["marked"] = [bool(np.isfinite(p) and p < ALPHA) for p in out["p_holm"].to_numpy(float)]
    return out


def is_significant(row: Mapping, alpha: float = ALPHA) -> bool:
    """Holm-adjusted p below alpha (only defined with >= 3 seeds per group)."""
    p = row["p_holm"]
    return bool(p is not None and np.isfinite(p) and p < alpha)


# ----------------------------------------------------------------------------------
# Smoothing (the stability measures live in lwgan.report.stability)
# ----------------------------------------------------------------------------------


def ema_span(n_points: int, frac: float = 0.05, minimum: int = 3) -> int:
    """EMA span used for curves and residuals: 5% of the logged points, at least 3."""
    return max(minimum, int(round(frac * n_points)))


def ema(values: Sequence[float], span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), started at the first value (no bias correction)."""
    series = pd.Series(np.asarray(values, dtype=float))
    return series.ewm(span=span, adjust=False, ignore_na=True).mean().to_numpy()


def summarize_by_variant(frame: pd.DataFrame, columns: Sequence[str], variants: Sequence[str]) -> pd.DataFrame:
    """Mean and 95% CI half-width across seeds of each column, per variant (rows in ``variants`` order)."""
    rows = []
    for variant in variants:
        sub = frame[frame["variant"] == variant]
        row: dict[str, float | str | int] = {"variant": variant, "n": len(sub)}
        for col in columns:
            mean, half = mean_ci(sub[col].to_numpy(float)) if len(sub) else (math.nan, math.nan)
            row[col] = mean
            row[f"{col}_ci"] = half
        rows.append(row)
    return pd.DataFrame(rows)
