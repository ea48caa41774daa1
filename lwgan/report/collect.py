"""Read a study from MLflow: find its parent run, its trial runs and their metric histories, as pandas
frames (the schema is docs/INTERFACES.md, "MLflow schema"), and fetch the trials' sample grids.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from lwgan import vocab
from lwgan.config import ConfigError, FIELD_TYPES, coerce_value
from lwgan.errors import UserError

RUN_COLUMNS = ["run_id", "trial_id", "variant", "seed", "status", "diverged_step", "error", "start_time", "end_time"]
METRIC_COLUMNS = ["run_id", "variant", "seed", "key", "step", "value"]
SAMPLE_ARTIFACT = "samples/final.png"
OUTPUTS_ARTIFACT = "samples/final_outputs.npz"  # lwgan.train.samples.FINAL_OUTPUTS (kept torch-free here)
# MLflow's own run status -> trial status, used only when a trial lacks the lwgan.status tag.
_S = vocab.TrialStatus
MLFLOW_STATUS = {"FINISHED": _S.COMPLETED, "FAILED": _S.FAILED, "KILLED": _S.FAILED, "RUNNING": _S.RUNNING, "SCHEDULED": _S.RUNNING}
# The search filter of every study parent run.
_PARENT_FILTER = f"tags.`{vocab.Tag.ROLE}` = '{vocab.Role.STUDY}'"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StudyRuns:
    """Everything the report reads from the store."""

    study: str
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    parent_tags: dict[str, str]
    runs: pd.DataFrame  # one row per trial: RUN_COLUMNS + param.<key> + tag.<key>
    metrics: pd.DataFrame  # long: METRIC_COLUMNS
    study_spec: dict[str, Any] = field(default_factory=dict)  # the parent's study.yaml artifact, if any


# ----------------------------------------------------------------------------------
# Where the store is, which run is the study
# ----------------------------------------------------------------------------------


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The argument, else the project's store as lwgan.tracking finds it (``$MLFLOW_TRACKING_URI``,
    mlflow.env at the project root, else ``sqlite:///<project>/mlflow.db``)."""
    from lwgan.tracking import tracking_uri

    return explicit or tracking_uri()


def make_client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def study_name_from_yaml(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the study file ({err})") from None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{path}: the study file has no 'name:' key (a non-empty string naming the study)")
    return name.strip()


def _experiment_ids(client) -> list[str]:
    from mlflow.entities import ViewType

    return [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]


def _search_all(client, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None) -> list:
    runs: list = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _known_studies(client, experiment_ids: list[str]) -> list[str]:
    parents = _search_all(client, experiment_ids, _PARENT_FILTER)
    return sorted({r.data.tags.get(vocab.Tag.STUDY, "?") for r in parents})


def find_parent_run(client, study_ref: str, tracking_uri: str = ""):
    """The study's parent run from a study YAML path, a study name (latest parent run tagged
    ``lwgan.study=<name>``) or a parent run id. Raises UserError naming what was looked for."""
    ref = str(study_ref).strip()
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise UserError(f"study file not found: {path}")
        ref = study_name_from_yaml(path)
    experiment_ids = _experiment_ids(client)
    if _RUN_ID.match(ref):
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(ref)
        except MlflowException:
            run = None
        if run is not None:
            if run.data.tags.get(vocab.Tag.ROLE) != vocab.Role.STUDY:
                raise UserError(
                    f"run {ref} in {tracking_uri or 'the tracking store'} is not a study parent run "
                    f"(tag {vocab.Tag.ROLE} = {run.data.tags.get(vocab.Tag.ROLE)!r}, expected '{vocab.Role.STUDY}')"
                )
            return run
    escaped = ref.replace("'", "\\'")
    found = client.search_runs(
        experiment_ids,
        f"tags.`{vocab.Tag.STUDY}` = '{escaped}' and {_PARENT_FILTER}",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    ) if experiment_ids else []
    if not found:
        known = _known_studies(client, experiment_ids) if experiment_ids else []
        hint = f"; studies in this store: {', '.join(known)}" if known else "; the store holds no study runs"
        raise UserError(
            f"no study named {ref!r} (a parent run with tag {vocab.Tag.STUDY}={ref!r}) and no study run with that id "
            f"in {tracking_uri or 'the tracking store'}{hint}"
        )
    return found[0]


# ----------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------


def parse_param(text: Any) -> Any:
    """MLflow stores params as strings: turn 'True', 'None', '2e-4', '8' back into values."""
    if not isinstance(text, str):
        return text
    low = text.strip().lower()
    if low in ("none", "null", ""):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def typed_param(key: str, text: Any) -> Any:
    """A param read back through its config field's own type (``d_norm: none`` stays the string
    'none'; an optional field's 'null' is None); keys that are not config fields, and values the
    field's type refuses (a store written by another version), fall back to ``parse_param``."""
    if key in FIELD_TYPES:
        try:
            return coerce_value(key, text)
        except ConfigError:
            pass
    return parse_param(text)


def _int_or_none(text: Any) -> int | None:
    value = parse_param(text)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    return value if isinstance(value, int) else None


