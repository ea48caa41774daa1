"""``lwgan-study body convert|generate``: write SMPL-format .npz body models and say what was written."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwgan.body.convert import convert_smpl_pickle, read_smpl_arrays
from lwgan.body.generate import generate_body_model


def _summary(path: Path) -> str:
    arrays = read_smpl_arrays(path)
    return (f"{arrays['v_template'].shape[0]} vertices, {arrays['f'].shape[0]} faces, "
            f"{arrays['kintree_table'].shape[1]} joints, {arrays['shapedirs'].shape[-1]} shape coefficients")


def command_convert(args: argparse.Namespace) -> int:
    out = convert_smpl_pickle(Path(args.src).expanduser(), Path(args.dst).expanduser())
    print(f"wrote {out}: {_summary(out)}")
    return 0


def command_generate(args: argparse.Namespace) -> int:
    out = generate_body_model(Path(args.out).expanduser(), seed=int(args.seed))
    print(f"wrote {out} (generated stand-in, seed {args.seed}): {_summary(out)}")
    return 0
