"""The Liquid Warping Block: resize the transformation flow T to a feature resolution, warp the
source stream's features with it and add them to the transfer stream's features.

Two ways to resize T (``model_cfg.lwb_flow_resize``):

- ``"reference"``: bilinear resize of T with ``align_corners=True``, as networks/generator.py
  ``resize_trans`` does. T holds -2 on target pixels that show no body, so at body edges the resized
  flow is a mix of a real source location and -2: those feature pixels sample a wrong location
  (or, when the mix falls outside [-1, 1], nothing). This quirk is reproduced on purpose.
- ``"masked"``: a deliberate fix. Validity (T > -1.5 in both coordinates) is resized separately;
  the flow is resized as a validity-weighted average (normalised convolution), so edge pixels take
  only body locations, and a low-resolution pixel whose resized validity is below 0.5 is set to -2
  (off body: warps to zero, exactly like the reference away from edges).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OFF_BODY = -2.0
VALID_ABOVE = -1.5  # a flow value above this is a source location (on-body values lie in about [-1, 1])
FLOW_RESIZE_MODES = ("reference", "masked")


def resize_flow(flow: torch.Tensor, size: tuple[int, int], mode: str = "reference") -> torch.Tensor:
    """Resize a flow (B, H, W, 2) to (B, h, w, 2) with bilinear, align_corners=True."""
    if mode not in FLOW_RESIZE_MODES:
        raise ValueError(f"lwb_flow_resize must be one of {FLOW_RESIZE_MODES}, got {mode!r}")
    if tuple(flow.shape[1:3]) == tuple(size):
        return flow
    chw = flow.permute(0, 3, 1, 2)
    if mode == "reference":
        out = F.interpolate(chw, size=size, mode="bilinear", align_corners=True)
        return out.permute(0, 2, 3, 1)
    valid = (chw > VALID_ABOVE).all(dim=1, keepdim=True).to(chw.dtype)
    weight = F.interpolate(valid, size=size, mode="bilinear", align_corners=True)
    summed = F.interpolate(chw * valid, size=size, mode="bilinear", align_corners=True)
    mean = summed / weight.clamp_min(1e-6)
    out = torch.where(weight >= 0.5, mean, torch.full_like(mean, OFF_BODY))
    return out.permute(0, 2, 3, 1)


def warp_features(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` (B, C, h, w) at ``flow`` (B, h, w, 2) NDC; zeros outside [-1, 1].

    Bilinear, zero padding, align_corners=True (torch 1.2's grid_sample, which the reference ran on)."""
    return F.grid_sample(features, flow.to(features.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def lwb_fuse(tsf_features: torch.Tensor, src_features: torch.Tensor, flow_at_res: torch.Tensor) -> torch.Tensor:
    """One additive Liquid Warping fusion: ``tsf + warp(src, T)`` (flow already at this resolution)."""
    return tsf_features + warp_features(src_features, flow_at_res)
