"""The LWGAN loss terms as pure functions (tensors in, scalar tensor out), unweighted; the Objective
applies the eight lambdas. Reference: models/impersonator_trainer.py, networks/networks.py
(VGGLoss, StyleLoss), networks/losses/face_loss.py."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

# Reference VGGLoss weights for relu1_1 .. relu5_1.
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
FACE_CROP_SIZE = (112, 96)  # SphereFace input (H, W)
D_FAKE_TARGET = -1.0  # reference least-squares targets: real -> 1, fake -> -1; G pushes D(fake) -> 0
G_TARGET = 0.0


# -- adversarial (least squares) ---------------------------------------------------


def d_lsgan_losses(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean((D(real) - real_target)^2), mean((D(fake) + 1)^2))``. ``real_target`` < 1 is one-sided
    label smoothing (the fake target stays -1)."""
    return torch.mean((d_real - real_target) ** 2), torch.mean((d_fake - D_FAKE_TARGET) ** 2)


def g_lsgan_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """``mean((D(G(x)) - 0)^2)``: the reference pushes the generator's scores to 0, not to the real target."""
    return torch.mean((d_fake - G_TARGET) ** 2)


# -- image and feature losses --------------------------------------------------------


def reconstruction_loss(reconstructed: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """L1 between the reconstructed source and the source."""
    return F.l1_loss(reconstructed, source)


def perceptual_loss(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor], weights: Sequence[float] = VGG_LAYER_WEIGHTS) -> torch.Tensor:
    """Sum over levels of ``w_i * L1(fake_i, real_i)`` with the target features detached."""
    if not (len(fake_feats) == len(real_feats) == len(weights)):
        raise ValueError(f"perceptual_loss: {len(fake_feats)} fake levels, {len(real_feats)} real, {len(weights)} weights")
    return sum(w * feature_l1(f, r) for w, f, r in zip(weights, fake_feats, real_feats))


# Elements per chunk of feature_l1's float32 sum on the CPU: its float32 temporaries (256 KiB each) stay
# in the core's L2 cache instead of being written to memory and read back.
FEATURE_L1_CHUNK = 1 << 16
_HALF_TYPES = (torch.bfloat16, torch.float16)  # the feature dtypes feature_l1 sums itself


def feature_l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``mean |fake - real|`` with the target detached: ``F.l1_loss(fake, real.detach())`` as autocast runs
    it (float32 maths), without float32 copies of bf16 features on the CPU.

    Under autocast ``F.l1_loss`` casts both feature maps to float32 and runs subtract, abs and mean, then
    sign, multiply and divide in the backward, each a pass over a float32 map (VGG19's relu1_1 at 64 px,
    batch 4, is 1M values): VGG19's five levels took ~14 ms of a ~290 ms small-profile step on the CPU,
    7 ms this way (BENCHMARKS.md; benchmarks/feature_l1.py). Here the same float32 differences are summed
    a chunk at a time (FEATURE_L1_CHUNK) and the gradient is formed in the features' dtype,
    ``sign(fake - real) * (grad / numel)``. The gradient is bit for bit autocast's (the sign of a bf16
    difference is exact, and ``±(grad / numel)`` rounded to bf16 is what autocast's cast of the float32
    gradient gives); the loss value may differ from ``F.l1_loss``'s in the last bits (another summation
    order). Only bf16 / float16 ``fake`` maps on the CPU take this path; float32 ones, and
    tensors off the CPU, take ``F.l1_loss`` itself."""
    if fake.shape != real.shape:
        raise ValueError(f"feature_l1: fake {tuple(fake.shape)} and real {tuple(real.shape)} must have the same shape")
    real = real.detach()
    if fake.device.type != "cpu" or fake.dtype not in _HALF_TYPES or real.dtype not in (*_HALF_TYPES, torch.float32):
        return F.l1_loss(fake, real)
    return _FeatureL1.apply(fake, real)


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` as 1-D views in the same element order (their memory order when both share
    strides, e.g. both channels_last; copies only when their layouts differ)."""
    if a.stride() == b.stride():
        order = sorted(range(a.dim()), key=lambda d: -a.stride(d))
        a_mem, b_mem = a.permute(order), b.permute(order)
        if a_mem.is_contiguous() and b_mem.is_contiguous():
            return a_mem.view(-1), b_mem.view(-1)
    return a.reshape(-1), b.reshape(-1)


