"""Which callable makes each network call of a training step: the plain networks, or per-site
wrappers such as lwgan.train.graphs' CUDA-graph ``CallSite``s. The Objective and the target-feature
cache call the networks only through these fields, so a site can be swapped without touching the maths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass
class NetCalls:
    """One callable per place the step calls a network."""

    generator: Callable  # G(bg_in, src_in, tsf_in, flow) -> GeneratorOutput
    d_for_g: Callable  # D on G's transfer in the G phase (D's parameters frozen)
    d_real: Callable  # D on the target in the D phase
    d_fake: Callable  # D on the detached transfer in the D phase
    vgg_fake: Callable | None  # VGG19 on the transfer (gradients flow to the image)
    face_fake: Callable | None  # SphereFace on the transfer's head crop
    vgg_target: Callable | None  # VGG19 on one target frame (no gradients)
    face_target: Callable | None  # SphereFace on one target frame's head crop

    @classmethod
    def plain(cls, G: nn.Module, D: nn.Module, vgg: nn.Module | None, face: nn.Module | None) -> "NetCalls":
        """Every site calls its network directly."""
        return cls(G, D, D, D, vgg, face, vgg, face)


__all__ = ["NetCalls"]
