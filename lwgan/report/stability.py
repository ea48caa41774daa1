"""Stability of a GAN training, as the seed paper means it: per-run scalar measures computed from the
logged loss histories, here and nowhere else. Claims (H_E3 "E3 oscillates less than E2") and the
report's stability section read these numbers.

The measures (names in ``lwgan.vocab``, one value per completed run; ``stability_finals`` returns them
in the long layout of ``stats.final_values`` so a claim can name them like any metric):

``stability/swing_G``, ``stability/swing_D`` (% of the loss level)
    Low-frequency swing of ``loss/G_total`` / ``loss/D_total`` over the final window: the loss is put
    on a uniform step grid, low-passed with a zero-phase Butterworth filter (order 4, forward-backward)
    that keeps swings slower than ``lowpass_frac`` of the run (5%: 1.5 of 30 epochs, at least
    ``min_period`` steps); over the final window the least-squares line (the drift of a converging
    loss) is removed and the amplitude is sqrt(2) x the RMS of what is left -- the amplitude of a
    sinusoid with that RMS -- in % of the mean low-passed level. A loss that swings by +-2 around 10
    scores 20; a flat or steadily converging loss scores 0. Swings with periods from the low-pass
    period up to about half the final window count in full; slower ones read as drift.
``stability/noise_G``, ``stability/noise_D`` (% of the loss level)
    Step-to-step noise: the sd over the final window of the loss minus its low-passed curve, in % of
    the same level. Kept apart from the swing: noisy minibatch losses are not oscillation.
``stability/corr_GD`` (Pearson r)
    Correlation of the G and D low-frequency components (low-passed, detrended) over the final window;
    negative when G and D swing against each other (a see-saw).
``stability/d_gap`` (D output units)
    D(real) - D(fake) (``D/real_mean - D/fake_mean``) averaged over the final window. The LSGAN targets
    are +1 (real) and -1 (fake), so 2 is a perfect discriminator and 0 one that cannot tell.
``stability/d_dominant`` (fraction of logged steps)
    How long D dominates: the fraction of the run's logged steps whose D gap exceeds ``dominance_gap``
    (1.0, half the target distance), over the whole run.

Every function is pure: frames and arrays in, frames and numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import signal as sps_signal
from scipy import stats as sps

from lwgan import vocab


@dataclass(frozen=True)
class StabilitySettings:
    """How the measures are taken (the defaults are what the report states)."""

    window: float = 0.2  # final window: the last fraction of the run's logged points
    lowpass_frac: float = 0.05  # swings slower than this fraction of the run count as low-frequency
    min_period: float = 4.0  # ... and never faster than this many steps (the filter needs > 2)
    dominance_gap: float = 1.0  # D dominates while D(real) - D(fake) exceeds this (targets +1 / -1)
    min_points: int = 12  # shorter histories (e.g. the tiny profile) give NaN, not a number from 3 points

    def __post_init__(self) -> None:
        if not 0 < self.window <= 1:
            raise ValueError(f"StabilitySettings.window: {self.window!r} is not a fraction in (0, 1]")
        if not 0 < self.lowpass_frac < 1:
            raise ValueError(f"StabilitySettings.lowpass_frac: {self.lowpass_frac!r} is not a fraction in (0, 1)")
        if not self.min_period > 2:
            raise ValueError(f"StabilitySettings.min_period: {self.min_period!r} must exceed 2 steps (Nyquist)")


LOWPASS_ORDER = 4

COLUMNS = ["run_id", "variant", "seed", *vocab.STABILITY_METRICS, "n_window", "period_steps"]


# ----------------------------------------------------------------------------------
# Signal pieces
# ----------------------------------------------------------------------------------


def uniform_grid(steps: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by step, linearly interpolated onto a grid of the median step spacing."""
    s = np.asarray(steps, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(s) & np.isfinite(v)
    s, v = s[ok], v[ok]
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    if s.size < 2:
        return s, v
    s, first = np.unique(s, return_index=True)
    v = v[first]
    if s.size < 2:
        return s, v
    spacing = float(np.median(np.diff(s)))
    grid = np.arange(s[0], s[-1] + spacing / 2, spacing)
    return grid, np.interp(grid, s, v)


def lowpass(values: Sequence[float], period: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass (order ``LOWPASS_ORDER``, applied forward and backward) that keeps
    components slower than ``period`` samples; odd padding at the ends."""
    x = np.asarray(values, dtype=float)
    if period <= 2:
        raise ValueError(f"lowpass: period {period!r} must exceed 2 samples")
    sos = sps_signal.butter(LOWPASS_ORDER, 2.0 / period, btype="low", output="sos")
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    return sps_signal.sosfiltfilt(sos, x, padlen=min(default_pad, x.size - 1))


def detrend_line(values: np.ndarray) -> np.ndarray:
    """``values`` minus their least-squares straight line."""
    t = np.arange(values.size, dtype=float)
    if values.size < 2:
        return values - values.mean()
    slope, intercept = np.polyfit(t, values, 1)
    return values - (slope * t + intercept)


def window_points(n_points: int, frac: float) -> int:
    """The last ``ceil(frac * n)`` points, at least one (as ``stats.window_size``)."""
    if n_points <= 0:
        return 0
    return max(1, min(n_points, math.ceil(frac * n_points - 1e-9)))


@dataclass(frozen=True)
class Swing:
    """One loss over the final window: low-frequency amplitude and step noise (absolute and % of level)."""

    amplitude: float
    amplitude_pct: float
    noise: float
    noise_pct: float
    level: float
    band: pd.Series  # the detrended low-frequency component over the window, indexed by step
    period: float  # low-pass period in steps


NAN_SWING = Swing(math.nan, math.nan, math.nan, math.nan, math.nan, pd.Series(dtype=float), math.nan)


def loss_swing(steps: Sequence[float], values: Sequence[float], settings: StabilitySettings = StabilitySettings()) -> Swing:
    """Low-frequency swing and step noise of one loss history (see the module docstring)."""
    grid, x = uniform_grid(steps, values)
    if x.size < settings.min_points:
        return NAN_SWING
    spacing = float(grid[1] - grid[0])
    period_steps = max(settings.min_period * spacing, settings.lowpass_frac * float(grid[-1] - grid[0]))
    smooth = lowpass(x, period_steps / spacing)
    k = window_points(x.size, settings.window)
    if k < 3:
        return NAN_SWING
    low, raw = smooth[-k:], x[-k:]
    band = detrend_line(low)
    amplitude = math.sqrt(2.0) * float(np.sqrt(np.mean(band**2)))
    noise = float(np.std(raw - low, ddof=1))
    level = float(np.mean(np.abs(low)))
    pct = (lambda a: 100.0 * a / level) if level > 1e-12 else (lambda a: math.nan)
    return Swing(amplitude, pct(amplitude), noise, pct(noise), level, pd.Series(band, index=grid[-k:]), period_steps)


def d_gap_series(real_mean: pd.Series, fake_mean: pd.Series) -> pd.Series:
    """D(real) - D(fake) on the steps where both are logged (indexed by step)."""
    joined = pd.concat([real_mean.rename("r"), fake_mean.rename("f")], axis=1, join="inner").dropna().sort_index()
    return joined["r"] - joined["f"]


# ----------------------------------------------------------------------------------
# Per run, per study
# ----------------------------------------------------------------------------------


def run_stability(histories: Mapping[str, pd.Series], settings: StabilitySettings = StabilitySettings()) -> dict[str, float]:
    """The measures of one run from its histories (metric name -> values indexed by step)."""
    empty = pd.Series(dtype=float)
    g = histories.get(vocab.G_TOTAL, empty).dropna()
    d = histories.get(vocab.D_TOTAL, empty).dropna()
    sg = loss_swing(g.index, g.to_numpy(), settings)
    sd = loss_swing(d.index, d.to_numpy(), settings)
    corr = math.nan
    joined = pd.concat([sg.band.rename("g"), sd.band.rename("d")], axis=1, join="inner").dropna()
    if len(joined) >= 3 and joined["g"].std() > 0 and joined["d"].std() > 0:
        corr = float(np.corrcoef(joined["g"], joined["d"])[0, 1])
    gap = d_gap_series(histories.get(vocab.D_REAL_MEAN, empty), histories.get(vocab.D_FAKE_MEAN, empty))
    if gap.size >= settings.min_points:
        k = window_points(gap.size, settings.window)
        d_gap = float(gap.iloc[-k:].mean())
        dominant = float((gap > settings.dominance_gap).mean())
    else:
        d_gap = dominant = math.nan
    return {
        vocab.STABILITY_SWING_G: sg.amplitude_pct,
        vocab.STABILITY_SWING_D: sd.amplitude_pct,
        vocab.STABILITY_NOISE_G: sg.noise_pct,
        vocab.STABILITY_NOISE_D: sd.noise_pct,
        vocab.STABILITY_CORR_GD: corr,
        vocab.STABILITY_D_GAP: d_gap,
        vocab.STABILITY_D_DOMINANT: dominant,
        "n_window": int(len(sg.band)),
        "period_steps": sg.period,
    }


_INPUT_KEYS = (vocab.G_TOTAL, vocab.D_TOTAL, vocab.D_REAL_MEAN, vocab.D_FAKE_MEAN)


def stability_frame(metrics: pd.DataFrame, settings: StabilitySettings = StabilitySettings()) -> pd.DataFrame:
    """One row per run of a long metrics frame (run_id, variant, seed, key, step, value): ``COLUMNS``."""
    rows = []
    sub = metrics[metrics["key"].isin(_INPUT_KEYS)]
    for (run_id, variant, seed), grp in sub.groupby(["run_id", "variant", "seed"], sort=False, dropna=False):
        histories = {key: g.set_index("step")["value"] for key, g in grp.groupby("key")}
        rows.append(dict(run_id=run_id, variant=variant, seed=seed, **run_stability(histories, settings)))
    return pd.DataFrame(rows, columns=COLUMNS)


def stability_finals(metrics: pd.DataFrame, settings: StabilitySettings = StabilitySettings()) -> pd.DataFrame:
    """The measures in the long layout of ``stats.final_values`` (run_id, variant, seed, key, value,
    n_points, first_step, last_step), finite values only, so claims and tables treat them as metrics."""
    cols = ["run_id", "variant", "seed", "key", "value", "n_points", "first_step", "last_step"]
    wide = stability_frame(metrics, settings)
    if wide.empty:
        return pd.DataFrame(columns=cols)
    g_steps = {run_id: np.sort(grp["step"].to_numpy(float))
               for run_id, grp in metrics[metrics["key"] == vocab.G_TOTAL].groupby("run_id")}
    rows = []
    for r in wide.to_dict("records"):
        steps = g_steps.get(r["run_id"], np.array([math.nan]))
        k = window_points(steps.size, settings.window)
        for key in vocab.STABILITY_METRICS:
            value = float(r[key])
            if not math.isfinite(value):
                continue
            whole_run = key == vocab.STABILITY_D_DOMINANT  # the others describe the final window
            rows.append(dict(run_id=r["run_id"], variant=r["variant"], seed=r["seed"], key=key, value=value,
                             n_points=steps.size if whole_run else k,
                             first_step=steps[0] if whole_run else steps[-k], last_step=steps[-1]))
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------
# Across seeds: correlations on Fisher's z, positive scales on logs
# ----------------------------------------------------------------------------------


MIN_SEEDS_INTERVAL = 3  # with fewer seeds the report shows each seed and their range, no t-interval


@dataclass(frozen=True)
class SeedSummary:
    """Centre and 95% interval of per-seed values (interval NaN below ``MIN_SEEDS_INTERVAL`` seeds)."""

    n: int
    centre: float
    low: float
    high: float
    minimum: float
    maximum: float


def _t_interval(z: np.ndarray, confidence: float) -> tuple[float, float, float]:
    centre = float(z.mean())
    if z.size < MIN_SEEDS_INTERVAL:
        return centre, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2, z.size - 1)) * float(z.std(ddof=1)) / math.sqrt(z.size)
    return centre, centre - half, centre + half


def fisher_z_summary(rs: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Per-seed correlations averaged on Fisher's z = atanh(r) with a t-interval over seeds, back on r."""
    r = np.asarray(rs, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return SeedSummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    z = np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12))
    centre, lo, hi = _t_interval(z, confidence)
    return SeedSummary(int(r.size), math.tanh(centre), math.tanh(lo), math.tanh(hi), float(r.min()), float(r.max()))


def log_scale_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Geometric mean of positive per-seed values (sds, amplitudes) with a t-interval on log values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return SeedSummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    centre, lo, hi = _t_interval(np.log(v), confidence)
    return SeedSummary(int(v.size), math.exp(centre), math.exp(lo), math.exp(hi), float(v.min()), float(v.max()))


def linear_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean of per-seed values with a t-interval over seeds."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return SeedSummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    centre, lo, hi = _t_interval(v, confidence)
    return SeedSummary(int(v.size), centre, lo, hi, float(v.min()), float(v.max()))


def summary_for(key: str) -> Callable[[Sequence[float]], SeedSummary]:
    """The seed summary that suits a stability measure: Fisher z for r, log scale for amplitudes."""
    if key == vocab.STABILITY_CORR_GD:
        return fisher_z_summary
    if key in vocab.STABILITY_LOG_SCALE:
        return log_scale_summary
    return linear_summary
