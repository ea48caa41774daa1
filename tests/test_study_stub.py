"""Not a test: a stand-in with the Trainer contract (docs/INTERFACES.md) for the study plumbing tests: deterministic
metrics from the config, checkpoints, resume, divergence, artifacts; fast and torch-free. Ray workers
import it by name (the tests put this folder on PYTHONPATH)."""

from __future__ import annotations

import errno
import json
import math
import os
import time
from pathlib import Path

from lwgan.train.callbacks import CallbackList, TrainResult

# 1x1 PNG: a real image file for the samples/final.png artifact.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077053e0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


def stub_metrics(cfg, step: int) -> dict[str, float]:
    loss = cfg.losses.lambda_rec * 0.1 / (1 + step * cfg.optim.lr_G * 1e3)
    return {"loss/G_total": loss, "loss/G_rec": loss / 2, "loss/D_total": 0.5 + 0.01 * step, "lr/G": cfg.optim.lr_G}


def stub_ssim(cfg, step: int) -> float:
    return 0.3 + 0.1 * math.log10(cfg.optim.lr_G * 1e4) + 0.001 * step + 0.0001 * cfg.run.seed


class StubTrainer:
    def __init__(self, cfg, out_dir, callbacks=(), progress=True, profile=None):
        self.cfg, self.out_dir, self.callbacks, self.profile = cfg, Path(out_dir), CallbackList(callbacks), profile

    def fit(self) -> TrainResult:
        cfg, out = self.cfg, self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        ckpt = out / "checkpoints" / "last.pt"
        start = json.loads(ckpt.read_text())["step"] if ckpt.is_file() else 0
        total = cfg.run.max_steps or 10
        (out / "config.yaml").write_text("\n".join(f"{k}: {v}" for k, v in cfg.to_flat().items()))
        info = {"device": "cpu", "dataset": {"kind": "synthetic", "path": "/stub/data"},
                "body_model": {"kind": "generated", "path": "/stub/body.npz"},
                "backbones": [{"name": "vgg19", "status": "stand-in"}, {"name": "sphereface20", "status": "stand-in"}],
                "profile": self.profile, "total_steps": total, "resumed_from_step": start,
                "pid": os.getpid()}  # which Ray actor ran it (the packing tests count actors)
        (out / "run_info.json").write_text(json.dumps(info))
        self.callbacks.on_start(info)
        delay = float(os.environ.get("LWGAN_STUB_STEP_S", "0.01"))
        metrics: dict[str, float] = {}
        for step in range(start + 1, total + 1):
            time.sleep(delay)
            metrics = stub_metrics(cfg, step)
            if metrics["loss/G_total"] > cfg.run.divergence_threshold:
                self.callbacks.on_metrics(step, metrics)
                result = TrainResult("diverged", step, metrics, f"diverged at step {step}: loss/G_total", str(out))
                self.callbacks.on_end(result)
                return result
            if step % cfg.run.eval_every == 0 or step == total:
                metrics["eval/ssim"] = stub_ssim(cfg, step)
            self.callbacks.on_metrics(step, metrics)
            if step % cfg.run.checkpoint_every == 0 or step == total:
                self.callbacks.before_checkpoint(step)
                if os.environ.get("LWGAN_STUB_DISK_FULL") == f"{out.name}:{step}":  # the trainer's own error for it
                    from lwgan.train.checkpoint import disk_full_error

                    raise disk_full_error(ckpt, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(ckpt)))
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                ckpt.write_text(json.dumps({"step": step}))
                self.callbacks.on_checkpoint(step, ckpt)
        (out / "samples").mkdir(exist_ok=True)
        (out / "samples" / "final.png").write_bytes(PNG)
        result = TrainResult("completed", total, metrics, None, str(out))
        self.callbacks.on_end(result)
        return result
