"""Throughput and peak memory of one full LWGAN training step, fp32 and bf16 side by side in one run.

Usage: python benchmarks/train_step.py [--profiles small] [--device cpu] [--variants fp32,bf16]
       [--iters 5] [--repeats 3] [--threads N] [--batch B] [--json FILE] [--in-process]
       [--set KEY=VALUE ...] [--warm-targets]

A variant is a precision (fp32 | bf16) with optional ``+cl`` (channels_last), ``+compile``
(torch.compile of G and D), ``+graphs`` (CUDA graphs of the step's network calls; without it
``cuda_graphs`` is off, so ``fp32`` is the reference's eager step on every device) and ``+nocache`` (target_cache_mb = 0: target features every step). One full step = pair geometry (warm correspondence cache) + G forward +
the G losses + G step + D loss + D step, with the stand-in backbones (same cost as the pretrained
ones) on the synthetic mini-iPER resized to the profile's size. Each measurement runs in its own
process (peak memory is that process's: VmHWM on CPU, max_memory_allocated on CUDA); the variants
are interleaved repeat by repeat, so on a shared machine they meet the same load, and the ratio
to the first variant (per repeat, then the median) is the number that counts; the process's CPU time
per step is reported too (less sensitive to other jobs than wall time). The first step
(warm-up: geometry cache, allocator, oneDNN / cuDNN kernel choice, compilation) is timed apart.
The target features (lwgan.models.target_features) are computed the first time a frame is drawn:
``--warm-targets`` computes them for the timed batches first (the steady state of a small-profile
run, where each frame is drawn ~8 times); ``--set target_cache_mb=0`` times the full per-step work
(a real iPER run, whose frames rarely repeat within the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, ContextManager
from dataclasses import dataclass

import torch

from lwgan.cli_flags import parse_sets  # --set KEY=VALUE, as the CLI reads it


@dataclass(frozen=True)
class Variant:
    precision: str  # fp32 | bf16
    channels_last: bool
    compile: bool
    nocache: bool = False
    graphs: bool = False

    @classmethod
    def parse(cls, text: str) -> "Variant":
        parts = text.strip().split("+")
        extras = set(parts[1:])
        if parts[0] not in ("fp32", "bf16") or not extras <= {"cl", "compile", "nocache", "graphs"}:
            raise SystemExit(f"--variants: bad variant {text!r} (allowed: fp32 | bf16, then any of +cl, +compile, +graphs, +nocache)")
        if {"compile", "graphs"} <= extras:
            raise SystemExit(f"--variants: {text!r}: +compile and +graphs are separate options (pick one)")
        return cls(parts[0], "cl" in extras, "compile" in extras, "nocache" in extras, "graphs" in extras)

    @property
    def label(self) -> str:
        return (self.precision + ("+cl" if self.channels_last else "") + ("+compile" if self.compile else "")
                + ("+graphs" if self.graphs else "") + ("+nocache" if self.nocache else ""))

    def overrides(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last, "cuda_graphs": "on" if self.graphs else "off",
                **({"target_cache_mb": 0} if self.nocache else {})}


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux VmHWM); each configuration runs in its own process."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def warm_target_features(trainer, batch: dict) -> None:
    """Compute (and cache) the batch's target features, as a run does the first time it draws a frame."""
    _, tgt_img = trainer._images(batch)
    geom = trainer._pair_geometry(batch)
    keys = list(batch["tgt_key"])
    with torch.no_grad(), trainer._autocast():
        if trainer.objective.vgg is not None:
            trainer.objective.targets.vgg(tgt_img, keys)
        if trainer.objective.face is not None:
            trainer.objective.targets.face(tgt_img, geom.head_box, keys)


def prepared_trainer(profile: str, device: str, variant: Variant, iters: int, batch: int | None,
                     overrides: dict | None, out: str):
    """A prepared Trainer of ``variant`` (precision, layout, cache, compile) for ``iters`` timed steps in ``out``."""
    from lwgan.profiles import resolve_config
    from lwgan.train.trainer import Trainer

    flat = {"device": device, "max_steps": iters + 1, **variant.overrides()}
    if batch is not None:
        flat["batch_size"] = batch
    flat.update(overrides or {})
    trainer = Trainer(resolve_config(profile, flat), out, progress=False, profile=profile)
    trainer.prepare()
    if variant.compile:
        from lwgan.models.calls import NetCalls

        trainer.G = trainer.objective.G = torch.compile(trainer.G)
        trainer.D = trainer.objective.D = torch.compile(trainer.D)
        trainer.objective.calls = NetCalls.plain(trainer.G, trainer.D, trainer.vgg, trainer.face)  # the step calls through these
    return trainer


