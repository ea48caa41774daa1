"""Stability measures against hand computations on synthetic loss histories: a planted oscillation is
found at its amplitude, flat / converging / noisy signals are not called oscillating, the D gap and
dominance match counts done by hand, and the seed summaries match scipy on z and log scales."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lwgan import vocab
from lwgan.report import stability as st

STEPS = np.arange(1, 301)  # 300 steps, as the small profile
LEVEL = 10.0


def sine(amplitude: float, period: float, phase: float = 0.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * STEPS / period + phase)


def detrended_amplitude_pct(values: np.ndarray, window: int = 60) -> float:
    """By hand: sqrt(2) x RMS of the window minus its least-squares line, in % of the window's mean."""
    x = values[-window:]
    t = np.arange(window)
    design = np.stack([t, np.ones(window)], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return 100 * math.sqrt(2) * math.sqrt(np.mean((x - design @ coef) ** 2)) / x.mean()


def test_planted_oscillation_is_found_at_its_amplitude():
    # +-2 around 10 with a 30-step period (2 cycles in the 60-step final window, well below the
    # 15-step low-pass period): 20% of the level, less the part the window's straight line absorbs.
    signal = LEVEL + sine(2.0, 30)
    swing = st.loss_swing(STEPS, signal)
    assert 17 < detrended_amplitude_pct(signal) < 20
    assert swing.amplitude_pct == pytest.approx(detrended_amplitude_pct(signal), rel=0.02)
    assert swing.period == pytest.approx(0.05 * 299)
    assert swing.noise_pct < 1.0
    assert len(swing.band) == 60 and swing.band.index[0] == 241


def test_flat_and_converging_losses_do_not_oscillate():
    assert st.loss_swing(STEPS, np.full(STEPS.size, 5.0)).amplitude_pct == pytest.approx(0.0, abs=1e-9)
    ramp = st.loss_swing(STEPS, LEVEL - STEPS / 100)
    decay = st.loss_swing(STEPS, LEVEL + 5 * np.exp(-STEPS / 60))
    assert ramp.amplitude_pct < 0.05 and decay.amplitude_pct < 0.1


def test_step_noise_is_noise_not_swing():
    rng = np.random.default_rng(0)
    noisy = st.loss_swing(STEPS, LEVEL + 0.5 * rng.standard_normal(STEPS.size))
    # sd 0.5 on a level of 10: 5% noise; its low-frequency share is a fraction of that
    assert noisy.noise_pct == pytest.approx(5.0, rel=0.3)
    assert noisy.amplitude_pct < 0.6 * noisy.noise_pct
    alternating = st.loss_swing(STEPS, LEVEL + 0.5 * (-1.0) ** STEPS)
    assert alternating.noise_pct == pytest.approx(5.0, rel=0.05)
    assert alternating.amplitude_pct < 0.3 * alternating.noise_pct


def test_oscillation_under_noise_ranks_above_noise_alone():
    rng = np.random.default_rng(1)
    noise = 0.5 * rng.standard_normal(STEPS.size)
    with_swing = st.loss_swing(STEPS, LEVEL + sine(1.5, 30) + noise)
    without = st.loss_swing(STEPS, LEVEL + noise)
    assert with_swing.amplitude_pct == pytest.approx(detrended_amplitude_pct(LEVEL + sine(1.5, 30)), rel=0.15)
    assert with_swing.amplitude_pct > 5 * without.amplitude_pct
    assert with_swing.noise_pct == pytest.approx(without.noise_pct, rel=0.15)


def test_relative_to_level_and_irregular_logging():
    doubled = st.loss_swing(STEPS, 2 * (LEVEL + sine(2.0, 30)))
    assert doubled.amplitude_pct == pytest.approx(st.loss_swing(STEPS, LEVEL + sine(2.0, 30)).amplitude_pct, rel=1e-9)
    sparse = STEPS[::3]  # logged every 3 steps: the period in steps is unchanged
    sparse_swing = st.loss_swing(sparse, LEVEL + sine(2.0, 30)[::3])
    assert sparse_swing.period == pytest.approx(0.05 * 297)
    assert sparse_swing.amplitude_pct == pytest.approx(detrended_amplitude_pct(LEVEL + sine(2.0, 30)), rel=0.05)


def test_short_histories_give_nan():
    assert math.isnan(st.loss_swing(np.arange(6), np.ones(6)).amplitude_pct)


def _histories(g, d, real, fake):
    idx = pd.Index(STEPS, name="step")
    return {vocab.G_TOTAL: pd.Series(g, idx), vocab.D_TOTAL: pd.Series(d, idx),
            vocab.D_REAL_MEAN: pd.Series(real, idx), vocab.D_FAKE_MEAN: pd.Series(fake, idx)}


def test_see_saw_correlation_and_d_gap_by_hand():
    real = np.where(STEPS <= 75, 0.9, 0.3)  # D separates strongly for the first quarter, then 0.3 vs -0.3
    fake = -real
    out = st.run_stability(_histories(LEVEL + sine(2.0, 30), 1.0 - sine(0.2, 30), real, fake))
    assert out[vocab.STABILITY_CORR_GD] == pytest.approx(-1.0, abs=0.01)
    assert out[vocab.STABILITY_D_GAP] == pytest.approx(0.6)  # final window: 0.3 - (-0.3)
    assert out[vocab.STABILITY_D_DOMINANT] == pytest.approx(75 / 300)  # gap 1.8 > 1 on 75 of 300 steps
    assert out[vocab.STABILITY_SWING_D] == pytest.approx(detrended_amplitude_pct(1.0 + sine(0.2, 30)), rel=0.02)
    in_phase = st.run_stability(_histories(LEVEL + sine(2.0, 30), 1.0 + sine(0.2, 30, 0.3), real, fake))
    assert in_phase[vocab.STABILITY_CORR_GD] > 0.9


def _long_frame(runs: dict[tuple[str, int], dict[str, np.ndarray]]) -> pd.DataFrame:
    parts = []
    for (variant, seed), series in runs.items():
        for key, values in series.items():
            parts.append(pd.DataFrame({"run_id": f"{variant}-{seed}", "variant": variant, "seed": seed, "key": key,
                                       "step": STEPS, "value": values}))
    return pd.concat(parts, ignore_index=True)


def test_stability_finals_long_layout_ranks_the_oscillating_variant():
    rng = np.random.default_rng(2)
    runs = {}
    for seed in range(3):
        for variant, amp in (("calm", 0.2), ("wild", 2.0)):
            noise = 0.1 * rng.standard_normal(STEPS.size)
            runs[(variant, seed)] = {
                vocab.G_TOTAL: LEVEL + sine(amp, 30, seed) + noise, vocab.D_TOTAL: 1.0 + noise,
                vocab.D_REAL_MEAN: np.full(STEPS.size, 0.2), vocab.D_FAKE_MEAN: np.full(STEPS.size, -0.2),
            }
    finals = st.stability_finals(_long_frame(runs))
    assert list(finals.columns) == ["run_id", "variant", "seed", "key", "value", "n_points", "first_step", "last_step"]
    assert set(finals["key"]) <= set(vocab.STABILITY_METRICS)
    swing = finals[finals["key"] == vocab.STABILITY_SWING_G].groupby("variant")["value"].mean()
    assert swing["wild"] == pytest.approx(18.5, rel=0.1) and swing["calm"] == pytest.approx(1.85, rel=0.3)
    row = finals[(finals["key"] == vocab.STABILITY_SWING_G)].iloc[0]
    assert (row["n_points"], row["first_step"], row["last_step"]) == (60, 241, 300)
    dom = finals[finals["key"] == vocab.STABILITY_D_DOMINANT].iloc[0]
    assert (dom["value"], dom["n_points"], dom["first_step"]) == (0.0, 300, 1)


def test_fisher_z_summary_matches_a_hand_computation():
    rs = [0.2, 0.5, 0.7]
    z = np.arctanh(rs)
    half = sps.t.ppf(0.975, 2) * z.std(ddof=1) / math.sqrt(3)
    got = st.fisher_z_summary(rs)
    assert got.centre == pytest.approx(math.tanh(z.mean()))
    assert (got.low, got.high) == pytest.approx((math.tanh(z.mean() - half), math.tanh(z.mean() + half)))
    assert -1 < got.low < got.high < 1
    two = st.fisher_z_summary([0.2, 0.5])  # too few seeds: range only
    assert math.isnan(two.low) and (two.minimum, two.maximum) == (0.2, 0.5)


def test_log_scale_summary_is_a_geometric_mean_with_a_log_t_interval():
    values = [1.0, 10.0, 100.0]
    got = st.log_scale_summary(values)
    logs = np.log(values)
    half = sps.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    assert got.centre == pytest.approx(10.0)
    assert (got.low, got.high) == pytest.approx((10.0 * math.exp(-half), 10.0 * math.exp(half)))
    assert got.low > 0  # an interval of sds never goes below zero
    assert st.summary_for(vocab.STABILITY_CORR_GD) is st.fisher_z_summary
    assert st.summary_for(vocab.STABILITY_SWING_G) is st.log_scale_summary
    assert st.summary_for(vocab.STABILITY_D_GAP) is st.linear_summary


def test_settings_are_validated():
    with pytest.raises(ValueError, match="min_period"):
        st.StabilitySettings(min_period=2)
    with pytest.raises(ValueError, match="window"):
        st.StabilitySettings(window=0)


def test_a_run_without_a_seed_tag_is_still_measured():
    frame = _long_frame({("solo", 0): {vocab.G_TOTAL: LEVEL + sine(2.0, 30), vocab.D_TOTAL: 1.0 + sine(0.1, 30)}})
    frame["seed"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    out = st.stability_frame(frame)
    assert len(out) == 1 and out[vocab.STABILITY_SWING_G].iloc[0] > 15
    assert math.isnan(out[vocab.STABILITY_D_GAP].iloc[0])  # no D outputs logged: no gap, not a made-up 0
