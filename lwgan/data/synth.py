"""Writes a synthetic mini-iPER: rendered subjects in procedural clothing, in exactly the iPER layout.

Per subject (``001``, ``002``, ...; clothes ``1``): an A-pose 360° turn (action ``1``) and
a smooth random action (action ``2``), each over its own background, with HMR-convention
weak-perspective cameras and ``pose_shape.pkl`` files the iPER reader loads unchanged.
Deterministic by seed: the same arguments give byte-identical pkls and identical frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from lwgan.body import load_body_model
from lwgan.data.appearance import body_layout, random_outfit, vertex_regions
from lwgan.data.backgrounds import make_background
from lwgan.data.layout import (
    SmplSequence,
    frame_name,
    video_images_dir,
    video_pkl_path,
    write_pose_shape,
    write_video_list,
)
from lwgan.data.motion import action_video, turn_video
from lwgan.data.synth_render import SubjectLook, render_frames
from lwgan.errors import DataError

GENERATOR_VERSION = 1  # bump when the output of the same arguments changes
JPEG_QUALITY = 95
ACTIONS = {"1": "A-pose 360-degree turn", "2": "random action"}
_BATCH = 8  # frames posed and rendered at once


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *path])


def subject_betas(rng: np.random.Generator) -> np.ndarray:
    """(10,) shape: varied along the first components, mild elsewhere."""
    betas = rng.normal(0.0, 0.35, 10)
    betas[:2] = rng.uniform(-1.5, 1.5, 2)
    return betas


def skinning_weights(body: torch.nn.Module) -> np.ndarray:
    """(V, 24) linear-blend-skinning weights of a body model (smplx keeps them as ``lbs_weights``)."""
    for module in body.modules():
        weights = getattr(module, "lbs_weights", None)
        if isinstance(weights, torch.Tensor) and weights.ndim == 2 and weights.shape[1] == 24:
            return weights.detach().cpu().numpy().astype(np.float64)
    raise DataError(f"{getattr(body, 'source', 'body model')}: no (V, 24) skinning weights ('lbs_weights') found")


@torch.no_grad()
def _pose_vertices(body: torch.nn.Module, pose: np.ndarray, betas: np.ndarray) -> torch.Tensor:
    """(N, V, 3) vertices in batches."""
    out = []
    for start in range(0, len(pose), _BATCH):
        p = torch.as_tensor(pose[start : start + _BATCH], dtype=torch.float32)
        s = torch.as_tensor(np.repeat(betas[None], len(p), 0), dtype=torch.float32)
        out.append(body(p, s).vertices.float())
    return torch.cat(out)


def fit_camera(vertices: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """(3,) HMR weak-perspective ``[s, tx, ty]`` that keeps every frame's body in view.

    The body's height over the whole video fills 78-88% of the frame (iPER's framing), centred
    with a small random offset; the camera is fixed for the video as iPER's is.
    """
    xy = vertices[..., :2].reshape(-1, 2).numpy().astype(np.float64)
    lo, hi = xy.min(0), xy.max(0)
    extent = hi - lo
    fill = rng.uniform(0.78, 0.88)
    s = 2.0 * fill / extent[1]
    s = min(s, 2.0 * 0.94 / max(extent[0], 1e-6))  # wide poses must fit across as well
    margin = (2.0 / s - extent) / 2.0  # free room either side, in body units
    offset = rng.uniform(-0.5, 0.5, 2) * margin * np.array([0.6, 0.3])
    t = -(lo + hi) / 2.0 + offset
    return np.array([s, t[0], t[1]])


def _write_video(root: Path, video: str, frames: np.ndarray, seq: SmplSequence) -> None:
    img_dir = video_images_dir(root, video)
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        path = img_dir / frame_name(i, len(frames))
        ok = cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise DataError(f"{path}: cannot write frame")
    write_pose_shape(video_pkl_path(root, video), seq)


def split_videos(subjects: int) -> tuple[list[str], list[str]]:
    """Train / val video names: the last subject's videos go to val (with one subject, its action video)."""
    videos = [[f"{s:03d}/1/{a}" for a in ACTIONS] for s in range(1, subjects + 1)]
    if subjects == 1:
        return [videos[0][0]], [videos[0][1]]
    return [v for vs in videos[:-1] for v in vs], list(videos[-1])


