"""Binary morphology on (B, 1, H, W) masks, as the reference's ``morph``: erosion treats outside the image as 1."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REFERENCE_BG_KERNEL = 15  # the background mask's erosion kernel at 256 px
REFERENCE_SIZE = 256


def erode(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """1 where the whole ``kernel`` x ``kernel`` window is 1; the border is padded with 1 (as the reference)."""
    pad = kernel // 2
    padded = F.pad(mask, [pad, pad, pad, pad], value=1.0)
    # A square window's minimum is the minimum over its rows' minima: two 1-D passes, same result.
    rows = F.max_pool2d(-padded, (1, kernel), stride=1)
    return -F.max_pool2d(rows, (kernel, 1), stride=1)


def background_kernel(size: int) -> int:
    """The reference's 15 x 15 background erosion at 256 px, scaled to ``size``: the nearest odd width (ties up), >= 3."""
    scaled = REFERENCE_BG_KERNEL * size / REFERENCE_SIZE
    return max(3, 2 * math.floor((scaled - 1) / 2 + 0.5) + 1)
