"""Study files, part 2: parsing. YAML -> a validated StudySpec; every error names the file, the key path
and the allowed values. The baseline and every variant are checked as configs at every profile
(lwgan.study.resolution)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Mapping

import yaml

from lwgan import vocab
from lwgan.config import FIELD_SECTION, FIELD_TYPES, ConfigError, TrainConfig
from lwgan.profiles import DEFAULT_PROFILE, PROFILES
from lwgan.study.claims import parse_claims
from lwgan.study.schema import (
    BUDGET_KEYS, DIST_KEYS, DIST_TYPES, EMBEDDED_SOURCE, OBJECTIVE_KEYS, PROFILE_RESERVED, RESOURCE_KEYS, SCHEDULER_KEYS,
    SEARCHABLE_KEYS, TOP_KEYS, VARIANT_RESERVED, Budget, Distribution, Resources, Scheduler, SearchObjective, StudyError,
    StudySpec, Variant,
)
from lwgan.vocab import BASELINE

# ----------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------


def load_study(path: str | Path | None) -> StudySpec:
    """Read and validate a study file; a shipped study's name (``ensembles``) when no such file exists;
    ``None`` = the embedded default (the E1-E4 ensembles study)."""
    from lwgan.study.library import DEFAULT_STUDY, embedded_studies, embedded_study

    if path is None:
        file = embedded_study(DEFAULT_STUDY)
        if file is None:
            raise StudyError(EMBEDDED_SOURCE, "", f"the embedded study {DEFAULT_STUDY!r} is missing", "pass a study file")
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            shipped = embedded_study(str(path))
            if shipped is None:
                raise StudyError(str(file), "", "study file not found",
                                 "a path to a study YAML, or a shipped study: " + " | ".join(embedded_studies()))
            file = shipped
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise StudyError(str(file), "", f"not valid YAML ({err})") from None
    return parse_study(data, str(file.resolve()))


def parse_study(data: Any, source: str) -> StudySpec:
    """Validate a study mapping; ``source`` names it in errors."""
    from lwgan.study.resolution import baseline_config, check_search_baseline  # resolution imports this module
    if not isinstance(data, dict):
        raise StudyError(source, "", f"expected a mapping with keys {', '.join(TOP_KEYS)}, got {type(data).__name__}")
    _no_unknown(source, "", data, TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or not _safe_name(name):
        raise StudyError(source, "name", f"invalid study name {name!r}", "a non-empty string of letters, digits, '-', '_', '.'")
    description = _optional_str(source, "description", data.get("description"))
    dataset = data.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise StudyError(source, "dataset", f"expected null or a path, got {dataset!r}", "null (synthetic) | a path to an iPER-format folder")

    base = _flat(source, "base", data.get("base") or {})
    profiles = _profiles(source, data.get("profiles") or {})
    default_profile = data.get("default_profile", DEFAULT_PROFILE)
    if default_profile not in PROFILES:
        raise StudyError(source, "default_profile", f"unknown profile {default_profile!r}", " | ".join(PROFILES))

    variants = _variants(source, data.get("variants") or {}) + _grid(source, data.get("grid") or {})
    names = [v.name for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StudyError(source, f"variants.{dup[0]}", "variant name used twice (grid and variants together)", "unique names")
    search = _search(source, data.get("search") or {})
    if search and data.get("claims"):
        raise StudyError(source, "claims", "claims compare named variants; a search has none", "remove 'claims' or use variants")
    if search and variants:
        raise StudyError(source, "search", "a study is either an ablation (variants / grid) or a search, not both", "remove 'search' or 'variants'/'grid'")

    seeds = parse_seeds(source, "seeds", data.get("seeds", 1))
    if search and len(seeds) != 1:
        raise StudyError(source, "seeds", "a search runs each suggested config once", "1 or a one-element list")
    spec = StudySpec(
        name=name.strip(),
        source=source,
        description=description,
        dataset=dataset,
        base=base,
        variants=tuple(variants),
        search=tuple(search),
        seeds=seeds,
        budget=_budget(source, data.get("budget") or {}),
        resources=_resources(source, data.get("resources") or {}),
        scheduler=_scheduler(source, data.get("scheduler") or {}),
        objective=_objective(source, data.get("objective") or {}),
        profiles=profiles,
        default_profile=default_profile,
        raw=dict(data),
        claims=parse_claims(data.get("claims"), source, names),
    )
    for prof in PROFILES:  # every variant must be a valid config at every profile
        baseline_config(spec, prof, check_only=True)
    check_search_baseline(spec)
    return spec


# ----------------------------------------------------------------------------------
# Section validators
# ----------------------------------------------------------------------------------


def _safe_name(name: str) -> bool:
    return all(c.isalnum() or c in "-_.=," for c in name.strip())


def _optional_str(source: str, key: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StudyError(source, key, f"expected text, got {value!r}", "a string")
    return value.strip()


def _no_unknown(source: str, prefix: str, mapping: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise StudyError(source, path, "unknown key", ", ".join(allowed))


def _mapping(source: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StudyError(source, key, f"expected a mapping, got {value!r}", "key: value pairs")
    return value


def _flat(source: str, prefix: str, value: Any, reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    """A mapping of flat config keys (names checked here; values by TrainConfig when applied)."""
    mapping = _mapping(source, prefix, value)
    for key, val in mapping.items():
        if key in reserved:
            continue
        if key not in FIELD_SECTION:
            try:
                TrainConfig.from_flat({key: val})
            except ConfigError as err:
                raise StudyError(source, f"{prefix}.{key}", err.message, "a flat config key (lwgan-study train --help-keys)") from None
        if isinstance(val, (dict, list)):
            raise StudyError(source, f"{prefix}.{key}", f"expected a single value, got {val!r}", FIELD_TYPES.get(key, "a value"))
    return {str(k): v for k, v in mapping.items()}


def _variants(source: str, value: Any) -> list[Variant]:
    out = []
    for name, body in _mapping(source, "variants", value).items():
        name = str(name)
        if name == BASELINE:
            raise StudyError(source, f"variants.{name}", "the baseline is always part of a study; do not define it", "another name")
        if not _safe_name(name):
            raise StudyError(source, f"variants.{name}", "invalid variant name", "letters, digits, '-', '_', '.'")
        body = _flat(source, f"variants.{name}", body or {}, VARIANT_RESERVED)
        desc = _optional_str(source, f"variants.{name}.description", body.pop("description", None))
        offset = body.pop("seed_offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise StudyError(source, f"variants.{name}.seed_offset", f"invalid value {offset!r}", "an integer >= 0 (added to every seed)")
        if not body and not offset:
            raise StudyError(source, f"variants.{name}", "a variant must override at least one key", "flat config keys, or seed_offset (a copy on other seeds)")
        out.append(Variant(name, body, desc, offset))
    return out


def format_value(value: Any) -> str:
    """A config value as study files and trial names write it: ``true``, ``1e-4``, ``E1``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _grid(source: str, value: Any) -> list[Variant]:
    grid = _mapping(source, "grid", value)
    axes = []
    for key, values in grid.items():
        if key not in FIELD_SECTION:
            _flat(source, "grid", {key: 0})
        if not isinstance(values, list) or not values:
            raise StudyError(source, f"grid.{key}", f"expected a non-empty list of values, got {values!r}", FIELD_TYPES[key])
        axes.append([(key, v) for v in values])
    if not axes:
        return []
    return [
        Variant(",".join(f"{k}={format_value(v)}" for k, v in combo), dict(combo))
        for combo in itertools.product(*axes)
    ]


