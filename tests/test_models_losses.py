"""Each loss term on hand-computed tensors, and the gradient penalty on functions with a known gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from lwgan.models import losses


def test_d_lsgan_targets_real_1_fake_minus_1_and_one_sided_smoothing():
    d_real = torch.tensor([1.0, 0.0])
    d_fake = torch.tensor([-1.0, 1.0])
    real, fake = losses.d_lsgan_losses(d_real, d_fake)
    assert real.item() == pytest.approx(0.5)  # ((1-1)^2 + (0-1)^2) / 2
    assert fake.item() == pytest.approx(2.0)  # ((-1+1)^2 + (1+1)^2) / 2
    real_s, fake_s = losses.d_lsgan_losses(d_real, d_fake, real_target=0.9)
    assert real_s.item() == pytest.approx((0.1**2 + 0.9**2) / 2)
    assert fake_s.item() == pytest.approx(2.0)  # the fake target does not move


def test_g_lsgan_pushes_scores_to_zero():
    assert losses.g_lsgan_loss(torch.tensor([0.5, -1.0])).item() == pytest.approx((0.25 + 1.0) / 2)
    assert losses.g_lsgan_loss(torch.zeros(3, 1, 4, 4)).item() == 0.0


def test_reconstruction_is_mean_l1():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = -1.0
    assert losses.reconstruction_loss(a, b).item() == pytest.approx((11 * 0.5 + 1.0) / 12)


def test_perceptual_weights_levels_and_detaches_target():
    fake = [torch.ones(1, 2, 2, 2, requires_grad=True), torch.zeros(1, 1, 1, 1, requires_grad=True)]
    real = [torch.zeros(1, 2, 2, 2, requires_grad=True), torch.full((1, 1, 1, 1), 3.0, requires_grad=True)]
    loss = losses.perceptual_loss(fake, real, weights=(0.5, 2.0))
    assert loss.item() == pytest.approx(0.5 * 1.0 + 2.0 * 3.0)
    loss.backward()
    assert real[0].grad is None and real[1].grad is None
    assert fake[0].grad is not None
    assert losses.VGG_LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    with pytest.raises(ValueError):
        losses.perceptual_loss(fake, real)  # 2 levels, 5 default weights


def test_gram_matrix_by_hand():
    feat = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(1, 2, 1, 2)  # channel 0: (1,2), channel 1: (0,3)
    gram = losses.gram_matrix(feat)
    assert torch.equal(gram, torch.tensor([[[5.0, 6.0], [6.0, 9.0]]]))


def test_style_loss_is_mean_abs_gram_difference_over_hw():
    f = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).reshape(1, 2, 1, 2)
    r = torch.zeros(1, 2, 1, 2)
    # |gram| = [[5, 6], [6, 9]] -> mean 6.5, divided by H*W = 2
    assert losses.style_loss([f], [r]).item() == pytest.approx(6.5 / 2)
    assert losses.style_loss([f, f], [f, f]).item() == 0.0


def test_crop_and_resize_equals_per_sample_slice_and_interpolate():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 40, 30)
    boxes = torch.tensor([[2, 5, 20, 33], [0, 0, 30, 40], [10, 12, 11, 13]])  # [x0, y0, x1, y1], last one 1x1
    got = losses.crop_and_resize(images, boxes, (12, 10))
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        ref = F.interpolate(images[i : i + 1, :, y0:y1, x0:x1], size=(12, 10), mode="bilinear", align_corners=True)
        assert torch.allclose(got[i : i + 1], ref, atol=1e-5), i
    # empty / out-of-image boxes are clamped to at least one pixel inside the image
    odd = losses.crop_and_resize(images, torch.tensor([[35, 50, 35, 50]] * 3), (4, 4))
    assert torch.allclose(odd, images[:, :, 39:40, 29:30].expand(-1, -1, 4, 4))


def test_face_loss_crops_the_same_box_and_sums_levels():
    def face_net(x):  # two "levels": the pixels and their mean
        return [x, x.mean(dim=(2, 3))]

    real = torch.zeros(1, 3, 32, 32)
    fake = real.clone()
    fake[:, :, 8:16, 8:16] = 0.5  # differs only inside the head box
    box = torch.tensor([[8, 8, 16, 16]])
    assert losses.face_loss(face_net, fake, real, box).item() == pytest.approx(0.5 + 0.5)
    outside = torch.tensor([[20, 20, 30, 30]])
    assert losses.face_loss(face_net, fake, real, outside).item() == 0.0
    fake.requires_grad_(True)
    losses.face_loss(face_net, fake, real, box).backward()
    assert fake.grad[:, :, 8:16, 8:16].abs().sum() > 0 and fake.grad[:, :, 20:, 20:].abs().sum() == 0


def test_mask_loss_is_bce_with_background_as_one():
    masks = torch.full((2, 1, 2, 2), 0.5)
    targets = torch.ones(2, 1, 2, 2)
    assert losses.mask_loss(masks, targets).item() == pytest.approx(math.log(2))
    masks = torch.tensor([0.9, 0.2]).reshape(1, 1, 1, 2)
    targets = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    assert losses.mask_loss(masks, targets).item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)


def test_mask_smooth_is_total_variation():
    m = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]).reshape(1, 1, 2, 3)
    # dx: |1-0|,|1-1|,|0-0|,|1-0| -> mean 0.5 ; dy: |0-0|,|0-1|,|1-1| -> mean 1/3
    assert losses.mask_smooth_loss(m).item() == pytest.approx(0.5 + 1 / 3)
    assert losses.mask_smooth_loss(torch.full((2, 1, 4, 4), 0.3)).item() == 0.0


def _linear_d(w, v):
    """D(x, cond) = <w, x> + <v, cond> per sample: grad_x = w, so GP = (||w|| - 1)^2 exactly."""

    def d(x, cond):
        return (x * w).flatten(1).sum(1) + (cond * v).flatten(1).sum(1)

    return d


def test_gradient_penalty_on_a_linear_discriminator():
    torch.manual_seed(0)
    real, fake, cond = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    w = torch.randn(1, 3, 5, 5)
    v = torch.randn(1, 3, 5, 5) * 10  # the cond's weight does not enter the penalty
    gp = losses.gradient_penalty(_linear_d(w, v), real, fake, cond)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    unit = w / w.norm()
    assert losses.gradient_penalty(_linear_d(unit, v), real, fake, cond).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_trains_the_discriminator_weights():
    torch.manual_seed(0)
    real, fake, cond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    w = (torch.randn(1, 3, 4, 4) * 2).requires_grad_(True)
    gp = losses.gradient_penalty(_linear_d(w, torch.zeros(1, 3, 4, 4)), real, fake, cond)
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    n = w.detach().norm()
    assert torch.allclose(w.grad, 2 * (n - 1) * w.detach() / n, atol=1e-5)


def test_gradient_penalty_interpolates_between_real_and_fake():
    seen = []

    def d(x, cond):
        seen.append(x.detach())
        return (x**2).flatten(1).sum(1)  # grad = 2x

    real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    gp = losses.gradient_penalty(d, real, fake, torch.zeros(3, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    x = seen[0]
    eps = x[:, 0, 0, 0]
    assert torch.all((eps >= 0) & (eps <= 1)) and torch.allclose(x, eps.reshape(3, 1, 1, 1).expand_as(x))
    # ||2x|| = 2 * eps * 2 (four pixels of value eps)
    assert gp.item() == pytest.approx(((4 * eps - 1) ** 2).mean().item(), rel=1e-5)


def _autocast_l1(fake, real):
    """What the losses computed before feature_l1: F.l1_loss under CPU bf16 autocast (float32 maths)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return F.l1_loss(fake, real.detach())


