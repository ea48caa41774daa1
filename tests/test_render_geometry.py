"""Pair geometry: flow T, uv_seg cond maps, the reference's masks, warping, the correspondence cache."""

from __future__ import annotations

import copy
import math

import cv2
import numpy as np
import pytest
import torch

from lwgan.body import generate_body_model, head_box, load_body_model, pixels_to_ndc
from lwgan.render import (
    CorrespondenceCache, FrameGeometry, GeometryBuilder, background_kernel, erode, generator_inputs, warp,
)

SIZE = 64


@pytest.fixture(scope="module")
def body(tmp_path_factory):
    return load_body_model(generate_body_model(tmp_path_factory.mktemp("body") / "g.npz"))


def _smpl(n: int = 1, arm: float = 0.0, turn: float = 0.0, knee: float = 0.0) -> torch.Tensor:
    smpl = torch.zeros(n, 85)
    smpl[:, :3] = torch.tensor([0.95, 0.0, 0.05])
    # HMR's flip about x, then a turn about the (flipped) vertical axis.
    flip = torch.tensor([math.pi, 0.0, 0.0])
    smpl[:, 3:6] = _compose(torch.tensor([0.0, turn, 0.0]), flip)
    smpl[:, 3 + 3 * 16 + 2] = arm  # left shoulder about z
    smpl[:, 3 + 3 * 17 + 2] = -arm
    smpl[:, 3 + 3 * 4] = knee  # left knee about x
    return smpl


def _compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ra, rb = cv2.Rodrigues(a.numpy().astype(np.float64))[0], cv2.Rodrigues(b.numpy().astype(np.float64))[0]
    return torch.from_numpy(cv2.Rodrigues(ra @ rb)[0].ravel()).float()


def _texture(body, frame: FrameGeometry) -> torch.Tensor:
    """(B, 3, H, W) image of a smooth per-vertex colour (a function of the rest-pose surface), 0 off the body."""
    rest = body(torch.zeros(1, 72), torch.zeros(1, 10)).vertices[0]
    colour = 0.5 + 0.5 * torch.stack([torch.sin(9 * rest[:, 1]), torch.cos(11 * rest[:, 0] + 3 * rest[:, 2]), torch.sin(7 * (rest[:, 0] + rest[:, 1]))], 1)
    tri = body.faces[frame.face_index.clamp(min=0)]  # (B, H, W, 3)
    img = (frame.bary[..., None] * colour[tri]).sum(3) * (frame.face_index >= 0)[..., None]
    return img.permute(0, 3, 1, 2)


def test_flow_is_the_identity_for_the_same_frame(body):
    builder = GeometryBuilder(body, SIZE)
    frame = builder.frames(_smpl(arm=0.6, knee=0.5))
    geom = builder.pair(frame, frame)
    on = frame.face_index[0] >= 0
    assert on.float().mean() > 0.1
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    own_ndc = pixels_to_ndc(torch.stack([xx, yy], -1).float(), SIZE)
    torch.testing.assert_close(geom.flow[0][on], own_ndc[on], atol=1e-4, rtol=0)
    assert (geom.flow[0][~on] == -2).all()
    img = _texture(body, frame) * 2 - 1
    warped = warp(img, geom.flow)
    # T is exact to ~1e-4 NDC (3e-3 px at 64 px); times the texture's gradient that is < 5e-3 in value.
    torch.testing.assert_close(warped[0][:, on], img[0][:, on], atol=5e-3, rtol=0)
    assert (warped[0][:, on] - img[0][:, on]).abs().mean() < 5e-4
    assert (warped[0][:, ~on] == 0).all()  # -2 samples outside: zeros


