"""The study progress view shows running trials' steps at most every HEARTBEAT_S seconds."""

import io

import pytest
from types import SimpleNamespace

from lwgan.study import monitor as monitor_mod
from lwgan.study.monitor import StudyMonitor
from lwgan.study.progress import StudyProgress


def _monitor(stream):
    mon = object.__new__(StudyMonitor)  # only the fields the heartbeat uses
    mon.started = 0.0
    mon._steps, mon._totals, mon._last_beat = {}, {}, 0.0  # as __init__ sets them
    mon._state = SimpleNamespace(trials={"E1-s0": SimpleNamespace(state="running"),
                                         "E2-s0": SimpleNamespace(state="running"),
                                         "E3-s0": SimpleNamespace(state="pending")})
    mon._progress = StudyProgress(stream)
    mon._status = lambda: "0/3 done, 2 running"
    return mon


def test_heartbeat_lists_running_trials_with_steps_and_is_rate_limited(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(monitor_mod.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    mon = _monitor(out)
    mon._heartbeat("E1-s0", 120, 300)  # t=100: first line
    now[0] = 101.0
    mon._heartbeat("E2-s0", 90, 300)  # within 30 s: silent
    now[0] = 140.0
    mon._heartbeat("E1-s0", 150, None)  # next line, totals remembered
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "E1-s0 step 120/300" in lines[0] and "E2-s0" not in lines[0]
    assert "E1-s0 step 150/300, E2-s0 step 90/300" in lines[1]
    assert "E3-s0" not in lines[1] and lines[1].endswith("0/3 done, 2 running")


def test_eta_counts_the_steps_running_trials_have_left():
    from lwgan.study.progress import estimate_eta

    assert estimate_eta([], 3, 2) is None and estimate_eta([100.0], 0, 2) == 0.0
    # Nothing running: the work left is shared by the slots (100 s trials, 4 left, 2 slots).
    assert estimate_eta([100.0], 4, 2) == 200.0
    # The tail of a packed study: 3 trials on 2 slots, 95% done each: 3 x 5 s of work on 2 slots,
    # not two more waves (the old estimate said 200 s here).
    assert estimate_eta([100.0], 3, 2, [0.95, 0.95, 0.95]) == pytest.approx(7.5)
    # ... but never less than what the furthest-behind running trial has left.
    assert estimate_eta([100.0], 2, 2, [0.9, 0.2]) == pytest.approx(80.0)
    assert estimate_eta([120.0, 80.0], 5, 2, [0.5, 0.5]) == 200.0  # (5 - 1) trials of 100 s on 2 slots
