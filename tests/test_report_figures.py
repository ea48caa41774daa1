"""The report's figures and figure sections on a synthetic study (5 variants x 3 seeds x 300 steps with
the real LR schedules, a GP spike, a planted oscillation, saved val outputs): axes, scales, labels,
line styles, what is smoothed and what is not, the per-pair strips and the LR schedule table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lwgan import vocab
from lwgan.report import figures, schedule, visual
from lwgan.report.tables import fmt_lr
from lwgan.report import stability as st
from lwgan.train.schedule import lr_at

STEPS = 300
EPOCH_LEN = 10
SEEDS = (0, 1, 2)
# variant -> schedule params and the amplitude of a planted G swing (E2 oscillates, E3 does not)
VARIANTS = {
    "baseline": dict(lr_G=2e-4, lr_D=2e-4, lr_final=2e-6, epochs_no_decay=5, epochs_decay=25, gp_weight=0, swing=0.5),
    "E1": dict(lr_G=1e-4, lr_D=3e-4, lr_final=2e-6, epochs_no_decay=5, epochs_decay=25, gp_weight=2, swing=0.5),
    "E2": dict(lr_G=4e-4, lr_D=1e-4, lr_final=1e-5, epochs_no_decay=5, epochs_decay=15, gp_weight=0, swing=3.0),
    "E3": dict(lr_G=4e-4, lr_D=1e-4, lr_final=1e-5, epochs_no_decay=5, epochs_decay=15, gp_weight=0, swing=0.3),
    "E4": dict(lr_G=4e-4, lr_D=1e-4, lr_final=1e-5, epochs_no_decay=5, epochs_decay=15, gp_weight=0, swing=1.5),
}
EVAL_EVERY = 50
PAIRS, SIZE = 3, 32


def synthetic_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, long metrics) as lwgan.report.collect builds them."""
    rng = np.random.default_rng(0)
    runs, parts = [], []
    t = np.arange(1, STEPS + 1)
    for v, p in VARIANTS.items():
        for seed in SEEDS:
            run_id = f"{v}-{seed}"
            runs.append({"run_id": run_id, "trial_id": run_id, "variant": v, "seed": seed, "status": "completed",
                         **{f"param.{k}": p[k] for k in schedule.SCHEDULE_KEYS if k in p}, "param.train_epochs": 30,
                         "param.gp_weight": p["gp_weight"]})
            epoch = (t - 1) // EPOCH_LEN
            series = {
                vocab.G_TOTAL: 10 + 5 * np.exp(-t / 40) + p["swing"] * np.sin(2 * np.pi * t / 30 + seed) + 0.3 * rng.standard_normal(STEPS),
                vocab.D_TOTAL: 1 + 0.05 * rng.standard_normal(STEPS),
                vocab.D_GP: (p["gp_weight"] * 10 * np.exp(-t / 5) + 1e-3 * p["gp_weight"]),
                vocab.D_REAL_MEAN: np.where(t < 100, 0.7, 0.3) + 0.02 * rng.standard_normal(STEPS),
                vocab.D_FAKE_MEAN: np.where(t < 100, -0.7, -0.3) + 0.02 * rng.standard_normal(STEPS),
                vocab.GRAD_NORM_D: np.exp(rng.normal(0, 1, STEPS)) * np.where(t < 20, 100, 1),
                vocab.LR_G: np.array([lr_at(int(e), p["lr_G"], p["lr_final"], p["epochs_no_decay"], p["epochs_decay"]) for e in epoch]),
                vocab.EPOCH: epoch.astype(float),
            }
            for key, values in series.items():
                parts.append(pd.DataFrame({"run_id": run_id, "variant": v, "seed": seed, "key": key, "step": t, "value": values}))
            eval_steps = np.arange(0, STEPS + 1, EVAL_EVERY)
            parts.append(pd.DataFrame({"run_id": run_id, "variant": v, "seed": seed, "key": vocab.EVAL_SSIM, "step": eval_steps,
                                       "value": 0.3 + 0.05 * seed + eval_steps / 2000}))
    metrics = pd.concat(parts, ignore_index=True)
    metrics["seed"] = metrics["seed"].astype("Int64")
    runs = pd.DataFrame(runs)
    runs["seed"] = runs["seed"].astype("Int64")
    return runs, metrics


