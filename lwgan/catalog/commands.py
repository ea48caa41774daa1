"""``lwgan-study init``, ``ls``, ``show`` and ``compare``: results on stdout, diagnostics on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from lwgan.vocab import Tag, TrialStatus

LS_FORMATS = ("table", "csv")


def command_init(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Copy the shipped studies into a folder to edit."""
    from lwgan.study.library import init_studies

    stream = stream or sys.stdout
    dest = Path(getattr(args, "dir", None) or "studies")
    written = init_studies(dest, force=bool(getattr(args, "force", False)))
    for path in written:
        print(path, file=stream)
    print(f"{len(written)} study files in {dest}: edit one, then `lwgan-study run {dest / 'ensembles.yaml'}`", file=sys.stderr)
    return 0


def _table(frame: pd.DataFrame) -> str:
    """A fixed-width text table (no index), NaN as '-'."""
    if frame.empty:
        return ""
    text = frame.astype(object).where(frame.notna(), "-")
    text = text.map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    widths = {c: max(len(str(c)), *(len(v) for v in text[c])) for c in text.columns}
    lines = ["  ".join(f"{c:<{widths[c]}}" for c in text.columns)]
    lines += ["  ".join(f"{v:<{widths[c]}}" for c, v in zip(text.columns, row)) for row in text.itertuples(index=False)]
    return "\n".join(line.rstrip() for line in lines)


def _counts_text(row) -> str:
    parts = [f"{row[s]} {s}" for s in (str(x) for x in TrialStatus) if row.get(s, 0)]
    return ", ".join(parts) or "no trials"


def command_ls(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Every study in the store: its parent runs (id, start, profile, commit, trials by state, report)."""
    from lwgan.catalog.store import list_study_runs

    stream = stream or sys.stdout
    frame = list_study_runs(study=getattr(args, "study", None))
    if getattr(args, "format", "table") == "csv":
        frame.to_csv(stream, index=False)
        return 0
    if frame.empty:
        print("no studies in this store yet (lwgan-study run STUDY)", file=sys.stderr)
        return 0
    for study, runs in frame.groupby("study", sort=True):
        print(f"{study} ({len(runs)} run{'s' if len(runs) != 1 else ''})", file=stream)
        view = pd.DataFrame({
            "run_id": runs["run_id"], "started": runs["started"], "status": runs["status"], "profile": runs["profile"],
            "commit": runs["git_commit"].str.slice(0, 10), "trials": [_counts_text(r) for _, r in runs.iterrows()],
            "report": runs["report"].replace("", "-"),
        })
        print("  " + _table(view).replace("\n", "\n  "), file=stream)
    return 0


def command_show(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """One parent run: its trials with their states, the best trial, and the claims' verdicts if recorded."""
    from lwgan.catalog.store import study_detail, verdict_tags

    stream = stream or sys.stdout
    d = study_detail(args.ref)
    tags = d.parent_tags
    print(f"study {d.study} | parent run {d.run_id} | started {d.started} | status {tags.get(Tag.STATUS, '?')} | "
          f"profile {tags.get(Tag.PROFILE, '?')} | commit {tags.get(Tag.GIT_COMMIT, '?')}", file=stream)
    print(f"objective {d.objective_metric} ({d.objective_mode}) | store {d.tracking_uri}", file=stream)
    trials = d.trials.rename(columns={"objective": d.objective_metric})
    print(_table(trials.drop(columns=["error"]) if not trials["error"].astype(bool).any() else trials) or "no trials", file=stream)
    if d.best:
        b = d.best
        print(f"best (completed trials only): {b['trial_id']} ({b['variant']}, seed {b['seed']}) "
              f"{d.objective_metric} {b['objective']:.4g} | run {b['run_id']}", file=stream)
    else:
        print("best: none (no completed trial with a finite objective)", file=stream)
    lines = verdict_tags(tags)
    if lines:
        print(f"verdicts ({tags.get(Tag.CLAIMS_SUMMARY, f'{len(lines)} claims')}):", file=stream)
        for claim_id, text in lines.items():
            print(f"  {claim_id}: {text}", file=stream)
    else:
        print("verdicts: none recorded on this run (the report records them for a study with claims)", file=stream)
    return 0


def command_compare(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Two parent runs, per variant and metric: Markdown on stdout; with --out also compare.md and compare.csv."""
    from lwgan.catalog.compare import compare_runs, to_markdown

    stream = stream or sys.stdout
    metrics = [m.strip() for item in (getattr(args, "metric", None) or []) for m in item.split(",") if m.strip()]
    comp = compare_runs(args.a, args.b, keys=metrics or None)
    text = to_markdown(comp)
    print(text, end="", file=stream)
    if getattr(args, "out", None):
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(text, encoding="utf-8")
        comp.table.to_csv(out / "compare.csv", index=False)
        print(f"wrote {out / 'compare.md'}, {out / 'compare.csv'}", file=sys.stderr)
    return 0


def command_confirm(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Write the confirmation study of a search run's top trials, then run it (``--dry-run``: only plan it)."""
    from lwgan.catalog.confirm import confirmation_study, write_study
    from lwgan.study.commands import command_run

    stream = stream or sys.stdout
    conf = confirmation_study(args.run_id, top=args.top, seeds=args.seeds)
    path = Path(args.out) if getattr(args, "out", None) else Path.cwd() / f"{conf.study['name']}.yaml"
    write_study(conf, path, force=bool(getattr(args, "force", False)))
    picked = ", ".join(f"{t} ({v:.4g})" for t, v in conf.picked)
    print(f"wrote {path}: {len(conf.picked)} configurations of search run {conf.search_run_id} ({picked}) "
          f"against the baseline, {args.seeds} seeds each", file=sys.stderr)
    run_args = argparse.Namespace(
        study=str(path), profile=getattr(args, "profile", None), dry_run=bool(getattr(args, "dry_run", False)), resume=False,
        address=getattr(args, "address", None), seeds=None, steps=None, max_concurrent=getattr(args, "max_concurrent", None),
        no_report=False, storage=getattr(args, "storage", None), sets=[],
    )
    return command_run(run_args, stream)