def test_cond_maps_and_masks_follow_the_reference(body):
    builder = GeometryBuilder(body, SIZE)
    src = builder.frames(_smpl(arm=0.3))
    tgt = builder.frames(_smpl(arm=-0.4, turn=0.4))
    geom = builder.pair(src, tgt)
    for frame, cond in ((src, geom.src_cond), (tgt, geom.tgt_cond)):
        on = frame.face_index[0] >= 0
        assert cond.shape == (1, 3, SIZE, SIZE)
        assert torch.equal(cond[0, 2], (~on).float())  # channel 2 = background
        assert (cond[0, :2, ~on] == 0).all()
        u, one_minus_v = cond[0, 0, on], cond[0, 1, on]
        assert u.min() >= 0 and u.max() <= 1 and one_minus_v.min() >= 0 and one_minus_v.max() <= 1
        assert u.std() > 0.1 and one_minus_v.std() > 0.1  # the surface is encoded, not a constant
    # Crop masks: background eroded 3x3 (the body grows by one pixel); bg mask: 15x15 at 256 -> 3x3 at 64 px.
    src_bg = geom.src_cond[:, 2:3]
    expected = cv2.erode(src_bg[0, 0].numpy(), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
    np.testing.assert_array_equal(geom.src_crop_mask[0, 0].numpy(), expected)
    np.testing.assert_array_equal(geom.bg_mask[0, 0].numpy(), expected)  # kernel 3 at 64 px
    assert geom.tgt_crop_mask.sum() < geom.tgt_cond[:, 2:3].sum()
    assert torch.equal(geom.head_box, head_box(tgt.joints_ndc, tgt.verts_ndc, SIZE, body.head_vertex_ids))


def test_cond_map_is_one_constant_per_face_from_its_own_atlas_chart(body, tmp_path):
    """Reference (utils/mesh.py uv_seg): cond = map_fn[fim], one (u, 1 - v, 0) per face, its value the
    midpoint of the face's UV corners 0 and 1. So pixels of one face are equal and no face mixes parts."""
    from lwgan.body.uv import ATLAS_COLUMNS, ATLAS_ROWS

    builder = GeometryBuilder(body, 128)
    frame = builder.frames(_smpl(arm=0.4, turn=0.3, knee=0.5))
    cond = builder.pair(frame, frame).src_cond[0]  # (3, H, W)
    fim = frame.face_index[0]
    on = fim >= 0
    faces_seen = torch.unique(fim[on])
    assert len(faces_seen) > 500
    # one value per face (a lookup in the body's face table, so constant over the face): (u, 1 - v)
    expected = torch.stack([body.face_uv[fim.clamp(min=0), 0], 1 - body.face_uv[fim.clamp(min=0), 1]])
    torch.testing.assert_close(cond[:2, on], expected[:, on], rtol=0, atol=0)
    for face in faces_seen[:50]:  # and literally: all pixels of a face carry one value
        assert cond[:2, fim == face].unique(dim=1).shape[1] == 1
    # every face's value sits inside the atlas cell of its own part (clean seams), not between two cells
    weights = torch.as_tensor(np.load(body.source)["weights"])
    part = weights[body.faces].sum(1).argmax(1)
    cell = (body.face_uv * torch.tensor([ATLAS_COLUMNS, ATLAS_ROWS])).floor().long()
    assert torch.equal(cell[:, 1] * ATLAS_COLUMNS + cell[:, 0], part)
    # a body model that ships per-vertex UVs: the face value is the mean of corners 0 and 1, as the reference
    data = dict(np.load(body.source))
    data["vertex_uv"] = np.random.default_rng(0).random((len(data["v_template"]), 2))
    np.savez(tmp_path / "uv.npz", **data)
    with_uv = load_body_model(tmp_path / "uv.npz")
    f = data["f"]
    np.testing.assert_allclose(with_uv.face_uv.numpy(), (data["vertex_uv"][f[:, 0]] + data["vertex_uv"][f[:, 1]]) / 2, rtol=0, atol=1e-6)


def test_background_kernel_scales_with_size_and_erosion_matches_opencv():
    assert [background_kernel(s) for s in (32, 64, 128, 256, 512)] == [3, 3, 7, 15, 31]
    mask = (torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(1)) > 0.3).float()
    for k in (3, 7, 15):
        expected = cv2.erode(mask[0, 0].numpy(), np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1)
        np.testing.assert_array_equal(erode(mask, k)[0, 0].numpy(), expected)


def test_bg_mask_hole_grows_with_image_size(body):
    for size in (64, 128):
        builder = GeometryBuilder(body, size)
        frame = builder.frames(_smpl())
        geom = builder.pair(frame, frame)
        hole = 1 - geom.bg_mask[0, 0]
        body_px = 1 - geom.src_cond[0, 2]
        grown = (hole.sum() - body_px.sum()) / body_px.sum()
        assert grown > 0.1  # the eroded background leaves a wider hole around the body


