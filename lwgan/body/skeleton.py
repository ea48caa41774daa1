"""SMPL's 24-joint kinematic tree: joint names, parents and the landmark vertex ids other modules use."""

from __future__ import annotations

from smplx.vertex_ids import vertex_ids as _SMPLX_VERTEX_IDS

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
NUM_JOINTS = 24
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NECK, HEAD = 12, 15

# SMPL vertex ids of the face landmarks (the face loss' head box), read from smplx's own table: the
# "smplh" entry is the one smplx's SMPL layer uses for its extra joints (nose, eyes, ears).
_SMPLX_FACE_KEYS = {"nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear"}
FACE_VERTEX_IDS: dict[str, int] = {name: int(_SMPLX_VERTEX_IDS["smplh"][key]) for name, key in _SMPLX_FACE_KEYS.items()}


def children(joint: int) -> list[int]:
    return [j for j, p in enumerate(PARENTS) if p == joint]
