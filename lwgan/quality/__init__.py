"""Image-quality metrics comparable with the literature: LPIPS-VGG16 with the lpips package's learned
linear layers, and FID / KID on Inception-v3 pool features. Weights come only from paths the user gives;
without them a metric is absent (never a stand-in number)."""

from lwgan.quality.fid import InceptionFeatures, build_inception, fid_from_features, kid_from_features
from lwgan.quality.lpips import LPIPSVGG16, VGG16Features, build_lpips, lpips_package_weights
from lwgan.quality.status import QualityStatus

__all__ = [
    "InceptionFeatures", "LPIPSVGG16", "QualityStatus", "VGG16Features", "build_inception", "build_lpips",
    "fid_from_features", "kid_from_features", "lpips_package_weights",
]
