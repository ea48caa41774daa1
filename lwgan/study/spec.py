"""Study files: the YAML schema (lwgan.study.schema), its validation (lwgan.study.parsing: every error
names the file, the key path and the allowed values) and its resolution into the concrete trials a
profile runs (lwgan.study.resolution). This module is their public face.

A study is a baseline (reference defaults <- profile <- ``base``) plus either named variants / a grid
(an ablation: one trial per variant x seed) or an Optuna search space (a search).
"""

from __future__ import annotations

from lwgan.study.parsing import format_value, load_study, parse_study
from lwgan.study.resolution import resolve_study, search_baseline_point
from lwgan.study.schema import (
    Budget,
    Distribution,
    Objective,
    ResolvedStudy,
    Resources,
    Scheduler,
    SearchObjective,
    StudyError,
    StudySpec,
    TrialPlan,
    Variant,
)
from lwgan.vocab import BASELINE

__all__ = [
    "BASELINE", "Budget", "Distribution", "Objective", "ResolvedStudy", "Resources", "Scheduler", "SearchObjective",
    "StudyError", "StudySpec", "TrialPlan", "Variant", "format_value", "load_study", "parse_study", "resolve_study",
    "search_baseline_point",
]
