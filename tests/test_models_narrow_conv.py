"""narrow_conv2d: a few-output-channel convolution through column phases (lwgan/models/narrow_conv.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lwgan.models.narrow_conv import narrow_conv2d, phased_path_applies


@pytest.mark.parametrize("out_ch", [1, 3, 4])
@pytest.mark.parametrize("bf16", [False, True])
def test_forward_is_bit_identical_to_conv2d(out_ch, bf16):
    torch.manual_seed(out_ch)
    x, w = torch.randn(2, 16, 32, 24), torch.randn(out_ch, 16, 7, 7) * 0.05
    assert phased_path_applies(x, w, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        ours, ref = narrow_conv2d(x, w, 3), F.conv2d(x, w, padding=3)
    assert ours.dtype == ref.dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert torch.equal(ours, ref)


def test_columns_land_where_a_hand_computed_shift_puts_them():
    """A kernel that is 1 at (row 2, column 5) and 0 elsewhere outputs the input shifted by (-1, -2):
    out[i, j] = x[i + 2 - 3, j + 5 - 3] (zero outside), computed here without any convolution."""
    x = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).reshape(2, 1, 6, 8)
    w = torch.zeros(2, 1, 7, 7)
    w[0, 0, 2, 5] = 1.0
    w[1, 0, 3, 3] = -2.0  # the centre: -2 x the input
    out = narrow_conv2d(x, w, 3)
    expected = torch.zeros(2, 6, 8)
    expected[:, 1:, :6] = x[:, 0, :5, 2:]
    assert torch.equal(out[:, 0], expected)
    assert torch.equal(out[:, 1], -2 * x[:, 0])


def test_gradients_match_conv2d():
    """fp32: the same sums in another order (to float rounding); bf16 autocast: to bf16's rounding."""
    torch.manual_seed(0)
    x0, w0 = torch.randn(2, 16, 16, 16), torch.randn(4, 16, 7, 7) * 0.05
    seed = torch.randn(2, 4, 16, 16)

    def grads(fn, bf16):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(x, w)
        (out.float() * seed).sum().backward()
        return x.grad, w.grad

    for bf16, rtol in ((False, 1e-5), (True, 1e-2)):
        ours = grads(lambda x, w: narrow_conv2d(x, w, 3), bf16)
        ref = grads(lambda x, w: F.conv2d(x, w, padding=3), bf16)
        for a, b in zip(ours, ref, strict=True):
            assert a.dtype == b.dtype == torch.float32
            scale = float(b.abs().max())
            assert float((a - b).abs().max()) <= rtol * scale, (bf16, float((a - b).abs().max()), scale)


@pytest.mark.parametrize("shape, weight, padding", [
    ((1, 16, 8, 10), (4, 16, 7, 7), 3),  # width not divisible by the phases
    ((1, 16, 8, 8), (5, 16, 7, 7), 3),  # 5 x 4 phases = 20 > one oneDNN block of 16
    ((1, 16, 8, 8), (4, 16, 4, 4), 2),  # even kernel
    ((1, 16, 8, 8), (4, 16, 7, 7), 0),  # not "same" padding
    ((1, 16, 8, 8), (4, 16, 7, 5), 3),  # not square
])
def test_other_convolutions_take_conv2d_with_the_same_result(shape, weight, padding):
    torch.manual_seed(1)
    x, w = torch.randn(shape), torch.randn(weight)
    assert not phased_path_applies(x, w, padding)
    assert torch.equal(narrow_conv2d(x, w, padding), F.conv2d(x, w, padding=padding))


def test_generator_streams_use_it_with_their_modules_weights():
    """The background stream's and the ResUnet streams' heads give what their modules give (forward
    bit for bit), so state dicts, spectral norm and parameter names are unchanged."""
    from lwgan.models.generator import BackgroundStream, ResUnetStream

    torch.manual_seed(0)
    bg = BackgroundStream(4, 8, 1).eval()
    x = torch.randn(2, 4, 16, 16)
    assert torch.equal(bg(x), bg.net(x))
    stream = ResUnetStream(6, 8, 1).eval()
    feats = torch.randn(2, 8, 16, 16)
    color, mask = stream.heads(feats)
    assert torch.equal(color, stream.color_head(feats)) and torch.equal(mask, stream.mask_head(feats))
    assert phased_path_applies(feats, stream.color_head[0].weight, 3)  # so the phases were what ran