class _FeatureL1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(fake, real)
        total = torch.zeros((), dtype=torch.float32, device=fake.device)
        for a, b in zip(*(t.split(FEATURE_L1_CHUNK) for t in _flat_pair(fake, real))):
            total += a.float().sub_(b).abs_().sum()  # b's bf16 values enter the float32 subtraction exactly
        return total / fake.numel()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        fake, real = ctx.saved_tensors
        step = (grad.float() / fake.numel()).to(fake.dtype)
        return torch.sub(fake, real).sign_().to(fake.dtype).mul_(step), None


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) = F F^T over the H*W positions (unnormalised, as the reference)."""
    flat = feat.flatten(2)
    return torch.bmm(flat, flat.transpose(1, 2))


def style_loss(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over levels of ``mean|Gram(fake) - Gram(real)| / (H*W)`` (reference StyleLoss), target detached.

    Deviation: the reference first resizes both images to 224x224 (nearest) and runs VGG a second time;
    here the style loss reuses the perceptual loss's features of the images at their own size (one VGG
    pass; at 256 px the difference is the 256 vs 224 sampling grid). The (H*W) normalisation keeps the
    scale comparable across resolutions."""
    total = 0.0
    for f, r in zip(fake_feats, real_feats, strict=True):
        hw = f.shape[-2] * f.shape[-1]
        # Gram products in float32: bf16 sums over H*W lose too much precision.
        total = total + torch.mean(torch.abs(gram_matrix(f.float()) - gram_matrix(r.detach().float()))) / hw
    return total


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int] = FACE_CROP_SIZE) -> torch.Tensor:
    """Crop ``images[i, :, y0:y1, x0:x1]`` for each box ``[x0, y0, x1, y1]`` (pixels, end exclusive) and
    resize it to ``size`` bilinearly with align_corners=True, as the reference's crop + F.interpolate.

    Done in one grid_sample: the output pixel j of a crop of width w samples x0 + j*(w-1)/(W_out-1),
    which lies inside the crop, so it is exactly the per-crop interpolation. Boxes are clamped to the
    image and to at least one pixel (the reference would fail on an empty box)."""
    b, _, h, w = images.shape
    boxes = boxes.to(images.device).long()
    x0 = boxes[:, 0].clamp(0, w - 1)
    y0 = boxes[:, 1].clamp(0, h - 1)
    x1 = torch.maximum(boxes[:, 2].clamp(max=w), x0 + 1)
    y1 = torch.maximum(boxes[:, 3].clamp(max=h), y0 + 1)
    out_h, out_w = size
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    ty = torch.linspace(0, 1, out_h, device=images.device, dtype=dtype)
    tx = torch.linspace(0, 1, out_w, device=images.device, dtype=dtype)
    px = x0[:, None].to(dtype) + tx[None] * (x1 - 1 - x0)[:, None].to(dtype)  # (B, out_w) pixel coords
    py = y0[:, None].to(dtype) + ty[None] * (y1 - 1 - y0)[:, None].to(dtype)  # (B, out_h)
    gx = px / max(w - 1, 1) * 2 - 1
    gy = py / max(h - 1, 1) * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (B, out_h, out_w, 2)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def face_loss(face_net: Callable[[torch.Tensor], Sequence[torch.Tensor]], fake: torch.Tensor, real: torch.Tensor | None,
              head_box: torch.Tensor, real_feats: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """SphereFace identity loss: the same head box crops output and target (the net's input size, 112x96 in the reference); sum over
    the four conv stages and the 512-d embedding of the mean absolute difference, target detached.
    ``real_feats`` (the target crops' features, e.g. from lwgan.models.target_features) replaces ``real``."""
    size = getattr(face_net, "input_size", FACE_CROP_SIZE)
    fake_feats = face_net(crop_and_resize(fake, head_box, size))
    if real_feats is None:
        with torch.no_grad():
            real_feats = face_net(crop_and_resize(real, head_box, size))
    return sum(feature_l1(f, r) for f, r in zip(fake_feats, real_feats, strict=True))


# -- attention masks ----------------------------------------------------------------


def mask_loss(masks: torch.Tensor, crop_masks: torch.Tensor) -> torch.Tensor:
    """BCE between attention masks and the crop masks (1 = background), averaged over all pixels.
    Computed in float32 outside autocast (binary_cross_entropy is autocast-unsafe)."""
    with torch.autocast(device_type=masks.device.type, enabled=False):
        return F.binary_cross_entropy(masks.float(), crop_masks.float())


def mask_smooth_loss(masks: torch.Tensor) -> torch.Tensor:
    """Total variation: ``mean|dx| + mean|dy|`` (reference ``_compute_loss_smooth``)."""
    dx = masks[:, :, :, 1:] - masks[:, :, :, :-1]
    dy = masks[:, :, 1:, :] - masks[:, :, :-1, :]
    return dx.abs().mean() + dy.abs().mean()


# -- regulariser ---------------------------------------------------------------------


def gradient_penalty(
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``mean((||grad_x D(x, cond)||_2 - 1)^2)`` at per-sample random
    interpolates ``x = e*real + (1-e)*fake``, e ~ U(0, 1). The gradient is taken w.r.t. the image
    (the cond is the same for real and fake) and the graph is kept so the penalty trains D.

    Always float32, autocast off: the penalty is a double backward whose value is (||grad|| - 1)^2,
    and bf16's ~3 significant digits would put ~1% noise on a norm near 1, which the square then
    trains D on. (Costs one fp32 D forward + double backward when gp_weight > 0.)"""
    real, fake, cond = real.detach().float(), fake.detach().float(), cond.float()
    with torch.autocast(real.device.type, enabled=False):
        eps = torch.rand((real.shape[0], 1, 1, 1), device=real.device, dtype=real.dtype, generator=generator)
        x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        scores = discriminator(x, cond)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        norms = grad.flatten(1).norm(2, dim=1)
        return ((norms - 1) ** 2).mean()
