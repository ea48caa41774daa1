"""Does the baseline learn as well at bf16 as at fp32? Same seeds, small profile, final-window val metrics.

Usage: python benchmarks/learning_check.py [--seeds 0,1,2] [--precisions fp32,bf16] [--parallel 2]
       [--threads 1] [--steps N] [--out DIR] [--json FILE]

Each (precision, seed) trains the small-profile baseline in its own process (``--parallel`` at a
time, ``--threads`` torch threads each: what a study does). Reported per run: the final-window mean
of the val ``eval/ssim_rec`` and ``eval/ssim`` (the report's rule: the last ceil(20%) of the logged
eval points), the wall time, and the share of the run spent outside training steps (eval, samples,
checkpoints), which must stay under 5%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lwgan import vocab
from lwgan.report.stats import window_size

KEYS = (vocab.EVAL_SSIM_REC, vocab.EVAL_SSIM)


def train_one(precision: str, seed: int, out: Path, steps: int | None, threads: int) -> dict:
    """Train one baseline run in this process; time the work around the training steps."""
    from lwgan.profiles import resolve_config
    from lwgan.train.metrics_log import read_metrics
    from lwgan.train.trainer import Trainer

    spent = {"outside": 0.0}

    class TimedTrainer(Trainer):
        def _timed(self, name, *args, **kwargs):
            start = time.perf_counter()
            try:
                return getattr(super(), name)(*args, **kwargs)
            finally:
                spent["outside"] += time.perf_counter() - start

        def _eval_outputs(self):
            return self._timed("_eval_outputs")

        def evaluate(self, outputs=None):
            return self._timed("evaluate", outputs)

        def write_samples(self, *args, **kwargs):
            return self._timed("write_samples", *args, **kwargs)

        def save(self, step):
            return self._timed("save", step)

    flat = {"device": "cpu", "precision": precision, "seed": seed, "num_threads": threads}
    if steps:
        flat["max_steps"] = steps
    cfg = resolve_config("small", flat)
    start = time.perf_counter()
    trainer = TimedTrainer(cfg, out, progress=False, profile="small")
    result = trainer.fit()
    wall = time.perf_counter() - start
    rows = [r for r in read_metrics(out / "metrics.jsonl") if vocab.EVAL_SSIM_REC in r]
    n = window_size(len(rows), 0.2)
    final = {k: statistics.fmean(r[k] for r in rows[-n:]) for k in KEYS}
    return {
        "precision": trainer.precision.name, "seed": seed, "status": result.status, "steps": result.step,
        "final_window_steps": [r["step"] for r in rows[-n:]], "final": final,
        "first": {k: rows[0][k] for k in KEYS}, "wall_s": wall, "outside_steps_s": spent["outside"],
        "outside_share": spent["outside"] / wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="default: the small profile's 300")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--json", default=None)
    p.add_argument("--one", nargs=3, metavar=("PRECISION", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        precision, seed, out = args.one
        print(json.dumps(train_one(precision, int(seed), Path(out), args.steps, args.threads)))
        return
    root = Path(args.out or tempfile.mkdtemp(prefix="lwgan-learning-"))
    jobs = [(pr, int(s)) for s in args.seeds.split(",") for pr in args.precisions.split(",")]
    running: list[tuple[subprocess.Popen, tuple[str, int]]] = []
    results = []
    while jobs or running:
        while jobs and len(running) < args.parallel:
            pr, seed = jobs.pop(0)
            cmd = [sys.executable, __file__, "--one", pr, str(seed), str(root / f"{pr}-s{seed}"), "--threads", str(args.threads)]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), (pr, seed)))
        time.sleep(1)
        for proc, job in list(running):
            if proc.poll() is None:
                continue
            running.remove((proc, job))
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"run {job} failed:\n{err[-4000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    results.sort(key=lambda r: (r["seed"], r["precision"]))
    precisions = list(dict.fromkeys(args.precisions.split(",")))
    print(f"\nruns in {root}\n")
    print("| seed | " + " | ".join(f"{pr} {k} (final window)" for k in KEYS for pr in precisions) + " | wall s (" + ", ".join(precisions) + ") | outside steps |")
    print("| --- " * (2 + len(KEYS) * len(precisions)) + "| --- |")
    for seed in dict.fromkeys(r["seed"] for r in results):
        by = {r["precision"]: r for r in results if r["seed"] == seed}
        cells = [f"{by[pr]['final'][k]:.3f}" for k in KEYS for pr in precisions]
        walls = ", ".join(f"{by[pr]['wall_s']:.0f}" for pr in precisions)
        share = ", ".join(f"{100 * by[pr]['outside_share']:.1f}%" for pr in precisions)
        print(f"| {seed} | " + " | ".join(cells) + f" | {walls} | {share} |")
    means = [statistics.fmean(r["final"][k] for r in results if r["precision"] == pr) for k in KEYS for pr in precisions]
    print("| mean | " + " | ".join(f"{m:.3f}" for m in means) + " | | |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
