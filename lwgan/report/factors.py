"""Single-factor contrasts found from the variants' configs: any two arms of a study (the baseline
included) whose configs differ in exactly one factor -- one key, or one group of keys that change
together (``FACTOR_GROUPS``: a TTUR setting moves lr_G, lr_D, eta_F and the decay together) -- isolate
that factor: in the seed paper's Table 1, E3 - E4 is spectral norm and E4 - E2 is lambda_rec.

The contrast is oriented "factor changed minus factor as in the baseline" (E3 - E4: spectral norm on
minus off); when both or neither arm keep the baseline's values, the later variant minus the earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from lwgan import vocab
from lwgan.report import stats
from lwgan.report.tables import config_diff, fmt_key, fmt_param, variant_params

# Keys that a study changes together; a difference confined to one group is one factor, named so.
FACTOR_GROUPS: dict[str, tuple[str, ...]] = {
    "TTUR (learning rates and their schedule)": ("lr_G", "lr_D", "lr_final", "epochs_no_decay", "epochs_decay", "train_epochs"),
    "spectral norm": ("spectral_norm", "spectral_norm_G"),
}
# Config keys that never make a factor (bookkeeping, not method).
IGNORED_KEYS = ("max_steps", "seed", "variant")
FAMILY = "factor contrasts"


@dataclass(frozen=True)
class Factor:
    """``a`` minus ``b`` isolates ``name``; ``changes``: key -> (value in b, value in a)."""

    a: str
    b: str
    name: str
    changes: dict[str, tuple[Any, Any]]

    @property
    def label(self) -> str:
        return f"{self.a} \u2212 {self.b}"

    def changes_text(self) -> str:
        return "; ".join(f"{fmt_key(k)}: {fmt_param(k, x)} \u2192 {fmt_param(k, y)}" for k, (x, y) in self.changes.items())


def factor_of(keys: Sequence[str]) -> str | None:
    """The one factor that ``keys`` (the keys two configs differ in) make up, or None."""
    keys = [k for k in keys if k not in IGNORED_KEYS]
    if not keys:
        return None
    if len(keys) == 1 and not any(keys[0] in g for g in FACTOR_GROUPS.values()):
        return keys[0]
    for name, group in FACTOR_GROUPS.items():
        if all(k in group for k in keys):
            return name
    return None


def find_factors(params: Mapping[str, Mapping[str, Any]], variants: Sequence[str], baseline: str = vocab.BASELINE) -> list[Factor]:
    """Every pair of arms (in ``variants`` order) that differ in exactly one factor. ``params``:
    variant -> flat config (``tables.variant_params``)."""
    base = params.get(baseline, {})
    order = [v for v in variants if v in params and params[v]]
    out = []
    for i, first in enumerate(order):
        for second in order[i + 1:]:
            diff = {k: d for k, d in config_diff(params[second], params[first]).items() if k not in IGNORED_KEYS}
            name = factor_of(list(diff))
            if name is None:
                continue
            moved_first = any(params[first].get(k) != base.get(k) for k in diff)
            moved_second = any(params[second].get(k) != base.get(k) for k in diff)
            if moved_first and not moved_second:
                a, b = first, second
            else:
                a, b = second, first
            changes = {k: (params[b].get(k), params[a].get(k)) for k in diff}
            out.append(Factor(a, b, name, changes))
    return out


def factor_comparison(finals: pd.DataFrame, factors: Sequence[Factor], keys: Sequence[str]) -> pd.DataFrame:
    """``stats.compare_to_baseline`` rows for each factor's ``a`` against its ``b`` (column ``variant``
    holds ``Factor.label``, ``factor`` its name); Holm across every test of this frame."""
    from lwgan.report import contrast as C

    parts = []
    ref = "\u0000reference"
    for f in factors:
        sub = finals[finals["variant"].isin([f.a, f.b])].copy()
        sub.loc[sub["variant"] == f.b, "variant"] = ref
        comp = stats.compare_to_baseline(sub, keys, [f.a], baseline=ref)
        comp["variant"] = f.label
        comp["factor"] = f.name
        parts.append(comp)
    if not parts:
        return pd.DataFrame(columns=stats.COMPARISON_COLUMNS + ["factor"])
    out = pd.concat(parts, ignore_index=True)
    out["family"] = FAMILY
    out["p_holm"] = C.holm(out["p"].to_numpy(float))
    out["marked"] = [bool(p == p and p < stats.ALPHA) for p in out["p_holm"].to_numpy(float)]
    return out


def study_factors(runs: pd.DataFrame, variants: Sequence[str], baseline: str = vocab.BASELINE) -> list[Factor]:
    """``find_factors`` on the configs the runs logged (params)."""
    return find_factors({v: variant_params(runs, v) for v in variants}, variants, baseline)
