"""A generated stand-in body model in SMPL's file format (24-joint tree, 6,890 vertices) that smplx poses unchanged.

Used when no licensed SMPL file is given. The mesh is one vertex/face set of closed, overlapping capsules
(one per bone, an elliptic torso and head, feet, hands and a nose), skinned with weights that blend across
each joint, a J_regressor that reproduces the rest joints exactly, four shape modes (beta0 height, beta1
girth, beta2 shoulder breadth, beta3 leg length; betas 4-9 are zero) and a small pose corrective that
inflates the blend zone of a bending joint against linear-blend-skinning collapse. The SMPL landmark vertex
ids (smplx's table, which the face loss' head box reads: nose 332, eyes 2800/6260, ears 583/4071; beside
them 331, 2802/6262, 3485/6880; smplx's other extra joints: toes, heels, finger tips) are placed on the
matching surface points. Deterministic by seed; the seed perturbs proportions slightly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from lwgan.body.convert import write_npz_atomic
from lwgan.body.skeleton import NUM_JOINTS, PARENTS

NUM_VERTICES = 6890  # SMPL's count: arrays sized for SMPL fit the stand-in
NUM_BETAS = 10
SEGMENTS = 24  # vertices around every capsule ring (hands and nose use fewer)

# SMPL-like neutral rest joints (metres; +x is the body's left, +y up, +z forward), T-pose.
REST_JOINTS = np.array([
    [0.000, -0.220, 0.020], [0.070, -0.310, 0.020], [-0.070, -0.310, 0.020], [0.000, -0.110, 0.000],
    [0.100, -0.690, 0.010], [-0.100, -0.690, 0.010], [0.000, 0.020, 0.020], [0.090, -1.090, -0.030],
    [-0.090, -1.090, -0.030], [0.000, 0.070, 0.030], [0.115, -1.150, 0.090], [-0.115, -1.150, 0.090],
    [0.000, 0.265, -0.010], [0.070, 0.200, 0.000], [-0.070, 0.200, 0.000], [0.000, 0.370, 0.030],
    [0.170, 0.230, -0.010], [-0.170, 0.230, -0.010], [0.430, 0.215, -0.030], [-0.430, 0.215, -0.030],
    [0.690, 0.220, -0.040], [-0.690, 0.220, -0.040], [0.780, 0.215, -0.045], [-0.780, 0.215, -0.045],
])
X, Y, Z = np.eye(3)


@dataclass
class Capsule:
    """A closed tube from ``start`` to ``end`` with rounded caps; radii (across e1, across e2) along t in [0, 1]."""

    name: str
    start: np.ndarray
    end: np.ndarray
    e1_hint: np.ndarray  # direction of the first cross-section radius (made perpendicular to the axis)
    radii: list[tuple[float, float, float]]  # (t, r1, r2) control points
    weights: list[tuple[float, dict[int, float]]]  # (t, {joint: weight}) control points
    rings: int
    segments: int = SEGMENTS
    cap: float = 1.0  # cap length as a fraction of the end radius
    girth: float = 1.0  # how strongly beta1 widens it
    vertices: np.ndarray = field(default=None, repr=False)
    axis_points: np.ndarray = field(default=None, repr=False)
    faces: np.ndarray = field(default=None, repr=False)
    skin: np.ndarray = field(default=None, repr=False)


def _interp(t: np.ndarray, points: list[tuple]) -> np.ndarray:
    ts = np.array([p[0] for p in points])
    vals = np.array([p[1:] for p in points], dtype=np.float64)
    t = np.clip(t, ts[0], ts[-1])
    return np.stack([np.interp(t, ts, vals[:, k]) for k in range(vals.shape[1])], axis=-1)


def _smooth_weights(t: np.ndarray, points: list[tuple[float, dict[int, float]]]) -> np.ndarray:
    """(n, 24) weights interpolated with a smoothstep between control points (C1 across joints)."""
    ts = np.array([p[0] for p in points])
    table = np.zeros((len(points), NUM_JOINTS))
    for i, (_, spec) in enumerate(points):
        for joint, w in spec.items():
            table[i, joint] = w
    t = np.clip(t, ts[0], ts[-1])
    k = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 2)
    span = np.maximum(ts[k + 1] - ts[k], 1e-9)
    a = np.clip((t - ts[k]) / span, 0.0, 1.0)
    a = a * a * (3 - 2 * a)
    w = (1 - a)[:, None] * table[k] + a[:, None] * table[k + 1]
    return w / w.sum(1, keepdims=True)


def _build_capsule(c: Capsule) -> None:
    axis = c.end - c.start
    length = float(np.linalg.norm(axis))
    d = axis / length
    e1 = c.e1_hint - d * (c.e1_hint @ d)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    r_start, r_end = _interp(np.array([0.0, 1.0]), c.radii)
    cap0, cap1 = c.cap * r_start.mean(), c.cap * r_end.mean()
    n_cap = max(2, c.rings // 6)
    n_mid = c.rings - 2 * n_cap
    # Axial positions s (0 at start joint, length at end joint) and cap rounding factors.
    alpha = (np.arange(n_cap) + 1) / (n_cap + 1) * (np.pi / 2)  # from the pole towards the equator
    s = np.concatenate([-cap0 * np.cos(alpha), np.linspace(0.0, length, n_mid), length + cap1 * np.cos(alpha[::-1])])
    round_ = np.concatenate([np.sin(alpha), np.ones(n_mid), np.sin(alpha[::-1])])
    t = s / length
    r = _interp(t, c.radii) * round_[:, None]  # (rings, 2)
    theta = np.arange(c.segments) / c.segments * 2 * np.pi
    centre = c.start + s[:, None] * d  # (rings, 3)
    ring = centre[:, None, :] + r[:, None, :1] * np.cos(theta)[None, :, None] * e1 + r[:, None, 1:] * np.sin(theta)[None, :, None] * e2
    poles = np.stack([c.start - cap0 * d, c.end + cap1 * d])
    c.vertices = np.concatenate([ring.reshape(-1, 3), poles])
    c.axis_points = np.concatenate([np.repeat(centre, c.segments, axis=0), poles])
    t_all = np.concatenate([np.repeat(t, c.segments), [-cap0 / length, 1 + cap1 / length]])
    c.skin = _smooth_weights(t_all, c.weights)
    n_seg, rings = c.segments, c.rings
    idx = np.arange(rings * n_seg).reshape(rings, n_seg)
    nxt = np.roll(idx, -1, axis=1)
    quads_a = np.stack([idx[:-1], idx[1:], nxt[1:]], -1).reshape(-1, 3)
    quads_b = np.stack([idx[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)
    p0, p1 = rings * n_seg, rings * n_seg + 1
    fan0 = np.stack([np.full(n_seg, p0), idx[0], nxt[0]], -1)[:, [0, 2, 1]]
    fan1 = np.stack([np.full(n_seg, p1), idx[-1], nxt[-1]], -1)
    c.faces = np.concatenate([quads_a, quads_b, fan0, fan1])


def _proportions(seed: int) -> np.ndarray:
    """Rest joints with left/right-symmetric, seed-dependent bone-length changes of a few percent."""
    rng = np.random.default_rng(seed)
    scale = {"torso": 1 + 0.02 * rng.standard_normal(), "arm": 1 + 0.03 * rng.standard_normal(), "leg": 1 + 0.03 * rng.standard_normal()}
    joints = REST_JOINTS.copy()
    groups = {3: "torso", 6: "torso", 9: "torso", 12: "torso", 13: "torso", 14: "torso", 15: "torso",
              16: "arm", 17: "arm", 18: "arm", 19: "arm", 20: "arm", 21: "arm", 22: "arm", 23: "arm",
              1: "leg", 2: "leg", 4: "leg", 5: "leg", 7: "leg", 8: "leg", 10: "leg", 11: "leg"}
    for j in range(1, NUM_JOINTS):  # parents come first: rebuild each joint from its scaled bone
        bone = REST_JOINTS[j] - REST_JOINTS[PARENTS[j]]
        joints[j] = joints[PARENTS[j]] + bone * scale[groups[j]]
    return joints


def _capsules(J: np.ndarray, head_rings: int, nose: tuple[int, int]) -> list[Capsule]:
    caps: list[Capsule] = []
    top_neck = J[12] + np.array([0.0, 0.0, 0.0])
    caps.append(Capsule(
        "torso", np.array([0.0, J[1, 1] - 0.04, 0.015]), np.array([0.0, top_neck[1] - 0.03, 0.0]), X,
        [(0.0, 0.150, 0.100), (0.2, 0.160, 0.105), (0.45, 0.135, 0.095), (0.75, 0.160, 0.110), (1.0, 0.150, 0.080)],
        [(0.0, {0: 1}), (_t(J[0], J, 1), {0: 1}), (_t(J[3], J, 1), {3: 1}), (_t(J[6], J, 1), {6: 1}),
         (_t(J[9], J, 1), {9: 1}), (1.0, {9: 0.7, 12: 0.3})],
        rings=36, segments=36, cap=0.55, girth=1.0))
    caps.append(Capsule("neck", J[12] - np.array([0, 0.07, 0.01]), J[15] - np.array([0, 0.02, 0.02]), X,
                        [(0.0, 0.060, 0.055), (1.0, 0.050, 0.048)],
                        [(0.0, {9: 0.5, 12: 0.5}), (0.35, {12: 1}), (1.0, {12: 0.5, 15: 0.5})], rings=10, cap=0.5, girth=0.5))
    head_c = J[15] + np.array([0.0, 0.045, 0.0])
    caps.append(Capsule("head", head_c - np.array([0, 0.06, 0]), head_c + np.array([0, 0.06, 0]), X,
                        [(0.0, 0.070, 0.085), (0.5, 0.078, 0.098), (1.0, 0.074, 0.092)],
                        [(-0.5, {12: 0.5, 15: 0.5}), (0.0, {15: 1}), (1.0, {15: 1})], rings=head_rings, cap=0.85, girth=0.1))
    nose_root = head_c + np.array([0.0, -0.005, 0.085])
    caps.append(Capsule("nose", nose_root, nose_root + np.array([0.0, -0.01, 0.025]), Y,
                        [(0.0, 0.013, 0.010), (1.0, 0.008, 0.007)], [(0.0, {15: 1}), (1.0, {15: 1})],
                        rings=nose[0], segments=nose[1], cap=0.9, girth=0.0))
    for side, (collar, shoulder, elbow, wrist, hand, hip, knee, ankle, foot) in (
        ("left", (13, 16, 18, 20, 22, 1, 4, 7, 10)), ("right", (14, 17, 19, 21, 23, 2, 5, 8, 11)),
    ):
        sgn = np.sign(J[shoulder, 0])
        caps.append(Capsule(f"{side}_shoulder", J[9] + np.array([sgn * 0.02, 0.15, -0.015]), J[shoulder], Y,
                            [(0.0, 0.060, 0.060), (1.0, 0.058, 0.055)],
                            [(0.0, {9: 1}), (0.35, {collar: 1}), (0.8, {collar: 1}), (1.0, {collar: 0.5, shoulder: 0.5})],
                            rings=10, cap=0.6, girth=0.7))
        caps.append(Capsule(f"{side}_upper_arm", J[shoulder], J[elbow], Y,
                            [(0.0, 0.055, 0.052), (1.0, 0.042, 0.040)],
                            [(0.0, {collar: 0.5, shoulder: 0.5}), (0.2, {shoulder: 1}), (0.8, {shoulder: 1}), (1.0, {shoulder: 0.5, elbow: 0.5})],
                            rings=14, girth=0.6))
        caps.append(Capsule(f"{side}_forearm", J[elbow], J[wrist], Y,
                            [(0.0, 0.040, 0.038), (1.0, 0.030, 0.026)],
                            [(0.0, {shoulder: 0.5, elbow: 0.5}), (0.2, {elbow: 1}), (0.8, {elbow: 1}), (1.0, {elbow: 0.5, wrist: 0.5})],
                            rings=14, girth=0.6))
        tip = J[hand] + (J[hand] - J[wrist]) * 1.0
        t_hand = float(np.linalg.norm(J[hand] - J[wrist]) / np.linalg.norm(tip - J[wrist]))
        caps.append(Capsule(f"{side}_hand", J[wrist], tip, Z,
                            [(0.0, 0.035, 0.018), (0.5, 0.045, 0.016), (1.0, 0.038, 0.010)],
                            [(0.0, {elbow: 0.5, wrist: 0.5}), (0.2, {wrist: 1}), (t_hand, {wrist: 0.5, hand: 0.5}), (1.0, {hand: 1})],
                            rings=10, segments=16, cap=0.5, girth=0.2))
        caps.append(Capsule(f"{side}_thigh", J[hip] + np.array([0, 0.04, 0]), J[knee], X,
                            [(0.0, 0.085, 0.085), (0.3, 0.080, 0.078), (1.0, 0.056, 0.055)],
                            [(0.0, {0: 0.5, hip: 0.5}), (0.25, {hip: 1}), (0.85, {hip: 1}), (1.0, {hip: 0.5, knee: 0.5})],
                            rings=18, girth=0.8))
        caps.append(Capsule(f"{side}_shin", J[knee], J[ankle], X,
                            [(0.0, 0.054, 0.054), (0.3, 0.052, 0.056), (1.0, 0.036, 0.036)],
                            [(0.0, {hip: 0.5, knee: 0.5}), (0.2, {knee: 1}), (0.85, {knee: 1}), (1.0, {knee: 0.5, ankle: 0.5})],
                            rings=18, girth=0.6))
        heel = np.array([J[ankle, 0], J[foot, 1] - 0.005, J[ankle, 2] - 0.06])
        toe = np.array([J[foot, 0], J[foot, 1] - 0.015, J[foot, 2] + 0.075])
        t_ball = float((J[foot, 2] - heel[2]) / (toe[2] - heel[2]))
        caps.append(Capsule(f"{side}_foot", heel, toe, X,
                            [(0.0, 0.040, 0.045), (0.6, 0.048, 0.035), (1.0, 0.044, 0.022)],
                            [(0.0, {ankle: 1}), (t_ball - 0.1, {ankle: 1}), (t_ball + 0.05, {foot: 1}), (1.0, {foot: 1})],
                            rings=12, cap=0.5, girth=0.3))
    return caps


def _t(point: np.ndarray, J: np.ndarray, axis: int) -> float:
    """Position of ``point`` along the torso capsule as a fraction (the torso runs along y)."""
    bottom, top = J[1, 1] - 0.04, J[12, 1] - 0.03
    return float((point[axis] - bottom) / (top - bottom))


def _vertex_budget(head_rings: int, nose: tuple[int, int], J: np.ndarray) -> int:
    return sum(c.rings * c.segments + 2 for c in _capsules(J, head_rings, nose))


def _choose_resolution(J: np.ndarray) -> tuple[int, tuple[int, int]]:
    """Head ring count and nose (rings, segments) that bring the mesh to exactly NUM_VERTICES vertices."""
    for head_rings in range(40, 10, -1):
        rest = NUM_VERTICES - _vertex_budget(head_rings, (3, 6), J) + (3 * 6 + 2)
        for segments in range(6, 17):
            if (rest - 2) % segments == 0 and 3 <= (rest - 2) // segments <= 14:
                return head_rings, ((rest - 2) // segments, segments)
    raise AssertionError("no head/nose resolution gives the SMPL vertex count")


def _landmarks(caps: dict[str, Capsule], J: np.ndarray) -> dict[int, tuple[str, np.ndarray]]:
    """SMPL vertex id -> (capsule, surface target): face landmarks and smplx's extra-joint vertices."""
    head, nose = caps["head"], caps["nose"]
    hc = (head.start + head.end) / 2
    front = head.vertices[:, 2].max()
    marks = {331: ("nose", nose.end + np.array([0, 0, 0.02])), 332: ("nose", nose.end + np.array([0, -0.01, 0.02]))}
    for ids, sgn in (((2802, 2800), 1.0), ((6262, 6260), -1.0)):  # eyes
        for k, vid in enumerate(ids):
            marks[vid] = ("head", np.array([sgn * (0.032 + 0.004 * k), hc[1] + 0.02, front + 0.02]))
    for ids, sgn in (((3485, 583), 1.0), ((6880, 4071), -1.0)):  # ears
        for k, vid in enumerate(ids):
            marks[vid] = ("head", np.array([sgn * 0.2, hc[1] + 0.01 - 0.01 * k, hc[2] - 0.005]))
    for side, sgn, toes, heel in (("left", 1.0, (3216, 3226), 3387), ("right", -1.0, (6617, 6624), 6787)):
        foot = caps[f"{side}_foot"]
        marks[toes[0]] = (foot.name, foot.end + np.array([-sgn * 0.03, -0.02, 0.05]))
        marks[toes[1]] = (foot.name, foot.end + np.array([sgn * 0.05, -0.02, 0.03]))
        marks[heel] = (foot.name, foot.start + np.array([0, -0.03, -0.05]))
    fingers = {"left": (2746, 2319, 2445, 2556, 2673), "right": (6191, 5782, 5905, 6016, 6133)}
    for side, ids in fingers.items():
        hand = caps[f"{side}_hand"]
        d = (hand.end - hand.start) / np.linalg.norm(hand.end - hand.start)
        thumb, *rest = ids
        marks[thumb] = (hand.name, hand.start + 0.4 * (hand.end - hand.start) + np.array([0, 0, 0.08]))
        for k, vid in enumerate(rest):  # index .. pinky, front to back across the hand's width (z)
            marks[vid] = (hand.name, hand.end + 0.03 * d + np.array([0, 0, 0.045 - 0.03 * k]))
    return marks


