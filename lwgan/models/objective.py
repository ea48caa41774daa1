"""The whole LWGAN objective in one place, split into a generator phase and a discriminator phase
that each return the weighted loss to optimise and named scalars (stylegan2-ada style). The trainer
does backward and the optimiser steps.

Faithful to models/impersonator_trainer.py: D sees the transfer output (and the target image) with
the target cond map; least-squares targets real 1 / fake -1 / G 0. The reference scales G's
adversarial term and D's terms by one weight (lambda_D_prob); here G's uses ``lambda_adv`` and D's
``lambda_D_prob`` (both 1 by default, so the baseline is the reference). Stabilizers of the seed
paper (one-sided label smoothing, gradient penalty) are weights inside the D phase: 1.0 / 0 = off.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn

from lwgan import vocab
from lwgan.models import losses
from lwgan.models.calls import NetCalls
from lwgan.models.generator import GeneratorOutput
from lwgan.models.target_features import TargetFeatures

# What each phase reports, in order (from lwgan/vocab.py at import; the phases read vocab at call time).
G_METRICS = vocab.names(vocab.Group.GENERATOR)
D_METRICS = vocab.names(vocab.Group.DISCRIMINATOR, vocab.Group.D_OUTPUTS)


@contextlib.contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Turn off requires_grad of ``module``'s parameters for the block (gradients still flow through
    the module to its inputs), then restore each flag. Keeps the G phase from filling D's .grad."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _to_host(values: list[torch.Tensor | float]) -> list[float]:
    """Scalars as floats, with a single device-to-host copy for all of them."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    stacked = torch.stack(
        [v.detach().float().reshape(()) if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=device) for v in values]
    )
    return stacked.cpu().tolist()