def test_warping_pose_a_to_pose_b_matches_rendering_pose_b(body):
    builder = GeometryBuilder(body, 128)
    src = builder.frames(_smpl(arm=0.5))
    tgt = builder.frames(_smpl(arm=-0.3, turn=0.35, knee=0.6))
    geom = builder.pair(src, tgt)
    src_img, tgt_img = _texture(body, src), _texture(body, tgt)
    warped = warp(src_img, geom.flow)
    # Target pixels whose surface point is visible in the source too: the source pixel nearest to T shows
    # a face that shares a vertex with the target's face, away from the source silhouette edge.
    src_px = ((geom.flow[0] + 1) / 2 * 127).round().long().clamp(0, 127)
    tgt_face = tgt.face_index[0]
    src_face = src.face_index[0][src_px[..., 1], src_px[..., 0]]
    src_body_inner = erode(1 - geom.src_cond[:, 2:3], 3)[0, 0] > 0  # the source body minus its edge pixels
    src_inner = src_body_inner[src_px[..., 1], src_px[..., 0]]
    faces = body.faces
    shares = (faces[tgt_face.clamp(min=0)][..., :, None] == faces[src_face.clamp(min=0)][..., None, :]).any(-1).any(-1)
    visible = (tgt_face >= 0) & (src_face >= 0) & shares & src_inner
    assert visible.float().mean() > 0.05
    mse = ((warped[0][:, visible] - tgt_img[0][:, visible]) ** 2).mean()
    psnr = 10 * torch.log10(1 / mse)
    # Measured 56.7 dB (128 px, generated body, CPU). A wrong T falls far below the threshold: the
    # identity flow scores 26.1 dB and T with x/y swapped 22.6 dB on the pixels this test selects.
    assert psnr > 45, float(psnr)


def test_generator_inputs_follow_the_contract(body):
    builder = GeometryBuilder(body, SIZE)
    frames = builder.frames(torch.cat([_smpl(arm=0.2), _smpl(arm=-0.2, turn=0.3)]))
    geom = builder.pair(frames, FrameGeometry.stack([frames.select(1), frames.select(0)]))
    src_img = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    bg_in, src_in, tsf_in = generator_inputs(src_img, geom)
    assert bg_in.shape == (2, 4, SIZE, SIZE) and src_in.shape == (2, 6, SIZE, SIZE) and tsf_in.shape == (2, 6, SIZE, SIZE)
    torch.testing.assert_close(bg_in, torch.cat([src_img * geom.bg_mask, geom.bg_mask], 1))
    torch.testing.assert_close(src_in, torch.cat([src_img * (1 - geom.src_crop_mask), geom.src_cond], 1))
    torch.testing.assert_close(tsf_in, torch.cat([warp(src_img, geom.flow), geom.tgt_cond], 1))
    assert geom.flow.shape == (2, SIZE, SIZE, 2) and geom.head_box.dtype == torch.long


def test_cache_returns_the_same_geometry_and_checks_the_parameters(body, tmp_path):
    cache = CorrespondenceCache(tmp_path / "corr")
    builder = GeometryBuilder(body, SIZE, cache=cache)
    smpl = torch.cat([_smpl(arm=0.1), _smpl(arm=0.7)])
    keys = ["001/1/1/0000", "001/1/1/0005"]
    first = builder.frames(smpl, keys)
    assert (cache.hits, cache.misses) == (0, 2)
    again = builder.frames(smpl, keys)
    assert cache.hits == 2
    plain = GeometryBuilder(body, SIZE).frames(smpl)
    for a, b, c in zip(first.tensors(), again.tensors(), plain.tensors()):
        assert torch.equal(a, b) and torch.equal(a, c)
    # A fresh cache over the same folder reads the frames from disk.
    disk = CorrespondenceCache(tmp_path / "corr")
    from_disk = GeometryBuilder(body, SIZE, cache=disk).frames(smpl, keys)
    assert (disk.hits, disk.misses) == (2, 0)
    assert all(torch.equal(a, b) for a, b in zip(first.tensors(), from_disk.tensors()))
    # Same key, other parameters (a stale entry): recomputed, not served.
    changed = builder.frames(torch.cat([_smpl(arm=-0.5), _smpl(arm=0.7)]), keys)
    assert not torch.equal(changed.face_index[0], first.face_index[0])
    assert torch.equal(changed.face_index[1], first.face_index[1])
    # Another size is another entry.
    assert GeometryBuilder(body, 32, cache=cache).frames(smpl[:1], keys[:1]).face_index.shape == (1, 32, 32)


