"""The Objective's G and D phases: metric names, weighting, skipped terms, gradients, stabilizers."""

import math
import warnings
from types import SimpleNamespace

import pytest
import torch

from lwgan.config import LAMBDA_KEYS, TrainConfig
from lwgan.models import Discriminator, Generator, build_sphereface, build_vgg19
from lwgan.models.objective import D_METRICS, G_METRICS, Objective

SIZE = 32
BASE = dict(image_size=SIZE, conv_dim=4, n_res_blocks=1, ndf=4, d_layers=3)


@pytest.fixture(scope="module")
def backbones():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_vgg19(None)[0], build_sphereface(None)[0]


def make(backbones, **flat):
    cfg = TrainConfig.from_flat({**BASE, **flat})
    torch.manual_seed(0)
    G, D = Generator(cfg.model), Discriminator(cfg.model)
    return cfg, G, D, Objective(cfg, G, D, *backbones)


def batch(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(b, 3, SIZE, SIZE, generator=g) * 2 - 1
    tgt = torch.rand(b, 3, SIZE, SIZE, generator=g) * 2 - 1
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    flow = torch.stack([xs, ys], -1).expand(b, SIZE, SIZE, 2).clone()
    body = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    body[6:28, 10:22] = True
    flow[:, ~body] = -2.0
    bgc = (~body).float().expand(b, 1, SIZE, SIZE).clone()
    cond = torch.cat([torch.rand(b, 2, SIZE, SIZE, generator=g) * (1 - bgc), bgc], 1)
    geom = SimpleNamespace(
        flow=flow,
        src_cond=cond,
        tgt_cond=cond.flip(-1),
        src_crop_mask=bgc,
        tgt_crop_mask=bgc.flip(-1),
        bg_mask=bgc,
        head_box=torch.tensor([[10, 4, 22, 12]] * b),
    )
    gen_inputs = (
        torch.cat([src * bgc, bgc], 1),
        torch.cat([src * (1 - bgc), geom.src_cond], 1),
        torch.cat([src, geom.tgt_cond], 1),
    )
    return src, tgt, geom, gen_inputs


def g_grads(G):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in G.parameters()])


def test_generator_phase_metrics_total_and_backward(backbones):
    _, G, D, obj = make(backbones, lambda_style=5.0)  # style is off in the baseline: switched on so every term runs
    src, tgt, geom, gin = batch()
    loss, metrics, out = obj.generator_phase(src, tgt, geom, gin)
    assert tuple(metrics) == G_METRICS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    parts = sum(metrics[k] for k in G_METRICS[:-1])
    assert metrics["loss/G_total"] == pytest.approx(parts, rel=1e-5) and loss.item() == pytest.approx(parts, rel=1e-5)
    assert all(metrics[k] > 0 for k in G_METRICS)
    assert out.tsf_image.shape == tgt.shape
    loss.backward()
    assert g_grads(G).abs().sum() > 0
    assert all(p.grad is None for p in D.parameters())  # the G phase leaves D's grads alone
    assert all(p.requires_grad for p in D.parameters())  # ... and restores its flags


def test_weights_scale_terms_and_zero_skips_them(backbones):
    _, _, _, obj = make(backbones)
    src, tgt, geom, gin = batch()
    _, base, _ = obj.generator_phase(src, tgt, geom, gin)
    _, _, _, obj2 = make(backbones, lambda_rec=20.0, lambda_face=0.0, lambda_style=0.0, lambda_adv=0.0)
    _, m2, _ = obj2.generator_phase(src, tgt, geom, gin)
    assert m2["loss/G_rec"] == pytest.approx(2 * base["loss/G_rec"], rel=1e-5)
    assert m2["loss/G_face"] == m2["loss/G_style"] == m2["loss/G_adv"] == 0.0
    assert m2["loss/G_tsf"] == pytest.approx(base["loss/G_tsf"], rel=1e-5)
    # default weights are the training script's: rec 10 -> the logged value is 10 x the raw L1
    _, G, _, obj3 = make(backbones)
    out = G(*gin, geom.flow)
    assert base["loss/G_rec"] == pytest.approx(10 * (out.src_image - src).abs().mean().item(), rel=1e-5)


