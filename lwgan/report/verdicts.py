"""Verdicts on a study's claims: each claim of the study file (lwgan.study.claims) tested on the
per-seed values of its two arms, Holm-corrected across the study's claims.

- **confirmed**: Holm-adjusted p < alpha and the estimate has the claimed sign;
- **contradicted**: Holm-adjusted p < alpha and the estimate has the other sign;
- **inconclusive**: neither, or untestable (fewer than 3 seeds, no spread, a missing arm). It then
  says how far the study was from telling: the minimum detectable effect at this n, and the seeds
  (pairs, or per arm) that would detect the paper's value (``delta``) or the observed estimate
  (``compare``) with 80% power, at alpha / m (m claims: the strictest step of Holm), from the
  seed-to-seed sd observed.

The per-run values are one long frame (run_id, variant, seed, key, value): the final-window means of
the logged metrics, the stability measures and the unweighted terms (``unweighted_finals``).
Every function is pure except ``publish``, which writes the verdicts onto the MLflow parent run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lwgan import vocab
from lwgan.report import contrast as C
from lwgan.study.claims import Claim

RELATIVE_GROUPS = (vocab.Group.GENERATOR, vocab.Group.DISCRIMINATOR, vocab.Group.UNWEIGHTED)
VALUE_COLUMNS = ["run_id", "variant", "seed", "key", "value"]
CLAIM_COLUMNS = [
    "id", "kind", "section", "statement", "variant", "against", "metric", "claimed", "paper", "scale",
    "test", "n_variant", "n_against", "n_pairs", "mean_variant", "mean_against", "estimate", "low", "high",
    "interval", "p", "p_holm", "verdict", "sign_agrees", "paper_in_interval", "mde", "seeds_needed",
    "seeds_needed_for", "alpha_power", "note",
]


def relative_scale(metric: str) -> bool:
    """Loss terms compare in % of the reference; SSIM, LPIPS, PSNR (dB), stability measures absolutely."""
    m = vocab.METRICS.get(metric)
    return m is not None and m.group in RELATIVE_GROUPS


def scale_unit(metric: str, relative: bool) -> str:
    if relative:
        return "%"
    m = vocab.METRICS.get(metric)
    return m.unit if m is not None and m.unit else "abs"


# ----------------------------------------------------------------------------------
# Per-run values
# ----------------------------------------------------------------------------------


def unweighted_finals(finals: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """term / weight per run (``vocab.UNWEIGHTED``) from the final values and each run's config
    params (``param.<weight key>``); a zero weight gives no value."""
    if finals.empty or runs.empty:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    parts = []
    for term, weight_key in vocab.WEIGHT_KEYS.items():
        col = f"param.{weight_key}"
        if col not in runs:
            continue
        sub = finals[finals["key"] == term]
        if sub.empty:
            continue
        weights = pd.to_numeric(runs.set_index("run_id")[col], errors="coerce")
        w = sub["run_id"].map(weights).to_numpy(float)
        ok = np.isfinite(w) & (np.abs(w) > 0)
        if not ok.any():
            continue
        part = sub.loc[ok, ["run_id", "variant", "seed"]].copy()
        part["key"] = vocab.UNWEIGHTED[term]
        part["value"] = sub["value"].to_numpy(float)[ok] / w[ok]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[VALUE_COLUMNS]


def arms(values: pd.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    """(variant, key) -> {seed: value}, from a long per-run frame."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    if values.empty:
        return out
    for variant, seed, key, value in values[["variant", "seed", "key", "value"]].itertuples(index=False):
        if seed is None or pd.isna(seed) or value is None or not math.isfinite(float(value)):
            continue
        out.setdefault((str(variant), str(key)), {})[int(seed)] = float(value)
    return out


