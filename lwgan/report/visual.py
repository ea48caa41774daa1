"""The report's figure sections: training curves, stability (measures of ``lwgan.report.stability``,
the D gap over time) and the per-pair strips of validation outputs (or the trainers' sample grids for
runs without ``samples/final_outputs.npz``). Each function returns document blocks and writes its PNGs
under the output folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from lwgan import vocab
from lwgan.report import figures
from lwgan.report import stability as st
from lwgan.report.document import Block, Bullets, Cell, Heading, Image, PageBreak, Paragraph, Table

# One curve figure per lwgan/vocab.py group: (file name, title, group); the keys are read at call time.
CURVE_GROUPS = (
    ("curves_G", "Generator loss terms", vocab.Group.GENERATOR),
    ("curves_D", "Discriminator loss terms", vocab.Group.DISCRIMINATOR),
    ("d_outputs", "Mean discriminator outputs D(real) and D(fake)", vocab.Group.D_OUTPUTS),
    ("learning_rates", "Learning rates, as logged (never smoothed)", vocab.Group.LR),
    ("grad_norms", "Gradient norms", vocab.Group.GRAD_NORM),
    ("eval", "Evaluation metrics on the fixed validation pairs, as logged (never smoothed)", vocab.Group.EVAL),
)
SAMPLE_COLUMNS = "columns: source | reference | warped source | output | target; rows: the fixed validation pairs"
SAMPLES_PER_PANEL = 3
STRIPS_SHOWN = 4  # pairs drawn in the document; every pair's strip is written under figures/
Fetch = Callable[[str, str, Path], "Path | None"]  # (run_id, artifact path, destination) -> local file or None


def present_variants(variants: Sequence[str], frame: pd.DataFrame) -> list[str]:
    have = set(frame["variant"]) if "variant" in frame else set()
    return [v for v in variants if v in have]


# ----------------------------------------------------------------------------------
# Curves
# ----------------------------------------------------------------------------------


def curve_blocks(metrics: pd.DataFrame, finals: pd.DataFrame, variants: Sequence[str], out_dir: Path,
                 palette: Mapping[str, tuple]) -> list[Block]:
    blocks: list[Block] = [PageBreak(), Heading("Training curves")]
    if metrics.empty:
        return blocks + [Paragraph("No completed run logged metrics: no curves.")]
    blocks.append(Paragraph(
        "Per variant (one colour and one line style each): the mean over seeds of the per-seed curves and their "
        f"min\u2013max band (shaded). Dense loss curves are EMA-smoothed (span = 5% of the logged points, at least 3; "
        "the raw mean over seeds is drawn faint behind); learning rates and sparse curves (\u2264 "
        f"{figures.SPARSE_POINTS} points, such as the eval metrics) are drawn as logged. Terms that spike (gradient "
        "penalty, gradient norms) and learning rates are on a log axis. The grey span is the final window (median "
        "start over runs). Completed runs only."
    ))
    present = set(metrics["key"])
    shown = present_variants(variants, metrics)
    window_start = finals.groupby("key")["first_step"].median().to_dict() if not finals.empty else {}
    for name, title, group in CURVE_GROUPS:
        keys = [k for k in vocab.names(group) if k in present]
        if not keys:
            continue
        fig = figures.curves_figure(metrics, keys, shown, palette, ncols=2 if len(keys) > 1 else 1,
                                    window_from=window_start)
        rel = f"figures/{name}.png"
        figures.save_figure(fig, out_dir / rel)
        blocks.append(Image(rel, caption=f"{title}."))
    return blocks


# ----------------------------------------------------------------------------------
# Stability
# ----------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "\u2013"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def summary_cell(values: np.ndarray, key: str) -> Cell:
    """``centre [low, high]`` from 3 seeds on (Fisher z / log / t as ``stability.summary_for``), else
    ``centre (range min–max)``, or the single value."""
    summ = st.summary_for(key)(values)
    if summ.n == 0:
        return Cell("\u2013")
    if math.isfinite(summ.low):
        return Cell(f"{_fmt(summ.centre)} [{_fmt(summ.low)}, {_fmt(summ.high)}]")
    if summ.n > 1:
        return Cell(f"{_fmt(summ.centre)} (range {_fmt(summ.minimum)}\u2013{_fmt(summ.maximum)})")
    return Cell(_fmt(summ.centre))


def stability_table(per_run: pd.DataFrame, variants: Sequence[str]) -> Table:
    keys = [k for k in vocab.STABILITY_METRICS if k in per_run and per_run[k].notna().any()]
    columns = ["variant", "n"] + [f"{vocab.metric(k).short} [{vocab.metric(k).unit}]" for k in keys]
    rows = []
    for variant in variants:
        sub = per_run[per_run["variant"] == variant]
        if sub.empty:
            continue
        rows.append([Cell(variant), Cell(str(len(sub)))] + [summary_cell(sub[k].to_numpy(float), k) for k in keys])
    return Table(columns, rows, caption=(
        "Stability per variant: centre over seeds with its 95% interval in brackets from 3 seeds on (swing and noise: "
        "geometric mean, t-interval on log values; corr(G, D): tanh of the mean Fisher z, t-interval on z; others: "
        "mean, t-interval), with fewer seeds the seeds' range instead."))


def stability_blocks(metrics: pd.DataFrame, per_run: pd.DataFrame, finals: pd.DataFrame, variants: Sequence[str],
                     settings: st.StabilitySettings, out_dir: Path, palette: Mapping[str, tuple]) -> list[Block]:
    blocks: list[Block] = [Heading("Stability")]
    measured = per_run.dropna(subset=list(vocab.STABILITY_METRICS), how="all") if not per_run.empty else per_run
    if measured.empty:
        return blocks + [Paragraph(
            f"No completed run has {settings.min_points} or more logged points of {vocab.G_TOTAL}, {vocab.D_TOTAL} or "
            f"{vocab.D_REAL_MEAN}/{vocab.D_FAKE_MEAN}: no stability measures.")]
    period = float(per_run["period_steps"].median()) if per_run["period_steps"].notna().any() else math.nan
    blocks.append(Paragraph(
        "What the paper calls oscillation is a slow swing of the losses and one adversary overpowering the other, "
        "not the minibatch noise of each step; the measures (lwgan/report/stability.py, per completed run) keep them "
        f"apart. **Swing**: the loss low-passed with a zero-phase Butterworth filter that keeps swings slower than "
        f"{100 * settings.lowpass_frac:g}% of the run ({_fmt(period)} steps here), its straight-line drift over the final "
        f"window ({100 * settings.window:g}% of the logged points) removed, amplitude = \u221a2 \u00d7 RMS, in % of the "
        "loss level. **Noise**: the sd of the loss about its low-passed curve over the final window, same scale. "
        "**corr(G, D)**: the correlation of the G and D swings (negative: a see-saw). **D gap**: D(real) \u2212 D(fake) "
        "over the final window (LSGAN targets +1 / \u22121: 2 is a perfect discriminator). **D dominant**: the fraction "
        f"of all logged steps with a D gap above {settings.dominance_gap:g}. These names can be used as claim metrics."
    ))
    shown = present_variants(variants, measured)
    blocks.append(stability_table(measured, shown))
    fig = figures.stability_figure(measured, shown, palette)
    figures.save_figure(fig, out_dir / "figures/stability.png")
    blocks.append(Image("figures/stability.png", caption=(
        "Stability measures per variant: dots are seeds; swing and noise on a log axis (they are amplitudes); bars "
        "are 95% intervals over seeds where there are 3 or more, otherwise the seeds' range.")))
    if metrics["key"].isin((vocab.D_REAL_MEAN, vocab.D_FAKE_MEAN)).any():
        ref = finals[finals["key"] == vocab.G_TOTAL] if not finals.empty else finals
        start = float(ref["first_step"].median()) if not ref.empty else None
        fig = figures.d_gap_figure(metrics, present_variants(variants, metrics), settings.dominance_gap, palette, start)
        figures.save_figure(fig, out_dir / "figures/d_gap.png")
        blocks.append(Image("figures/d_gap.png", caption=(
            "How long D dominates: D(real) \u2212 D(fake) per step (mean over seeds of the EMA-smoothed gap, the "
            "seeds' min\u2013max band, the raw mean faint); above the dashed line D dominates.")))
    return blocks


# ----------------------------------------------------------------------------------
# Samples: per-pair strips, or sample grids
# ----------------------------------------------------------------------------------


def pick_sample_runs(runs: pd.DataFrame, variants: Sequence[str]) -> dict[str, pd.Series]:
    """One run per variant, the same seed everywhere when possible: the smallest seed completed in
    every variant, else each variant's lowest completed seed, else its lowest seed of any status."""
    done = runs[runs["status"] == vocab.TrialStatus.COMPLETED]
    seed_sets = [set(done.loc[done["variant"] == v, "seed"].dropna()) for v in variants]
    common = set.intersection(*seed_sets) if seed_sets and all(seed_sets) else set()
    chosen = {}
    for v in variants:
        pool = done[done["variant"] == v]
        if common:
            pool = pool[pool["seed"] == min(common)]
        if pool.empty:
            pool = runs[runs["variant"] == v]
        if not pool.empty:
            chosen[v] = pool.sort_values("seed", kind="stable").iloc[0]
    return chosen


