"""lwgan.tracking: where the store is (mlflow.env vs environment), and the MLflow schema the writer produces."""

import argparse
import json
import os
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from lwgan.errors import UserError
from lwgan.tracking import (
    StudyTracker,
    experiment_name,
    read_env_file,
    study_run_tags,
    tracking_uri,
)
from lwgan.tracking_commands import command_ui, ui_command


def test_env_file_parsing(tmp_path):
    env = tmp_path / "mlflow.env"
    env.write_text("# comment\n\nexport MLFLOW_TRACKING_URI='sqlite:///x.db'\nLWGAN_EXPERIMENT = mine \n")
    assert read_env_file(env) == {"MLFLOW_TRACKING_URI": "sqlite:///x.db", "LWGAN_EXPERIMENT": "mine"}
    assert read_env_file(tmp_path / "absent.env") == {}
    env.write_text("just words\n")
    with pytest.raises(UserError, match="mlflow.env:1: expected KEY=VALUE"):
        read_env_file(env)


def test_uri_and_experiment_precedence(tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "LWGAN_EXPERIMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    # No file: MLflow's own default store (what a plain `mlflow ui` opens) at the project root.
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db" and experiment_name() == "lwgan-study"
    (tmp_path / "mlflow.env").write_text("MLFLOW_TRACKING_URI=sqlite:///stores/a.db\nLWGAN_EXPERIMENT=exp-a\n")
    assert tracking_uri() == f"sqlite:///{tmp_path}/stores/a.db" and experiment_name() == "exp-a"
    # MLflow's own name wins over the older LWGAN_EXPERIMENT in the same file.
    (tmp_path / "mlflow.env").write_text("MLFLOW_TRACKING_URI=sqlite:///stores/a.db\nLWGAN_EXPERIMENT=old\nMLFLOW_EXPERIMENT_NAME=exp-a\n")
    assert experiment_name() == "exp-a"
    # The environment wins over the file; HTTP servers are just a URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5005")
    monkeypatch.setenv("LWGAN_EXPERIMENT", "exp-b")
    assert tracking_uri() == "http://127.0.0.1:5005" and experiment_name() == "exp-b"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "exp-c")
    assert experiment_name() == "exp-c"
    # The project's own mlflow.env holds the documented defaults, under MLflow's variable names.
    from pathlib import Path

    shipped = read_env_file(Path(__file__).resolve().parents[1] / "mlflow.env")
    assert shipped == {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db", "MLFLOW_EXPERIMENT_NAME": "lwgan-study"}


def test_settings_are_found_from_a_subfolder(tmp_path, monkeypatch):
    """A command run in a subfolder of the project uses the project's store, not a new empty one there."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "LWGAN_EXPERIMENT", "LWGAN_HOME"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "mlflow.env").write_text("MLFLOW_TRACKING_URI=sqlite:///store/ml.db\nMLFLOW_EXPERIMENT_NAME=mine\n")
    monkeypatch.chdir(project / "notebooks" / "deep")
    assert tracking_uri() == f"sqlite:///{project.resolve()}/store/ml.db" and experiment_name() == "mine"
    # The walk stops at the repository root: an mlflow.env above it is not this project's.
    (tmp_path / "mlflow.env").write_text("MLFLOW_TRACKING_URI=sqlite:///outer.db\n")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / ".git").mkdir()
    monkeypatch.chdir(tmp_path / "inner")
    assert tracking_uri() == f"sqlite:///{(tmp_path / 'inner').resolve()}/mlflow.db"
    # Outside any project: the current folder.
    (tmp_path / "mlflow.env").unlink()
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_writer_produces_the_interfaces_schema(tmp_path):
    uri = f"sqlite:///{tmp_path}/db/ml.db"
    tracker = StudyTracker(uri, "exp")
    again = StudyTracker(uri, "exp")  # the experiment is found, not created twice
    assert again.experiment_id == tracker.experiment_id
    tags = study_run_tags("/s/ens.yaml", "small", {"data_root": None, "body_model": None}, {"torch": "2.13"}, "abc")
    parent = tracker.start_study("ens", tags, "name: ens\n")
    child = tracker.start_trial(parent, "E1-s0", "E1", 0, {"lr_G": 1e-4, "spectral_norm": False, "data_root": None})
    history = [(step, {"loss/G_total": 1.0 / (step + 1), "eval/ssim": 0.5}) for step in range(600)]
    assert tracker.log_metrics(child, history) == 1200  # two batches of <= 1000
    info = {"device": "cpu", "dataset": {"kind": "synthetic", "path": "/d"}, "body_model": {"kind": "generated", "path": "/b.npz"},
            "backbones": [{"name": "vgg19", "status": "stand-in"}, {"name": "sphereface20", "status": "pretrained"}],
            "precision": "bf16", "precision_reason": "auto: NVIDIA H100 supports bf16", "cuda_graphs": True, "cuda_graphs_reason": "auto: CUDA device"}
    tracker.trial_info_tags(child, info)
    out = tmp_path / "trial"
    (out / "samples").mkdir(parents=True)
    (out / "config.yaml").write_text("lr_G: 0.0001\n")
    (out / "run_info.json").write_text("{}")
    (out / "samples" / "final.png").write_bytes(b"\x89PNG")
    (out / "samples" / "final_outputs.npz").write_bytes(b"PK")
    tracker.end_trial(child, "diverged", out, step=42, error="diverged at step 42: loss/G_total = nan")
    tracker.end_study(parent, {"completed": 0, "diverged": 1}, True, {"trial_id": "E1-s0", "value": 0.5})

    client = MlflowClient(uri)
    p, c = client.get_run(parent), client.get_run(child)
    assert p.info.run_name == "ens" and p.info.status == "FINISHED"
    assert {k: p.data.tags[k] for k in ("lwgan.role", "lwgan.study", "lwgan.profile", "lwgan.dataset_kind", "lwgan.body_model_kind", "lwgan.git_commit")} == {
        "lwgan.role": "study", "lwgan.study": "ens", "lwgan.profile": "small", "lwgan.dataset_kind": "synthetic",
        "lwgan.body_model_kind": "generated", "lwgan.git_commit": "abc"}
    assert json.loads(p.data.tags["lwgan.versions"]) == {"torch": "2.13"} and p.data.tags["lwgan.trials_diverged"] == "1"
    assert [a.path for a in client.list_artifacts(parent)] == ["study.yaml"]
    t = c.data.tags
    assert t["lwgan.precision"] == "bf16 (auto: NVIDIA H100 supports bf16); CUDA graphs (auto: CUDA device)"
    assert t["mlflow.parentRunId"] == parent and t["lwgan.role"] == "trial" and t["lwgan.trial_id"] == "E1-s0"
    assert (t["lwgan.variant"], t["lwgan.seed"], t["lwgan.status"], t["lwgan.diverged_step"]) == ("E1", "0", "diverged", "42")
    assert t["lwgan.error"].startswith("diverged at step 42")
    assert json.loads(t["lwgan.backbone_status"]) == {"vgg19": "stand-in", "sphereface20": "pretrained"}
    assert (t["lwgan.body_model"], t["lwgan.dataset"], t["lwgan.device"]) == ("/b.npz", "/d", "cpu")
    assert c.data.params == {"lr_G": "0.0001", "spectral_norm": "False", "data_root": "null", "variant": "E1", "seed": "0"}
    steps = [m.step for m in client.get_metric_history(child, "loss/G_total")]
    assert steps == list(range(600))
    assert sorted(a.path for a in client.list_artifacts(child)) == ["config.yaml", "run_info.json", "samples"]
    assert [a.path for a in client.list_artifacts(child, "samples")] == ["samples/final.png", "samples/final_outputs.npz"]
    found = client.search_runs([tracker.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in found] == [child]
    # --resume reopens the same runs instead of creating new ones.
    assert tracker.start_study("ens", tags, "x", run_id=parent) == parent
    assert tracker.start_trial(parent, "E1-s0", "E1", 0, {"lr_G": 1e-4}, run_id=child) == child
    assert client.get_run(child).info.status == "RUNNING" and len(client.search_runs([tracker.experiment_id])) == 2


def test_ui_command_and_missing_store(tmp_path, monkeypatch):
    assert ui_command("sqlite:////x/ml.db", 5001)[1:] == ["-m", "mlflow", "ui", "--backend-store-uri", "sqlite:////x/ml.db",
                                                        "--host", "127.0.0.1", "--port", "5001", "--workers", "1"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/none.db")
    with pytest.raises(UserError, match="no MLflow store .* run a study first"):
        command_ui(argparse.Namespace(port=5001))


def test_ui_serves_and_sigterm_frees_the_port(tmp_path):
    """`lwgan-study ui` answers on 127.0.0.1 and, on SIGTERM, takes mlflow's server processes with it."""
    import signal
    import socket
    import subprocess
    import urllib.request

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'ui.db'}"
    MlflowClient(uri).create_experiment("lwgan-study")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.Popen([sys.executable, "-m", "lwgan.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
                time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        time.sleep(1)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "the MLflow server outlived lwgan-study ui"
    finally:
        if proc.poll() is None:
            proc.kill()
