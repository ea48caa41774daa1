"""One way to build a TrainConfig from layers of flat overrides, in one order for every command:

    defaults <- profile <- study base <- dataset <- study profile overrides <- budget
             <- --set <- --steps <- variant <- seed

``lwgan-study train`` uses the profile, its config file (in the study base's place), --set and
--steps; a study uses every layer. Each layer names where its values came from, so the one error
type, ``ConfigError``, says which file and key path was wrong and what is allowed (a study file's
errors are ``StudyError``, a ConfigError with the same fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from lwgan.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Layer:
    """Flat overrides from one place. ``source``: the file (or flag) they came from; ``prefix``: their
    key path inside it (``profiles.small``), put before the key in errors."""

    values: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    prefix: str = ""


def layer_config(layers: Sequence[Layer], base: TrainConfig | None = None) -> TrainConfig:
    """Apply ``layers`` in order on ``base`` (default: the reference defaults). The first bad key
    raises ConfigError with the layer's source and ``<prefix>.<key>``."""
    cfg = base if base is not None else TrainConfig()
    for layer in layers:
        if not layer.values:
            continue
        try:
            cfg = cfg.override(dict(layer.values))
        except ConfigError as err:
            raise err.with_source(layer.source, layer.prefix) from None
    return cfg


def config_layers(
    profile: Mapping[str, Any] | None = None,
    *,
    profile_name: str = "",
    source: str = "",
    base: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    study_profile: Mapping[str, Any] | None = None,
    budget_steps: int | None = None,
    sets: Mapping[str, Any] | None = None,
    steps: int | None = None,
    variant: tuple[str, Mapping[str, Any]] | None = None,
    seed: int | None = None,
    base_prefix: str = "base",
) -> list[Layer]:
    """The layers in the one order (module docstring). ``source`` is the study or config file that
    ``base`` .. ``variant`` come from; ``base_prefix`` is "" for a plain config file (its keys are
    top-level) and "base" for a study file's ``base:``; ``variant`` is ``(name, overrides)``."""
    layers = [Layer(dict(profile or {}), f"profile {profile_name}".strip())]
    layers.append(Layer(dict(base or {}), source, base_prefix))
    if dataset:
        layers.append(Layer({"data_root": dataset}, source, "dataset"))
    layers.append(Layer(dict(study_profile or {}), source, f"profiles.{profile_name}"))
    if budget_steps is not None:
        layers.append(Layer({"max_steps": budget_steps}, source, "budget"))
    layers.append(Layer(dict(sets or {}), "--set"))
    if steps is not None:
        layers.append(Layer({"max_steps": steps}, "--steps"))
    if variant is not None:
        layers.append(Layer(dict(variant[1]), source, f"variants.{variant[0]}"))
    if seed is not None:
        layers.append(Layer({"seed": seed}, "--seeds"))
    return layers
