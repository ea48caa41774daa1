"""Vectorised triangle rasterizer in plain torch: per-pixel face index and barycentric weights with a z-test.

Pixel centres lie at integer coordinates 0..size-1 (the ``align_corners=True`` convention of
``lwgan.body.ndc_to_pixels``). Each face's bounding box yields candidate (pixel, face) pairs; an
edge-function test keeps the pixels inside (edges included), and the smallest depth wins (ties go to
the smaller face index, so the result is deterministic). Faces are processed in chunks of candidate
pairs to bound memory; there is no Python loop over faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_CHUNK_PAIRS = 1 << 21  # candidate (pixel, face) pairs per chunk: ~100 MB of temporaries
INSIDE_EPS = 1e-5  # barycentric tolerance: pixels exactly on an edge belong to both faces


@dataclass(frozen=True)
class Raster:
    face_index: torch.Tensor  # (B, H, W) long, -1 = background
    bary: torch.Tensor  # (B, H, W, 3) float, zeros on background


def _plane_coefficients(tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 3) triangles (x, y, z) -> barycentric planes (N, 3, 3) ``b_i = A x + B y + C`` and signed 2*area (N,)."""
    x, y = tri[..., 0], tri[..., 1]
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    safe = torch.where(area2.abs() > 0, area2, torch.ones_like(area2))
    planes = []
    for i in range(3):  # b_i is the edge function of the edge opposite vertex i
        j, k = (i + 1) % 3, (i + 2) % 3
        a = (y[:, j] - y[:, k]) / safe
        b = (x[:, k] - x[:, j]) / safe
        c = (x[:, j] * y[:, k] - x[:, k] * y[:, j]) / safe
        planes.append(torch.stack([a, b, c], dim=-1))
    return torch.stack(planes, dim=1), area2


def rasterize(verts_px: torch.Tensor, faces: torch.Tensor, size: int, chunk_pairs: int = DEFAULT_CHUNK_PAIRS) -> Raster:
    """Rasterize (B, V, 3) vertices ``(x_px, y_px, z)`` with (F, 3) faces into ``size`` x ``size`` images.

    Smaller z is nearer the camera. Returns the visible face per pixel (-1 where none) and its
    barycentric weights (non-negative, summing to 1 on the body).
    """
    device = verts_px.device
    verts = verts_px.float()
    faces = faces.to(device=device, dtype=torch.long)
    batch, num_faces = verts.shape[0], faces.shape[0]
    pixels = size * size
    tri = verts[:, faces].reshape(batch * num_faces, 3, 3)
    planes, area2 = _plane_coefficients(tri)
    depth = tri[..., 2]  # (N, 3)

    x0 = torch.ceil(tri[..., 0].amin(1)).clamp(min=0)
    x1 = torch.floor(tri[..., 0].amax(1)).clamp(max=size - 1)
    y0 = torch.ceil(tri[..., 1].amin(1)).clamp(min=0)
    y1 = torch.floor(tri[..., 1].amax(1)).clamp(max=size - 1)
    finite = torch.isfinite(tri).all(dim=(1, 2))
    valid = finite & (x1 >= x0) & (y1 >= y0) & (area2.abs() > 1e-10)
    candidates = torch.nonzero(valid).squeeze(1)
    width = (x1 - x0 + 1).long()
    counts = width * (y1 - y0 + 1).long()

    zbuf = torch.full((batch * pixels,), float("inf"), device=device)
    fbuf = torch.full((batch * pixels,), -1, dtype=torch.long, device=device)
    bbuf = torch.zeros((batch * pixels, 3), device=device)
    if len(candidates):
        cum = torch.cumsum(counts[candidates], 0)
        # Chunk boundaries (in candidate order) where the running pair count passes multiples of chunk_pairs.
        marks = torch.arange(chunk_pairs, int(cum[-1]) + chunk_pairs, chunk_pairs, device=device)
        ends = torch.unique(torch.clamp(torch.searchsorted(cum, marks, right=True), min=1, max=len(candidates)))
        start = 0
        for end in ends.tolist():
            if end <= start:
                continue
            _rasterize_chunk(candidates[start:end], counts, width, x0, y0, planes, depth, num_faces, size, zbuf, fbuf, bbuf)
            start = end
    face_index = fbuf.view(batch, size, size)
    bary = bbuf.view(batch, size, size, 3)
    return Raster(face_index=face_index, bary=bary)


def _rasterize_chunk(chunk, counts, width, x0, y0, planes, depth, num_faces, size, zbuf, fbuf, bbuf) -> None:
    device = chunk.device
    cnt = counts[chunk]
    owner = torch.repeat_interleave(torch.arange(len(chunk), device=device), cnt)
    first = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(int(cnt.sum()), device=device) - first[owner]
    tri_id = chunk[owner]
    w = width[tri_id]
    px = x0[tri_id] + (local % w).float()
    py = y0[tri_id] + torch.div(local, w, rounding_mode="floor").float()
    pl = planes[tri_id]  # (P, 3, 3)
    bary = pl[..., 0] * px[:, None] + pl[..., 1] * py[:, None] + pl[..., 2]
    inside = (bary >= -INSIDE_EPS).all(1)
    tri_id, px, py, bary = tri_id[inside], px[inside], py[inside], bary[inside]
    bary = bary.clamp(min=0.0)
    bary = bary / bary.sum(1, keepdim=True)
    z = (bary * depth[tri_id]).sum(1)
    batch_id = torch.div(tri_id, num_faces, rounding_mode="floor")
    face_id = tri_id - batch_id * num_faces
    pix = batch_id * (size * size) + py.long() * size + px.long()

    # Chunk-local winner per pixel: smallest z, then smallest face index.
    zmin = torch.full_like(zbuf, float("inf")).scatter_reduce(0, pix, z, reduce="amin")
    nearest = z == zmin[pix]
    fmin = torch.full_like(fbuf, num_faces).scatter_reduce(0, pix[nearest], face_id[nearest], reduce="amin")
    keep = nearest & (face_id == fmin[pix])
    pix, z, face_id, bary = pix[keep], z[keep], face_id[keep], bary[keep]
    # Merge with what earlier chunks left in the buffers.
    old_z, old_f = zbuf[pix], fbuf[pix]
    better = (z < old_z) | ((z == old_z) & ((old_f < 0) | (face_id < old_f)))
    pix = pix[better]
    zbuf[pix] = z[better]
    fbuf[pix] = face_id[better]
    bbuf[pix] = bary[better]
