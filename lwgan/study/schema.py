"""Study files, part 1: the schema. The keys a study file may hold, the typed (frozen) records a
valid study becomes (StudySpec, its variants, search space, budget, resources, scheduler, search
objective), the trials a profile resolves to, and the one error type, StudyError."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lwgan import vocab
from lwgan.config import LAMBDA_KEYS, ConfigError
from lwgan.profiles import DEFAULT_PROFILE
from lwgan.study.claims import Claim

EMBEDDED_SOURCE = "<embedded ensembles study>"

TOP_KEYS = (
    "name", "description", "dataset", "base", "variants", "grid", "search", "seeds", "budget",
    "resources", "scheduler", "objective", "profiles", "default_profile", "claims",
)
BUDGET_KEYS = ("max_steps", "max_trials", "time_budget_s")
RESOURCE_KEYS = ("cpu", "gpu")
SCHEDULER_KEYS = ("type", "grace_period", "reduction_factor")
OBJECTIVE_KEYS = ("metric", "mode")
VARIANT_RESERVED = ("description", "seed_offset")
PROFILE_RESERVED = ("seeds",)
DIST_TYPES = ("log_uniform", "uniform", "int", "categorical")
DIST_KEYS = ("type", "low", "high", "step", "choices", "when", "baseline")
# The method's knobs a search may tune (the seed paper's stabilizers, TTUR and the eight loss weights).
SEARCHABLE_KEYS = (
    "gp_weight", "spectral_norm", "spectral_norm_G", "label_smoothing", "lr_G", "lr_D", "lr_final",
    "epochs_no_decay", "epochs_decay", "beta1", "beta2", "d_every", *LAMBDA_KEYS,
)


class StudyError(ConfigError):
    """A study file is invalid: ConfigError's fields (``source`` file, ``key`` dotted path, ``message``,
    ``allowed`` values), given source first."""

    def __init__(self, source: str, key: str, message: str, allowed: str = ""):
        super().__init__(key, message, allowed, source)

    @classmethod
    def of(cls, err: ConfigError) -> "StudyError":
        return err if isinstance(err, StudyError) else cls(err.source, err.key, err.message, err.allowed)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    description: str = ""
    seed_offset: int = 0  # runs seeds s + seed_offset (a copy of the baseline on other seeds: a null control)


@dataclass(frozen=True)
class Distribution:
    """One search parameter. ``is_switch``: not a config key, only gates others through ``when``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, Any] = field(default_factory=dict)
    baseline: Any = None
    is_switch: bool = False

    def describe(self) -> str:
        if self.kind == "categorical":
            text = f"{self.name} in {list(self.choices)}"
        else:
            text = f"{self.name} ~ {self.kind}[{self.low:g}, {self.high:g}]"
        if self.when:
            text += " when " + ", ".join(f"{k}={v}" for k, v in self.when.items())
        return text


@dataclass(frozen=True)
class Budget:
    max_steps: int | None = None
    max_trials: int | None = None
    time_budget_s: float | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class Scheduler:
    grace_period: int = 50
    reduction_factor: int = 2


@dataclass(frozen=True)
class SearchObjective:
    """What a study optimises: a metric lwgan/vocab.py marks as an objective, and max | min (its direction)."""

    metric: str = vocab.EVAL_SSIM
    mode: str = "max"

    def better(self, a: float, b: float | None) -> bool:
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return not math.isnan(a)
        return a > b if self.mode == "max" else a < b


@dataclass(frozen=True)
class StudySpec:
    """A validated study file. ``raw`` is the mapping as given (logged as the ``study.yaml`` artifact)."""

    name: str
    source: str
    description: str = ""
    dataset: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    search: tuple[Distribution, ...] = ()
    seeds: tuple[int, ...] = (0,)
    budget: Budget = Budget()
    resources: Resources = Resources()
    scheduler: Scheduler = Scheduler()
    objective: SearchObjective = SearchObjective()
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_profile: str = DEFAULT_PROFILE
    raw: dict[str, Any] = field(default_factory=dict)
    claims: tuple[Claim, ...] = ()  # what the paper says, in testable form (lwgan.study.claims)

    @property
    def kind(self) -> str:
        return "search" if self.search else "ablation"


@dataclass(frozen=True)
class TrialPlan:
    """One trial of an ablation: a variant at a seed, with its full flat config."""

    trial_id: str
    variant: str
    seed: int
    overrides: dict[str, Any]  # what differs from the baseline config (seed excluded)
    config: dict[str, Any]  # the full flat config the Trainer gets


@dataclass(frozen=True)
class ResolvedStudy:
    """A study at one profile: the baseline config and the trials (ablation) or the space (search)."""

    spec: StudySpec
    profile: str
    baseline: dict[str, Any]
    trials: tuple[TrialPlan, ...]
    seeds: tuple[int, ...]
    missing_assets: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.spec.kind


# The old name of SearchObjective (the GAN loss is lwgan.models.objective.Objective); kept for callers not yet moved.
Objective = SearchObjective
