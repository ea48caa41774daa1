"""How closely a run with CUDA graphs follows one without, against how closely two runs without graphs
follow each other (on CUDA, atomics in the LWB's grid_sample backward add in any order, so two eager
runs already differ in the last bits and a GAN amplifies that step by step).

    python benchmarks/graphs_agreement.py [--steps 6] [--profile tiny] [--precisions fp32,bf16] [--out DIR]

Per precision: three trainings of the same seed (eager, eager again, graphs); prints, per step, the
largest relative difference over the losses and gradient norms of eager vs eager and of eager vs
graphs. Writes ``agreement.json`` to ``--out`` (default ``$OUT`` or .). Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

KEYS_PREFIXES = ("loss/", "grad_norm/")


def run(profile: str, precision: str, graphs: str, steps: int) -> list[dict[str, float]]:
    from lwgan.profiles import resolve_config
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    cfg = resolve_config(profile, {"device": "cuda", "precision": precision, "cuda_graphs": graphs, "max_steps": steps,
                                   "eval_every": steps, "sample_every": steps, "checkpoint_every": steps})
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="lwgan-agree-"), progress=False, profile=profile)
    trainer.fit()
    if graphs == "on":
        failed = trainer.graphs.summary()["capture_failures"]
        if failed:
            raise RuntimeError(f"captures failed: {failed}")
    return [{k: v for k, v in r.items() if k.startswith(KEYS_PREFIXES)} for r in read_metrics(trainer.out_dir / "metrics.jsonl") if r["step"] > 0]


def worst(a: list[dict[str, float]], b: list[dict[str, float]]) -> list[float]:
    return [max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-8) for k in x if k in y) for x, y in zip(a, b)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--profile", default="tiny")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--out", default=os.environ.get("OUT") or ".")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("CUDA is not available here: this script compares CUDA runs")
        return 2
    warnings.simplefilter("ignore")
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "profile": args.profile}
    for precision in args.precisions.split(","):
        eager, again, graphed = (run(args.profile, precision, g, args.steps) for g in ("off", "off", "on"))
        results[precision] = {"eager_vs_eager": worst(eager, again), "eager_vs_graphs": worst(eager, graphed)}
        for name, values in results[precision].items():
            print(precision, name, " ".join(f"{v:.2e}" for v in values), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "agreement.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
