"""SMPL's 24-joint kinematic tree: joint names, parents and the landmark vertex ids other modules use."""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
NUM_JOINTS = 24
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NECK, HEAD = 12, 15

# SMPL vertex ids of face landmarks (the face loss' head box; LWGAN_REFERENCE "Details").
FACE_VERTEX_IDS: dict[str, int] = {"nose": 331, "left_eye": 2802, "right_eye": 6262, "left_ear": 3485, "right_ear": 6880}


def children(joint: int) -> list[int]:
    return [j for j, p in enumerate(PARENTS) if p == joint]
