"""Generator, Liquid Warping Block and discriminator: shapes, ranges, information flow, init, spectral norm."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from lwgan.config import TrainConfig
from lwgan.models import Discriminator, Generator, count_parameters
from lwgan.models.layers import conv_modules, effective_weight_matrix
from lwgan.models.lwb import OFF_BODY, lwb_fuse, resize_flow, warp_features


def model_cfg(**flat):
    return TrainConfig.from_flat(flat).model


TINY = dict(image_size=64, conv_dim=4, n_res_blocks=2, ndf=4, d_layers=3)


def identity_flow(b, h, w):
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return torch.stack([xs, ys], dim=-1).expand(b, h, w, 2).clone()


def inputs(b, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    bg = torch.rand(b, 4, size, size, generator=g) * 2 - 1
    src = torch.rand(b, 6, size, size, generator=g) * 2 - 1
    tsf = torch.rand(b, 6, size, size, generator=g) * 2 - 1
    return bg, src, tsf


def body_flow(b, size):
    """Identity flow on a square 'body' (edges off the coarse sampling grids), -2 elsewhere (as the renderer's T)."""
    flow = identity_flow(b, size, size)
    off = torch.ones(size, size, dtype=torch.bool)
    lo, hi = 5 * size // 32, 27 * size // 32
    off[lo:hi, lo:hi] = False
    flow[:, off] = OFF_BODY
    return flow


# -- generator ------------------------------------------------------------------------


def test_generator_shapes_and_ranges_at_64px():
    torch.manual_seed(0)
    G = Generator(model_cfg(**TINY))
    bg, src, tsf = inputs(2, 64)
    out = G(bg, src, tsf, body_flow(2, 64))
    for name in ("bg", "src_color", "src_image", "tsf_color", "tsf_image"):
        t = getattr(out, name)
        assert t.shape == (2, 3, 64, 64), name
        assert t.min() >= -1 and t.max() <= 1, name
    for name in ("src_mask", "tsf_mask"):
        t = getattr(out, name)
        assert t.shape == (2, 1, 64, 64)
        assert t.min() >= 0 and t.max() <= 1
    # composition with the background generated from the source
    assert torch.allclose(out.tsf_image, out.tsf_mask * out.bg + (1 - out.tsf_mask) * out.tsf_color)
    assert torch.allclose(out.src_image, out.src_mask * out.bg + (1 - out.src_mask) * out.src_color)


def test_generator_shape_at_256px_batch_1():
    G = Generator(model_cfg(image_size=256, conv_dim=4, n_res_blocks=1))
    bg, src, tsf = inputs(1, 256)
    with torch.no_grad():
        out = G(bg, src, tsf, identity_flow(1, 256, 256))
    assert out.tsf_image.shape == (1, 3, 256, 256) and out.tsf_mask.shape == (1, 1, 256, 256)


def test_widths_scale_with_conv_dim_and_reference_parameter_counts():
    ref = model_cfg()  # 256 px, conv_dim 64, 6 residual blocks, ndf 64, 4 layers
    G, D = Generator(ref), Discriminator(ref)
    # By hand from the reference's layer list (bias-free convs, affine InstanceNorm = 2 params per channel):
    c, k3, k7 = 64, 9, 49

    def encoder(c_in):
        n, d = c_in * c * k7 + 2 * c, c
        for _ in range(3):
            n, d = n + d * 2 * d * k3 + 2 * 2 * d, 2 * d
        return n + 6 * 2 * (d * d * k3 + 2 * d), d  # + six residual blocks at 1/8

    bg, d = encoder(4)
    for _ in range(3):
        bg, d = bg + d * (d // 2) * k3 + 2 * (d // 2), d // 2
    bg += d * 3 * k7
    unet, d = encoder(6)
    for _ in range(3):  # transposed conv + skip-fusing conv, both d -> d/2
        unet, d = unet + 2 * (d * (d // 2) * k3 + 2 * (d // 2)), d // 2
    unet += d * 3 * k7 + d * 1 * k7
    assert count_parameters(G.bg_stream) == bg == 31_445_184
    assert count_parameters(G.src_stream) == count_parameters(G.tsf_stream) == unet == 33_003_776
    assert count_parameters(G) == bg + 2 * unet == 97_452_736
    # Discriminator by hand: 4x4 convs with bias, 6->64->128->256->512 (stride 2), 512->512, 512->1.
    chans = [(6, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 1)]
    assert count_parameters(D) == sum(i * o * 16 + o for i, o in chans) == 6_962_625
    half = Generator(model_cfg(conv_dim=32))
    # every conv is (c_in*c_out) ~ conv_dim^2 except the 4/6-channel inputs and 3/1-channel heads
    assert 0.24 < count_parameters(half) / count_parameters(G) < 0.26
    assert G.src_stream.encoders[3][0].out_channels == 512 and half.src_stream.encoders[3][0].out_channels == 256


def test_source_stream_never_sees_transfer_stream():
    torch.manual_seed(0)
    G = Generator(model_cfg(**TINY)).eval()
    bg, src, tsf = inputs(1, 64)
    flow = identity_flow(1, 64, 64)
    a = G(bg, src, tsf, flow)
    b = G(bg, src, tsf.flip(-1), flow)
    assert torch.equal(a.src_color, b.src_color) and torch.equal(a.src_mask, b.src_mask)
    assert not torch.allclose(a.tsf_color, b.tsf_color)


def test_transfer_stream_gets_source_features_only_through_the_flow():
    torch.manual_seed(0)
    G = Generator(model_cfg(**TINY)).eval()
    bg, src, tsf = inputs(1, 64)
    src2 = inputs(1, 64, seed=1)[1]
    # identity flow: the source features reach the transfer stream
    flow = identity_flow(1, 64, 64)
    assert not torch.allclose(G(bg, src, tsf, flow).tsf_color, G(bg, src2, tsf, flow).tsf_color)
    # flow all off-body (-2): every warp samples outside the image -> zeros -> no source influence
    off = torch.full((1, 64, 64, 2), OFF_BODY)
    assert torch.equal(G(bg, src, tsf, off).tsf_color, G(bg, src2, tsf, off).tsf_color)


# -- Liquid Warping Block -------------------------------------------------------------


def test_identity_flow_warp_is_exact_and_zero_source_leaves_transfer_unchanged():
    torch.manual_seed(0)
    src = torch.randn(2, 5, 8, 12)
    tsf = torch.randn(2, 5, 8, 12)
    flow = resize_flow(identity_flow(2, 32, 48), (8, 12), "reference")
    assert torch.allclose(flow, identity_flow(2, 8, 12), atol=1e-6)
    assert torch.allclose(warp_features(src, flow), src, atol=1e-5)
    assert torch.allclose(lwb_fuse(tsf, src, flow), tsf + src, atol=1e-5)
    assert torch.equal(lwb_fuse(tsf, torch.zeros_like(src), flow), tsf)


def test_flow_resize_reference_mixes_off_body_value_masked_does_not():
    flow = body_flow(1, 32)
    ref = resize_flow(flow, (8, 8), "reference")
    masked = resize_flow(flow, (8, 8), "masked")
    # reference: bilinear resize of a constant -2 region stays -2, but body edges get mixtures
    mixed = (ref != OFF_BODY) & (ref < -1.0 - 1e-3)  # neither a body location (>= -1) nor exactly -2
    assert mixed.any()
    # masked: every value is either exactly -2 or a proper body location in [-1, 1]
    off = (masked == OFF_BODY).all(-1)
    assert off.any() and (~off).any()
    assert (masked[~off].abs() <= 1 + 1e-6).all()
    # away from edges both modes agree
    assert torch.allclose(ref[0, 4, 4], masked[0, 4, 4])
    assert torch.equal(resize_flow(flow, (32, 32), "reference"), flow)
    with pytest.raises(ValueError, match="lwb_flow_resize"):
        resize_flow(flow, (8, 8), "nearest")


def test_generator_uses_the_configured_flow_resize():
    torch.manual_seed(0)
    cfg_ref = model_cfg(**TINY)
    G_ref = Generator(cfg_ref).eval()
    G_masked = Generator(model_cfg(**TINY, lwb_flow_resize="masked")).eval()
    G_masked.load_state_dict(G_ref.state_dict())
    bg, src, tsf = inputs(1, 64)
    flow = body_flow(1, 64)
    assert not torch.allclose(G_ref(bg, src, tsf, flow).tsf_color, G_masked(bg, src, tsf, flow).tsf_color)
    flat = identity_flow(1, 64, 64)  # no off-body pixels: both resizes agree
    assert torch.allclose(G_ref(bg, src, tsf, flat).tsf_color, G_masked(bg, src, tsf, flat).tsf_color, atol=1e-5)


# -- discriminator --------------------------------------------------------------------


def test_discriminator_patch_map_is_14x14_at_256px():
    D = Discriminator(model_cfg(image_size=256, ndf=8, d_layers=4))
    with torch.no_grad():
        out = D(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, 14, 14)


def _measured_receptive_field(D, size):
    """Pixels whose input changes the centre output: gradient of one output w.r.t. the input (no norm,
    so nothing couples distant pixels; weights all positive, so no gradient cancels by chance)."""
    D = D.double()
    with torch.no_grad():
        for m in conv_modules(D):
            m.weight.fill_(0.01)
    x = torch.zeros(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    out = D(x, torch.zeros(1, 3, size, size, dtype=torch.float64))
    c = out.shape[-1] // 2
    out[0, 0, c, c].backward()
    touched = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(touched.any(1)).squeeze(1), torch.nonzero(touched.any(0)).squeeze(1)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("profile, size, n_stride, field", [("paper", 256, 4, 142), (None, 128, 3, 70), ("small", 64, 2, 34), ("tiny", 32, 1, 16)])
def test_discriminator_keeps_the_reference_patch_map_and_field_ratio_at_every_size(profile, size, n_stride, field):
    from lwgan.config import d_stride_layers
    from lwgan.models.discriminator import patch_map_size, receptive_field
    from lwgan.profiles import resolve_config

    cfg = resolve_config(profile).model if profile else model_cfg(image_size=size)
    assert cfg.image_size == size and cfg.d_layers is None
    assert d_stride_layers(cfg) == n_stride and patch_map_size(size, n_stride) == 14
    assert receptive_field(n_stride) == field and 0.49 < field / size < 0.56  # reference: 142 / 256 = 0.555
    D = Discriminator(dataclasses.replace(cfg, ndf=2, d_norm="none"))
    assert [c.stride[0] for c in conv_modules(D)] == [2] * n_stride + [1, 1]
    with torch.no_grad():
        assert D(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)).shape == (1, 1, 14, 14)
    # measured: the centre output sees a field x field window (not clipped by the border at these sizes)
    assert _measured_receptive_field(D, size) == (field, field)


def test_explicit_d_layers_overrides_the_scaling():
    from lwgan.config import d_stride_layers

    assert d_stride_layers(model_cfg(image_size=64, d_layers=4)) == 4
    assert d_stride_layers(model_cfg(image_size=96)) == 3  # round(log2(6)) -> a 10x10 map


@pytest.mark.parametrize("norm, n_norms, bias", [("instance", 3, True), ("batch", 3, False), ("none", 0, True)])
def test_discriminator_layout_per_norm(norm, n_norms, bias):
    # dataclasses.replace: config.from_flat reads the string "none" as null (reported to the config owner)
    D = Discriminator(dataclasses.replace(model_cfg(image_size=64, ndf=4, d_layers=3), d_norm=norm))
    convs = conv_modules(D)
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert all((c.bias is not None) == bias for c in convs[1:4])
    norms = [m for m in D.modules() if isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d))]
    assert len(norms) == n_norms
    assert all(not m.affine for m in norms if isinstance(m, torch.nn.InstanceNorm2d))
    assert D(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_reference_init():
    torch.manual_seed(0)
    G = Generator(model_cfg(conv_dim=16, n_res_blocks=2))
    D = Discriminator(model_cfg(ndf=16))
    weights = torch.cat([c.weight.flatten() for c in conv_modules(G) + conv_modules(D)])
    assert abs(weights.mean().item()) < 1e-3
    assert abs(weights.std().item() - 0.02) < 1e-3
    assert all(c.bias is None or torch.all(c.bias == 0) for c in conv_modules(D))
    assert all(c.bias is None for c in conv_modules(G))  # bias-free generator


# -- spectral norm --------------------------------------------------------------------


def _sigma(conv):
    return torch.linalg.matrix_norm(effective_weight_matrix(conv).detach(), ord=2).item()


def test_spectral_norm_wraps_every_conv_of_D_and_normalises_it():
    torch.manual_seed(0)
    D = Discriminator(model_cfg(image_size=64, ndf=8, d_layers=3), spectral_norm=True).train()
    convs = conv_modules(D)
    assert all(hasattr(c, "parametrizations") and "weight" in c.parametrizations for c in convs)
    x, c = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for _ in range(10):  # power iterations happen in training-mode forwards
        D(x, c)
    sigmas = [_sigma(conv) for conv in convs]
    assert all(abs(s - 1) < 0.05 for s in sigmas), sigmas
    raw = [torch.linalg.matrix_norm(conv.parametrizations.weight.original.reshape(conv.out_channels, -1), ord=2).item() for conv in convs]
    assert not all(abs(s - 1) < 0.05 for s in raw)  # the raw weights are not normalised


def test_spectral_norm_on_G_covers_transposed_convs():
    torch.manual_seed(0)
    G = Generator(model_cfg(**TINY), spectral_norm=True).train()
    bg, src, tsf = inputs(1, 64)
    for _ in range(3):
        G(bg, src, tsf, identity_flow(1, 64, 64))
    convs = conv_modules(G)
    assert any(isinstance(c, torch.nn.ConvTranspose2d) for c in convs)
    sigmas = [_sigma(c) for c in convs]
    assert all(abs(s - 1) < 0.05 for s in sigmas), sigmas
    assert not any(hasattr(c, "parametrizations") for c in conv_modules(Generator(model_cfg(**TINY))))


def test_count_parameters_excludes_spectral_norm_buffers():
    cfg = model_cfg(image_size=64, ndf=8, d_layers=3)
    assert count_parameters(Discriminator(cfg, spectral_norm=True)) == count_parameters(Discriminator(cfg))
    assert math.isclose(count_parameters(Discriminator(cfg), trainable_only=True), count_parameters(Discriminator(cfg)))


def test_warp_matches_grid_sample_align_corners_true():
    torch.manual_seed(0)
    feats = torch.randn(1, 3, 6, 6)
    flow = torch.rand(1, 6, 6, 2) * 2 - 1
    assert torch.allclose(warp_features(feats, flow), F.grid_sample(feats, flow, align_corners=True))
    assert not torch.allclose(warp_features(feats, flow), F.grid_sample(feats, flow, align_corners=False))


@pytest.mark.parametrize("spectral", [False, True])
def test_merged_heads_equal_the_two_head_modules_values_and_gradients(spectral):
    """ResUnetStream.heads runs colour and mask heads as one convolution: same outputs and gradients
    (to the input and to each head's own weight) as calling the two modules (gradients to float
    rounding: on the CPU the merged convolution runs as column phases, lwgan/models/narrow_conv.py)."""
    from lwgan.models.generator import ResUnetStream
    from lwgan.models.layers import apply_spectral_norm

    torch.manual_seed(0)
    stream = ResUnetStream(6, 8, 1)
    if spectral:
        apply_spectral_norm(stream)
    stream.eval()  # fixed spectral-norm estimate, so both paths see the same normalised weights
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    weights = [stream.color_head[0], stream.mask_head[0]]
    params = [m.parametrizations.weight.original if spectral else m.weight for m in weights]
    seeds = torch.randn(2, 3, 16, 16), torch.randn(2, 1, 16, 16)

    def grads(color, mask):
        loss = (color * seeds[0]).sum() + (mask * seeds[1]).sum()
        return torch.autograd.grad(loss, [x, *params])

    color, mask = stream.heads(x)
    ref_color, ref_mask = stream.color_head(x), stream.mask_head(x)
    assert color.shape == (2, 3, 16, 16) and mask.shape == (2, 1, 16, 16)
    assert torch.allclose(color, ref_color, atol=1e-6) and torch.allclose(mask, ref_mask, atol=1e-6)
    assert float(mask.detach().min()) >= 0 and float(mask.detach().max()) <= 1 and float(color.detach().abs().max()) <= 1
    for merged, separate in zip(grads(color, mask), grads(ref_color, ref_mask), strict=True):
        assert float((merged - separate).abs().max()) <= 1e-6 * float(separate.abs().max())


def test_generator_instance_norm_is_torch_instance_norm():
    """lwgan's InstanceNorm2d (group_norm, one group per channel) = nn.InstanceNorm2d(affine=True):
    values and gradients, parameter names; a state dict of either loads into the other."""
    from lwgan.models.layers import InstanceNorm2d

    torch.manual_seed(0)
    ours, ref = InstanceNorm2d(6), torch.nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    x = (torch.randn(3, 6, 9, 7) * 3 + 1).requires_grad_()
    seed = torch.randn(3, 6, 9, 7)
    a, b = ours(x), ref(x)
    assert torch.allclose(a, b, atol=1e-5)
    # each (sample, channel) plane is normalised on its own: mean = bias, std = weight
    planes = ((a - ours.bias[None, :, None, None]) / ours.weight[None, :, None, None]).flatten(2)
    assert torch.allclose(planes.mean(-1), torch.zeros(3, 6), atol=1e-5)
    assert torch.allclose(planes.var(-1, unbiased=False), torch.ones(3, 6), atol=1e-3)
    ga = torch.autograd.grad((a * seed).sum(), [x, ours.weight, ours.bias])
    gb = torch.autograd.grad((b * seed).sum(), [x, ref.weight, ref.bias])
    for u, v in zip(ga, gb, strict=True):
        assert torch.allclose(u, v, atol=1e-4)
    G = Generator(TrainConfig.from_flat({"image_size": 32, "conv_dim": 4, "n_res_blocks": 1}).model)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in G.modules())
    assert sum(isinstance(m, InstanceNorm2d) for m in G.modules()) > 0
