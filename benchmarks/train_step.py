"""Throughput and peak memory of one full LWGAN training step (geometry, G forward/loss/step, D loss/step).

Usage: python benchmarks/train_step.py [--profiles small,paper] [--devices cpu,cuda] [--iters 5]
       [--paper-batch 2] [--threads N]
Prints a Markdown table. On CUDA the step runs with bf16 autocast and channels_last. Data is the
synthetic mini-iPER (resized to the profile's size); backbones are the stand-ins (same cost as the
pretrained ones). The first iteration (warm-up, geometry cache fill) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

from lwgan.profiles import resolve_config
from lwgan.train.pair_stream import batches
from lwgan.train.trainer import Trainer


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux VmHWM); each configuration runs in its own process."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def bench(profile: str, device: str, iters: int, batch: int | None) -> dict:
    overrides = {"device": device, "max_steps": iters + 1}
    if batch is not None:
        overrides["batch_size"] = batch
    if device.startswith("cuda"):
        overrides.update(amp=True, channels_last=True)
    cfg = resolve_config(profile, overrides)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, progress=False, profile=profile)
        trainer.prepare()
        batch_data = next(iter(batches(trainer.stream, cfg.data.batch_size, 0, cfg.data.batch_size)))
        trainer._train_step(batch_data, 0)  # warm-up: geometry cache, allocator, cuDNN autotune
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        sync()
        start = time.perf_counter()
        for i in range(iters):
            trainer._train_step(batch_data, i + 1)
        sync()
        seconds = (time.perf_counter() - start) / iters
        peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else peak_rss_bytes()
    return {
        "profile": profile,
        "device": device,
        "size": cfg.model.image_size,
        "batch": cfg.data.batch_size,
        "s_per_step": seconds,
        "images_per_s": cfg.data.batch_size / seconds,
        "peak_mib": peak / 2**20,
        "peak_kind": "GPU allocated" if device.startswith("cuda") else "process RSS",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="small,paper")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--paper-batch", type=int, default=2, help="paper-profile batch on CPU (the reference uses 8)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--one", nargs=3, metavar=("PROFILE", "DEVICE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:  # child process: one configuration, JSON on the last line
        profile, device, batch = args.one
        print(json.dumps(bench(profile, device, args.iters, int(batch) if batch != "-" else None)))
        return
    rows = []
    for device in args.devices.split(","):
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"<!-- {device}: not available, skipped -->")
            continue
        for profile in args.profiles.split(","):
            batch = str(args.paper_batch) if (profile == "paper" and device == "cpu") else "-"
            cmd = [sys.executable, __file__, "--one", profile, device, batch, "--iters", str(args.iters)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, {name}\n")
    print("| profile | device | size | batch | s / step | images / s | peak memory (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        dev = r["device"] + (" (bf16, channels_last)" if r["device"].startswith("cuda") else "")
        print(f"| {r['profile']} | {dev} | {r['size']} | {r['batch']} | {r['s_per_step']:.3f} | {r['images_per_s']:.2f} | {r['peak_mib']:.0f} ({r['peak_kind']}) |")


if __name__ == "__main__":
    main()
