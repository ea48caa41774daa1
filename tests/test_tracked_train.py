"""``train --track``: a resumed run continues its MLflow run without logging a step twice."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from lwgan.tracked_train import RUN_FILE, TrackedRun
from lwgan.tracking import StudyTracker
from lwgan.vocab import G_TOTAL


def _steps(tracked: TrackedRun, steps) -> None:
    for step in steps:
        tracked.on_metrics(step, {G_TOTAL: 1.0 / step})


def test_a_failed_run_resumed_from_its_checkpoint_logs_each_step_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    out = tmp_path / "runs" / "t1"
    first = TrackedRun.open({"lr_G": 2e-4}, out, "tiny", resume=False, tracker=StudyTracker(uri))
    first.flush_every = 4
    _steps(first, range(1, 8))  # checkpoint at step 5 (say), then a crash at step 8
    first.fail(RuntimeError("killed at step 8"))  # what was logged stays: steps 1-7
    assert json.loads((out / RUN_FILE).read_text())["logged_through"] == 7

    again = TrackedRun.open({"lr_G": 2e-4}, out, "tiny", resume=True, tracker=StudyTracker(uri))
    assert again.run_id == first.run_id and again.logged_through == 7
    _steps(again, range(6, 11))  # resumed from the step-5 checkpoint: steps 6 and 7 run again
    again.flush()
    history = MlflowClient(uri).get_metric_history(first.run_id, G_TOTAL)
    assert [m.step for m in history] == list(range(1, 11))
    assert json.loads((out / RUN_FILE).read_text())["logged_through"] == 10


def test_a_record_without_logged_through_resumes_as_before(tmp_path):
    """Run folders written before the record kept the last step: nothing is skipped."""
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    out = tmp_path / "old"
    first = TrackedRun.open({}, out, "tiny", resume=False, tracker=StudyTracker(uri))
    (out / RUN_FILE).write_text(json.dumps({"run_id": first.run_id, "tracking_uri": uri}))
    again = TrackedRun.open({}, out, "tiny", resume=True, tracker=StudyTracker(uri))
    assert again.logged_through == -1
    _steps(again, [1, 2])
    again.flush()
    assert [m.step for m in MlflowClient(uri).get_metric_history(first.run_id, G_TOTAL)] == [1, 2]


def test_unlogged_history_keeps_only_steps_after_the_last_logged():
    from lwgan.tracking import unlogged_history

    history = [(0, {"eval/ssim": 0.1}), (5, {"a": 1.0}), (10, {"a": 2.0}), (15, {"a": 3.0})]
    # nothing logged yet (None from a new trial record, -1 from a new run folder): all of it, step 0 included
    assert unlogged_history(history, None) == (history, 15)
    assert unlogged_history(history, -1) == (history, 15)
    # a resumed attempt recomputes steps 5-10 an earlier one logged: only 15 is sent
    assert unlogged_history(history, 10) == ([(15, {"a": 3.0})], 15)
    # all logged already (or an empty history): nothing to send, and the mark does not move back
    assert unlogged_history(history, 20) == ([], 20)
    assert unlogged_history([], 7) == ([], 7)
    assert unlogged_history([], None) == ([], -1)


def test_points_a_failed_send_held_are_sent_by_the_flush_of_fail(tmp_path, monkeypatch):
    """A store error while sending does not drop the pending points: the run's fail() sends them."""
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    tracked = TrackedRun.open({}, tmp_path / "t", "tiny", resume=False, tracker=StudyTracker(uri))
    _steps(tracked, [1, 2, 3])
    send = tracked.tracker.log_metrics
    monkeypatch.setattr(tracked.tracker, "log_metrics", lambda *a, **k: (_ for _ in ()).throw(OSError("store busy")))
    with pytest.raises(OSError, match="store busy"):
        tracked.flush()
    monkeypatch.setattr(tracked.tracker, "log_metrics", send)
    tracked.fail(OSError("store busy"))
    assert [m.step for m in MlflowClient(uri).get_metric_history(tracked.run_id, G_TOTAL)] == [1, 2, 3]
    assert tracked.logged_through == 3
