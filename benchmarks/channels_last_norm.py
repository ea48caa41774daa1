"""Would the generator gain from channels_last on a CPU with AMX? Its convolutions, and its instance norms.

Usage: PYTHONPATH=. python benchmarks/channels_last_norm.py [--repeats 7] [--iters 5]

1. Every convolution of the small-profile generator (shapes and counts taken from one forward with
   hooks), forward + backward to the input and the weight at bf16, NCHW against channels_last, in
   alternating blocks of ``--iters`` calls; the medians, and their sum over one generator forward +
   backward (each shape times its count).
2. The instance norm (group_norm with one group per channel, as lwgan.models.layers.InstanceNorm2d) at
   the generator's four feature-map sizes, forward + backward, for: ATen's group_norm on NCHW (what
   runs today), ATen's group_norm on a channels_last tensor, and an instance norm for channels_last
   made of ATen ops (``InstanceNormNHWC`` below: the statistics over H x W of the (N, H*W, C) view in
   float32, the backward by hand). Its values and gradients are checked against float32 group_norm
   first, so the three compute the same maths.

One thread, CPU ms (time.process_time). The channels_last layout would spare oneDNN the NCHW <->
blocked copies around each bf16 convolution, but every convolution of the generator feeds an instance
norm, so the layout pays off only if the norms are as fast in it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

NORM_SHAPES = ((4, 16, 64, 64), (4, 32, 32, 32), (4, 64, 16, 16), (4, 128, 8, 8))  # small profile, batch 4


class InstanceNormNHWC(torch.autograd.Function):
    """Instance norm of a channels_last tensor from ATen ops: a (N, H*W, C) view of its memory, statistics
    over dim 1 in float32, ``y = x * scale + shift`` with per-(sample, channel) scale and shift."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        n, c, h, w = x.shape
        xf = x.permute(0, 2, 3, 1).reshape(n, h * w, c).float()
        var, mean = torch.var_mean(xf, dim=1, keepdim=True, correction=0)
        rstd = (var + eps).rsqrt_()
        scale = rstd * weight.float()
        y = torch.addcmul(bias.float() - mean * scale, xf, scale).to(x.dtype)
        ctx.save_for_backward(x, mean, rstd, weight)
        return y.view(n, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, dy):
        x, mean, rstd, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        xhat = (x.permute(0, 2, 3, 1).reshape(n, h * w, c).float() - mean).mul_(rstd)
        dyf = dy.permute(0, 2, 3, 1).reshape(n, h * w, c).float()
        sum_dy = dyf.sum(1, keepdim=True)
        sum_dy_xhat = (dyf * xhat).sum(1, keepdim=True)
        inv = 1.0 / (h * w)  # dx = rstd * gamma * (dy - mean(dy) - xhat * mean(dy * xhat))
        dx = dyf.sub_(sum_dy * inv).sub_(xhat.mul_(sum_dy_xhat * inv)).mul_(rstd * weight.float()).to(dy.dtype)
        return dx.view(n, h, w, c).permute(0, 3, 1, 2), sum_dy_xhat.sum((0, 1)), sum_dy.sum((0, 1)), None


