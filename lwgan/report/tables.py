"""The report's tables as ``document.Table`` objects: the design per variant, run accounting, the
delta table in the layout of the seed paper's Table 1 (plus the other loss terms and eval metrics),
the statistics detail and the stability table.

Inputs are the pandas frames of ``collect`` and ``stats``; nothing here reads files.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from lwgan import vocab
from lwgan.report.document import Cell, Table

# The seed paper's Table 1 columns; every other metric's table follows its lwgan/vocab.py group.
MAIN_KEYS = (vocab.G_FACE, vocab.G_TSF, vocab.G_REC)
S = vocab.TrialStatus


def g_loss_keys() -> tuple[str, ...]:
    """The other generator terms and the total (vocab order), read at call time."""
    return tuple(k for k in vocab.names(vocab.Group.GENERATOR) if k not in MAIN_KEYS)


def d_loss_keys() -> tuple[str, ...]:
    return vocab.names(vocab.Group.DISCRIMINATOR)


def eval_keys() -> tuple[str, ...]:
    return vocab.names(vocab.Group.EVAL)


def all_loss_keys() -> tuple[str, ...]:
    return MAIN_KEYS + g_loss_keys() + d_loss_keys()

# Keys that Table 1 shows in its own columns; every other config difference goes to "Other changes".
TABLE1_DESIGN_KEYS = ("spectral_norm", "spectral_norm_G", "gp_weight", "lr_G", "lr_D", "lr_final")
NOT_A_DESIGN_CHOICE = ("seed", "variant")

GREEK = {"eta": "\u03b7", "lambda": "\u03bb"}
NO = "\u2013"  # en dash, as the paper's "-" for "off"
YES = "\u2713"


def metric_label(key: str, delta: bool = False) -> str:
    """``loss/G_face`` -> ``L_face`` (``ΔL_face`` with delta), ``loss/D_real`` -> ``D_real``, ``eval/ssim`` -> ``SSIM``:
    the label lwgan/vocab.py gives the metric; an unregistered name is labelled by the same rule."""
    if key in vocab.METRICS:
        label = vocab.label(key)
        return ("\u0394" + label) if delta else label
    group, _, name = key.partition("/")
    if group == "loss" and name.startswith("G_"):
        label = "L_" + name[2:]
    elif group == "eval":
        label = name.upper()
    else:
        label = name or key
    return ("\u0394" + label) if delta else label


# ----------------------------------------------------------------------------------
# Number formatting
# ----------------------------------------------------------------------------------


def fmt_value(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NO
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.{digits}g}"
    return str(x)


def fmt_lr(x: Any) -> str:
    """Learning rates as the paper writes them: 1e-4, 2.5e-4."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NO
    mant, exp = f"{float(x):.3e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def fmt_pct(x: float) -> str:
    return f"{x:+.2f}%"


def fmt_mean_ci(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return NO
    if not math.isfinite(half):
        return fmt_value(mean)
    return f"{fmt_value(mean)} \u00b1 {fmt_value(half, 2)}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return NO
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def _num(x: float, relative: bool, unit: str = "") -> str:
    if relative:
        return f"{x:+.2f}%"
    return f"{x:+.3g}" + (f" {unit}" if unit and unit != "abs" else "")


def delta_cell(row: Mapping[str, Any]) -> Cell:
    """The change against the baseline on the metric's scale: ``-12.80% [-15.1, -10.4]`` for loss terms
    (Fieller interval), ``+0.021 [+0.004, +0.038]`` for SSIM, ``-7.2 dB [...]`` for PSNR; with
    fewer than 3 seeds ``(range a .. b)`` of the per-seed differences. Bold and marked only when the
    Holm-corrected test is significant (``marked``)."""
    if row["n_var"] == 0:
        return Cell("no completed run")
    if row["n_base"] == 0:
        return Cell("no baseline")
    relative = row.get("scale", "%") == "%"
    unit = row.get("scale", "")
    est, lo, hi = (row["delta_pct"], row["pct_lo"], row["pct_hi"]) if relative else (row["diff"], row["diff_lo"], row["diff_hi"])
    rlo, rhi = (row["pct_range_lo"], row["pct_range_hi"]) if relative else (row["range_lo"], row["range_hi"])
    if relative and not math.isfinite(est):
        return Cell(f"n/a: baseline 0 (variant {fmt_value(row['var_mean'])})")
    if not math.isfinite(est):
        return Cell(NO)
    text = _num(est, relative, unit)
    digits = ".1f" if relative else ".3g"
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{lo:+{digits}}, {hi:+{digits}}]"
    elif relative and row.get("test", "none") != "none" and math.isfinite(row.get("p", math.nan)):
        text += " [unbounded]"  # Fieller: the baseline mean is not distinguishable from 0
    elif math.isfinite(rlo) and math.isfinite(rhi) and (row.get("n_pairs", 0) >= 2 or min(row["n_var"], row["n_base"]) >= 2):
        text += f" (range {rlo:+{digits}} .. {rhi:+{digits}})"
    marked = bool(row.get("marked", False))
    return Cell(text, bold=marked, mark=marked)


