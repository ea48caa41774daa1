"""Typed, validated training configuration of the Liquid Warping GAN.

Defaults are the reference defaults (svip-lab/impersonator, scripts/train_iPER.sh;
see shared/design/LWGAN_REFERENCE.md). Every leaf field has a name that is unique
across sections, so a config is also a *flat* mapping ``{"lr_G": 2e-4, ...}``:
that flat form is what study YAML files, ``--set key=value`` and MLflow params use.

This module reads no files and no environment: callers pass mappings in.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping


from lwgan.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value is invalid: ``source`` (file or flag), ``key`` (dotted path; may be empty),
    ``message``, ``allowed`` (what is accepted). The one error type of config layering
    (lwgan.layering); a study file's errors are its subclass ``StudyError``."""

    def __init__(self, key: str, message: str, allowed: str = "", source: str = ""):
        self.key = key
        self.message = message
        self.allowed = allowed
        self.source = source
        where = f"{source}: " if source else ""
        what = f"{key}: " if key else ""
        tail = f" (allowed: {allowed})" if allowed else ""
        super().__init__(f"{where}{what}{message}{tail}")

    def with_source(self, source: str, prefix: str = "") -> "ConfigError":
        key = f"{prefix}.{self.key}" if prefix else self.key
        return ConfigError(key, self.message, self.allowed, source)


# ----------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Generator / discriminator sizes. ``conv_dim`` scales widths (reference: 64)."""

    image_size: int = 256
    conv_dim: int = 64  # first-layer width of every generator stream
    n_res_blocks: int = 6  # residual blocks at 1/8 resolution
    ndf: int = 64  # discriminator first-layer width
    # PatchGAN stride-2 layers; None = scaled with the image: log2(image_size / 16) (4 at 256, 3 at 128,
    # 2 at 64, 1 at 32), so every size keeps the reference's 14x14 patch map and its ~55% field-to-image
    # ratio (142 px at 256). See d_stride_layers.
    d_layers: int | None = None
    d_norm: str = "instance"  # instance | batch | none
    cond_channels: int = 3  # uv_seg condition map: (u, 1-v, background)
    # How the transformation flow's "-2 = off body" value meets the LWB resize.
    # "reference": resize T bilinearly as the reference does (mixes -2 into body edges);
    # "masked": resize with nearest-valid handling (a deliberate fix).
    lwb_flow_resize: str = "reference"
    # Height of the SphereFace head crop (width = 6/7 of it): 112x96 is the reference and the only
    # size pretrained weights accept. Small profiles shrink it with the image (56 at 64 px keeps the
    # reference's ~2.5x upsampling of a head box instead of upsampling a 10 px box 10x).
    face_crop: int = 112


@dataclass(frozen=True)
class LossWeights:
    """The eight loss weights; baseline = the reference training script."""

    lambda_adv: float = 1.0  # G least-squares adversarial
    lambda_D_prob: float = 1.0  # D real/fake least squares
    lambda_rec: float = 10.0  # L1 source reconstruction
    lambda_tsf: float = 10.0  # VGG19 perceptual, transfer output vs target
    # Off in the reference's training script at its head (b041dd4: lambda_style=0.0, no --use_style);
    # the option default there is 5. Kept as one of the eight switches.
    lambda_style: float = 0.0  # Gram-matrix style loss
    lambda_face: float = 5.0  # SphereFace identity loss on head crops
    lambda_mask: float = 1.0  # BCE of attention masks vs crop masks
    lambda_mask_smooth: float = 1.0  # total variation of attention masks


@dataclass(frozen=True)
class OptimConfig:
    """Adam for G and D (TTUR when lr_G != lr_D), constant then linear decay per epoch."""

    lr_G: float = 2e-4
    lr_D: float = 2e-4
    lr_final: float = 2e-6  # eta_F: lr reached at the end of the linear decay
    beta1: float = 0.5
    beta2: float = 0.999
    epochs_no_decay: int = 5
    epochs_decay: int = 25
    # Epochs trained in all; None = epochs_no_decay + epochs_decay (the reference). Longer
    # runs hold lr_final after the decay, so variants with a shorter decay (the seed paper's
    # E2-E4: "linear decay over 15 epochs") can train as long as the baseline.
    train_epochs: int | None = None
    # Reference ``train_G_every_n_iterations``: it gates the D update (D steps on
    # iterations where ``step % n == 0``); G steps every iteration.
    d_every: int = 1


