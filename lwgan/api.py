"""The notebook API: studies in the tracking store as pandas DataFrames.

    from lwgan import api
    api.studies()                      # every parent run of every study (what `lwgan-study ls` prints)
    runs = api.runs("ensembles")       # trials of the latest run: one row each, params as param.<key>
    m = api.metrics(run_id)            # long: run_id, variant, seed, key, step, value
    f = api.final_values("ensembles")  # per trial and metric, the report's final-window mean
    api.verdicts("ensembles")          # the claims' verdicts on the parent run (None if not recorded)
    api.compare(run_a, run_b)          # `lwgan-study compare` as a DataFrame

A study reference is a parent run id, a study name (its latest run) or a study YAML; ``tracking_uri``
defaults to the project's store (mlflow.env / MLFLOW_TRACKING_URI, found from any subfolder).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from lwgan.catalog.compare import WINDOW
from lwgan.catalog.store import StudyDetail
from lwgan.report.collect import StudyRuns
from lwgan.vocab import TrialStatus


def studies(tracking_uri: str | None = None, study: str | None = None) -> pd.DataFrame:
    """One row per study parent run: study, run_id, started, status, profile, git_commit, trial counts by state,
    best trial, report location."""
    from lwgan.catalog.store import list_study_runs

    return list_study_runs(tracking_uri, study)


def load(ref: str, tracking_uri: str | None = None) -> StudyRuns:
    """Everything the report reads: parent tags, ``runs`` (one row per trial) and ``metrics`` (long histories)."""
    from lwgan.report.collect import collect_study

    return collect_study(ref, tracking_uri)


def runs(ref: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """The trials of a parent run: run_id, trial_id, variant, seed, status, ..., ``param.<key>``, ``tag.<key>``."""
    return load(ref, tracking_uri).runs


def metrics(ref: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """Every metric history of every trial, long: run_id, variant, seed, key, step, value."""
    return load(ref, tracking_uri).metrics


def final_values(ref: str, tracking_uri: str | None = None, window: float = WINDOW, completed_only: bool = True) -> pd.DataFrame:
    """Per trial and metric the mean over the final ``window`` of its logged points (what Table 1 compares)."""
    from lwgan.report.stats import final_values as finals

    data = load(ref, tracking_uri)
    m = data.metrics
    if completed_only:
        m = m[m["run_id"].isin(data.runs.loc[data.runs["status"] == str(TrialStatus.COMPLETED), "run_id"])]
    return finals(m, window)


def show(ref: str, tracking_uri: str | None = None) -> StudyDetail:
    """A parent run's trials (with states and the objective), best trial and verdicts (``lwgan-study show``)."""
    from lwgan.catalog.store import study_detail

    return study_detail(ref, tracking_uri)


def verdicts(ref: str, tracking_uri: str | None = None) -> pd.DataFrame | None:
    """The claims' verdicts recorded on the parent run, or None when it has none."""
    return show(ref, tracking_uri).verdicts


def compare(a: str, b: str, tracking_uri: str | None = None, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Run A against run B per variant and metric (``lwgan-study compare``): means, A - B with its interval, %, p."""
    from lwgan.catalog.compare import compare_runs

    return compare_runs(a, b, tracking_uri, metrics).table
