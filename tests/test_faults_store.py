"""Faults of the MLflow store: down at start (a clean error in seconds), down mid-study (writes kept on
disk and sent in order when it is back, also by a later driver), several studies creating one new
SQLite file at once."""

from __future__ import annotations

import multiprocessing
import socket
import time

import requests
import yaml
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from lwgan.cli import main
from lwgan.store import check_store, is_unreachable
from lwgan.tracking import StudyTracker
from lwgan.tracking_backlog import BACKLOG_FILE, PLACEHOLDER, BufferedClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- down at start ----------------------------------------------------------------------

def test_unreachable_store_fails_the_study_in_seconds_naming_the_uri(tmp_path, monkeypatch, capsys):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(key, raising=False)  # MLflow's defaults: 7 retries with back-off (minutes)
    study = tmp_path / "down.yaml"
    study.write_text(yaml.safe_dump({"name": "down", "description": "t", "variants": {"a": {"lr_G": 1e-4}},
                                     "seeds": 1, "default_profile": "tiny"}))
    started = time.monotonic()
    code = main(["run", str(study), "--storage", str(tmp_path / "runs"), "--no-report"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and took < 10, (code, took, err)
    assert uri in err and "Traceback" not in err and "MLFLOW_TRACKING_URI" in err
    assert not (tmp_path / "runs" / "down").exists()  # nothing was created: a later --resume finds nothing stale


def test_unreachable_classification():
    assert is_unreachable(requests.ConnectionError("refused"))
    assert is_unreachable(Exception("API request to http://h/api failed with exception HTTPConnectionPool: Max retries exceeded"))
    assert not is_unreachable(Exception("INVALID_PARAMETER_VALUE: Metric key 'x' too long"))


# --- new SQLite store, many starters ------------------------------------------------------

def _open_tracker(uri: str, barrier, results) -> None:
    barrier.wait()
    try:
        StudyTracker(uri, "race")
        results.put("ok")
    except BaseException as err:  # noqa: BLE001 - reported to the test
        results.put(f"{type(err).__name__}: {err}")


def test_studies_starting_together_on_a_new_sqlite_file(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/mlruns.db"
    ctx = multiprocessing.get_context("spawn")
    n = 3
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_tracker, args=(uri, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert outcomes == ["ok"] * n, outcomes
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments() if e.name == "race"] == ["race"]  # one experiment


def test_store_check_creates_a_new_sqlite_file(tmp_path):
    uri = f"sqlite:///{tmp_path}/a/b/store.db"
    check_store(uri)
    assert (tmp_path / "a" / "b" / "store.db").is_file()
    tables = MlflowClient(uri)._tracking_client.store.engine.dialect.get_table_names(
        MlflowClient(uri)._tracking_client.store.engine.connect())
    assert {"runs", "metrics", "alembic_version"} <= set(tables)  # created and migrated, not just touched


# --- down mid-study: the backlog --------------------------------------------------------

class Flaky:
    """An MlflowClient whose writes fail as an unreachable server's do while ``down`` is set."""

    def __init__(self, client):
        self.client, self.down, self.calls = client, False, 0

    def __getattr__(self, name):
        real = getattr(self.client, name)

        def call(*args, **kwargs):
            self.calls += 1
            if self.down:
                raise requests.ConnectionError("[Errno 111] Connection refused")
            return real(*args, **kwargs)

        return call


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_backlog_keeps_order_maps_placeholders_and_says_it_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/ml.db"
    raw = MlflowClient(uri)
    exp = raw.create_experiment("e")
    flaky, clock, told = Flaky(raw), Clock(), []
    client = BufferedClient(flaky, tmp_path / "run", told.append, uri, clock=clock)
    parent = client.create_run(exp, run_name="parent").info.run_id
    client.log_batch(parent, metrics=[Metric("m", 1.0, 1, 1)])

    flaky.down, flaky.calls = True, 0
    client.log_batch(parent, metrics=[Metric("m", 2.0, 2, 2)])
    child = client.create_run(exp, run_name="child", tags={"mlflow.parentRunId": parent}).info.run_id
    assert child.startswith(PLACEHOLDER)
    for step in range(3, 8):
        client.log_batch(parent, metrics=[Metric("m", float(step), step, step)])
        client.log_batch(child, metrics=[Metric("c", float(step), step, step)], tags=[RunTag("k", str(step))])
    client.set_terminated(child, "FINISHED")
    calls = flaky.calls
    assert calls == 1  # one failed try; the back-off holds the rest without touching the network
    assert len(told) == 1 and uri in told[0] and BACKLOG_FILE in told[0]
    assert client.pending() == 13

    clock.now = 100.0  # past the back-off, still down: one more try, still one message
    client.log_batch(parent, metrics=[Metric("m", 8.0, 8, 8)])
    assert flaky.calls == calls + 1 and len(told) == 1 and client.pending() == 14

    flaky.down = False
    clock.now = 200.0
    client.log_batch(parent, metrics=[Metric("m", 9.0, 9, 9)])  # flushes the backlog first, then this
    assert client.pending() == 0 and not (tmp_path / "run" / BACKLOG_FILE).exists()
    assert len(told) == 2 and "back" in told[1]
    real_child = client.resolve(child)
    assert not real_child.startswith(PLACEHOLDER)
    assert [m.step for m in raw.get_metric_history(parent, "m")] == list(range(1, 10))
    assert [m.value for m in raw.get_metric_history(real_child, "c")] == [3.0, 4.0, 5.0, 6.0, 7.0]
    run = raw.get_run(real_child)
    assert run.data.tags["k"] == "7" and run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "FINISHED"


def test_a_later_driver_sends_what_was_left(tmp_path):
    uri = f"sqlite:///{tmp_path}/ml.db"
    raw = MlflowClient(uri)
    exp = raw.create_experiment("e")
    flaky = Flaky(raw)
    first = BufferedClient(flaky, tmp_path / "run", None, uri)
    flaky.down = True
    placeholder = first.create_run(exp, run_name="t").info.run_id
    first.log_batch(placeholder, metrics=[Metric("m", float(s), s, s) for s in range(5)])
    del first  # the driver stops (Ctrl-C, kill -9) with the store still down

    tracker = StudyTracker(uri, "e")  # --resume: the store is back
    said = []
    tracker.buffer_in(tmp_path / "run", said.append)
    assert tracker.client.pending() == 0 and said and "sent 2 tracking writes" in said[0]
    real = tracker.client.resolve(placeholder)
    assert [m.step for m in raw.get_metric_history(real, "m")] == [0, 1, 2, 3, 4]
    # A state file that still holds the placeholder resolves through the saved ids, in a new process too.
    assert BufferedClient(raw, tmp_path / "run").resolve(placeholder) == real


def test_replaying_a_half_sent_backlog_adds_no_duplicate_points(tmp_path):
    uri = f"sqlite:///{tmp_path}/ml.db"
    raw = MlflowClient(uri)
    run = raw.create_run(raw.create_experiment("e")).info.run_id
    flaky = Flaky(raw)
    client = BufferedClient(flaky, tmp_path / "run", None, uri)
    flaky.down = True
    for step in range(4):
        client.log_batch(run, metrics=[Metric("m", float(step), 1000 + step, step)])
    raw.log_batch(run, metrics=[Metric("m", 0.0, 1000, 0), Metric("m", 1.0, 1001, 1)])  # sent, but the count was not saved
    flaky.down = False
    assert client.flush(force=True)
    assert [m.step for m in raw.get_metric_history(run, "m")] == [0, 1, 2, 3]


def test_driver_and_preflight_settings_are_values_mlflow_accepts(monkeypatch):
    from mlflow import environment_variables

    from lwgan.store import DRIVER_ENV, PREFLIGHT_ENV

    for values in (DRIVER_ENV, PREFLIGHT_ENV):
        for key, value in values.items():
            monkeypatch.setenv(key, value)
            assert getattr(environment_variables, key).get() == float(value)  # raises on a value of the wrong type