def bench(profile: str, device: str, variant: Variant, iters: int, batch: int | None, overrides: dict | None = None,
          warm_targets: bool = False) -> dict:
    """Time ``iters`` training steps of one configuration in this process."""
    from lwgan.train.pair_stream import batches

    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as out:
        trainer = prepared_trainer(profile, device, variant, iters, batch, overrides, out)
        cfg = trainer.cfg
        stream = batches(trainer.stream, cfg.data.batch_size, 0, cfg.data.batch_size * (iters + 1))
        data = list(stream)
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        start = time.perf_counter()
        trainer._train_step(data[0], 0)  # warm-up: geometry cache, allocator, kernel choice, compilation
        sync()
        warmup = time.perf_counter() - start
        for b in data[1:]:  # fill the correspondence cache (as in training after the first epochs)
            trainer._pair_geometry(b)
            if warm_targets:  # and the target features (a small-profile run draws each frame ~8 times)
                warm_target_features(trainer, b)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        for i, b in enumerate(data[1:]):
            trainer._train_step(b, i + 1)
        sync()
        seconds = (time.perf_counter() - start) / iters
        cpu_seconds = (time.process_time() - cpu_start) / iters
        peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    return {
        "profile": profile, "device": device, "variant": variant.label, "precision": trainer.precision.name,
        "size": cfg.model.image_size, "batch": cfg.data.batch_size, "threads": torch.get_num_threads(),
        "s_per_step": seconds, "cpu_s_per_step": cpu_seconds, "images_per_s": cfg.data.batch_size / seconds, "warmup_s": warmup,
        "peak_mib": peak / 2**20, "peak_kind": "GPU allocated" if cuda else "process RSS",
    }


def in_process(profile: str, device: str, variants: list[str], iters: int, repeats: int, batch: int | None,
               overrides: dict | None = None, warm_targets: bool = False) -> list[dict]:
    """All variants' trainers in this one process, their steps interleaved repeat by repeat: every
    variant meets the same load, and CPU time (one thread) is the fair measure on a shared machine."""
    from lwgan.train.pair_stream import batches

    trainers = {label: prepared_trainer(profile, device, Variant.parse(label), iters, batch, overrides,
                                        tempfile.mkdtemp(prefix="lwgan-step-")) for label in variants}
    size = next(iter(trainers.values())).cfg.data.batch_size
    data = list(batches(next(iter(trainers.values())).stream, size, 0, size * (iters + 1)))
    for trainer in trainers.values():
        for b in data:
            trainer._pair_geometry(b)
            if warm_targets:
                warm_target_features(trainer, b)
        trainer._train_step(data[0], 0)
    rows = []
    for _ in range(repeats):
        for label, trainer in trainers.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for i, b in enumerate(data[1:]):
                trainer._train_step(b, i + 1)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds, cpu_seconds = (time.perf_counter() - start) / iters, (time.process_time() - cpu_start) / iters
            rows.append({"profile": profile, "device": device, "variant": label, "precision": trainer.precision.name,
                         "size": trainer.cfg.model.image_size, "batch": size, "threads": torch.get_num_threads(),
                         "s_per_step": seconds, "cpu_s_per_step": cpu_seconds, "images_per_s": size / seconds,
                         "warmup_s": float("nan"), "peak_mib": float("nan"), "peak_kind": "n/a (one process)"})
    return rows


def patched_step_ab(arms: dict[str, Callable[[], ContextManager]], blocks: int, steps_per_block: int,
                    skip_blocks: int = 0) -> dict[str, list[float]]:
    """CPU seconds per step of one small-profile bf16 trainer (target features warm), with each arm's
    patch (a context manager factory) in force in turn, ``steps_per_block`` steps at a time, the arms'
    order alternating block by block, the first ``skip_blocks`` blocks not kept: an A/B of one code path
    inside the whole step, in one process, so both arms meet the same load."""
    from lwgan.train.pair_stream import batches

    trainer = prepared_trainer("small", "cpu", Variant.parse("bf16"), steps_per_block, None, None, tempfile.mkdtemp(prefix="lwgan-ab-"))
    size = trainer.cfg.data.batch_size
    data = list(batches(trainer.stream, size, 0, size * (steps_per_block + 1)))
    for b in data:
        trainer._pair_geometry(b)
        warm_target_features(trainer, b)
    trainer._train_step(data[0], 0)
    per_step: dict[str, list[float]] = {name: [] for name in arms}
    step = 1
    for block in range(blocks):
        for name in (list(arms) if block % 2 == 0 else list(reversed(arms))):
            with arms[name]():
                start = time.process_time()
                for _ in range(steps_per_block):
                    trainer._train_step(data[1 + (step - 1) % steps_per_block], step)
                    step += 1
                seconds = (time.process_time() - start) / steps_per_block
            if block >= skip_blocks:
                per_step[name].append(seconds)
    return per_step


