"""The renderer: rasterizer, per-frame correspondence cache, transformation flow T, uv_seg maps, masks, warping."""

from lwgan.render.cache import CorrespondenceCache, shared_folder
from lwgan.render.geometry import (
    FrameGeometry,
    GeometryBuilder,
    PairGeometry,
    cond_map,
    generator_inputs,
    transformation_flow,
    warp,
)
from lwgan.render.masks import background_kernel, erode
from lwgan.render.rasterize import Raster, rasterize

__all__ = [
    "CorrespondenceCache", "FrameGeometry", "GeometryBuilder", "PairGeometry", "Raster", "background_kernel",
    "cond_map", "erode", "generator_inputs", "rasterize", "shared_folder", "transformation_flow", "warp",
]
