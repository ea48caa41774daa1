"""VGG19's 2x2 max pool on the CPU: ATen's ``F.max_pool2d`` against lwgan.models.pooling (oneDNN), at
the small profile's four pool shapes and in a whole training step.

Usage: python benchmarks/pooling.py [--dtype bf16] [--iters 50] [--step-iters 5] [--step-repeats 4] [--threads 1]

Part 1 times forward + backward of each pool alone (and checks that values and gradients are
bit-identical). Part 2 builds one small-profile trainer (target features warm) and times its steps
with the oneDNN pool and with ATen's, interleaved repeat by repeat in this one process (CPU seconds
per step; the ratio per repeat is the number that counts on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from unittest import mock
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lwgan.models.pooling as pooling  # noqa: E402

SHAPES = [(4, 64, 64, 64), (4, 128, 32, 32), (4, 256, 16, 16), (4, 512, 8, 8)]  # VGG19's pools at 64 px, batch 4


def _fwd_bwd_ms(pool, x0: torch.Tensor, grad: torch.Tensor, iters: int) -> float:
    def once():
        x = x0.clone().requires_grad_()
        pool(x).backward(grad)
    for _ in range(5):
        once()
    start = time.perf_counter()
    for _ in range(iters):
        once()
    return (time.perf_counter() - start) / iters * 1e3


def pool_table(dtype: torch.dtype, iters: int) -> None:
    aten = lambda x: F.max_pool2d(x, 2, 2)  # noqa: E731
    print("| input (N, C, H, W) | ATen fwd+bwd ms | oneDNN fwd+bwd ms | speed-up | equal (values, grads) |")
    print("| --- | --- | --- | --- | --- |")
    for shape in SHAPES:
        x0 = torch.relu(torch.randn(*shape)).to(dtype)  # ReLU output, as VGG's pools see
        grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).to(dtype)
        a, b = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        ya, yb = aten(a), pooling.max_pool_2x2(b)
        ya.backward(grad)
        yb.backward(grad)
        equal = torch.equal(ya, yb) and torch.equal(a.grad, b.grad)
        t_aten, t_fast = _fwd_bwd_ms(aten, x0, grad, iters), _fwd_bwd_ms(pooling.max_pool_2x2, x0, grad, iters)
        print(f"| {tuple(shape)} | {t_aten:.2f} | {t_fast:.2f} | {t_aten / t_fast:.1f}x | {equal} |")


def step_ab(iters: int, repeats: int) -> None:
    from train_step import patched_step_ab, step_ab_lines

    cpu_s = patched_step_ab({"ATen": lambda: mock.patch.object(pooling, "fast_path_applies", lambda x: False),
                             "oneDNN": contextlib.nullcontext}, repeats, iters)
    print(f"\nsmall-profile bf16 step, {iters} steps x {repeats} repeats, interleaved:\n")
    print("\n".join(step_ab_lines(cpu_s, "ATen", "oneDNN")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--step-iters", type=int, default=5)
    p.add_argument("--step-repeats", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.dtype}\n")
    pool_table(torch.bfloat16 if args.dtype == "bf16" else torch.float32, args.iters)
    if args.step_repeats > 0:
        step_ab(args.step_iters, args.step_repeats)


if __name__ == "__main__":
    main()
