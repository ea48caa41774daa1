"""SMPL pose trajectories for the synthetic videos: an A-pose 360° turn and smooth random actions.

Poses are (N, 72) axis-angle in SMPL's joint order; ``pose[:, :3]`` (global_orient)
holds HMR's 180° flip about x, so image +y is down and the body faces the camera
(smaller z is closer). SMPL rest frame: +y up, +x the body's left, +z its front.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

NUM_JOINTS = 24
# SMPL joint indices used here.
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, SPINE3 = 1, 2, 3, 4, 5, 6, 9
NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 12, 13, 14, 15, 16, 17, 18, 19
L_WRIST, R_WRIST = 20, 21

# HMR's global orientation of an upright person facing the camera: 180° about x.
_HMR_FLIP = Rotation.from_rotvec([np.pi, 0.0, 0.0])


def global_orient(yaw: np.ndarray) -> np.ndarray:
    """(N, 3) axis-angle: a turn by ``yaw`` (radians) about the vertical axis, then HMR's flip.

    The turn is applied in the body's own (y-up) frame, so yaw > 0 turns the person
    to their left whatever the flip.
    """
    turns = Rotation.from_rotvec(np.outer(np.asarray(yaw, dtype=np.float64), [0.0, 1.0, 0.0]))
    return (_HMR_FLIP * turns).as_rotvec()


def a_pose(rng: np.random.Generator) -> np.ndarray:
    """(69,) body pose: arms lowered 55-70° from the T-pose, feet slightly apart."""
    body = np.zeros((NUM_JOINTS, 3))
    arm = rng.uniform(0.95, 1.2)
    body[L_SHOULDER, 2] = -arm  # left arm (+x) down towards -y: negative z rotation
    body[R_SHOULDER, 2] = arm
    spread = rng.uniform(0.05, 0.12)
    body[L_HIP, 2] = spread  # feet apart
    body[R_HIP, 2] = -spread
    body[L_ELBOW, 1] = -rng.uniform(0.0, 0.15)  # relaxed elbows
    body[R_ELBOW, 1] = rng.uniform(0.0, 0.15)
    return body[1:].reshape(-1)


def turn_video(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 72): A-pose while turning a full 360° about the vertical axis, starting from the front."""
    yaw = np.linspace(0.0, 2.0 * np.pi, num_frames, endpoint=False) * rng.choice([-1.0, 1.0])
    pose = np.zeros((num_frames, 72))
    pose[:, :3] = global_orient(yaw)
    pose[:, 3:] = a_pose(rng)[None]
    return pose


# (joint, axis, low, high) in radians for the left side and the spine; right-side
# limits mirror the left (see _mirror). Ranges keep poses plausible: no backwards
# knees, elbows bending forward only, arms between hanging and raised sideways.
_LEFT_AND_CENTRE_LIMITS = [
    (L_SHOULDER, 2, -1.35, 0.35),  # lower (-) / raise (+) the arm sideways
    (L_SHOULDER, 1, -0.9, 0.3),  # swing forward (-) / backward (+)
    (L_SHOULDER, 0, -0.5, 0.5),  # twist
    (L_ELBOW, 1, -1.8, 0.0),  # bend forward only
    (L_WRIST, 2, -0.4, 0.4),
    (L_HIP, 0, -0.8, 0.3),  # thigh forward (-) / backward (+)
    (L_HIP, 2, -0.05, 0.3),  # spread sideways
    (L_KNEE, 0, 0.0, 1.2),  # knee flexion only
    (SPINE1, 0, -0.1, 0.3),  # lean forward (+)
    (SPINE2, 1, -0.3, 0.3),  # twist
    (SPINE3, 2, -0.15, 0.15),  # side bend
    (NECK, 0, -0.2, 0.3),
    (HEAD, 1, -0.5, 0.5),  # look left / right
]
_RIGHT_OF = {L_SHOULDER: R_SHOULDER, L_ELBOW: R_ELBOW, L_WRIST: R_WRIST, L_HIP: R_HIP, L_KNEE: R_KNEE}


def _mirror(joint: int, axis: int, low: float, high: float) -> tuple[int, int, float, float]:
    # Mirroring x -> -x keeps rotations about x and flips those about y and z.
    if axis == 0:
        return _RIGHT_OF[joint], axis, low, high
    return _RIGHT_OF[joint], axis, -high, -low


def joint_limits() -> list[tuple[int, int, float, float]]:
    limits = list(_LEFT_AND_CENTRE_LIMITS)
    limits += [_mirror(*lim) for lim in _LEFT_AND_CENTRE_LIMITS if lim[0] in _RIGHT_OF]
    return limits


def smooth_signal(num_frames: int, rng: np.random.Generator, components: int = 3, max_cycles: float = 1.5) -> np.ndarray:
    """(N,) a sum of low-frequency sinusoids normalised into [-1, 1]."""
    t = np.linspace(0.0, 1.0, num_frames)
    freqs = rng.uniform(0.25, max_cycles, components)
    phases = rng.uniform(0.0, 2.0 * np.pi, components)
    amps = rng.uniform(0.3, 1.0, components)
    signal = (amps[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return signal / amps.sum()


def action_video(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 72): smooth random joint-angle trajectories within ``joint_limits``; other joints keep the A-pose.

    Facing mostly the camera (yaw within ±40°), as in iPER's random-action videos.
    """
    body = np.tile(a_pose(rng).reshape(NUM_JOINTS - 1, 3), (num_frames, 1, 1))
    for joint, axis, low, high in joint_limits():
        mid, half = 0.5 * (low + high), 0.5 * (high - low)
        body[:, joint - 1, axis] = mid + half * smooth_signal(num_frames, rng)
    yaw = np.deg2rad(40.0) * smooth_signal(num_frames, rng, components=2, max_cycles=1.0)
    pose = np.zeros((num_frames, 72))
    pose[:, :3] = global_orient(yaw)
    pose[:, 3:] = body.reshape(num_frames, -1)
    return pose
