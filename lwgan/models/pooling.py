"""2x2 / stride-2 max pooling (VGG19's) that is fast on the CPU and equal to ``F.max_pool2d``.

Why: ATen's CPU ``max_pool2d`` forward on a contiguous (NCHW) bf16 or fp32 tensor runs ~17x slower
than oneDNN's pooling at VGG19's shapes (5.8 vs 0.34 ms at 4x64x64x64 bf16, conversions included),
and VGG19's four pools were 7% of its forward + backward in a small-profile step
(BENCHMARKS.md, "Less work per step").

Equal, not close: the forward is a selection, so oneDNN's values are ATen's bit for bit, and
oneDNN's backward (from the argmax workspace of its training forward) sends each output's gradient
to the *first* maximum of its window in row-major order, as ATen's kernel does (both keep the first
of equal values, which bf16 and ReLU zeros make common), so gradients are bit-identical too
(tests/test_models_pooling.py checks both, on tied inputs).

Used only where it is exact and available: a CPU tensor, contiguous NCHW, fp32 or bf16, even height
and width, and a torch built with oneDNN; anything else (CUDA, channels_last, odd sizes) goes to
``F.max_pool2d``. A NaN inside a window: ATen returns it, oneDNN may return the window's largest
number instead; the NaN still reaches the loss through the un-pooled relu feature of the same level,
so a diverged step is still caught by the loss guard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

_FAST_DTYPES = (torch.float32, torch.bfloat16)


def fast_path_applies(x: torch.Tensor) -> bool:
    """Whether ``x`` takes the oneDNN path (exactly equal to ``F.max_pool2d(x, 2, 2)``)."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in _FAST_DTYPES and x.is_contiguous()
            and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and x.numel() > 0 and torch.backends.mkldnn.is_available())


class _OneDNNMaxPool2x2(torch.autograd.Function):
    """oneDNN's max pooling forward (in training mode, so its output keeps the argmax workspace) and
    its backward, which sends each window's gradient to the window's first maximum, as ATen's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        # oneDNN's training forward (which keeps the argmax workspace) runs only for an input that
        # requires grad with grad mode on; inside Function.forward grad mode is off.
        with torch.enable_grad():
            x_dnn = x.detach().to_mkldnn().requires_grad_()
            pooled_dnn = torch.mkldnn_max_pool2d(x_dnn, [2, 2], [2, 2])
        ctx.dnn = (x_dnn, pooled_dnn)
        return pooled_dnn.detach().to_dense()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x_dnn, pooled_dnn = ctx.dnn
        grad_dnn = grad.contiguous().to_mkldnn()
        return torch.ops.aten.mkldnn_max_pool2d_backward(grad_dnn, pooled_dnn, x_dnn, [2, 2], [2, 2], [0, 0], [1, 1], False).to_dense()


def _pool_dense(x: torch.Tensor) -> torch.Tensor:
    """oneDNN's inference forward (no workspace) for a tensor that needs no gradient."""
    return torch.mkldnn_max_pool2d(x.to_mkldnn(), [2, 2], [2, 2]).to_dense()


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, kernel_size=2, stride=2)``, through oneDNN where that is exact (see the module doc)."""
    if not fast_path_applies(x):
        return F.max_pool2d(x, kernel_size=2, stride=2)
    if torch.is_grad_enabled() and x.requires_grad:
        return _OneDNNMaxPool2x2.apply(x)
    return _pool_dense(x)


class MaxPool2x2(nn.Module):
    """``nn.MaxPool2d(kernel_size=2, stride=2)`` with the fast CPU path; no parameters, so a module
    list that had ``nn.MaxPool2d`` at this index loads the same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_2x2(x)

    def extra_repr(self) -> str:
        return "kernel_size=2, stride=2"