# ----------------------------------------------------------------------------------
# Design (config differences)
# ----------------------------------------------------------------------------------


def variant_params(runs: pd.DataFrame, variant: str) -> dict[str, Any]:
    """The flat config of a variant (params of one of its runs), without seed/variant."""
    sub = runs[runs["variant"] == variant]
    if sub.empty:
        return {}
    # Prefer a completed run (a failed one may have died before logging every param), then the lowest seed.
    sub = sub.assign(_rank=(sub["status"] != S.COMPLETED).astype(int)).sort_values(["_rank", "seed"], kind="stable")
    first = sub.iloc[0]
    out = {}
    for col in runs.columns:
        if col.startswith("param."):
            name = col[len("param."):]
            value = first[col]
            if name in NOT_A_DESIGN_CHOICE or (isinstance(value, float) and math.isnan(value)):
                continue
            out[name] = value
    return out


def config_diff(params: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs from the baseline: key -> (baseline value, variant value)."""
    diff = {}
    for key in sorted(set(params) | set(base)):
        a, b = base.get(key), params.get(key)
        if a != b:
            diff[key] = (a, b)
    return diff


def fmt_key(key: str) -> str:
    if key.startswith("lambda_"):
        return GREEK["lambda"] + "_" + key[len("lambda_"):]
    return key


def fmt_param(key: str, value: Any) -> str:
    return fmt_lr(value) if key.startswith("lr_") and isinstance(value, (int, float)) else fmt_value(value)


def design_cells(params: Mapping[str, Any], base: Mapping[str, Any], is_baseline: bool) -> list[Cell]:
    """SN, GP weight, TTUR (η_G, η_D, η_F), loss weights changed, other changes."""
    sn = bool(params.get("spectral_norm", False))
    sn_g = bool(params.get("spectral_norm_G", False))
    sn_text = (YES + " (D+G)" if sn_g else YES) if sn else ("G only" if sn_g else NO)
    gp = params.get("gp_weight", 0) or 0
    gp_text = fmt_value(gp) if gp else NO
    ttur = f"({fmt_lr(params.get('lr_G'))}, {fmt_lr(params.get('lr_D'))}, {fmt_lr(params.get('lr_final'))})"
    diff = config_diff(params, base)
    lambdas = [f"{fmt_key(k)} = {fmt_value(v)}" for k, (_, v) in diff.items() if k.startswith("lambda_")]
    other = [f"{k} = {fmt_param(k, v)}" for k, (_, v) in diff.items() if not k.startswith("lambda_") and k not in TABLE1_DESIGN_KEYS]
    if is_baseline:
        return [Cell(sn_text), Cell(gp_text), Cell(ttur), Cell("reference"), Cell(NO)]
    return [Cell(sn_text), Cell(gp_text), Cell(ttur), Cell("; ".join(lambdas) or NO), Cell("; ".join(other) or NO)]


def design_table(runs: pd.DataFrame, variants: Sequence[str], baseline: str, descriptions: Mapping[str, str] | None = None) -> Table:
    """Per variant: what it changes against the baseline, its seeds and budget (and the study file's description)."""
    descriptions = {k: v for k, v in (descriptions or {}).items() if v}
    base = variant_params(runs, baseline)
    rows = []
    for variant in variants:
        sub = runs[runs["variant"] == variant]
        params = variant_params(runs, variant)
        if variant == baseline:
            changes = "(the baseline)"
        else:
            diff = config_diff(params, base)
            changes = "; ".join(f"{fmt_key(k)}: {fmt_param(k, a)} \u2192 {fmt_param(k, b)}" for k, (a, b) in diff.items()) or "none"
        seeds = sorted(int(s) for s in sub["seed"].dropna().unique())
        budget = params.get("max_steps")
        budget_text = fmt_value(budget) if budget is not None else "full schedule"
        row = [Cell(variant), Cell(changes), Cell(", ".join(map(str, seeds)) or NO), Cell(budget_text)]
        if descriptions:
            row.insert(1, Cell(" ".join(str(descriptions.get(variant, "")).split()) or NO))
        rows.append(row)
    columns = ["Variant", "Config vs baseline", "Seeds", "max_steps"]
    if descriptions:
        columns.insert(1, "Description")
    return Table(columns, rows, caption="Design: what each variant changes.")


# ----------------------------------------------------------------------------------
# Run accounting
# ----------------------------------------------------------------------------------

# Trial outcomes the accounting table counts, in column order (a 'pending' trial has no MLflow run).
STATUSES = (S.COMPLETED, S.DIVERGED, S.FAILED, S.PRUNED, S.RUNNING)


def accounting_table(runs: pd.DataFrame, variants: Sequence[str]) -> Table:
    rows = []
    for variant in variants:
        sub = runs[runs["variant"] == variant].sort_values("seed", kind="stable")
        counts = {s: int((sub["status"] == s).sum()) for s in STATUSES}
        div = sub[sub["status"] == S.DIVERGED]
        div_text = str(counts[S.DIVERGED])
        if counts[S.DIVERGED]:
            div_text += " (" + ", ".join(
                f"seed {fmt_value(r.seed)} @ step {'?' if pd.isna(r.diverged_step) else int(r.diverged_step)}" for r in div.itertuples()
            ) + ")"
        failed = sub[sub["status"] == S.FAILED]
        failed_text = str(counts[S.FAILED])
        if counts[S.FAILED]:
            failed_text += " (seed " + ", ".join(fmt_value(s) for s in failed["seed"]) + ")"
        rows.append([
            Cell(variant), Cell(str(len(sub))), Cell(str(counts[S.COMPLETED])), Cell(div_text),
            Cell(failed_text), Cell(str(counts[S.PRUNED])), Cell(str(counts[S.RUNNING])),
        ])
    return Table(
        ["Variant", "Trials", "Completed", "Diverged", "Failed", "Pruned", "Running"], rows,
        caption="Run accounting: the outcome of every trial.",
    )


def failure_notes(runs: pd.DataFrame, variants: Sequence[str] | None = None) -> list[str]:
    """One line per non-completed run with its reason; runs that failed with the same message share a line."""
    order = {v: i for i, v in enumerate(variants or sorted(runs["variant"].unique()))}
    bad = runs[runs["status"] != S.COMPLETED].copy()
    bad["_order"] = bad["variant"].map(lambda v: order.get(v, len(order)))
    bad = bad.sort_values(["_order", "seed"], kind="stable")
    notes = []
    for r in bad[bad["status"] == S.DIVERGED].itertuples():
        what = f"{r.variant}, seed {fmt_value(r.seed)} (run {r.run_id[:8]}): "
        error = r.error if isinstance(r.error, str) else ""
        if error.startswith(S.DIVERGED.value):  # the trainer's message already says it (LossDivergedError)
            what += error
        else:
            what += S.DIVERGED.value
            if not pd.isna(r.diverged_step):
                what += f" at step {int(r.diverged_step)}"
            if error:
                what += f" \u2013 {error}"
        notes.append(what)
    rest = bad[bad["status"] != S.DIVERGED]
    reasons = rest["error"].where(rest["error"].map(lambda e: isinstance(e, str) and bool(e)), None)
    for (status, reason), grp in rest.groupby([rest["status"], reasons.fillna("")], sort=False):
        who = "; ".join(
            f"{variant}, seed{'s' if len(g) > 1 else ''} {', '.join(fmt_value(s) for s in g['seed'])}"
            for variant, g in grp.groupby("variant", sort=False)
        )
        runs_txt = ", ".join(r[:8] for r in grp["run_id"])
        if reason:
            tail = f" \u2013 {reason}"
        elif status == S.FAILED:
            tail = " \u2013 no error message was recorded"
        else:
            tail = ""
        notes.append(f"{who} (run{'s' if len(grp) > 1 else ''} {runs_txt}): {status}{tail}")
    return notes


# ----------------------------------------------------------------------------------
# Delta tables
# ----------------------------------------------------------------------------------


def _lookup(comparison: pd.DataFrame, variant: str, key: str) -> Mapping[str, Any]:
    hit = comparison[(comparison["variant"] == variant) & (comparison["key"] == key)]
    if hit.empty:
        raise KeyError((variant, key))
    return hit.iloc[0].to_dict()


def baseline_cell(comparison: pd.DataFrame, baseline: str, key: str) -> Cell:
    """The baseline's absolute value: mean ± t-interval half-width from 3 seeds on, else mean (min .. max)."""
    row = _lookup(comparison, baseline, key)
    if row["n_var"] == 0:
        return Cell("no completed run")
    if math.isfinite(row["var_ci"]):
        return Cell(fmt_mean_ci(row["var_mean"], row["var_ci"]))
    if row["n_var"] >= 2:
        return Cell(f"{fmt_value(row['var_mean'])} ({fmt_value(row['var_min'], 3)} .. {fmt_value(row['var_max'], 3)})")
    return Cell(fmt_value(row["var_mean"]))


def table1(
    comparison: pd.DataFrame, runs: pd.DataFrame, variants: Sequence[str], baseline: str, keys: Sequence[str] = MAIN_KEYS
) -> Table:
    """The seed paper's Table 1: Exp, SN, GP weight, TTUR, loss weights (+ other changes), ΔL_face, ΔL_tsf,
    ΔL_rec; each weighted Δ is followed by its λ-normalised Δ (term / λ, ``vocab.UNWEIGHTED``) when the
    comparison holds it, so a λ change is told apart from a change of what the term measures."""
    base = variant_params(runs, baseline)
    present = set(comparison["key"])
    columns = ["Exp", "SN", "GP weight", "TTUR (\u03b7_G, \u03b7_D, \u03b7_F)", "Loss weights", "Other changes"]
    shown: list[str] = []
    for key in keys:
        shown.append(key)
        if vocab.UNWEIGHTED.get(key) in present:
            shown.append(vocab.UNWEIGHTED[key])
    columns += ["\u0394" + vocab.label(k) if k in vocab.UNWEIGHTED.values() else metric_label(k, delta=True) for k in shown]
    rows = []
    for variant in variants:
        is_base = variant == baseline
        cells = [Cell(variant)] + design_cells(variant_params(runs, variant), base, is_base)
        for key in shown:
            cells.append(baseline_cell(comparison, baseline, key) if is_base else delta_cell(_lookup(comparison, variant, key)))
        rows.append(cells)
    return Table(columns, rows)


def delta_table(comparison: pd.DataFrame, variants: Sequence[str], baseline: str, keys: Sequence[str]) -> Table:
    """Exp + one delta column per key; the baseline row holds absolute values."""
    columns = ["Exp"] + [metric_label(k, delta=True) for k in keys]
    rows = []
    for variant in variants:
        if variant == baseline:
            rows.append([Cell(variant)] + [baseline_cell(comparison, baseline, k) for k in keys])
        else:
            rows.append([Cell(variant)] + [delta_cell(_lookup(comparison, variant, k)) for k in keys])
    return Table(columns, rows)


def statistics_table(comparison: pd.DataFrame, baseline: str, keys: Sequence[str]) -> Table:
    """One row per tested variant and metric: the test, n, means, Δ with its interval, p, Holm p (its
    family) and Hedges' g."""
    rows = []
    order = {k: i for i, k in enumerate(keys)}
    comp = comparison[(comparison["variant"] != baseline) & comparison["key"].isin(keys)].copy()
    comp["_order"] = comp["key"].map(order)
    for variant, grp in comp.groupby("variant", sort=False):
        for row in grp.sort_values("_order").to_dict("records"):
            n = f"{row['n_pairs']} pairs" if row["n_pairs"] else f"{row['n_var']} / {row['n_base']}"
            rows.append([
                Cell(variant), Cell(row["key"]), Cell(row["test"]), Cell(n),
                Cell(fmt_mean_ci(row["var_mean"], row["var_ci"])), delta_cell(row),
                Cell(fmt_p(row["p"])), Cell(fmt_p(row["p_holm"]), bold=bool(row["marked"])),
                Cell(f"{row['hedges_g']:+.2f}" if math.isfinite(row["hedges_g"]) else NO),
            ])
    return Table(["Exp", "Metric", "Test", "n", "Variant mean", "\u0394 vs baseline", "p", "p Holm", "Hedges' g"], rows)