def test_one_at_a_time_renders_each_frame_on_its_own_and_looks_each_up_once(body):
    """The trainer's mode: frames to render are rendered singly (the geometry never depends on which
    frames share a batch), with or without a cache; one lookup per frame."""
    smpl = torch.cat([_smpl(arm=0.2), _smpl(arm=-0.4, turn=0.3), _smpl(knee=0.6)])
    single = [GeometryBuilder(body, SIZE).render(smpl[i : i + 1]) for i in range(3)]
    cache = CorrespondenceCache()
    builder = GeometryBuilder(body, SIZE, cache=cache)
    keys = ["a/0", "a/1", "a/2"]
    builder.frames(smpl[:1], keys[:1])  # one frame already cached
    got = builder.frames(smpl, keys, one_at_a_time=True)
    assert (cache.hits, cache.misses) == (1, 3)
    uncached = GeometryBuilder(body, SIZE).frames(smpl, one_at_a_time=True)
    for i in range(3):
        for a, b, c in zip(single[i].tensors(), got.select(i).tensors(), uncached.select(i).tensors()):
            assert torch.equal(a, b) and torch.equal(a, c)


def test_shared_folder_is_named_after_the_body_size_and_environment(body, tmp_path):
    from lwgan.render import shared_folder

    cpu = torch.device("cpu")
    base = shared_folder(tmp_path, body, SIZE, cpu)
    assert base.parent == tmp_path and base == shared_folder(tmp_path, body, SIZE, cpu)
    assert shared_folder(tmp_path, body, 32, cpu) != base
    other = copy.deepcopy(body)
    other.smpl.v_template.add_(1e-3)  # another body model: its frames land elsewhere
    assert shared_folder(tmp_path, other, SIZE, cpu) != base
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert shared_folder(tmp_path, body, SIZE, cpu) != base
    finally:
        torch.set_num_threads(threads)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # rendering is float32 whatever the caller's autocast
        assert shared_folder(tmp_path, body, SIZE, cpu) == base
        under = GeometryBuilder(body, SIZE).frames(_smpl())
    plain = GeometryBuilder(body, SIZE).frames(_smpl())
    assert all(torch.equal(a, b) for a, b in zip(under.tensors(), plain.tensors()))


def test_cache_disk_budget_stops_writing(body, tmp_path):
    frame = GeometryBuilder(body, 32).frames(_smpl())
    one = sum(t.numel() * t.element_size() for t in (_smpl()[0], *frame.tensors()))
    cache = CorrespondenceCache(tmp_path / "corr", max_disk_bytes=int(1.5 * one))
    cache.put("v/0", 32, _smpl()[0], frame)
    cache.put("v/1", 32, _smpl()[0], frame)  # would pass the budget: kept in memory only
    assert len(list((tmp_path / "corr").iterdir())) == 1 and len(cache) == 2
    reopened = CorrespondenceCache(tmp_path / "corr", max_disk_bytes=int(1.5 * one))
    assert reopened.get("v/0", 32, _smpl()[0]) is not None and reopened.get("v/1", 32, _smpl()[0]) is None
    reopened.put("v/2", 32, _smpl()[0], frame)  # the folder's size counts from when it was opened
    assert len(list((tmp_path / "corr").iterdir())) == 1


def test_cache_memory_budget_evicts_least_recently_used(body):
    builder = GeometryBuilder(body, 32)
    frame = builder.frames(_smpl())
    one = sum(t.numel() * t.element_size() for t in frame.tensors())
    cache = CorrespondenceCache(max_bytes=int(2.5 * one))
    for i in range(4):
        cache.put(f"v/{i}", 32, _smpl()[0], frame)
    assert len(cache) == 2
    assert cache.get("v/0", 32, _smpl()[0]) is None and cache.get("v/3", 32, _smpl()[0]) is not None
