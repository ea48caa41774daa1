"""Weak-perspective camera of iPER/HMR (``ndc = s * (X_xy + t)``) and NDC <-> pixel conversion (align_corners)."""

from __future__ import annotations

import torch


def project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) points and (B, 3) cams ``[s, tx, ty]`` -> (B, N, 3) ``[ndc_x, ndc_y, z]``; +y is down, smaller z is nearer."""
    cam = cam.to(points.dtype)
    scale = cam[:, None, :1]
    shift = cam[:, None, 1:3]
    return torch.cat([scale * (points[..., :2] + shift), points[..., 2:3]], dim=-1)


def ndc_to_pixels(xy: torch.Tensor, size: int) -> torch.Tensor:
    """NDC in [-1, 1] -> pixel coordinates with pixel centres at 0..size-1 (``align_corners=True``)."""
    return (xy + 1.0) * 0.5 * (size - 1)


def pixels_to_ndc(xy: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`ndc_to_pixels`."""
    return xy * (2.0 / (size - 1)) - 1.0
