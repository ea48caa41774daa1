"""Named profiles: flat overrides of the reference defaults that change size and length, never the method.

The discriminator follows the image size (``d_layers`` null: log2(size / 16) stride-2 layers), so
every profile keeps the reference's 14x14 patch map and ~55% receptive-field-to-image ratio.

- ``small``: the default. 64 px, narrow networks, synthetic mini-iPER and the generated
  body model; 30 short epochs (5 constant + 25 decay, as the reference script) of 10
  iterations, so a baseline trains in minutes on 2 CPU cores.
- ``tiny``: for tests and smoke runs: 32 px, very narrow, a few steps.
- ``paper``: the reference setting on real iPER at 256 px (needs data_root, body_model
  and the pretrained backbones; see README).
"""

from __future__ import annotations

from typing import Any, Mapping

from lwgan.config import ConfigError, TrainConfig
from lwgan.layering import Layer, layer_config

PROFILES: dict[str, dict[str, Any]] = {
    "small": {
        "image_size": 64,
        "conv_dim": 16,
        "ndf": 16,
        "face_crop": 56,
        "batch_size": 4,
        "iters_per_epoch": 10,
        "synth_subjects": 4,
        "synth_frames": 24,
        "synth_size": 128,
        "eval_every": 50,
        "eval_pairs": 8,
        "sample_every": 100,
        "checkpoint_every": 50,
    },
    "tiny": {
        "image_size": 32,
        "conv_dim": 4,
        "ndf": 4,
        "face_crop": 28,
        "n_res_blocks": 2,
        "batch_size": 2,
        "iters_per_epoch": 2,
        "epochs_no_decay": 1,
        "epochs_decay": 2,
        "synth_subjects": 2,
        "synth_frames": 8,
        "synth_size": 64,
        "eval_every": 3,
        "eval_pairs": 2,
        "sample_every": 3,
        "checkpoint_every": 3,
    },
    "paper": {
        "image_size": 256,
        "conv_dim": 64,
        "ndf": 64,
        "batch_size": 4,  # the reference's scripts/train_iPER.sh at its head (b041dd4): one GPU, batch 4
        "iters_per_epoch": None,
        "eval_every": 1000,
        "sample_every": 1000,
        "checkpoint_every": 2000,
    },
}
DEFAULT_PROFILE = "small"
# Keys a profile needs from the user (checked by the trainer / study before starting).
REQUIRED_REAL_ASSETS: dict[str, tuple[str, ...]] = {
    "paper": ("data_root", "body_model", "vgg_weights", "face_weights"),
}


def profile_overrides(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError("profile", f"unknown profile {name!r}", " | ".join(PROFILES))
    return dict(PROFILES[name])


def resolve_config(profile: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Reference defaults, then the profile, then user overrides (flat keys): lwgan.layering's order."""
    return layer_config([Layer(profile_overrides(profile), f"profile {profile}"), Layer(dict(overrides or {}))])


def missing_real_assets(profile: str, cfg: TrainConfig) -> list[str]:
    """Flat keys the profile requires but the config leaves empty."""
    flat = cfg.to_flat()
    return [key for key in REQUIRED_REAL_ASSETS.get(profile, ()) if not flat.get(key)]