def synthesize_iper(
    out: str | Path,
    subjects: int = 4,
    frames: int = 24,
    size: int = 128,
    seed: int = 0,
    body_model_path: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write the dataset to ``out`` (created; must not hold a dataset already) and return its path."""
    if subjects < 1 or frames < 2 or size < 16:
        raise ValueError(f"need subjects >= 1, frames >= 2, size >= 16 (got {subjects}, {frames}, {size})")
    root = Path(out).expanduser().resolve()
    if (root / "train.txt").exists() or (root / "images").exists():
        raise DataError(f"{root}: already holds a dataset; choose an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    # Many small tensor ops: intra-op threads cost more than they give (default sizes, 2 busy
    # cores: 3.8 s with 1 thread, 23 s with 2), and one thread keeps results independent of
    # the machine's thread count. Restored on return.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _synthesize(root, subjects, frames, size, seed, body_model_path, progress)
    finally:
        torch.set_num_threads(threads)
    return root


def _synthesize(root: Path, subjects: int, frames: int, size: int, seed: int, body_model_path, progress) -> None:
    body = load_body_model(body_model_path)
    faces = body.faces.detach().cpu().numpy().astype(np.int64)
    weights = skinning_weights(body)
    total = 2 * subjects
    done = 0
    for subject in range(1, subjects + 1):
        betas = subject_betas(_rng(seed, subject, 0))
        rest = _pose_vertices(body, np.zeros((1, 72)), betas)[0].numpy().astype(np.float64)
        layout = body_layout(rest, weights)
        outfit = random_outfit(_rng(seed, subject, 1))
        look = SubjectLook(faces, rest, vertex_regions(layout, outfit), layout, outfit)
        for action in ACTIONS:
            video = f"{subject:03d}/1/{action}"
            motion_rng = _rng(seed, subject, 2, int(action))
            pose = turn_video(frames, motion_rng) if action == "1" else action_video(frames, motion_rng)
            verts = _pose_vertices(body, pose, betas)
            cam = fit_camera(verts, _rng(seed, subject, 3, int(action)))
            background = make_background(size, _rng(seed, subject, 4, int(action)))
            cams = np.repeat(cam[None], frames, 0)
            images = np.concatenate(
                [
                    render_frames(look, verts[i : i + _BATCH], torch.as_tensor(cams[i : i + _BATCH], dtype=torch.float32), background)
                    for i in range(0, frames, _BATCH)
                ]
            )
            seq = SmplSequence(cams=cams, pose=pose, shape=np.repeat(betas[None], frames, 0))
            _write_video(root, video, images, seq)
            done += 1
            if progress is not None:
                progress(done, total, video)
    train, val = split_videos(subjects)
    write_video_list(root / "train.txt", train)
    write_video_list(root / "val.txt", val)
    _write_description(root, subjects, frames, size, seed, body, train, val)


def _write_description(root: Path, subjects, frames, size, seed, body, train, val) -> None:
    info = {
        "synthetic": True,
        "generator": "lwgan.data.synth.synthesize_iper",
        "generator_version": GENERATOR_VERSION,
        "subjects": subjects,
        "frames_per_video": frames,
        "image_size": size,
        "seed": seed,
        "body_model": {"kind": getattr(body, "kind", "unknown"), "source": str(getattr(body, "source", ""))},
        "videos": {"train": train, "val": val},
        "actions": ACTIONS,
        "jpeg_quality": JPEG_QUALITY,
    }
    (root / "synth.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (root / "README.txt").write_text(
        f"""SYNTHETIC mini-iPER -- not the iPER dataset.

Written by lwgan-study (lwgan.data.synth, generator version {GENERATOR_VERSION}):
{subjects} subjects x 2 videos x {frames} frames, {size}x{size} px, seed {seed},
body model: {info['body_model']['kind']} ({info['body_model']['source']}).

Layout and conventions are iPER's (svip-lab/impersonator doc/train.md):
  images/<subject>/<clothes>/<action>/000.jpg ...   JPEG quality {JPEG_QUALITY}, RGB scenes
  smpls/<subject>/<clothes>/<action>/pose_shape.pkl {{'cams': (N,3), 'pose': (N,72), 'shape': (N,10)}} float32
  train.txt / val.txt                                 video names, the last subject in val
Action 1 is an A-pose 360-degree turn about the vertical axis, action 2 smooth random joint
motion within joint limits. Cameras are HMR weak-perspective [s, tx, ty] (ndc = s * (X[:2] + t),
+y down); pose[:3] holds HMR's 180-degree flip about x. Each subject wears procedural clothing
(patterned shirt with a chest print on the front, trousers or shorts, shoes, skin, hair) assigned
per body part from the skinning weights, shaded with a Lambert term, over a per-video background.
Unlike the real pkls, these hold no 'vertices' key (the reader does not use it).
""",
        encoding="utf-8",
    )