@pytest.mark.parametrize("shape, layout", [((4, 64, 20, 24), "nchw"), ((2, 512, 8, 8), "channels_last"),
                                           ((4, 512), "nchw"), ((2, 16, 3, 5), "mixed")])
def test_feature_l1_matches_autocast_l1_loss_value_and_exact_gradient(shape, layout):
    gen = torch.Generator().manual_seed(0)
    fake = torch.randn(shape, generator=gen).bfloat16()
    real = torch.randn(shape, generator=gen).bfloat16()
    real[..., :2] = fake[..., :2]  # some equal elements: sign 0, gradient 0 in both
    if layout in ("channels_last", "mixed"):
        fake = fake.contiguous(memory_format=torch.channels_last)
    if layout == "channels_last":
        real = real.contiguous(memory_format=torch.channels_last)
    a, b = fake.clone().requires_grad_(), fake.clone().requires_grad_()
    theirs, ours = _autocast_l1(a, real), losses.feature_l1(b, real)
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    (0.37 * theirs).backward()
    (0.37 * ours).backward()
    assert b.grad.dtype == torch.bfloat16 and b.grad.shape == fake.shape
    assert torch.equal(a.grad, b.grad)  # bit for bit, not approximately
    assert (b.grad == 0).sum() >= fake[..., :2].numel()


def test_feature_l1_by_hand_over_several_chunks(monkeypatch):
    monkeypatch.setattr(losses, "FEATURE_L1_CHUNK", 7)  # 30 elements: chunks of 7, 7, 7, 7, 2
    fake = torch.arange(30, dtype=torch.float32).reshape(1, 2, 3, 5).bfloat16().requires_grad_()
    real = torch.full((1, 2, 3, 5), 10.0).bfloat16()
    loss = losses.feature_l1(fake, real)
    assert loss.item() == pytest.approx(sum(abs(i - 10) for i in range(30)) / 30)
    loss.backward()
    expected = torch.sign(torch.arange(30.0) - 10).reshape(1, 2, 3, 5) / 30
    assert torch.equal(fake.grad, expected.bfloat16())
    assert real.grad is None


def test_feature_l1_float32_is_l1_loss_and_shapes_must_match():
    fake, real = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(losses.feature_l1(fake, real), F.l1_loss(fake, real))
    kept = fake.clone()
    mixed = losses.feature_l1(fake, real.bfloat16())  # a float32 map never goes through the in-place sums
    assert torch.equal(fake, kept) and torch.equal(mixed, F.l1_loss(fake, real.bfloat16()))
    with pytest.raises(ValueError, match=r"fake \(2, 3, 4, 4\) and real \(2, 3, 4\) must have the same shape"):
        losses.feature_l1(fake, real[..., 0])
