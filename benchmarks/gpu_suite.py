"""Every GPU measurement of BENCHMARKS.md in one call, for a short GPU window.

    python benchmarks/gpu_suite.py [--device cuda] [--out DIR] [--quick] [--iters 5] [--repeats 2]

Parts (each one's failure is recorded and the next still runs):
1. ``step``: one full training step at the paper profile's size (256 px, batch 4; stand-in backbones,
   synthetic data) in eager fp32 (the reference's step), eager bf16 and bf16 with CUDA graphs (the default
   on CUDA), images/s and peak GPU memory, each variant in its own process, interleaved
   (benchmarks/train_step.py). The goal: the default >= 1.5x eager fp32 images/s.
2. ``render``: rasterizer frames/s and pair geometry pairs/s (cold and warm correspondence cache) at
   64, 128 and 256 px (benchmarks/render_throughput.py's measurement).
3. ``study``: a 2-trial study (tiny profile, two seeds of the baseline) on the device, both trials
   at once (0.5 GPU each on CUDA), MLflow on SQLite in the output folder, no report: wall time.
   Where Ray or MLflow cannot be imported (the GPU machines of this workplace have neither, and
   Ray's 79 MB wheel is over what a call may carry), it runs ``pair`` instead and says so.
4. ``pair``: two small-profile trainings (300 steps, the default study's trial) at once on the
   device through ``lwgan-study train``, then one alone: the wall time of a wave of the default
   study without Ray.
5. ``step_small``: the small-profile step (64 px, batch 4) fp32 vs bf16 with warm
   target features, the trial of the default study.

Results go to ``--out`` (default ``$OUT`` when set, else ./gpu-suite): ``results.json`` (rewritten
after every part), ``results.md`` and the parts' logs. ``--device cpu --quick`` runs the same code
path on the CPU in a few minutes on an idle 2-core machine (64 px, 1 timed step): that is how the script is tested without
a GPU. Needs the project installed (``make install``); downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_SPEEDUP = 1.5


def environment(device: str) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   bf16_supported=torch.cuda.is_bf16_supported())
        try:
            env["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["nvidia_smi"] = "unavailable"
    return env


def train_step_summary(out: Path, name: str, args: list[str]) -> tuple[str, list[dict]]:
    """Run benchmarks/train_step.py with ``args``; its log goes to ``name``.log, its summary rows back."""
    json_path = out / f"{name}.json"
    cmd = [sys.executable, str(HERE / "train_step.py"), *args, "--json", str(json_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"train_step.py failed (exit {done.returncode}); see {name}.log:\n{done.stderr[-2000:]}")
    return " ".join(cmd[1:]), json.loads(json_path.read_text())["summary"]


def part_step(device: str, out: Path, quick: bool, iters: int, repeats: int) -> dict:
    profile = "small" if quick else "paper"
    command, summary = train_step_summary(out, "step", [
        "--profiles", profile, "--device", device, "--batch", "4", "--variants", "fp32,bf16,bf16+graphs" if device.startswith("cuda") else "fp32,bf16",
        "--iters", str(1 if quick else iters), "--repeats", str(1 if quick else repeats),
        "--set", "target_cache_mb=0"])  # the full per-step work: real iPER frames rarely repeat
    default = "bf16+graphs" if device.startswith("cuda") else "bf16"  # precision and cuda_graphs auto
    bf16 = next(r for r in summary if r["variant"] == default)
    return {"command": command, "rows": summary, "speedup_bf16": bf16["speedup"], "default_variant": default,
            "goal": f">= {GOAL_SPEEDUP}x fp32 images/s", "goal_met": bf16["speedup"] >= GOAL_SPEEDUP}


def part_step_small(device: str, out: Path, quick: bool, iters: int, repeats: int) -> dict:
    command, summary = train_step_summary(out, "step_small", [
        "--profiles", "small", "--device", device, "--variants", "fp32,bf16,bf16+graphs" if device.startswith("cuda") else "fp32,bf16",
        "--iters", str(1 if quick else 3 * iters), "--repeats", str(1 if quick else repeats), "--warm-targets"])
    return {"command": command, "rows": summary}


def part_pair(device: str, out: Path, quick: bool) -> dict:
    """Two ``lwgan-study train`` runs of the small profile at once on the device, then one alone."""
    work = out / "pair"
    steps = 20 if quick else 300
    env = {**os.environ, "LWGAN_HOME": str(work), "PYTHONUNBUFFERED": "1"}

    def train(name: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "lwgan.cli", "train", "--profile", "small", "--out", str(work / name),
               "--set", f"device={device}", "--set", f"max_steps={steps}"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)

    def finish(procs: dict) -> dict:
        logs = {}
        for name, proc in procs.items():
            text, _ = proc.communicate()
            (out / f"pair_{name}.log").write_text(text)
            if proc.returncode != 0:
                raise RuntimeError(f"lwgan-study train {name} failed (exit {proc.returncode}):\n{text[-2000:]}")
            logs[name] = text
        return logs

    start = time.perf_counter()
    finish({"a": train("a"), "b": train("b")})
    both = time.perf_counter() - start
    start = time.perf_counter()
    finish({"alone": train("alone")})
    alone = time.perf_counter() - start
    infos = [json.loads((work / n / "run_info.json").read_text()) for n in ("a", "b", "alone")]
    return {"profile": "small", "steps": steps, "wall_two_at_once_s": both, "wall_alone_s": alone,
            "precisions": sorted({i["precision"] for i in infos}), "device": infos[0]["device"]}


def part_render(device: str, quick: bool) -> dict:
    sys.path.insert(0, str(HERE))
    from render_throughput import bench  # benchmarks/render_throughput.py

    from lwgan.body import load_body_model

    load_body_model(None)  # generate (or load) the body before timing
    rows = []
    for size in (64,) if quick else (64, 128, 256):
        r = bench(torch.device(device), size, batch=8, repeats=1 if quick else 5)
        rows.append({"size": size, "batch": 8, **r})
    return {"rows": rows}


def part_study(device: str, out: Path, quick: bool) -> dict:
    import yaml

    try:
        import mlflow  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        result = part_pair(device, out, quick)
        result["note"] = (f"study skipped: {exc} (the study needs Ray and MLflow; this machine has neither, and Ray's "
                          "wheel is over what a GPU call may carry); ran two trainings at once without Ray instead")
        return result

    work = out / "study"
    work.mkdir(parents=True, exist_ok=True)
    gpu = 0.5 if device.startswith("cuda") else 0
    data = {"name": "gpu-suite", "description": "two seeds of the baseline, both at once", "seeds": 2,
            "base": {"device": device}, "resources": {"cpu": 1, "gpu": gpu}, "default_profile": "tiny",
            "profiles": {"tiny": {"seeds": 2}}}
    path = work / "gpu-suite.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlruns.db", "LWGAN_HOME": str(work)}
    cmd = [sys.executable, "-m", "lwgan.cli", "run", str(path), "--profile", "tiny", "--storage", str(work / "runs"),
           "--max-concurrent", "2", "--no-report"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    (out / "study.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"study failed (exit {done.returncode}); see study.log:\n{(done.stdout + done.stderr)[-2000:]}")
    infos = sorted((work / "runs").rglob("run_info.json"))
    precisions = sorted({json.loads(p.read_text()).get("precision", "?") for p in infos})
    return {"trials": 2, "profile": "tiny", "resources": data["resources"], "wall_s": wall, "precisions": precisions,
            "run_infos": len(infos)}


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [f"Device: {env.get('gpu', env['cpu'])} ({env['device']}), torch {env['torch']}", ""]
    step = results["parts"].get("step", {})
    if "rows" in step:
        lines += ["| profile | variant | size | batch | s / step | images / s | x fp32 | peak memory (MiB) |", "| --- " * 8 + "|"]
        for r in step["rows"]:
            lines.append(f"| {r['profile']} | {r['variant']} | {r['size']} | {r['batch']} | {r['s_per_step']:.4f} | "
                         f"{r['images_per_s']:.1f} | {r['speedup']:.2f} | {r['peak_mib']:.0f} ({r['peak_kind']}) |")
        lines += ["", f"{step.get('default_variant', 'bf16')} vs eager fp32: {step['speedup_bf16']:.2f}x (goal {step['goal']}: "
                  f"{'met' if step['goal_met'] else 'not met'})", ""]
    render = results["parts"].get("render", {})
    if "rows" in render:
        lines += ["| px | rasterizer frames/s | pair geometry pairs/s | pairs/s, cache warm |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['size']} | {r['raster_frames_s']:.1f} | {r['pairs_s']:.1f} | {r['pairs_s_cached']:.1f} |" for r in render["rows"]]
        lines.append("")
    small = results["parts"].get("step_small", {})
    if "rows" in small:
        lines += ["Small profile (the default study's trial), target features warm:", "",
                  "| variant | s / step | images / s | x fp32 |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['variant']} | {r['s_per_step']:.4f} | {r['images_per_s']:.1f} | {r['speedup']:.2f} |" for r in small["rows"]]
        lines.append("")
    study = results["parts"].get("study", {})
    if "wall_two_at_once_s" in study:
        lines += [f"{study.get('note', 'pair')}.", "",
                  f"Two small-profile trainings of {study['steps']} steps at once ({', '.join(study['precisions'])}, {study['device']}): "
                  f"{study['wall_two_at_once_s']:.1f} s wall; one alone: {study['wall_alone_s']:.1f} s", ""]
    if "wall_s" in study:
        lines += [f"Study: {study['trials']} trials ({study['profile']} profile, resources {study['resources']}, "
                  f"precision {', '.join(study['precisions'])}) in {study['wall_s']:.1f} s wall", ""]
    for name, part in results["parts"].items():
        if "error" in part:
            lines.append(f"**{name} failed**: {part['error'].splitlines()[0]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (cpu: to test the script)")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu-suite")
    p.add_argument("--quick", action="store_true", help="64 px, one timed step, one repeat (a test of the script)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--parts", default="step,step_small,render,study", help="comma-separated: step, step_small, render, study, pair")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (use --device cpu to test the script)", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = {"environment": environment(args.device), "quick": args.quick, "parts": {}}
    runners = {
        "step": lambda: part_step(args.device, out, args.quick, args.iters, args.repeats),
        "render": lambda: part_render(args.device, args.quick),
        "study": lambda: part_study(args.device, out, args.quick),
        "pair": lambda: part_pair(args.device, out, args.quick),
        "step_small": lambda: part_step_small(args.device, out, args.quick, args.iters, args.repeats),
    }
    failed = False
    for name in args.parts.split(","):
        start = time.perf_counter()
        print(f"[gpu_suite] {name} ...", flush=True)
        try:
            results["parts"][name] = runners[name]()
        except Exception as exc:  # noqa: BLE001 - record it, run the next part
            failed = True
            results["parts"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        results["parts"][name]["seconds"] = time.perf_counter() - start
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"[gpu_suite] {name} done in {results['parts'][name]['seconds']:.0f} s", flush=True)
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