def run_row(run) -> dict[str, Any]:
    """One trial as a flat dict: core columns, ``param.<name>`` and ``tag.<name>``."""
    tags = dict(run.data.tags)
    params = dict(run.data.params)
    status = tags.get(vocab.Tag.STATUS) or MLFLOW_STATUS.get(run.info.status, _S.RUNNING)
    variant = tags.get(vocab.Tag.VARIANT) or params.get(vocab.RunParam.VARIANT) or "?"
    seed = _int_or_none(tags.get(vocab.Tag.SEED, params.get(vocab.RunParam.SEED)))
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "trial_id": tags.get(vocab.Tag.TRIAL_ID, run.info.run_id),
        "variant": variant,
        "seed": seed,
        "status": status,
        "diverged_step": _int_or_none(tags.get(vocab.Tag.DIVERGED_STEP)),
        "error": tags.get(vocab.Tag.ERROR) or None,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }
    row.update({f"param.{k}": typed_param(k, v) for k, v in params.items()})
    row.update({f"tag.{k}": v for k, v in tags.items() if not k.startswith("mlflow.")})
    return row


def runs_frame(runs: list) -> pd.DataFrame:
    rows = [run_row(r) for r in runs]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")
    frame["diverged_step"] = frame["diverged_step"].astype("Int64")
    extra = sorted(c for c in frame.columns if c not in RUN_COLUMNS)
    return frame[RUN_COLUMNS + extra].sort_values(["variant", "seed", "start_time"], kind="stable").reset_index(drop=True)


def metrics_frame(client, runs: pd.DataFrame, run_objects: dict[str, Any]) -> pd.DataFrame:
    """Long frame of every metric history of every trial (``get_metric_history`` per key), the trials
    in the order of ``runs`` (variant, seed, start): every sum over seeds then adds in seed order, so a
    rerun with the same values gives the same report to the last digit (run ids are random)."""
    parts = []
    for order, row in enumerate(runs.itertuples()):
        run = run_objects[row.run_id]
        for key in sorted(run.data.metrics):
            history = client.get_metric_history(row.run_id, key)
            if not history:
                continue
            parts.append(pd.DataFrame({
                "run_id": row.run_id, "variant": row.variant, "seed": row.seed, "key": key,
                "step": [m.step for m in history], "value": [m.value for m in history], "_order": order,
            }))
    if not parts:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    frame["seed"] = frame["seed"].astype("Int64")
    # A resumed trial may log a step twice: keep the last value written for each step.
    frame = frame.drop_duplicates(["run_id", "key", "step"], keep="last")
    return frame.sort_values(["_order", "key", "step"], kind="stable").reset_index(drop=True)[METRIC_COLUMNS]


def _study_spec(client, parent_run_id: str) -> dict[str, Any]:
    """The parent's ``study.yaml`` artifact as a dict ({} when absent or unreadable)."""
    import tempfile

    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        try:
            local = client.download_artifacts(parent_run_id, "study.yaml", tmp)
            data = yaml.safe_load(Path(local).read_text())
        except (MlflowException, OSError, yaml.YAMLError):
            return {}
    return data if isinstance(data, dict) else {}


def collect_study(study_ref: str, tracking_uri: str | None = None) -> StudyRuns:
    """Find the study and read its parent, trials and metric histories."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        # MLflow would silently create an empty store there; a report of nothing helps no one.
        raise UserError(f"no MLflow store at {uri} (looking for study {study_ref!r}); set MLFLOW_TRACKING_URI or run a study first")
    client = make_client(uri)
    parent = find_parent_run(client, study_ref, uri)
    parent_id = parent.info.run_id
    children = _search_all(client, _experiment_ids(client), f"tags.mlflow.parentRunId = '{parent_id}'")
    runs = runs_frame(children)
    metrics = metrics_frame(client, runs, {r.info.run_id: r for r in children})
    tags = dict(parent.data.tags)
    return StudyRuns(
        study=tags.get(vocab.Tag.STUDY) or parent.info.run_name or parent_id,
        parent_run_id=parent_id,
        experiment_id=parent.info.experiment_id,
        tracking_uri=uri,
        parent_tags=tags,
        runs=runs,
        metrics=metrics,
        study_spec=_study_spec(client, parent_id),
    )


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """MLflow draws a progress bar per download; switch it off for the report's few small files."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def download_sample(tracking_uri: str, run_id: str, dst: Path) -> Path | None:
    """Copy a trial's ``samples/final.png`` to ``dst``; None when the run has no such artifact."""
    return download_artifact(tracking_uri, run_id, SAMPLE_ARTIFACT, dst)


def download_artifact(tracking_uri: str, run_id: str, artifact: str, dst: Path) -> Path | None:
    """Copy the file ``artifact`` of a run to ``dst``; None when the run has no such artifact."""
    import tempfile

    from mlflow.exceptions import MlflowException

    client = make_client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        try:
            local = Path(client.download_artifacts(run_id, artifact, tmp))
        except (MlflowException, OSError):
            return None
        if not local.is_file():
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
    return dst


def json_tag(tags: dict[str, str], key: str) -> dict[str, Any]:
    """A JSON-valued tag as a dict ({} when absent or not JSON)."""
    try:
        value = json.loads(tags.get(key, "") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
