"""Pieces of the synthetic generator that need no body model: motion, backgrounds, clothing, splits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lwgan.data import appearance as ap
from lwgan.data.backgrounds import make_background
from lwgan.data.motion import action_video, global_orient, joint_limits, smooth_signal, turn_video


def _forward_and_up(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rot = Rotation.from_rotvec(pose[:, :3])
    return rot.apply([0.0, 0.0, 1.0]), rot.apply([0.0, 1.0, 0.0])


def test_global_orient_has_hmr_flip():
    forward, up = _forward_and_up(np.concatenate([global_orient(np.zeros(1)), np.zeros((1, 69))], 1))
    np.testing.assert_allclose(up[0], [0, -1, 0], atol=1e-12)  # body up = image up (-y)
    np.testing.assert_allclose(forward[0], [0, 0, -1], atol=1e-12)  # faces the camera (smaller z)


def test_turn_video_covers_a_full_circle_about_the_vertical():
    pose = turn_video(24, np.random.default_rng(0))
    forward, up = _forward_and_up(pose)
    np.testing.assert_allclose(up, np.tile([0, -1, 0], (24, 1)), atol=1e-9)  # stays upright
    np.testing.assert_allclose(forward[0], [0, 0, -1], atol=1e-9)
    angles = np.unwrap(np.arctan2(forward[:, 0], -forward[:, 2]))
    steps = np.diff(angles)
    assert np.all(np.sign(steps) == np.sign(steps[0]))  # one direction
    assert abs(angles[-1] - angles[0] + steps[0]) == pytest.approx(2 * np.pi, abs=1e-6)
    assert np.allclose(pose[:, 3:], pose[:1, 3:])  # a fixed A-pose
    assert pose[0, 3 + 15 * 3 + 2] < -0.9  # left shoulder lowered


def test_action_video_is_smooth_and_within_limits():
    pose = action_video(48, np.random.default_rng(1))
    body = pose[:, 3:].reshape(48, 23, 3)
    for joint, axis, low, high in joint_limits():
        values = body[:, joint - 1, axis]
        assert values.min() >= low - 1e-9 and values.max() <= high + 1e-9, (joint, axis)
    assert np.abs(np.diff(pose[:, 3:], axis=0)).max() < 0.5  # no jumps between frames
    assert np.ptp(body[:, 3, 0]) > 0.05 and np.ptp(body[:, 17, 1]) > 0.05  # knee and elbow move
    forward, _ = _forward_and_up(pose)
    assert np.all(-forward[:, 2] > np.cos(np.deg2rad(41)))  # mostly facing the camera


def test_smooth_signal_range():
    s = smooth_signal(100, np.random.default_rng(2))
    assert s.min() >= -1 and s.max() <= 1 and np.ptp(s) > 0.3


def test_backgrounds_differ_and_are_deterministic():
    a = make_background(64, np.random.default_rng(5))
    b = make_background(64, np.random.default_rng(5))
    c = make_background(64, np.random.default_rng(6))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 10
    assert a.std() > 5  # not a flat colour


def _toy_body():
    """Vertices on a vertical line labelled with SMPL joints, and a head cluster."""
    joints = np.array([15] * 40 + [9, 6, 3, 16, 17, 18, 19, 20, 0, 1, 2, 4, 5, 7, 10])
    rng = np.random.default_rng(0)
    verts = rng.normal(0, 0.05, (len(joints), 3))
    verts[:40] += [0, 1.6, 0]
    weights = np.eye(24)[joints]
    return verts, weights


def test_regions_follow_skinning_weights_and_outfit():
    verts, weights = _toy_body()
    layout = ap.body_layout(verts, weights)
    outfit = ap.random_outfit(np.random.default_rng(0))
    long_all = ap.Outfit(**{**outfit.__dict__, "long_sleeves": True, "long_trousers": True})
    short_all = ap.Outfit(**{**outfit.__dict__, "long_sleeves": False, "long_trousers": False})
    r_long = ap.vertex_regions(layout, long_all)
    r_short = ap.vertex_regions(layout, short_all)
    by_joint = dict(zip(layout.vertex_joint.tolist(), r_long.tolist()))
    assert by_joint[9] == ap.SHIRT and by_joint[16] == ap.SLEEVE and by_joint[1] == ap.TROUSERS
    assert by_joint[7] == ap.SHOES and by_joint[20] == ap.SKIN and by_joint[15] == ap.SKIN
    assert r_short[layout.vertex_joint == 18][0] == ap.SKIN and r_short[layout.vertex_joint == 4][0] == ap.SKIN
    assert r_long[layout.vertex_joint == 18][0] == ap.SLEEVE and r_long[layout.vertex_joint == 4][0] == ap.TROUSERS


def test_head_gets_hair_on_top_and_skin_at_the_front():
    verts, weights = _toy_body()
    layout = ap.body_layout(verts, weights)
    lo, hi = layout.head_min, layout.head_max
    top = np.array([[(lo[0] + hi[0]) / 2, hi[1], (lo[2] + hi[2]) / 2]])
    chin = np.array([[(lo[0] + hi[0]) / 2, lo[1] + 0.1 * (hi[1] - lo[1]), hi[2]]])
    pos = np.concatenate([top, chin])
    regions = ap.surface_regions(layout, np.array([ap.SKIN, ap.SKIN]), np.array([15, 15]), pos)
    assert regions.tolist() == [ap.HAIR, ap.SKIN]


@pytest.mark.parametrize("pattern", ap.SHIRT_PATTERNS)
def test_shirt_patterns_are_two_coloured(pattern):
    verts, weights = _toy_body()
    layout = ap.body_layout(verts, weights)
    outfit = ap.Outfit(**{**ap.random_outfit(np.random.default_rng(3)).__dict__, "shirt_pattern": pattern})
    rng = np.random.default_rng(1)
    # Points on the back of the torso (no chest print there).
    pos = np.stack([rng.uniform(-0.15, 0.15, 500), rng.uniform(1.0, 1.4, 500), np.full(500, -0.3)], 1)
    colours = ap.surface_colour(outfit, layout, np.full(500, ap.SHIRT), pos)
    a = np.all(np.isclose(colours, outfit.shirt_a), 1).mean()
    b = np.all(np.isclose(colours, outfit.shirt_b), 1).mean()
    assert a + b == pytest.approx(1.0) and 0.05 < a < 0.95

