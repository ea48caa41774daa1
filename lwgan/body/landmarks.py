"""Head box for the face loss: SMPL neck/head joints plus face and crown vertices, padded as the reference pads HMR's box."""

from __future__ import annotations

import torch

from lwgan.body.camera import ndc_to_pixels
from lwgan.body.skeleton import HEAD, NECK

PAD_FRACTION = 0.05  # of the image size: x on both sides, y above only (reference)


def head_box(joints_ndc: torch.Tensor, verts_ndc: torch.Tensor, size: int, vertex_ids: torch.Tensor) -> torch.Tensor:
    """(B, 4) long ``[x0, y0, x1, y1]`` pixel box of the head (end exclusive, as ``crop_and_resize`` reads it),
    clamped to the image and at least one pixel wide and high.

    ``vertex_ids``: the head landmarks of the body model (``BodyModel.head_vertex_ids``: smplx's nose,
    eye and ear vertices and the crown, the topmost head vertex of the rest pose).

    Deviation: the reference boxes HMR's 19-joint head keypoints (which include the head top); smplx has
    no such regressor, so the box spans SMPL joints 12 (neck) and 15 (head), the face landmarks and the
    crown standing in for the head top.
    """
    ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=verts_ndc.device)
    points = torch.cat([joints_ndc[:, [NECK, HEAD], :2], verts_ndc[:, ids, :2]], dim=1)
    px = ndc_to_pixels(points.float(), size)
    pad = PAD_FRACTION * size
    x0 = torch.floor(px[..., 0].amin(1) - pad).clamp(0, size - 1)
    y0 = torch.floor(px[..., 1].amin(1) - pad).clamp(0, size - 1)  # +y is down: padding "above" lowers y0
    x1 = torch.maximum(torch.ceil(px[..., 0].amax(1) + pad) + 1, x0 + 1).clamp(max=size)
    y1 = torch.maximum(torch.ceil(px[..., 1].amax(1)) + 1, y0 + 1).clamp(max=size)
    x0 = torch.minimum(x0, x1 - 1)
    y0 = torch.minimum(y0, y1 - 1)
    return torch.stack([x0, y0, x1, y1], dim=1).long()
