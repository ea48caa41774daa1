"""The report's sections, in order: design, run accounting, delta tables, curves, stability, samples,
findings. Each function turns the collected frames into document blocks; the figure sections (curves,
stability, samples) live in ``lwgan.report.visual``; ``report_blocks`` puts them together.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lwgan import vocab
from lwgan.report import factors as factor_mod
from lwgan.report import figures, schedule, stats, tables, verdicts, visual
from lwgan.report.collect import StudyRuns, json_tag
from lwgan.report.document import DAGGER, Block, Bullets, Cell, Heading, Paragraph, Table
from lwgan.report.findings import findings
from lwgan.report.stability import StabilitySettings, stability_finals, stability_frame

BACKBONE_NAMES = {"vgg19": ("VGG19", "perceptual losses"), "sphereface20": ("SphereFace-20", "face losses"),
                  "sphereface": ("SphereFace-20", "face losses"), "lpips": ("LPIPS", "LPIPS scores"),
                  "inception_v3": ("Inception-v3", "FID / KID scores")}


@dataclass(frozen=True)
class Analysis:
    """The numbers every section reads (completed runs only, except ``runs``)."""

    variants: list[str]
    baseline: str
    window: float
    runs: pd.DataFrame
    completed_runs: pd.DataFrame
    completed_metrics: pd.DataFrame
    finals: pd.DataFrame
    comparison: pd.DataFrame
    oscillation: pd.DataFrame
    stability: pd.DataFrame
    keys: list[str]
    values: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-run values claims may name (verdicts.VALUE_COLUMNS)
    claims: list = field(default_factory=list)  # verdicts.ClaimResult per claim of the study file
    claims_error: str = ""  # why the study file's claims could not be read
    factors: list = field(default_factory=list)  # factors.Factor: single-factor contrasts
    factor_comparison: pd.DataFrame = field(default_factory=pd.DataFrame)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "study"


def variant_order(runs: pd.DataFrame, study_spec: dict[str, Any], baseline: str = vocab.BASELINE) -> list[str]:
    """Baseline first, then the order of the study file's ``variants`` when it has one, then first start time."""
    present = list(dict.fromkeys(runs.sort_values("start_time", kind="stable")["variant"]))
    declared: list[str] = []
    spec_variants = study_spec.get("variants") if isinstance(study_spec, dict) else None
    if isinstance(spec_variants, dict):
        declared = [str(k) for k in spec_variants]
    elif isinstance(spec_variants, list):
        declared = [str(v.get("name")) if isinstance(v, dict) else str(v) for v in spec_variants]
    ordered = [v for v in declared if v in present] + [v for v in present if v not in declared]
    if baseline in ordered:
        ordered.remove(baseline)
        ordered.insert(0, baseline)
    return ordered


def variant_descriptions(study_spec: dict[str, Any]) -> dict[str, str]:
    """``description:`` of each variant in the study file (and of the study itself for the baseline)."""
    spec_variants = study_spec.get("variants") if isinstance(study_spec, dict) else None
    out = {}
    if isinstance(spec_variants, dict):
        out = {str(k): str(v.get("description", "")) for k, v in spec_variants.items() if isinstance(v, dict)}
    elif isinstance(spec_variants, list):
        out = {str(v.get("name")): str(v.get("description", "")) for v in spec_variants if isinstance(v, dict)}
    if out and any(out.values()):
        out.setdefault(vocab.BASELINE, "reference defaults + profile")
    return out