def _label(variant: str, run: pd.Series) -> str:
    status = "" if run["status"] == vocab.TrialStatus.COMPLETED else f", {run['status']}"
    return f"{variant} (seed {run['seed']}{status})"


def load_outputs(path: Path) -> dict[str, np.ndarray]:
    """A trial's final_outputs.npz as arrays (see lwgan.train.samples.save_outputs); OSError/KeyError/ValueError if broken."""
    with np.load(path) as data:
        out = {k: data[k] for k in data.files}
    need = ("source", "target", "warped", "reference", "transfer", "reconstruction", "ssim", "psnr", "ssim_rec")
    missing = [k for k in need if k not in out]
    if missing:
        raise KeyError(f"{path.name} lacks {', '.join(missing)}")
    return out


def strip_blocks(runs: pd.DataFrame, variants: Sequence[str], out_dir: Path, fetch: Fetch) -> tuple[list[Block], list[str]]:
    """Per validation pair, one strip with every variant's output; ([] , problems) when no run has outputs."""
    from lwgan.report.collect import OUTPUTS_ARTIFACT

    got: list[tuple[str, str, dict[str, np.ndarray]]] = []
    problems: list[str] = []
    picked = pick_sample_runs(runs, variants)
    seeds = {str(run["seed"]) for run in picked.values()}
    one_seed = len(seeds) == 1 and all(run["status"] == vocab.TrialStatus.COMPLETED for run in picked.values())
    for variant, run in picked.items():
        rel = f"samples/{_safe(variant)}_seed{run['seed']}_outputs.npz"
        path = fetch(run["run_id"], OUTPUTS_ARTIFACT, out_dir / rel)
        if path is None:
            problems.append(f"{variant}: run {run['run_id'][:8]} has no {OUTPUTS_ARTIFACT}")
            continue
        try:
            got.append((variant, variant if one_seed else _label(variant, run), load_outputs(path)))
        except (OSError, KeyError, ValueError) as err:
            problems.append(f"{variant}: run {run['run_id'][:8]} has an unreadable {OUTPUTS_ARTIFACT} ({err})")
    if not got:
        return [], problems
    ref = got[0][2]
    same = [g for g in got if g[2]["target"].shape == ref["target"].shape and np.array_equal(g[2]["target"], ref["target"])
            and np.array_equal(g[2]["source"], ref["source"])]
    for g in got:
        if g not in same:
            problems.append(f"{g[0]}: its validation pairs differ from {got[0][0]}'s (another dataset or size): not in the strips")
    n_pairs = ref["target"].shape[0]
    blocks: list[Block] = [Paragraph(
        f"One strip per fixed validation pair ({n_pairs} pairs; the first {min(n_pairs, STRIPS_SHOWN)} shown here, all under "
        "figures/strip_pair*.png), one run per variant on the same seed where possible, at the end of training. The "
        "inputs, the same for every variant, are shown once on the left; then per variant its transfer output with its "
        "SSIM and PSNR against the target, the error map |output \u2212 target| (one colour scale per strip) and its "
        "reconstruction of the source with SSIM against the source. Every image is at the same scale (nearest "
        "neighbour).")]
    mean_ssim = {label: float(np.mean(o["ssim"])) for _, label, o in same}
    blocks.append(Paragraph("Mean SSIM over these pairs (transfer vs target): "
                            + ", ".join(f"{label} {v:.3f}" for label, v in mean_ssim.items()) + "."))
    for i in range(n_pairs):
        outputs = [figures.PairOutput(label, o["transfer"][i], o["reconstruction"][i], float(o["ssim"][i]),
                                      float(o["psnr"][i]), float(o["ssim_rec"][i])) for _, label, o in same]
        inputs = {k: ref[k][i] for k in ("source", "target", "warped", "reference")}
        title = f"Validation pair {i + 1} of {n_pairs}" + (f", seed {next(iter(seeds))} of every variant" if one_seed else "")
        fig = figures.pair_strip_figure(title, inputs, outputs)
        rel = f"figures/strip_pair{i + 1}.png"
        figures.save_figure(fig, out_dir / rel)
        if i < STRIPS_SHOWN:
            blocks.append(Image(rel, caption=f"Validation pair {i + 1}: inputs once, then each variant's transfer, error "
                                             "map and reconstruction."))
    if n_pairs > STRIPS_SHOWN:
        blocks.append(Paragraph("Other pairs: " + ", ".join(
            f"[pair {i + 1}](figures/strip_pair{i + 1}.png)" for i in range(STRIPS_SHOWN, n_pairs)) + "."))
    return blocks, problems


