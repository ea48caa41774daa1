"""The driver's Tune callback, the study's one writer: turns trial events into MLflow child runs (batched
metrics, tags, artifacts), the study state file (named trial states) and the progress view."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from lwgan import vocab
from lwgan.errors import DiskFullError
from lwgan.fsutil import is_no_space
from lwgan.study.progress import StudyProgress, estimate_eta, status_line
from lwgan.study.spec import SearchObjective
from lwgan.study.outcome import TrialOutcome, record_outcome
from lwgan.study.state import StudyState, TrialRecord
from lwgan.study.trainable import TrialContext, trial_config
from lwgan.tracking import unlogged_history

S, K = vocab.TrialStatus, vocab.TuneKey
SEARCH_VARIANT = "search"  # the variant of every trial of a search study


def error_last_line(text: str | None) -> str:
    """The last non-empty line of a traceback (what a reader needs first)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def trial_name(trial) -> str:
    return trial.custom_trial_name or trial.trial_id


HEARTBEAT_S = 30.0  # seconds between "running: ... step N/M" lines
DISK_FULL_MARK = DiskFullError.__name__  # how a trial's traceback shows its checkpoint hit a full disk


def full_disk_stops_study(hook):
    """A Tune hook that hits a full disk (the driver's own write, or a trial's) stops the study: the error is
    kept in ``monitor.fatal`` (Tune re-raises callback errors as a TuneError holding only a traceback's
    text; the runner raises ``fatal`` instead) and raised, before the trial's result counts as handled."""

    @functools.wraps(hook)
    def guarded(self, *args, **kwargs):
        try:
            return hook(self, *args, **kwargs)
        except DiskFullError as err:
            self.fatal = self.fatal or err
            raise
        except Exception as err:
            if not is_no_space(err):
                raise
            from lwgan.study.runner import driver_out_of_space

            self.fatal = self.fatal or driver_out_of_space(err, self.state_path.parent, self.tracking_uri)
            raise self.fatal from err

    return guarded


def trial_disk_full(trial_id: str, text: str | None) -> DiskFullError | None:
    """The DiskFullError a trial died of (its checkpoint write, lwgan.train.checkpoint), from its traceback text."""
    if not text or DISK_FULL_MARK not in text:
        return None
    line = next((ln.strip() for ln in reversed(text.splitlines()) if DISK_FULL_MARK in ln), error_last_line(text))
    message = line.split(f"{DISK_FULL_MARK}: ", 1)[-1].split("; free space there", 1)[0]
    return DiskFullError(f"trial {trial_id}: {message}")