def _search(source: str, value: Any) -> list[Distribution]:
    space = _mapping(source, "search", value)
    dists: list[Distribution] = []
    for name, body in space.items():
        key = f"search.{name}"
        body = _mapping(source, key, body)
        _no_unknown(source, key, body, DIST_KEYS)
        kind = body.get("type")
        if kind not in DIST_TYPES:
            raise StudyError(source, f"{key}.type", f"invalid distribution {kind!r}", " | ".join(DIST_TYPES))
        is_switch = name not in FIELD_SECTION
        if is_switch and kind != "categorical":
            raise StudyError(source, key, "not a searchable config key; a switch (used only in 'when') must be categorical",
                             " | ".join(SEARCHABLE_KEYS) + " | a categorical switch")
        if not is_switch and name not in SEARCHABLE_KEYS:
            raise StudyError(source, key, "not a searchable key (a search tunes the method, not sizes)", " | ".join(SEARCHABLE_KEYS))
        if "baseline" in body and not is_switch:
            raise StudyError(source, f"{key}.baseline", "only switches take a baseline; config keys use the baseline config", "remove it")
        when = _mapping(source, f"{key}.when", body.get("when") or {})
        if kind == "categorical":
            choices = body.get("choices")
            if not isinstance(choices, list) or not choices:
                raise StudyError(source, f"{key}.choices", f"expected a non-empty list, got {choices!r}", "e.g. [true, false]")
            if not is_switch:
                for c in choices:
                    try:
                        TrainConfig.from_flat({name: c})
                    except ConfigError as err:
                        raise StudyError(source, f"{key}.choices", err.message, err.allowed) from None
            baseline = body.get("baseline", choices[0]) if is_switch else None
            if is_switch and baseline not in choices:
                raise StudyError(source, f"{key}.baseline", f"{baseline!r} is not one of the choices", str(choices))
            dists.append(Distribution(name, kind, choices=tuple(choices), when=dict(when), baseline=baseline, is_switch=is_switch))
            continue
        low, high = body.get("low"), body.get("high")
        for bound_name, bound in (("low", low), ("high", high)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise StudyError(source, f"{key}.{bound_name}", f"expected a number, got {bound!r}", "a number")
        if not low < high:
            raise StudyError(source, key, f"low {low} must be below high {high}", "low < high")
        if kind == "log_uniform" and low <= 0:
            raise StudyError(source, f"{key}.low", f"{low} is not positive", "> 0 for log_uniform")
        typ = FIELD_TYPES[name]
        if kind == "int" and "int" not in typ:
            raise StudyError(source, f"{key}.type", f"'int' for a {typ} key", "uniform | log_uniform")
        if kind in ("uniform", "log_uniform") and "float" not in typ:
            raise StudyError(source, f"{key}.type", f"'{kind}' for a {typ} key", "int | categorical")
        step = body.get("step")
        if step is not None and (kind != "int" or not isinstance(step, int) or step < 1):
            raise StudyError(source, f"{key}.step", f"invalid step {step!r}", "an integer >= 1, for type int only")
        for bound in (low, high):
            try:
                TrainConfig.from_flat({name: bound})
            except ConfigError as err:
                raise StudyError(source, key, f"bound {bound!r}: {err.message}", err.allowed) from None
        dists.append(Distribution(name, kind, low=low, high=high, step=step, when=dict(when)))
    dists = _order_by_conditions(source, dists)
    used = {dep for d in dists for dep in d.when}
    for d in dists:
        if d.is_switch and d.name not in used:
            raise StudyError(source, f"search.{d.name}", "a switch that no parameter's 'when' uses", "use it in a 'when' or remove it")
    return dists


def _order_by_conditions(source: str, dists: list[Distribution]) -> list[Distribution]:
    """Check every ``when`` names a categorical parameter and one of its choices; order parameters so
    that each comes after those it depends on (file order otherwise)."""
    by_name = {d.name: d for d in dists}
    categorical = ", ".join(d.name for d in dists if d.kind == "categorical") or "none defined"
    for d in dists:
        for dep, dep_value in d.when.items():
            prev = by_name.get(dep)
            if prev is None or prev.kind != "categorical" or dep == d.name:
                raise StudyError(source, f"search.{d.name}.when.{dep}", "must name another categorical search parameter", categorical)
            if dep_value not in prev.choices:
                raise StudyError(source, f"search.{d.name}.when.{dep}", f"{dep_value!r} is not one of its choices", str(list(prev.choices)))
    ordered: list[Distribution] = []
    pending = list(dists)
    while pending:
        ready = [d for d in pending if all(dep in {o.name for o in ordered} for dep in d.when)]
        if not ready:
            raise StudyError(source, f"search.{pending[0].name}.when", "conditions form a cycle", "conditions on parameters that do not depend back")
        ordered += ready
        pending = [d for d in pending if d not in ready]
    return ordered


def parse_seeds(source: str, key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise StudyError(source, key, f"invalid value {value!r}", "an int >= 1 (replicates) or a list of distinct ints")
    if isinstance(value, int):
        if value < 1:
            raise StudyError(source, key, f"invalid value {value}", "an int >= 1 (replicates) or a list of distinct ints")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value) \
            and len(set(value)) == len(value):
        return tuple(value)
    raise StudyError(source, key, f"invalid value {value!r}", "an int >= 1 (replicates) or a list of distinct ints >= 0")


def _budget(source: str, value: Any) -> Budget:
    budget = _mapping(source, "budget", value)
    _no_unknown(source, "budget", budget, BUDGET_KEYS)
    for key in BUDGET_KEYS:
        val = budget.get(key)
        if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float)) or val <= 0
                                or (key != "time_budget_s" and not float(val).is_integer())):
            allowed = "a number > 0 (seconds) or null" if key == "time_budget_s" else "an integer >= 1 or null"
            raise StudyError(source, f"budget.{key}", f"invalid value {val!r}", allowed)
    return Budget(
        int(budget["max_steps"]) if budget.get("max_steps") is not None else None,
        int(budget["max_trials"]) if budget.get("max_trials") is not None else None,
        float(budget["time_budget_s"]) if budget.get("time_budget_s") is not None else None,
    )


