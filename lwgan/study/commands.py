"""``lwgan-study validate`` and ``lwgan-study run``: load and resolve a study, print the trials it defines
(and what data it uses), then run it through lwgan.study.runner and print the summary."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from lwgan.cli_flags import config_flags
from lwgan.config import TrainConfig
from lwgan.errors import DiskFullError, UserError
from lwgan.study.spec import BASELINE, ResolvedStudy, StudySpec, format_value, load_study, resolve_study
from lwgan.vocab import TrialStatus

RUN_ID = re.compile(r"^[0-9a-f]{32}$")  # an MLflow run id
ASSET_HINTS = {
    "data_root": "an iPER-format folder (lwgan-study data check DIR)",
    "body_model": "an SMPL .npz/.pkl (lwgan-study body convert SMPL.pkl SMPL.npz)",
    "vgg_weights": "a torchvision VGG19 state dict (.pth)",
    "face_weights": "a SphereFace-20 state dict (.pth)",
}


def steps_text(flat: dict[str, Any]) -> str:
    """The trial length as the Trainer will compute it (or why it depends on the dataset)."""
    epochs = TrainConfig.from_flat(flat).total_epochs
    if flat.get("max_steps"):
        return str(flat["max_steps"])
    if flat.get("iters_per_epoch"):
        return str(epochs * flat["iters_per_epoch"])
    return f"{epochs} ep"


def dataset_line(resolved: ResolvedStudy) -> str:
    """Which data and body model the trials use; for real-data profiles exactly what is missing."""
    base = resolved.baseline
    lines = []
    if base.get("data_root"):
        root = Path(base["data_root"]).expanduser()
        state = "found" if root.is_dir() else "MISSING"
        lines.append(f"dataset: iPER-format folder {root} ({state})")
    elif "data_root" in resolved.missing_assets:
        lines.append(f"dataset: profile {resolved.profile!r} trains on real iPER data, and none is set (no synthetic fallback)")
    else:
        from lwgan.paths import cache_dir

        lines.append(
            f"dataset: synthetic mini-iPER ({base['synth_subjects']} subjects x {base['synth_frames']} frames at "
            f"{base['synth_size']} px, generated on first use under {cache_dir()}); "
            + ("generated SMPL-format body model (a stand-in, not SMPL)" if not base.get("body_model") else f"body model {base['body_model']}")
        )
    if base.get("data_root") or base.get("body_model"):
        for key in ("body_model", "vgg_weights", "face_weights"):
            if base.get(key):
                found = "found" if Path(base[key]).expanduser().is_file() else "MISSING"
                lines.append(f"{key}: {base[key]} ({found})")
    if resolved.missing_assets:
        needs = "; ".join(f"{k} = {ASSET_HINTS.get(k, 'a path')}" for k in resolved.missing_assets)
        lines.append(f"profile {resolved.profile!r} cannot run yet: missing {', '.join(resolved.missing_assets)} "
                     f"(set them under profiles.{resolved.profile} in the study file, or with --set KEY=PATH: {needs})")
    return "\n".join(lines)


def plan_text(resolved: ResolvedStudy) -> str:
    spec = resolved.spec
    b = resolved.baseline
    head = (f"study {spec.name} ({spec.kind}) | profile {resolved.profile} | {b['image_size']} px, batch {b['batch_size']} | "
            f"objective {spec.objective.metric} ({spec.objective.mode}) | file {spec.source}")
    out = [head, dataset_line(resolved)]
    if spec.kind == "ablation":
        variants = len({t.variant for t in resolved.trials})
        out.append(f"{len(resolved.trials)} trials = {variants} variants x {len(resolved.seeds)} seeds "
                   f"(seeds {', '.join(map(str, resolved.seeds))}); baseline = reference defaults + profile + base")
        width = max(len("trial"), *(len(t.trial_id) for t in resolved.trials))
        vwidth = max(len("variant"), *(len(t.variant) for t in resolved.trials))
        out.append(f"{'trial':<{width}}  {'variant':<{vwidth}}  seed  steps  differs from {BASELINE}")
        for t in resolved.trials:
            diff = ", ".join(f"{k}={format_value(v)}" for k, v in t.overrides.items()) or "-"
            out.append(f"{t.trial_id:<{width}}  {t.variant:<{vwidth}}  {t.seed:<4}  {steps_text(t.config):<5}  {diff}")
        if spec.claims:
            kinds = {}
            for c in spec.claims:
                kinds[str(c.kind)] = kinds.get(str(c.kind), 0) + 1
            out.append(f"{len(spec.claims)} claims ({', '.join(f'{n} {k}' for k, n in kinds.items())}): the report tests each "
                       "and gives a verdict (confirmed / contradicted / inconclusive, Holm across the claims)")
    else:
        from lwgan.study.space import describe_space

        budget = spec.budget
        out.append(f"up to {budget.max_trials or 16} trials suggested by Optuna (TPE, define-by-run), "
                   f"trial-000 = the baseline; ASHA on {spec.objective.metric} (grace {spec.scheduler.grace_period} steps, "
                   f"reduction factor {spec.scheduler.reduction_factor}); steps per trial {steps_text(resolved.baseline)}"
                   + (f"; time budget {budget.time_budget_s:g} s" if budget.time_budget_s else ""))
        out.append("space:")
        out += [f"  {line}" for line in describe_space(spec)]
    return "\n".join(out)


def _resolve(args: argparse.Namespace) -> tuple[StudySpec, ResolvedStudy]:
    spec = load_study(getattr(args, "study", None))
    flags = config_flags(args)
    resolved = resolve_study(spec, flags.profile, flags.seeds, flags.steps, flags.sets)
    return spec, resolved


def command_validate(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    stream = stream or sys.stdout
    _, resolved = _resolve(args)
    print(plan_text(resolved), file=stream)
    print("valid", file=stream)
    return 0


def _default_storage() -> Path:
    from lwgan.paths import project_dir

    return project_dir() / "runs" / "studies"


def _storage(args: argparse.Namespace) -> Path:
    return Path(args.storage).expanduser().resolve() if getattr(args, "storage", None) else _default_storage()


def find_run_dir(storage: Path, parent_run_id: str, study: str | None = None) -> Path | None:
    """The run folder (``<storage>/<study>/run-*``) whose state records MLflow parent run ``parent_run_id``."""
    from lwgan.study.state import STATE_FILE, StudyState

    for path in sorted(storage.glob(f"{study or '*'}/run-*/{STATE_FILE}")):
        try:
            if StudyState.load(path).parent_run_id == parent_run_id:
                return path.parent
        except (UserError, OSError, ValueError, KeyError):
            continue
    return None


def _resume_target(args: argparse.Namespace) -> Path | None:
    """``--resume RUN_ID``: the run folder of that parent run (and the study file and profile it ran with, when
    not given); ``--resume`` alone: None (the runner takes the latest run). A value that is not a run id is
    the study (``run --resume studies/x.yaml``)."""
    from lwgan.study.state import STATE_FILE, StudyState

    value = getattr(args, "resume", False)
    if not isinstance(value, str):
        return None
    if not RUN_ID.match(value):
        if getattr(args, "study", None):
            raise UserError(f"--resume {value!r}: expected an MLflow parent run id (32 hex digits; lwgan-study ls lists them)")
        args.study, args.resume = value, True
        return None
    storage = _storage(args)
    study = load_study(args.study).name if getattr(args, "study", None) else None
    run_dir = find_run_dir(storage, value, study)
    if run_dir is None:
        raise UserError(f"--resume {value}: no run folder under {storage}{'/' + study if study else ''} records that parent run "
                        "(pass the --storage it ran with; lwgan-study ls lists the runs)")
    state = StudyState.load(run_dir / STATE_FILE)
    if not getattr(args, "study", None):
        args.study = state.study_file
    if not getattr(args, "profile", None):
        args.profile = state.profile
    return run_dir


def _resume_profile(args: argparse.Namespace) -> None:
    """On --resume without --profile, take the profile of the run being resumed."""
    if not getattr(args, "resume", False) or getattr(args, "profile", None):
        return
    from lwgan.study.state import STATE_FILE, StudyState, latest_run_dir

    spec = load_study(getattr(args, "study", None))
    run_dir = latest_run_dir(_storage(args) / spec.name)
    if run_dir is not None:
        args.profile = StudyState.load(run_dir / STATE_FILE).profile


def command_run(args: argparse.Namespace, stream: TextIO | None = None, trainer: str | None = None) -> int:
    """Run a study; ``trainer`` ("module:Class") replaces lwgan.train's Trainer (tests only)."""
    from lwgan.study.runner import RunOptions, run_study
    from lwgan.study.trainable import CRASH_ENV, DEFAULT_TRAINER, CrashSpec

    stream = stream or sys.stdout  # results (the plan, the summary)
    progress = stream if stream is not sys.stdout else sys.stderr  # progress and diagnostics
    resume_dir = _resume_target(args)
    _resume_profile(args)
    spec, resolved = _resolve(args)
    warning = seeds_warning(resolved)
    if getattr(args, "dry_run", False):
        print(plan_text(resolved), file=stream)
        if warning:
            print(warning, file=stream)
        print("dry run: nothing was started", file=stream)
        return 0
    if resolved.missing_assets:
        raise UserError(dataset_line(resolved).splitlines()[-1])
    if warning:
        print(warning, file=progress)
    options = RunOptions(
        storage=_storage(args),
        resume=bool(getattr(args, "resume", False)),
        resume_dir=resume_dir,
        address=getattr(args, "address", None),
        max_concurrent=getattr(args, "max_concurrent", None),
        report=not getattr(args, "no_report", False),
        trainer=trainer or DEFAULT_TRAINER,
        prepare_data=trainer is None,  # a stand-in trainer (tests) reads no data
        crashes=CrashSpec.parse(os.environ.get(CRASH_ENV)),
        stream=progress,
    )
    print(dataset_line(resolved), file=progress)
    try:
        outcome = run_study(resolved, options)
    except DiskFullError as err:
        raise DiskFullError(f"{err}. The study stopped: free space there (old runs under runs/, caches), then finish it "
                            f"with `{resume_command(args)}` (finished trials are kept; the trials that were running "
                            "continue from their checkpoints)") from None
    print(summary_text(spec, outcome, args), file=stream)
    return exit_code(outcome)


