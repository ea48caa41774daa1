"""End to end: a real 2-variant x 1-seed study at the tiny profile through Ray and the real Trainer,
tracked in a temporary SQLite MLflow store, checked with MlflowClient against docs/INTERFACES.md."""

import json
import os
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from lwgan.cli import main

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


def test_real_study_through_ray_and_the_trainer(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path}/ml.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_EXPERIMENT", "e2e")
    monkeypatch.setenv("LWGAN_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    study = tmp_path / "e2e.yaml"
    study.write_text(yaml.safe_dump({
        "name": "e2e", "description": "two variants, one seed", "seeds": 1, "default_profile": "tiny",
        "variants": {"GP2": {"description": "gradient penalty 2", "gp_weight": 2, "lr_G": 1e-4}},
    }))
    code = main(["run", str(study), "--steps", str(STEPS), "--storage", str(tmp_path / "runs"), "--no-report", "--max-concurrent", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 trials: 2 completed, 0 diverged, 0 failed, 0 pruned" in out

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e")
    parents = client.search_runs([exp.experiment_id], "tags.`lwgan.role` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "e2e" and parent.info.status == "FINISHED"
    assert parent.data.tags["lwgan.profile"] == "tiny" and parent.data.tags["lwgan.dataset_kind"] == "synthetic"
    assert "torch" in json.loads(parent.data.tags["lwgan.versions"])
    runs = {r.data.tags["lwgan.trial_id"]: r for r in
            client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert set(runs) == {"baseline-s0", "GP2-s0"}
    for trial_id, run in runs.items():
        tags, params = run.data.tags, run.data.params
        assert tags["lwgan.role"] == "trial" and tags["lwgan.status"] == "completed" and run.info.status == "FINISHED"
        assert tags["lwgan.variant"] == trial_id.split("-s")[0] and tags["lwgan.seed"] == "0"
        assert tags["lwgan.dataset_kind"] == "synthetic" and tags["lwgan.device"] == "cpu"
        assert tags["lwgan.precision"].split(" (")[0] in {"bf16", "fp32"}  # resolved by precision: auto, with its reason
        status = json.loads(tags["lwgan.backbone_status"])
        assert set(status.values()) <= {"stand-in", "pretrained", "absent"} and status["lpips"] == "absent"  # quality metrics: absent without weights
        assert params["max_steps"] == str(STEPS) and params["image_size"] == "32" and params["seed"] == "0"
        hist = client.get_metric_history(run.info.run_id, "loss/G_total")
        assert [m.step for m in hist] == list(range(1, STEPS + 1))
        assert all(m.value == m.value for m in hist)  # finite
        ssim_steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/ssim")]
        assert ssim_steps[0] == 0 and ssim_steps[-1] == STEPS
        assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == ["samples/final.png", "samples/final_outputs.npz"]
        assert {"config.yaml", "run_info.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert (runs["GP2-s0"].data.params["gp_weight"], runs["GP2-s0"].data.params["lr_G"]) == ("2.0", "0.0001")
    assert (runs["baseline-s0"].data.params["gp_weight"], runs["baseline-s0"].data.params["lr_G"]) == ("0.0", "0.0002")
    assert runs["GP2-s0"].data.metrics["loss/D_gp"] >= 0 and runs["GP2-s0"].data.metrics["lr/G"] == pytest.approx(1e-4, rel=0.5)
