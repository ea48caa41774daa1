"""How should two trials share two cores: two trials at once with 1 torch thread each, or one at a
time with 2 threads? Wall time of the same work (two trainings of N steps) both ways, interleaved.

Usage: python benchmarks/thread_sharing.py [--steps 20] [--repeats 2] [--variant bf16] [--profile small]
       python benchmarks/thread_sharing.py --at-once 2,3,1 [--steps 40] [--repeats 2]

``--at-once K,...`` measures instead how many one-thread trainings should run together: K trainings
started at once, their timed steps per second added up (steady state, process start excluded), for
each K in turn, repeat by repeat. Three on two cores is what lwgan.study.packing does with the last
trials of a study.

A "training" is benchmarks/train_step.py's measurement in its own process (build, one warm-up step,
N timed steps), so the wall time includes what a trial pays to start. The study runner's default
(``resources: {cpu: 1}``, concurrency = cores / cpu) is 2 x 1 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEP = Path(__file__).resolve().parent / "train_step.py"


def training(profile: str, variant: str, steps: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, str(STEP), "--one", profile, "cpu", variant, "--iters", str(steps), "--threads", str(threads)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def k_at_once(profile: str, variant: str, steps: int, k: int) -> tuple[float, list[dict]]:
    """``k`` one-thread trainings started together; the wall time until all finished, and their rows."""
    start = time.perf_counter()
    procs = [training(profile, variant, steps, 1) for _ in range(k)]
    rows = [finish(p) for p in procs]
    return time.perf_counter() - start, rows


def two_at_once(profile: str, variant: str, steps: int) -> tuple[float, list[dict]]:
    return k_at_once(profile, variant, steps, 2)


def one_at_a_time(profile: str, variant: str, steps: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    rows = [finish(training(profile, variant, steps, 2)) for _ in range(2)]
    return time.perf_counter() - start, rows



def at_once_table(profile: str, variant: str, steps: int, repeats: int, ks: list[int]) -> None:
    rates: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(repeats):
        for k in ks:
            wall, rows = k_at_once(profile, variant, steps, k)
            rates[k].append(sum(1 / r["s_per_step"] for r in rows))
            per_step = ", ".join(f"{r['s_per_step']:.3f}" for r in rows)
            print(f"{k} at once: {wall:.1f} s wall, s/step {per_step}, {rates[k][-1]:.2f} steps/s in all", flush=True)
    print(f"\n{profile}, {variant}, trainings of {steps} timed steps, one thread each, {repeats} repeats\n")
    print("| trainings at once | steps / s, all together (per repeat) | median |")
    print("| --- | --- | --- |")
    for k in ks:
        print(f"| {k} | {', '.join(f'{r:.2f}' for r in rates[k])} | {statistics.median(rates[k]):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="small")
    p.add_argument("--variant", default="bf16")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--at-once", default=None, help="comma-separated counts of one-thread trainings run together (e.g. 2,3,1)")
    args = p.parse_args()
    if args.at_once:
        at_once_table(args.profile, args.variant, args.steps, args.repeats, [int(k) for k in args.at_once.split(",")])
        return
    walls: dict[str, list[float]] = {"2 x 1 thread": [], "1 x 2 threads": []}
    steps: dict[str, list[float]] = {k: [] for k in walls}
    for _ in range(args.repeats):
        for name, fn in (("2 x 1 thread", two_at_once), ("1 x 2 threads", one_at_a_time)):
            wall, rows = fn(args.profile, args.variant, args.steps)
            walls[name].append(wall)
            steps[name].append(statistics.fmean(r["s_per_step"] for r in rows))
            print(f"{name}: {wall:.1f} s wall, {steps[name][-1]:.3f} s/step per training", flush=True)
    ratios = [b / a for a, b in zip(walls["2 x 1 thread"], walls["1 x 2 threads"])]
    print(f"\n{args.profile}, {args.variant}, two trainings of {args.steps} steps each, {args.repeats} repeats\n")
    print("| layout | wall s (per repeat) | s / step of one training | trainings' steps / s |")
    print("| --- | --- | --- | --- |")
    for name in walls:
        per = statistics.median(steps[name])
        rate = 2 / per if name.startswith("2") else 1 / per
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in walls[name])} | {per:.3f} | {rate:.2f} |")
    print(f"\n1 x 2 threads wall / 2 x 1 thread wall: {', '.join(f'{r:.2f}' for r in ratios)} (> 1: two at once is faster)")


if __name__ == "__main__":
    main()