@dataclass(frozen=True)
class StabilizerConfig:
    """The seed paper's stabilizers as switches."""

    gp_weight: float = 0.0  # WGAN-GP weight on real/fake interpolates; 0 = off
    spectral_norm: bool = False  # spectral norm on every conv of D
    spectral_norm_G: bool = False  # ... and optionally of G
    label_smoothing: float = 1.0  # one-sided: D's target for real images (1.0 = off, 0.9 = smoothed)


@dataclass(frozen=True)
class DataConfig:
    """Where the data and the body model come from. None = synthetic / generated."""

    data_root: str | None = None  # iPER-format folder; None = synthetic mini-iPER
    body_model: str | None = None  # SMPL .npz/.pkl; None = generated stand-in body
    batch_size: int = 8
    num_workers: int = 0
    source_frames: int = 15  # source drawn from the first N frames of a video
    iters_per_epoch: int | None = None  # None = reference formula (sum frames//10 / batch)
    synth_subjects: int = 4
    synth_frames: int = 24
    synth_size: int = 128
    synth_seed: int = 0


@dataclass(frozen=True)
class BackboneConfig:
    """Pretrained weights, loaded from user-given paths only (never downloaded)."""

    vgg_weights: str | None = None  # torchvision-format VGG19 state dict
    face_weights: str | None = None  # SphereFace-20 state dict
    # eval/lpips: LPIPS on lpips_net ("alex" as the reference's evaluator, or "vgg" = VGG16) needs that
    # network's torchvision state dict (alexnet-owt-7be5be79.pth / vgg16-397923af.pth); without it the metric
    # is absent. The linear layers are the lpips package's (its wheel ships weights/v0.1/<net>.pth);
    # lpips_weights overrides them with another file of the same keys.
    lpips_backbone: str | None = None
    lpips_net: str = "alex"
    lpips_weights: str | None = None
    # eval/fid, eval/kid: torch-fidelity's Inception-v3 (weights-inception-2015-12-05-6726825d.pth, the
    # TF FID network); without it both metrics are absent (never a stand-in number).
    inception_weights: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """Length, logging cadence, device and guards of one training run."""

    seed: int = 0
    max_steps: int | None = None  # None = (epochs_no_decay + epochs_decay) * iters_per_epoch
    log_every: int = 1
    eval_every: int = 50
    eval_pairs: int = 8
    fid_pairs: int = 200  # fixed val pairs whose transfers FID / KID compare with their targets (last step)
    sample_every: int = 100
    checkpoint_every: int = 100
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto = bf16 autocast on CUDA or on a CPU with AMX / AVX-512 BF16 units, else fp32 (lwgan.train.precision)
    precision: str = "auto"
    # G, D, backbones and images in NHWC. None = auto = off: NHWC measured no faster with bf16 on the CPU,
    # slower with fp32, and slower than NCHW with bf16 on an H100 (BENCHMARKS.md, "Precision and layout", "GPU").
    channels_last: bool | None = None
    # The step's network calls (G, D, VGG19, SphereFace) replayed as CUDA graphs after the first step:
    # auto = on for a CUDA device, off elsewhere (lwgan.train.graphs; BENCHMARKS.md, "GPU").
    cuda_graphs: str = "auto"
    num_threads: int | None = None  # torch intra-op threads; None = leave as is
    # Memory (MiB) for the target frames' VGG19 / SphereFace features, computed once per frame and
    # reused whenever the frame is drawn again (lwgan.models.target_features); 0 = recompute every step.
    target_cache_mb: int = 1024
    # A folder where runs with the same frozen backbones share those target features on disk (entries
    # carry the image and box they were made from and sit in a folder named after the weights,
    # precision, device, torch and threads, so a read is what the run would compute; up to
    # target_cache_mb per net). A study points its trials at <run folder>/frame_caches/target_features/,
    # which exists only while the study runs (so a trial's config.yaml names a folder that is gone).
    # None = memory only.
    target_cache_dir: str | None = None
    # A folder where runs share the frames' rendered correspondences on disk (entries carry the SMPL
    # values they were made from and sit in a folder named after the body model, image size, torch,
    # device and threads, so a read is what the run would render; up to 2 GiB). A study points its
    # trials at <run folder>/frame_caches/correspondences/, which exists only while the study runs.
    # None = memory only.
    correspondence_cache_dir: str | None = None
    divergence_threshold: float = 1e6  # |loss| above this (or non-finite) = diverged


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stabilizers: StabilizerConfig = field(default_factory=StabilizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    backbones: BackboneConfig = field(default_factory=BackboneConfig)
    run: RunConfig = field(default_factory=RunConfig)

    # -- flat view -------------------------------------------------------------
    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section in SECTIONS:
            out.update(dataclasses.asdict(getattr(self, section)))
        return out

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any] | None = None, base: "TrainConfig | None" = None) -> "TrainConfig":
        """Build a config from flat overrides on top of ``base`` (default: reference defaults).

        Values are coerced to the field's type and validated; unknown keys raise
        ConfigError naming the closest known key.
        """
        cfg = base if base is not None else cls()
        flat = dict(flat or {})
        per_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, value in flat.items():
            if key not in FIELD_SECTION:
                close = difflib.get_close_matches(key, FIELD_SECTION.keys(), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(key, f"unknown config key{hint}", "see `lwgan-study train --help-keys`")
            per_section[FIELD_SECTION[key]][key] = _coerce(key, value)
        sections = {s: replace(getattr(cfg, s), **vals) for s, vals in per_section.items() if vals}
        out = replace(cfg, **sections)
        validate(out)
        return out

    def override(self, flat: Mapping[str, Any]) -> "TrainConfig":
        return TrainConfig.from_flat(flat, base=self)

    # -- derived ---------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        o = self.optim
        return o.train_epochs if o.train_epochs is not None else o.epochs_no_decay + o.epochs_decay


SECTIONS = ("model", "losses", "optim", "stabilizers", "data", "backbones", "run")
_SECTION_TYPES = {
    "model": ModelConfig,
    "losses": LossWeights,
    "optim": OptimConfig,
    "stabilizers": StabilizerConfig,
    "data": DataConfig,
    "backbones": BackboneConfig,
    "run": RunConfig,
}
FIELD_SECTION: dict[str, str] = {f.name: s for s, t in _SECTION_TYPES.items() for f in fields(t)}
FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for t in _SECTION_TYPES.values() for f in fields(t)}
LAMBDA_KEYS = tuple(f.name for f in fields(LossWeights))
assert len(FIELD_SECTION) == sum(len(fields(t)) for t in _SECTION_TYPES.values()), "flat keys must be unique"