def blocks_ms(arms: dict, repeats: int, iters: int) -> dict[str, float]:
    """Median CPU ms per call of each arm, the arms alternating in blocks of ``iters`` calls."""
    for fn in arms.values():
        fn(), fn()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(repeats):
        for name in (list(arms) if r % 2 == 0 else list(reversed(arms))):
            start = time.process_time()
            for _ in range(iters):
                arms[name]()
            times[name].append((time.process_time() - start) / iters * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def generator_convs() -> dict[tuple, list]:
    """{(kind, input shape, weight shape): [module, calls per forward]} of the small-profile generator."""
    from train_step import Variant, prepared_trainer

    from lwgan.render import generator_inputs
    from lwgan.train.pair_stream import batches

    t = prepared_trainer("small", "cpu", Variant.parse("bf16"), 1, None, None, tempfile.mkdtemp(prefix="lwgan-cl-"))
    batch = next(iter(batches(t.stream, t.cfg.data.batch_size, 0, t.cfg.data.batch_size)))
    src, _ = t._images(batch)
    geom = t._pair_geometry(batch)
    seen: dict[tuple, list] = {}

    def hook(module, inputs, _):
        key = (type(module).__name__, tuple(inputs[0].shape), tuple(module.weight.shape))
        seen.setdefault(key, [module, 0])[1] += 1

    handles = [m.register_forward_hook(hook) for m in t.G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad(), t._autocast():
        t.G(*generator_inputs(src, geom), geom.flow)
    for h in handles:
        h.remove()
    return seen


def conv_call(module: nn.Module, shape: tuple, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x0 = torch.randn(shape).bfloat16().contiguous(memory_format=fmt)
    w0 = module.weight.detach().bfloat16().contiguous(memory_format=fmt)

    def call():
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        if isinstance(module, nn.ConvTranspose2d):
            y = F.conv_transpose2d(x, w, None, module.stride, module.padding, module.output_padding)
        else:
            y = F.conv2d(x, w, None, module.stride, module.padding)
        y.backward(torch.ones_like(y))
    return call


def conv_table(repeats: int, iters: int) -> list[str]:
    rows = ["| convolution | input (N, C, H, W) | weight | per G forward | NCHW ms | channels_last ms |", "| --- | --- | --- | --- | --- | --- |"]
    total = {"nchw": 0.0, "cl": 0.0}
    for (kind, shape, weight), (module, count) in generator_convs().items():
        ms = blocks_ms({"nchw": conv_call(module, shape, False), "cl": conv_call(module, shape, True)}, repeats, iters)
        for k in total:
            total[k] += ms[k] * count
        rows.append(f"| {kind} | {shape} | {weight} | {count} | {ms['nchw']:.2f} | {ms['cl']:.2f} |")
    rows.append(f"| **sum over one generator forward + backward** | | | | **{total['nchw']:.1f}** | **{total['cl']:.1f}** |")
    return rows


def norm_table(repeats: int, iters: int) -> list[str]:
    rows = ["| feature map (N, C, H, W) | group_norm NCHW ms | group_norm channels_last ms | ATen-op norm, channels_last ms | largest difference to float32 (ATen-op, native bf16) |",
            "| --- | --- | --- | --- | --- |"]
    for shape in NORM_SHAPES:
        torch.manual_seed(0)
        c = shape[1]
        x0 = (torch.randn(shape) * 3 + 1).bfloat16()
        grad = torch.randn(shape).bfloat16()
        weight, bias = torch.rand(c) + 0.5, torch.randn(c)
        xr = x0.float().requires_grad_()
        ref = F.group_norm(xr, c, weight, bias)
        ref.backward(grad.float())
        xc = x0.contiguous(memory_format=torch.channels_last).requires_grad_()
        mine = InstanceNormNHWC.apply(xc, weight, bias, 1e-5)
        mine.backward(grad.contiguous(memory_format=torch.channels_last))
        xn = x0.clone().requires_grad_()
        native = F.group_norm(xn, c, weight, bias)
        native.backward(grad)
        err = lambda y, gx: max((y.float() - ref).abs().max().item(), (gx.float() - xr.grad).abs().max().item())  # noqa: E731

        def arm(fmt, fn):
            x1, g1 = x0.contiguous(memory_format=fmt), grad.contiguous(memory_format=fmt)
            w1, b1 = weight.clone().requires_grad_(), bias.clone().requires_grad_()
            return lambda: fn(x1.clone().requires_grad_(), w1, b1).backward(g1)
        ms = blocks_ms({"nchw": arm(torch.contiguous_format, lambda x, w, b: F.group_norm(x, c, w, b)),
                        "cl": arm(torch.channels_last, lambda x, w, b: F.group_norm(x, c, w, b)),
                        "ops": arm(torch.channels_last, lambda x, w, b: InstanceNormNHWC.apply(x, w, b, 1e-5))}, repeats, iters)
        rows.append(f"| {shape} | {ms['nchw']:.3f} | {ms['cl']:.3f} | {ms['ops']:.3f} | {err(mine, xc.grad):.4f}, {err(native, xn.grad):.4f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, one thread, bf16, forward + backward, CPU ms per call (median of {args.repeats} blocks)\n")
    print("\n".join(conv_table(args.repeats, args.iters)), "\n")
    print("\n".join(norm_table(args.repeats, args.iters)))


if __name__ == "__main__":
    main()
