"""Where a training step's time goes on a GPU: step time of fp32 and bf16, each without and with CUDA
graphs (lwgan.train.graphs), at two batch sizes, and a profile of three steps of the default (bf16 with
graphs) and of eager fp32 at the first batch size (GPU busy time, kernel launches, the top operators).

    python benchmarks/gpu_anatomy.py [--device cuda] [--profile paper] [--batches 4,16] [--out DIR]
                                     [--configs fp32,fp32+graphs,bf16,bf16+graphs] [--cl]

The paper profile at 256 px with the target-feature cache off (every step does the full reference
work, as on real iPER). Each configuration is its own trainer in this process, one after another;
the first step (graph capture included) and one more are warm-up. Writes ``anatomy.json`` (s / step
per configuration, two repeats of 6 steps, capture seconds, the profile summaries) and
``profile_<config>.txt`` (operator tables) to ``--out`` (default ``$OUT`` or .). A configuration that
fails is recorded with its error and the next still runs. ``--device cpu --profile tiny --configs
fp32,bf16`` runs the same code on the CPU (how the script is tested without a GPU; graphs need CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import gc
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch


def make(device: str, profile: str, precision: str, channels_last: bool, batch: int, graphs: bool = False):
    from lwgan.profiles import resolve_config
    from lwgan.train.pair_stream import batches
    from lwgan.train.trainer import Trainer

    flat = {"device": device, "max_steps": 50, "precision": precision, "channels_last": channels_last,
            "batch_size": batch, "target_cache_mb": 0, "cuda_graphs": "on" if graphs else "off"}
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


def profile_steps(trainer, data, device: str, out: Path, name: str) -> dict:
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
    (out / f"profile_{name.replace('+', '_')}.txt").write_text(text)
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
    p.add_argument("--configs", default="fp32,fp32+graphs,bf16,bf16+graphs",
                   help="precision (fp32 | bf16) with optional +graphs (CUDA graphs) and +cl (channels_last)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (use --device cpu --profile tiny to test the script)")
        return 2
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                     "torch": torch.__version__, "profile": args.profile, "s_per_step": {}, "capture_s": {}, "errors": {}}
    sizes = [int(b) for b in args.batches.split(",")]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    profiled = {"bf16+graphs", "fp32"}  # the default on CUDA, and the reference's eager fp32
    for batch in sizes:
        for config in configs:
            precision, extras = config.split("+")[0], set(config.split("+")[1:])
            label = f"batch{batch}_{config}"
            try:
                trainer, data = make(args.device, args.profile, precision, "cl" in extras, batch, graphs="graphs" in extras)
                if trainer.graphs is not None:
                    results["capture_s"][label] = trainer.graphs.capture_seconds
                results["s_per_step"][label] = [timed(trainer, data, args.device) for _ in range(2)]
                print(label, [round(x, 4) for x in results["s_per_step"][label]], flush=True)
                if batch == sizes[0] and config in profiled:
                    results[f"profile_{label}"] = profile_steps(trainer, data, args.device, out, label)
                    print(json.dumps(results[f"profile_{label}"]), flush=True)
                if trainer.graphs is not None:
                    results.setdefault("graph_sites", {})[label] = trainer.graphs.summary()
            except Exception:  # noqa: BLE001 - record it and measure the next configuration
                results["errors"][label] = traceback.format_exc()
                print(label, "FAILED\n" + results["errors"][label], flush=True)
            trainer = data = None
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            (out / "anatomy.json").write_text(json.dumps(results, indent=1))
    for batch in sizes:
        base = results["s_per_step"].get(f"batch{batch}_fp32")
        for config in configs:
            got = results["s_per_step"].get(f"batch{batch}_{config}")
            if base and got:
                print(f"batch {batch} {config}: {min(got):.4f} s/step, {min(base) / min(got):.2f}x eager fp32", flush=True)
    (out / "anatomy.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
