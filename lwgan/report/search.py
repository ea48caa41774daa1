"""A search study's own report (the ablation report's Table 1 has no baseline row for a search): the best
trials with what they change against the baseline trial, pruning accounting (how many trials ASHA stopped,
at which step), Optuna's parameter importances, the optimisation history and a parallel-coordinates plot.
``search_blocks`` returns the blocks the Markdown / PDF / LaTeX writers render."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lwgan.report.document import Block, Cell, Heading, Image, Paragraph, Table
from lwgan.vocab import TrialStatus

BASELINE_TRIAL = "trial-000"  # a search's first trial is the baseline (lwgan.study.monitor)
TOP = 5
TRIAL_COLUMNS = ["trial_id", "run_id", "status", "final_step", "objective"]


@dataclass(frozen=True)
class SearchTrials:
    metric: str
    mode: str
    distributions: tuple  # lwgan.study.schema.Distribution of the space's config keys
    trials: pd.DataFrame  # TRIAL_COLUMNS + one column per searched key, in trial order

    @property
    def keys(self) -> list[str]:
        return [d.name for d in self.distributions]


def search_trials(data) -> SearchTrials:
    """The search's trials from a collected study (lwgan.report.collect.StudyRuns)."""
    from lwgan.catalog.store import objective_of
    from lwgan.study.spec import parse_study

    metric, mode = objective_of(data.study_spec)
    spec = parse_study(data.study_spec, "study.yaml")
    dists = tuple(d for d in spec.search if not d.is_switch)
    last = (data.metrics[data.metrics["key"] == metric].sort_values("step").groupby("run_id")["value"].last()
            if not data.metrics.empty else pd.Series(dtype=float))
    runs = data.runs
    frame = pd.DataFrame({
        "trial_id": runs["trial_id"], "run_id": runs["run_id"], "status": runs["status"],
        "final_step": pd.to_numeric(runs.get("tag.lwgan.final_step", pd.Series(index=runs.index, dtype=object)), errors="coerce"),
        "objective": runs["run_id"].map(last).astype(float),
    })
    for d in dists:
        frame[d.name] = runs.get(f"param.{d.name}")
    return SearchTrials(metric, mode, dists, frame.sort_values("trial_id", kind="stable").reset_index(drop=True))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def completed(st: SearchTrials) -> pd.DataFrame:
    t = st.trials
    return t[(t["status"] == str(TrialStatus.COMPLETED)) & t["objective"].map(_finite)]


def ranked(st: SearchTrials) -> pd.DataFrame:
    return completed(st).sort_values("objective", ascending=st.mode != "max", kind="stable")


def fmt(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:.4g}" if _finite(x) else "–"


def best_table(st: SearchTrials, top: int = TOP) -> Table:
    """The baseline trial, then the ``top`` best completed trials: objective, its change, what each changes."""
    from lwgan.catalog.confirm import overrides

    t = st.trials.set_index("trial_id")
    base = t.loc[BASELINE_TRIAL] if BASELINE_TRIAL in t.index else None
    base_params = {k: base[k] for k in st.keys} if base is not None else {}
    rows = []
    if base is not None:
        rows.append([Cell(f"{BASELINE_TRIAL} (baseline)"), Cell(fmt(base["objective"])), Cell("–"),
                     Cell(", ".join(f"{k} = {fmt(base[k])}" for k in st.keys))])
    for trial_id, row in ranked(st).set_index("trial_id").head(top).iterrows():
        if trial_id == BASELINE_TRIAL:
            continue
        change = overrides({k: row[k] for k in st.keys}, base_params)
        delta = row["objective"] - base["objective"] if base is not None and _finite(base["objective"]) else math.nan
        rows.append([Cell(trial_id), Cell(fmt(row["objective"]), bold=True), Cell(("+" if delta > 0 else "") + fmt(delta)),
                     Cell(", ".join(f"{k} = {fmt(v)}" for k, v in change.items()) or "same as the baseline")])
    return Table(["Trial", st.metric, "vs baseline", "Configuration (changes against the baseline)"], rows,
                 caption=f"*Best completed trials by {st.metric} ({st.mode}); one seed each.*")


def pruning_table(st: SearchTrials) -> Table:
    """Trials by state; for the pruned ones, the steps at which ASHA stopped them."""
    t = st.trials
    rows = []
    for state in TrialStatus:
        sub = t[t["status"] == str(state)]
        if sub.empty:
            continue
        steps = ""
        if state == TrialStatus.PRUNED:
            counts = sub["final_step"].dropna().astype(int).value_counts().sort_index()
            steps = ", ".join(f"step {s}: {n}" for s, n in counts.items()) or "steps not recorded"
        rows.append([Cell(str(state)), Cell(str(len(sub))), Cell(steps or "–")])
    return Table(["State", "Trials", "Stopped at (pruned only)"], rows, caption="*Run accounting: ASHA's early stops by step.*")


