"""Plots of a study: each function takes DataFrames and returns a matplotlib Figure sized for an
A4 page (7 in wide, fonts >= 8 pt at that size). No pyplot state is used.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lwgan import vocab
from lwgan.report.stats import ema, ema_span

FIG_WIDTH_IN = 7.0  # placed at ~1:1 on an A4 page with 15 mm margins (180 mm text width)
PANEL_HEIGHT_IN = 1.8
RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
}


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def variant_palette(variants: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per variant, stable across figures (seaborn's colour-blind palette, husl beyond 10)."""
    import seaborn as sns

    name = "colorblind" if len(variants) <= 10 else "husl"
    colours = sns.color_palette(name, max(len(variants), 1))
    return {v: tuple(colours[i]) for i, v in enumerate(variants)}


LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1.2, 1, 1.2, 1, 1.2)), (0, (1, 1)), (0, (8, 2)), (0, (3, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SPARSE_POINTS = 20  # a curve with at most this many points per run is drawn point by point, never smoothed
SPIKE_RATIO = 20.0  # a positive curve whose maximum exceeds its median this many times gets a log axis
# Always on a log axis: terms that spike by orders of magnitude (a GP at its first steps, gradient norms)
# and learning rates (a decay to eta_F = 1e-5 is invisible on a linear axis).
LOG_GROUPS = (vocab.Group.GRAD_NORM, vocab.Group.LR)
LOG_KEYS = (vocab.D_GP,)
# Step functions and counters: never smoothed.
UNSMOOTHED_GROUPS = (vocab.Group.LR, vocab.Group.PROGRESS)
_NO_UNIT = {
    vocab.Group.GENERATOR: "\u03bb-weighted, no unit",
    vocab.Group.DISCRIMINATOR: "\u03bb-weighted, no unit",
    vocab.Group.D_OUTPUTS: "D output; targets \u00b11",
    vocab.Group.LR: "Adam step size",
    vocab.Group.GRAD_NORM: "L2 norm",
}


def variant_linestyles(variants: Sequence[str]) -> dict[str, object]:
    """One line style per variant (in order), so overlapping variants stay told apart without colour."""
    return {v: LINESTYLES[i % len(LINESTYLES)] for i, v in enumerate(variants)}


def variant_markers(variants: Sequence[str]) -> dict[str, str]:
    return {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(variants)}


def axis_label(key: str) -> str:
    """A y label with the metric's unit from lwgan.vocab (``PSNR [dB]``, ``L_rec [λ-weighted, no unit]``)."""
    m = vocab.METRICS.get(key)
    if m is None:
        return key
    unit = m.unit or _NO_UNIT.get(m.group, "no unit")
    return f"{m.short} [{unit}]"


def is_smoothed(key: str, n_points: int) -> bool:
    """EMA-smooth dense loss-like curves only: never learning rates / counters or sparse (eval) curves."""
    m = vocab.METRICS.get(key)
    if m is not None and m.group in UNSMOOTHED_GROUPS:
        return False
    return n_points > SPARSE_POINTS


def wants_log(key: str, values: np.ndarray) -> bool:
    """Log axis for spiking terms (gradient penalty, gradient norms, learning rates) and for any positive
    curve whose maximum exceeds its median ``SPIKE_RATIO`` times; never without a positive value."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    positive = v[v > 0]
    if positive.size == 0:
        return False
    m = vocab.METRICS.get(key)
    if key in LOG_KEYS or (m is not None and m.group in LOG_GROUPS):
        return True
    if positive.size < v.size:
        return False
    median = float(np.median(positive))
    return median > 0 and float(positive.max()) > SPIKE_RATIO * median


def seed_curves(frame: pd.DataFrame, span: int | None = None, smooth: bool = True) -> pd.DataFrame:
    """For one variant and one key (long: run_id, step, value): per step the raw mean across seeds,
    the mean of the per-seed curves (EMA-smoothed when ``smooth``), their min/max and sd. Index: step."""
    wide = frame.pivot_table(index="step", columns="run_id", values="value", aggfunc="last").sort_index()
    curves = {}
    for col in wide.columns:
        series = wide[col].dropna()
        if smooth:
            s = span if span is not None else ema_span(series.size)
            curves[col] = pd.Series(ema(series.to_numpy(), s), index=series.index)
        else:
            curves[col] = series
    per_seed = pd.DataFrame(curves).reindex(wide.index)
    return pd.DataFrame({
        "raw": wide.mean(axis=1),
        "ema": per_seed.mean(axis=1),
        "ema_min": per_seed.min(axis=1),
        "ema_max": per_seed.max(axis=1),
        "ema_sd": per_seed.std(axis=1, ddof=1),
        "n": per_seed.notna().sum(axis=1),
    })


def _legend(fig: Figure, variants: Sequence[str], palette: Mapping[str, tuple], extra: Sequence[tuple] = (),
            with_markers: bool = False) -> None:
    styles = variant_linestyles(variants)
    markers = variant_markers(variants)
    handles = [Line2D([0], [0], color=palette[v], linestyle=styles[v], linewidth=1.5,
                      marker=markers[v] if with_markers else None, markersize=3.5) for v in variants]
    labels = list(variants)
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 7), frameon=False,
               handlelength=3.2)


def curves_figure(
    metrics: pd.DataFrame,
    keys: Sequence[str],
    variants: Sequence[str],
    palette: Mapping[str, tuple] | None = None,
    band: str = "minmax",
    ncols: int = 2,
    titles: Mapping[str, str] | None = None,
    window_from: Mapping[str, float] | None = None,
) -> Figure:
    """One panel per key; per variant (its own colour and line style) the mean over seeds of the
    per-seed curves and their min-max (or ±1 sd) band. Dense loss curves are EMA-smoothed (the raw mean
    is drawn faint behind); learning rates and sparse curves (<= ``SPARSE_POINTS`` points, e.g. eval) are
    drawn as logged, point by point. Spiking terms get a log axis (``wants_log``; variants that are
    0 throughout are named in the panel, since a log axis cannot show them; a linear panel that is 0
    everywhere, such as a term whose lambda is 0 in every arm, says so, so that it does not read as a failed
    plot). ``window_from`` (key ->
    first step of the final window) shades the final window grey. Y labels carry the unit."""
    if band not in ("minmax", "sd"):
        raise ValueError(f"band must be 'minmax' or 'sd', got {band!r}")
    palette = dict(palette or variant_palette(variants))
    styles = variant_linestyles(variants)
    markers = variant_markers(variants)
    keys = list(keys)
    nrows = max(1, math.ceil(len(keys) / ncols))
    with _style():
        fig = Figure(figsize=(FIG_WIDTH_IN, PANEL_HEIGHT_IN * nrows + 0.45), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        any_sparse = False
        for ax, key in zip(axes, keys):
            sub_key = metrics[metrics["key"] == key]
            log = wants_log(key, sub_key["value"].to_numpy(float))
            zero_variants = []
            for variant in variants:
                sub = sub_key[sub_key["variant"] == variant]
                if sub.empty:
                    continue
                n_points = int(sub.groupby("run_id")["step"].size().max())
                smooth = is_smoothed(key, n_points)
                curves = seed_curves(sub, smooth=smooth)
                if log:
                    if not (sub["value"] > 0).any():
                        zero_variants.append(variant)
                        continue
                    curves = curves.where(curves > 0)
                colour, ls = palette[variant], styles[variant]
                steps = curves.index.to_numpy()
                if smooth:
                    ax.plot(steps, curves["raw"], color=colour, alpha=0.22, linewidth=0.6)
                if band == "minmax":
                    lo, hi = curves["ema_min"], curves["ema_max"]
                else:
                    lo, hi = curves["ema"] - curves["ema_sd"].fillna(0), curves["ema"] + curves["ema_sd"].fillna(0)
                if curves["n"].max() > 1:
                    ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, linewidth=0)
                sparse = n_points <= SPARSE_POINTS
                any_sparse = any_sparse or sparse
                drawstyle = "steps-post" if not smooth and not sparse else "default"
                ax.plot(steps, curves["ema"], color=colour, linestyle=ls, linewidth=1.3, drawstyle=drawstyle,
                        marker=markers[variant] if sparse else None, markersize=3.5)
            if window_from and key in window_from and math.isfinite(window_from[key]) and not sub_key.empty:
                ax.axvspan(window_from[key], sub_key["step"].max(), color="0.5", alpha=0.12, linewidth=0, zorder=0)
            title = (titles or {}).get(key, key)
            if log:
                ax.set_yscale("log")
                title += " (log scale)"
                if zero_variants:
                    ax.text(0.99, 0.97, "0 throughout (not drawn): " + ", ".join(zero_variants), transform=ax.transAxes,
                            ha="right", va="top", fontsize=7, color="0.3")
            else:
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
                if not sub_key.empty and not sub_key["value"].ne(0).any():
                    ax.text(0.5, 0.75, "0 at every logged step of every run", transform=ax.transAxes,
                            ha="center", va="center", fontsize=8, color="0.3")  # above the line at 0 (mid-axis)
            ax.set_title(title)
            ax.set_ylabel(axis_label(key))
        for ax in axes[len(keys):]:
            ax.set_visible(False)
        for ax in axes[: len(keys)][-ncols:]:
            ax.set_xlabel("training step")
        _legend(fig, variants, palette, with_markers=any_sparse)
    return fig


def d_gap_figure(
    metrics: pd.DataFrame,
    variants: Sequence[str],
    threshold: float,
    palette: Mapping[str, tuple] | None = None,
    window_from: float | None = None,
) -> Figure:
    """D(real) - D(fake) per step: per variant the mean over seeds of the EMA-smoothed gap (raw mean faint,
    seed min-max band), the dominance threshold dashed, the final window grey."""
    palette = dict(palette or variant_palette(variants))
    styles = variant_linestyles(variants)
    with _style():
        fig = Figure(figsize=(FIG_WIDTH_IN, 2.6), layout="constrained")
        ax = fig.subplots()
        last_step = None
        for variant in variants:
            sub = metrics[(metrics["variant"] == variant) & metrics["key"].isin((vocab.D_REAL_MEAN, vocab.D_FAKE_MEAN))]
            if sub.empty:
                continue
            wide = sub.pivot_table(index=["run_id", "step"], columns="key", values="value", aggfunc="last").dropna()
            if wide.empty or vocab.D_REAL_MEAN not in wide or vocab.D_FAKE_MEAN not in wide:
                continue
            gap = (wide[vocab.D_REAL_MEAN] - wide[vocab.D_FAKE_MEAN]).rename("value").reset_index()
            n_points = int(gap.groupby("run_id")["step"].size().max())
            curves = seed_curves(gap, smooth=n_points > SPARSE_POINTS)
            steps = curves.index.to_numpy()
            last_step = steps.max() if last_step is None else max(last_step, steps.max())
            colour = palette[variant]
            ax.plot(steps, curves["raw"], color=colour, alpha=0.22, linewidth=0.6)
            if curves["n"].max() > 1:
                ax.fill_between(steps, curves["ema_min"], curves["ema_max"], color=colour, alpha=0.15, linewidth=0)
            ax.plot(steps, curves["ema"], color=colour, linestyle=styles[variant], linewidth=1.3)
        ax.axhline(threshold, color="black", linestyle=(0, (4, 2)), linewidth=0.9)
        ax.text(0.005, threshold, f" D dominates above {threshold:g}", transform=ax.get_yaxis_transform(),
                va="bottom", ha="left", fontsize=7)
        if window_from is not None and last_step is not None and math.isfinite(window_from):
            ax.axvspan(window_from, last_step, color="0.5", alpha=0.12, linewidth=0, zorder=0)
        ax.set_xlabel("training step")
        ax.set_ylabel("D(real) \u2212 D(fake) [D output; 2 = perfect D]")
        _legend(fig, variants, palette)
    return fig


def _plain_log_axis(ax) -> None:
    """A log y axis labelled in plain numbers (0.5, 2, 30): 2x and 5x each decade labelled too below two
    decades of span (and 3x below one). Call after plotting (it reads the autoscaled limits)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _pos: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    span = high / low if low > 0 else math.inf
    if span < 100:  # fewer than two decades: label 2x and 5x (and 3x within one decade) as well
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 3.0, 5.0) if span < 10 else (2.0, 5.0)))
        ax.yaxis.set_minor_formatter(plain)
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


