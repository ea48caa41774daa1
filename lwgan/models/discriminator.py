"""The pix2pix PatchGAN discriminator the reference uses (networks/discriminator.py
``PatchDiscriminator``), conditioned on the target cond map, with an optional spectral norm on every conv."""

from __future__ import annotations

import torch
from torch import nn

from lwgan.config import d_stride_layers
from lwgan.models.layers import apply_spectral_norm, init_weights, norm_2d

KERNEL, PAD = 4, 1


def patch_map_size(image_size: int, n_stride: int) -> int:
    """Side of the output map: each stride-2 conv (k4, p1) halves, each stride-1 conv (k4, p1) loses 1."""
    size = image_size
    for _ in range(n_stride):
        size = (size + 2 * PAD - KERNEL) // 2 + 1
    return size - 2


def receptive_field(n_stride: int) -> int:
    """Receptive field in pixels of one output of a D with ``n_stride`` stride-2 layers (142 at 4)."""
    field = 1
    for stride in [1, 1] + [2] * n_stride:  # walked from the output back to the input
        field = (field - 1) * stride + KERNEL
    return field


class Discriminator(nn.Module):
    """4x4 convs: (3 + cond) -> ndf stride 2 + LeakyReLU(0.2) (no norm); then ``n - 1`` stride-2
    convs doubling the width (capped at 8*ndf) with norm + LeakyReLU; one stride-1 conv to
    min(2**n, 8)*ndf with norm + LeakyReLU; a stride-1 conv to 1 channel, no sigmoid.
    ``n`` = ``d_stride_layers(model_cfg)``: 4 at 256 px as the reference (a 14x14 patch map, 142 px
    field); scaled with the image by default, so 128 / 64 / 32 px keep the 14x14 map (fields 70 / 34 / 16 px)."""

    def __init__(self, model_cfg, spectral_norm: bool = False):
        super().__init__()
        ndf, n_layers, norm = model_cfg.ndf, d_stride_layers(model_cfg), model_cfg.d_norm
        in_ch = 3 + model_cfg.cond_channels
        # As pix2pix: convs followed by BatchNorm have no bias; instance norm has no affine, so keeps the bias.
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, KERNEL, stride=2, padding=PAD), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, KERNEL, stride=2, padding=PAD, bias=bias),
                norm_2d(norm, ndf * mult, affine=False),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, KERNEL, stride=1, padding=PAD, bias=bias),
            norm_2d(norm, ndf * mult, affine=False),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, KERNEL, stride=1, padding=PAD),
        ]
        self.net = nn.Sequential(*layers)
        init_weights(self)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, cond], dim=1))
