"""`lwgan-study train` argument handling: config files, --set, --steps, --help-keys, paper assets, resume guards."""

import argparse

import pytest

from lwgan.config import ConfigError, TrainConfig
from lwgan.errors import UserError
from lwgan.cli_flags import parse_sets
from lwgan.train.commands import build_config, command_train, help_keys_text, load_flat_yaml


def _args(**kw):
    base = dict(config=None, profile=None, steps=None, sets=[], out=None, resume=False, help_keys=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_precedence_profile_file_set_steps(tmp_path):
    cfg = build_config("small", {"lr_G": 1e-4, "batch_size": 2}, {"lr_G": "5e-5"}, 7)
    assert cfg.model.image_size == 64  # profile
    assert cfg.data.batch_size == 2  # file
    assert cfg.optim.lr_G == 5e-5  # --set wins over the file
    assert cfg.run.max_steps == 7


def test_yaml_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr_G: 1e-4\nlearning_rate: 3\n")
    with pytest.raises(ConfigError) as err:
        build_config("small", load_flat_yaml(bad), {}, None, source=str(bad))
    assert str(bad) in str(err.value) and "learning_rate" in str(err.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("optim:\n  lr_G: 1e-4\n")
    with pytest.raises(ConfigError, match="nested.yaml: optim: expected a single value"):
        load_flat_yaml(nested)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="list.yaml: expected a mapping"):
        load_flat_yaml(listy)
    with pytest.raises(UserError, match="config file not found"):
        load_flat_yaml(tmp_path / "nope.yaml")
    wrong_type = tmp_path / "t.yaml"
    wrong_type.write_text("batch_size: many\n")
    with pytest.raises(ConfigError, match=r"t.yaml: batch_size: expected int"):
        build_config("small", load_flat_yaml(wrong_type), {}, None, source=str(wrong_type))


def test_set_parsing_and_errors():
    assert parse_sets(["lr_G=1e-4", " spectral_norm = true"]) == {"lr_G": "1e-4", "spectral_norm": "true"}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_sets(["lr_G"])
    with pytest.raises(ConfigError, match=r"--set: gp_weight: invalid value -1.0"):
        build_config("small", {}, {"gp_weight": "-1"}, None)


def test_help_keys_lists_every_key(capsys):
    text = help_keys_text()
    for key in TrainConfig().to_flat():
        assert f"\n{key} " in text
    assert "instance | batch | none" in text
    assert command_train(_args(help_keys=True)) == 0
    assert "lambda_face" in capsys.readouterr().out


def test_paper_profile_lists_missing_assets(tmp_path):
    with pytest.raises(UserError) as err:
        command_train(_args(profile="paper", out=str(tmp_path / "r")))
    msg = str(err.value)
    for key in ("data_root", "body_model", "vgg_weights", "face_weights"):
        assert key in msg
    with pytest.raises(UserError) as err:
        command_train(_args(profile="paper", out=str(tmp_path / "r"), sets=["vgg_weights=/x/vgg.pth"]))
    assert "vgg_weights" not in str(err.value) and "face_weights" in str(err.value)


def test_unknown_profile_and_resume_guards(tmp_path):
    with pytest.raises(ConfigError, match="tiny"):
        command_train(_args(profile="huge"))
    with pytest.raises(UserError, match="no checkpoint to resume"):
        command_train(_args(out=str(tmp_path / "empty"), resume=True))
    (tmp_path / "used" / "checkpoints").mkdir(parents=True)
    (tmp_path / "used" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(UserError, match="already holds a run"):
        command_train(_args(out=str(tmp_path / "used")))
