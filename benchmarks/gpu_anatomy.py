"""Where a training step's time goes on a GPU: step time of fp32 and bf16 (+ channels_last) at two batch
sizes, and a profile of three bf16 steps at the first batch size (GPU busy time, kernel launches, the top operators).

    python benchmarks/gpu_anatomy.py [--device cuda] [--profile paper] [--batches 4,16] [--out DIR]

The paper profile at 256 px with the target-feature cache off (every step does the full reference
work, as on real iPER). Writes ``anatomy.json`` (s / step per configuration, two repeats of 6 steps,
and the profile summary) and ``profile.txt`` (operator tables) to ``--out`` (default ``$OUT`` or .).
``--device cpu --profile tiny`` runs the same code on the CPU (how the script is tested without a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch


def make(device: str, profile: str, precision: str, channels_last: bool, batch: int):
    from lwgan.profiles import resolve_config
    from lwgan.train.pair_stream import batches
    from lwgan.train.trainer import Trainer

    flat = {"device": device, "max_steps": 50, "precision": precision, "channels_last": channels_last,
            "batch_size": batch, "target_cache_mb": 0}
    cfg = resolve_config(profile, flat)
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix="lwgan-anatomy-"), progress=False, profile=profile)
    trainer.prepare()
    data = list(batches(trainer.stream, batch, 0, batch * 12))
    for b in data:
        trainer._pair_geometry(b)  # warm correspondence cache, as after the first epochs
    for i in range(2):
        trainer._train_step(data[i], i)  # warm-up: allocator, kernel choice
    return trainer, data


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(trainer, data, device: str, n: int = 6) -> float:
    sync(device)
    start = time.perf_counter()
    for i in range(2, 2 + n):
        trainer._train_step(data[i], i)
    sync(device)
    return (time.perf_counter() - start) / n


def profile_steps(trainer, data, device: str, out: Path) -> dict:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        for i in range(8, 11):
            trainer._train_step(data[i], i)
        sync(device)
    table = prof.key_averages()
    text = table.table(sort_by="self_cpu_time_total", row_limit=40)
    if device.startswith("cuda"):
        text += "\n\n" + table.table(sort_by="self_cuda_time_total", row_limit=25)
    (out / "profile.txt").write_text(text)
    launches = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")
    return {
        # kernels only: operator rows repeat their kernels' device time (the sum over all rows counts it twice)
        "gpu_busy_ms_per_step": sum(e.self_device_time_total for e in table if e.device_type == torch.autograd.DeviceType.CUDA) / 3 / 1e3,
        "cpu_self_ms_per_step": sum(e.self_cpu_time_total for e in table) / 3 / 1e3,
        "kernel_launches_per_step": sum(e.count for e in table if e.key in launches) / 3,
        "syncs_per_step": {e.key: e.count / 3 for e in table if "ynchronize" in e.key or e.key == "aten::_local_scalar_dense"},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--profile", default="paper")
    p.add_argument("--batches", default="4,16")
    p.add_argument("--out", default=os.environ.get("OUT") or ".")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (use --device cpu --profile tiny to test the script)")
        return 2
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                     "torch": torch.__version__, "profile": args.profile, "s_per_step": {}}
    sizes = [int(b) for b in args.batches.split(",")]
    for batch in sizes:
        for precision, channels_last in (("fp32", False), ("bf16", False), ("bf16", True)):
            label = f"batch{batch}_{precision}{'+cl' if channels_last else ''}"
            trainer, data = make(args.device, args.profile, precision, channels_last, batch)
            results["s_per_step"][label] = [timed(trainer, data, args.device) for _ in range(2)]
            print(label, [round(x, 4) for x in results["s_per_step"][label]], flush=True)
            if batch == sizes[0] and precision == "bf16" and not channels_last:  # the default at the first batch
                results[f"profile_batch{batch}_bf16"] = profile_steps(trainer, data, args.device, out)
                print(json.dumps(results[f"profile_batch{batch}_bf16"]), flush=True)
            del trainer
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    (out / "anatomy.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
