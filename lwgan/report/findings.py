"""The report's "Findings" paragraph, generated from the numbers only: every claim carries its
delta, CI and p-value; it says so when nothing is significant or when seeds are too few to test.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd

from lwgan import vocab
from lwgan.report.stats import ALPHA, MIN_SEEDS_TEST, is_significant
from lwgan.report.tables import delta_cell, metric_label


def _p_text(name: str, p: float) -> str:
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}"


def _effect(row: Mapping) -> str:
    """``L_face -20.78% [-22.1, -19.4] (paired t, p < 0.001, Holm p = 0.004, g = -34.8)``: the change on
    the metric's scale with its interval (or the per-seed range below 3 seeds)."""
    size = f"{metric_label(row['key'])} {delta_cell(row).text}"
    if math.isfinite(row["p_holm"]):
        return (f"{size} ({row['test']}, {_p_text('p', row['p'])}, {_p_text('Holm p', row['p_holm'])}, "
                f"g = {row['hedges_g']:+.2f})")
    return size


def findings(
    comparison: pd.DataFrame,
    variants: Sequence[str],
    baseline: str,
    completed: Mapping[str, int],
    excluded: Mapping[str, int],
    stability: pd.DataFrame | None = None,
    key_order: Sequence[str] = (),
) -> list[str]:
    """Sentences (one paragraph each) stating what the numbers show."""
    out: list[str] = []
    others = [v for v in variants if v != baseline]
    n_base = completed.get(baseline, 0)
    if not others:
        return ["The study has no variant besides the baseline: there is nothing to compare."]
    if n_base == 0:
        return [f"No baseline run completed, so no variant can be compared with the baseline ({sum(excluded.values())} runs excluded)."]
    order = {k: i for i, k in enumerate(key_order)}
    comp = comparison[comparison["variant"] != baseline].copy()
    comp["_order"] = comp["key"].map(lambda k: order.get(k, len(order)))
    comp = comp.sort_values(["_order"], kind="stable")

    tested = comp[comp["p_holm"].notna()]
    few = [v for v in others if completed.get(v, 0) < MIN_SEEDS_TEST]
    if n_base < MIN_SEEDS_TEST:
        few = others
    if few:
        counts = ", ".join(f"{v}: {completed.get(v, 0)}" for v in few)
        out.append(
            f"Too few seeds for significance tests (needs {MIN_SEEDS_TEST} completed runs per group; "
            f"baseline: {n_base}; {counts}): for these variants only deltas"
            + (" with the range of the per-seed differences" if n_base >= 2 else "") + " are reported, no p-values or t-intervals."
        )
    sig_any = False
    quiet = []
    for variant in others:
        rows = tested[tested["variant"] == variant]
        if rows.empty:
            continue
        sig = [r for r in rows.to_dict("records") if is_significant(pd.Series(r))]
        if sig:
            sig_any = True
            n = f"{sig[0]['n_pairs']} paired seeds" if sig[0]["n_pairs"] else f"{sig[0]['n_var']} vs {sig[0]['n_base']} seeds"
            out.append(f"**{variant}** differs from the baseline ({n}; change [95% interval]) in " + "; ".join(_effect(r) for r in sig) + ".")
        else:
            quiet.append(variant)
    if quiet and sig_any:
        out.append(
            f"No metric of {', '.join(quiet)} differs from the baseline at \u03b1 = {ALPHA} after Holm correction "
            f"({len(tested[tested['variant'].isin(quiet)])} tests)."
        )
    if len(tested) and not sig_any:
        out.append(f"No variant changes any metric significantly at \u03b1 = {ALPHA} after Holm correction ({len(tested)} tests).")
    lo = comp["pct_range_lo"].where(comp["scale"] == "%", comp["range_lo"])
    hi = comp["pct_range_hi"].where(comp["scale"] == "%", comp["range_hi"])
    same_sign = comp[comp["p_holm"].isna() & (((lo > 0) & (hi > 0)) | ((lo < 0) & (hi < 0)))]
    for variant, grp in same_sign.groupby("variant", sort=False):
        out.append(f"**{variant}**, untested (too few seeds), changes these metrics in the same direction in every seed "
                   "(not a significance statement): " + "; ".join(_effect(r) for r in grp.to_dict("records")) + ".")
    if stability is not None and not stability.empty and "resid_rel_G" in stability:
        parts = []
        for r in stability.to_dict("records"):
            if math.isfinite(r.get("resid_rel_G", math.nan)):
                parts.append(f"{r['variant']} {r['resid_rel_G']:.2f}%")
        if parts:
            out.append(f"Oscillation of {vocab.G_TOTAL} over the final window (residual sd in % of its level, mean over seeds): " + ", ".join(parts) + ".")
    n_excl = sum(excluded.values())
    if n_excl:
        detail = ", ".join(f"{k}: {v}" for k, v in excluded.items() if v)
        out.append(f"{n_excl} run(s) did not complete and are excluded from these numbers ({detail}).")
    return out
