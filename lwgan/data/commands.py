"""``lwgan-study data synth`` and ``lwgan-study data check``: thin wrappers that print and return exit codes."""

from __future__ import annotations

import argparse
import sys
import time


def command_check(args: argparse.Namespace) -> int:
    """Print the dataset report of ``args.dir``; exit 1 when it found problems."""
    from lwgan.data.check import check_dataset

    report = check_dataset(args.dir)
    print(report.format())
    return 0 if report.ok else 1


def command_synth(args: argparse.Namespace) -> int:
    """Write a synthetic mini-iPER to ``args.out`` with a progress line."""
    from lwgan.data.synth import synthesize_iper

    start = time.perf_counter()

    def progress(done: int, total: int, video: str) -> None:
        print(f"\rsynthesising {done}/{total} videos ({video})", end="", file=sys.stderr, flush=True)

    out = synthesize_iper(
        args.out,
        subjects=args.subjects,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        body_model_path=args.body_model,
        progress=progress,
    )
    print(file=sys.stderr)
    seconds = time.perf_counter() - start
    videos = 2 * args.subjects
    print(
        f"wrote a synthetic mini-iPER to {out}: {args.subjects} subjects, {videos} videos, "
        f"{videos * args.frames} frames of {args.size}x{args.size} px in {seconds:.1f} s"
    )
    return 0
