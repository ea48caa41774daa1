"""The study state file (``<run dir>/study_state.json``): each trial's named state, MLflow run id, last
step and error, so ``--resume`` reruns only unfinished trials and reuses every MLflow run. Written
atomically (lwgan.fsutil: temp file, fsync, rename) after every change, so a SIGKILL never leaves it torn.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwgan.errors import UserError
from lwgan.vocab import FINAL_STATUSES, TrialStatus
from lwgan.fsutil import write_text_atomic

STATE_FILE = "study_state.json"
FORMAT = 1
# As in ABLATOR: every trial outcome is a named state the summary counts.
STATES = tuple(TrialStatus)
FINAL_STATES = FINAL_STATUSES


@dataclass
class TrialRecord:
    trial_id: str
    variant: str
    seed: int
    state: str = TrialStatus.PENDING
    mlflow_run_id: str | None = None
    step: int | None = None
    error: str | None = None
    objective: float | None = None
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # search trials: the suggested values
    ray_trial_id: str | None = None
    # The last step whose metrics the driver wrote to MLflow: a trial that reruns steps (its checkpoint
    # write failed after its history was logged) does not log them twice.
    logged_through: int | None = None


@dataclass
class StudyState:
    """What a study run has done so far; ``path`` is where it is kept."""

    path: Path
    study: str
    study_file: str
    profile: str
    kind: str
    parent_run_id: str | None = None
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: bool = False

    # -- queries -------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for rec in self.trials.values():
            out[rec.state] += 1
        return out

    def unfinished(self) -> list[TrialRecord]:
        return [r for r in self.trials.values() if r.state not in FINAL_STATES]

    def best(self, mode: str) -> tuple[str, float] | None:
        """(trial id, objective) of the best completed trial with a finite objective (``mode`` max | min)."""
        done = [r for r in self.trials.values()
                if r.state == TrialStatus.COMPLETED and r.objective is not None and math.isfinite(r.objective)]
        if not done:
            return None
        rec = (max if mode == "max" else min)(done, key=lambda r: r.objective)
        return rec.trial_id, float(rec.objective)

    def by_ray_id(self, ray_trial_id: str) -> TrialRecord | None:
        return next((r for r in self.trials.values() if r.ray_trial_id == ray_trial_id), None)

    def next_search_id(self) -> str:
        return f"trial-{len(self.trials):03d}"

    # -- changes -------------------------------------------------------------------
    def add(self, record: TrialRecord) -> TrialRecord:
        self.trials.setdefault(record.trial_id, record)
        return self.trials[record.trial_id]

    def update(self, trial_id: str, **changes: Any) -> TrialRecord:
        record = self.trials[trial_id]
        for key, value in changes.items():
            if key == "state" and value not in STATES:
                raise ValueError(f"unknown trial state {value!r}")
            setattr(record, key, value)
        self.save()
        return record

    def reset_interrupted(self) -> list[str]:
        """Trials left ``running`` by a stopped driver go back to ``pending`` (they resume from their checkpoint)."""
        moved = [r.trial_id for r in self.trials.values() if r.state == TrialStatus.RUNNING]
        for trial_id in moved:
            self.trials[trial_id].state = TrialStatus.PENDING
        self.save()
        return moved

    # -- persistence ---------------------------------------------------------------
    def save(self) -> None:
        data = {
            "format": FORMAT,
            "study": self.study,
            "study_file": self.study_file,
            "profile": self.profile,
            "kind": self.kind,
            "parent_run_id": self.parent_run_id,
            "created": self.created,
            "finished": self.finished,
            "trials": {k: asdict(v) for k, v in self.trials.items()},
        }
        write_text_atomic(self.path, json.dumps(data, indent=1, default=str))

    @classmethod
    def load(cls, path: Path) -> "StudyState":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: cannot read the study state ({err}); start the study without --resume") from None
        if data.get("format") != FORMAT:
            raise UserError(f"{path}: study state format {data.get('format')!r} is not {FORMAT}; start the study without --resume")
        trials = {k: TrialRecord(**v) for k, v in data["trials"].items()}
        return cls(Path(path), data["study"], data["study_file"], data["profile"], data["kind"],
                   data.get("parent_run_id"), trials, data.get("created", 0.0), data.get("finished", False))


def latest_run_dir(study_root: Path) -> Path | None:
    """The most recent ``run-*`` folder of a study that holds a state file."""
    runs = sorted(p for p in study_root.glob("run-*") if (p / STATE_FILE).is_file())
    return runs[-1] if runs else None
