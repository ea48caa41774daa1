"""lwgan.models.frozen_conv: frozen 3x3 convolutions through weights packed once for oneDNN.

The packed path is checked against an independent reference (``F.conv2d`` in fp32 on the same bf16
values, whose input gradient autograd computes), for its values and its input gradient (the kernel
transposed and flipped: a wrong transpose or flip gives gradients unrelated to the reference). Where
the path does not apply, the module must be ``nn.Conv2d`` bit for bit.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lwgan.models import frozen_conv
from lwgan.models.backbones import build_sphereface, build_vgg19
from lwgan.models.frozen_conv import MIN_IN_CHANNELS, FrozenConv2d, packed_ops_available

pytestmark = pytest.mark.skipif(not packed_ops_available(), reason="this torch has no oneDNN packed convolution")


def _frozen(in_ch: int, out_ch: int, bias: bool = True, stride: int = 1, seed: int = 0) -> FrozenConv2d:
    torch.manual_seed(seed)
    conv = FrozenConv2d(in_ch, out_ch, 3, stride, 1, bias=bias)
    with torch.no_grad():
        conv.weight.normal_(0, 0.03)
        if bias:
            conv.bias.normal_(0, 0.1)
    conv.requires_grad_(False)
    return conv.to(torch.bfloat16)


def _reference(conv: nn.Conv2d, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 F.conv2d of the same bf16 values, and autograd's input gradient for ``grad``."""
    xr = x.float().detach().requires_grad_()
    bias = None if conv.bias is None else conv.bias.float()
    y = F.conv2d(xr, conv.weight.float(), bias, conv.stride, conv.padding)
    y.backward(grad.float())
    return y.detach(), xr.grad


def _norm_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.float() - ref).norm() / ref.norm())


def _run(conv: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().clone().requires_grad_()
    y = conv(xr)
    y.backward(grad.to(y.dtype))
    return y.detach(), xr.grad


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.float() - ref).abs().max() / ref.abs().max())


SHAPES = [  # (batch, in, out, H, W): the small profile's packed layers (VGG19 at 64 px, SphereFace at 56x48)
    (4, 256, 256, 16, 16),
    (4, 256, 512, 8, 8),
    (4, 512, 512, 8, 8),
    (4, 512, 512, 4, 3),
    (2, 256, 256, 7, 6),
]


