"""Faults a study meets, through the real CLI in a subprocess (slow: each starts Ray): an HTTP MLflow server
on 127.0.0.1 that goes away and comes back mid-study, SIGTERM to the driver, a kill of the driver's whole
process group at a random moment, a kill -9 of the driver alone (its Ray processes), each followed by
``--resume``; and two runs of one study giving identical per-trial final metrics."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lwgan import vocab
from lwgan.study.ray_procs import RAY_PROCS_FILE, _alive
from lwgan.study.state import STATE_FILE, StudyState, latest_run_dir
from test_study_runner import children, driver_argv, env, load_state, study_file  # noqa: F401 - env is a fixture

pytestmark = pytest.mark.slow

VARIANTS = {"a": {"lr_G": 4e-4}, "b": {"lr_G": 1e-4}, "c": {"lr_D": 1e-4}}  # + the baseline: 4 trials


def _wait_for(predicate, timeout, every=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def _state(storage, study):
    run_dir = latest_run_dir(storage / study)
    if run_dir is None:
        return None
    try:
        return StudyState.load(run_dir / STATE_FILE)
    except Exception:  # noqa: BLE001 - mid-creation
        return None


def _running_with_steps(storage, study, min_step=1):
    state = _state(storage, study)
    return state is not None and any(r.state == "running" and (r.step or 0) >= min_step for r in state.trials.values())


def _assert_complete_once(uri, parent_id, steps, trials=len(VARIANTS) + 1):
    """Every trial completed, one child run each, every metric step logged exactly once."""
    client, runs = children(uri, parent_id)
    assert len(runs) == trials and all(r.data.tags["lwgan.status"] == "completed" for r in runs.values()), \
        {k: r.data.tags.get("lwgan.status") for k, r in runs.items()}
    for trial_id, run in runs.items():
        history = [m.step for m in client.get_metric_history(run.info.run_id, "loss/G_total")]
        assert history == list(range(1, steps + 1)), (trial_id, history[:5], len(history))
    return runs


def _packed_on_two_cores(argv):
    """A driver argv that sees 2 cores on any machine and has no --max-concurrent: the last trials are packed."""
    argv = list(argv)
    argv[2] = "import os; os.cpu_count = lambda: 2; " + argv[2]
    i = argv.index("--max-concurrent")
    return argv[:i] + argv[i + 2:]


def _driver(path, storage, steps, step_s, *extra, packed=False):
    argv = driver_argv(path, storage, *extra)
    argv[argv.index("--steps") + 1] = str(steps)
    if packed:
        argv = _packed_on_two_cores(argv)
    return subprocess.Popen(argv, env={**os.environ, "LWGAN_STUB_STEP_S": str(step_s)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _resume(path, storage, packed=False):
    """``--resume`` of the study run that ``_driver`` started, with fast stub steps, to its end."""
    argv = driver_argv(path, storage, "--resume")
    if packed:
        argv = _packed_on_two_cores(argv)
    return subprocess.run(argv, env={**os.environ, "LWGAN_STUB_STEP_S": "0.01"}, capture_output=True, text=True, timeout=300)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- SIGTERM and process-group kills -------------------------------------------------------

def test_sigterm_ends_the_study_like_ctrl_c_then_resume(env, tmp_path):
    path, storage = study_file(tmp_path, VARIANTS, name="term"), tmp_path / "runs"
    proc = _driver(path, storage, 40, 0.15)
    try:
        assert _wait_for(lambda: _running_with_steps(storage, "term", 5), 180), "no trial ran in time"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130 and "--resume" in out, out[-3000:]
    before = load_state(storage, "term")
    assert before.unfinished() and not before.finished
    done = _resume(path, storage)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = load_state(storage, "term")
    assert after.parent_run_id == before.parent_run_id
    for trial_id, rec in before.trials.items():
        if rec.state == "completed":  # not rerun
            assert after.trials[trial_id].attempts == rec.attempts
    _assert_complete_once(env, after.parent_run_id, 40)


def test_process_group_kill_at_a_random_moment_then_resume(env, tmp_path):
    seed = int(os.environ.get("LWGAN_FAULT_SEED", time.time_ns() % 10_000))
    delay = random.Random(seed).uniform(0.0, 12.0)
    path, storage = study_file(tmp_path, VARIANTS, name="pgkill"), tmp_path / "runs"
    proc = _driver(path, storage, 40, 0.1)
    try:
        assert _wait_for(lambda: _state(storage, "pgkill") is not None, 180), "the run folder never appeared"
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray and every trial at once, as a scheduler may
        proc.communicate(timeout=60)
    finally:
        _kill_group(proc)
    before = load_state(storage, "pgkill")
    done = _resume(path, storage)
    assert done.returncode == 0, f"seed {seed}, delay {delay:.1f} s\n" + done.stdout[-2000:] + done.stderr[-2000:]
    after = load_state(storage, "pgkill")
    assert after.parent_run_id == before.parent_run_id
    for trial_id, rec in before.trials.items():
        if rec.state == "completed":
            assert after.trials[trial_id].attempts == rec.attempts, f"seed {seed}: {trial_id} rerun"
            assert after.trials[trial_id].mlflow_run_id == rec.mlflow_run_id
    client = MlflowClient(env)
    exp = client.get_experiment_by_name("lwgan-study")
    assert len(client.search_runs([exp.experiment_id], "tags.`lwgan.role` = 'study'")) == 1
    _assert_complete_once(env, after.parent_run_id, 40)


def test_resume_stops_the_ray_processes_a_killed_driver_left(env, tmp_path):
    path, storage = study_file(tmp_path, VARIANTS, name="orphans"), tmp_path / "runs"
    proc = _driver(path, storage, 40, 0.15)
    try:
        assert _wait_for(lambda: _running_with_steps(storage, "orphans", 2), 180), "no trial ran in time"
        run_dir = latest_run_dir(storage / "orphans")
        recorded = json.loads((run_dir / RAY_PROCS_FILE).read_text())["processes"]
        assert recorded
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: Ray's processes stay behind
        proc.communicate(timeout=60)
        assert any(_alive(pid, start) for pid, start in recorded)
        done = _resume(path, storage)
    finally:
        _kill_group(proc)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Ray processes that the killed driver of this run had left running" in done.stderr
    assert not any(_alive(pid, start) for pid, start in recorded)


# --- an HTTP MLflow server that goes away and comes back -------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(folder: Path, port: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/server.db",
            "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = open(folder / f"server-{time.time_ns()}.log", "w")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _stop_server(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=30)


def test_store_down_and_back_mid_study_loses_no_metric_point(env, tmp_path, monkeypatch):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    server = _start_server(tmp_path, port)
    proc = None
    try:
        assert _wait_for(lambda: _healthy(port), 180), "the MLflow server did not start"
        path, storage = study_file(tmp_path, VARIANTS, name="outage"), tmp_path / "runs"
        proc = _driver(path, storage, 200, 0.2)  # ~40 s per trial: the outage falls inside the study
        assert _wait_for(lambda: proc.poll() is not None or _running_with_steps(storage, "outage", 10), 240), "no trial ran in time"
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        _stop_server(server)
        time.sleep(5)  # trials keep training, the driver keeps their metrics on disk
        server = _start_server(tmp_path, port)
        assert _wait_for(lambda: _healthy(port), 180), "the MLflow server did not come back"
        assert proc.poll() is None, "the study ended before the store came back; make the trials longer"
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        assert out.count("is unreachable") == 1, out[-3000:]  # told once, not every step
        assert "is back" in out
        state = load_state(storage, "outage")
        assert not (state.path.parent / "tracking_backlog.jsonl").exists()
        _assert_complete_once(uri, state.parent_run_id, 200)
    finally:
        if proc is not None:
            _kill_group(proc)
        _stop_server(server)


# --- reproducibility across study runs -------------------------------------------------------

def _final_metrics(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`lwgan.role` = 'trial'")
    timing = set(vocab.names(vocab.Group.PERF))  # wall-clock throughput depends on the machine's load, not the run
    return {r.data.tags["lwgan.trial_id"]: {k: v for k, v in r.data.metrics.items() if k not in timing} for r in runs}


def test_two_runs_of_a_study_give_identical_per_trial_metrics(tmp_path, monkeypatch):
    """The real Trainer at the tiny profile, run twice with different concurrency (so different actor reuse
    and scheduling): every trial's final value of every metric is bit-identical (CPU; see README 'Resume')."""
    from lwgan.cli import main

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    study = tmp_path / "repro.yaml"
    study.write_text(yaml.safe_dump({"name": "repro", "description": "t", "seeds": 2, "default_profile": "tiny",
                                     "variants": {"GP2": {"description": "gp", "gp_weight": 2}}}))
    finals = []
    for n, concurrency in enumerate(("2", "1")):
        uri = f"sqlite:///{tmp_path}/ml{n}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        code = main(["run", str(study), "--steps", "4", "--storage", str(tmp_path / f"runs{n}"), "--no-report",
                     "--max-concurrent", concurrency])
        assert code == 0
        finals.append(_final_metrics(uri, "lwgan-study"))
    assert set(finals[0]) == {"baseline-s0", "baseline-s1", "GP2-s0", "GP2-s1"}
    for trial_id, metrics in finals[0].items():
        assert metrics and metrics == finals[1][trial_id], trial_id
    assert finals[0]["baseline-s0"] != finals[0]["baseline-s1"]  # the seed matters: the check can fail


