"""The LWGAN generator: background inpainting stream (ResNet encoder-decoder), source and transfer
ResUnet streams joined by the Liquid Warping Block, and the attention-mask composition
(reference: networks/generator.py ``ImpersonatorGenerator``; models/impersonator_trainer.py ``forward``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lwgan.models.layers import InstanceNorm2d, apply_spectral_norm, init_weights
from lwgan.models.lwb import lwb_fuse, resize_flow
from lwgan.models.narrow_conv import narrow_conv2d

N_DOWN = 3  # stride-2 stages: feature maps at full, 1/2, 1/4, 1/8 resolution


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    """conv (bias-free) -> InstanceNorm (affine) -> ReLU, the reference's unit everywhere in G."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        InstanceNorm2d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 stride-2 transposed conv (padding 1, output_padding 1: exact x2) -> InstanceNorm -> ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
        InstanceNorm2d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """x + (conv3x3 -> IN -> ReLU -> conv3x3 -> IN)(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BackgroundStream(nn.Module):
    """ResNet encoder-decoder: 7x7 conv, 3 stride-2 3x3 convs, residual blocks at 1/8,
    3 transposed convs, 7x7 conv to RGB, tanh (reference ``ResNetGenerator`` with k_size=3, n_down=3)."""

    def __init__(self, in_channels: int, conv_dim: int, n_res_blocks: int):
        super().__init__()
        layers: list[nn.Module] = [_conv_block(in_channels, conv_dim, 7, 1)]
        dim = conv_dim
        for _ in range(N_DOWN):
            layers.append(_conv_block(dim, dim * 2, 3, 2))
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(n_res_blocks)]
        for _ in range(N_DOWN):
            layers.append(_up_block(dim, dim // 2))
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, padding=3, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *body, head, tanh = self.net  # the 3-channel head through narrow_conv2d (fast on the CPU, same maths)
        for layer in body:
            x = layer(x)
        return tanh(narrow_conv2d(x, head.weight, head.padding[0]))


class ResUnetStream(nn.Module):
    """Encoder (full, 1/2, 1/4, 1/8), residual blocks at 1/8, a decoder that upsamples, concatenates
    the skip of the same scale and fuses it with a 3x3 conv, and two 7x7 heads: colour (tanh) and
    attention mask (sigmoid). Its parts are called stage by stage so that the LWB can fuse between them."""

    def __init__(self, in_channels: int, conv_dim: int, n_res_blocks: int):
        super().__init__()
        encoders = [_conv_block(in_channels, conv_dim, 7, 1)]
        dim = conv_dim
        for _ in range(N_DOWN):
            encoders.append(_conv_block(dim, dim * 2, 3, 2))
            dim *= 2
        self.encoders = nn.ModuleList(encoders)
        self.res_blocks = nn.ModuleList(ResidualBlock(dim) for _ in range(n_res_blocks))
        ups, fuses = [], []
        for _ in range(N_DOWN):
            ups.append(_up_block(dim, dim // 2))
            # input: cat(skip (dim/2), upsampled (dim/2)) = dim channels
            fuses.append(_conv_block(dim, dim // 2, 3, 1))
            dim //= 2
        self.ups = nn.ModuleList(ups)
        self.fuses = nn.ModuleList(fuses)
        self.color_head = nn.Sequential(nn.Conv2d(dim, 3, 7, padding=3, bias=False), nn.Tanh())
        self.mask_head = nn.Sequential(nn.Conv2d(dim, 1, 7, padding=3, bias=False), nn.Sigmoid())

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``skips`` = encoder outputs at full, 1/2, 1/4 (the 1/8 one is the bottleneck input)."""
        for i, (up, fuse) in enumerate(zip(self.ups, self.fuses)):
            x = up(x)
            x = fuse(torch.cat([skips[N_DOWN - 1 - i], x], dim=1))
        return self.heads(x)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The colour (tanh) and mask (sigmoid) heads as one 7x7 convolution with 3 + 1 output channels.

        The same maths as calling the two heads (a convolution's output channels are independent), in
        one call: a 7x7 convolution with 1-4 output channels costs oneDNN about the same whatever the
        count (9 ms forward + backward at 64 px, batch 4, bf16, one thread), so two calls cost twice that.
        The heads stay two modules (their own weights, spectral norm, state-dict names). The 4-channel
        convolution runs through ``narrow_conv2d`` (column phases that fill oneDNN's 16-channel blocks
        on the CPU; the same maths)."""
        color_conv, mask_conv = self.color_head[0], self.mask_head[0]
        weight = torch.cat([color_conv.weight, mask_conv.weight], dim=0)  # bias-free, as the reference
        both = narrow_conv2d(x, weight, color_conv.padding[0])
        return self.color_head[1](both[:, :3]), self.mask_head[1](both[:, 3:])


@dataclass
class GeneratorOutput:
    bg: torch.Tensor  # (B,3,H,W) inpainted background, [-1, 1]
    src_color: torch.Tensor  # (B,3,H,W) [-1, 1]
    src_mask: torch.Tensor  # (B,1,H,W) [0, 1], 1 = take the background
    src_image: torch.Tensor  # reconstructed source: src_mask * bg + (1 - src_mask) * src_color
    tsf_color: torch.Tensor
    tsf_mask: torch.Tensor
    tsf_image: torch.Tensor  # transfer output: tsf_mask * bg + (1 - tsf_mask) * tsf_color


class Generator(nn.Module):
    """Three streams; the transfer stream receives the warped source features at 3 + n_res_blocks
    points (9 with the reference's 6 blocks). The source stream never sees the transfer stream."""

    def __init__(self, model_cfg, spectral_norm: bool = False):
        super().__init__()
        cond = model_cfg.cond_channels
        dim, n_res = model_cfg.conv_dim, model_cfg.n_res_blocks
        self.flow_resize = model_cfg.lwb_flow_resize
        self.bg_stream = BackgroundStream(4, dim, n_res)
        self.src_stream = ResUnetStream(3 + cond, dim, n_res)
        self.tsf_stream = ResUnetStream(3 + cond, dim, n_res)
        init_weights(self)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, bg_in: torch.Tensor, src_in: torch.Tensor, tsf_in: torch.Tensor, flow: torch.Tensor) -> GeneratorOutput:
        bg = self.bg_stream(bg_in)
        src, tsf = self.src_stream, self.tsf_stream

        src_x = src.encoders[0](src_in)
        tsf_x = tsf.encoders[0](tsf_in)  # level 0 (full resolution) is not fused, as in the reference
        src_skips, tsf_skips = [src_x], [tsf_x]
        flow_small = flow
        for i in range(1, N_DOWN + 1):
            src_x = src.encoders[i](src_x)
            flow_small = resize_flow(flow, tuple(src_x.shape[-2:]), self.flow_resize)
            tsf_x = lwb_fuse(tsf.encoders[i](tsf_x), src_x, flow_small)
            src_skips.append(src_x)
            tsf_skips.append(tsf_x)  # the transfer decoder's skips are the fused features
        for src_block, tsf_block in zip(src.res_blocks, tsf.res_blocks):
            src_x = src_block(src_x)
            tsf_x = lwb_fuse(tsf_block(tsf_x), src_x, flow_small)  # flow at 1/8, resized once

        src_color, src_mask = src.decode(src_x, src_skips)
        tsf_color, tsf_mask = tsf.decode(tsf_x, tsf_skips)
        # Both streams are composed with the background generated from the source (bg_both=False).
        return GeneratorOutput(
            bg=bg,
            src_color=src_color,
            src_mask=src_mask,
            src_image=src_mask * bg + (1 - src_mask) * src_color,
            tsf_color=tsf_color,
            tsf_mask=tsf_mask,
            tsf_image=tsf_mask * bg + (1 - tsf_mask) * tsf_color,
        )


__all__ = ["Generator", "GeneratorOutput", "BackgroundStream", "ResUnetStream", "ResidualBlock"]
