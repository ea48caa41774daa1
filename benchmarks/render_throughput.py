"""Renderer throughput: rasterizer frames/s and full pair geometry (flow + cond maps + masks) pairs/s.

Runs the generated body at 64, 128 and 256 px on the CPU (and CUDA when present), batch 8 pairs, with
and without a warm correspondence cache; prints a Markdown table and writes it into the
"## Renderer and flow" section of BENCHMARKS.md (other sections are left alone).

    python benchmarks/render_throughput.py [--sizes 64 128 256] [--batch 8] [--repeats 5] [--threads 1] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lwgan.body import load_body_model, ndc_to_pixels, project  # noqa: E402
from lwgan.render import CorrespondenceCache, GeometryBuilder, rasterize  # noqa: E402

SECTION = "## Renderer and flow"


def random_smpl(n: int, seed: int) -> torch.Tensor:
    """Plausible iPER-like frames: HMR flip, a small turn, random limb poses of up to ~0.5 rad."""
    gen = torch.Generator().manual_seed(seed)
    smpl = torch.zeros(n, 85)
    smpl[:, 0] = 0.9 + 0.1 * torch.rand(n, generator=gen)
    smpl[:, 1:3] = 0.05 * torch.randn(n, 2, generator=gen)
    smpl[:, 3] = math.pi
    smpl[:, 4] = 0.3 * torch.randn(n, generator=gen)
    smpl[:, 6:75] = 0.25 * torch.randn(n, 69, generator=gen)
    smpl[:, 75:] = 0.5 * torch.randn(n, 10, generator=gen)
    return smpl


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def bench(device: torch.device, size: int, batch: int, repeats: int) -> dict[str, float]:
    body = load_body_model(None).to(device)
    src_smpl, tgt_smpl = random_smpl(batch, 1).to(device), random_smpl(batch, 2).to(device)
    keys_src = [f"bench/{i}" for i in range(batch)]
    keys_tgt = [f"bench/{batch + i}" for i in range(batch)]

    with torch.no_grad():
        out = body(src_smpl[:, 3:75], src_smpl[:, 75:])
        proj = project(out.vertices, src_smpl[:, :3])
        verts_px = torch.cat([ndc_to_pixels(proj[..., :2], size), proj[..., 2:]], -1)
    t_raster = best_time(lambda: rasterize(verts_px, body.faces, size), device, repeats)

    plain = GeometryBuilder(body, size)
    t_plain = best_time(lambda: plain.pair(plain.frames(src_smpl), plain.frames(tgt_smpl)), device, repeats)

    cached = GeometryBuilder(body, size, cache=CorrespondenceCache())
    cached.frames(src_smpl, keys_src)
    cached.frames(tgt_smpl, keys_tgt)  # warm: every later call is a hit
    t_cached = best_time(lambda: cached.pair(cached.frames(src_smpl, keys_src), cached.frames(tgt_smpl, keys_tgt)), device, repeats)
    return {
        "raster_frames_s": batch / t_raster,
        "pairs_s": batch / t_plain,
        "pairs_s_cached": batch / t_cached,
    }


def write_section(text: str, path: Path) -> None:
    content = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"{SECTION}\n\n{text.strip()}\n\n"
    content = pattern.sub(lambda _: block, content) if pattern.search(content) else content.rstrip() + "\n\n" + block
    path.write_text(content.rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    load_body_model(None)  # generate the body once before timing

    rows = []
    for device in devices:
        for size in args.sizes:
            r = bench(device, size, args.batch, args.repeats)
            name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({args.threads} thread{'s' * (args.threads > 1)})"
            rows.append(f"| {name} | {size} | {r['raster_frames_s']:.1f} | {r['pairs_s']:.1f} | {r['pairs_s_cached']:.1f} |")
            print(rows[-1], flush=True)
    command = "python benchmarks/render_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join([
        "| device | px | rasterizer frames/s | pair geometry pairs/s | pairs/s, cache warm |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ])
    body = load_body_model(None)
    text = f"""Command: `{command.strip()}` (batch {args.batch} pairs, best of {args.repeats}; torch {torch.__version__},
{platform.processor() or platform.machine()}, generated body: {body.num_vertices} vertices, {len(body.faces)} faces).
"Pair geometry" is what a training step pays without the cache: pose + project + rasterise the source
and the target, then flow T, both uv_seg maps, crop masks, bg mask and head box. With a warm
correspondence cache only the per-pair part (flow, cond maps, masks) remains.

{table}
"""
    print(table)
    if not args.no_write:
        write_section(text, ROOT / "BENCHMARKS.md")
        print(f"wrote section '{SECTION}' of {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
