"""A stride-1 convolution with few output channels (the generator's 7x7 colour / mask heads), made
to fill oneDNN's output-channel blocks on the CPU.

Why: oneDNN's CPU convolutions compute output channels in blocks of 16, so a 7x7 convolution with
3 or 4 output channels costs what one with 16 would: 6.4-6.8 ms forward + backward at the small
profile's 4x16x64x64, bf16, one thread, and the generator's three heads were ~20 ms of a ~370 ms
step (BENCHMARKS.md, "The 15-trial study", the f90f3f1 run; benchmarks/narrow_conv.py).

How: the output's columns are split into ``P`` phases (column ``P*j + p`` is phase ``p``) and all
phases are computed by one convolution with ``O*P`` output channels and a horizontal stride of
``P``: phase ``p``'s kernel is the original kernel shifted right by ``p`` columns inside a kernel
``P - 1`` columns wider (zeros elsewhere). Output channel ``o*P + p`` at column ``j`` is then
exactly output channel ``o`` at column ``P*j + p``; a reshape puts the columns back in order.

The same maths: every output is the same sum of the same products (the added kernel entries are
zeros), and on this machine the forward values are bit-identical to ``F.conv2d``'s
(tests/test_models_narrow_conv.py). The gradients are the same sums in another order: the input's
gradient adds the phases' contributions, the weight's gradient adds P shifted slices, each rounded
to the autocast dtype first, so they agree with ``F.conv2d``'s to that dtype's rounding, not bit
for bit. It costs (6 + P) / 7 times the multiply-adds (1.43x at P = 4) and runs 1.3-1.7x faster.

Used on the CPU only, for an odd square kernel, stride 1, "same" padding, no dilation or groups,
fewer than 16 output channels and a width divisible by P; anything else (and every CUDA tensor:
cuDNN has no such blocking) calls ``F.conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHASES = 4  # 3-4 output channels x 4 phases = 12-16: one oneDNN block of 16
ONEDNN_OC_BLOCK = 16


def phased_path_applies(x: torch.Tensor, weight: torch.Tensor, padding: int, phases: int = PHASES) -> bool:
    """Whether ``narrow_conv2d`` computes ``x`` through the phases (see the module doc)."""
    out_ch, _, kh, kw = weight.shape
    return (x.device.type == "cpu" and x.dim() == 4 and kh == kw and kh % 2 == 1 and padding == kh // 2
            and out_ch * phases <= ONEDNN_OC_BLOCK and x.shape[-1] % phases == 0 and x.shape[-1] >= phases)


def narrow_conv2d(x: torch.Tensor, weight: torch.Tensor, padding: int, phases: int = PHASES) -> torch.Tensor:
    """``F.conv2d(x, weight, padding=padding)`` (no bias, stride 1), through ``phases`` column phases
    where that applies (see the module doc); differentiable in ``x`` and ``weight``."""
    if not phased_path_applies(x, weight, padding, phases):
        return F.conv2d(x, weight, None, 1, padding)
    out_ch, in_ch, k, _ = weight.shape
    # (O, P, C, k, k + P - 1): phase p's kernel sits at columns p .. p + k - 1
    shifted = torch.stack([F.pad(weight, (p, phases - 1 - p)) for p in range(phases)], dim=1)
    phased = F.conv2d(x, shifted.reshape(out_ch * phases, in_ch, k, k + phases - 1), None, (1, phases), padding)
    n, _, h, w_phase = phased.shape
    # (N, O, P, H, W/P) -> (N, O, H, W/P, P) -> (N, O, H, W): column P*j + p = phase p's column j
    return phased.view(n, out_ch, phases, h, w_phase).permute(0, 1, 3, 4, 2).reshape(n, out_ch, h, w_phase * phases)


__all__ = ["narrow_conv2d", "phased_path_applies", "PHASES"]
