"""The perceptual and face losses' L1 on bf16 features, on the CPU: ``F.l1_loss`` under autocast (float32
copies of both maps) against lwgan.models.losses.feature_l1 (float32 sums a chunk at a time, the gradient
formed in bf16), at the small profile's feature shapes and in a whole training step.

Usage: python benchmarks/feature_l1.py [--iters 30] [--step-iters 5] [--step-repeats 6] [--threads 1]

Part 1 times forward + backward of the summed L1 terms alone, VGG19's five levels (relu1_1 .. relu5_1 of
a 64 px batch of 4, the reference's level weights) and SphereFace's five outputs (four stages and the
embedding of 112x96 head crops), and checks that the gradients are bit-identical. Part 2 builds one
small-profile trainer (target features warm) and times its steps with each, interleaved block by
block in this one process (CPU seconds per step; the ratio per block is the number that counts on a
shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lwgan.models import losses  # noqa: E402

VGG_SHAPES = [(4, 64, 64, 64), (4, 128, 32, 32), (4, 256, 16, 16), (4, 512, 8, 8), (4, 512, 4, 4)]
FACE_SHAPES = [(4, 64, 28, 24), (4, 128, 14, 12), (4, 256, 7, 6), (4, 512, 4, 3), (4, 512)]


def autocast_l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The L1 the losses used before feature_l1 (the trainer's G phase runs under autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return F.l1_loss(fake, real.detach())


def _terms_ms(l1, fakes, reals, weights, iters: int) -> tuple[float, list[torch.Tensor]]:
    def once():
        leaves = [f.clone().requires_grad_() for f in fakes]
        sum(w * l1(f, r) for w, f, r in zip(weights, leaves, reals)).backward()
        return [leaf.grad for leaf in leaves]
    for _ in range(3):
        grads = once()
    start = time.process_time()
    for _ in range(iters):
        once()
    return (time.process_time() - start) / iters * 1e3, grads


def terms_table(iters: int) -> None:
    gen = torch.Generator().manual_seed(0)
    print("| features | F.l1_loss (autocast) fwd+bwd CPU ms | feature_l1 fwd+bwd CPU ms | speed-up | gradients equal |")
    print("| --- | --- | --- | --- | --- |")
    for name, shapes, weights in [("VGG19 relu1_1..relu5_1", VGG_SHAPES, losses.VGG_LAYER_WEIGHTS),
                                  ("SphereFace stages + embedding", FACE_SHAPES, (1.0,) * len(FACE_SHAPES))]:
        fakes = [torch.relu(torch.randn(s, generator=gen)).bfloat16() for s in shapes]
        reals = [torch.relu(torch.randn(s, generator=gen)).bfloat16() for s in shapes]
        t_old, g_old = _terms_ms(autocast_l1, fakes, reals, weights, iters)
        t_new, g_new = _terms_ms(losses.feature_l1, fakes, reals, weights, iters)
        equal = all(torch.equal(a, b) for a, b in zip(g_old, g_new))
        print(f"| {name} | {t_old:.2f} | {t_new:.2f} | {t_old / t_new:.1f}x | {equal} |")


def step_ab(iters: int, repeats: int) -> None:
    from train_step import patched_step_ab, step_ab_lines

    cpu_s = patched_step_ab({"F.l1_loss": lambda: mock.patch.object(losses, "feature_l1", lambda f, r: F.l1_loss(f, r.detach())),
                             "feature_l1": contextlib.nullcontext}, repeats, iters, skip_blocks=1)
    print(f"\nsmall-profile bf16 step, {iters} steps x {repeats} blocks (the first not kept), interleaved:\n")
    print("\n".join(step_ab_lines(cpu_s, "F.l1_loss", "feature_l1")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--step-iters", type=int, default=5)
    p.add_argument("--step-repeats", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), bf16 features\n")
    terms_table(args.iters)
    if args.step_repeats > 0:
        step_ab(args.step_iters, args.step_repeats)


if __name__ == "__main__":
    main()