def _joint_regressor(vertices: np.ndarray, joints: np.ndarray, neighbours: int = 48) -> np.ndarray:
    """(24, V) non-negative rows summing to 1 that give each rest joint from its nearest vertices (NNLS)."""
    reg = np.zeros((NUM_JOINTS, len(vertices)))
    for j, joint in enumerate(joints):
        for k in (neighbours, 2 * neighbours, 4 * neighbours, 8 * neighbours):
            near = np.argsort(np.linalg.norm(vertices - joint, axis=1))[:k]
            stiff = 100.0  # enforces the sum-to-one row much harder than the position rows
            a = np.vstack([vertices[near].T, stiff * np.ones(k)])
            w, _ = nnls(a, np.concatenate([joint, [stiff]]))
            if w.sum() > 0 and np.abs(vertices[near].T @ (w / w.sum()) - joint).max() < 1e-6:
                break
        reg[j, near] = w / w.sum()
    return reg


def build_body_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """All arrays of the generated model in SMPL's keys (plus ``kind``), float64 like SMPL files."""
    J = _proportions(seed)
    head_rings, nose = _choose_resolution(J)
    caps = _capsules(J, head_rings, nose)
    for c in caps:
        _build_capsule(c)
    verts, faces, skin, axis_pts, girth, part = [], [], [], [], [], []
    offset = 0
    for i, c in enumerate(caps):
        verts.append(c.vertices)
        faces.append(c.faces + offset)
        skin.append(c.skin)
        axis_pts.append(c.axis_points)
        girth.append(np.full(len(c.vertices), c.girth))
        part.append(np.full(len(c.vertices), i))
        offset += len(c.vertices)
    verts, faces, skin = np.concatenate(verts), np.concatenate(faces), np.concatenate(skin)
    axis_pts, girth, part = np.concatenate(axis_pts), np.concatenate(girth), np.concatenate(part)
    assert len(verts) == NUM_VERTICES, len(verts)

    # Put the SMPL landmark ids on the matching surface points (a permutation of the vertices).
    by_name = {c.name: c for c in caps}
    index_of = {c.name: i for i, c in enumerate(caps)}
    order = np.arange(NUM_VERTICES)  # order[new_id] = old_id
    position = np.arange(NUM_VERTICES)  # position[old_id] = new_id
    used: set[int] = set()
    for vid, (name, target) in sorted(_landmarks(by_name, J).items()):
        candidates = np.nonzero(part == index_of[name])[0]
        candidates = candidates[~np.isin(candidates, list(used))]
        old = int(candidates[np.argmin(np.linalg.norm(verts[candidates] - target, axis=1))])
        used.add(old)
        displaced = order[vid]
        order[vid], order[position[old]] = old, displaced
        position[displaced], position[old] = position[old], vid
    verts, skin, axis_pts, girth, part = verts[order], skin[order], axis_pts[order], girth[order], part[order]
    faces = position[faces]

    radial = verts - axis_pts
    shapedirs = np.zeros((NUM_VERTICES, 3, NUM_BETAS))
    shapedirs[:, :, 0] = verts * np.array([0.015, 0.035, 0.015])  # beta0: taller (and slightly larger) per unit
    shapedirs[:, :, 1] = 0.12 * girth[:, None] * radial  # beta1: girth, outwards from each bone axis
    upper = skin[:, [13, 14, 16, 17, 18, 19, 20, 21, 22, 23]].sum(1)
    shapedirs[:, 0, 2] = 0.05 * verts[:, 0] * upper  # beta2: shoulder breadth
    legs = skin[:, [1, 2, 4, 5, 7, 8, 10, 11]].sum(1)
    shapedirs[:, 1, 3] = 0.04 * (verts[:, 1] - J[0, 1]) * legs  # beta3: leg length

    # Pose corrective: a bending joint j (trace(R_j) - 3 = 2 cos(angle) - 2 <= 0) inflates its blend zone.
    posedirs = np.zeros((NUM_VERTICES, 3, 9 * (NUM_JOINTS - 1)))
    for j in range(1, NUM_JOINTS):
        blend = 4.0 * skin[:, j] * skin[:, PARENTS[j]]  # 1 where a vertex is half j, half its parent
        for diag in (0, 4, 8):
            posedirs[:, :, (j - 1) * 9 + diag] = -0.05 * blend[:, None] * radial

    regressor = _joint_regressor(verts, J)
    kintree = np.array([[2**32 - 1 if p < 0 else p for p in PARENTS], list(range(NUM_JOINTS))], dtype=np.int64)
    return {
        "v_template": verts, "f": faces.astype(np.int64), "weights": skin, "J_regressor": regressor,
        "kintree_table": kintree, "shapedirs": shapedirs, "posedirs": posedirs, "J": regressor @ verts,
        "kind": np.array("generated"), "seed": np.array(seed),
    }


def generate_body_model(out: str | os.PathLike, seed: int = 0) -> Path:
    """Write the generated body model (SMPL keys, .npz) to ``out`` atomically and return its path."""
    return write_npz_atomic(build_body_arrays(seed), Path(out).expanduser())
