"""Rasterizer: silhouettes match analytic shapes, depth test, barycentrics, chunking and batching invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lwgan.render import rasterize


def _disc(cx: float, cy: float, radius: float, segments: int = 256, z: float = 0.0):
    angles = torch.arange(segments, dtype=torch.float64) * (2 * math.pi / segments)
    rim = torch.stack([cx + radius * torch.cos(angles), cy + radius * torch.sin(angles), torch.full_like(angles, z)], 1)
    verts = torch.cat([torch.tensor([[cx, cy, z]], dtype=torch.float64), rim]).float()
    faces = torch.stack([torch.zeros(segments, dtype=torch.long), 1 + torch.arange(segments), 1 + (torch.arange(segments) + 1) % segments], 1)
    return verts, faces


def _quad(x0, y0, x1, y1, z, first_vertex=0):
    verts = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=torch.float32)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]]) + first_vertex
    return verts, faces


def test_disc_silhouette_matches_the_analytic_disc():
    size, cx, cy, r = 64, 30.3, 33.6, 20.7
    verts, faces = _disc(cx, cy, r)
    mask = (rasterize(verts[None], faces, size).face_index[0] >= 0).numpy()
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - cx, yy - cy)
    truth = dist <= r
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.98
    wrong = mask != truth
    assert np.all(np.abs(dist[wrong] - r) <= 1.0)  # mistakes only on the boundary, within one pixel
    assert wrong.sum() <= 4  # a 256-gon is within 0.002 px of the circle


def test_box_covers_exactly_the_pixel_centres_inside_it():
    size = 32
    verts, faces = _quad(3.4, 5.0, 20.6, 17.2, 1.0)  # left/right edges between centres, top edge on a centre row
    raster = rasterize(verts[None], faces, size)
    mask = (raster.face_index[0] >= 0).numpy()
    truth = np.zeros((size, size), bool)
    truth[5:18, 4:21] = True  # rows 5..17 (y = 5.0 is on the edge: included), columns 4..20
    np.testing.assert_array_equal(mask, truth)
    assert (raster.face_index[0][~torch.from_numpy(truth)] == -1).all()
    assert (raster.bary[0][~torch.from_numpy(truth)] == 0).all()


def test_barycentrics_reproduce_the_pixel_centre():
    size = 48
    verts = torch.tensor([[[2.2, 3.1, 0.0], [45.7, 10.4, 1.0], [12.9, 44.3, 2.0]]])
    faces = torch.tensor([[0, 1, 2]])
    raster = rasterize(verts, faces, size)
    on = raster.face_index[0] >= 0
    assert on.sum() > 500
    b = raster.bary[0][on]
    assert (b >= 0).all() and torch.allclose(b.sum(1), torch.ones(len(b)))
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pos = b @ verts[0, :, :2]
    torch.testing.assert_close(pos, torch.stack([xx[on], yy[on]], 1).float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("near_first", [True, False])
def test_depth_test_nearer_quad_wins(near_first):
    size = 40
    near, near_f = _quad(5.5, 5.5, 25.5, 25.5, z=1.0)
    far, far_f = _quad(15.5, 15.5, 35.5, 35.5, z=5.0, first_vertex=4)
    verts = torch.cat([near, far])[None]
    faces = torch.cat([near_f, far_f]) if near_first else torch.cat([far_f, near_f])
    fi = rasterize(verts, faces, size).face_index[0]
    near_ids = {0, 1} if near_first else {2, 3}
    overlap = fi[16:26, 16:26]
    assert all(int(f) in near_ids for f in overlap.flatten())
    assert all(int(f) not in near_ids for f in fi[30:36, 30:36].flatten())
    assert all(int(f) in near_ids for f in fi[6:15, 6:15].flatten())


def test_chunking_and_batching_do_not_change_the_result():
    gen = torch.Generator().manual_seed(0)
    size, n = 32, 60
    centres = torch.rand(n, 1, 2, generator=gen) * size
    tris = centres + (torch.rand(n, 3, 2, generator=gen) - 0.5) * 14
    depth = torch.rand(n, 3, 1, generator=gen)
    verts = torch.cat([tris, depth], -1).reshape(1, n * 3, 3)
    faces = torch.arange(n * 3).reshape(n, 3)
    whole = rasterize(verts, faces, size)
    pieces = rasterize(verts, faces, size, chunk_pairs=37)
    assert torch.equal(whole.face_index, pieces.face_index)
    torch.testing.assert_close(whole.bary, pieces.bary)
    moved = verts.clone()
    moved[..., 0] = size - 1 - moved[..., 0]  # mirrored: a different image
    both = rasterize(torch.cat([verts, moved]), faces, size)
    assert torch.equal(both.face_index[0], whole.face_index[0])
    assert torch.equal(both.face_index[1], whole.face_index[0].flip(-1))


def test_faces_outside_or_degenerate_are_ignored():
    verts = torch.tensor([[[-30.0, -30.0, 0.0], [-10.0, -30.0, 0.0], [-20.0, -5.0, 0.0],  # off image
                           [5.0, 5.0, 0.0], [10.0, 10.0, 0.0], [15.0, 15.0, 0.0],  # zero area
                           [-8.0, 4.0, 0.0], [8.0, 4.0, 0.0], [0.0, 12.0, 0.0]]])  # straddles the left border
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    fi = rasterize(verts, faces, 16).face_index[0]
    assert set(fi.unique().tolist()) == {-1, 2}
    assert fi[4, 0] == 2 and fi[4, 8] == 2 and fi[4, 9] == -1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    verts, faces = _disc(30.3, 33.6, 20.7)
    cpu = rasterize(verts[None], faces, 64)
    gpu = rasterize(verts[None].cuda(), faces.cuda(), 64)
    assert torch.equal(cpu.face_index, gpu.face_index.cpu())
    torch.testing.assert_close(cpu.bary, gpu.bary.cpu(), atol=1e-5, rtol=0)
