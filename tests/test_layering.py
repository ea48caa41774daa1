"""lwgan.layering: one order for every command, one error type naming the file and key path."""

from __future__ import annotations

import pytest

from lwgan.config import ConfigError, TrainConfig
from lwgan.layering import Layer, config_layers, layer_config
from lwgan.profiles import profile_overrides, resolve_config

ORDER = ("profile", "base", "study_profile", "sets", "variant")


def _layers(values: dict[str, float], **extra) -> list[Layer]:
    return config_layers(
        {"gp_weight": values["profile"]} if "profile" in values else {}, profile_name="small", source="s.yaml",
        base={"gp_weight": values["base"]} if "base" in values else None,
        study_profile={"gp_weight": values["study_profile"]} if "study_profile" in values else None,
        sets={"gp_weight": values["sets"]} if "sets" in values else None,
        variant=("E1", {"gp_weight": values["variant"]}) if "variant" in values else None, **extra,
    )


def test_each_layer_overrides_the_ones_before_it():
    values = {name: float(i + 1) for i, name in enumerate(ORDER)}
    for cut in range(len(ORDER), 0, -1):
        present = {k: v for k, v in values.items() if k in ORDER[:cut]}
        assert layer_config(_layers(present)).stabilizers.gp_weight == values[ORDER[cut - 1]]
    assert layer_config(_layers({})).stabilizers.gp_weight == TrainConfig().stabilizers.gp_weight


def test_budget_then_steps_then_seed():
    cfg = layer_config(_layers({}, budget_steps=7, steps=9, seed=3))
    assert (cfg.run.max_steps, cfg.run.seed) == (9, 3)
    assert layer_config(_layers({}, budget_steps=7)).run.max_steps == 7


@pytest.mark.parametrize("kwargs,text", [
    ({"study_profile": {"image_size": 50}}, "s.yaml: profiles.small.image_size: "),
    ({"base": {"lr_g": 1e-4}}, "s.yaml: base.lr_g: unknown config key; did you mean 'lr_G'?"),
    ({"sets": {"gp_weight": -1}}, "--set: gp_weight: invalid value -1"),
    ({"variant": ("E1", {"label_smoothing": 0.2})}, "s.yaml: variants.E1.label_smoothing: "),
    ({"budget_steps": 0}, "s.yaml: budget.max_steps: "),
])
def test_errors_name_the_source_and_key_path(kwargs, text):
    with pytest.raises(ConfigError) as err:
        layer_config(config_layers(profile_name="small", source="s.yaml", **kwargs))
    assert str(err.value).startswith(text), str(err.value)
    assert err.value.source in ("s.yaml", "--set")


def test_study_errors_are_config_errors_with_the_same_fields():
    from lwgan.study.spec import StudyError, parse_study

    with pytest.raises(ConfigError) as err:
        parse_study({"name": "x", "profiles": {"small": {"image_size": 50}}}, "x.yaml")
    assert isinstance(err.value, StudyError)
    assert (err.value.source, err.value.key) == ("x.yaml", "profiles.small.image_size")
    assert StudyError("f.yaml", "", "empty study").args[0] == "f.yaml: empty study"


def test_train_and_profiles_layer_the_same_way():
    from lwgan.train.commands import build_config

    cfg = build_config("tiny", {"gp_weight": 2.0}, {"gp_weight": 3.0}, 5, "t.yaml")
    assert cfg == layer_config([Layer(profile_overrides("tiny")), Layer({"gp_weight": 3.0, "max_steps": 5})])
    assert resolve_config("tiny", {"seed": 4}) == TrainConfig.from_flat({**profile_overrides("tiny"), "seed": 4})