# ----------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """A claim, the contrast of its arms and the verdict. ``estimate``/``low``/``high`` are on the
    claim's scale (``scale``: "%" of the reference, else the metric's unit); ``interval`` says what
    low/high are (a 95% t- or Fieller interval, or the range of per-seed differences)."""

    claim: Claim
    contrast: C.Contrast
    relative: bool
    estimate: float
    low: float
    high: float
    interval: str
    p_holm: float
    verdict: vocab.Verdict
    sign_agrees: bool | None
    paper_in_interval: bool | None
    mde: float
    seeds_needed: float
    seeds_needed_for: str
    alpha_power: float
    note: str

    @property
    def scale(self) -> str:
        return scale_unit(self.claim.metric, self.relative)


def _interval_name(c: C.Contrast, relative: bool) -> str:
    if c.test == C.NO_TEST:
        if c.n_pairs:
            return f"range of the {c.n_pairs} per-seed differences"
        if c.n_a and c.n_b:
            return "range of variant - reference over all seed combinations"
        return ""
    kind = "Fieller" if relative else "t"
    return f"95% {kind} interval, {c.test}"


def _why_untested(c: C.Contrast, claim: Claim) -> str:
    for arm, n in ((claim.variant, c.n_a), (claim.against, c.n_b)):
        if n == 0:
            return f"no value of {claim.metric} for {arm} (no completed run, or the measure needs a longer history)"
    if c.test == C.NO_TEST:
        n = c.n_pairs if c.n_pairs else min(c.n_a, c.n_b)
        return f"too few seeds for a test ({n} {'pairs' if c.n_pairs else 'in the smaller arm'}; needs {C.MIN_SEEDS_TEST})"
    if not math.isfinite(c.p):
        return "no spread across seeds: a t-test is undefined"
    return ""


def evaluate_claims(
    claims: Sequence[Claim],
    values: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, float]],
    alpha: float = C.ALPHA,
    power: float = C.POWER,
    power_analysis: bool = True,
) -> list[ClaimResult]:
    """Test every claim on ``values`` (a long per-run frame, or ``arms(frame)``); Holm across the claims.
    ``power_analysis=False`` skips the minimum detectable effect and seeds needed (simulations)."""
    lookup = arms(values) if isinstance(values, pd.DataFrame) else values
    contrasts = [C.contrast(lookup.get((cl.variant, cl.metric), {}), lookup.get((cl.against, cl.metric), {})) for cl in claims]
    p_holm = C.holm([c.p if c.tested else math.nan for c in contrasts])
    m = max(1, len(claims))
    alpha_power = alpha / m
    out = []
    for claim, c, ph in zip(claims, contrasts, p_holm):
        relative = claim.relative if claim.kind is vocab.ClaimKind.DELTA else relative_scale(claim.metric)
        ref = abs(c.mean_b) if math.isfinite(c.mean_b) else math.nan
        to_scale = (lambda x: 100.0 * x / ref if ref > 1e-12 else math.nan) if relative else (lambda x: x)
        estimate = c.pct if relative else c.diff
        if c.test == C.NO_TEST:
            low, high = (c.pct_range_lo, c.pct_range_hi) if relative else (c.range_lo, c.range_hi)
        else:
            low, high = (c.pct_lo, c.pct_hi) if relative else (c.diff_lo, c.diff_hi)
        significant = math.isfinite(ph) and ph < alpha
        sign = int(np.sign(estimate)) if math.isfinite(estimate) else 0
        if significant and sign == claim.sign:
            verdict = vocab.Verdict.CONFIRMED
        elif significant and sign == -claim.sign:
            verdict = vocab.Verdict.CONTRADICTED
        else:
            verdict = vocab.Verdict.INCONCLUSIVE
        sign_agrees = None if sign == 0 else sign == claim.sign
        paper_in = None
        if claim.paper is not None and c.test != C.NO_TEST and math.isfinite(low) and math.isfinite(high):
            paper_in = bool(low <= claim.paper <= high)
        analyse = power_analysis and c.n >= 2
        mde = to_scale(C.min_detectable(c.n, c.sd, c.paired or c.n_pairs >= 2, alpha_power, power)) if analyse else math.nan
        if claim.paper is not None:
            effect_raw = claim.paper / 100.0 * ref if claim.relative else claim.paper
            needed_for = f"the paper's {claim.paper_text()}"
        else:
            effect_raw = c.diff
            needed_for = "the observed estimate"
        needed = C.seeds_needed(effect_raw, c.sd, c.paired or c.n_pairs >= 2, alpha_power, power) if analyse else math.nan
        if math.isfinite(needed):
            needed = max(needed, float(C.MIN_SEEDS_TEST))  # the procedure tests from MIN_SEEDS_TEST seeds on
        note = _why_untested(c, claim)
        out.append(ClaimResult(claim, c, relative, estimate, low, high, _interval_name(c, relative), float(ph), verdict,
                               sign_agrees, paper_in, mde, needed, needed_for, alpha_power, note))
    return out


def claims_frame(results: Sequence[ClaimResult]) -> pd.DataFrame:
    """``data/claims.csv``: one row per claim (CLAIM_COLUMNS)."""
    rows = []
    for r in results:
        cl, c = r.claim, r.contrast
        rows.append(dict(
            id=cl.id, kind=str(cl.kind), section=cl.section, statement=cl.statement, variant=cl.variant,
            against=cl.against, metric=cl.metric, claimed=cl.direction, paper=cl.paper_text(), scale=r.scale,
            test=c.test, n_variant=c.n_a, n_against=c.n_b, n_pairs=c.n_pairs, mean_variant=c.mean_a, mean_against=c.mean_b,
            estimate=r.estimate, low=r.low, high=r.high, interval=r.interval, p=c.p, p_holm=r.p_holm, verdict=str(r.verdict),
            sign_agrees=r.sign_agrees, paper_in_interval=r.paper_in_interval, mde=r.mde, seeds_needed=r.seeds_needed,
            seeds_needed_for=r.seeds_needed_for, alpha_power=r.alpha_power, note=r.note,
        ))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def counts(results: Iterable[ClaimResult]) -> dict[str, int]:
    out = {str(v): 0 for v in vocab.Verdict}
    for r in results:
        out[str(r.verdict)] += 1
    return out


def summary_text(results: Sequence[ClaimResult]) -> str:
    """``3 confirmed, 1 contradicted, 8 inconclusive of 12 claims``."""
    n = counts(results)
    return ", ".join(f"{n[str(v)]} {v}" for v in vocab.Verdict) + f" of {len(results)} claims"


# ----------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------


def fmt_num(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "\u2013"
    return f"{x:+.{digits}g}"


def estimate_text(r: ClaimResult) -> str:
    """``-12.3% [-20.1, -4.5]`` or ``+0.021 [0.004, 0.038] dB`` or ``+3.1% (range -1.0 .. 7.2)``."""
    unit = "%" if r.relative else ("" if r.scale == "abs" else f" {r.scale}")
    if not math.isfinite(r.estimate):
        return "\u2013"
    est = f"{r.estimate:+.2f}{unit}" if r.relative else f"{r.estimate:+.3g}{unit}"
    end = (lambda x: f"{x:+.1f}") if r.relative else (lambda x: f"{x:+.3g}")
    if not (math.isfinite(r.low) and math.isfinite(r.high)):
        return est + (" [unbounded]" if r.relative and r.contrast.tested else "")
    if r.contrast.test == C.NO_TEST:
        return f"{est} (range {end(r.low)} .. {end(r.high)})"
    return f"{est} [{end(r.low)}, {end(r.high)}]"


def p_text(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "\u2013"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def power_text(r: ClaimResult) -> str:
    """For an inconclusive verdict: how far the study was from telling."""
    if r.verdict is not vocab.Verdict.INCONCLUSIVE:
        return ""
    if not math.isfinite(r.mde) and not math.isfinite(r.seeds_needed):
        return "needs \u2265 2 seeds per arm to estimate the seed-to-seed spread"
    unit = "%" if r.relative else ("" if r.scale == "abs" else f" {r.scale}")
    parts = []
    if math.isfinite(r.mde):
        parts.append(f"detectable at this n: \u00b1{abs(r.mde):.3g}{unit}")
    if r.seeds_needed == math.inf:
        parts.append(f"> {C.MAX_SEEDS_REPORTED} seeds to detect {r.seeds_needed_for}")
    elif math.isfinite(r.seeds_needed):
        parts.append(f"{int(r.seeds_needed)} seeds to detect {r.seeds_needed_for}")
    if parts and r.contrast.n < C.MIN_SEEDS_TEST:
        parts.append(f"the seed-to-seed sd comes from only {r.contrast.n} seeds")
    return "; ".join(parts)


def verdict_sentence(r: ClaimResult) -> str:
    """One line for Findings and the MLflow tag."""
    cl, c = r.claim, r.contrast
    head = f"{cl.id} ({cl.section}) \u2013 {cl.statement}: **{r.verdict}**"
    body = f"{vocab.label(cl.metric)} {cl.variant} vs {cl.against} {estimate_text(r)}"
    if c.test != C.NO_TEST:
        body += f" ({c.test}, n = {c.n}, p = {p_text(c.p)}, Holm p = {p_text(r.p_holm)})"
    if cl.paper is not None:
        body += f"; paper {cl.paper_text()}"
        if r.paper_in_interval is not None:
            body += ", inside our interval" if r.paper_in_interval else ", outside our interval"
    if r.sign_agrees is not None:
        body += "; sign agrees" if r.sign_agrees else "; sign disagrees"
    extra = [x for x in (r.note, power_text(r)) if x]
    return f"{head}: {body}" + (f" ({'; '.join(extra)})" if extra else "") + "."


# ----------------------------------------------------------------------------------
# MLflow
# ----------------------------------------------------------------------------------

MAX_TAG = 4900  # MLflow's tag value limit is 5000 characters (8000 on newer servers)


def publish(client, parent_run_id: str, results: Sequence[ClaimResult]) -> None:
    """The verdicts on the MLflow parent run: one tag per claim (``lwgan.claim.<id>``), a summary tag
    (``lwgan.claims``) and the whole table as an MLflow table artifact (``claims.json``)."""
    if not results:
        return
    for r in results:
        text = f"{r.verdict}: {vocab.label(r.claim.metric)} {r.claim.variant} vs {r.claim.against} {estimate_text(r)}"
        if r.contrast.test != C.NO_TEST:
            text += f", Holm p {p_text(r.p_holm)}"
        if r.claim.paper is not None:
            text += f", paper {r.claim.paper_text()}"
        client.set_tag(parent_run_id, vocab.Tag.claim(r.claim.id), text[:MAX_TAG])
    client.set_tag(parent_run_id, vocab.Tag.CLAIMS_SUMMARY, summary_text(results))
    frame = claims_frame(results)
    table = json.loads(frame.to_json(orient="split", index=False))
    # log_dict replaces the file; log_table would append, so a rebuilt report would list every claim twice.
    client.log_dict(parent_run_id, table, "claims.json")
