"""Sample grids (one row per fixed val pair, columns source | reference pose | warped source | output | target)
and the final val outputs as arrays (``samples/final_outputs.npz``) for the report's per-pair strips."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLUMNS = ("source", "reference", "warped", "output", "target")
HEADER_HEIGHT = 14
GAP = 2
MIN_TILE = 96  # grids enlarge smaller images to this width


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    arr = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


def upscale_factor(width: int, min_tile: int = MIN_TILE) -> int:
    """Integer nearest-neighbour factor that makes a tile at least ``min_tile`` px wide (labels fit)."""
    return max(1, -(-min_tile // width))


def grid_image(columns: Sequence[torch.Tensor], labels: Sequence[str] = COLUMNS, title: str | None = None,
               min_tile: int = MIN_TILE) -> Image.Image:
    """Compose a labelled grid: ``columns[j]`` is a (B, 3, H, W) batch in [-1, 1] shown in column j.

    Small images are enlarged by an integer factor (nearest neighbour, pixels stay visible).
    """
    if len(columns) != len(labels):
        raise ValueError(f"{len(columns)} image columns but {len(labels)} labels")
    factor = upscale_factor(columns[0].shape[-1], min_tile)
    tiles = [to_uint8(c).repeat(factor, axis=1).repeat(factor, axis=2) for c in columns]
    rows, h, w = tiles[0].shape[0], tiles[0].shape[1], tiles[0].shape[2]
    header = HEADER_HEIGHT * (2 if title else 1)
    width = len(columns) * w + (len(columns) - 1) * GAP
    height = header + rows * h + (rows - 1) * GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=10) if hasattr(ImageFont, "load_default") else None
    if title:
        draw.text((2, 1), title, fill=(0, 0, 0), font=font)
    for j, label in enumerate(labels):
        x0 = j * (w + GAP)
        text_w = draw.textlength(label, font=font)
        draw.text((x0 + max(0, (w - text_w) / 2), header - HEADER_HEIGHT + 1), label, fill=(0, 0, 0), font=font)
        for i in range(rows):
            canvas.paste(Image.fromarray(tiles[j][i]), (x0, header + i * (h + GAP)))
    return canvas


def save_grid(path: Path, columns: Sequence[torch.Tensor], labels: Sequence[str] = COLUMNS, title: str | None = None,
              min_tile: int = MIN_TILE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(columns, labels, title, min_tile).save(path)
    return path


# The run's last outputs on the fixed val pairs, one array per name: images (B, H, W, 3) uint8, scores (B,) float32.
FINAL_OUTPUTS = "samples/final_outputs.npz"
OUTPUT_IMAGES = ("source", "target", "warped", "reference", "transfer", "reconstruction")
OUTPUT_SCORES = ("ssim", "psnr", "ssim_rec", "psnr_rec")  # transfer vs target, reconstruction vs source


def save_outputs(path: Path, images: dict[str, torch.Tensor], scores: dict[str, torch.Tensor], step: int) -> Path:
    """Write ``OUTPUT_IMAGES`` ((B, 3, H, W) in [-1, 1], stored as uint8) and ``OUTPUT_SCORES`` ((B,)) to a
    compressed .npz; a missing name is a ValueError naming it."""
    missing = [k for k in OUTPUT_IMAGES if k not in images] + [k for k in OUTPUT_SCORES if k not in scores]
    if missing:
        raise ValueError(f"save_outputs: missing {', '.join(missing)}")
    arrays = {k: to_uint8(images[k]) for k in OUTPUT_IMAGES}
    arrays.update({k: scores[k].detach().float().cpu().numpy() for k in OUTPUT_SCORES})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # np.savez would append .npz to a name without it
        np.savez_compressed(fh, step=np.int64(step), **arrays)
    return path


def stack_vertically(paths: Sequence[Path], out: Path, gap: int = 6) -> Path:
    """Stack PNGs top to bottom on white (for a before/after figure)."""
    images = [Image.open(p).convert("RGB") for p in paths]
    width = max(im.width for im in images)
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + gap
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return Path(out)