def _resources(source: str, value: Any) -> Resources:
    res = _mapping(source, "resources", value)
    _no_unknown(source, "resources", res, RESOURCE_KEYS)
    cpu, gpu = res.get("cpu", 1), res.get("gpu", 0)
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu < 1 or not float(cpu).is_integer():
        raise StudyError(source, "resources.cpu", f"invalid value {cpu!r}", "an integer >= 1 (CPU cores per trial)")
    if isinstance(gpu, bool) or not isinstance(gpu, (int, float)) or not 0 <= gpu <= 8:
        raise StudyError(source, "resources.gpu", f"invalid value {gpu!r}", "0 (CPU) or a GPU fraction / count in (0, 8]")
    return Resources(float(cpu), float(gpu))


def _scheduler(source: str, value: Any) -> Scheduler:
    sched = _mapping(source, "scheduler", value)
    _no_unknown(source, "scheduler", sched, SCHEDULER_KEYS)
    if sched.get("type", "asha") != "asha":
        raise StudyError(source, "scheduler.type", f"invalid scheduler {sched.get('type')!r}", "asha")
    grace, factor = sched.get("grace_period", 50), sched.get("reduction_factor", 2)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
        raise StudyError(source, "scheduler.grace_period", f"invalid value {grace!r}", "an integer >= 1 (steps)")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise StudyError(source, "scheduler.reduction_factor", f"invalid value {factor!r}", "an integer >= 2")
    return Scheduler(grace, factor)


