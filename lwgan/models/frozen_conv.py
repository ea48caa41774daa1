"""Frozen 3x3 convolutions with their weights packed once for oneDNN: the wide layers of the frozen
backbones (VGG19's and SphereFace's convolutions with 256 or 512 input channels) on the CPU at bf16.

Why: PyTorch's eager CPU convolution hands oneDNN the plain (out, in, 3, 3) weight on every call, and
oneDNN copies it into its blocked layout each time: for a frozen backbone twice a layer and step (the
forward, and the backward to the image), 4.7 MB for each 512x512x3x3 kernel. A frozen weight never
changes, so here it is packed once, for the forward and for the backward to the input
(BENCHMARKS.md, "Frozen backbones' weights packed once"; benchmarks/frozen_conv.py).

How: for a stride-1 convolution with "same" padding the gradient with respect to the input is itself
a forward convolution, of the output's gradient with the kernel transposed (in <-> out channels) and
flipped (rows and columns reversed). Both kernels are packed once (``mkldnn_reorder_conv2d_weight``)
and both directions run through oneDNN's forward convolution with a packed weight
(``mkldnn::_convolution_pointwise``, the op PyTorch's own CPU compiler calls). No weight gradient is
computed: the path is taken only for a weight (and bias) that needs none.

The same sums through other kernels: values and input gradients agree with ``F.conv2d``'s to bf16's
rounding, not bit for bit (tests/test_models_frozen_conv.py). Each sample's output depends on that
sample only, bit for bit (the target features are computed one frame at a time and must equal the
rows of a batch), and a run takes one path throughout, for the target's features as for the output's.
Its outputs come back channels_last (oneDNN's layout for these kernels); the next packed layer takes
them as they are.

Used only where it measured faster: a CPU tensor, bf16 (autocast's or the weight's own), a 3x3
stride-1 convolution with padding 1, no dilation or groups, at least ``MIN_IN_CHANNELS`` input
channels, a frozen weight and a torch with oneDNN and these two ops. Anything else is ``nn.Conv2d``.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lwgan.fingerprint import autocast_dtype

# Below 256 input channels (VGG19's 64- and 128-channel layers at 64-32 px) the packed path measured
# slower with the NCHW inputs those layers get (it converts them to channels_last first).
MIN_IN_CHANNELS = 256
_ONES = [1, 1]


@functools.cache
def packed_ops_available() -> bool:
    """Whether this torch has oneDNN and the two ops the packed path calls (private ones: checked once, not assumed)."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight")
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def _pack(weight: torch.Tensor, input_shape: list[int]) -> torch.Tensor:
    return torch._C._nn.mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), _ONES, _ONES, _ONES, 1, input_shape)


def _conv(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, _ONES, _ONES, _ONES, 1, "none", [], "")


class _Packs:
    """One weight's forward kernel and input-gradient kernel (transposed and flipped), packed for
    inputs of (C, H, W). The batch size does not matter: a pack made for one batch size gives the
    same bits for any other (tests/test_models_frozen_conv.py)."""

    def __init__(self, weight: torch.Tensor, chw: tuple[int, int, int]):
        _, h, w = chw
        out_ch, in_ch = weight.shape[:2]
        flipped_t = weight.detach().transpose(0, 1).flip(2, 3).contiguous()  # (in, out, 3, 3)
        self.forward = _pack(weight.detach(), [1, in_ch, h, w])
        self.input_grad = _pack(flipped_t, [1, out_ch, h, w])


class _PackedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, packs: _Packs, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.packs = packs
        return _conv(x, packs.forward, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        if not (grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last)):
            grad = grad.contiguous()
        return _conv(grad, ctx.packs.input_grad, None), None, None


def _autocast_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as autocast hands it to conv2d (the packed op is not one autocast knows)."""
    dtype = autocast_dtype("cpu") if x.device.type == "cpu" else None
    return x if dtype is None else x.to(dtype)


class FrozenConv2d(nn.Conv2d):
    """``nn.Conv2d`` (the same parameters and state-dict names) that takes the packed path where it
    applies (see the module doc). The packs are made at the first call and again when the weight
    changes (its version counter or storage), e.g. after ``load_state_dict``; they are not part of the
    state dict, a copy or a pickle."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._packs: tuple[tuple, _Packs] | None = None

    def _layer_packable(self) -> bool:
        """What the packed path needs of the layer itself (checked before anything is done to the input)."""
        w, b = self.weight, self.bias
        return (self.in_channels >= MIN_IN_CHANNELS and w.dtype == torch.bfloat16 and w.device.type == "cpu"
                and not w.requires_grad and (b is None or not b.requires_grad)
                and self.kernel_size == (3, 3) and self.stride == (1, 1) and self.padding == (1, 1)
                and self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"
                and packed_ops_available())

    @staticmethod
    def _input_packable(x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dim() == 4 and x.dtype == torch.bfloat16
                and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)))

    def packed_path_applies(self, x: torch.Tensor) -> bool:
        """Whether ``forward`` computes ``x`` (as autocast would hand it over) through the packs."""
        return self._layer_packable() and self._input_packable(x)

    def _current_packs(self, chw: tuple[int, int, int]) -> _Packs:
        w = self.weight  # the bias is not packed: each call passes it as it is
        key = (chw, w._version, w.data_ptr())
        if self._packs is None or self._packs[0] != key:
            self._packs = (key, _Packs(w, chw))
        return self._packs[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._layer_packable():  # most layers: no input cast, nothing else to look at
            return super().forward(x)
        cast = _autocast_input(x)
        if not self._input_packable(cast):
            return super().forward(x)
        packs = self._current_packs(tuple(cast.shape[1:]))
        return _PackedConv.apply(cast, packs, None if self.bias is None else self.bias.detach())

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_packs"] = None  # oneDNN tensors; made again at the next call
        return state


__all__ = ["FrozenConv2d", "MIN_IN_CHANNELS", "packed_ops_available"]