def test_a_zero_lambda_removes_exactly_that_terms_gradient(backbones):
    """grad(all terms) = grad(all but face) + grad(face only): the face term's contribution is gone at 0."""
    src, tgt, geom, gin = batch()

    def grads(**flat):
        _, G, _, obj = make(backbones, **flat)
        loss, _, _ = obj.generator_phase(src, tgt, geom, gin)
        loss.backward()
        return g_grads(G)

    all_terms = grads()
    without_face = grads(lambda_face=0.0)
    face_only = grads(**{k: 0.0 for k in LAMBDA_KEYS if k != "lambda_face"})
    assert face_only.abs().sum() > 0
    scale = all_terms.abs().max()
    assert (all_terms - (without_face + face_only)).abs().max() < 1e-4 * scale
    assert (all_terms - without_face).abs().max() > 1e-2 * scale


def test_rec_alone_does_not_reach_the_transfer_stream_but_tsf_reaches_the_source(backbones):
    src, tgt, geom, gin = batch()
    zeros = {k: 0.0 for k in LAMBDA_KEYS}
    _, G, _, obj = make(backbones, **{**zeros, "lambda_rec": 10.0})
    obj.generator_phase(src, tgt, geom, gin)[0].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in G.tsf_stream.parameters())
    assert sum(p.grad.abs().sum() for p in G.src_stream.parameters()) > 0
    _, G, _, obj = make(backbones, **{**zeros, "lambda_tsf": 10.0})
    obj.generator_phase(src, tgt, geom, gin)[0].backward()
    # the LWB carries the transfer loss back into the source encoder
    assert G.src_stream.encoders[1][0].weight.grad.abs().sum() > 0


def test_all_weights_zero_gives_a_zero_loss_that_backpropagates(backbones):
    _, G, _, obj = make(backbones, **{k: 0.0 for k in LAMBDA_KEYS})
    src, tgt, geom, gin = batch()
    loss, metrics, _ = obj.generator_phase(src, tgt, geom, gin)
    assert all(v == 0.0 for v in metrics.values())
    loss.backward()
    assert all(p.grad is None for p in G.parameters())


def test_discriminator_phase_targets_and_metrics(backbones):
    _, G, D, obj = make(backbones)
    src, tgt, geom, gin = batch()
    _, _, out = obj.generator_phase(src, tgt, geom, gin)
    fake = out.tsf_image.detach()
    loss, metrics = obj.discriminator_phase(tgt, fake, geom.tgt_cond)
    assert tuple(metrics) == D_METRICS
    with torch.no_grad():
        d_real, d_fake = D(tgt, geom.tgt_cond), D(fake, geom.tgt_cond)
    assert metrics["loss/D_real"] == pytest.approx(((d_real - 1) ** 2).mean().item(), rel=1e-5)
    assert metrics["loss/D_fake"] == pytest.approx(((d_fake + 1) ** 2).mean().item(), rel=1e-5)
    assert metrics["D/real_mean"] == pytest.approx(d_real.mean().item(), rel=1e-5, abs=1e-7)
    assert metrics["loss/D_gp"] == 0.0
    assert loss.item() == pytest.approx(metrics["loss/D_real"] + metrics["loss/D_fake"], rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())  # fakes are detached


