"""``lwgan-study train --track``: one training run recorded in the project's MLflow store beside the
studies, as a top-level run (role ``train``) with the flat config as params and the same metrics, tags
and artifacts as a study's trial. ``--resume`` continues the same MLflow run (its id is kept in the
run folder, with the last step logged to it: a resumed run starts from its checkpoint and runs again
the steps a failed or stopped run had already logged, which are not logged twice). It lives beside
lwgan.tracking, not in lwgan.train, so the training core never imports MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwgan.tracking import unlogged_history
from lwgan.train.callbacks import Callback, TrainResult
from lwgan.vocab import Role, Tag, TrialStatus

RUN_FILE = "mlflow_run.json"  # in the run folder: which MLflow run --resume continues
FLUSH_EVERY = 50  # metric steps per MLflow batch


class TrackedRun(Callback):
    """A Trainer callback that writes the run to MLflow (batched metrics; tags and artifacts at the end)."""

    def __init__(self, tracker, run_id: str, out_dir: Path, flush_every: int = FLUSH_EVERY, logged_through: int = -1):
        self.tracker, self.run_id, self.out_dir, self.flush_every = tracker, run_id, Path(out_dir), flush_every
        self._pending: list[tuple[int, dict[str, float]]] = []
        self.logged_through = logged_through  # the last step in MLflow (-1: none); steps up to it are not sent again

    @classmethod
    def open(cls, flat_config: dict[str, Any], out_dir: Path, profile: str, resume: bool, tracker=None) -> "TrackedRun":
        """A new top-level run named after the run folder, or on ``resume`` the run recorded in it."""
        from mlflow.entities import Param

        from lwgan.tracking import StudyTracker

        tracker = tracker or StudyTracker()
        out_dir = Path(out_dir)
        record = out_dir / RUN_FILE
        if resume and record.is_file():
            saved = json.loads(record.read_text())
            return cls(tracker, tracker._reopen(saved["run_id"]), out_dir, logged_through=int(saved.get("logged_through", -1)))
        run = tracker.client.create_run(tracker.experiment_id, run_name=out_dir.name, tags={
            Tag.ROLE: str(Role.TRAIN), Tag.STATUS: str(TrialStatus.RUNNING), Tag.PROFILE: profile,
        })
        run_id = run.info.run_id
        params = [Param(str(k), str("null" if v is None else v)[:6000]) for k, v in flat_config.items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params per call
            tracker.client.log_batch(run_id, params=params[i:i + 100])
        tracked = cls(tracker, run_id, out_dir)
        tracked._write_record()
        return tracked

    def _write_record(self) -> None:
        from lwgan.fsutil import write_text_atomic

        write_text_atomic(self.out_dir / RUN_FILE, json.dumps(
            {"run_id": self.run_id, "tracking_uri": self.tracker.uri, "logged_through": self.logged_through}))

    def on_start(self, info: dict[str, Any]) -> None:
        self.tracker.trial_info_tags(self.run_id, info)
        commit = info.get("git_commit")
        if commit:
            self.tracker.client.set_tag(self.run_id, Tag.GIT_COMMIT, str(commit))
            self.tracker.client.set_tag(self.run_id, Tag.MLFLOW_GIT_COMMIT, str(commit))

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._pending.append((step, dict(metrics)))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        # steps the run this one resumes had logged are dropped (the same values: recomputed from the checkpoint)
        send, logged_through = unlogged_history(self._pending, self.logged_through)
        if send:
            self.tracker.log_metrics(self.run_id, send)  # if this raises, the points stay pending for fail()'s flush
            self.logged_through = logged_through
            self._write_record()
        self._pending = []

    def on_end(self, result: TrainResult) -> None:
        self.flush()
        self.tracker.end_trial(self.run_id, result.status, self.out_dir, result.step, result.error)

    def fail(self, error: BaseException) -> None:
        """The run stopped with an exception: what was logged is kept, the run ends failed (or killed on Ctrl-C)."""
        self.flush()
        if isinstance(error, KeyboardInterrupt):
            self.tracker.client.set_terminated(self.run_id, "KILLED")
            return
        self.tracker.end_trial(self.run_id, TrialStatus.FAILED, self.out_dir, None, f"{type(error).__name__}: {error}")
