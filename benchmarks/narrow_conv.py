"""The generator's 7x7 heads through column phases (lwgan/models/narrow_conv.py) against F.conv2d.

Usage: PYTHONPATH=. python benchmarks/narrow_conv.py [--iters 10] [--blocks 12] [--steps-per-block 5]

1. Each head shape of the small profile alone (bf16 autocast, one thread, CPU ms of forward +
   backward to the input and the weight, median of ``--iters``), with whether the forward values
   are bit-identical and how far the gradients are (largest difference / largest value).
2. The whole small-profile training step, A/B in one process (train_step.patched_step_ab: one trainer,
   target features warm, the heads computed with F.conv2d and through the phases in alternating blocks
   of steps, the first two blocks warm-up), CPU seconds per step.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from unittest import mock
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

HEAD_SHAPES = (  # (input N, C, H, W), (out channels): the small profile's heads at 64 px, batch 4
    ((4, 16, 64, 64), 4, "ResUnet colour + mask heads (x2 per step)"),
    ((4, 16, 64, 64), 3, "background head (x1 per step)"),
)


def plain_conv(x: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    return F.conv2d(x, weight, None, 1, padding)


def cpu_ms(fn, iters: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def heads_alone(iters: int) -> list[str]:
    from lwgan.models.narrow_conv import narrow_conv2d

    rows = ["| head | input | F.conv2d ms | phases ms | speed-up | forward bit-identical | grad diff (input, weight) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for shape, out_ch, what in HEAD_SHAPES:
        torch.manual_seed(0)
        x0 = torch.randn(shape)
        w0 = torch.randn(out_ch, shape[1], 7, 7) * 0.05
        seed = torch.randn(shape[0], out_ch, *shape[2:]).bfloat16()

        def run(conv, x0=x0, w0=w0, seed=seed):
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = conv(x, w, 3)
            out.backward(seed)
            return out, x.grad, w.grad

        ref, ours = run(plain_conv), run(narrow_conv2d)
        rel = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours[1:], ref[1:])]
        t_ref, t_ours = cpu_ms(lambda: run(plain_conv), iters), cpu_ms(lambda: run(narrow_conv2d), iters)
        rows.append(f"| {what} | {tuple(shape)} -> {out_ch} | {t_ref:.2f} | {t_ours:.2f} | {t_ref / t_ours:.2f}x | "
                    f"{torch.equal(ours[0], ref[0])} | {rel[0]:.1e}, {rel[1]:.1e} |")
    return rows


def whole_step(blocks: int, steps_per_block: int) -> list[str]:
    import lwgan.models.generator as generator
    from train_step import patched_step_ab, step_ab_lines

    per_step = patched_step_ab({"F.conv2d": lambda: mock.patch.object(generator, "narrow_conv2d", plain_conv),
                                "phases": contextlib.nullcontext}, blocks, steps_per_block, skip_blocks=2)
    return step_ab_lines(per_step, "F.conv2d", "phases")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--steps-per-block", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, bf16 autocast\n")
    print("\n".join(heads_alone(args.iters)))
    print()
    print("\n".join(whole_step(args.blocks, args.steps_per_block)))


if __name__ == "__main__":
    main()
