"""The body model: smplx's SMPL layer over a model file (.npz / .pkl / the generated stand-in), with faces and UVs."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch

from lwgan.body.convert import read_smpl_arrays
from lwgan.body.skeleton import FACE_VERTEX_IDS, HEAD, NUM_JOINTS
from lwgan.body.uv import face_uv_from_vertex_uv, part_face_uv, part_uv
from lwgan.errors import DataError

NUM_BETAS = 10
MIN_VERTICES = 6890  # smplx appends extra joints from SMPL vertex ids up to 6787
# redirect_stdout swaps the process-wide sys.stdout: two threads loading at once would restore each
# other's StringIO and leave stdout captured, so the swap is serialised.
_STDOUT_SWAP = threading.Lock()


@dataclass(frozen=True)
class BodyOutput:
    vertices: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 24, 3)


class BodyModel(torch.nn.Module):
    """Neutral SMPL with 10 betas, float32: ``forward(pose (B, 72), shape (B, 10)) -> BodyOutput``.

    One smplx layer serves every batch size: it is built without its own pose/shape parameters and every
    input is passed at batch B.
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: str, kind: str):
        super().__init__()
        num_vertices = int(arrays["v_template"].shape[0])
        if num_vertices < MIN_VERTICES:
            raise DataError(f"{source}: {num_vertices} vertices; an SMPL-format model needs at least {MIN_VERTICES}")
        if arrays["weights"].shape != (num_vertices, NUM_JOINTS):
            raise DataError(f"{source}: 'weights' has shape {arrays['weights'].shape}, expected ({num_vertices}, {NUM_JOINTS})")
        struct = smplx.utils.Struct(**arrays)
        with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 betas at every load
            self.smpl = smplx.SMPL(
                model_path=source, data_struct=struct, num_betas=NUM_BETAS, batch_size=1,
                create_betas=False, create_global_orient=False, create_body_pose=False, create_transl=False,
                dtype=torch.float32,
            )
        self.kind = kind
        self.source = source
        self.num_vertices = num_vertices
        self.register_buffer("faces", torch.as_tensor(np.asarray(arrays["f"], dtype=np.int64)), persistent=False)
        if "vertex_uv" in arrays:
            uv = np.asarray(arrays["vertex_uv"], dtype=np.float32)
            if uv.shape != (num_vertices, 2):
                raise DataError(f"{source}: 'vertex_uv' has shape {uv.shape}, expected ({num_vertices}, 2)")
            face_uv = face_uv_from_vertex_uv(np.clip(uv, 0.0, 1.0), arrays["f"])
        else:
            rest_joints = np.asarray(arrays["J_regressor"], dtype=np.float64) @ np.asarray(arrays["v_template"], dtype=np.float64)
            uv = part_uv(arrays["v_template"], arrays["weights"], rest_joints)
            face_uv = part_face_uv(arrays["v_template"], arrays["f"], arrays["weights"], rest_joints)
        self.register_buffer("vertex_uv", torch.as_tensor(np.clip(uv, 0.0, 1.0)), persistent=False)
        # The cond map's per-face constant (u, v) (reference: one value per face from its atlas coordinates).
        self.register_buffer("face_uv", torch.as_tensor(np.clip(face_uv, 0.0, 1.0)), persistent=False)
        self.crown_vertex = crown_vertex(arrays["v_template"], arrays["weights"], source)
        # Head-box landmarks: smplx's nose / eye / ear vertex ids and the crown (HMR's head box has a head top).
        ids = [*FACE_VERTEX_IDS.values(), self.crown_vertex]
        self.register_buffer("head_vertex_ids", torch.tensor(ids, dtype=torch.long), persistent=False)

    def forward(self, pose: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        device = self.faces.device
        pose = torch.as_tensor(pose, device=device).float()
        shape = torch.as_tensor(shape, device=device).float()
        if pose.ndim != 2 or pose.shape[1] != 72 or shape.ndim != 2 or shape.shape[1] != NUM_BETAS or len(pose) != len(shape):
            raise ValueError(f"pose must be (B, 72) and shape (B, {NUM_BETAS}); got {tuple(pose.shape)} and {tuple(shape.shape)}")
        out = self.smpl(betas=shape, global_orient=pose[:, :3], body_pose=pose[:, 3:], return_verts=True)
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :NUM_JOINTS])


def crown_vertex(rest_vertices: np.ndarray, weights: np.ndarray, source: str = "body model") -> int:
    """The crown: the topmost (largest y) rest-pose vertex among those the head joint skins most."""
    on_head = np.nonzero(np.asarray(weights).argmax(1) == HEAD)[0]
    if len(on_head) == 0:
        raise DataError(f"{source}: no vertex has the head joint (15) as its largest skinning weight; cannot find the crown")
    return int(on_head[np.argmax(np.asarray(rest_vertices)[on_head, 1])])


def generated_model_path(seed: int = 0) -> Path:
    from lwgan import paths

    return paths.cache_dir() / "body" / f"generated_seed{seed}.npz"


def load_body_model(path: str | os.PathLike | None = None) -> BodyModel:
    """The SMPL body model in ``path`` (.npz, or .pkl with or without chumpy); None = the generated stand-in."""
    if path is None:
        from lwgan.body.generate import generate_body_model

        target = generated_model_path(0)
        if not target.is_file():
            generate_body_model(target, seed=0)
        return BodyModel(read_smpl_arrays(target), str(target), "generated")
    resolved = Path(path).expanduser().resolve()
    arrays = read_smpl_arrays(resolved)
    kind = str(arrays["kind"]) if "kind" in arrays and str(arrays["kind"]) == "generated" else "smpl"
    return BodyModel(arrays, str(resolved), kind)