# Panels of the stability figure: (measure, title); the unit comes from lwgan.vocab.
STABILITY_PANELS = (
    (vocab.STABILITY_SWING_G, "G: low-frequency swing"),
    (vocab.STABILITY_SWING_D, "D: low-frequency swing"),
    (vocab.STABILITY_NOISE_G, "G: step-to-step noise"),
    (vocab.STABILITY_NOISE_D, "D: step-to-step noise"),
    (vocab.STABILITY_CORR_GD, "corr(G, D) of swings"),
    (vocab.STABILITY_D_GAP, "D gap, final window"),
    (vocab.STABILITY_D_DOMINANT, "time D dominates"),
)


def stability_figure(per_run: pd.DataFrame, variants: Sequence[str], palette: Mapping[str, tuple] | None = None) -> Figure:
    """Per measure (``lwgan.report.stability``) and variant: each seed (dots) and a 95% interval over seeds
    (black bar: Fisher z for the correlation, log scale for swings and noise, t otherwise) from 3 seeds on;
    with fewer seeds a grey bar spans the seeds' range and no interval is claimed."""
    from lwgan.report import stability as st

    palette = dict(palette or variant_palette(variants))
    markers = variant_markers(variants)
    panels = [(k, t) for k, t in STABILITY_PANELS if k in per_run and per_run[k].notna().any()]
    ncols = 4
    nrows = max(1, math.ceil((len(panels) + 1) / ncols))
    rotate = len(variants) > 3 or max((len(v) for v in variants), default=0) > 6
    with _style():
        fig = Figure(figsize=(FIG_WIDTH_IN, 2.05 * nrows + (0.25 if rotate else 0)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
        for ax, (key, title) in zip(axes, panels):
            summarise = st.summary_for(key)
            for i, variant in enumerate(variants):
                vals = per_run.loc[per_run["variant"] == variant, key].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                if key in vocab.STABILITY_LOG_SCALE:
                    vals = vals[vals > 0]
                if vals.size == 0:
                    continue
                ax.scatter(i + rng.uniform(-0.13, 0.13, vals.size), vals, s=12, color=palette[variant],
                           marker=markers[variant], alpha=0.8, linewidths=0, zorder=3)
                summ = summarise(vals)
                if math.isfinite(summ.low):
                    ax.vlines(i, summ.low, summ.high, color="black", linewidth=1.1, zorder=2)
                elif summ.n > 1:
                    ax.vlines(i, summ.minimum, summ.maximum, color="0.55", linewidth=1.1, zorder=2)
                ax.hlines(summ.centre, i - 0.25, i + 0.25, color="black", linewidth=1.4, zorder=4)
            ax.set_xticks(range(len(variants)), list(variants), rotation=45 if rotate else 0,
                          ha="right" if rotate else "center")
            ax.set_xlim(-0.6, len(variants) - 0.4)
            ax.set_title(title)
            ax.set_ylabel(f"[{vocab.metric(key).unit}]")
            if key in vocab.STABILITY_LOG_SCALE:
                _plain_log_axis(ax)
            if key == vocab.STABILITY_CORR_GD:
                ax.axhline(0, color="grey", linewidth=0.6)
                ax.set_ylim(-1.05, 1.05)
            if key == vocab.STABILITY_D_DOMINANT:
                ax.set_ylim(-0.03, 1.03)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        if len(panels) < axes.size:
            axes[len(panels)].text(
                0.0, 0.95,
                "dots: seeds\nwide tick: centre (mean;\n  geometric on log axes;\n  tanh(mean z) for r)\n"
                "black bar: 95% interval\n  over seeds (\u2265 3 seeds)\ngrey bar: range of seeds\n  (< 3 seeds)",
                transform=axes[len(panels)].transAxes, va="top", ha="left", fontsize=7.5)
    return fig


def save_figure(fig: Figure, path, dpi: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white", bbox_inches="tight", pad_inches=0.04)


def samples_figure(grids: Sequence[tuple[str, np.ndarray]], columns_note: str = "") -> Figure:
    """Sample grids side by side, each under its label (one panel per variant)."""
    with _style():
        k = max(1, len(grids))
        aspect = max(g.shape[0] / g.shape[1] for _, g in grids) if grids else 1.0
        panel_w = FIG_WIDTH_IN / k
        fig = Figure(figsize=(FIG_WIDTH_IN, panel_w * aspect + 0.5 + (0.2 if columns_note else 0)), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, k, squeeze=False)).ravel()
        for ax, (label, grid) in zip(axes, grids):
            ax.imshow(grid, interpolation="nearest")
            ax.set_title(label)
            ax.set_axis_off()
        if columns_note:
            fig.supxlabel(columns_note, fontsize=8)
    return fig


@dataclass(frozen=True)
class PairOutput:
    """One variant's outputs for one validation pair: (H, W, 3) uint8 images and the per-pair scores."""

    label: str
    transfer: np.ndarray
    reconstruction: np.ndarray
    ssim: float
    psnr: float
    ssim_rec: float


def error_map(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|output - target| averaged over RGB, as a fraction of the full intensity range (0..1)."""
    return np.abs(output.astype(float) - target.astype(float)).mean(axis=-1) / 255.0


def pair_strip_figure(title: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[PairOutput],
                      vmax: float | None = None) -> Figure:
    """One validation pair across variants, every image at the same scale (nearest neighbour).

    Columns: the inputs, shown once (source | target above, warped source | target body condition
    below), then one column per variant. Rows: the transfer output with its SSIM and PSNR against the
    target; its error map |output - target| on one colour scale for the whole strip (``vmax``, default the
    largest 99th percentile); the reconstruction of the source with its SSIM against the source.
    """
    k = len(outputs)
    ncols = 2 + k
    cell = min(1.15, FIG_WIDTH_IN / (ncols + 0.35))
    errors = [error_map(o.transfer, inputs["target"]) for o in outputs]
    if vmax is None:
        vmax = max([float(np.percentile(e, 99)) for e in errors] + [0.05])
    with _style():
        fig = Figure(figsize=(cell * (ncols + 0.35), cell * 3 + 0.75), layout="constrained")
        axes = fig.subplots(3, ncols, squeeze=False)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.grid(False)

        def show(ax, image, caption, **kw):
            ax.imshow(image, interpolation="nearest", **kw)
            ax.set_title(caption, fontsize=7.5, pad=2)

        show(axes[0, 0], inputs["source"], "source (input)")
        show(axes[0, 1], inputs["target"], "target")
        show(axes[1, 0], inputs["warped"], "warped source")
        show(axes[1, 1], inputs["reference"], "target body")
        axes[2, 0].set_visible(False)
        axes[2, 1].set_visible(False)
        mappable = None
        for j, (o, err) in enumerate(zip(outputs, errors), start=2):
            show(axes[0, j], o.transfer, f"{o.label}\nSSIM {o.ssim:.3f}")
            mappable = axes[1, j].imshow(err, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
            axes[1, j].set_title(f"PSNR {o.psnr:.1f} dB", fontsize=7.5, pad=2)
            show(axes[2, j], o.reconstruction, f"SSIM_rec {o.ssim_rec:.3f}")
        if k:
            axes[0, 2].set_ylabel("transfer", fontsize=8)
            axes[1, 2].set_ylabel("|transfer \u2212 target|", fontsize=8)
            axes[2, 2].set_ylabel("reconstruction\nof the source", fontsize=8)
        if mappable is not None:
            bar = fig.colorbar(mappable, ax=axes[1, :].tolist(), fraction=0.03, pad=0.01, aspect=12)
            bar.set_label("mean |error| over RGB\n(1 = full range)", fontsize=7)
            bar.ax.tick_params(labelsize=7)
        fig.suptitle(title, fontsize=9)
    return fig
