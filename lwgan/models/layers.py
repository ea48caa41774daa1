"""Small helpers shared by the generator and the discriminator: the reference weight init,
spectral-norm wrapping of every convolution, normalisation-layer choice and parameter counts."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def init_weights(module: nn.Module) -> nn.Module:
    """The reference init (networks/networks.py ``_weights_init_fn``): conv and transposed-conv
    weights N(0, 0.02), biases 0; BatchNorm weights N(1, 0.02), biases 0. InstanceNorm affine
    parameters keep their defaults (1, 0), as in the reference. Call before spectral norm."""
    for m in module.modules():
        if isinstance(m, CONV_TYPES):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap every Conv2d / ConvTranspose2d of ``module`` with the parametrization-based spectral norm
    (one power iteration per training forward; torch picks dim=1 for transposed convs)."""
    for m in list(module.modules()):
        if isinstance(m, CONV_TYPES) and not parametrizations_registered(m):
            parametrizations.spectral_norm(m)
    return module


def parametrizations_registered(m: nn.Module) -> bool:
    return hasattr(m, "parametrizations") and "weight" in m.parametrizations


def conv_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, CONV_TYPES)]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (spectral-norm power-iteration vectors are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class InstanceNorm2d(nn.GroupNorm):
    """Instance normalisation (each sample's channel over H x W, then a per-channel affine), computed by
    ``group_norm`` with one group per channel: the same maths as ``nn.InstanceNorm2d(affine=True)``
    (no running statistics, eps 1e-5) and the same parameter names, so state dicts load either way.

    Why not nn.InstanceNorm2d: it runs batch_norm on a (1, B*C, H, W) view with the affine parameters
    repeated B times, which on the CPU cost twice group_norm's forward + backward at the generator's
    shapes (0.29 vs 0.15 ms at 4x128x8x8, bf16) and 8% of a small-profile generator step
    (BENCHMARKS.md, "Training step")."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(num_features, num_features, eps=eps, affine=affine)
        self.num_features = num_features


def norm_2d(kind: str, channels: int, affine: bool) -> nn.Module:
    """``instance`` | ``batch`` | ``none`` (identity)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (allowed: instance | batch | none)")


def effective_weight_matrix(conv: nn.Module) -> torch.Tensor:
    """The conv's weight as used in forward (after any parametrization), reshaped to a matrix the way
    spectral norm sees it: (out, in*k*k) for Conv2d, (out, in*k*k) with dims swapped for ConvTranspose2d."""
    w = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1)
