"""lwgan.models.pooling: the oneDNN 2x2 max pool equals F.max_pool2d bit for bit, ties included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lwgan.models.backbones import build_vgg19
from lwgan.models.pooling import MaxPool2x2, fast_path_applies, max_pool_2x2

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _tied(shape, dtype, seed=0):
    """ReLU'd, rounded values: most windows hold equal maxima (zeros, and equal small integers)."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(*shape, generator=g) * 1.5).round().to(dtype)


def _pool_and_grad(pool, x, grad):
    leaf = x.clone().requires_grad_()
    out = pool(leaf)
    out.backward(grad)
    return out.detach(), leaf.grad


@needs_onednn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 8, 16, 12), (1, 3, 2, 2), (3, 16, 8, 8)])
@pytest.mark.parametrize("data", ["tied", "normal"])
def test_values_and_gradients_equal_aten(dtype, shape, data):
    x = _tied(shape, dtype) if data == "tied" else torch.randn(*shape).to(dtype)
    assert fast_path_applies(x)
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).to(dtype)
    want_out, want_grad = _pool_and_grad(lambda t: F.max_pool2d(t, 2, 2), x, grad)
    got_out, got_grad = _pool_and_grad(max_pool_2x2, x, grad)
    assert got_out.dtype == dtype and got_grad.dtype == dtype
    assert torch.equal(got_out, want_out)
    assert torch.equal(got_grad, want_grad)


@needs_onednn
def test_ties_send_the_gradient_to_the_first_maximum_only():
    # One window, all four equal: ATen (and so this) gives the whole gradient to position (0, 0).
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    max_pool_2x2(x).backward(torch.full((1, 1, 1, 1), 3.0))
    assert x.grad.tolist() == [[[[3.0, 0.0], [0.0, 0.0]]]]
    # Equal maxima at (0, 1) and (1, 0): the first in row-major order, (0, 1), takes it.
    y = torch.tensor([[[[0.0, 2.0], [2.0, 1.0]]]], requires_grad=True)
    max_pool_2x2(y).backward(torch.ones(1, 1, 1, 1))
    assert y.grad.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


@needs_onednn
def test_no_grad_path_and_inputs_that_need_no_gradient():
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2, 2))
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2, 2))  # grad mode on, x needs none


def test_other_inputs_take_aten_and_match_it():
    odd = torch.randn(1, 2, 5, 7)  # floor mode drops the last row and column
    cl = torch.randn(1, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    half = torch.randn(1, 2, 4, 4).half()
    for x in (odd, cl, half):
        assert not fast_path_applies(x)
        assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2, 2))
    with pytest.raises(RuntimeError):  # same errors as ATen for a window that does not fit
        max_pool_2x2(torch.randn(1, 1, 1, 1))


def test_vgg19_pools_through_it_and_loads_a_torchvision_layout():
    vgg, _ = build_vgg19(None)
    pools = [m for m in vgg.features if isinstance(m, MaxPool2x2)]
    assert [i for i, m in enumerate(vgg.features) if isinstance(m, MaxPool2x2)] == [4, 9, 18, 27]
    assert len(pools) == 4 and not any(isinstance(m, torch.nn.MaxPool2d) for m in vgg.features)
    vgg.load_state_dict(vgg.state_dict())  # no parameters added or renamed by the pools


@needs_onednn
def test_vgg19_features_and_input_gradient_unchanged_by_the_fast_pool(monkeypatch):
    torch.manual_seed(0)
    vgg, _ = build_vgg19(None)
    vgg = vgg.to(torch.bfloat16)
    image = (torch.rand(2, 3, 32, 32) * 2 - 1).to(torch.bfloat16)

    def run():
        x = image.clone().requires_grad_()
        feats = vgg(x)
        sum(f.float().abs().mean() for f in feats).backward()
        return [f.detach() for f in feats], x.grad

    fast_feats, fast_grad = run()
    monkeypatch.setattr("lwgan.models.pooling.fast_path_applies", lambda x: False)
    aten_feats, aten_grad = run()
    assert all(torch.equal(a, b) for a, b in zip(fast_feats, aten_feats))
    assert torch.equal(fast_grad, aten_grad)