@pytest.fixture(scope="module")
def study():
    from lwgan.report.stats import final_values

    runs, metrics = synthetic_study()
    return {"runs": runs, "metrics": metrics, "finals": final_values(metrics, 0.2), "per_run": st.stability_frame(metrics)}


def _axis(fig, title_start: str):
    return next(ax for ax in fig.axes if ax.get_title().startswith(title_start))


def test_curves_units_log_axes_and_line_styles(study):
    keys = [vocab.G_TOTAL, vocab.D_GP, vocab.GRAD_NORM_D, vocab.LR_G]
    fig = figures.curves_figure(study["metrics"], keys, list(VARIANTS), ncols=2)
    g, gp, gn, lr = (_axis(fig, k) for k in keys)
    assert g.get_yscale() == "linear" and g.get_ylabel() == "L_total [\u03bb-weighted, no unit]"
    assert gp.get_yscale() == "log" and "0 throughout (not drawn): baseline, E2, E3, E4" in [t.get_text() for t in gp.texts]
    assert gn.get_yscale() == "log" and gn.get_ylabel().endswith("[L2 norm]")
    assert lr.get_yscale() == "log" and lr.get_ylabel() == "lr_G [Adam step size]"
    styles = {str(line._unscaled_dash_pattern) for line in g.lines if line.get_linewidth() > 1}
    assert len(styles) == len(VARIANTS)  # every variant told apart by its line style (dash pattern) too
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(VARIANTS)


def test_an_all_zero_panel_says_so_and_others_do_not(study):
    m = study["metrics"]
    zero = m[m["key"] == vocab.G_TOTAL].assign(key=vocab.G_STYLE, value=0.0)  # a term whose lambda is 0 in every arm
    fig = figures.curves_figure(pd.concat([m, zero], ignore_index=True), [vocab.G_STYLE, vocab.G_TOTAL], list(VARIANTS), ncols=2)
    style, total = _axis(fig, vocab.G_STYLE), _axis(fig, vocab.G_TOTAL)
    assert style.get_yscale() == "linear"
    assert [t.get_text() for t in style.texts] == ["0 at every logged step of every run"]
    assert len(total.texts) == 0


def test_learning_rates_and_sparse_eval_are_never_smoothed(study):
    m = study["metrics"]
    fig = figures.curves_figure(m, [vocab.LR_G, vocab.EVAL_SSIM], list(VARIANTS), ncols=2)
    lr_ax, ev_ax = _axis(fig, vocab.LR_G), _axis(fig, vocab.EVAL_SSIM)
    e2 = m[(m["variant"] == "E2") & (m["key"] == vocab.LR_G)].groupby("step")["value"].mean()
    lines = [ln for ln in lr_ax.lines if ln.get_linewidth() > 1]
    drawn = lines[list(VARIANTS).index("E2")]
    assert np.allclose(drawn.get_ydata(), e2.to_numpy())  # exactly the logged rates: decay, then held at 1e-5
    assert drawn.get_ydata()[-1] == pytest.approx(1e-5) and drawn.get_drawstyle() == "steps-post"
    ev = m[(m["variant"] == "baseline") & (m["key"] == vocab.EVAL_SSIM)].groupby("step")["value"].mean()
    ev_line = [ln for ln in ev_ax.lines if ln.get_linewidth() > 1][0]
    assert np.allclose(ev_line.get_ydata(), ev.to_numpy()) and ev_line.get_marker() == "o"
    assert [h.get_marker() for h in fig.legends[0].legend_handles][:2] == ["o", "s"]  # markers in the legend too
    assert ev_ax.get_ylabel() == "SSIM [no unit]"
    # a dense loss is smoothed: its main line differs from the raw mean
    fig = figures.curves_figure(m, [vocab.G_TOTAL], ["baseline"], ncols=1)
    raw = m[(m["variant"] == "baseline") & (m["key"] == vocab.G_TOTAL)].groupby("step")["value"].mean().to_numpy()
    main = [ln for ln in fig.axes[0].lines if ln.get_linewidth() > 1][0]
    assert not np.allclose(main.get_ydata(), raw)


