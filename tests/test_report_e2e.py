"""Report end to end: a temp MLflow store filled by hand with the documented schema (3 variants x 3
seeds of 50 steps, sample grids, one diverged and one failed run) -> Markdown + PDF."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

STEPS = 50
SEEDS = (0, 1, 2)
VARIANTS = {  # name -> (config changes, factor on the G losses)
    "baseline": ({}, 1.0),
    "gp10": ({"gp_weight": 10.0}, 0.8),
    "ttur": ({"lr_G": 1e-4, "lr_D": 4e-4}, 1.0),
}
G_TERMS = {"loss/G_adv": 0.5, "loss/G_rec": 0.3, "loss/G_tsf": 2.0, "loss/G_style": 0.05, "loss/G_face": 1.5,
           "loss/G_mask": 0.4, "loss/G_mask_smooth": 0.02}


def _curves(seed: int, factor: float, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(1, steps + 1)
    decay = 1.0 + np.exp(-t / 12.0)
    out = {}
    for key, level in G_TERMS.items():
        out[key] = level * factor * decay * (1 + 0.03 * rng.standard_normal(steps))
    out["loss/G_total"] = sum(out[k] * w for k, w in zip(G_TERMS, (1, 10, 10, 5, 5, 1, 1)))
    d_wave = 0.1 * np.sin(t / 2.0 + seed)
    out["loss/D_real"] = 0.5 + d_wave + 0.02 * rng.standard_normal(steps)
    out["loss/D_fake"] = 0.5 - d_wave + 0.02 * rng.standard_normal(steps)
    out["loss/D_gp"] = np.zeros(steps)
    out["loss/D_total"] = out["loss/D_real"] + out["loss/D_fake"]
    out["D/real_mean"] = 0.4 + 0.1 * np.tanh(t / 20)
    out["D/fake_mean"] = -0.4 + 0.1 * np.tanh(t / 20)
    out["lr/G"] = np.full(steps, 2e-4) * np.linspace(1, 0.1, steps)
    out["lr/D"] = np.full(steps, 2e-4) * np.linspace(1, 0.1, steps)
    return out


def _sample_png(path: Path, shade: int) -> Path:
    from PIL import Image

    grid = np.zeros((2 * 32, 5 * 32, 3), np.uint8)
    for col in range(5):
        grid[:, col * 32:(col + 1) * 32] = (shade, 40 * col, 255 - shade)
    Image.fromarray(grid).save(path)
    return path


def fill_store(root: Path) -> tuple[str, str]:
    """A study 'ablation' in sqlite:///root/mlruns.db; returns (tracking uri, parent run id)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from lwgan.profiles import resolve_config

    uri = f"sqlite:///{root / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("lwgan-study", artifact_location=(root / "artifacts").as_uri())
    study_yaml = root / "study.yaml"
    study_yaml.write_text("name: ablation\nvariants:\n  gp10: {gp_weight: 10}\n  ttur: {lr_G: 1.0e-4, lr_D: 4.0e-4}\n")
    parent = client.create_run(exp, run_name="ablation", tags={
        "lwgan.role": "study", "lwgan.study": "ablation", "lwgan.profile": "tiny", "lwgan.git_commit": "abc1234",
        "lwgan.versions": json.dumps({"torch": "2.13.0", "mlflow": "3.17.2"}), "lwgan.dataset_kind": "synthetic",
        "lwgan.body_model_kind": "generated", "lwgan.study_file": str(study_yaml),
    })
    pid = parent.info.run_id
    client.log_artifact(pid, str(study_yaml))
    trials = [(v, s, "completed") for v in VARIANTS for s in SEEDS] + [("ttur", 3, "diverged"), ("gp10", 3, "failed")]
    for i, (variant, seed, status) in enumerate(trials):
        changes, factor = VARIANTS[variant]
        cfg = resolve_config("tiny", {**changes, "seed": seed, "max_steps": STEPS})
        tags = {
            "mlflow.parentRunId": pid, "lwgan.role": "trial", "lwgan.trial_id": f"t{i:03d}", "lwgan.variant": variant,
            "lwgan.seed": str(seed), "lwgan.status": status,
            "lwgan.backbone_status": json.dumps({"vgg19": "stand-in", "sphereface20": "stand-in"}),
            "lwgan.body_model": "generated", "lwgan.dataset": "synthetic:/cache/synth", "lwgan.device": "cpu",
        }
        steps = STEPS
        if status == "diverged":
            tags.update({"lwgan.diverged_step": "30", "lwgan.error": "diverged at step 30: loss/G_total = nan"})
            steps = 30
        if status == "failed":
            tags["lwgan.error"] = "RuntimeError: out of memory while allocating the generator"
            steps = 5
        run = client.create_run(exp, run_name=f"{variant}-s{seed}", tags=tags)
        rid = run.info.run_id
        params = {k: str(v) for k, v in cfg.to_flat().items()}
        params.update(variant=variant, seed=str(seed))
        from mlflow.entities import Param

        client.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
        rng = np.random.default_rng(100 * i + seed)
        curves = _curves(seed, factor, steps, rng)
        if status == "diverged":
            curves["loss/G_total"][-1] = math.nan
        metrics = [Metric(k, float(v), 0, step + 1) for k, vals in curves.items() for step, v in enumerate(vals)]
        metrics += [Metric("eval/ssim", 0.6 + 0.01 * seed + (0.05 if variant == "gp10" else 0), 0, s) for s in (25, 50) if s <= steps]
        metrics += [Metric("eval/psnr", 18.0 + 0.2 * seed, 0, s) for s in (25, 50) if s <= steps]
        for start in range(0, len(metrics), 900):
            client.log_batch(rid, metrics=metrics[start:start + 900])
        if status != "failed":
            (root / f"run{i}").mkdir()
            client.log_artifact(rid, str(_sample_png(root / f"run{i}" / "final.png", 60 * list(VARIANTS).index(variant))), "samples")
        client.set_terminated(rid, "FINISHED" if status == "completed" else "FAILED")
    client.set_terminated(pid, "FINISHED")
    return uri, pid