def analyse(data: StudyRuns, window: float = 0.2, baseline: str = vocab.BASELINE) -> Analysis:
    variants = variant_order(data.runs, data.study_spec, baseline)
    done = data.runs[data.runs["status"] == vocab.TrialStatus.COMPLETED]
    metrics = data.metrics[data.metrics["run_id"].isin(done["run_id"])]
    finals = stats.final_values(metrics, window)
    present = set(metrics["key"])
    keys = [k for k in tables.all_loss_keys() + tables.eval_keys() if k in present]
    unweighted = verdicts.unweighted_finals(finals, done)
    main_unweighted = [vocab.UNWEIGHTED[k] for k in tables.MAIN_KEYS if vocab.UNWEIGHTED[k] in set(unweighted["key"])]
    families = table_families(keys + main_unweighted)
    with_unweighted = pd.concat([finals, unweighted], ignore_index=True) if not unweighted.empty else finals
    comparison = stats.compare_to_baseline(with_unweighted, keys + main_unweighted, variants, baseline, families=families)
    comparison = dedupe_unweighted(comparison, done, baseline)
    settings = StabilitySettings(window=window)
    osc = stability_frame(metrics, settings)
    stability = stats.summarize_by_variant(osc, list(vocab.STABILITY_METRICS), [v for v in variants if v in set(osc["variant"])])
    values = pd.concat([finals[verdicts.VALUE_COLUMNS], unweighted, stability_finals(metrics, settings)[verdicts.VALUE_COLUMNS]],
                       ignore_index=True)
    claims, claims_error = evaluate_study_claims(data, variants, values)
    found = factor_mod.study_factors(data.runs, variants, baseline)
    weights_moved = {k for f in found for k in f.changes}
    factor_unweighted = [u for u in main_unweighted if any(vocab.WEIGHT_KEYS[t] in weights_moved for t, v in vocab.UNWEIGHTED.items() if v == u)]
    factor_keys = [k for k in list(tables.MAIN_KEYS) + factor_unweighted + list(tables.eval_keys()) if k in set(with_unweighted["key"])]
    factor_comp = factor_mod.factor_comparison(with_unweighted, found, factor_keys)
    return Analysis(variants, baseline, window, data.runs, done, metrics, finals, comparison, osc, stability, keys,
                    values, claims, claims_error, found, factor_comp)


