"""The pix2pix PatchGAN discriminator the reference uses (networks/discriminator.py
``PatchDiscriminator``), conditioned on the target cond map, with an optional spectral norm on every conv."""

from __future__ import annotations

import torch
from torch import nn

from lwgan.models.layers import apply_spectral_norm, init_weights, norm_2d

KERNEL, PAD = 4, 1


class Discriminator(nn.Module):
    """4x4 convs: (3 + cond) -> ndf stride 2 + LeakyReLU(0.2) (no norm); then ``d_layers - 1`` stride-2
    convs doubling the width (capped at 8*ndf) with norm + LeakyReLU; one stride-1 conv to
    min(2**d_layers, 8)*ndf with norm + LeakyReLU; a stride-1 conv to 1 channel, no sigmoid.
    256 px with d_layers=4 gives a 14x14 patch map."""

    def __init__(self, model_cfg, spectral_norm: bool = False):
        super().__init__()
        ndf, n_layers, norm = model_cfg.ndf, model_cfg.d_layers, model_cfg.d_norm
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
