"""Report statistics on planted effects and known numbers: final window, CIs vs scipy, Welch, Holm,
Hedges' g, EMA (the stability measures: test_report_stability.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lwgan.report import stats

KEYS = ("loss/G_face", "loss/G_tsf", "loss/G_rec")


def _finals(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """groups: variant -> (n_seeds, n_keys) array of final values."""
    rows = []
    for variant, values in groups.items():
        for seed, per_key in enumerate(values):
            for key, v in zip(KEYS, per_key):
                rows.append(dict(run_id=f"{variant}-{seed}", variant=variant, seed=seed, key=key, value=float(v)))
    return pd.DataFrame(rows)


def test_planted_20pct_effect_is_significant_and_noise_is_not():
    rng = np.random.default_rng(7)
    level = np.array([1.5, 2.0, 0.3])
    base = level * (1 + 0.03 * rng.standard_normal((5, 3)))
    better = 0.8 * level * (1 + 0.03 * rng.standard_normal((5, 3)))
    noise = level * (1 + 0.03 * rng.standard_normal((5, 3)))
    comp = stats.compare_to_baseline(_finals({"baseline": base, "better": better, "noise": noise}), KEYS,
                                     ["baseline", "better", "noise"])
    good = comp[comp["variant"] == "better"]
    assert good["marked"].all() and (good["test"] == "paired t").all()
    assert (good["p_holm"] < 0.01).all()
    assert np.allclose(good["delta_pct"], -20.0, atol=3.0)
    assert ((good["pct_lo"] < good["delta_pct"]) & (good["delta_pct"] < good["pct_hi"])).all()
    assert (good["hedges_g"] < -3).all()
    null = comp[comp["variant"] == "noise"]
    assert not null["marked"].any()
    assert (null["p_holm"] > 0.05).all()
    # The baseline row carries absolute means only.
    b = comp[comp["variant"] == "baseline"]
    assert b["delta_pct"].isna().all() and np.allclose(b["var_mean"], base.mean(axis=0))


def test_two_seeds_give_the_per_seed_range_and_no_test():
    finals = _finals({"baseline": np.array([[2.0, 1, 1], [4.0, 1, 1]]), "v": np.array([[1.5, 1, 1], [2.5, 1, 1]])})
    row = stats.compare_to_baseline(finals, KEYS, ["baseline", "v"]).set_index(["variant", "key"]).loc[("v", "loss/G_face")]
    assert row["delta_pct"] == pytest.approx(-100 / 3)
    assert row["test"] == "none" and math.isnan(row["p"]) and math.isnan(row["pct_lo"]) and not row["marked"]
    # per-seed differences -0.5 and -1.5, in % of the baseline mean 3
    assert (row["pct_range_lo"], row["pct_range_hi"]) == (pytest.approx(-50.0), pytest.approx(-100 / 6))
    assert math.isnan(row["var_ci"]) and (row["var_min"], row["var_max"]) == (1.5, 2.5)


def test_eval_metrics_compare_absolutely_and_psnr_in_db():
    rows = []
    for seed, (b, v) in enumerate([(0.50, 0.55), (0.40, 0.46), (0.45, 0.49)]):
        rows += [dict(run_id=f"b{seed}", variant="baseline", seed=seed, key="eval/ssim", value=b),
                 dict(run_id=f"v{seed}", variant="v", seed=seed, key="eval/ssim", value=v),
                 dict(run_id=f"b{seed}", variant="baseline", seed=seed, key="eval/psnr", value=20 + 10 * b),
                 dict(run_id=f"v{seed}", variant="v", seed=seed, key="eval/psnr", value=20 + 10 * v)]
    comp = stats.compare_to_baseline(pd.DataFrame(rows), ["eval/ssim", "eval/psnr"], ["baseline", "v"]).set_index(["variant", "key"])
    ssim, psnr = comp.loc[("v", "eval/ssim")], comp.loc[("v", "eval/psnr")]
    assert ssim["scale"] == "abs" and psnr["scale"] == "dB"
    ref = sps.ttest_rel([0.55, 0.46, 0.49], [0.50, 0.40, 0.45])
    assert ssim["diff"] == pytest.approx(0.05) and ssim["p"] == pytest.approx(ref.pvalue)
    assert (ssim["diff_lo"], ssim["diff_hi"]) == tuple(pytest.approx(x) for x in ref.confidence_interval())
    # one family of two tests: Holm doubles the smaller p
    assert min(comp["p_holm"].dropna()) == pytest.approx(2 * min(comp["p"].dropna()))


def test_one_seed_gives_a_point_delta_without_ci():
    finals = _finals({"baseline": np.array([[1.0, 1.0, 1.0]]), "E1": np.array([[0.872, 0.9425, 0.8346]])})
    comp = stats.compare_to_baseline(finals, KEYS, ["baseline", "E1"]).set_index(["variant", "key"])
    assert comp.loc[("E1", "loss/G_face"), "delta_pct"] == pytest.approx(-12.80)
    assert comp.loc[("E1", "loss/G_tsf"), "delta_pct"] == pytest.approx(-5.75)
    assert comp.loc[("E1", "loss/G_rec"), "delta_pct"] == pytest.approx(-16.54)
    assert comp["pct_lo"].isna().all() and not comp["marked"].any()


def test_mean_ci_matches_scipy_t_interval():
    data = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    mean, half = stats.mean_ci(data)
    lo, hi = sps.t.interval(0.95, df=4, loc=data.mean(), scale=sps.sem(data))
    assert mean == pytest.approx(4.0)
    assert (mean - half, mean + half) == pytest.approx((lo, hi))
    assert math.isnan(stats.mean_ci([3.0])[1]) and stats.mean_ci([3.0])[0] == 3.0


def test_welch_ci_and_p_match_scipy():
    a, b = np.array([0.8, 0.9, 1.1, 0.7]), np.array([1.0, 1.3, 1.2, 1.6, 1.1])
    diff, half = stats.welch_diff_ci(a, b)
    res = sps.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert (diff - half, diff + half) == pytest.approx((ci.low, ci.high))
    assert stats.welch_p(a, b) == pytest.approx(res.pvalue)


def test_holm_on_known_pvalues():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = stats.holm([0.02, math.nan, 0.5])
    assert with_nan[0] == pytest.approx(0.04) and math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.5)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1; monotone
    assert stats.holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])
    assert np.isnan(stats.holm([math.nan])).all()


def test_holm_is_applied_within_each_family():
    rng = np.random.default_rng(3)
    base = 1 + 0.05 * rng.standard_normal((4, 3))
    groups = {"baseline": base, "a": base * 0.9 + 0.01 * rng.standard_normal((4, 3)), "b": base * 1.0 + 0.02 * rng.standard_normal((4, 3))}
    families = {KEYS[0]: "t1", KEYS[1]: "t1", KEYS[2]: "t2"}
    comp = stats.compare_to_baseline(_finals(groups), KEYS, list(groups), families=families)
    for fam in ("t1", "t2"):
        sub = comp[(comp["family"] == fam) & (comp["variant"] != "baseline")]
        assert sub["p_holm"].to_numpy() == pytest.approx(stats.holm(sub["p"]))
    assert (comp["family"] == "t1").sum() == 6


def test_hedges_g_on_known_data():
    # diff = -1, pooled sd = 1, J = 1 - 3 / (4 * 6 - 9) = 0.8
    assert stats.hedges_g([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]) == pytest.approx(-0.8)
    assert math.isnan(stats.hedges_g([1.0], [2.0, 3.0]))


def test_final_window_is_the_last_20pct_of_points():
    metrics = pd.DataFrame({
        "run_id": "r", "variant": "v", "seed": 0, "key": "loss/G_rec",
        "step": np.arange(1, 11), "value": np.arange(1.0, 11.0),
    })
    sparse = pd.DataFrame({"run_id": "r", "variant": "v", "seed": 0, "key": "eval/ssim", "step": [50, 100], "value": [0.2, 0.6]})
    out = stats.final_values(pd.concat([metrics.iloc[::-1], sparse]), 0.2).set_index("key")
    assert out.loc["loss/G_rec", "value"] == pytest.approx(9.5)
    assert (out.loc["loss/G_rec", "first_step"], out.loc["loss/G_rec", "n_points"]) == (9, 2)
    assert out.loc["eval/ssim", "value"] == pytest.approx(0.6)  # at least one point
    assert [stats.window_size(n, 0.2) for n in (1, 5, 10, 11, 50)] == [1, 1, 2, 3, 10]


def test_final_values_are_in_seed_order_whatever_the_run_ids():
    """Run ids are random: sums over seeds must not follow them. Here the mean over seeds of 0.1, 0.2,
    0.3 differs in the last bit between seed order and the run-id order (0.3, 0.2, 0.1)."""
    rows = [("r-c", 0, 0.1), ("r-b", 1, 0.2), ("r-a", 2, 0.3)]  # run ids sort against the seeds
    metrics = pd.DataFrame([{"run_id": rid, "variant": "v", "seed": seed, "key": "loss/G_rec", "step": 1, "value": value}
                            for rid, seed, value in rows])
    mean = lambda frame: frame.groupby("variant")["value"].mean()["v"]  # noqa: E731 - as the report's tables do
    for shuffled in (metrics, metrics.iloc[::-1], metrics.sort_values("run_id")):
        finals = stats.final_values(shuffled, 0.2)
        assert finals["seed"].tolist() == [0, 1, 2]
        assert mean(finals) == mean(metrics)
    assert mean(metrics) != mean(metrics.iloc[::-1])  # the two orders' means differ: the test can tell them apart


def test_metrics_frame_keeps_the_runs_order():
    from types import SimpleNamespace

    from lwgan.report.collect import metrics_frame

    runs = pd.DataFrame({"run_id": ["r-z", "r-a"], "variant": ["v", "v"], "seed": [0, 1]})  # seed order, ids reversed
    run_objects = {rid: SimpleNamespace(data=SimpleNamespace(metrics={"loss/G_rec": 1.0})) for rid in runs["run_id"]}
    client = SimpleNamespace(get_metric_history=lambda rid, key: [SimpleNamespace(step=1, value=1.0)])
    assert metrics_frame(client, runs, run_objects)["run_id"].tolist() == ["r-z", "r-a"]


def test_ema_matches_the_recurrence():
    x = np.array([1.0, 3.0, 2.0, 5.0])
    alpha = 2 / (3 + 1)
    expect = [1.0]
    for v in x[1:]:
        expect.append(alpha * v + (1 - alpha) * expect[-1])
    assert stats.ema(x, 3) == pytest.approx(expect)
    assert stats.ema_span(1000) == 50 and stats.ema_span(10) == 3


def test_identical_seeds_give_zero_spread_not_rounding_noise():
    base = np.full(3, 0.1) * 1.0000000000000002 ** np.arange(3)  # differs in the last bit only
    var = np.full(3, 0.0597)
    mean, half = stats.mean_ci(base)
    assert half == 0.0
    assert math.isnan(stats.welch_p(var, base)) and math.isnan(stats.hedges_g(var, base))
    diff, half = stats.welch_diff_ci(var, base)
    assert half == 0.0 and diff == pytest.approx(-0.0403)
