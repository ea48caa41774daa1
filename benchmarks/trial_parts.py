"""Where a whole small-profile trial's time goes, and what the folders a study's trials share save.

Usage: PYTHONPATH=. python benchmarks/trial_parts.py [--steps 300] [--threads 1] [--profile small]

Three trainings of ``--steps`` steps, one after the other in this process (CPU seconds, so another job
on the other core changes the numbers less than wall time would):

1. ``first``: seed 0 with empty shared folders (``target_cache_dir``, ``correspondence_cache_dir``):
   what the first trials of a study pay;
2. ``later``: seed 1 reading those folders: what every later trial pays;
3. ``later, features only``: seed 1 with the target-feature folder but its correspondences in memory
   (the study runner before the correspondences were shared).

Each row: CPU seconds of the whole ``fit``, of the training steps (pair geometry included), of the
pair geometry alone (rendering the frames not yet cached, then the pair maps and the flow), of the
eval forwards, checkpoints and sample sheets, and how many frame lookups rendered the frame (a miss)
or found it in memory or in the shared folder (a hit).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from pathlib import Path

PARTS = ("_train_step", "_pair_geometry", "_eval_outputs", "save", "write_samples")


def timed_training(profile: str, steps: int, seed: int, folders: dict[str, str | None], out: Path) -> dict:
    from lwgan.profiles import resolve_config
    from lwgan.train.trainer import Trainer

    trainer = Trainer(resolve_config(profile, {"device": "cpu", "seed": seed, "max_steps": steps, **folders}), out,
                      progress=False, profile=profile)
    spent: dict[str, float] = collections.defaultdict(float)
    for name in PARTS:  # wrap the instance's bound methods: the trainer calls them through self
        method = getattr(trainer, name)

        def wrapped(*args, _method=method, _name=name, **kwargs):
            start = time.process_time()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_name] += time.process_time() - start

        setattr(trainer, name, wrapped)
    start = time.process_time()
    trainer.fit()
    cache = trainer.geometry.cache
    return {"fit": time.process_time() - start, **spent, "hits": cache.hits, "misses": cache.misses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", default="small")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="lwgan-trial-parts-"))
    shared = {"target_cache_dir": str(work / "targets"), "correspondence_cache_dir": str(work / "correspondences")}
    runs = [
        ("first (empty folders), seed 0", 0, shared),
        ("later (folders warm), seed 1", 1, shared),
        ("later, features only, seed 1", 1, {**shared, "correspondence_cache_dir": None}),
    ]
    rows = []
    try:
        for i, (label, seed, folders) in enumerate(runs):
            rows.append((label, timed_training(args.profile, args.steps, seed, folders, work / f"run-{i}")))
            print(f"done: {label}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.profile}, {args.steps} steps, {args.threads} thread(s), torch {torch.__version__}; CPU seconds\n")
    print("| trial | fit | training steps | of which pair geometry | eval forwards | checkpoints | sample sheets | frames rendered / found cached |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows:
        print(f"| {label} | {r['fit']:.1f} | {r['_train_step']:.1f} | {r['_pair_geometry']:.2f} | {r['_eval_outputs']:.2f} | "
              f"{r['save']:.2f} | {r['write_samples']:.2f} | {r['misses']} / {r['hits']} |")


if __name__ == "__main__":
    main()
