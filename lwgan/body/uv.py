"""A per-vertex surface parameterisation (UV atlas) derived from any SMPL-format model's rest pose.

Deviation from the reference: impersonator's cond map reads SMPL's own UV map, which the SMPL model file
does not ship. Here each vertex belongs to the body part (joint) with the largest skinning weight; the
24 parts tile a 6 x 4 atlas; inside its cell a vertex gets u = angle around the part's bone axis and
v = normalised position along that axis. Deterministic, smooth within a part, seams between parts and
at the angle wrap (as any UV map has).
"""

from __future__ import annotations

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


def part_uv(rest_vertices: np.ndarray, weights: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(V, 2) float32 UVs in [0, 1] from the rest-pose vertices (V, 3), skinning weights (V, 24) and joints (24, 3)."""
    verts = np.asarray(rest_vertices, dtype=np.float64)
    joints = np.asarray(rest_joints, dtype=np.float64)
    part = np.asarray(weights).argmax(1)
    uv = np.zeros((len(verts), 2), dtype=np.float64)
    inner = 1.0 - 2.0 * CELL_MARGIN
    for joint in range(NUM_JOINTS):
        members = np.nonzero(part == joint)[0]
        if len(members) == 0:
            continue
        axis = _bone_axis(joint, joints)
        ref = _reference_direction(axis)
        side = np.cross(axis, ref)
        rel = verts[members] - joints[joint]
        along = rel @ axis
        angle = np.arctan2(rel @ side, rel @ ref)  # 0 at the front of the part
        u_local = (angle + np.pi) / (2.0 * np.pi)
        span = along.max() - along.min()
        v_local = (along - along.min()) / span if span > 1e-9 else np.full_like(along, 0.5)
        col, row = joint % ATLAS_COLUMNS, joint // ATLAS_COLUMNS
        uv[members, 0] = (col + CELL_MARGIN + inner * u_local) / ATLAS_COLUMNS
        uv[members, 1] = (row + CELL_MARGIN + inner * v_local) / ATLAS_ROWS
    return np.clip(uv, 0.0, 1.0).astype(np.float32)