def test_wants_log_rules():
    assert figures.wants_log(vocab.D_GP, np.array([0.0, 0.0, 3.0]))
    assert not figures.wants_log(vocab.D_GP, np.zeros(5))  # nothing positive to draw
    assert figures.wants_log("loss/G_adv", np.r_[np.full(99, 1.0), 500.0])  # a spike 500x the median
    assert not figures.wants_log("loss/G_adv", np.linspace(1, 3, 100))


def test_stability_figure_scales_and_intervals(study):
    fig = figures.stability_figure(study["per_run"], list(VARIANTS))
    swing = _axis(fig, "G: low-frequency swing")
    assert swing.get_yscale() == "log" and swing.get_ylabel() == "[% of level]"
    corr = _axis(fig, "corr(G, D)")
    assert corr.get_ylim() == (-1.05, 1.05)
    dom = _axis(fig, "time D dominates")
    assert dom.get_ylabel() == "[fraction of steps]"
    assert [t.get_text() for t in swing.get_xticklabels()] == list(VARIANTS)
    # the planted oscillation ranks E2 highest and E3 lowest on the swing of G
    swing_g = study["per_run"].groupby("variant")[vocab.STABILITY_SWING_G].mean()
    assert swing_g.idxmax() == "E2" and swing_g.idxmin() == "E3"
    # D gap 1.4 for the first 99 of 300 steps: D dominates a third of the run
    assert study["per_run"][vocab.STABILITY_D_DOMINANT].to_numpy() == pytest.approx(99 / 300, abs=0.01)


def test_stability_table_states_intervals_or_ranges(study):
    table = visual.stability_table(study["per_run"], list(VARIANTS))
    assert table.columns[:3] == ["variant", "n", "swing G [% of level]"]
    cell = table.row("E2")[2].text
    assert "[" in cell and "range" not in cell  # 3 seeds: an interval
    two = study["per_run"][study["per_run"]["seed"] < 2]
    assert "range" in visual.stability_table(two, ["E2"]).row("E2")[2].text  # 2 seeds: the range only


def _write_outputs(folder: Path, variant: str, shade: int) -> Path:
    rng = np.random.default_rng(0)  # the same val pairs for every variant, as the trainer's fixed pairs
    src = rng.integers(0, 255, (PAIRS, SIZE, SIZE, 3), dtype=np.uint8)
    tgt = np.roll(src, 3, axis=2)
    out = np.clip(tgt.astype(int) + shade, 0, 255).astype(np.uint8)
    path = folder / f"{variant}.npz"
    np.savez_compressed(path, step=np.int64(300), source=src, target=tgt, warped=src, reference=src, transfer=out,
                        reconstruction=src, ssim=np.linspace(0.1, 0.3, PAIRS).astype(np.float32) + shade / 1000,
                        psnr=np.full(PAIRS, 20.0, np.float32), ssim_rec=np.full(PAIRS, 0.9, np.float32),
                        psnr_rec=np.full(PAIRS, 30.0, np.float32))
    return path