class PhaseScalars(Mapping[str, float]):
    """A phase's named scalars, still on the device: read as a mapping they are copied to the host
    (once, one copy for all). ``read(extra)`` copies them with more scalars in the same copy: the
    trainer launches backward first and reads the losses with the gradient norm, so the device never
    waits between the forward and the backward for the host to look at the values."""

    def __init__(self, values: dict[str, torch.Tensor | float]):
        # detached: holding the phase's autograd graph until the read would keep its nodes alive
        self._pending: dict[str, torch.Tensor | float] | None = {
            k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
        self._values: dict[str, float] | None = None

    def read(self, extra: dict[str, torch.Tensor | float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """(the phase's values, ``extra``'s values), with one device-to-host copy for whatever is unread."""
        extra = dict(extra or {})
        unread = list(self._pending.values()) if self._pending is not None else []
        floats = _to_host([*unread, *extra.values()]) if unread or extra else []
        if self._pending is not None:
            self._values, self._pending = dict(zip(self._pending, floats)), None
        return dict(self._values), dict(zip(extra, floats[len(unread):]))

    def _resolved(self) -> dict[str, float]:
        return self.read()[0] if self._values is None else self._values

    def __getitem__(self, name: str) -> float:
        return self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())

    def __repr__(self) -> str:
        return f"PhaseScalars({self._resolved()!r})"


def _sum_terms(terms: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    active = list(terms.values())
    return sum(active[1:], active[0]) if active else _zero_loss(device)


def _report(group: vocab.Group, total_name: str, terms: dict[str, torch.Tensor], total: torch.Tensor,
            extra: dict[str, torch.Tensor] | None = None) -> PhaseScalars:
    """The phase's named scalars in vocab order: every registered term of ``group`` (0.0 when its
    weight is 0 and it was not computed), the total, then ``extra``. A term that lwgan/vocab.py does
    not register in ``group`` is an error (it would reach no table, curve or search objective)."""
    registered = vocab.names(group)
    stray = [name for name in terms if name not in registered or name == total_name]
    if stray:
        raise ValueError(f"Objective reports {stray} which lwgan/vocab.py METRICS does not register as "
                         f"{group.value} terms (registered: {', '.join(n for n in registered if n != total_name)})")
    values: dict[str, torch.Tensor | float] = {name: terms.get(name, 0.0) for name in registered if name != total_name}
    values[total_name] = total
    values.update(extra or {})
    return PhaseScalars(values)


def _zero_loss(device: torch.device) -> torch.Tensor:
    """A loss with nothing to optimise (every term weighted 0): backward() works and fills no grad."""
    return torch.zeros((), device=device, requires_grad=True)


class Objective:
    """``generator_phase`` and ``discriminator_phase`` of one LWGAN step. A weight of 0 skips that
    term's computation and reports 0.0. ``vgg`` / ``face`` are frozen feature nets (backbones.py); the
    target images' features are computed one frame at a time and kept per frame key for up to
    ``target_cache_bytes`` (lwgan.models.target_features; 0 keeps none), and shared on disk with other
    runs in ``target_cache_dir`` when given (lwgan.models.feature_store). ``calls`` says what makes
    each network call (lwgan.models.calls; default: the networks themselves); the gradient penalty, a
    double backward, always calls ``D`` itself."""

    def __init__(self, train_cfg, G: nn.Module, D: nn.Module, vgg: nn.Module | None, face: nn.Module | None,
                 target_cache_bytes: int = 0, target_cache_dir: str | None = None, calls: NetCalls | None = None):
        self.weights = train_cfg.losses
        self.gp_weight = float(train_cfg.stabilizers.gp_weight)
        self.real_target = float(train_cfg.stabilizers.label_smoothing)
        self.G, self.D, self.vgg, self.face = G, D, vgg, face
        self.calls = calls if calls is not None else NetCalls.plain(G, D, vgg, face)
        self.targets = TargetFeatures(vgg, face, target_cache_bytes, target_cache_dir,
                                      vgg_call=self.calls.vgg_target, face_call=self.calls.face_target)
        w = self.weights
        if (w.lambda_tsf > 0 or w.lambda_style > 0) and vgg is None:
            raise ValueError("Objective: lambda_tsf / lambda_style > 0 need a VGG19 feature network (build_vgg19)")
        if w.lambda_face > 0 and face is None:
            raise ValueError("Objective: lambda_face > 0 needs a SphereFace network (build_sphereface)")

    # -- G ------------------------------------------------------------------------------
    def generator_phase(self, src_img: torch.Tensor, tgt_img: torch.Tensor, geom, gen_inputs,
                        tgt_keys: list[str] | None = None) -> tuple[torch.Tensor, PhaseScalars, GeneratorOutput]:
        """Forward G on ``gen_inputs = (bg_in, src_in, tsf_in)`` and ``geom.flow``; return the weighted
        G loss, its named terms and the generator outputs (the trainer detaches ``tsf_image`` for D).
        ``tgt_keys`` (the target frames' keys) let the target features come from the per-frame cache."""
        bg_in, src_in, tsf_in = gen_inputs
        out: GeneratorOutput = self.calls.generator(bg_in, src_in, tsf_in, geom.flow)
        terms = self.generator_terms(out, src_img, tgt_img, geom, tgt_keys)
        total = _sum_terms(terms, src_img.device)
        return total, _report(vocab.Group.GENERATOR, vocab.G_TOTAL, terms, total), out

    def generator_terms(self, out: GeneratorOutput, src_img: torch.Tensor, tgt_img: torch.Tensor, geom,
                        tgt_keys: list[str] | None = None) -> dict[str, torch.Tensor]:
        """The weighted generator terms, each under its lwgan/vocab.py name; a term weighted 0 is not
        computed (and left out). The G loss is their sum."""
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.lambda_adv > 0:
            with frozen_parameters(self.D):
                terms[vocab.G_ADV] = w.lambda_adv * losses.g_lsgan_loss(self.calls.d_for_g(out.tsf_image, geom.tgt_cond))
        if w.lambda_rec > 0:
            terms[vocab.G_REC] = w.lambda_rec * losses.reconstruction_loss(out.src_image, src_img)
        if w.lambda_tsf > 0 or w.lambda_style > 0:
            fake_feats = self.calls.vgg_fake(out.tsf_image)
            real_feats = self.targets.vgg(tgt_img, tgt_keys)
            if w.lambda_tsf > 0:
                terms[vocab.G_TSF] = w.lambda_tsf * losses.perceptual_loss(fake_feats, real_feats)
            if w.lambda_style > 0:
                terms[vocab.G_STYLE] = w.lambda_style * losses.style_loss(fake_feats, real_feats)
        if w.lambda_face > 0:
            terms[vocab.G_FACE] = w.lambda_face * losses.face_loss(self.calls.face_fake, out.tsf_image, None, geom.head_box,
                                                                     real_feats=self.targets.face(tgt_img, geom.head_box, tgt_keys))
        if w.lambda_mask > 0 or w.lambda_mask_smooth > 0:
            # Reference: both streams' masks against (src_crop_mask, tgt_crop_mask), batch-concatenated.
            masks = torch.cat([out.src_mask, out.tsf_mask], dim=0)
            if w.lambda_mask > 0:
                targets = torch.cat([geom.src_crop_mask, geom.tgt_crop_mask], dim=0)
                terms[vocab.G_MASK] = w.lambda_mask * losses.mask_loss(masks, targets)
            if w.lambda_mask_smooth > 0:
                terms[vocab.G_MASK_SMOOTH] = w.lambda_mask_smooth * losses.mask_smooth_loss(masks)
        return terms

    # -- D ------------------------------------------------------------------------------
    def discriminator_phase(self, tgt_img: torch.Tensor, fake_tsf_detached: torch.Tensor, tgt_cond: torch.Tensor) -> tuple[torch.Tensor, PhaseScalars]:
        """D on (target, tgt_cond) vs (transfer output, tgt_cond): least squares with the real target
        ``label_smoothing`` and the fake target -1, plus ``gp_weight`` * gradient penalty."""
        fake = fake_tsf_detached.detach()
        use_ls = self.weights.lambda_D_prob > 0
        with torch.set_grad_enabled(use_ls and torch.is_grad_enabled()):
            d_real = self.calls.d_real(tgt_img, tgt_cond)
            d_fake = self.calls.d_fake(fake, tgt_cond)
        terms: dict[str, torch.Tensor] = {}
        if use_ls:
            real_term, fake_term = losses.d_lsgan_losses(d_real, d_fake, real_target=self.real_target)
            terms[vocab.D_REAL] = self.weights.lambda_D_prob * real_term
            terms[vocab.D_FAKE] = self.weights.lambda_D_prob * fake_term
        if self.gp_weight > 0:
            terms[vocab.D_GP] = self.gp_weight * losses.gradient_penalty(self.D, tgt_img, fake, tgt_cond)
        total = _sum_terms(terms, tgt_img.device)
        outputs = {vocab.D_REAL_MEAN: d_real.mean(), vocab.D_FAKE_MEAN: d_fake.mean()}
        return total, _report(vocab.Group.DISCRIMINATOR, vocab.D_TOTAL, terms, total, outputs)
