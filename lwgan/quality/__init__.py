"""Image-quality metrics comparable with the literature: LPIPS (AlexNet or VGG16) with the lpips package's learned
linear layers, and FID / KID on Inception-v3 pool features. Weights come only from paths the user gives;
without them a metric is absent (never a stand-in number)."""

from lwgan.quality.fid import InceptionFeatures, build_inception, fid_from_features, kid_from_features
from lwgan.quality.lpips import LPIPS_NETS, LPIPSBackbone, LPIPSMetric, build_lpips, lpips_package_weights
from lwgan.quality.status import QualityStatus

__all__ = [
    "InceptionFeatures", "LPIPS_NETS", "LPIPSBackbone", "LPIPSMetric", "QualityStatus", "build_inception", "build_lpips",
    "fid_from_features", "kid_from_features", "lpips_package_weights",
]