FACE_CROPS = (112, 56, 28)
CHOICES: dict[str, tuple[str, ...]] = {
    "d_norm": ("instance", "batch", "none"),
    "lwb_flow_resize": ("reference", "masked"),
    "lpips_net": ("alex", "vgg"),
    "precision": ("auto", "bf16", "fp32"),
    "cuda_graphs": ("auto", "on", "off"),
}


def _coerce(key: str, value: Any) -> Any:
    """Coerce a YAML / command-line value to the declared type of ``key``."""
    typ = FIELD_TYPES[key]
    optional = "None" in typ
    base = typ.replace(" | None", "").strip()
    empty = value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
    if empty and optional:
        return None
    if value is None or (empty and base != "str"):  # "none" is a valid string choice (d_norm)
        raise ConfigError(key, "must not be empty", typ)
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
                return False
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if base == "int":
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base == "str":
            if not isinstance(value, (str, int, float)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected {typ}, got {value!r}", typ) from None
    raise AssertionError(f"unhandled type {typ} for {key}")


def coerce_value(key: str, value: Any) -> Any:
    """``value`` (from YAML, the command line or an MLflow param string) as the declared type of the
    flat key ``key``; ConfigError naming the key and type when it does not fit."""
    return _coerce(key, value)


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, f"invalid value {value!r}", allowed)


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError on the first invalid field (key, value and allowed range named)."""
    m, o, s, d, r, b = cfg.model, cfg.optim, cfg.stabilizers, cfg.data, cfg.run, cfg.backbones
    _check(m.image_size >= 32 and m.image_size % 16 == 0, "image_size", m.image_size, "a multiple of 16, >= 32")
    _check(m.conv_dim >= 4, "conv_dim", m.conv_dim, ">= 4")
    _check(m.n_res_blocks >= 1, "n_res_blocks", m.n_res_blocks, ">= 1")
    _check(m.ndf >= 4, "ndf", m.ndf, ">= 4")
    _check(m.d_layers is None or 1 <= m.d_layers <= 6, "d_layers", m.d_layers, "1..6 or null (scaled with image_size)")
    n_stride = d_stride_layers(m)
    _check(m.image_size // (2**n_stride) >= 2, "d_layers", m.d_layers, "image_size / 2**d_layers >= 2")
    _check(m.face_crop in FACE_CROPS, "face_crop", m.face_crop, " | ".join(map(str, FACE_CROPS)) + " (112 = reference)")
    _check(m.cond_channels == 3, "cond_channels", m.cond_channels, "3 (uv_seg: u, 1-v, background)")
    for key, choices in CHOICES.items():
        val = getattr(getattr(cfg, FIELD_SECTION[key]), key)
        _check(val in choices, key, val, " | ".join(choices))
    for key in LAMBDA_KEYS:
        val = getattr(cfg.losses, key)
        _check(val >= 0 and val == val, key, val, ">= 0")
    for key in ("lr_G", "lr_D"):
        val = getattr(o, key)
        _check(0 < val <= 1, key, val, "0 < lr <= 1")
    _check(0 <= o.lr_final <= 1, "lr_final", o.lr_final, "0 <= lr_final <= 1")
    _check(0 <= o.beta1 < 1, "beta1", o.beta1, "0 <= beta1 < 1")
    _check(0 <= o.beta2 < 1, "beta2", o.beta2, "0 <= beta2 < 1")
    _check(o.epochs_no_decay >= 0, "epochs_no_decay", o.epochs_no_decay, ">= 0")
    _check(o.epochs_decay >= 0, "epochs_decay", o.epochs_decay, ">= 0")
    _check(o.epochs_no_decay + o.epochs_decay >= 1, "epochs_decay", o.epochs_decay, "epochs_no_decay + epochs_decay >= 1")
    _check(o.train_epochs is None or o.train_epochs >= 1, "train_epochs", o.train_epochs, ">= 1 or null")
    _check(o.d_every >= 1, "d_every", o.d_every, ">= 1")
    _check(s.gp_weight >= 0, "gp_weight", s.gp_weight, ">= 0 (0 = off)")
    _check(0.5 <= s.label_smoothing <= 1.0, "label_smoothing", s.label_smoothing, "0.5..1.0 (real target; 1.0 = off)")
    _check(d.batch_size >= 1, "batch_size", d.batch_size, ">= 1")
    _check(d.num_workers >= 0, "num_workers", d.num_workers, ">= 0")
    _check(d.source_frames >= 1, "source_frames", d.source_frames, ">= 1")
    _check(d.iters_per_epoch is None or d.iters_per_epoch >= 1, "iters_per_epoch", d.iters_per_epoch, ">= 1 or null")
    _check(d.synth_subjects >= 1, "synth_subjects", d.synth_subjects, ">= 1")
    _check(d.synth_frames >= 2, "synth_frames", d.synth_frames, ">= 2")
    _check(d.synth_size >= 32, "synth_size", d.synth_size, ">= 32")
    _check(b.face_weights is None or m.face_crop == 112, "face_crop", m.face_crop, "112 when face_weights are given (pretrained SphereFace takes 112x96)")
    _check(r.max_steps is None or r.max_steps >= 1, "max_steps", r.max_steps, ">= 1 or null")
    _check(r.fid_pairs >= 2, "fid_pairs", r.fid_pairs, ">= 2 (FID needs a covariance)")
    for key in ("log_every", "eval_every", "sample_every", "checkpoint_every", "eval_pairs"):
        val = getattr(r, key)
        _check(val >= 1, key, val, ">= 1")
    _check(r.device == "auto" or r.device == "cpu" or r.device.startswith("cuda"), "device", r.device, "auto | cpu | cuda | cuda:N")
    _check(r.num_threads is None or r.num_threads >= 1, "num_threads", r.num_threads, ">= 1 or null")
    _check(isinstance(r.target_cache_mb, int) and r.target_cache_mb >= 0, "target_cache_mb", r.target_cache_mb, "an integer >= 0 (MiB; 0 = off)")
    _check(r.divergence_threshold > 0, "divergence_threshold", r.divergence_threshold, "> 0")


def d_stride_layers(model: ModelConfig) -> int:
    """The discriminator's stride-2 layer count: ``d_layers`` when set, else scaled with the image so
    the patch map stays the reference's 14x14: ``round(log2(image_size / 16))``, at least 1
    (256 -> 4, 128 -> 3, 64 -> 2, 32 -> 1)."""
    if model.d_layers is not None:
        return model.d_layers
    return max(1, round(math.log2(model.image_size / 16)))


def diff_flat(cfg: TrainConfig, base: TrainConfig) -> dict[str, Any]:
    """Flat keys whose values differ from ``base`` (what a variant changes)."""
    a, b = cfg.to_flat(), base.to_flat()
    return {k: v for k, v in a.items() if b.get(k) != v}
