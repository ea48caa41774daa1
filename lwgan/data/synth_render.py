"""Renders a textured, shaded body over a background with the project's rasterizer (synthetic frames only).

Per pixel: the rasterizer's face index and barycentric weights give the rest-pose surface
point (pattern lookup, see ``appearance``) and an interpolated normal of the posed mesh
(Lambert shading); rendering at 2x and downsampling anti-aliases the silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lwgan.body import ndc_to_pixels, project
from lwgan.data.appearance import BodyLayout, Outfit, surface_colour, surface_regions
from lwgan.render import rasterize

# Direction the light travels (image frame: +x right, +y down, +z away from the camera):
# from a source at the upper left in front of the body.
_LIGHT = np.array([0.45, 0.55, 0.7]) / np.linalg.norm([0.45, 0.55, 0.7])
_AMBIENT = 0.42
SUPERSAMPLE = 2


@dataclass(frozen=True)
class SubjectLook:
    """What stays fixed for a subject across frames: rest surface, regions and outfit."""

    faces: np.ndarray  # (F, 3) int64
    rest_vertices: np.ndarray  # (V, 3) rest pose, SMPL frame
    vertex_regions: np.ndarray  # (V,) region ids
    layout: BodyLayout
    outfit: Outfit


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B, V, 3) unit normals (area-weighted), oriented away from each mesh's centroid."""
    v0, v1, v2 = (vertices[:, faces[:, k]] for k in range(3))
    face_n = np.cross(v1 - v0, v2 - v0)  # (B, F, 3), length = 2 x area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, (slice(None), faces[:, k]), face_n)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True) + 1e-12
    # Winding may be either way: make normals point outwards on average.
    outward = vertices - vertices.mean(axis=1, keepdims=True)
    sign = np.sign((normals * outward).sum(-1).mean(-1))
    return normals * np.where(sign == 0, 1.0, sign)[:, None, None]


def render_frames(
    look: SubjectLook,
    posed_vertices: torch.Tensor,
    cams: torch.Tensor,
    background: np.ndarray,
) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB frames of the posed body (N, V, 3) seen by ``cams`` (N, 3) over ``background`` (S, S, 3)."""
    size = background.shape[0]
    big = size * SUPERSAMPLE
    proj = project(posed_vertices, cams)
    verts_px = torch.cat([ndc_to_pixels(proj[..., :2], big), proj[..., 2:]], dim=-1)
    faces_t = torch.as_tensor(look.faces, dtype=torch.long)
    raster = rasterize(verts_px.float(), faces_t, big)
    face_index = raster.face_index.numpy()
    bary = raster.bary.numpy().astype(np.float64)
    normals = vertex_normals(posed_vertices.detach().numpy().astype(np.float64), look.faces)

    bg_big = cv2.resize(background, (big, big), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    frames = np.empty((len(face_index), size, size, 3), dtype=np.uint8)
    for n in range(len(face_index)):
        img = bg_big.copy()
        on = face_index[n] >= 0
        fidx = face_index[n][on]
        w = bary[n][on]  # (M, 3)
        tri = look.faces[fidx]  # (M, 3)
        pos = (w[..., None] * look.rest_vertices[tri]).sum(1)
        nearest = tri[np.arange(len(tri)), w.argmax(1)]
        region = surface_regions(look.layout, look.vertex_regions[nearest], look.layout.vertex_joint[nearest], pos)
        colour = surface_colour(look.outfit, look.layout, region, pos)
        normal = (w[..., None] * normals[n][tri]).sum(1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
        # Normals face the camera (-z) on visible surfaces; light arrives along +z.
        lambert = np.clip(-(normal @ _LIGHT), 0.0, 1.0)
        img[on] = colour * (_AMBIENT + (1.0 - _AMBIENT) * lambert)[:, None]
        frames[n] = np.clip(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), 0, 255).round().astype(np.uint8)
    return frames