def test_pair_strips_put_every_variant_on_one_scale(study, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shades = {v: 10 * (i + 1) for i, v in enumerate(VARIANTS)}
    files = {f"{v}-0": _write_outputs(store, v, shades[v]) for v in VARIANTS}
    fetched = []

    def fetch(run_id, artifact, dst):
        fetched.append((run_id, artifact))
        if run_id not in files:
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(files[run_id].read_bytes())
        return dst

    out = tmp_path / "report"
    blocks = visual.sample_blocks(study["runs"], list(VARIANTS), out, fetch)
    assert {a for _, a in fetched} == {"samples/final_outputs.npz"} and {r for r, _ in fetched} == set(files)
    images = [b.path for b in blocks if type(b).__name__ == "Image"]
    assert images == [f"figures/strip_pair{i}.png" for i in range(1, PAIRS + 1)]
    assert all((out / p).is_file() for p in images)
    assert not [b for b in blocks if type(b).__name__ == "Bullets"]  # no variant left out
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert "Mean SSIM over these pairs (transfer vs target): baseline 0.210, E1 0.220" in text

    other = tmp_path / "other"  # a variant evaluated on other pairs is named, not silently mixed in
    other.mkdir()
    moved = _write_outputs(other, "E4", 50)
    with np.load(moved) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["target"] = 255 - arrays["target"]
    np.savez_compressed(moved, **arrays)
    files["E4-0"] = moved
    blocks = visual.sample_blocks(study["runs"], list(VARIANTS), tmp_path / "report2", fetch)
    bullets = [b for b in blocks if type(b).__name__ == "Bullets"][0].items
    assert bullets == ["E4: its validation pairs differ from baseline's (another dataset or size): not in the strips"]

    with np.load(files["E2-0"]) as e2, np.load(files["baseline-0"]) as base:
        outputs = [figures.PairOutput(v, d["transfer"][1], d["reconstruction"][1], float(d["ssim"][1]),
                                      float(d["psnr"][1]), float(d["ssim_rec"][1])) for v, d in (("baseline", base), ("E2", e2))]
        inputs = {k: base[k][1] for k in ("source", "target", "warped", "reference")}
        expected_err = figures.error_map(e2["transfer"][1], base["target"][1])
    fig = figures.pair_strip_figure("pair 2", inputs, outputs)
    titles = [ax.get_title() for ax in fig.axes]
    assert "source (input)" in titles and "target" in titles  # the inputs once
    assert titles.count("target") == 1
    assert f"E2\nSSIM {outputs[1].ssim:.3f}" in titles and "SSIM_rec 0.900" in titles
    error_axes = [ax for ax in fig.axes if ax.get_title() == "PSNR 20.0 dB"]
    assert len(error_axes) == 2
    arr = error_axes[1].images[0].get_array()
    assert np.allclose(arr, expected_err)  # the error map is |output - target| / 255 averaged over RGB
    clims = {ax.images[0].get_clim() for ax in error_axes}
    assert len(clims) == 1  # one colour scale for the strip
    shapes = {ax.images[0].get_array().shape[:2] for ax in fig.axes if ax.images}
    assert shapes == {(SIZE, SIZE)}


def test_sample_section_falls_back_to_grids_and_says_what_is_missing(study, tmp_path):
    blocks = visual.sample_blocks(study["runs"], list(VARIANTS), tmp_path, lambda run_id, artifact, dst: None)
    text = " ".join(getattr(b, "text", "") for b in blocks)
    assert "No run has final outputs or a sample grid" in text


def test_schedule_table_places_the_final_window(study):
    table = schedule.schedule_table(study["runs"], study["metrics"], study["finals"], list(VARIANTS))
    base, e2 = table.row("baseline"), table.row("E2")
    col = table.columns.index
    assert base[col("\u03b7_F from")].text == "not reached"
    assert e2[col("\u03b7_F from")].text == "epoch 21" and e2[col("epochs")].text == "30"
    assert e2[col("final window")].text == "steps 241\u2013300, epochs 25\u201330"
    assert e2[col("phase there")].text == "held at \u03b7_F" and e2[col("\u03b7_G there")].text == "1e-5"
    assert e2[col("\u03b7_G \u2192 \u03b7_F")].text == "4e-4 \u2192 1e-5"
    assert base[col("phase there")].text == "decay"
    # baseline: epochs 24..29 (0-based) at 2e-4 - (e - 5) * (2e-4 - 2e-6) / 25
    hi = lr_at(24, 2e-4, 2e-6, 5, 25)
    lo = lr_at(29, 2e-4, 2e-6, 5, 25)
    assert base[col("\u03b7_G there")].text == f"{fmt_lr(hi)}\u2192{fmt_lr(lo)}"
    notes = schedule.schedule_notes(study["runs"], list(VARIANTS), study["metrics"])
    assert len(notes) == 3 and notes[0].startswith("E2 decays over 15 epochs and then holds \u03b7_F = 1e-5 for 10 of its 30")
    # the logged epochs win over train_epochs (a --steps override changes the length, not the param)
    short = study["metrics"][study["metrics"]["step"] <= 100]
    assert schedule.variant_schedule(study["runs"], "E2", short).train_epochs == 10
    assert schedule.variant_schedule(study["runs"], "E2").train_epochs == 30
    assert "would stop it after 20" in notes[0]
