"""A surface parameterisation (UV atlas) derived from any SMPL-format model's rest pose, and the per-face
atlas values of the reference's condition map.

Deviation from the reference: impersonator's cond map reads SMPL's own UV map, which the SMPL model file
does not ship. Here every vertex belongs to the body part (joint) with the largest skinning weight; the
24 parts tile a 6 x 4 atlas; inside its cell a point gets u = angle around the part's bone axis and
v = normalised position along that axis. Deterministic, smooth within a part, seams between parts and
at the angle wrap (as any UV map has).

As the reference (utils/mesh.py ``create_mapping('uv_seg')`` with ``compute_barycenter``), each face
gets ONE constant atlas value: the point halfway between its first two corners (what the reference's
``v2 + 0.5 (v0 - v2) + 0.5 (v1 - v2)`` works out to), in the chart of the face's own part. So a face
never mixes two charts and the cond map has clean part seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lwgan.body.skeleton import NUM_JOINTS, PARENTS, children

ATLAS_COLUMNS, ATLAS_ROWS = 6, 4
CELL_MARGIN = 0.06  # fraction of a cell kept empty on each side, so parts never touch in the atlas


def _bone_axis(joint: int, joints: np.ndarray) -> np.ndarray:
    kids = [c for c in children(joint) if c < len(joints)]
    if kids:
        axis = joints[kids].mean(0) - joints[joint]
    else:  # a leaf (head, hands, feet): continue the parent bone
        axis = joints[joint] - joints[PARENTS[joint]]
    norm = np.linalg.norm(axis)
    return axis / norm if norm > 1e-8 else np.array([0.0, 1.0, 0.0])


def _reference_direction(axis: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to ``axis``: the body's forward (+z), or +y when the axis points forward."""
    for ref in (np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])):
        perp = ref - axis * (ref @ axis)
        if np.linalg.norm(perp) > 0.3:
            return perp / np.linalg.norm(perp)
    raise AssertionError("two orthogonal references cannot both be parallel to one axis")


@dataclass(frozen=True)
class _Chart:
    """One part's cylindrical chart: origin (its joint), bone axis, front and side directions, and the
    span of its vertices along the axis (v runs over that span)."""

    joint: int
    origin: np.ndarray
    axis: np.ndarray
    ref: np.ndarray
    side: np.ndarray
    lo: float
    span: float

    def uv(self, points: np.ndarray) -> np.ndarray:
        rel = np.asarray(points, dtype=np.float64) - self.origin
        angle = np.arctan2(rel @ self.side, rel @ self.ref)  # 0 at the front of the part
        u_local = (angle + np.pi) / (2.0 * np.pi)
        v_local = np.clip((rel @ self.axis - self.lo) / self.span, 0.0, 1.0) if self.span > 1e-9 else np.full(len(rel), 0.5)
        inner = 1.0 - 2.0 * CELL_MARGIN
        col, row = self.joint % ATLAS_COLUMNS, self.joint // ATLAS_COLUMNS
        return np.stack([(col + CELL_MARGIN + inner * u_local) / ATLAS_COLUMNS, (row + CELL_MARGIN + inner * v_local) / ATLAS_ROWS], axis=1)


def _charts(verts: np.ndarray, part: np.ndarray, joints: np.ndarray) -> dict[int, _Chart]:
    charts = {}
    for joint in range(NUM_JOINTS):
        members = np.nonzero(part == joint)[0]
        if len(members) == 0:
            continue
        axis = _bone_axis(joint, joints)
        ref = _reference_direction(axis)
        along = (verts[members] - joints[joint]) @ axis
        charts[joint] = _Chart(joint, joints[joint], axis, ref, np.cross(axis, ref), float(along.min()), float(along.max() - along.min()))
    return charts


def _map(points: np.ndarray, part: np.ndarray, charts: dict[int, _Chart]) -> np.ndarray:
    uv = np.zeros((len(points), 2), dtype=np.float64)
    for joint, chart in charts.items():
        members = np.nonzero(part == joint)[0]
        if len(members):
            uv[members] = chart.uv(points[members])
    return np.clip(uv, 0.0, 1.0).astype(np.float32)


def part_uv(rest_vertices: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(V, 2) float32 UVs in [0, 1] from the rest-pose vertices (V, 3), skinning weights (V, 24) and joints (24, 3)."""
    verts = np.asarray(rest_vertices, dtype=np.float64)
    part = np.asarray(weights).argmax(1)
    return _map(verts, part, _charts(verts, part, np.asarray(rest_joints, dtype=np.float64)))


def part_face_uv(rest_vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(F, 2) float32: each face's one atlas value, the midpoint of its corners 0 and 1 mapped in the chart
    of the face's part (the part with the largest skinning weight summed over its corners), so every
    value lies in that part's atlas cell."""
    verts = np.asarray(rest_vertices, dtype=np.float64)
    faces = np.asarray(faces)
    charts = _charts(verts, np.asarray(weights).argmax(1), np.asarray(rest_joints, dtype=np.float64))
    midpoints = 0.5 * (verts[faces[:, 0]] + verts[faces[:, 1]])
    summed = np.asarray(weights, dtype=np.float64)[faces].sum(1)
    summed[:, [j for j in range(summed.shape[1]) if j not in charts]] = -1.0  # only parts that own vertices
    return _map(midpoints, summed.argmax(1), charts)


def face_uv_from_vertex_uv(vertex_uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 2) per-face values from given per-vertex UVs, by the reference's rule: corners 0 and 1 averaged."""
    uv = np.asarray(vertex_uv, dtype=np.float64)
    faces = np.asarray(faces)
    return (0.5 * (uv[faces[:, 0]] + uv[faces[:, 1]])).astype(np.float32)
