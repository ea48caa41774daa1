"""What the tracking store holds, for people: every study's parent runs with their trial counts by state
(``lwgan-study ls``) and one parent run's trials, best trial and verdicts (``lwgan-study show``).
Reads the schema of docs/INTERFACES.md with MlflowClient; writes nothing."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from lwgan.errors import UserError
from lwgan.vocab import BASELINE, Role, Tag, TrialStatus

REPORT_ARTIFACT = "report"  # the folder the runner logs the report into, on the parent run
REPORT_FILE = "report.md"
CLAIMS_ARTIFACT = "claims.json"  # the verdicts table lwgan.report.verdicts.publish logs on the parent run
COUNT_COLUMNS = [str(s) for s in TrialStatus]
LS_COLUMNS = ["study", "run_id", "started", "status", "profile", "git_commit", "trials", *COUNT_COLUMNS,
              "best_trial", "best_value", "report"]
TRIAL_COLUMNS = ["trial_id", "variant", "seed", "status", "final_step", "objective", "run_id", "error"]


def open_store(tracking_uri: str | None = None):
    """(uri, MlflowClient) for ``tracking_uri`` or the project's store; UserError when a sqlite store is absent
    (MLflow would silently create an empty one)."""
    from lwgan.report.collect import make_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise UserError(f"no MLflow store at {uri}: run a study first (lwgan-study run), or set MLFLOW_TRACKING_URI")
    return uri, make_client(uri)


def _started(millis: int | None) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _report_location(client, run) -> str:
    """Where the parent run's logged report is (its artifact path as a local path or URI), or ''."""
    from mlflow.exceptions import MlflowException

    try:
        files = [a.path for a in client.list_artifacts(run.info.run_id, REPORT_ARTIFACT)]
    except (MlflowException, OSError):
        return ""
    wanted = f"{REPORT_ARTIFACT}/{REPORT_FILE}"
    if wanted not in files:
        return ""
    uri = f"{run.info.artifact_uri.rstrip('/')}/{wanted}"
    return uri[len("file://"):] if uri.startswith("file://") else uri


def trial_counts(children: list) -> dict[str, int]:
    """Trials by state (every TrialStatus, 0 when none); a trial without the status tag counts by MLflow's status."""
    from lwgan.report.collect import MLFLOW_STATUS

    counts = {s: 0 for s in COUNT_COLUMNS}
    for run in children:
        state = run.data.tags.get(Tag.STATUS) or MLFLOW_STATUS.get(run.info.status, str(TrialStatus.RUNNING))
        counts[state] = counts.get(state, 0) + 1
    return counts