def seeds_warning(resolved: ResolvedStudy) -> str:
    """Before an ablation with fewer seeds than a test needs: say that no test (and no verdict) will be possible."""
    from lwgan.report.contrast import MIN_SEEDS_TEST

    n = len(resolved.seeds)
    if resolved.kind != "ablation" or n >= MIN_SEEDS_TEST:
        return ""
    claims = f" and none of its {len(resolved.spec.claims)} claims can get a verdict" if resolved.spec.claims else ""
    return (f"warning: {n} seed{'s' if n != 1 else ''} per variant: no significance test will be possible (a paired test "
            f"needs {MIN_SEEDS_TEST}){claims}; the report will show per-seed values and ranges only. Use --seeds {MIN_SEEDS_TEST} "
            "or more for tests.")


def exit_code(outcome) -> int:
    """130 interrupted; 1 a trial failed or the report could not be written; else 0 (a diverged or pruned
    trial is a result, not an error). The codes are listed in ``lwgan-study run --help``."""
    if not outcome.finished:
        return 130
    if outcome.counts.get(str(TrialStatus.FAILED), 0) or outcome.report_error:
        return 1
    return 0


def summary_text(spec: StudySpec, outcome, args: argparse.Namespace) -> str:
    from lwgan.tracking import tracking_uri

    c, S = outcome.counts, TrialStatus
    total = sum(c.values())
    lines = [
        f"study {spec.name}: {total} trials: {c[S.COMPLETED]} completed, {c[S.DIVERGED]} diverged, "
        f"{c[S.FAILED]} failed, {c[S.PRUNED]} pruned" + (f", {c[S.RUNNING] + c[S.PENDING]} unfinished" if not outcome.finished else ""),
        f"best (completed trials only): {outcome.best[0]} {spec.objective.metric} {outcome.best[1]:.4g}" if outcome.best
        else "best: none (no completed trial with an objective)",
        f"MLflow: parent run {outcome.parent_run_id} in {tracking_uri()} (browse: lwgan-study ui)",
        f"folder: {outcome.run_dir}",
    ]
    if outcome.report_paths:
        lines.append("report: " + ", ".join(str(p) for p in outcome.report_paths))
    elif outcome.report_error:
        lines.append(f"report: not written ({outcome.report_error}); exit code 1")
    if outcome.finished and outcome.counts.get(str(TrialStatus.FAILED), 0):
        lines.append(f"{outcome.counts[str(TrialStatus.FAILED)]} failed trial(s): exit code 1 "
                     f"(`lwgan-study show {outcome.parent_run_id}` lists their errors)")
    if not outcome.finished:
        lines.append(f"interrupted: finish it with `{resume_command(args)}` (finished trials are kept, the MLflow runs reused)")
    return "\n".join(lines)


def resume_command(args: argparse.Namespace) -> str:
    """The command that finishes this invocation's study (``--resume``, the same storage)."""
    cmd = f"lwgan-study run {getattr(args, 'study', None) or ''} --resume".replace("  ", " ")
    if getattr(args, "storage", None):
        cmd += f" --storage {args.storage}"
    return cmd
