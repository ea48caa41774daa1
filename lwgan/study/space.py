"""A study's search space as an Optuna define-by-run function (conditional parameters via ``when``),
and the translation of a suggested point back to flat config values."""

from __future__ import annotations

from typing import Any, Mapping

from lwgan.config import FIELD_SECTION
from lwgan.study.spec import Distribution, StudySpec


class DefineByRun:
    """Callable for ``OptunaSearch(space=...)``: suggests each parameter whose ``when`` holds, in file order."""

    def __init__(self, distributions: tuple[Distribution, ...]):
        self.distributions = distributions

    def __call__(self, trial) -> None:
        chosen: dict[str, Any] = {}
        for dist in self.distributions:
            if not all(chosen.get(k) == v for k, v in dist.when.items()):
                continue
            chosen[dist.name] = suggest(trial, dist)
        return None


def suggest(trial, dist: Distribution) -> Any:
    if dist.kind == "categorical":
        return trial.suggest_categorical(dist.name, list(dist.choices))
    if dist.kind == "int":
        return trial.suggest_int(dist.name, int(dist.low), int(dist.high), step=dist.step or 1)
    return trial.suggest_float(dist.name, float(dist.low), float(dist.high), log=dist.kind == "log_uniform")


def config_values(point: Mapping[str, Any]) -> dict[str, Any]:
    """The config keys of a suggested point (switches such as ``use_gp`` only gate other keys)."""
    return {k: v for k, v in point.items() if k in FIELD_SECTION}


def describe_space(spec: StudySpec) -> list[str]:
    return [d.describe() for d in spec.search]
