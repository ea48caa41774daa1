"""The Ray plumbing with a stand-in trainer (tests/test_study_stub.py): trial states, retries from
checkpoints, divergence, MLflow schema, resume without reruns or duplicate runs, Ctrl-C, SIGKILL of the
driver, a search (Optuna + ASHA), and a two-node cluster."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lwgan.study.commands import command_run
from lwgan.study.state import STATE_FILE, StudyState, latest_run_dir

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
STUB = "test_study_stub:StubTrainer"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A private MLflow store and project folder; Ray workers can import the stub trainer."""
    uri = f"sqlite:///{tmp_path}/ml.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("LWGAN_STUB_STEP_S", "0.01")
    monkeypatch.delenv("LWGAN_STUDY_INJECT_CRASH", raising=False)
    return uri


def study_file(tmp_path, variants, name="plumb", **extra):
    data = {"name": name, "description": "test", "variants": variants, "seeds": 1, "default_profile": "tiny", **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_args(path, storage, **kw):
    base = dict(study=str(path), profile=None, dry_run=False, resume=False, address=None, seeds=None, steps=12,
                max_concurrent=2, no_report=True, storage=str(storage), sets=[])
    base.update(kw)
    return argparse.Namespace(**base)


def children(uri, parent_id):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lwgan-study")
    runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return client, {r.data.tags["lwgan.trial_id"]: r for r in runs}


def load_state(storage, study):
    return StudyState.load(latest_run_dir(storage / study) / STATE_FILE)


def test_failure_accounting_tracking_and_resume(env, tmp_path, monkeypatch, capsys):
    path = study_file(tmp_path, {"fast": {"lr_G": 4e-4}, "dv": {"divergence_threshold": 1e-9}, "bad": {"lr_D": 1e-4}})
    storage = tmp_path / "runs"
    # baseline crashes once (retried from its checkpoint at step 6, after its eval at step 9 was reported),
    # bad crashes on every attempt (2 retries, then failed).
    monkeypatch.setenv("LWGAN_STUDY_INJECT_CRASH", "baseline-s0:10:1,bad-s0:2:9")
    args = run_args(path, storage, sets=["checkpoint_every=6"])
    assert command_run(args, trainer=STUB) == 1  # a trial failed: exit 1 (diverged is a result)
    captured = capsys.readouterr()  # results on stdout, progress on stderr
    out = captured.out
    assert "4 trials: 2 completed, 1 diverged, 1 failed, 0 pruned" in out
    assert "best (completed trials only): fast-s0 eval/ssim" in out
    assert "retrying from its checkpoint" in captured.err and "diverged at step 1" in captured.err

    state = load_state(storage, "plumb")
    recs = state.trials
    assert {k: r.state for k, r in recs.items()} == {"baseline-s0": "completed", "fast-s0": "completed", "dv-s0": "diverged", "bad-s0": "failed"}
    assert recs["baseline-s0"].attempts == 2 and recs["baseline-s0"].step == 12
    assert recs["dv-s0"].attempts == 1 and recs["dv-s0"].step == 1  # divergence is not retried
    assert recs["bad-s0"].attempts == 3 and "InjectedCrash: injected crash 3/9 at step 2" in recs["bad-s0"].error
    # The retried trial resumed from its checkpoint (step 6), it did not start over.
    crash_steps = (state.path.parent / "trials" / "baseline-s0" / ".injected_crashes").read_text().split()
    assert crash_steps == ["10"]
    assert json.loads((state.path.parent / "trials" / "baseline-s0" / "run_info.json").read_text())["resumed_from_step"] == 6

    client, runs = children(env, state.parent_run_id)
    assert set(runs) == {"baseline-s0", "fast-s0", "dv-s0", "bad-s0"}
    parent = client.get_run(state.parent_run_id)
    assert parent.data.tags["lwgan.role"] == "study" and parent.data.tags["lwgan.status"] == "completed"
    assert parent.data.tags["lwgan.trials_failed"] == "1" and parent.data.tags["lwgan.best_trial"] == "fast-s0"
    status = {k: (r.data.tags["lwgan.status"], r.info.status) for k, r in runs.items()}
    assert status == {"baseline-s0": ("completed", "FINISHED"), "fast-s0": ("completed", "FINISHED"),
                      "dv-s0": ("diverged", "FINISHED"), "bad-s0": ("failed", "FAILED")}
    assert runs["dv-s0"].data.tags["lwgan.diverged_step"] == "1"
    assert runs["bad-s0"].data.tags["lwgan.error"].startswith("lwgan.study.trainable.InjectedCrash") or \
        "InjectedCrash" in runs["bad-s0"].data.tags["lwgan.error"]
    assert runs["fast-s0"].data.params["lr_G"] == "0.0004" and runs["baseline-s0"].data.params["lr_G"] == "0.0002"
    assert runs["fast-s0"].data.params["variant"] == "fast" and runs["fast-s0"].data.params["seed"] == "0"
    # Every step reaches MLflow once: steps 7-9 ran twice (before the crash and on the retry from step 6),
    # but history goes to Tune only with a checkpoint, so the first run of them was never logged.
    hist = client.get_metric_history(runs["baseline-s0"].info.run_id, "loss/G_total")
    assert [m.step for m in hist] == list(range(1, 13))
    # Ray started here, every trial on this machine: Tune holds no copy of the trials' checkpoints.
    assert not [p for p in (state.path.parent / "ray").rglob("*.pt")]
    assert [m.step for m in client.get_metric_history(runs["fast-s0"].info.run_id, "eval/ssim")] == [3, 6, 9, 12]
    assert [a.path for a in client.list_artifacts(runs["fast-s0"].info.run_id, "samples")] == ["samples/final.png"]

    # --resume of a finished study reruns nothing and creates no run.
    monkeypatch.delenv("LWGAN_STUDY_INJECT_CRASH")
    assert command_run(run_args(path, storage, resume=True, sets=["checkpoint_every=6"]), trainer=STUB) == 1  # bad-s0 stays failed
    assert len(children(env, state.parent_run_id)[1]) == 4
    # A trial left "running" by a stopped driver is the only one rerun, in its own MLflow run.
    state = load_state(storage, "plumb")
    fast_run = state.trials["fast-s0"].mlflow_run_id
    state.update("fast-s0", state="running")
    capsys.readouterr()
    assert command_run(run_args(path, storage, resume=True, sets=["checkpoint_every=6"]), trainer=STUB) == 1
    out = capsys.readouterr().err
    assert "] fast-s0 " in out and "] baseline-s0 " not in out and "1 interrupted trials continue" in out
    state = load_state(storage, "plumb")
    assert state.trials["fast-s0"].state == "completed" and state.trials["fast-s0"].attempts == 2
    assert state.trials["fast-s0"].mlflow_run_id == fast_run and state.trials["baseline-s0"].attempts == 2
    client, runs = children(env, state.parent_run_id)
    assert len(runs) == 4 and runs["fast-s0"].data.tags["lwgan.status"] == "completed"
    parents = client.search_runs([client.get_experiment_by_name("lwgan-study").experiment_id], "tags.`lwgan.role` = 'study'")
    assert len(parents) == 1


def driver_argv(path, storage, *extra):
    """``lwgan-study run`` in a subprocess, with the stand-in trainer (patched in by the test only)."""
    code = ("import sys; from lwgan.study import commands; from lwgan import cli; "
            "orig = commands.command_run; commands.command_run = lambda a, **k: orig(a, trainer=%r); "
            "sys.exit(cli.main(sys.argv[1:]))" % STUB)
    return [sys.executable, "-c", code, "run", str(path), "--storage", str(storage), "--steps", "40",
            "--max-concurrent", "2", "--no-report", *extra]


def _wait_for(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _some_completed(storage, study):
    run_dir = latest_run_dir(storage / study)
    if run_dir is None:
        return False
    try:
        state = StudyState.load(run_dir / STATE_FILE)
    except Exception:  # noqa: BLE001 - the file may be mid-creation
        return False
    counts = state.counts()
    return counts["completed"] >= 1 and counts["running"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_resume_after_ctrl_c_or_sigkill(env, tmp_path, sig):
    path = study_file(tmp_path, {"a": {"lr_G": 4e-4}, "b": {"lr_G": 1e-4}, "c": {"lr_D": 1e-4}}, name="interrupt")
    storage = tmp_path / "runs"
    proc = subprocess.Popen(driver_argv(path, storage), env={**os.environ, "LWGAN_STUB_STEP_S": "0.15"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert _wait_for(lambda: _some_completed(storage, "interrupt"), 120), "no trial completed in time"
        if sig == signal.SIGKILL:
            os.kill(proc.pid, signal.SIGKILL)  # the driver only; its Ray processes are orphaned
        else:
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "--resume" in out, out
    before = load_state(storage, "interrupt")
    done_before = {k: r.mlflow_run_id for k, r in before.trials.items() if r.state == "completed"}
    assert done_before and len(done_before) < 4
    done = subprocess.run(driver_argv(path, storage, "--resume"), env={**os.environ, "LWGAN_STUB_STEP_S": "0.01"},
                          capture_output=True, text=True, timeout=240)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the SIGKILLed driver left behind
    except ProcessLookupError:
        pass
    assert done.returncode == 0, done.stdout + done.stderr
    events = [ln for ln in done.stderr.splitlines() if ln.startswith("[")]  # progress is on stderr
    after = load_state(storage, "interrupt")
    assert all(r.state == "completed" for r in after.trials.values())
    assert after.parent_run_id == before.parent_run_id
    for trial_id, run_id in done_before.items():  # finished trials were not rerun
        assert after.trials[trial_id].mlflow_run_id == run_id and after.trials[trial_id].attempts == before.trials[trial_id].attempts
        assert not any(f"] {trial_id} " in ln for ln in events), events
    client, runs = children(env, after.parent_run_id)
    assert len(runs) == 4 and all(r.data.tags["lwgan.status"] == "completed" for r in runs.values())
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_search_runs_baseline_first_with_asha(env, tmp_path, capsys):
    data = {
        "name": "srch", "description": "test", "seeds": 1, "default_profile": "tiny",
        "search": {"use_gp": {"type": "categorical", "choices": [False, True], "baseline": False},
                   "gp_weight": {"type": "uniform", "low": 1.0, "high": 10.0, "when": {"use_gp": True}},
                   "lr_G": {"type": "log_uniform", "low": 5e-5, "high": 1e-3}},
        "budget": {"max_trials": 5}, "scheduler": {"grace_period": 3, "reduction_factor": 2},
    }
    path = tmp_path / "srch.yaml"
    path.write_text(yaml.safe_dump(data))
    assert command_run(run_args(path, tmp_path / "runs", steps=12), trainer=STUB) == 0
    state = load_state(tmp_path / "runs", "srch")
    recs = state.trials
    assert sorted(recs) == [f"trial-{i:03d}" for i in range(5)]
    assert recs["trial-000"].params == {"use_gp": False, "lr_G": 2e-4}  # the baseline is enqueued first
    for rec in recs.values():
        assert rec.state in ("completed", "pruned")
        assert ("gp_weight" in rec.params) == rec.params["use_gp"]
    client, runs = children(env, state.parent_run_id)
    assert len(runs) == 5
    for trial_id, run in runs.items():
        p = recs[trial_id].params
        assert float(run.data.params["lr_G"]) == pytest.approx(p["lr_G"])
        assert float(run.data.params["gp_weight"]) == pytest.approx(p.get("gp_weight", 0.0))
        assert "use_gp" not in run.data.params


@pytest.mark.slow
def test_two_node_cluster(env, tmp_path):
    """A head and a second node (ray.cluster_utils.Cluster); trials spread over both nodes."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        path = study_file(tmp_path, {"a": {"lr_G": 4e-4}}, name="cluster")
        assert command_run(run_args(path, tmp_path / "runs", address=cluster.address), trainer=STUB) == 0
        state = load_state(tmp_path / "runs", "cluster")
        assert all(r.state == "completed" for r in state.trials.values()) and len(state.trials) == 2
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        # a cluster: Tune holds a copy of each trial's checkpoint files (a retry may land on the other node)
        assert [p.name for p in (state.path.parent / "ray").rglob("*.pt")].count("last.pt") == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
