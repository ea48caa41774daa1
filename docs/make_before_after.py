"""The README's before/after figure (docs/images/train_before_after.png) and BENCHMARKS.md's "Learning on
the small profile" numbers, from one baseline training run.

It runs the real CLI once (baseline, seed 0, default precision: ``auto``, bf16 on a CPU with AVX-512 BF16):

    lwgan-study train --profile small --out DIR

then rebuilds the same Trainer from DIR/config.yaml (``Trainer.prepare`` seeds and initialises G exactly as
the run did, so its G is the run's step-0 G; checked against the run's step-0 metrics) and loads the final G
from DIR/checkpoints/last.pt. With G in eval mode (as the trainer's own eval) it renders and scores:

- the fixed val pairs (unseen subject) at step 0 and at the last step (the pairs of samples/*.png; the scores
  are checked against the run's metrics.jsonl),
- as many fixed pairs of the training subjects (``train_set.fixed_pairs``, same size and seed as the val
  pairs), at step 0 and at the last step (the trainer does not render these).

The figure stacks three panels drawn with the trainer's sample-grid code (lwgan.train.samples: columns source |
reference | warped source | output | target, tiles enlarged to >= 96 px): val pairs at step 0, val pairs at the
last step, training-subject pairs at the last step; each title gives the panel's SSIM / SSIM_rec over all its
pairs. It prints eval/ssim, eval/ssim_rec, eval/psnr and eval/psnr_rec for val and train pairs at both steps
as BENCHMARKS.md table rows. The committed image and numbers were made with (300 steps: 476 s of training on 2 shared cores):

    .venv/bin/python docs/make_before_after.py --run-dir /tmp/before_after --png docs/images/train_before_after.png

A quick check of the composition (tiny profile, 2 steps, seconds):

    .venv/bin/python docs/make_before_after.py --profile tiny --steps 2 --run-dir /tmp/ba_tiny --png /tmp/ba_tiny.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lwgan import vocab
from lwgan.config import TrainConfig
from lwgan.train.checkpoint import load_latest_checkpoint
from lwgan.train.metrics_log import read_metrics
from lwgan.train.pair_stream import stack_items
from lwgan.train.samples import COLUMNS, grid_image, stack_vertically
from lwgan.train.trainer import EVAL_PAIR_SEED, Trainer, checkpoint_path

METRICS = (vocab.EVAL_SSIM, vocab.EVAL_SSIM_REC, vocab.EVAL_PSNR, vocab.EVAL_PSNR_REC)
TOLERANCE = 1e-4  # recomputed val metrics vs the run's metrics.jsonl


def cli_command(profile: str, out: Path, steps: int | None) -> list[str]:
    exe = Path(sys.executable).parent / "lwgan-study"
    cmd = [str(exe) if exe.is_file() else (shutil.which("lwgan-study") or "lwgan-study"), "train", "--profile", profile, "--out", str(out)]
    return cmd + (["--steps", str(steps)] if steps is not None else [])


def pair_outputs(trainer: Trainer, batch):
    """G (eval mode, the run's precision) on a batch of pairs through the trainer's own eval path:
    returns the grid columns and the four eval metrics (means over the batch)."""
    from lwgan.render import warp

    trainer.eval_batch, trainer.eval_geom = batch, None  # _eval_outputs builds the geometry of eval_batch
    outputs = trainer._eval_outputs()
    metrics = trainer.evaluate(outputs)
    src_img, tgt_img, out = outputs
    geom = trainer.eval_geom
    columns = [src_img, geom.tgt_cond.float() * 2 - 1, warp(src_img.float(), geom.flow.float()), out.tsf_image, tgt_img]
    return columns, {k: metrics[k] for k in METRICS}


def check_against_log(label: str, ours: dict[str, float], logged: dict[str, float] | None) -> None:
    if logged is None:
        raise SystemExit(f"{label}: no eval metrics in the run's metrics.jsonl")
    bad = {k: (ours[k], logged[k]) for k in METRICS if abs(ours[k] - logged[k]) > TOLERANCE}
    if bad:
        raise SystemExit(f"{label}: recomputed metrics differ from the run's metrics.jsonl: {bad}")


def title(step: int, pairs: str, m: dict[str, float], n: int, shown: int) -> str:
    return (f"step {step}, {pairs}: ssim {m[vocab.EVAL_SSIM]:.3f}, ssim_rec {m[vocab.EVAL_SSIM_REC]:.3f} "
            f"(mean of {n} pairs; {shown} shown)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="small")
    p.add_argument("--steps", type=int, default=None, help="passed to lwgan-study train (default: the profile's, 300 for small)")
    p.add_argument("--run-dir", type=Path, default=None, help="the training run's folder (default: a new temporary one)")
    p.add_argument("--reuse", action="store_true", help="--run-dir already holds the finished run: only recompose")
    p.add_argument("--png", type=Path, default=Path("docs/images/train_before_after.png"))
    p.add_argument("--rows", type=int, default=3, help="pairs shown per panel (all pairs are scored)")
    args = p.parse_args(argv)

    run_dir = (args.run_dir or Path(tempfile.mkdtemp(prefix="before_after_"))).expanduser().resolve()
    if not args.reuse:
        cmd = cli_command(args.profile, run_dir, args.steps)
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)

    info = json.loads((run_dir / "run_info.json").read_text())
    cfg = TrainConfig.from_flat(info["config"])
    logged = {r[vocab.STEP]: r for r in read_metrics(run_dir / "metrics.jsonl") if vocab.EVAL_SSIM in r}

    # The same Trainer as the run: prepare() seeds and builds G as the run did, i.e. the step-0 G.
    trainer = Trainer(cfg, run_dir, progress=False, profile=info.get("profile"))
    trainer.prepare()
    if trainer.precision.name != info["precision"]:
        raise SystemExit(f"precision {trainer.precision.name} here, {info['precision']} in the run")
    val_batch = trainer.eval_batch
    n = int(val_batch["src_img"].shape[0])
    train_batch = stack_items(trainer.train_set.fixed_pairs(n, seed=EVAL_PAIR_SEED))
    split = info["dataset"]["eval_split"]
    val_name = "val pairs (unseen subject)" if split == "val" else f"{split} pairs (no val split)"

    results: dict[tuple[int, str], dict[str, float]] = {}
    panels = []
    cols, m = pair_outputs(trainer, val_batch)
    check_against_log("step 0, val", m, logged.get(0))
    results[(0, "val")] = m
    panels.append((cols, title(0, val_name, m, n, min(args.rows, n))))
    _, results[(0, "train")] = pair_outputs(trainer, train_batch)

    state = load_latest_checkpoint(checkpoint_path(run_dir), map_location=trainer.device).payload
    final = int(state["step"])
    trainer.G.load_state_dict(state["G"])
    cols, m = pair_outputs(trainer, val_batch)
    check_against_log(f"step {final}, val", m, logged.get(final))
    results[(final, "val")] = m
    panels.append((cols, title(final, val_name, m, n, min(args.rows, n))))
    cols, m = pair_outputs(trainer, train_batch)
    results[(final, "train")] = m
    panels.append((cols, title(final, "train subjects", m, n, min(args.rows, n))))

    parts = []
    for i, (cols, text) in enumerate(panels):
        path = run_dir / "before_after" / f"panel_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid_image([c[: args.rows] for c in cols], COLUMNS, text).save(path)
        parts.append(path)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    stack_vertically(parts, args.png)

    print(f"run: {run_dir} (profile {info.get('profile')}, seed {info['seed']}, precision {info['precision']}, "
          f"{final} steps)\nfigure: {args.png}\n")
    print("| run | pairs | eval/ssim | eval/ssim_rec | eval/psnr (dB) | eval/psnr_rec (dB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pairs, name in (("val", val_name.replace("pairs ", "")), ("train", "train subjects")):
        for step in (0, final):
            r = results[(step, pairs)]
            print(f"| step {step} | {name} | {r[vocab.EVAL_SSIM]:.3f} | {r[vocab.EVAL_SSIM_REC]:.3f} | "
                  f"{r[vocab.EVAL_PSNR]:.1f} | {r[vocab.EVAL_PSNR_REC]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
