"""Config: reference defaults, flat round trip, coercion and validation messages."""

import pytest

from lwgan.config import LAMBDA_KEYS, ConfigError, TrainConfig, diff_flat
from lwgan.profiles import PROFILES, missing_real_assets, resolve_config


def test_defaults_are_the_reference_training_script():
    cfg = TrainConfig()
    # style is off in scripts/train_iPER.sh at the reference's head b041dd4 (lambda_style=0.0, no --use_style)
    assert (cfg.losses.lambda_rec, cfg.losses.lambda_tsf, cfg.losses.lambda_style) == (10.0, 10.0, 0.0)
    assert (cfg.losses.lambda_face, cfg.losses.lambda_mask, cfg.losses.lambda_mask_smooth) == (5.0, 1.0, 1.0)
    assert (cfg.losses.lambda_adv, cfg.losses.lambda_D_prob) == (1.0, 1.0)
    assert (cfg.optim.lr_G, cfg.optim.lr_D, cfg.optim.lr_final) == (2e-4, 2e-4, 2e-6)
    assert (cfg.optim.beta1, cfg.optim.beta2) == (0.5, 0.999)
    assert (cfg.optim.epochs_no_decay, cfg.optim.epochs_decay) == (5, 25)
    assert (cfg.model.image_size, cfg.model.conv_dim, cfg.model.ndf) == (256, 64, 64)
    assert cfg.model.d_layers is None and cfg.model.d_norm == "instance"  # 4 stride-2 layers at 256 px
    paper = resolve_config("paper")
    assert (paper.model.image_size, paper.data.batch_size, paper.total_epochs) == (256, 4, 30)  # one GPU, batch 4
    assert "lambda_style" in LAMBDA_KEYS and TrainConfig.from_flat({"lambda_style": 5}).losses.lambda_style == 5.0
    assert cfg.stabilizers.gp_weight == 0 and not cfg.stabilizers.spectral_norm
    assert cfg.stabilizers.label_smoothing == 1.0
    assert len(LAMBDA_KEYS) == 8


def test_flat_round_trip_and_diff():
    cfg = TrainConfig.from_flat({"lr_G": 4e-4, "spectral_norm": True, "lambda_rec": 15})
    again = TrainConfig.from_flat(cfg.to_flat())
    assert again == cfg
    assert diff_flat(cfg, TrainConfig()) == {"lr_G": 4e-4, "spectral_norm": True, "lambda_rec": 15.0}


@pytest.mark.parametrize(
    "raw, expected",
    [({"lr_G": "1e-4"}, 1e-4), ({"spectral_norm": "yes"}, True), ({"max_steps": "20"}, 20), ({"data_root": "null"}, None), ({"d_norm": "none"}, "none")],
)
def test_coercion_from_strings(raw, expected):
    cfg = TrainConfig.from_flat(raw)
    assert cfg.to_flat()[next(iter(raw))] == expected


@pytest.mark.parametrize(
    "flat, key, allowed",
    [
        ({"lr_G": -1e-4}, "lr_G", "0 < lr <= 1"),
        ({"lambda_face": -1}, "lambda_face", ">= 0"),
        ({"gp_weight": -2}, "gp_weight", ">= 0"),
        ({"label_smoothing": 1.2}, "label_smoothing", "0.5..1.0"),
        ({"d_norm": "layer"}, "d_norm", "instance | batch | none"),
        ({"max_steps": 2.5}, "max_steps", "int"),
        ({"spectral_norm": "maybe"}, "spectral_norm", "bool"),
        ({"face_crop": 100}, "face_crop", "112 | 56 | 28"),
        ({"face_crop": 56, "face_weights": "/w.pth"}, "face_crop", "112 when face_weights are given"),
    ],
)
def test_validation_names_key_and_allowed(flat, key, allowed):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_flat(flat)
    assert info.value.key == key
    assert allowed in str(info.value)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'lambda_rec'"):
        TrainConfig.from_flat({"lamda_rec": 15})


def test_profiles_change_size_not_method():
    base = TrainConfig().to_flat()
    method_keys = set(LAMBDA_KEYS) | {"lr_G", "lr_D", "lr_final", "gp_weight", "spectral_norm", "label_smoothing"}
    for name, overrides in PROFILES.items():
        assert not method_keys & set(overrides), name
        resolve_config(name)  # every profile validates
    small = resolve_config("small").to_flat()
    assert {k: small[k] for k in method_keys} == {k: base[k] for k in method_keys}


def test_paper_profile_lists_missing_real_assets():
    cfg = resolve_config("paper")
    assert missing_real_assets("paper", cfg) == ["data_root", "body_model", "vgg_weights", "face_weights"]
    cfg = resolve_config("paper", {"data_root": "/d", "body_model": "/b.npz", "vgg_weights": "/v", "face_weights": "/f"})
    assert missing_real_assets("paper", cfg) == []
    with pytest.raises(ConfigError, match="profile"):
        resolve_config("huge")


def test_train_epochs_defaults_to_the_schedule_and_can_outlast_it():
    assert TrainConfig().total_epochs == 30
    short_decay = TrainConfig.from_flat({"epochs_decay": 15})
    assert short_decay.total_epochs == 20
    assert short_decay.override({"train_epochs": 30}).total_epochs == 30
    with pytest.raises(ConfigError, match="train_epochs"):
        TrainConfig.from_flat({"train_epochs": 0})
