"""``lwgan-study confirm RUN_ID``: a search's winner on one seed is a hypothesis, not a result. From a
finished search run, write an ablation study of its top K configurations (each as a variant: what it
changes against the search's baseline trial, on the method's searchable keys) against the baseline with
N seeds, keeping the search's base, dataset, profiles and objective; then run it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lwgan.errors import UserError
from lwgan.vocab import TrialStatus

BASELINE_TRIAL = "trial-000"  # a search's first trial is the baseline (lwgan.study.monitor)
KEPT_KEYS = ("description", "dataset", "base", "resources", "profiles", "default_profile", "budget")
DEFAULT_TOP = 3
DEFAULT_SEEDS = 3


@dataclass(frozen=True)
class Confirmation:
    study: dict[str, Any]  # the ablation study, as YAML data
    picked: tuple[tuple[str, float], ...]  # (trial id, objective) of the top trials, best first
    search_run_id: str


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    return a == b


def overrides(trial_params: dict[str, Any], baseline_params: dict[str, Any]) -> dict[str, Any]:
    """What a trial changes against the baseline trial, on the searchable keys only (values as logged)."""
    from lwgan.study.schema import SEARCHABLE_KEYS

    return {k: trial_params[k] for k in SEARCHABLE_KEYS
            if k in trial_params and not _close(trial_params[k], baseline_params.get(k))}


def confirmation_study(ref: str, top: int = DEFAULT_TOP, seeds: int = DEFAULT_SEEDS, tracking_uri: str | None = None) -> Confirmation:
    """The ablation study confirming the top ``top`` completed trials of search run ``ref`` with ``seeds`` seeds."""
    from lwgan.catalog.store import open_store, study_detail
    from lwgan.report.collect import _study_spec, parse_param

    if top < 1 or seeds < 1:
        raise UserError(f"confirm: --top and --seeds must be >= 1 (got --top {top}, --seeds {seeds})")
    detail = study_detail(ref, tracking_uri)
    _, client = open_store(tracking_uri)
    raw = _study_spec(client, detail.run_id)
    if not raw.get("search"):
        raise UserError(f"confirm: run {detail.run_id} (study {detail.study!r}) is not a search (its study file has no "
                        "'search:' space); confirm takes a search's parent run id (lwgan-study ls)")
    trials = detail.trials
    base_rows = trials[trials["trial_id"] == BASELINE_TRIAL]
    if base_rows.empty:
        raise UserError(f"confirm: search run {detail.run_id} has no baseline trial {BASELINE_TRIAL}")
    params = {t: {k: parse_param(v) for k, v in client.get_run(rid).data.params.items()}
              for t, rid in zip(trials["trial_id"], trials["run_id"])}
    done = trials[(trials["status"] == str(TrialStatus.COMPLETED)) & (trials["trial_id"] != BASELINE_TRIAL)]
    done = done[done["objective"].map(lambda v: isinstance(v, float) and math.isfinite(v))]
    ranked = done.sort_values("objective", ascending=detail.objective_mode != "max", kind="stable")
    variants: dict[str, dict[str, Any]] = {}
    picked = []
    for row in ranked.itertuples():
        change = overrides(params[row.trial_id], params[BASELINE_TRIAL])
        if not change or change in variants.values():  # the baseline again, or a configuration already picked
            continue
        variants[row.trial_id.replace("trial-", "T")] = change
        picked.append((row.trial_id, float(row.objective)))
        if len(picked) == top:
            break
    if not variants:
        raise UserError(f"confirm: search run {detail.run_id} has no completed trial with a finite {detail.objective_metric} "
                        "that differs from the baseline")
    study = {"name": f"{detail.study}-confirm",
             **{k: raw[k] for k in KEPT_KEYS if k in raw},
             "seeds": seeds, "variants": variants,
             "objective": raw.get("objective") or {"metric": detail.objective_metric, "mode": detail.objective_mode}}
    study["description"] = (f"Confirmation of search {detail.study} (parent run {detail.run_id}): its top {len(picked)} "
                            f"trials by {detail.objective_metric} against the baseline, {seeds} seeds each.")
    budget = dict(study.get("budget") or {})
    budget.pop("max_trials", None)
    budget.pop("time_budget_s", None)
    study["budget"] = budget or None
    if study["budget"] is None:
        del study["budget"]
    return Confirmation(study, tuple(picked), detail.run_id)


def write_study(conf: Confirmation, path: Path, force: bool = False) -> Path:
    """The confirmation study as YAML at ``path`` (validated first); refuses to overwrite unless ``force``."""
    from lwgan.study.spec import parse_study

    parse_study(conf.study, str(path))  # a study this package cannot run is an error here, not after the write
    if path.exists() and not force:
        raise UserError(f"{path}: already exists; pass --force to overwrite it or --out another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Written by `lwgan-study confirm {conf.search_run_id}`: the search's top trials "
              + ", ".join(f"{t} ({v:.4g})" for t, v in conf.picked) + "\n")
    path.write_text(header + yaml.safe_dump(conf.study, sort_keys=False), encoding="utf-8")
    return path
