"""Two parent runs side by side (``lwgan-study compare A B``): the same study at two profiles, or before and
after a code change. Per variant and metric, run A against run B on the final-window values of their
completed trials, with the report's statistics engine (``lwgan.report.contrast``: paired by seed when the
runs share seeds, else Welch; Holm across the variants of each metric)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from lwgan.errors import UserError
from lwgan.vocab import BASELINE, METRICS, Group, TrialStatus, names

WINDOW = 0.2  # the report's final window (lwgan.report.builder.build_report)
COLUMNS = ["variant", "key", "n_a", "n_b", "mean_a", "mean_b", "diff", "diff_lo", "diff_hi", "pct", "pct_lo", "pct_hi",
           "test", "p", "p_holm"]


@dataclass(frozen=True)
class Comparison:
    a_run_id: str
    b_run_id: str
    a_label: str  # "study @ profile (run id prefix)"
    b_label: str
    table: pd.DataFrame  # COLUMNS, one row per (variant, metric) both runs have
    only_a: tuple[str, ...]  # variants only run A has
    only_b: tuple[str, ...]


def _per_seed(finals: pd.DataFrame, variant: str, key: str) -> dict[int, float]:
    rows = finals[(finals["variant"] == variant) & (finals["key"] == key)]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows["value"]) if pd.notna(s)}


def _finals(data, window: float) -> pd.DataFrame:
    from lwgan.report.stats import final_values

    done = set(data.runs.loc[data.runs["status"] == str(TrialStatus.COMPLETED), "run_id"])
    return final_values(data.metrics[data.metrics["run_id"].isin(done)], window)


def _variants(finals: pd.DataFrame) -> list[str]:
    names = sorted(set(finals["variant"]))
    return ([BASELINE] if BASELINE in names else []) + [v for v in names if v != BASELINE]


def _label(data) -> str:
    from lwgan.vocab import Tag

    return f"{data.study} @ {data.parent_tags.get(Tag.PROFILE, '?')} ({data.parent_run_id[:8]})"


def compare_finals(finals_a: pd.DataFrame, finals_b: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (variant, key) in both: contrast of A's per-seed final values against B's; Holm across variants per key."""
    from lwgan.report.contrast import contrast, holm

    variants = [v for v in _variants(finals_a) if v in set(finals_b["variant"])]
    shared = set(finals_a["key"]) & set(finals_b["key"])
    if not keys:  # what Table 1 compares: the losses and the eval metrics (not lr, grad norms, throughput)
        keys = [m for m in names(Group.GENERATOR, Group.DISCRIMINATOR, Group.EVAL) if m in shared] or sorted(shared)
    rows = []
    for variant in variants:
        for key in keys:
            a, b = _per_seed(finals_a, variant, key), _per_seed(finals_b, variant, key)
            if not a or not b:
                continue
            c = contrast(a, b)
            rows.append({"variant": variant, "key": key, "n_a": c.n_a, "n_b": c.n_b, "mean_a": c.mean_a, "mean_b": c.mean_b,
                         "diff": c.diff, "diff_lo": c.diff_lo, "diff_hi": c.diff_hi, "pct": c.pct, "pct_lo": c.pct_lo,
                         "pct_hi": c.pct_hi, "test": c.test, "p": c.p, "p_holm": math.nan})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for key in table["key"].unique():
        mask = (table["key"] == key).to_numpy()
        table.loc[mask, "p_holm"] = holm(table.loc[mask, "p"].to_numpy(float))
    return table


def compare_runs(a_ref: str, b_ref: str, tracking_uri: str | None = None, keys: Sequence[str] | None = None,
                 window: float = WINDOW) -> Comparison:
    """Run A against run B (each a parent run id, a study name = its latest run, or a study YAML)."""
    from lwgan.catalog.store import open_store
    from lwgan.report.collect import collect_study

    uri, _ = open_store(tracking_uri)
    a, b = collect_study(a_ref, uri), collect_study(b_ref, uri)
    if a.parent_run_id == b.parent_run_id:
        raise UserError(f"compare: A and B are the same parent run {a.parent_run_id}; give two runs (lwgan-study ls lists them)")
    unknown = [k for k in (keys or ()) if k not in METRICS]
    if unknown:
        raise UserError(f"compare --metric: unknown metric {', '.join(unknown)} (allowed: {', '.join(METRICS)})")
    finals_a, finals_b = _finals(a, window), _finals(b, window)
    table = compare_finals(finals_a, finals_b, keys)
    va, vb = set(finals_a["variant"]), set(finals_b["variant"])
    if table.empty:
        raise UserError(f"compare: runs {a.parent_run_id} and {b.parent_run_id} share no variant with completed trials "
                        f"(A: {', '.join(sorted(va)) or 'none'}; B: {', '.join(sorted(vb)) or 'none'})")
    return Comparison(a.parent_run_id, b.parent_run_id, _label(a), _label(b), table,
                      tuple(sorted(va - vb)), tuple(sorted(vb - va)))


def _num(x: float, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def to_markdown(comp: Comparison) -> str:
    """The comparison as a Markdown document: one table, A − B per variant and metric."""
    lines = [f"# A: {comp.a_label} vs B: {comp.b_label}", "",
             f"A = parent run `{comp.a_run_id}`, B = parent run `{comp.b_run_id}`. Per variant and metric: the mean of "
             f"each run's completed trials' final-window values ({WINDOW:.0%} of logged points), A − B with its 95% "
             "interval (paired by seed when the runs share seeds, else Welch; no interval below 3 seeds), Δ% of B, "
             "and p Holm-adjusted across the variants of each metric.", ""]
    header = ["variant", "metric", "n A/B", "A", "B", "A − B", "95% CI", "Δ%", "test", "p", "p (Holm)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in comp.table.itertuples():
        ci = f"[{_num(r.diff_lo)}, {_num(r.diff_hi)}]" if math.isfinite(r.diff_lo) else "–"
        lines.append("| " + " | ".join([r.variant, f"`{r.key}`", f"{r.n_a}/{r.n_b}", _num(r.mean_a), _num(r.mean_b),
                                         _num(r.diff), ci, _num(r.pct, 3), r.test, _num(r.p, 3), _num(r.p_holm, 3)]) + " |")
    if comp.only_a or comp.only_b:
        lines += ["", f"Not compared: only in A: {', '.join(comp.only_a) or '–'}; only in B: {', '.join(comp.only_b) or '–'}."]
    return "\n".join(lines) + "\n"