@pytest.mark.parametrize("n,cin,cout,h,w", SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_path_matches_fp32_conv_values_and_input_gradient(n, cin, cout, h, w, layout, bias):
    torch.set_num_threads(1)
    conv = _frozen(cin, cout, bias=bias)
    x = torch.randn(n, cin, h, w).bfloat16()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(n, cout, h, w).bfloat16()
    assert conv.packed_path_applies(x)
    y, dx = _run(conv, x, grad)
    assert conv._packs is not None  # the packed path ran
    ref_y, ref_dx = _reference(conv, x, grad)
    # bf16 keeps 8 significant bits: the sums agree with fp32's to its rounding (~0.4% of the largest value)
    assert _rel_err(y, ref_y) < 1e-2
    assert _rel_err(dx, ref_dx) < 1e-2
    # ... and as closely as the plain bf16 convolution it replaces does
    plain_y, plain_dx = _run(lambda t: F.conv2d(t, conv.weight, conv.bias, 1, 1), x, grad)
    assert _rel_err(y, ref_y) <= 2 * _rel_err(plain_y, ref_y) + 1e-3
    assert _rel_err(dx, ref_dx) <= 2 * _rel_err(plain_dx, ref_dx) + 1e-3
    assert y.dtype == dx.dtype == torch.bfloat16


def test_each_sample_is_computed_alone_bit_for_bit():
    """The target features are computed one frame at a time and must equal the rows of a batch."""
    conv = _frozen(512, 512)
    x = torch.randn(4, 512, 8, 8).bfloat16()
    grad = torch.randn(4, 512, 8, 8).bfloat16()
    y, dx = _run(conv, x, grad)
    for i in range(4):
        yi, dxi = _run(conv, x[i:i + 1], grad[i:i + 1])
        assert torch.equal(yi, y[i:i + 1]) and torch.equal(dxi, dx[i:i + 1])


def test_under_autocast_an_fp32_input_takes_the_packed_path_as_conv2d_would():
    conv = _frozen(256, 256)
    x = torch.randn(2, 256, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        plain = F.conv2d(x, conv.weight, conv.bias, 1, 1)
    assert conv._packs is not None and y.dtype == plain.dtype == torch.bfloat16
    assert _rel_err(y, plain.float()) < 1e-2


@pytest.mark.parametrize("case", ["fp32 weight", "weight needs grad", "bias needs grad", "narrow input", "stride 2", "no oneDNN ops"])
def test_where_the_path_does_not_apply_it_is_conv2d_bit_for_bit(case, monkeypatch):
    cin = MIN_IN_CHANNELS // 2 if case == "narrow input" else MIN_IN_CHANNELS
    conv = _frozen(cin, 64, stride=2 if case == "stride 2" else 1)
    dtype = torch.bfloat16
    if case == "fp32 weight":
        conv, dtype = conv.float(), torch.float32
    elif case == "weight needs grad":
        conv.weight.requires_grad_(True)
    elif case == "bias needs grad":
        conv.bias.requires_grad_(True)
    elif case == "no oneDNN ops":
        monkeypatch.setattr(frozen_conv, "packed_ops_available", lambda: False)
    x = torch.randn(2, cin, 8, 8, dtype=dtype)
    assert not conv.packed_path_applies(x)
    y = conv(x)
    assert conv._packs is None
    assert torch.equal(y, F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding))


def test_packs_follow_a_new_weight():
    conv = _frozen(256, 256)
    x = torch.randn(2, 256, 8, 8).bfloat16()
    before = conv(x)
    other = _frozen(256, 256, seed=1)
    conv.load_state_dict(other.state_dict())
    after = conv(x)
    assert _rel_err(after, F.conv2d(x.float(), other.weight.float(), other.bias.float(), 1, 1)) < 1e-2
    assert not torch.allclose(before, after)
    with torch.no_grad():
        conv.weight.mul_(2)  # in place: the version counter changes
    doubled = conv(x)
    assert _rel_err(doubled, F.conv2d(x.float(), 2 * other.weight.float(), other.bias.float(), 1, 1)) < 1e-2


def test_state_dict_copies_and_pickles_hold_no_packs():
    conv = _frozen(256, 256)
    conv(torch.randn(1, 256, 8, 8).bfloat16())
    assert conv._packs is not None
    assert set(conv.state_dict()) == {"weight", "bias"}  # nn.Conv2d's names: torchvision / sphere20a files load
    for clone in (copy.deepcopy(conv), pickle.loads(pickle.dumps(conv))):
        assert clone._packs is None and torch.equal(clone.weight, conv.weight)
        x = torch.randn(1, 256, 8, 8).bfloat16()
        assert torch.equal(clone(x), conv(x))


def test_frozen_backbones_take_the_packed_path_and_are_as_close_to_fp32_as_plain_convolutions():
    """VGG19 and SphereFace as a bf16 run uses them: every wide stride-1 layer is packed, and the
    features and the gradient to the image are as close to the same networks' fp32 ones as the plain
    bf16 convolutions are (bf16's rounding adds up over 16-20 layers either way)."""
    torch.set_num_threads(1)
    for net, size in ((build_vgg19(None)[0], (64, 64)), (build_sphereface(None, crop=56)[0], (56, 48))):
        reference = copy.deepcopy(net).float()  # fp32 weights: every layer is nn.Conv2d's path
        net = net.to(torch.bfloat16)
        plain = copy.deepcopy(net)
        for m in plain.modules():
            if isinstance(m, FrozenConv2d):
                m.__class__ = nn.Conv2d
        x = torch.rand(2, 3, *size) * 2 - 1
        runs = {}
        for name, model in (("fp32", reference), ("packed", net), ("plain", plain)):
            xr = x.clone().requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "fp32"):
                out = model(xr)
            sum(o.float().square().mean() for o in out).backward()  # smooth: no sign flips at bf16's rounding
            runs[name] = ([o.detach().float() for o in out], xr.grad)
        wide = [m for m in net.modules() if isinstance(m, FrozenConv2d) and m.in_channels >= MIN_IN_CHANNELS and m.stride == (1, 1)]
        assert wide and all(m._packs is not None for m in wide)
        ref_feats, ref_grad = runs["fp32"]
        pairs = [(runs["packed"][0][i], runs["plain"][0][i], ref) for i, ref in enumerate(ref_feats)]
        pairs.append((runs["packed"][1], runs["plain"][1], ref_grad))
        for i, (packed, plain_out, ref) in enumerate(pairs):  # the feature levels, then the image gradient
            err_packed, err_plain = _norm_err(packed, ref), _norm_err(plain_out, ref)
            # the image gradient of either bf16 net is ~14% (in norm) from fp32's: the max pools' argmax moves
            # with bf16's rounding; a wrong kernel transpose or flip would put it ~100% away
            bound = 0.25 if i == len(ref_feats) else 0.05
            assert err_packed < bound and err_packed <= 1.5 * err_plain + 2e-3, (type(net).__name__, i, err_packed, err_plain)
