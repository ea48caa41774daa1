"""Where a small-profile training step's time goes: each network's forward (+ backward) alone.

Usage: python benchmarks/step_parts.py [--variant bf16] [--iters 10] [--threads 1]

One trainer (benchmarks/train_step.py's), one batch; each part is timed over ``--iters`` calls after 3
warm-up calls, in CPU seconds (one thread: the fair measure on a shared machine). The parts are those
of lwgan.models.objective: the generator (forward, and forward + backward from all four outputs),
VGG19 on a generated image (forward, and forward + backward to the image only: its weights are
frozen), SphereFace on the head crops (forward + backward to the image), D as the G phase sees it
(forward + backward to the image, parameters frozen) and the whole D phase (D loss, GP when on,
backward).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="bf16")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from train_step import Variant, prepared_trainer

    from lwgan.models import losses
    from lwgan.models.objective import frozen_parameters
    from lwgan.render import generator_inputs
    from lwgan.train.pair_stream import batches

    t = prepared_trainer("small", "cpu", Variant.parse(args.variant), 1, None, None, tempfile.mkdtemp(prefix="lwgan-parts-"))
    batch = next(iter(batches(t.stream, t.cfg.data.batch_size, 0, t.cfg.data.batch_size)))
    src, tgt = t._images(batch)
    geom = t._pair_geometry(batch)
    g_in = generator_inputs(src, geom)
    amp = t._autocast
    with torch.no_grad(), amp():
        image = t.G(*g_in, geom.flow).tsf_image.detach()

    def g_fwd():
        with torch.no_grad(), amp():
            t.G(*g_in, geom.flow)

    def g_fwd_bwd():
        with amp():
            out = t.G(*g_in, geom.flow)
        sum(o.float().sum() for o in (out.tsf_image, out.src_image, out.tsf_mask, out.src_mask)).backward()

    def vgg_fwd():
        with torch.no_grad(), amp():
            t.vgg(image)

    def vgg_fwd_bwd():
        x = image.clone().requires_grad_()
        with amp():
            total = sum(f.float().sum() for f in t.vgg(x))
        total.backward()

    def face_fwd_bwd():
        x = image.clone().requires_grad_()
        with amp():
            total = sum(f.float().sum() for f in t.face(losses.crop_and_resize(x, geom.head_box, t.face.input_size)))
        total.backward()

    def d_for_g():
        x = image.clone().requires_grad_()
        with amp(), frozen_parameters(t.D):
            total = t.D(x, geom.tgt_cond).float().mean()
        total.backward()

    def d_phase():
        with amp():
            loss, _ = t.objective.discriminator_phase(tgt, image, geom.tgt_cond)
        loss.backward()

    print(f"torch {torch.__version__}, {args.threads} thread(s), small profile, {args.variant}, batch {t.cfg.data.batch_size}\n")
    print("| part | CPU ms |")
    print("| --- | --- |")
    for name, fn in [("G forward", g_fwd), ("G forward + backward", g_fwd_bwd), ("VGG19 forward", vgg_fwd),
                     ("VGG19 forward + backward (to the image)", vgg_fwd_bwd),
                     ("SphereFace forward + backward (to the image)", face_fwd_bwd),
                     ("D in the G phase, forward + backward (to the image)", d_for_g), ("D phase", d_phase)]:
        for _ in range(3):
            fn()
        start = time.process_time()
        for _ in range(args.iters):
            fn()
        print(f"| {name} | {(time.process_time() - start) / args.iters * 1e3:.1f} |")


if __name__ == "__main__":
    main()