def step_ab_lines(per_step: dict[str, list[float]], before: str, after: str) -> list[str]:
    """``patched_step_ab``'s result as Markdown lines: each arm's median and blocks (CPU s / step), then
    ``before / after`` per block and its median (the number that counts on a shared machine)."""
    ratios = [a / b for a, b in zip(per_step[before], per_step[after])]
    return ["| arm | CPU s / step (median) | per block |", "| --- | --- | --- |",
            *(f"| {name} | {statistics.median(v):.4f} | {', '.join(f'{x:.3f}' for x in v)} |" for name, v in per_step.items()),
            "", f"{before} / {after} per block: {', '.join(f'{r:.3f}' for r in ratios)} (median **{statistics.median(ratios):.3f}**)"]


def run_child(profile: str, device: str, variant: str, iters: int, batch: int | None, threads: int | None,
              sets: list[str] = (), warm_targets: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--one", profile, device, variant, "--iters", str(iters)]
    cmd += [f"--set={item}" for item in sets] + (["--warm-targets"] if warm_targets else [])
    if batch is not None:
        cmd += ["--batch", str(batch)]
    if threads:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed ({' '.join(cmd)}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict], variants: list[str]) -> list[dict]:
    """Median s/step per (profile, variant) over repeats, and the median of the per-repeat ratios
    of the first variant's time to this one's (speed-up over the first variant)."""
    out = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        base = [r for r in rows if r["profile"] == profile and r["variant"] == variants[0]]
        for v in variants:
            mine = [r for r in rows if r["profile"] == profile and r["variant"] == v]
            ratios = [b["s_per_step"] / m["s_per_step"] for b, m in zip(base, mine)]
            cpu_ratios = [b["cpu_s_per_step"] / m["cpu_s_per_step"] for b, m in zip(base, mine)]
            s = statistics.median(r["s_per_step"] for r in mine)
            out.append({
                **{k: mine[0][k] for k in ("profile", "device", "variant", "precision", "size", "batch", "threads", "peak_kind")},
                "s_per_step": s, "images_per_s": mine[0]["batch"] / s,
                "speedup": statistics.median(ratios), "speedups": ratios,
                "cpu_s_per_step": statistics.median(r["cpu_s_per_step"] for r in mine), "cpu_speedup": statistics.median(cpu_ratios),
                "warmup_s": statistics.median(r["warmup_s"] for r in mine),
                "peak_mib": max(r["peak_mib"] for r in mine), "repeats": len(mine),
            })
    return out


def markdown(summary: list[dict], variants: list[str]) -> str:
    lines = [
        f"| profile | device | variant | size | batch | s / step | images / s | x {variants[0]} (per repeat) | CPU s / step | x {variants[0]}, CPU time | warm-up s | peak memory (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary:
        per = ", ".join(f"{x:.2f}" for x in r["speedups"])
        lines.append(
            f"| {r['profile']} | {r['device']} ({r['threads']} thr) | {r['variant']} | {r['size']} | {r['batch']} | {r['s_per_step']:.3f} | "
            f"{r['images_per_s']:.2f} | **{r['speedup']:.2f}** ({per}) | {r['cpu_s_per_step']:.3f} | {r['cpu_speedup']:.2f} | "
            f"{r['warmup_s']:.1f} | {r['peak_mib']:.0f} ({r['peak_kind']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="small")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--variants", default="fp32,bf16", help="comma-separated; the first is the reference of the ratios")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the profile's)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the raw rows and the summary to this file")
    p.add_argument("--in-process", action="store_true", help="all variants in this process, interleaved (no peak memory)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every variant, repeatable (e.g. --set target_cache_mb=0)")
    p.add_argument("--warm-targets", action="store_true",
                   help="compute the timed batches' target features before timing (steady state of a run whose "
                        "frames repeat, as the small profile's); default: each frame's first draw is timed")
    p.add_argument("--one", nargs=3, metavar=("PROFILE", "DEVICE", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:  # child process: one configuration, JSON on the last line
        profile, device, variant = args.one
        print(json.dumps(bench(profile, device, Variant.parse(variant), args.iters, args.batch, parse_sets(args.set), args.warm_targets)))
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    variants = [Variant.parse(v).label for v in args.variants.split(",")]
    rows = []
    if args.in_process:
        for profile in args.profiles.split(","):
            rows += in_process(profile, args.device, variants, args.iters, args.repeats, args.batch, parse_sets(args.set), args.warm_targets)
    else:
        for _ in range(args.repeats):
            for profile in args.profiles.split(","):
                for v in variants:
                    rows.append(run_child(profile, args.device, v, args.iters, args.batch, args.threads, args.set, args.warm_targets))
    summary = summarise(rows, variants)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else (platform.processor() or platform.machine())
    extras = "".join(f", --set {item}" for item in args.set) + (", target features warm" if args.warm_targets else "")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {name}; {args.iters} timed steps x {args.repeats} repeats{extras}\n")
    print(markdown(summary, variants))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=2)


if __name__ == "__main__":
    main()