def dedupe_unweighted(comparison: pd.DataFrame, runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """A term / λ contrast of arms with the same λ is the weighted term's contrast again: it is not a
    test of its own (it would count twice in Holm's family), and it shows the weighted term's mark."""
    weight_of = {vocab.UNWEIGHTED[t]: (t, k) for t, k in vocab.WEIGHT_KEYS.items()}
    out = comparison.copy()
    out["duplicate"] = False
    same = []
    for idx, row in out.iterrows():
        if row["key"] not in weight_of or row["variant"] == baseline:
            continue
        term, weight_key = weight_of[row["key"]]
        w_var = tables.variant_params(runs, row["variant"]).get(weight_key)
        w_base = tables.variant_params(runs, baseline).get(weight_key)
        if w_var == w_base:
            same.append((idx, term))
            out.loc[idx, "p"] = float("nan")
    out = stats.apply_holm(out)
    for idx, term in same:
        twin = out[(out["variant"] == out.loc[idx, "variant"]) & (out["key"] == term)]
        if not twin.empty:
            out.loc[idx, ["p", "p_holm", "marked"]] = twin.iloc[0][["p", "p_holm", "marked"]].to_numpy()
            out.loc[idx, "duplicate"] = True
    return out


def table_families(keys: list[str]) -> dict[str, str]:
    """Holm families of the delta section: one per table (Table 1 with its λ-normalised columns, the
    other G terms, the D terms, the eval metrics)."""
    out = {}
    for key in keys:
        if key in tables.MAIN_KEYS or key in vocab.UNWEIGHTED.values():
            out[key] = "Table 1"
        elif key in tables.g_loss_keys():
            out[key] = "other generator terms"
        elif key in tables.d_loss_keys():
            out[key] = "discriminator terms"
        else:
            out[key] = "evaluation metrics"
    return out


def evaluate_study_claims(data: StudyRuns, variants: list[str], values: pd.DataFrame) -> tuple[list, str]:
    """The verdicts on the claims of the study file the parent run logged (``study.yaml``)."""
    from lwgan.errors import UserError
    from lwgan.study.claims import parse_claims

    raw = data.study_spec.get("claims") if isinstance(data.study_spec, dict) else None
    if not raw:
        return [], ""
    declared = [v for v in variant_order(data.runs, data.study_spec) if v != vocab.BASELINE]
    spec_variants = data.study_spec.get("variants")
    names = list(dict.fromkeys([str(k) for k in spec_variants] if isinstance(spec_variants, dict) else []) ) + declared
    try:
        claims = parse_claims(raw, f"study.yaml of {data.study}", list(dict.fromkeys(names)))
    except UserError as err:
        return [], str(err)
    return verdicts.evaluate_claims(claims, values), ""


# ----------------------------------------------------------------------------------
# Title and design
# ----------------------------------------------------------------------------------


def _unique_tag(runs: pd.DataFrame, tag: str) -> list[str]:
    col = f"tag.{tag}"
    if col not in runs:
        return []
    return sorted({str(v) for v in runs[col].dropna() if str(v)})


def backbone_lines(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(warnings in bold for every stand-in backbone, plain status lines)."""
    statuses: dict[str, set[str]] = {}
    for text in _unique_tag(runs, vocab.Tag.BACKBONE_STATUS):
        for name, status in json_tag({"x": text}, "x").items():
            statuses.setdefault(str(name), set()).add(str(status))
    warnings, lines = [], []
    for name in sorted(statuses):
        pretty, what = BACKBONE_NAMES.get(name.lower(), (name, "losses computed with it"))
        kinds = statuses[name]
        lines.append(f"{pretty}: {', '.join(sorted(kinds))}" + (f" (no weights given: no {what})" if "absent" in kinds else ""))
        if "stand-in" in kinds:
            warnings.append(f"**{pretty}: untrained stand-in \u2014 {what} are not comparable with the paper.**")
    return warnings, lines


def title_blocks(data: StudyRuns) -> list[Block]:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        Heading(f"Study report: {data.study}", 1),
        Paragraph(
            f"Generated {now} from MLflow parent run {data.parent_run_id} (experiment {data.experiment_id}) in "
            f"{data.tracking_uri}. {len(data.runs)} trial runs; statistics, curves and stability use completed runs only."
        ),
    ]


def design_blocks(data: StudyRuns, an: Analysis) -> list[Block]:
    tags = data.parent_tags
    warnings, backbone_status = backbone_lines(data.runs)
    # The parent's tags describe the study; trials carry the same facts per run (fallback).
    dataset_kind = tags.get(vocab.Tag.DATASET_KIND) or "/".join(_unique_tag(data.runs, vocab.Tag.DATASET_KIND))
    datasets = _unique_tag(data.runs, vocab.Tag.DATASET)
    body_kind = tags.get(vocab.Tag.BODY_MODEL_KIND) or "/".join(_unique_tag(data.runs, vocab.Tag.BODY_MODEL_KIND))
    bodies = _unique_tag(data.runs, vocab.Tag.BODY_MODEL)
    versions = json_tag(tags, vocab.Tag.VERSIONS)
    dataset_text = (dataset_kind or "unknown kind") + (f" ({'; '.join(datasets)})" if datasets else "")
    if dataset_kind == "synthetic":
        dataset_text = f"**synthetic mini-iPER** ({'; '.join(datasets) or 'generated'})"
    body_text = (body_kind or "unknown kind") + (f" ({'; '.join(bodies)})" if bodies else "")
    if body_kind == "generated":
        body_text = f"**generated stand-in body model, not SMPL** ({'; '.join(bodies) or 'generated'})"
    items = [
        f"Profile: {tags.get(vocab.Tag.PROFILE, 'not recorded')}",
        f"Dataset: {dataset_text}",
        f"Body model: {body_text}",
        f"Backbones: {'; '.join(backbone_status) if backbone_status else 'status not recorded'}",
        f"Device: {', '.join(_unique_tag(data.runs, vocab.Tag.DEVICE)) or 'not recorded'}",
        f"Precision: {'; '.join(_unique_tag(data.runs, vocab.Tag.PRECISION)) or 'not recorded'}",
        f"Git commit: {tags.get(vocab.Tag.GIT_COMMIT, 'not recorded')}",
        "Package versions: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) if versions else "not recorded"),
    ]
    if tags.get(vocab.Tag.STUDY_FILE):
        items.append(f"Study file: {tags[vocab.Tag.STUDY_FILE]}")
    blocks: list[Block] = [Heading("Design")]
    blocks += [Paragraph(w) for w in warnings]
    blocks.append(Bullets(items))
    blocks.append(tables.design_table(data.runs, an.variants, an.baseline, variant_descriptions(data.study_spec)))
    sched = schedule.schedule_table(data.runs, an.completed_metrics, an.finals, an.variants)
    if sched.rows:
        blocks.append(sched)
        notes = schedule.schedule_notes(data.runs, an.variants, an.completed_metrics)
        if notes:
            blocks.append(Bullets(notes))
    return blocks


# ----------------------------------------------------------------------------------
# Accounting
# ----------------------------------------------------------------------------------


def excluded_counts(runs: pd.DataFrame) -> dict[str, int]:
    return {s: int((runs["status"] == s).sum()) for s in tables.STATUSES if s != vocab.TrialStatus.COMPLETED}


def accounting_blocks(data: StudyRuns, an: Analysis) -> list[Block]:
    excluded = excluded_counts(data.runs)
    n_excl = sum(excluded.values())
    blocks: list[Block] = [Heading("Run accounting"), tables.accounting_table(data.runs, an.variants)]
    if n_excl:
        blocks.append(Paragraph(
            f"{n_excl} of {len(data.runs)} runs did not complete ("
            + ", ".join(f"{v} {k}" for k, v in excluded.items() if v)
            + "). They are excluded from every statistic, table, curve and stability measure below:"
        ))
        blocks.append(Bullets(tables.failure_notes(data.runs, an.variants)))
    elif data.runs.empty:
        blocks.append(Paragraph("The study has no trial runs (yet): nothing below can be computed."))
    else:
        blocks.append(Paragraph(f"All {len(data.runs)} runs completed; none is excluded."))
    return blocks


# ----------------------------------------------------------------------------------
# Deltas
# ----------------------------------------------------------------------------------


def window_text(an: Analysis) -> str:
    pct = f"{100 * an.window:g}%"
    ref = an.finals[an.finals["key"] == vocab.G_TOTAL]
    if ref.empty:
        ref = an.finals
    example = ""
    if not ref.empty:
        first, last, n = int(ref["first_step"].median()), int(ref["last_step"].median()), int(ref["n_points"].median())
        example = f" (median over runs for {ref['key'].iloc[0]}: steps {first}\u2013{last}, {n} points)"
    return (
        f"Final window: the value of a metric is its mean over the last {pct} of that run's logged points "
        f"(at least one point){example}."
    )


def test_text(an: Analysis) -> str:
    """How every Δ of the section is computed (paired / Welch, intervals, Holm families)."""
    tests = set(an.comparison.loc[an.comparison["variant"] != an.baseline, "test"])
    paired = "paired t-test on the per-seed differences (every arm ran the same seeds: common random numbers)"
    welch = "Welch's unequal-variance t-test (the arms ran different seeds)"
    used = [t for t, name in ((paired, "paired t"), (welch, "Welch t")) if name in tests]
    how = " and ".join(used) if used else f"no test (fewer than {stats.MIN_SEEDS_TEST} seeds per arm)"
    return (
        f"Test: {how}, two-sided. Loss terms: \u0394% = 100 (variant \u2212 baseline) / |baseline| with a 95% "
        "Fieller interval that includes the baseline's own uncertainty (and, paired, the arms' covariance) and excludes 0 exactly when the test is significant; "
        "SSIM and LPIPS: absolute \u0394; PSNR: \u0394 in dB; each with its 95% t-interval. "
        f"With fewer than {stats.MIN_SEEDS_TEST} seeds: no test and no t-interval, the range of the per-seed "
        "differences in parentheses. "
        f"Bold cells marked {DAGGER}: Holm-adjusted p < {stats.ALPHA}, Holm across all the tests of the same table; "
        "nothing else marks a cell."
    )


def delta_blocks(an: Analysis) -> list[Block]:
    blocks: list[Block] = [Heading("Results: deltas against the baseline")]
    if an.baseline not in an.variants:
        return blocks + [Paragraph(f"The study has no variant named '{an.baseline}': deltas cannot be computed.")]
    if an.finals.empty:
        return blocks + [Paragraph("No completed run logged metrics: there is nothing to compare.")]
    n_seeds = {v: int((an.completed_runs["variant"] == v).sum()) for v in an.variants}
    blocks.append(Paragraph(
        window_text(an) + " " + test_text(an) + " Loss terms are the values the trainer logs: each term multiplied by "
        "its \u03bb (lwgan.models.objective), so changing a \u03bb moves its term; the /\u03bb columns divide it out "
        "(term / \u03bb per run) and tell \"\u03bb_rec = 15 raises L_rec\" apart from \"reconstruction got worse\". "
        "The baseline row holds absolute values (mean \u00b1 95% t-interval half-width from 3 seeds on, else mean "
        f"(min .. max) over seeds). Completed seeds: {', '.join(f'{v} {n}' for v, n in n_seeds.items())}."
    ))
    comp = an.comparison
    own_test = comp["p"].notna() & ~comp.get("duplicate", pd.Series(False, index=comp.index)).astype(bool)
    families = comp.loc[own_test].groupby("family").size().to_dict()

    def family_note(name: str) -> str:
        n = families.get(name, 0)
        return (f" Holm family: this table's {n} tests (a /\u03bb column of arms with the same \u03bb repeats the weighted "
                "term's test and mark)." if n else " No test (too few seeds).")

    main = [k for k in tables.MAIN_KEYS if k in an.keys]
    if main:
        blocks.append(_with_caption(tables.table1(comp, an.runs, an.variants, an.baseline, main),
                                    "Table 1 layout: stabilisers, TTUR and loss weights per variant, and the change of the face, "
                                    "transfer and reconstruction losses against the baseline (\u0394% [95% Fieller interval]), "
                                    "each followed by its \u03bb-normalised change." + family_note("Table 1")))
    for keys, caption, family in (
        ([k for k in tables.g_loss_keys() if k in an.keys], "Other generator loss terms (\u0394% [95% Fieller interval]).", "other generator terms"),
        ([k for k in tables.d_loss_keys() if k in an.keys], "Discriminator loss terms (\u0394% [95% Fieller interval]).", "discriminator terms"),
        ([k for k in tables.eval_keys() if k in an.keys],
         "Evaluation metrics on the fixed validation pairs: absolute \u0394 [95% t-interval] (PSNR in dB); higher is better "
         "for SSIM and PSNR, lower for LPIPS. Only metrics that were computed are shown.", "evaluation metrics"),
    ):
        if keys:
            blocks.append(_with_caption(tables.delta_table(comp, an.variants, an.baseline, keys), caption + family_note(family)))
    blocks += factor_blocks(an)
    stat = tables.statistics_table(comp, an.baseline, an.keys)
    note = (
        f"Every variant-metric pair: the test (paired t or Welch t; none below {stats.MIN_SEEDS_TEST} seeds), n (pairs, or "
        "variant / baseline seeds), the variant's mean \u00b1 95% t-interval half-width, \u0394 [95% interval], the raw "
        "two-sided p, p Holm (within its table) and Hedges' g = (variant \u2212 baseline) / pooled sd \u00d7 small-sample "
        "correction."
    )
    if stat.rows:
        blocks.append(Heading("Statistics detail", 3))
        blocks.append(_with_caption(stat, note))
    return blocks


def factor_blocks(an: Analysis) -> list[Block]:
    """Single-factor contrasts: pairs of arms whose configs differ in exactly one key or key group."""
    if not an.factors or an.factor_comparison.empty:
        return []
    blocks: list[Block] = [Heading("Single-factor contrasts", 3)]
    blocks.append(Paragraph(
        "Pairs of arms whose configs differ in exactly one factor (one key, or one group of keys that change together: "
        + "; ".join(f"{name}: {', '.join(keys)}" for name, keys in factor_mod.FACTOR_GROUPS.items())
        + ") isolate it: " + "; ".join(f"**{f.label}**: {f.name} ({f.changes_text()})" for f in an.factors) + "."
    ))
    comp = an.factor_comparison
    keys = list(dict.fromkeys(comp["key"]))
    columns = ["Contrast", "Factor"] + [tables.metric_label(k, delta=True) if k not in vocab.UNWEIGHTED.values()
                                        else "\u0394" + vocab.label(k) for k in keys]
    rows = []
    for f in an.factors:
        sub = comp[comp["variant"] == f.label].set_index("key")
        rows.append([Cell(f.label), Cell(f.name)] + [tables.delta_cell(sub.loc[k].to_dict() | {"key": k}) if k in sub.index
                                                       else Cell(tables.NO) for k in keys])
    n = int(comp["p"].notna().sum())
    tests = sorted(set(comp["test"]) - {"none"}) or ["no test (too few seeds)"]
    blocks.append(Table(columns, rows, caption=(
        f"A \u2212 B on each metric: {', '.join(tests)}; \u0394% [95% Fieller interval] for loss terms, absolute "
        f"\u0394 [95% t-interval] for the eval metrics (PSNR in dB); marked {DAGGER}: Holm-adjusted p < {stats.ALPHA} "
        f"across the {n} tests of this table.")))
    return blocks


def _with_caption(table: Table, caption: str) -> Table:
    return Table(table.columns, table.rows, caption=caption, notes=table.notes)


# ----------------------------------------------------------------------------------
# Curves, stability, samples
# ----------------------------------------------------------------------------------


def scorecard_blocks(an: Analysis) -> list[Block]:
    """Near the top: the verdict on every claim of the study file."""
    if an.claims_error:
        return [Heading("Scorecard: the paper's claims"), Paragraph(f"The study file's claims could not be read: {an.claims_error}")]
    if not an.claims:
        return []
    from lwgan.report import contrast as C

    rows = []
    for r in an.claims:
        cl = r.claim
        agree = "\u2013" if r.sign_agrees is None else ("yes" if r.sign_agrees else "no")
        inside = "\u2013" if r.paper_in_interval is None else ("yes" if r.paper_in_interval else "no")
        verdict = str(r.verdict)
        rows.append([
            Cell(cl.id), Cell(f"{cl.variant} vs {cl.against}: {vocab.label(cl.metric)} {cl.direction}"),
            Cell(cl.paper_text() or "\u2013"), Cell(verdicts.estimate_text(r)), Cell(r.contrast.test),
            Cell(verdicts.p_text(r.p_holm)), Cell(verdict, bold=verdict != str(vocab.Verdict.INCONCLUSIVE)),
            Cell(f"{agree} / {inside}"), Cell(verdicts.power_text(r) or r.note or "\u2013"),
        ])
    m = len(an.claims)
    intro = (
        f"{verdicts.summary_text(an.claims)} of the study file. A claim is **confirmed** when its test is significant "
        f"after Holm correction across these {m} claims (Holm p < {C.ALPHA}) with the claimed sign, **contradicted** when "
        "significant with the other sign, **inconclusive** otherwise. Ours: the estimate on the claim's scale (\u0394% of "
        "the reference arm for loss terms, absolute for SSIM and stability measures, dB for PSNR) with its 95% interval "
        "(paired t or Welch t; Fieller interval for \u0394%), or, below 3 seeds, the range of the per-seed differences. "
        f"For inconclusive claims: the smallest effect detectable with 80% power at this n and \u03b1/{m}, and the seeds "
        "that would detect the paper's value (or the observed estimate) from the seed-to-seed sd observed "
        "(statsmodels TTestPower / TTestIndPower). Statements and sections: Findings; every number: data/claims.csv."
    )
    table = Table(["Claim", "Tested", "Paper", "Ours", "Test", "Holm p", "Verdict", "Sign agrees / paper inside", "How far from telling"],
                  rows, caption="Scorecard: the paper's claims against this study.")
    return [Heading("Scorecard: the paper's claims"), Paragraph(intro), table]


def quality_ranking(an: Analysis) -> list[str]:
    """Variants ranked on each quality metric (eval group, mean over completed seeds, best first), with
    the Holm-marked differences from the baseline flagged."""
    out = []
    comp = an.comparison
    for key in tables.eval_keys():
        sub = comp[(comp["key"] == key) & (comp["n_var"] > 0)]
        if len(sub) < 2:
            continue
        better_high = vocab.direction(key) is not vocab.Direction.LOWER
        ranked = sub.sort_values("var_mean", ascending=not better_high, kind="stable")
        unit = vocab.METRICS[key].unit
        parts = [f"{r['variant']} {r['var_mean']:.4g}{' ' + unit if unit else ''}" + (f" {DAGGER}" if r["marked"] else "")
                 for r in ranked.to_dict("records")]
        out.append(f"Ranking by {vocab.label(key)} (mean over seeds, best first; {DAGGER} = differs from the baseline after "
                   f"Holm): " + ", ".join(parts) + ".")
    return out


def findings_blocks(data: StudyRuns, an: Analysis) -> list[Block]:
    completed = {v: int((an.completed_runs["variant"] == v).sum()) for v in an.variants}
    sentences = [verdicts.verdict_sentence(r) for r in an.claims]
    sentences += quality_ranking(an)
    sentences += findings(an.comparison, an.variants, an.baseline, completed, excluded_counts(data.runs),
                          an.stability, key_order=an.keys)
    warnings, _ = backbone_lines(data.runs)
    if warnings:
        sentences.append("Caveat: " + " ".join(w.strip("*") for w in warnings))
    return [Heading("Findings")] + [Paragraph(s) for s in sentences]


def report_blocks(data: StudyRuns, an: Analysis, out_dir: Path, fetch: visual.Fetch) -> list[Block]:
    """Every section in order; figures and sample strips are written under ``out_dir``. ``fetch(run_id,
    artifact, destination)`` copies a trial's artifact file and returns its path (None when absent)."""
    palette = figures.variant_palette(an.variants)
    blocks: list[Block] = []
    blocks += title_blocks(data)
    blocks += scorecard_blocks(an)
    blocks += design_blocks(data, an)
    blocks += accounting_blocks(data, an)
    blocks += delta_blocks(an)
    blocks += visual.curve_blocks(an.completed_metrics, an.finals, an.variants, out_dir, palette)
    blocks += visual.stability_blocks(an.completed_metrics, an.oscillation, an.finals, an.variants,
                                      StabilitySettings(window=an.window), out_dir, palette)
    blocks += visual.sample_blocks(data.runs, an.variants, out_dir, fetch)
    blocks += findings_blocks(data, an)
    return blocks