class StudyMonitor(Callback):
    """Tune pickles its callbacks with the experiment (and restores them on resume): this one keeps only
    paths and settings, and opens the state file, the MLflow client and the output stream when used."""

    def __init__(self, state_path: Path, tracking_uri: str, experiment: str, context: TrialContext, objective: SearchObjective,
                 concurrency: int, total: int | None, time_budget_s: float | None = None, stream=None):
        self.state_path = Path(state_path)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.context = context
        self.objective = objective
        self.concurrency = max(1, concurrency)
        self.total = total
        self.time_budget_s = time_budget_s
        self.stream = stream
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.begun: dict[str, float] = {}
        self._state: StudyState | None = None
        self._tracker = None
        self._progress: StudyProgress | None = None
        self._steps: dict[str, int] = {}  # heartbeat: each running trial's last step and total
        self._totals: dict[str, int] = {}
        self._last_beat = self.started
        self.fatal: DiskFullError | None = None  # set when a full disk stopped the study (full_disk_stops_study)

    def __getstate__(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.update(_state=None, _tracker=None, _progress=None, stream=None, begun={}, _steps={}, _totals={}, fatal=None)
        return data

    def setup(self, **info: Any) -> None:
        self.started = self._last_beat = time.monotonic()
        self._state = StudyState.load(self.state_path)  # the driver's latest view (resume may have reset trials)

    @property
    def state(self) -> StudyState:
        if self._state is None:
            self._state = StudyState.load(self.state_path)
        return self._state

    def use_tracker(self, tracker) -> None:
        """Write through the driver's own tracker (and its backlog); not pickled with the callback."""
        self._tracker = tracker

    @property
    def tracker(self):
        if self._tracker is None:
            from lwgan.tracking import StudyTracker

            self._tracker = StudyTracker(self.tracking_uri, self.experiment)
            self._tracker.buffer_in(self.state_path.parent, self.progress.line)
        return self._tracker

    @property
    def progress(self) -> StudyProgress:
        if self._progress is None:
            self._progress = StudyProgress(self.stream)
        return self._progress

    # -- helpers -------------------------------------------------------------------
    def _record(self, trial) -> TrialRecord:
        name = trial_name(trial)
        if name not in self.state.trials:
            # An ablation's trials are all in the state from the start (runner.open_state, with their
            # variant and seed); a name seen first here is a search trial Optuna just suggested.
            config = trial.config or {}
            seed = int(trial_config(self.context, name, config).get("seed", 0))
            self.state.add(TrialRecord(name, SEARCH_VARIANT, seed, params=dict(config)))
        return self.state.trials[name]

    def best(self) -> tuple[str, float] | None:
        return self.state.best(self.objective.mode)

    def _status(self) -> str:
        counts = self.state.counts()
        total = self.total or len(self.state.trials)
        remaining = total - sum(counts[s] for s in vocab.FINAL_STATUSES)
        running = [t for t, r in self.state.trials.items() if r.state == S.RUNNING]
        done = [self._steps[t] / self._totals[t] for t in running if self._totals.get(t) and t in self._steps]
        return status_line(counts, total, self.best(), self.objective.metric,
                           estimate_eta(self.durations, remaining, self.concurrency, done))

    # -- Tune hooks ----------------------------------------------------------------
    @full_disk_stops_study
    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        rec = self._record(trial)
        flat = trial_config(self.context, rec.trial_id, trial.config or {})
        rec.mlflow_run_id = self.tracker.start_trial(
            self.state.parent_run_id, rec.trial_id, rec.variant, rec.seed, flat, run_id=rec.mlflow_run_id)
        self.begun[rec.trial_id] = time.monotonic()
        resumed = rec.step is not None and rec.step > 0
        self.state.update(rec.trial_id, state=S.RUNNING, ray_trial_id=trial.trial_id, attempts=rec.attempts + 1,
                          started=rec.started or time.time())
        # rec.step is the last step reported, which can be past the checkpoint the trial goes on from
        self.progress.event(rec.trial_id, "started (resumes from its checkpoint)" if resumed else "started", self._status())

    @full_disk_stops_study
    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        rec = self._record(trial)
        if rec.mlflow_run_id is None:
            return
        history, logged_through = unlogged_history(result.get(K.HISTORY) or [], rec.logged_through)
        if history:
            self.tracker.log_metrics(rec.mlflow_run_id, history)
        if result.get(K.INFO):
            self.tracker.trial_info_tags(rec.mlflow_run_id, result[K.INFO])
            if result[K.INFO].get("checkpoint_fallback"):  # last.pt was unreadable: the trial says which file it used
                self.progress.line(f"{rec.trial_id}: warning: {result[K.INFO]['checkpoint_fallback']}")
        step = int(result.get(K.STEP, rec.step or 0))
        changes: dict[str, Any] = {"step": step}
        if history:
            changes["logged_through"] = logged_through
        if K.OBJECTIVE in result:
            changes["objective"] = float(result[K.OBJECTIVE])
        self.state.update(rec.trial_id, **changes)
        self._heartbeat(rec.trial_id, step, (result.get(K.INFO) or {}).get("total_steps"))

    def _heartbeat(self, trial_id: str, step: int, total_steps: int | None) -> None:
        """At most every HEARTBEAT_S, one line with each running trial's step, so long trials show progress."""
        steps, totals = self._steps, self._totals
        steps[trial_id] = step
        if total_steps:
            totals[trial_id] = int(total_steps)
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        running = [t for t, r in self.state.trials.items() if r.state == S.RUNNING and t in steps]
        what = ", ".join(f"{t} step {steps[t]}" + (f"/{totals[t]}" if t in totals else "") for t in running)
        self.progress.event(S.RUNNING.value, what[:60], self._status())

    @full_disk_stops_study
    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        rec = self._record(trial)
        last = trial.last_result or {}
        if last.get(K.FINAL):
            status = S(last.get(K.STATUS, S.COMPLETED))
            error = last.get(K.ERROR) or None
        elif self.time_budget_s and time.monotonic() - self.started >= self.time_budget_s:
            status, error = S.PRUNED, "stopped by the study's time budget (budget.time_budget_s)"
        else:
            status, error = S.PRUNED, "stopped early by ASHA"
        objective = last.get(K.OBJECTIVE) if status == S.COMPLETED else None
        self._finish(rec, status, error, objective)

    @full_disk_stops_study
    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        rec = self._record(trial)
        text = self._failure_text(rec, trial)
        self._finish(rec, S.FAILED, error_last_line(text), None)

    @full_disk_stops_study
    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        rec = self._record(trial)
        text = self._failure_text(rec, trial)
        self.progress.event(rec.trial_id, f"crashed at step {rec.step}; retrying from its checkpoint", self._status())
        self.state.update(rec.trial_id, error=error_last_line(text))

    def _failure_text(self, rec: TrialRecord, trial) -> str | None:
        """The crashed trial's traceback text (None when Tune kept none). A trial that died of a full disk
        did not fail, and a retry would meet the same disk: its DiskFullError is raised instead, which
        stops the study (``full_disk_stops_study``); it resumes from its checkpoint once there is room."""
        text = None
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text(errors="replace")
        full = trial_disk_full(rec.trial_id, text)
        if full is not None:
            raise full
        return text

    def _finish(self, rec: TrialRecord, status: str, error: str | None, objective: float | None) -> None:
        if rec.trial_id in self.begun:
            self.durations.append(time.monotonic() - self.begun.pop(rec.trial_id))
        out_dir = Path(self.context.trials_dir) / rec.trial_id
        record_outcome(self.state, self.tracker, rec.trial_id, TrialOutcome(S(status), rec.step, error, objective),
                       out_dir if out_dir.is_dir() else None)
        what = f"{status}: {error}" if status == S.FAILED else f"{status} at step {rec.step}"
        if status == S.COMPLETED and objective is not None:
            what += f", {self.objective.metric} {objective:.4g}"
        self.progress.event(rec.trial_id, what[:60], self._status())
