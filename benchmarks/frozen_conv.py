"""The frozen backbones' wide convolutions through weights packed once (lwgan/models/frozen_conv.py)
against PyTorch's plain convolution, which reorders the weight on every call.

Usage: PYTHONPATH=. python benchmarks/frozen_conv.py [--iters 30] [--blocks 12] [--steps-per-block 5]

1. Each packed layer shape of the small profile alone (one thread, bf16, CPU ms of the forward and the
   backward to the input; the weight is frozen), each path with its input in the layout its network
   hands it over: NCHW throughout the plain network; in the packed one NCHW for the first packed layer
   of a run of them and channels_last (the packed layers' output) after it.
2. VGG19 and SphereFace forward + backward to the image, plain and packed in alternating blocks.
3. The whole small-profile training step: two trainers in one process, one with the backbones' wide
   layers as plain nn.Conv2d and one as built (packed), each with its own target features warm, their
   steps alternated in blocks (the first two blocks not kept); CPU seconds per step and the per-block
   ratio, so both arms meet the same load of this shared machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narrow_conv import cpu_ms  # noqa: E402  (median CPU ms of a call, after 3 warm-up calls)

LAYER_SHAPES = (  # (input N, C, H, W), out channels, layout handed over, where
    ((4, 256, 16, 16), 256, "nchw", "VGG19 conv3_2 (after conv3_1, plain)"),
    ((4, 256, 16, 16), 256, "channels_last", "VGG19 conv3_3, conv3_4"),
    ((4, 256, 8, 8), 512, "channels_last", "VGG19 conv4_1"),
    ((4, 512, 8, 8), 512, "channels_last", "VGG19 conv4_2 .. conv4_4"),
    ((4, 512, 4, 4), 512, "channels_last", "VGG19 conv5_1"),
    ((4, 256, 7, 6), 256, "channels_last", "SphereFace stage 3 (8 convs)"),
    ((4, 512, 4, 3), 512, "channels_last", "SphereFace stage 4 (2 convs)"),
)


def layers_alone(iters: int) -> list[str]:
    from lwgan.models.frozen_conv import FrozenConv2d

    rows = ["| layer | input (N, C, H, W), layout the packed network hands over | plain ms (fwd + bwd to the input; NCHW) | packed ms | speed-up |",
            "| --- | --- | --- | --- | --- |"]
    for shape, out_ch, layout, what in LAYER_SHAPES:
        torch.manual_seed(0)
        conv = FrozenConv2d(shape[1], out_ch, 3, 1, 1).requires_grad_(False).to(torch.bfloat16)
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        x = torch.randn(shape).bfloat16().requires_grad_()  # the plain network hands over NCHW everywhere
        grad = torch.randn(shape[0], out_ch, *shape[2:]).bfloat16()
        x_packed = x.detach().contiguous(memory_format=fmt).requires_grad_()
        grad_packed = grad.contiguous(memory_format=fmt)

        def plain():
            F.conv2d(x, conv.weight, conv.bias, 1, 1).backward(grad)

        def packed():
            conv(x_packed).backward(grad_packed)

        a, b = cpu_ms(plain, iters), cpu_ms(packed, iters)
        rows.append(f"| {what} | {tuple(shape)} {layout} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    return rows


def as_plain(net: nn.Module) -> nn.Module:
    """``net`` with every FrozenConv2d turned into a plain nn.Conv2d in place (same weights)."""
    from lwgan.models.frozen_conv import FrozenConv2d

    for m in net.modules():
        if isinstance(m, FrozenConv2d):
            m.__class__ = nn.Conv2d
    return net


def plain_copy(net: nn.Module) -> nn.Module:
    """The same network (same weights) with every FrozenConv2d as a plain nn.Conv2d."""
    return as_plain(copy.deepcopy(net))


def backbones(blocks: int) -> list[str]:
    from lwgan.models.backbones import build_sphereface, build_vgg19
    from lwgan.models.losses import crop_and_resize

    torch.manual_seed(0)
    image = torch.rand(4, 3, 64, 64) * 2 - 1
    head_box = torch.tensor([[20.0, 4.0, 44.0, 28.0]] * 4)
    vgg = build_vgg19(None)[0].to(torch.bfloat16)
    face = build_sphereface(None, crop=56)[0].to(torch.bfloat16)

    def vgg_pass(net):
        def run():
            x = image.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                total = sum(f.float().square().mean() for f in net(x))
            total.backward()
        return run

    def face_pass(net):
        def run():
            x = image.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                total = sum(f.float().square().mean() for f in net(crop_and_resize(x, head_box, net.input_size)))
            total.backward()
        return run

    arms = {"VGG19, plain": vgg_pass(plain_copy(vgg)), "VGG19, packed": vgg_pass(vgg),
            "SphereFace, plain": face_pass(plain_copy(face)), "SphereFace, packed": face_pass(face)}
    per = {name: [] for name in arms}
    for block in range(blocks):
        for name in (list(arms) if block % 2 == 0 else list(reversed(arms))):
            per[name].append(cpu_ms(arms[name], 5))
    rows = ["| network (forward + backward to the image, batch 4) | CPU ms, median of blocks |", "| --- | --- |"]
    rows += [f"| {name} | {statistics.median(v):.1f} |" for name, v in per.items()]
    return rows


def whole_step(blocks: int, steps_per_block: int) -> list[str]:
    from train_step import Variant, prepared_trainer, warm_target_features

    from lwgan.train.pair_stream import batches

    def trainer(packed: bool):
        t = prepared_trainer("small", "cpu", Variant.parse("bf16"), steps_per_block, None, None, tempfile.mkdtemp(prefix="lwgan-frozen-"))
        if not packed:
            as_plain(t.vgg)
            as_plain(t.face)
        size = t.cfg.data.batch_size
        data = list(batches(t.stream, size, 0, size * (steps_per_block + 1)))
        for b in data:  # each arm's own target features, computed by its own path
            t._pair_geometry(b)
            warm_target_features(t, b)
        t._train_step(data[0], 0)
        return t, data

    arms = {"plain": trainer(False), "packed": trainer(True)}
    per: dict[str, list[float]] = {name: [] for name in arms}
    step = 1
    for block in range(blocks):
        for name in (list(arms) if block % 2 == 0 else list(reversed(arms))):
            t, data = arms[name]
            start = time.process_time()
            for i in range(steps_per_block):
                t._train_step(data[1 + i], step + i)
            per[name].append((time.process_time() - start) / steps_per_block)
        step += steps_per_block
    kept = {name: v[2:] for name, v in per.items()}
    ratios = [a / b for a, b in zip(kept["plain"], kept["packed"])]
    return [f"CPU s per step, median of {len(ratios)} blocks of {steps_per_block}: plain {statistics.median(kept['plain']):.4f}, "
            f"packed {statistics.median(kept['packed']):.4f}; plain / packed per block {', '.join(f'{r:.3f}' for r in ratios)}; "
            f"median {statistics.median(ratios):.3f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--steps-per-block", type=int, default=5)
    p.add_argument("--skip-step", action="store_true", help="leave out part 3 (the whole training step)")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, bf16\n")
    print("\n".join(layers_alone(args.iters)) + "\n")
    print("\n".join(backbones(args.blocks)) + "\n")
    if not args.skip_step:
        print("\n".join(whole_step(args.blocks, args.steps_per_block)))


if __name__ == "__main__":
    main()
