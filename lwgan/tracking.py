"""MLflow tracking of studies (the schema of docs/INTERFACES.md): where the store is (``mlflow.env`` /
environment), one parent run per study, one nested child run per trial, batched metrics, artifacts,
(``lwgan-study ui`` is lwgan.tracking_commands). Only the driver writes (one writer); mlflow is imported lazily.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from lwgan import vocab
from lwgan.errors import UserError
from lwgan.store import check_store
from lwgan.paths import PROJECT_MARKER, project_dir

ENV_FILE = PROJECT_MARKER
# MLflow's own default store: a plain `mlflow ui` started in the project root opens this same file.
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "lwgan-study"
# MLflow's own variable names; LWGAN_EXPERIMENT is read after MLFLOW_EXPERIMENT_NAME (older mlflow.env files).
URI_VAR = "MLFLOW_TRACKING_URI"
EXPERIMENT_VARS = ("MLFLOW_EXPERIMENT_NAME", "LWGAN_EXPERIMENT")
BATCH_LIMIT = 1000  # MLflow's log_batch takes at most 1000 metrics per call
# (file under the trial's folder, artifact folder); samples/final_outputs.npz: lwgan.train.samples.FINAL_OUTPUTS
TRIAL_ARTIFACTS = (("config.yaml", ""), ("run_info.json", ""), ("samples/final.png", "samples"),
                   ("samples/final_outputs.npz", "samples"))
_S, _T = vocab.TrialStatus, vocab.Tag
MLFLOW_RUN_STATUS = {_S.COMPLETED: "FINISHED", _S.DIVERGED: "FINISHED", _S.PRUNED: "FINISHED", _S.FAILED: "FAILED", _S.RUNNING: "RUNNING"}


# ----------------------------------------------------------------------------------
# Where the store is
# ----------------------------------------------------------------------------------


def read_env_file(path: str | Path) -> dict[str, str]:
    """A dotenv file, parsed by python-dotenv (``#`` comments, ``export``, quotes); {} when absent. A line
    that is not ``KEY=VALUE`` is an error naming the file and line."""
    from dotenv.main import parse_stream

    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    with open(path) as stream:
        for binding in parse_stream(stream):
            if binding.error or (binding.key is not None and binding.value is None):
                raise UserError(f"{path}:{binding.original.line}: expected KEY=VALUE, got {binding.original.string.strip()!r}")
            if binding.key is not None:
                out[binding.key] = binding.value
    return out


def _setting(names: tuple[str, ...], default: str, root: Path | None = None) -> tuple[str, Path]:
    """The first of ``names`` set in the environment (relative to the current folder), else in the project
    root's mlflow.env (relative to the root), else ``default``."""
    root = root or project_dir()
    for name in names:
        if os.environ.get(name):
            return os.environ[name], Path.cwd()
    values = read_env_file(root / ENV_FILE)
    for name in names:
        if values.get(name):
            return values[name], root
    return default, root


def resolve_sqlite_uri(uri: str, root: Path) -> str:
    """``sqlite:///relative.db`` -> ``sqlite:////<root>/relative.db``; other URIs unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + (root / uri[len(prefix):]).resolve().as_posix()
    return uri


def tracking_uri(root: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``mlflow.env`` at the project root, else ``sqlite:///<root>/mlflow.db``."""
    uri, base = _setting((URI_VAR,), DEFAULT_URI, root)
    return resolve_sqlite_uri(uri, base)


def experiment_name(root: Path | None = None) -> str:
    """``$MLFLOW_EXPERIMENT_NAME``, else mlflow.env's, else ``lwgan-study`` (LWGAN_EXPERIMENT still read)."""
    return _setting(EXPERIMENT_VARS, DEFAULT_EXPERIMENT, root)[0]


def artifact_location(uri: str) -> str | None:
    """For a SQLite store, ``mlruns/`` beside the database file (MLflow's default is ``./mlruns`` under whatever
    folder the first run started in); None (the server's or MLflow's default) for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix):]).resolve().parent / "mlruns").as_uri()


def _mlflow_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial MLflow database tables" chatter
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _as_number(value: Any) -> float | None:
    """A float (NaN / inf kept: MLflow stores them), or None for a non-numeric value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def unlogged_history(history: Iterable[tuple[int, Mapping[str, Any]]], logged_through: int | None
                     ) -> tuple[list[tuple[int, Mapping[str, Any]]], int]:
    """The points of ``history`` not yet in MLflow, and the last step logged once they are sent.

    ``logged_through`` is the last step a run already logged (None or -1: none; step 0 is the eval before
    training). A resumed trial or ``train --resume`` recomputes steps from its checkpoint that an earlier
    attempt had logged: they are dropped here, so each step reaches MLflow once. The one rule for the
    study driver (lwgan.study.monitor) and ``lwgan-study train --track`` (lwgan.tracked_train)."""
    done = -1 if logged_through is None else int(logged_through)
    new = [(step, metrics) for step, metrics in history if int(step) > done]
    return new, max([done] + [int(step) for step, _ in new])


# ----------------------------------------------------------------------------------
# The writer
# ----------------------------------------------------------------------------------


class StudyTracker:
    """Writes a study to MLflow from the driver: parent run, child runs, metrics, tags, artifacts."""

    def __init__(self, uri: str | None = None, experiment: str | None = None):
        _mlflow_env()
        from mlflow.tracking import MlflowClient

        _mlflow_env()  # again: importing mlflow resets its logger to INFO
        self.uri = uri or tracking_uri()
        self.experiment = experiment or experiment_name()
        check_store(self.uri)  # seconds, not MLflow's minutes of retries; a new SQLite file created under a lock
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._ensure_experiment()

    def buffer_in(self, folder: Path, notify=None):
        """From now on keep the writes the store could not take in ``folder`` (the study's run folder) and
        send them when it is back (lwgan.tracking_backlog); sends what an earlier driver left there first."""
        from lwgan.tracking_backlog import BufferedClient

        if not isinstance(self.client, BufferedClient):
            self.client = BufferedClient(self.client, Path(folder), notify, self.uri)
        left = self.client.pending()
        if left and self.client.flush(force=True) and notify:
            notify(f"sent {left} tracking writes an earlier run of this study had kept in {folder}")
        return self.client

    def _ensure_experiment(self) -> str:
        """Create the store and experiment here, before any trial runs (concurrent creation races)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment_by_name(self.experiment)
        except MlflowException as err:
            raise UserError(f"MLflow store {self.uri}: cannot open it ({str(err).splitlines()[0]})") from None
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise UserError(f"MLflow store {self.uri}: experiment {self.experiment!r} is deleted; restore it or set MLFLOW_EXPERIMENT_NAME")
            return found.experiment_id
        try:
            # Without this tag MLflow 3's UI opens the experiment in GenAI mode (an empty Traces page).
            return self.client.create_experiment(self.experiment, artifact_location=artifact_location(self.uri),
                                                 tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException:  # created meanwhile by another driver
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    # -- parent ------------------------------------------------------------------
    def start_study(self, study: str, tags: Mapping[str, str], study_yaml: str, run_id: str | None = None) -> str:
        """The study's parent run: a new one, or ``run_id`` reopened on --resume."""
        if run_id:
            return self._reopen(run_id)
        run = self.client.create_run(
            self.experiment_id, run_name=study,
            tags={_T.ROLE: vocab.Role.STUDY, _T.STUDY: study, _T.STATUS: vocab.StudyStatus.RUNNING, **dict(tags)},
        )
        self._log_text(run.info.run_id, study_yaml, "study.yaml")
        return run.info.run_id

    def _reopen(self, run_id: str) -> str:
        """A parent or trial run continued on --resume: running again, no duplicate run."""
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, _T.STATUS, _S.RUNNING)
        return run_id

    def end_study(self, run_id: str, counts: Mapping[str, int], finished: bool, best: Mapping[str, Any] | None = None) -> None:
        tags = {_T.trials_count(state): str(n) for state, n in counts.items()}
        tags[_T.STATUS] = vocab.StudyStatus.COMPLETED if finished else vocab.StudyStatus.INTERRUPTED
        if best:
            tags[_T.BEST_TRIAL] = str(best.get("trial_id"))
            tags[_T.BEST_VALUE] = str(best.get("value"))
        self._set_tags(run_id, tags)
        self.client.set_terminated(run_id, "FINISHED" if finished else "KILLED")

    def log_folder(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    # -- children ----------------------------------------------------------------
    def start_trial(self, parent_id: str, trial_id: str, variant: str, seed: int, params: Mapping[str, Any],
                    run_id: str | None = None) -> str:
        """A trial's child run (params: every flat config key, plus variant and seed); reopened when ``run_id``."""
        from mlflow.entities import Param

        if run_id:
            return self._reopen(run_id)
        run = self.client.create_run(
            self.experiment_id, run_name=trial_id,
            tags={_T.PARENT_RUN_ID: parent_id, _T.ROLE: vocab.Role.TRIAL, _T.TRIAL_ID: trial_id,
                  _T.VARIANT: variant, _T.SEED: str(seed), _T.STATUS: _S.RUNNING},
        )
        flat = {**{k: ("null" if v is None else v) for k, v in params.items()}, vocab.RunParam.VARIANT: variant, vocab.RunParam.SEED: seed}
        items = [Param(str(k), str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params per call
            self.client.log_batch(run.info.run_id, params=items[i:i + 100])
        return run.info.run_id

    def log_metrics(self, run_id: str, history: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
        """Log ``[(step, {name: value})]`` in batches of 1000; returns how many points were written."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [
            Metric(str(key), value, now, int(step))
            for step, metrics in history
            for key, raw in metrics.items()
            if (value := _as_number(raw)) is not None
        ]
        for i in range(0, len(points), BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=points[i:i + BATCH_LIMIT])
        return len(points)

    def trial_info_tags(self, run_id: str, info: Mapping[str, Any]) -> None:
        """Tags from the Trainer's run info: backbones, body model, dataset, device."""
        backbones = {str(b.get("name")): str(b.get("status")) for b in info.get("backbones", []) if isinstance(b, Mapping)}
        tags = {
            _T.BACKBONE_STATUS: json.dumps(backbones, sort_keys=True),
            _T.BODY_MODEL: str(info.get("body_model", {}).get("path", "")),
            _T.BODY_MODEL_KIND: str(info.get("body_model", {}).get("kind", "")),
            _T.DATASET: str(info.get("dataset", {}).get("path", "")),
            _T.DATASET_KIND: str(info.get("dataset", {}).get("kind", "")),
            _T.DEVICE: str(info.get("device", "")),
        }
        if info.get("precision"):
            reason = info.get("precision_reason")
            tags[_T.PRECISION] = str(info["precision"]) + (f" ({reason})" if reason else "")
            if info.get("cuda_graphs"):  # at bf16, graphs add D's weight gradients in fp32 (lwgan.train.graphs)
                why = info.get("cuda_graphs_reason")
                tags[_T.PRECISION] += "; CUDA graphs" + (f" ({why})" if why else "")
        self._set_tags(run_id, tags)

    def end_trial(self, run_id: str, status: str, out_dir: Path | None, step: int | None = None, error: str | None = None) -> None:
        """Final tags, the trial's artifacts (from its local output folder), and the MLflow run status."""
        tags = {_T.STATUS: status}
        if status == _S.DIVERGED and step is not None:
            tags[_T.DIVERGED_STEP] = str(step)
        if error:
            tags[_T.ERROR] = error[:4900]
        if step is not None:
            tags[_T.FINAL_STEP] = str(step)
        self._set_tags(run_id, tags)
        if out_dir is not None:
            for rel, artifact_path in TRIAL_ARTIFACTS:
                path = Path(out_dir) / rel
                if path.is_file():
                    self.client.log_artifact(run_id, str(path), artifact_path or None)
        self.client.set_terminated(run_id, MLFLOW_RUN_STATUS.get(status, "FINISHED"))

    # -- helpers -----------------------------------------------------------------
    def _set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def _log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)


def study_run_tags(study_file: str, profile: str, baseline: Mapping[str, Any], versions: Mapping[str, str],
                   commit: str | None) -> dict[str, str]:
    """The parent run's descriptive tags (docs/INTERFACES.md)."""
    return {
        _T.PROFILE: profile,
        _T.GIT_COMMIT: commit or "unknown",
        **({_T.MLFLOW_GIT_COMMIT: commit} if commit else {}),  # MLflow's UI shows it on the run's page
        _T.VERSIONS: json.dumps(dict(versions), sort_keys=True),
        _T.DATASET_KIND: "iper" if baseline.get("data_root") else "synthetic",
        _T.BODY_MODEL_KIND: "smpl" if baseline.get("body_model") else "generated",
        _T.STUDY_FILE: study_file,
    }

