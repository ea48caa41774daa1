"""A finished trial's outcome, written once to both stores: MLflow (final tags, artifacts, run status)
and the study state file (what ``--resume`` reads back: a trial in a final state never reruns). The
driver's StudyMonitor is the only caller during a run; the runner uses it for trials Ray lost."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lwgan.study.state import StudyState, TrialRecord
from lwgan.vocab import TrialStatus


@dataclass(frozen=True)
class TrialOutcome:
    status: TrialStatus
    step: int | None = None
    error: str | None = None
    objective: float | None = None  # completed trials only
    ended: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not TrialStatus(self.status).final:
            raise ValueError(f"a trial outcome must be a final state, not {self.status!r}")


def record_outcome(state: StudyState, tracker, trial_id: str, outcome: TrialOutcome, out_dir: Path | None = None) -> TrialRecord:
    """End the trial's MLflow run (when it has one) with the outcome and its artifacts from ``out_dir``,
    then save the outcome in the state file. MLflow first: a crash in between leaves the trial unfinished
    in the state, so --resume reopens the same MLflow run and writes the outcome again."""
    rec = state.trials[trial_id]
    step = outcome.step if outcome.step is not None else rec.step
    if rec.mlflow_run_id:
        tracker.end_trial(rec.mlflow_run_id, outcome.status, out_dir, step, outcome.error)
    objective = float(outcome.objective) if outcome.objective is not None and outcome.status == TrialStatus.COMPLETED else None
    return state.update(trial_id, state=TrialStatus(outcome.status), step=step, error=outcome.error, ended=outcome.ended,
                        objective=objective)