def list_study_runs(tracking_uri: str | None = None, study: str | None = None) -> pd.DataFrame:
    """One row per study parent run (newest first within a study, studies by name): LS_COLUMNS."""
    from lwgan.report.collect import _experiment_ids, _search_all

    uri, client = open_store(tracking_uri)
    experiments = _experiment_ids(client)
    if not experiments:
        return pd.DataFrame(columns=LS_COLUMNS)
    role = f"tags.`{Tag.ROLE}` = '{Role.STUDY}'"
    if study:
        role += f" and tags.`{Tag.STUDY}` = '{study.replace(chr(39), chr(92) + chr(39))}'"
    parents = _search_all(client, experiments, role, order_by=["attributes.start_time DESC"])
    trials = _search_all(client, experiments, f"tags.`{Tag.ROLE}` = '{Role.TRIAL}'") if parents else []
    by_parent: dict[str, list] = {}
    for run in trials:
        by_parent.setdefault(run.data.tags.get(Tag.PARENT_RUN_ID, ""), []).append(run)
    rows = []
    for run in parents:
        tags = run.data.tags
        counts = trial_counts(by_parent.get(run.info.run_id, []))
        best_value = tags.get(Tag.BEST_VALUE)
        rows.append({
            "study": tags.get(Tag.STUDY, run.info.run_name), "run_id": run.info.run_id, "started": _started(run.info.start_time),
            "status": tags.get(Tag.STATUS, run.info.status.lower()), "profile": tags.get(Tag.PROFILE, ""),
            "git_commit": tags.get(Tag.GIT_COMMIT, ""), "trials": sum(counts.values()), **counts,
            "best_trial": tags.get(Tag.BEST_TRIAL, ""), "best_value": float(best_value) if best_value else math.nan,
            "report": _report_location(client, run),
        })
    frame = pd.DataFrame(rows, columns=LS_COLUMNS)
    return frame.sort_values(["study", "started"], ascending=[True, False], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class StudyDetail:
    """One parent run as ``show`` prints it."""

    study: str
    run_id: str
    tracking_uri: str
    parent_tags: dict[str, str]
    started: str
    objective_metric: str
    objective_mode: str
    trials: pd.DataFrame  # TRIAL_COLUMNS
    best: dict[str, Any] | None  # trial_id, variant, seed, objective (completed trials only)
    verdicts: pd.DataFrame | None  # as the parent run records them; None when it has none


def objective_of(raw: dict[str, Any]) -> tuple[str, str]:
    """A study file's objective (metric, mode), with the schema's defaults; read leniently from an older file."""
    from lwgan.study.spec import Objective, StudyError, parse_study

    try:
        objective = parse_study(raw, "study.yaml").objective if raw else Objective()
    except StudyError:
        obj = raw.get("objective") if isinstance(raw.get("objective"), dict) else {}
        objective = Objective(str(obj.get("metric", Objective.metric)), str(obj.get("mode", Objective.mode)))
    return objective.metric, objective.mode


def _objective(client, run_id: str) -> tuple[str, str]:
    """The study's objective from the parent's study.yaml artifact; the schema's default otherwise."""
    from lwgan.report.collect import _study_spec

    return objective_of(_study_spec(client, run_id))


def verdict_tags(tags: dict[str, str]) -> dict[str, str]:
    """``{claim id: "verdict: estimate ..."}`` from the parent's ``lwgan.claim.<id>`` tags (lwgan.report.verdicts)."""
    return {k[len(Tag.CLAIM_PREFIX):]: v for k, v in sorted(tags.items()) if k.startswith(Tag.CLAIM_PREFIX)}


def read_verdicts(client, run) -> pd.DataFrame | None:
    """The claims' verdicts recorded on the parent run: the full table (``claims.json``, an MLflow table
    artifact: columns + data) when present, else one row per ``lwgan.claim.<id>`` tag (id, verdict, detail);
    None when the run has none."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from lwgan.report.collect import _quiet_downloads

    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        try:
            local = Path(client.download_artifacts(run.info.run_id, CLAIMS_ARTIFACT, tmp))
            data = json.loads(local.read_text())
            if isinstance(data, dict) and "columns" in data and "data" in data:
                return pd.DataFrame(data["data"], columns=data["columns"])
        except (MlflowException, OSError, json.JSONDecodeError):
            pass
    tags = verdict_tags(dict(run.data.tags))
    if not tags:
        return None
    rows = [{"id": cid, "verdict": text.partition(":")[0].strip(), "detail": text.partition(":")[2].strip()}
            for cid, text in tags.items()]
    return pd.DataFrame(rows, columns=["id", "verdict", "detail"])


def study_detail(ref: str, tracking_uri: str | None = None) -> StudyDetail:
    """A parent run (``ref``: a run id, a study name = its latest run, or a study YAML) with its trials."""
    from lwgan.report.collect import _experiment_ids, _search_all, find_parent_run, run_row

    uri, client = open_store(tracking_uri)
    parent = find_parent_run(client, ref, uri)
    pid = parent.info.run_id
    metric, mode = _objective(client, pid)
    children = _search_all(client, _experiment_ids(client), f"tags.`{Tag.PARENT_RUN_ID}` = '{pid}'")
    rows = []
    for run in children:
        row = run_row(run)
        step = run.data.tags.get(Tag.FINAL_STEP)
        rows.append({"trial_id": row["trial_id"], "variant": row["variant"], "seed": row["seed"], "status": row["status"],
                     "final_step": int(step) if step and step.isdigit() else None,
                     "objective": run.data.metrics.get(metric, math.nan), "run_id": row["run_id"],
                     "error": row["error"] or ""})
    trials = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    if not trials.empty:
        trials["seed"] = trials["seed"].astype("Int64")
        trials["final_step"] = trials["final_step"].astype("Int64")
        order = trials["variant"].map(lambda v: (v != BASELINE, v))
        trials = trials.assign(_o=order).sort_values(["_o", "seed", "trial_id"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return StudyDetail(
        study=parent.data.tags.get(Tag.STUDY, parent.info.run_name), run_id=pid, tracking_uri=uri,
        parent_tags=dict(parent.data.tags), started=_started(parent.info.start_time),
        objective_metric=metric, objective_mode=mode, trials=trials,
        best=best_trial(trials, mode), verdicts=read_verdicts(client, parent),
    )


def best_trial(trials: pd.DataFrame, mode: str) -> dict[str, Any] | None:
    """The completed trial with the best finite objective (max or min by ``mode``), as the runner picks it."""
    done = trials[(trials["status"] == str(TrialStatus.COMPLETED)) & trials["objective"].map(
        lambda v: isinstance(v, (int, float)) and math.isfinite(v))] if not trials.empty else trials
    if done.empty:
        return None
    idx = done["objective"].astype(float).idxmax() if mode == "max" else done["objective"].astype(float).idxmin()
    row = done.loc[idx]
    return {"trial_id": row["trial_id"], "variant": row["variant"], "seed": row["seed"], "objective": float(row["objective"]),
            "run_id": row["run_id"]}
