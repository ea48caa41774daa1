"""Study files, part 3: resolution. A StudySpec at a profile -> its baseline config (lwgan.layering's
one order) and the concrete trials (variant x seed) it runs."""

from __future__ import annotations

from typing import Any, Mapping

from lwgan.config import ConfigError, TrainConfig, diff_flat
from lwgan.layering import Layer, config_layers, layer_config
from lwgan.profiles import PROFILES, missing_real_assets, profile_overrides
from lwgan.study.parsing import parse_seeds
from lwgan.study.schema import PROFILE_RESERVED, ResolvedStudy, StudyError, StudySpec, TrialPlan, Variant
from lwgan.vocab import BASELINE

# ----------------------------------------------------------------------------------
# Resolution: a profile's baseline and trials
# ----------------------------------------------------------------------------------


def resolve_study(
    spec: StudySpec,
    profile: str | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    sets: Mapping[str, Any] | None = None,
) -> ResolvedStudy:
    """The trials of ``spec`` at ``profile`` (default: the study's); ``seeds`` / ``steps`` / ``sets`` come from the CLI."""
    profile = profile or spec.default_profile
    if profile not in PROFILES:
        raise StudyError(spec.source, "--profile", f"unknown profile {profile!r}", " | ".join(PROFILES))
    baseline_cfg = baseline_config(spec, profile, sets=sets, steps=steps)
    baseline = baseline_cfg.to_flat()
    seed_list = parse_seeds(spec.source, f"profiles.{profile}.seeds", spec.profiles.get(profile, {}).get("seeds")) \
        if "seeds" in spec.profiles.get(profile, {}) else spec.seeds
    if seeds is not None:
        if seeds < 1:
            raise StudyError(spec.source, "--seeds", f"invalid value {seeds}", ">= 1")
        seed_list = tuple(range(seeds))
    if spec.kind == "search" and len(seed_list) != 1:
        seed_list = seed_list[:1]  # a search runs each suggested config once
    trials: list[TrialPlan] = []
    if spec.kind == "ablation":
        for variant in (Variant(BASELINE, {}), *spec.variants):
            cfg = _layered([Layer(variant.overrides, spec.source, f"variants.{variant.name}")], baseline_cfg)
            overrides = diff_flat(cfg, baseline_cfg)
            overrides.pop("seed", None)
            for seed in (s + variant.seed_offset for s in seed_list):
                flat = _layered([Layer({"seed": seed}, spec.source, "seeds")], cfg).to_flat()
                trials.append(TrialPlan(f"{variant.name}-s{seed}", variant.name, seed, overrides, flat))
    return ResolvedStudy(spec, profile, baseline, tuple(trials), tuple(seed_list), tuple(missing_real_assets(profile, baseline_cfg)))


def baseline_config(spec: StudySpec, profile: str, sets: Mapping[str, Any] | None = None, steps: int | None = None,
                     check_only: bool = False) -> TrainConfig:
    """The baseline in the one layering order (lwgan.layering): defaults <- lwgan profile <- base <-
    dataset <- study profile <- budget.max_steps <- --set <- --steps; ``check_only`` also applies
    every variant (each must be a valid config)."""
    prof = {k: v for k, v in spec.profiles.get(profile, {}).items() if k not in PROFILE_RESERVED}
    cfg = _layered(config_layers(
        profile_overrides(profile), profile_name=profile, source=spec.source, base=spec.base, dataset=spec.dataset,
        study_profile=prof, budget_steps=spec.budget.max_steps, sets=sets, steps=steps,
    ))
    if check_only:
        for variant in spec.variants:
            _layered([Layer(variant.overrides, spec.source, f"variants.{variant.name}")], cfg)
    return cfg


def _layered(layers: list[Layer], base: TrainConfig | None = None) -> TrainConfig:
    """lwgan.layering.layer_config, its ConfigError as a StudyError (same fields)."""
    try:
        return layer_config(layers, base)
    except ConfigError as err:
        raise StudyError.of(err) from None


def check_search_baseline(spec: StudySpec) -> None:
    """The baseline is the first trial of a search: its values must lie in the space."""
    if not spec.search:
        return
    base = baseline_config(spec, spec.default_profile).to_flat()
    for point_key, value in search_baseline_point(spec, base).items():
        dist = next(d for d in spec.search if d.name == point_key)
        ok = value in dist.choices if dist.kind == "categorical" else dist.low <= value <= dist.high
        if not ok:
            raise StudyError(
                spec.source, f"search.{point_key}", f"the baseline value {value!r} is outside the space",
                "a range / choices that include the baseline (the baseline is always trial 1)",
            )


def search_baseline_point(spec: StudySpec, baseline: Mapping[str, Any]) -> dict[str, Any]:
    """The search parameters' values at the baseline (switches at their ``baseline``), respecting ``when``."""
    point: dict[str, Any] = {}
    for dist in spec.search:
        if not all(point.get(k) == v for k, v in dist.when.items()):
            continue
        point[dist.name] = dist.baseline if dist.is_switch else baseline[dist.name]
    return point
