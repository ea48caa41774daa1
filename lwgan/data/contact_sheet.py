"""A PNG grid of frames of one subject's videos, to look at what a dataset holds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lwgan.data.layout import IMAGES_DIR, list_frames
from lwgan.errors import DataError


def subject_videos(root: Path, subject: str) -> list[str]:
    base = Path(root) / IMAGES_DIR / subject
    if not base.is_dir():
        raise DataError(f"{base}: subject folder not found")
    return sorted(p.relative_to(Path(root) / IMAGES_DIR).as_posix() for p in base.glob("*/*") if p.is_dir())


def contact_sheet(root: str | Path, subject: str, out: str | Path, columns: int = 8, tile: int | None = None) -> Path:
    """Write a grid: one row per video of ``subject`` (``columns`` evenly spaced frames, labelled)."""
    root = Path(root)
    rows = []
    for video in subject_videos(root, subject):
        frames = list_frames(root / IMAGES_DIR / video)
        picks = np.linspace(0, len(frames) - 1, min(columns, len(frames))).round().astype(int)
        tiles = []
        for index in picks:
            img = cv2.imread(str(frames[index]), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError(f"{frames[index]}: cannot read frame")
            if tile is not None:
                img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
            label = f"{video} #{index}"
            scale = img.shape[0] / 256
            cv2.putText(img, label, (3, int(14 * max(scale, 0.5))), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * max(scale, 0.5),
                        (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(img)
        while len(tiles) < columns:
            tiles.append(np.zeros_like(tiles[0]))
        rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise DataError(f"{root / IMAGES_DIR / subject}: no videos")
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise DataError(f"{out}: cannot write contact sheet")
    return out


if __name__ == "__main__":  # python -m lwgan.data.contact_sheet <dataset> <subject> <out.png>
    import sys

    if len(sys.argv) != 4:
        sys.exit("usage: python -m lwgan.data.contact_sheet DATASET SUBJECT OUT.png")
    print(contact_sheet(sys.argv[1], sys.argv[2], sys.argv[3]))
