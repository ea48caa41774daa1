"""Plots of a study: each function takes DataFrames and returns a matplotlib Figure sized for an
A4 page (7 in wide, fonts >= 8 pt at that size). No pyplot state is used.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lwgan.report.stats import ema, ema_span, mean_ci

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


def seed_curves(frame: pd.DataFrame, span: int | None = None) -> pd.DataFrame:
    """For one variant and one key (long: run_id, step, value): per step the raw mean across seeds,
    the mean of the per-seed EMA curves, their min/max and sd. Index: step."""
    wide = frame.pivot_table(index="step", columns="run_id", values="value", aggfunc="last").sort_index()
    smooth = {}
    for col in wide.columns:
        series = wide[col].dropna()
        s = span if span is not None else ema_span(series.size)
        smooth[col] = pd.Series(ema(series.to_numpy(), s), index=series.index)
    smooth_wide = pd.DataFrame(smooth).reindex(wide.index)
    return pd.DataFrame({
        "raw": wide.mean(axis=1),
        "ema": smooth_wide.mean(axis=1),
        "ema_min": smooth_wide.min(axis=1),
        "ema_max": smooth_wide.max(axis=1),
        "ema_sd": smooth_wide.std(axis=1, ddof=1),
        "n": smooth_wide.notna().sum(axis=1),
    })


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
    """One panel per key; per variant the mean of the EMA-smoothed seed curves (solid), the seed band
    (min-max or ±1 sd of the smoothed curves) and the raw mean across seeds (faint). ``window_from``
    (key -> first step of the final window) shades the final window grey. Sparse curves (<= 20 points)
    get markers."""
    if band not in ("minmax", "sd"):
        raise ValueError(f"band must be 'minmax' or 'sd', got {band!r}")
    palette = dict(palette or variant_palette(variants))
    keys = list(keys)
    nrows = max(1, math.ceil(len(keys) / ncols))
    with _style():
        fig = Figure(figsize=(FIG_WIDTH_IN, PANEL_HEIGHT_IN * nrows + 0.45), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, key in zip(axes, keys):
            sub_key = metrics[metrics["key"] == key]
            for variant in variants:
                sub = sub_key[sub_key["variant"] == variant]
                if sub.empty:
                    continue
                curves = seed_curves(sub)
                colour = palette[variant]
                steps = curves.index.to_numpy()
                ax.plot(steps, curves["raw"], color=colour, alpha=0.25, linewidth=0.6)
                if band == "minmax":
                    lo, hi = curves["ema_min"], curves["ema_max"]
                else:
                    lo, hi = curves["ema"] - curves["ema_sd"].fillna(0), curves["ema"] + curves["ema_sd"].fillna(0)
                if curves["n"].max() > 1:
                    ax.fill_between(steps, lo, hi, color=colour, alpha=0.18, linewidth=0)
                sparse = len(steps) <= 20
                ax.plot(steps, curves["ema"], color=colour, linewidth=1.3, marker="o" if sparse else None, markersize=3)
            if window_from and key in window_from and math.isfinite(window_from[key]) and not sub_key.empty:
                ax.axvspan(window_from[key], sub_key["step"].max(), color="0.5", alpha=0.12, linewidth=0, zorder=0)
            ax.set_title((titles or {}).get(key, key))
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
        for ax in axes[len(keys):]:
            ax.set_visible(False)
        for ax in axes[: len(keys)][-ncols:]:
            ax.set_xlabel("step")
        handles = [Line2D([0], [0], color=palette[v], linewidth=1.5) for v in variants]
        fig.legend(handles, list(variants), loc="outside upper center", ncol=min(len(variants), 6), frameon=False)
    return fig


STABILITY_PANELS = (
    ("resid_rel_G", "G_total: residual sd (% of level)"),
    ("resid_rel_D", "D_total: residual sd (% of level)"),
    ("corr_GD", "corr(G, D) of residuals"),
)


def stability_figure(oscillation: pd.DataFrame, variants: Sequence[str], palette: Mapping[str, tuple] | None = None) -> Figure:
    """Per variant: each seed's oscillation measure (dots) and the mean with its 95% CI (bar)."""
    palette = dict(palette or variant_palette(variants))
    with _style():
        height = 2.3 + 0.06 * max(len(v) for v in variants) if variants else 2.3
        fig = Figure(figsize=(FIG_WIDTH_IN, height), layout="constrained")
        axes = fig.subplots(1, len(STABILITY_PANELS))
        rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
        for ax, (col, title) in zip(axes, STABILITY_PANELS):
            for i, variant in enumerate(variants):
                vals = oscillation.loc[oscillation["variant"] == variant, col].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                if vals.size == 0:
                    continue
                colour = palette[variant]
                ax.scatter(i + rng.uniform(-0.12, 0.12, vals.size), vals, s=10, color=colour, alpha=0.7, linewidths=0)
                mean, half = mean_ci(vals)
                ax.errorbar(i, mean, yerr=half if math.isfinite(half) else None, fmt="_", color="black",
                            markersize=12, capsize=3, linewidth=1)
            ax.set_xticks(range(len(variants)), list(variants), rotation=45 if len(variants) > 3 else 0,
                          ha="right" if len(variants) > 3 else "center")
            ax.set_title(title)
            if col == "corr_GD":
                ax.axhline(0, color="grey", linewidth=0.6)
                ax.set_ylim(-1.05, 1.05)
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
