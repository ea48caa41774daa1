"""Study overhead: wall time of K trials run as a study (Ray Tune + MLflow tracking, one at a time) against
the same K trainings in a plain Python loop (same Trainer, same configs, same thread count).

    python benchmarks/study_overhead.py --trials 2 --steps 60 --profile small

Prints one Markdown table row per measurement and the ratio; the loop runs first so both see a warm
synthetic-dataset cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml


def plain_loop(configs: list[dict], out: Path, threads: int) -> float:
    import torch

    from lwgan.config import TrainConfig
    from lwgan.train.trainer import Trainer

    torch.set_num_threads(threads)
    start = time.perf_counter()
    for i, flat in enumerate(configs):
        Trainer(TrainConfig.from_flat(flat), out / f"loop-{i}", progress=False).fit()
    return time.perf_counter() - start


def as_study(path: Path, profile: str, steps: int, storage: Path) -> float:
    from lwgan.cli import main

    start = time.perf_counter()
    code = main(["run", str(path), "--profile", profile, "--steps", str(steps), "--storage", str(storage),
                 "--max-concurrent", "1", "--no-report"])
    took = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"study failed with exit code {code}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="K: trials (seeds of the baseline)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--profile", default="small")
    args = parser.parse_args()

    from lwgan.study.spec import parse_study, resolve_study

    work = Path(tempfile.mkdtemp(prefix="lwgan-overhead-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/ml.db"
    os.environ["LWGAN_HOME"] = str(work)
    data = {"name": "overhead", "description": "benchmark", "seeds": args.trials, "default_profile": args.profile,
            "profiles": {args.profile: {"seeds": args.trials}}}
    path = work / "overhead.yaml"
    path.write_text(yaml.safe_dump(data))
    resolved = resolve_study(parse_study(data, str(path)), args.profile, steps=args.steps)
    configs = [t.config for t in resolved.trials]

    loop_s = plain_loop(configs, work, threads=1)
    study_s = as_study(path, args.profile, args.steps, work / "runs")
    per_trial = loop_s / len(configs)
    print("| trials | steps | profile | per trial (loop) | plain loop | study | overhead |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {len(configs)} | {args.steps} | {args.profile} | {per_trial:.1f} s | {loop_s:.1f} s | {study_s:.1f} s | "
          f"{(study_s / loop_s - 1) * 100:+.1f}% |")


if __name__ == "__main__":
    main()