def test_label_smoothing_moves_only_the_real_target_and_gp_adds_a_weighted_term(backbones):
    src, tgt, geom, gin = batch()
    fake = torch.rand_like(tgt) * 2 - 1
    _, _, D, smooth = make(backbones, label_smoothing=0.9, lambda_D_prob=2.0)
    _, m = smooth.discriminator_phase(tgt, fake, geom.tgt_cond)
    with torch.no_grad():
        d_real, d_fake = D(tgt, geom.tgt_cond), D(fake, geom.tgt_cond)
    assert m["loss/D_real"] == pytest.approx(2 * ((d_real - 0.9) ** 2).mean().item(), rel=1e-5)
    assert m["loss/D_fake"] == pytest.approx(2 * ((d_fake + 1) ** 2).mean().item(), rel=1e-5)
    _, _, D, gp = make(backbones, gp_weight=10.0)
    loss, m2 = gp.discriminator_phase(tgt, fake, geom.tgt_cond)
    assert m2["loss/D_gp"] > 0
    assert m2["loss/D_total"] == pytest.approx(m2["loss/D_real"] + m2["loss/D_fake"] + m2["loss/D_gp"], rel=1e-5)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters())


def test_d_prob_zero_with_gp_trains_only_the_penalty(backbones):
    src, tgt, geom, gin = batch()
    _, _, D, obj = make(backbones, lambda_D_prob=0.0, gp_weight=1.0)
    loss, m = obj.discriminator_phase(tgt, torch.zeros_like(tgt), geom.tgt_cond)
    assert m["loss/D_real"] == m["loss/D_fake"] == 0.0 and m["loss/D_gp"] > 0
    assert m["D/real_mean"] != 0.0  # the scores are still reported
    assert loss.item() == pytest.approx(m["loss/D_gp"], rel=1e-6)


def test_discriminator_phase_with_spectral_norm_and_gp_backpropagates(backbones):
    cfg = TrainConfig.from_flat({**BASE, "spectral_norm": True, "gp_weight": 10.0})
    torch.manual_seed(0)
    G, D = Generator(cfg.model), Discriminator(cfg.model, spectral_norm=True)
    obj = Objective(cfg, G, D, *backbones)
    src, tgt, geom, gin = batch()
    loss, metrics = obj.discriminator_phase(tgt, torch.zeros_like(tgt), geom.tgt_cond)
    loss.backward()
    originals = [m.parametrizations.weight.original for m in D.modules() if hasattr(m, "parametrizations")]
    assert originals and all(o.grad is not None and torch.isfinite(o.grad).all() for o in originals)


def test_missing_backbone_for_an_active_term_is_an_error():
    cfg = TrainConfig.from_flat(BASE)
    G, D = Generator(cfg.model), Discriminator(cfg.model)
    with pytest.raises(ValueError, match="lambda_face"):
        Objective(cfg, G, D, vgg=torch.nn.Identity(), face=None)
    cfg0 = cfg.override({"lambda_tsf": 0.0, "lambda_style": 0.0, "lambda_face": 0.0})
    Objective(cfg0, G, D, vgg=None, face=None)


def test_phase_scalars_read_with_extra_values_and_as_a_mapping():
    """The phase's values and extra ones (the trainer's grad norm) come back together; the mapping
    view gives the same floats; no autograd graph is held."""
    from lwgan.models.objective import PhaseScalars

    w = torch.tensor([2.0], requires_grad=True)
    loss = (w * 3).sum()
    scalars = PhaseScalars({"loss/a": loss, "loss/b": 0.0, "D/x": torch.tensor(0.25)})
    assert all(not v.requires_grad for v in scalars._pending.values() if isinstance(v, torch.Tensor))
    values, extra = scalars.read({"grad_norm/G": torch.tensor(1.5)})
    assert values == {"loss/a": 6.0, "loss/b": 0.0, "D/x": 0.25} and extra == {"grad_norm/G": 1.5}
    assert dict(scalars) == values and list(scalars) == ["loss/a", "loss/b", "D/x"] and scalars["loss/a"] == 6.0
    assert scalars.read({"n": 2.0}) == (values, {"n": 2.0})  # read again: the same values, extra copied on its own
    fresh = PhaseScalars({"loss/a": torch.tensor(1.0)})
    assert dict(fresh) == {"loss/a": 1.0} and len(fresh) == 1  # read as a mapping first