def _objective(source: str, value: Any) -> SearchObjective:
    obj = _mapping(source, "objective", value)
    _no_unknown(source, "objective", obj, OBJECTIVE_KEYS)
    metric = obj.get("metric", SearchObjective.metric)
    allowed = vocab.objective_metrics()
    if metric not in allowed:
        raise StudyError(source, "objective.metric", f"invalid metric {metric!r}", " | ".join(allowed))
    direction = vocab.direction(metric)
    mode = obj.get("mode", "min" if direction == vocab.Direction.LOWER else "max")
    if mode not in ("max", "min"):
        raise StudyError(source, "objective.mode", f"invalid mode {mode!r}", "max | min")
    expected = {vocab.Direction.HIGHER: "max", vocab.Direction.LOWER: "min"}.get(direction, mode)
    if mode != expected:
        raise StudyError(source, "objective.mode", f"{metric} is {direction}-is-better: mode {mode!r} would pick the worst trial",
                         expected)
    return SearchObjective(metric, mode)


def _profiles(source: str, value: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for name, body in _mapping(source, "profiles", value).items():
        if name not in PROFILES:
            raise StudyError(source, f"profiles.{name}", "unknown profile", " | ".join(PROFILES))
        body = _flat(source, f"profiles.{name}", body or {}, PROFILE_RESERVED)
        if "seeds" in body:
            parse_seeds(source, f"profiles.{name}.seeds", body["seeds"])
        out[str(name)] = body
    return out
