"""Procedural static backgrounds for synthetic videos: a wall gradient, a floor, shapes and noise.

Each video gets its own background (iPER films every video with a fixed camera), so the
background stream has something to inpaint that differs between videos.
"""

from __future__ import annotations

import cv2
import numpy as np


def _random_colour(rng: np.random.Generator, low: float = 40, high: float = 230) -> np.ndarray:
    return rng.uniform(low, high, 3)


def _low_frequency_noise(size: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """(size, size) smooth noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def make_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) uint8 RGB."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    top, bottom = _random_colour(rng), _random_colour(rng)
    img = top[None, None] * (1 - ramp[..., None]) + bottom[None, None] * ramp[..., None]

    # A floor below a horizon at 70-90% of the height, in its own colour with a soft edge.
    horizon = rng.uniform(0.7, 0.9)
    floor = _random_colour(rng, 30, 200)
    weight = np.clip((yy - horizon) * size / 3.0, 0.0, 1.0)[..., None]
    img = img * (1 - weight) + (floor[None, None] * (0.8 + 0.4 * (yy[..., None] - horizon))) * weight

    # Wall decorations: a few rectangles and circles (posters, furniture, lamps).
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(float(c) for c in _random_colour(rng, 20, 240))
        cx, cy = rng.uniform(0, 1, 2) * size
        w, h = rng.uniform(0.06, 0.3, 2) * size
        if rng.random() < 0.6:
            p0 = (int(cx - w / 2), int(cy - h / 2))
            p1 = (int(cx + w / 2), int(cy + h / 2))
            cv2.rectangle(img, p0, p1, colour, thickness=-1, lineType=cv2.LINE_AA)
        else:
            cv2.circle(img, (int(cx), int(cy)), int(min(w, h) / 2), colour, thickness=-1, lineType=cv2.LINE_AA)

    shade = 1.0 + 0.12 * _low_frequency_noise(size, rng, cells=int(rng.integers(3, 7)))
    img = img * shade[..., None] + rng.normal(0.0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
