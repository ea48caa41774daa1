"""Image-quality metrics of the paper's self-imitation evaluation: SSIM and PSNR in torch, and the LPIPS distance
(its networks: lwgan.quality.lpips).

SSIM follows Wang et al. 2004 as ``skimage.metrics.structural_similarity`` computes it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: an 11-tap Gaussian window,
per-channel maps averaged over the valid (uncropped-by-padding) interior and the channels.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size`` (skimage: truncate 3.5 at sigma 1.5 gives 11 taps)."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only (what skimage keeps after cropping the borders)."""
    c = x.shape[1]
    kx = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean SSIM per image: ``x``, ``y`` (B, C, H, W) with H, W >= 11; returns (B,) float32.

    ``data_range`` is max - min of the value range (2 for images in [-1, 1]).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two (B,C,H,W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    x, y = x.detach().double(), y.detach().double()
    g = gaussian_window(dtype=torch.float64).to(x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur_valid(x, g), _blur_valid(y, g)
    var_x = _blur_valid(x * x, g) - mu_x**2
    var_y = _blur_valid(y * y, g) - mu_y**2
    cov = _blur_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3)).float()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB per image, (B,); identical images give +inf."""
    mse = (x.detach().double() - y.detach().double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def lpips_distance(
    feats_x: Sequence[torch.Tensor], feats_y: Sequence[torch.Tensor], linear_weights: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LPIPS (Zhang et al. 2018) from matching feature lists and per-layer linear weights (1, C, 1, 1).

    Each layer's features are unit-normalised over channels, their squared difference is
    weighted by the learned non-negative channel weights, averaged over space; layers are summed.
    Returns (B,).
    """
    if not (len(feats_x) == len(feats_y) == len(linear_weights)):
        raise ValueError("lpips needs one linear weight per feature layer")
    total = None
    for fx, fy, w in zip(feats_x, feats_y, linear_weights):
        nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        d = ((nx - ny) ** 2 * w.to(fx)).sum(dim=1).mean(dim=(1, 2))
        total = d if total is None else total + d
    return total


# LPIPS input scaling (Zhang et al.'s ScalingLayer) for images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def load_lpips_weights(path: str, channels: Sequence[int]) -> list[torch.Tensor]:
    """The five ``lin{i}.model.1.weight`` tensors of an LPIPS ``vgg.pth`` (1, C, 1, 1), checked against ``channels``."""
    from lwgan.errors import DataError

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"{path}: cannot read LPIPS weights (lpips_weights): {err}") from None
    weights = []
    for i, c in enumerate(channels):
        key = f"lin{i}.model.1.weight"
        if key not in raw:
            raise DataError(f"{path}: LPIPS weights lack {key!r} (expected the lpips package's vgg.pth)")
        w = raw[key].float()
        if tuple(w.shape) != (1, c, 1, 1):
            raise DataError(f"{path}: {key} has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)")
        weights.append(w)
    return weights
