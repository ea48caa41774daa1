"""``lwgan-study report``: build a study's Markdown/PDF report from the MLflow store."""

from __future__ import annotations

import argparse
from pathlib import Path


def command_report(args: argparse.Namespace) -> int:
    from lwgan.report.builder import build_report, parse_formats

    formats = parse_formats(getattr(args, "format", "md,pdf") or "md,pdf")
    out = Path(args.out) if getattr(args, "out", None) else None
    written = build_report(args.study, out_dir=out, formats=formats)
    for path in written:
        print(f"wrote {path}")
    return 0