def grid_blocks(runs: pd.DataFrame, variants: Sequence[str], out_dir: Path, fetch: Fetch) -> tuple[list[Block], list[str]]:
    """The trainers' last sample grids (samples/final.png) side by side, for runs without final outputs."""
    from PIL import Image as PILImage

    from lwgan.report.collect import SAMPLE_ARTIFACT

    got: list[tuple[str, str, np.ndarray]] = []
    missing = []
    for variant, run in pick_sample_runs(runs, variants).items():
        rel = f"samples/{_safe(variant)}_seed{run['seed']}.png"
        path = fetch(run["run_id"], SAMPLE_ARTIFACT, out_dir / rel)
        if path is None:
            missing.append(f"{variant}: run {run['run_id'][:8]} has no {SAMPLE_ARTIFACT}")
            continue
        try:
            with PILImage.open(path) as img:
                got.append((_label(variant, run), rel, np.asarray(img.convert("RGB"))))
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError
            missing.append(f"{variant}: run {run['run_id'][:8]} has a {SAMPLE_ARTIFACT} that is not a readable image "
                           f"({type(err).__name__})")
    if not got:
        return [], missing
    blocks: list[Block] = [Paragraph(
        f"The last sample grid ({SAMPLE_ARTIFACT}) of one run per variant, the same seed where possible, on the same "
        f"fixed validation pairs; {SAMPLE_COLUMNS}.")]
    for i in range(0, len(got), SAMPLES_PER_PANEL):
        chunk = got[i:i + SAMPLES_PER_PANEL]
        fig = figures.samples_figure([(label, grid) for label, _, grid in chunk])
        rel = f"figures/samples_{i // SAMPLES_PER_PANEL + 1}.png"
        figures.save_figure(fig, out_dir / rel)
        blocks.append(Image(rel, caption="Samples: " + ", ".join(label for label, _, _ in chunk) + "."))
    blocks.append(Paragraph("Full-resolution grids: " + ", ".join(f"[{label}]({rel})" for label, rel, _ in got) + "."))
    return blocks, missing


def sample_blocks(runs: pd.DataFrame, variants: Sequence[str], out_dir: Path, fetch: Fetch) -> list[Block]:
    """Per-pair strips when the runs saved their final outputs, else the sample grids."""
    blocks: list[Block] = [PageBreak(), Heading("Samples")]
    strips, problems = strip_blocks(runs, variants, out_dir, fetch)
    if strips:
        return blocks + strips + ([Bullets(problems)] if problems else [])
    grids, missing = grid_blocks(runs, variants, out_dir, fetch)
    if grids:
        return blocks + grids + ([Bullets(missing)] if missing else [])
    return blocks + [Paragraph("No run has final outputs or a sample grid.")] + ([Bullets(problems + missing)] if problems or missing else [])


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "variant"
