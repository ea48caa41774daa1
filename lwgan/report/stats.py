"""Statistics of a study from its metric frames: final-window values, comparisons with the baseline
(delta in %, 95% CIs, Welch's t-test with Holm correction, Hedges' g) and the EMA of the curves; the
stability measures are lwgan.report.stability's.

Every function is pure: DataFrames and arrays in, DataFrames and numbers out.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lwgan import vocab

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_SEEDS_CI = 2  # a CI needs a standard deviation
MIN_SEEDS_TEST = 3  # Welch's test and Hedges' g are reported from 3 seeds per group on

COMPARISON_COLUMNS = [
    "variant", "key", "n_base", "n_var", "base_mean", "base_ci", "var_mean", "var_ci",
    "diff", "diff_ci", "delta_pct", "delta_ci_pct", "ci_excludes_zero", "p_welch", "p_holm", "hedges_g",
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
    """The rows of ``metrics`` (long: run_id, key, step, value, ...) in each (run, key)'s final window."""
    if metrics.empty:
        return metrics.copy()
    ordered = metrics.sort_values(["run_id", "key", "step"], kind="stable")
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


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; NaNs stay NaN and are not counted in the family."""
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


# ----------------------------------------------------------------------------------
# Comparison with the baseline
# ----------------------------------------------------------------------------------


def compare_to_baseline(
    finals: pd.DataFrame,
    keys: Sequence[str],
    variants: Sequence[str],
    baseline: str = vocab.BASELINE,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Per (variant, key): means, 95% CIs, delta vs baseline in % with the CI of the difference,
    Welch p (>= 3 seeds in both groups), Holm-adjusted p across the variants of each key, Hedges' g.

    ``finals`` holds one row per run and key (``final_values``) of *completed* runs only.
    The delta's CI is the Welch CI of the difference of means divided by |baseline mean|
    (the baseline mean is treated as a fixed scale).
    """
    rows = []
    base_vals = {k: finals.loc[(finals["variant"] == baseline) & (finals["key"] == k), "value"].to_numpy(float) for k in keys}
    for variant in variants:
        for key in keys:
            b = base_vals[key]
            v = finals.loc[(finals["variant"] == variant) & (finals["key"] == key), "value"].to_numpy(float)
            b, v = b[np.isfinite(b)], v[np.isfinite(v)]
            base_mean, base_ci = mean_ci(b, confidence)
            var_mean, var_ci = mean_ci(v, confidence)
            row = dict(
                variant=variant, key=key, n_base=b.size, n_var=v.size, base_mean=base_mean, base_ci=base_ci,
                var_mean=var_mean, var_ci=var_ci, diff=math.nan, diff_ci=math.nan, delta_pct=math.nan,
                delta_ci_pct=math.nan, ci_excludes_zero=False, p_welch=math.nan, p_holm=math.nan, hedges_g=math.nan,
            )
            if variant != baseline and b.size and v.size:
                diff, half = welch_diff_ci(v, b, confidence)
                row.update(diff=diff, diff_ci=half)
                scale = abs(base_mean)
                if scale > 1e-12:
                    row.update(delta_pct=100.0 * diff / scale, delta_ci_pct=100.0 * half / scale)
                row["ci_excludes_zero"] = bool(np.isfinite(half) and abs(diff) > half)
                if b.size >= MIN_SEEDS_TEST and v.size >= MIN_SEEDS_TEST:
                    row.update(p_welch=welch_p(v, b), hedges_g=hedges_g(v, b))
            rows.append(row)
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for key in keys:
        mask = out["key"] == key
        out.loc[mask, "p_holm"] = holm(out.loc[mask, "p_welch"])
    return out


def is_significant(row: pd.Series, alpha: float = ALPHA) -> bool:
    """Holm-adjusted p below alpha (only defined with >= 3 seeds per group)."""
    return bool(np.isfinite(row["p_holm"]) and row["p_holm"] < alpha)


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
