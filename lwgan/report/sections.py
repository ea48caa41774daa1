"""The report's sections, in order: design, run accounting, delta tables, curves, stability, samples,
findings. Each function turns the collected frames into document blocks; the figure sections (curves,
stability, samples) live in ``lwgan.report.visual``; ``report_blocks`` puts them together.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lwgan import vocab
from lwgan.report import figures, schedule, stats, tables, visual
from lwgan.report.collect import StudyRuns, json_tag
from lwgan.report.document import DAGGER, Block, Bullets, Heading, Paragraph, Table
from lwgan.report.findings import findings
from lwgan.report.stability import StabilitySettings, stability_frame

BACKBONE_NAMES = {"vgg19": ("VGG19", "perceptual losses"), "sphereface20": ("SphereFace-20", "face losses"),
                  "sphereface": ("SphereFace-20", "face losses"), "lpips": ("LPIPS-VGG16", "LPIPS scores"),
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
    comparison = stats.compare_to_baseline(finals, keys, variants, baseline)
    osc = stability_frame(metrics, StabilitySettings(window=window))
    stability = stats.summarize_by_variant(osc, list(vocab.STABILITY_METRICS), [v for v in variants if v in set(osc["variant"])])
    return Analysis(variants, baseline, window, data.runs, done, metrics, finals, comparison, osc, stability, keys)


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


def delta_blocks(an: Analysis) -> list[Block]:
    blocks: list[Block] = [Heading("Results: deltas against the baseline")]
    if an.baseline not in an.variants:
        return blocks + [Paragraph(f"The study has no variant named '{an.baseline}': deltas cannot be computed.")]
    if an.finals.empty:
        return blocks + [Paragraph("No completed run logged metrics: there is nothing to compare.")]
    n_seeds = {v: int((an.completed_runs["variant"] == v).sum()) for v in an.variants}
    blocks.append(Paragraph(
        window_text(an) + " Delta = (variant mean \u2212 baseline mean) / |baseline mean|, in %, with the half-width of "
        "the 95% Welch CI of the difference (both groups need \u2265 2 completed seeds). Loss terms are the values the "
        "trainer logs: each term multiplied by its \u03bb (lwgan.models.objective), so changing a \u03bb moves its term. "
        "The baseline row holds absolute "
        f"values (mean \u00b1 95% t-CI). Bold cells marked {DAGGER}: the CI of the difference excludes 0. "
        f"Completed seeds: {', '.join(f'{v} {n}' for v, n in n_seeds.items())}."
    ))
    main = [k for k in tables.MAIN_KEYS if k in an.keys]
    if main:
        blocks.append(_with_caption(tables.table1(an.comparison, an.runs, an.variants, an.baseline, main),
                                    "Table 1 layout: stabilisers, TTUR and loss weights per variant, and the change of "
                                    "the face, transfer and reconstruction losses against the baseline."))
    for keys, caption in (
        ([k for k in tables.g_loss_keys() if k in an.keys], "Other generator loss terms."),
        ([k for k in tables.d_loss_keys() if k in an.keys], "Discriminator loss terms."),
        ([k for k in tables.eval_keys() if k in an.keys], "Evaluation metrics (fixed validation pairs; higher is better for SSIM and PSNR, lower for LPIPS and FID)."),
    ):
        if keys:
            blocks.append(_with_caption(tables.delta_table(an.comparison, an.variants, an.baseline, keys), caption))
    stat = tables.statistics_table(an.comparison, an.baseline, an.keys)
    tested = int(an.comparison["p_holm"].notna().sum())
    note = (
        f"Welch's t-test (unequal variances, two-sided) against the baseline needs \u2265 {stats.MIN_SEEDS_TEST} "
        f"completed seeds in both groups; p Holm corrects across the variants of each metric ({tested} tests in all); "
        "Hedges' g = (variant \u2212 baseline) / pooled sd \u00d7 small-sample correction."
    )
    if stat.rows:
        blocks.append(Heading("Statistics detail", 3))
        blocks.append(_with_caption(stat, note))
    return blocks


def _with_caption(table: Table, caption: str) -> Table:
    return Table(table.columns, table.rows, caption=caption, notes=table.notes)


# ----------------------------------------------------------------------------------
# Curves, stability, samples
# ----------------------------------------------------------------------------------


def findings_blocks(data: StudyRuns, an: Analysis) -> list[Block]:
    completed = {v: int((an.completed_runs["variant"] == v).sum()) for v in an.variants}
    sentences = findings(an.comparison, an.variants, an.baseline, completed, excluded_counts(data.runs),
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
    blocks += design_blocks(data, an)
    blocks += accounting_blocks(data, an)
    blocks += delta_blocks(an)
    blocks += visual.curve_blocks(an.completed_metrics, an.finals, an.variants, out_dir, palette)
    blocks += visual.stability_blocks(an.completed_metrics, an.oscillation, an.finals, an.variants,
                                      StabilitySettings(window=an.window), out_dir, palette)
    blocks += visual.sample_blocks(data.runs, an.variants, out_dir, fetch)
    blocks += findings_blocks(data, an)
    return blocks