def importances(st: SearchTrials) -> dict[str, float]:
    """Optuna's parameter importances (its default evaluator) over the completed trials; {} with < 2."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    done = completed(st)
    if len(done) < 2:
        return {}

    def dist(d):
        if d.kind == "categorical":
            return CategoricalDistribution(list(d.choices))
        if d.kind == "int":
            return IntDistribution(int(d.low), int(d.high), step=int(d.step or 1))
        return FloatDistribution(float(d.low), float(d.high), log=d.kind == "log_uniform")

    dists = {d.name: dist(d) for d in st.distributions}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if st.mode == "max" else "minimize")
    for row in done.itertuples(index=False):
        values = row._asdict()
        params = {k: values[k] for k in dists if values.get(k) is not None and _inside(dists[k], values[k])}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=float(row.objective)))
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # every trial the same, or too few distinct values
        return {}


def _inside(dist, value: Any) -> bool:
    """Whether an Optuna distribution holds ``value`` (a value outside, e.g. a conditional key at its default, is left out)."""
    if hasattr(dist, "choices"):
        return value in dist.choices
    return _finite(value) and dist.low <= float(value) <= dist.high


def history_figure(st: SearchTrials) -> Figure:
    """Each trial's objective in trial order (pruned and failed trials marked), and the best so far."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    t = st.trials.reset_index(drop=True)
    x = np.arange(len(t))
    for state, marker, color in ((TrialStatus.COMPLETED, "o", "tab:blue"), (TrialStatus.PRUNED, "x", "tab:gray"),
                                 (TrialStatus.DIVERGED, "v", "tab:red"), (TrialStatus.FAILED, "s", "tab:red")):
        mask = (t["status"] == str(state)).to_numpy() & t["objective"].map(_finite).to_numpy()
        if mask.any():
            ax.scatter(x[mask], t["objective"][mask], marker=marker, color=color, label=str(state), zorder=3)
    done = t["objective"].where((t["status"] == str(TrialStatus.COMPLETED)) & t["objective"].map(_finite))
    best = done.cummax() if st.mode == "max" else done.cummin()
    ax.step(x, best.ffill(), where="post", color="black", label="best so far (completed)")
    ax.set_xlabel("trial (in creation order; trial 0 = the baseline)")
    ax.set_ylabel(st.metric)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def parallel_figure(st: SearchTrials) -> Figure | None:
    """Parallel coordinates of the completed trials: one axis per searched key (log keys on a log scale,
    normalised to the space's range), and the objective; line colour = objective."""
    done = completed(st)
    if done.empty or not st.distributions:
        return None
    axes_names = st.keys + [st.metric]
    cols = []
    for d in st.distributions:
        v = done[d.name]
        if d.kind == "categorical":
            choices = list(d.choices)
            cols.append(v.map(lambda c: choices.index(c) / max(1, len(choices) - 1) if c in choices else np.nan))
        else:
            lo, hi = float(d.low), float(d.high)
            vals = v.astype(float)
            if d.kind == "log_uniform":
                vals, lo, hi = np.log10(vals), math.log10(lo), math.log10(hi)
            cols.append((vals - lo) / (hi - lo) if hi > lo else vals * 0)
    obj = done["objective"].astype(float)
    span = obj.max() - obj.min()
    cols.append((obj - obj.min()) / span if span > 0 else obj * 0 + 0.5)
    matrix = np.column_stack([np.asarray(c, dtype=float) for c in cols])
    fig = Figure(figsize=(7, 3.4))
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    shade = (obj - obj.min()) / span if span > 0 else obj * 0 + 0.5
    if st.mode != "max":
        shade = 1 - shade
    for row, s in zip(matrix, shade):
        ax.plot(range(len(axes_names)), row, color=cmap(float(s)), alpha=0.8, lw=1.2)
    ax.set_xticks(range(len(axes_names)), axes_names, rotation=20, fontsize=8)
    ax.set_yticks([0, 1], ["low", "high"])
    for i in range(len(axes_names)):
        ax.axvline(i, color="0.6", lw=0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Completed trials; colour: {st.metric} (yellow = best)", fontsize=9)
    return fig


def search_blocks(data, out: Path) -> list[Block]:
    """The search report's blocks; figures are written under ``out/figures``."""
    from lwgan.report.figures import save_figure

    st = search_trials(data)
    blocks: list[Block] = [
        Heading(f"Search report: {data.study}", 1),
        Paragraph(f"Parent run `{data.parent_run_id}`; {len(st.trials)} trials, objective {st.metric} ({st.mode}); "
                  f"space: {', '.join(d.describe() for d in st.distributions) or 'switches only'}. A search trial "
                  "runs one seed: its best configuration is a hypothesis; `lwgan-study confirm "
                  f"{data.parent_run_id}` runs the best ones against the baseline with several seeds."),
        Heading("Best trials"), best_table(st),
        Heading("Run accounting"), pruning_table(st),
    ]
    imp = importances(st)
    blocks.append(Heading("Parameter importances"))
    if imp:
        blocks.append(Table(["Parameter", "Importance"], [[Cell(k), Cell(f"{v:.3f}")] for k, v in imp.items()],
                            caption="*Optuna's parameter importances (PED-ANOVA, its default) over the completed trials; they sum to 1.*"))
    else:
        blocks.append(Paragraph("Not computed: fewer than 2 completed trials, or no spread in the objective."))
    figures = out / "figures"
    save_figure(history_figure(st), figures / "search_history.png")
    blocks += [Heading("Optimisation history"), Image("figures/search_history.png", caption="Objective per trial and the best so far.")]
    parallel = parallel_figure(st)
    if parallel is not None:
        save_figure(parallel, figures / "search_parallel.png")
        blocks += [Heading("Parallel coordinates"),
                   Image("figures/search_parallel.png", caption="Each line a completed trial, each axis a searched key (normalised to its range; log keys on a log scale).")]
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    st.trials.to_csv(data_dir / "search_trials.csv", index=False)
    return blocks


def is_search(study_spec: dict) -> bool:
    return bool(study_spec.get("search"))