# --- several studies starting together on a new SQLite store -----------------------------------

def test_studies_started_together_on_a_new_sqlite_store_all_complete(env, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"  # does not exist yet: the first users create and migrate it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    procs = []
    for name in ("race1", "race2", "race3"):
        path = study_file(tmp_path, {"a": {"lr_G": 1e-4}}, name=name)
        procs.append(_driver(path, tmp_path / "runs", 10, 0.01))
    try:
        outs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            _kill_group(p)
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in out, out[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lwgan-study")
    parents = client.search_runs([exp.experiment_id], "tags.`lwgan.role` = 'study'")
    assert sorted(r.info.run_name for r in parents) == ["race1", "race2", "race3"]


def test_sigterm_during_the_shared_tail_then_resume(env, tmp_path):
    """A 5-trial study on 2 cores packs its last three into the pairs' actors (lwgan.study.packed_order);
    SIGTERM while they run, then --resume: every trial completes once, every step logged once."""
    variants = {**VARIANTS, "d": {"lr_D": 3e-4}}  # + the baseline: 5 trials, a pair and then three together
    path, storage = study_file(tmp_path, variants, name="tailterm"), tmp_path / "runs"
    proc = _driver(path, storage, 40, 0.15, packed=True)
    try:
        def tail_running():
            state = _state(storage, "tailterm")
            return state is not None and sum(r.state == "completed" for r in state.trials.values()) >= 2 and any(
                r.state == "running" and (r.step or 0) >= 3 for r in state.trials.values())

        assert _wait_for(tail_running, 240), "the tail never ran"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 130 and "the last 3 share the 2 slots" in out, out[-3000:]
    before = load_state(storage, "tailterm")
    assert before.unfinished()
    done = _resume(path, storage, packed=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = load_state(storage, "tailterm")
    assert after.parent_run_id == before.parent_run_id and not after.unfinished()
    _assert_complete_once(env, after.parent_run_id, 40, trials=len(variants) + 1)
