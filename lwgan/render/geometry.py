"""Per-frame correspondences (rasterised face index + barycentrics) and per-pair geometry for LWGAN.

``GeometryBuilder.frames`` poses and rasterises the body for a batch of frames (through a
``CorrespondenceCache`` when given); ``GeometryBuilder.pair`` turns a source and a target frame into the
transformation flow T, the uv_seg condition maps and the reference's masks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lwgan.body import head_box, ndc_to_pixels, project
from lwgan.render.masks import background_kernel, erode
from lwgan.render.rasterize import rasterize
from lwgan.transfer import to_device

OFF_BODY_FLOW = -2.0  # T on pixels that show no body: outside grid_sample's range (reference)


@dataclass(frozen=True)
class FrameGeometry:
    """Correspondences of a batch of frames; one frame is a batch of one."""

    face_index: torch.Tensor  # (B, H, W) long, -1 off the body
    bary: torch.Tensor  # (B, H, W, 3)
    verts_ndc: torch.Tensor  # (B, V, 2)
    joints_ndc: torch.Tensor  # (B, 24, 2)

    @property
    def size(self) -> int:
        return int(self.face_index.shape[-1])

    def __len__(self) -> int:
        return int(self.face_index.shape[0])

    def select(self, index: int) -> "FrameGeometry":
        return FrameGeometry(*(t[index : index + 1] for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def to(self, device: torch.device | str) -> "FrameGeometry":
        return FrameGeometry(*(to_device(t, device) for t in self.tensors()))

    @staticmethod
    def stack(frames: list["FrameGeometry"]) -> "FrameGeometry":
        return FrameGeometry(*(torch.cat(parts) for parts in zip(*(f.tensors() for f in frames))))


@dataclass(frozen=True)
class PairGeometry:
    flow: torch.Tensor  # (B, H, W, 2) source NDC per target pixel, -2 off the body
    src_cond: torch.Tensor  # (B, 3, H, W) uv_seg (u, 1 - v, bg)
    tgt_cond: torch.Tensor  # (B, 3, H, W)
    src_crop_mask: torch.Tensor  # (B, 1, H, W) bg channel eroded 3x3 (1 = background)
    tgt_crop_mask: torch.Tensor  # (B, 1, H, W)
    bg_mask: torch.Tensor  # (B, 1, H, W) source bg channel eroded with the scaled 15x15 kernel
    head_box: torch.Tensor  # (B, 4) long [x0, y0, x1, y1], target head, end exclusive


def _gather_faces(values: torch.Tensor, faces: torch.Tensor, frame: FrameGeometry) -> torch.Tensor:
    """Barycentric interpolation of per-vertex ``values`` (B or 1, V, C) at every pixel -> (B, H, W, C)."""
    b = frame.face_index.shape[0]
    tri = faces[frame.face_index.clamp(min=0)]  # (B, H, W, 3) vertex ids
    if values.shape[0] == 1:
        picked = values[0][tri]  # (B, H, W, 3, C)
    else:
        offset = torch.arange(b, device=tri.device).view(b, 1, 1, 1) * values.shape[1]
        picked = values.reshape(-1, values.shape[-1])[tri + offset]
    return torch.einsum("bhwk,bhwkc->bhwc", frame.bary.to(values.dtype), picked)


def cond_map(frame: FrameGeometry, face_uv: torch.Tensor) -> torch.Tensor:
    """uv_seg condition (B, 3, H, W): ``(u, 1 - v, 0)`` of the pixel's face on the body, ``(0, 0, 1)`` off it.

    As the reference (``map_fn[fim]``), the value is a per-face constant (``face_uv`` (F, 2), see
    ``lwgan.body.uv``): no interpolation across a face, so no blend across the atlas seams."""
    on = (frame.face_index >= 0).unsqueeze(-1).to(frame.bary.dtype)
    uv = face_uv.to(frame.bary.dtype)[frame.face_index.clamp(min=0)]  # (B, H, W, 2)
    cond = torch.cat([uv[..., :1] * on, (1.0 - uv[..., 1:2]) * on, 1.0 - on], dim=-1)
    return cond.permute(0, 3, 1, 2).contiguous()


def transformation_flow(src: FrameGeometry, tgt: FrameGeometry, faces: torch.Tensor) -> torch.Tensor:
    """T (B, H, W, 2): the source NDC of the surface point each target pixel shows; -2 off the target body."""
    flow = _gather_faces(src.verts_ndc, faces, tgt)
    return torch.where((tgt.face_index >= 0).unsqueeze(-1), flow, torch.full_like(flow, OFF_BODY_FLOW))


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``flow`` (B, H, W, 2) NDC: bilinear, align_corners=True, zeros outside."""
    return F.grid_sample(image, flow.to(image.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def generator_inputs(src_img: torch.Tensor, geom: PairGeometry) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three streams' inputs: ``(bg_in (B,4,H,W), src_in (B,6,H,W), tsf_in (B,6,H,W))`` as the reference."""
    bg_mask = geom.bg_mask.to(src_img.dtype)
    bg_in = torch.cat([src_img * bg_mask, bg_mask], dim=1)
    src_in = torch.cat([src_img * (1.0 - geom.src_crop_mask.to(src_img.dtype)), geom.src_cond.to(src_img.dtype)], dim=1)
    tsf_in = torch.cat([warp(src_img, geom.flow), geom.tgt_cond.to(src_img.dtype)], dim=1)
    return bg_in, src_in, tsf_in


class GeometryBuilder:
    """Builds frame and pair geometry for one body model and image size, on the body model's device."""

    def __init__(self, body_model, image_size: int, cache=None):
        self.body = body_model
        self.size = int(image_size)
        self.cache = cache

    @property
    def device(self) -> torch.device:
        return self.body.faces.device

    @torch.no_grad()
    def render(self, smpl: torch.Tensor) -> FrameGeometry:
        """Pose, project and rasterise (B, 85) SMPL parameters ``cam | pose | shape`` (no cache)."""
        smpl = torch.as_tensor(smpl, device=self.device).float()
        if smpl.ndim != 2 or smpl.shape[1] != 85:
            raise ValueError(f"smpl must be (B, 85) = cam(3) | pose(72) | shape(10); got {tuple(smpl.shape)}")
        cam, pose, shape = smpl[:, :3], smpl[:, 3:75], smpl[:, 75:]
        with torch.autocast(self.device.type, enabled=False):  # geometry is float32 wherever it is called
            out = self.body(pose, shape)
            verts = project(out.vertices, cam)
            joints = project(out.joints, cam)
            verts_px = torch.cat([ndc_to_pixels(verts[..., :2], self.size), verts[..., 2:]], dim=-1)
            raster = rasterize(verts_px, self.body.faces, self.size)
        return FrameGeometry(raster.face_index, raster.bary, verts[..., :2].contiguous(), joints[..., :2].contiguous())

    @torch.no_grad()
    def frames(self, smpl: torch.Tensor, keys: list[str] | None = None, one_at_a_time: bool = False) -> FrameGeometry:
        """Batched frame geometry of (B, 85) SMPL parameters; with a cache and ``keys``, each frame is made once.

        Frames to render are rendered in one batch, or with ``one_at_a_time`` each on its own: a batched
        render differs from a single-frame one in the last bits, so a caller whose geometry must not
        depend on which frames share a batch (the trainer: a resumed run starts with an empty cache)
        asks for single frames."""
        smpl = torch.as_tensor(smpl).float()
        if self.cache is None or keys is None:
            return FrameGeometry.stack(self._render_each(smpl)) if one_at_a_time else self.render(smpl)
        if len(keys) != len(smpl):
            raise ValueError(f"{len(keys)} keys for {len(smpl)} frames")
        found = [self.cache.get(key, self.size, smpl[i]) for i, key in enumerate(keys)]
        missing = [i for i, frame in enumerate(found) if frame is None]
        if missing:
            if one_at_a_time:
                made = self._render_each(smpl[missing])
            else:
                batch = self.render(smpl[missing])
                made = [batch.select(j) for j in range(len(missing))]
            for i, frame in zip(missing, made):
                found[i] = frame
                self.cache.put(keys[i], self.size, smpl[i], frame)
        # Cached frames live on the CPU: stacked there and moved in one copy per field (not one per frame).
        return FrameGeometry.stack([f.to("cpu") for f in found]).to(self.device)

    def _render_each(self, smpl: torch.Tensor) -> list[FrameGeometry]:
        """Each frame of (B, 85) ``smpl`` rendered on its own (batch of one)."""
        return [self.render(smpl[i : i + 1]) for i in range(len(smpl))]

    @torch.no_grad()
    def pair(self, src: FrameGeometry, tgt: FrameGeometry) -> PairGeometry:
        faces = self.body.faces.to(src.face_index.device)
        face_uv = self.body.face_uv.to(src.face_index.device)
        src_cond, tgt_cond = cond_map(src, face_uv), cond_map(tgt, face_uv)
        src_bg, tgt_bg = src_cond[:, 2:3], tgt_cond[:, 2:3]
        return PairGeometry(
            flow=transformation_flow(src, tgt, faces),
            src_cond=src_cond,
            tgt_cond=tgt_cond,
            src_crop_mask=erode(src_bg, 3),
            tgt_crop_mask=erode(tgt_bg, 3),
            bg_mask=erode(src_bg, background_kernel(self.size)),
            head_box=head_box(tgt.joints_ndc, tgt.verts_ndc, self.size, self.body.head_vertex_ids),
        )
