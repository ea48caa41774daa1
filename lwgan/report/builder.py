"""Build a study's report (Markdown and/or PDF, figures, sample grids, CSVs of the numbers) from the
MLflow store: ``build_report`` is what ``lwgan-study report`` and the study runner call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from lwgan.errors import UserError

FORMATS = ("md", "pdf", "tex")  # tex: the report's tables as booktabs LaTeX (lwgan.report.latex)
DEFAULT_FORMATS = ("md", "pdf")


def parse_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    """``"md,pdf"`` or an iterable -> a tuple of known formats; UserError names the allowed ones."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = []
    for item in items:
        fmt = str(item).strip().lower().lstrip(".")
        if not fmt:
            continue
        if fmt == "markdown":
            fmt = "md"
        if fmt not in FORMATS:
            raise UserError(f"--format: unknown report format {item!r} (allowed: {', '.join(FORMATS)})")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise UserError(f"--format: no report format given (allowed: {', '.join(FORMATS)})")
    return tuple(out)


def build_report(
    study_ref: str,
    out_dir: Path | None = None,
    formats: Iterable[str] | str = DEFAULT_FORMATS,
    tracking_uri: str | None = None,
    *,
    window: float = 0.2,
) -> list[Path]:
    """Write the report of a study and return the report files, in ``formats`` order.

    ``study_ref``: a study YAML path (its ``name:``), a study name (the latest parent run tagged
    ``lwgan.study=<name>``) or an MLflow parent run id. ``out_dir`` defaults to
    ``<project>/reports/<study>``; it also receives ``figures/``, ``samples/`` and ``data/*.csv``.
    ``window``: fraction of each run's logged points that forms the final window.
    """
    if not 0 < window <= 1:
        raise UserError(f"window: {window!r} is not a fraction in (0, 1]")
    fmts = parse_formats(formats)
    from lwgan.paths import project_dir
    from lwgan.report.collect import collect_study, download_artifact
    from lwgan.report.markdown import to_markdown
    from lwgan.report.sections import analyse, report_blocks, safe_name

    data = collect_study(study_ref, tracking_uri)
    out = Path(out_dir) if out_dir is not None else project_dir() / "reports" / safe_name(data.study)
    out.mkdir(parents=True, exist_ok=True)

    if data.study_spec.get("search"):  # a search has no baseline row for Table 1: its own report
        from lwgan.report.search import search_blocks

        blocks = search_blocks(data, out)
    else:
        analysis = analyse(data, window)
        blocks = report_blocks(data, analysis, out,
                               lambda run_id, artifact, dst: download_artifact(data.tracking_uri, run_id, artifact, dst))
        _write_data(data, analysis, out / "data")
        _publish_verdicts(data, analysis)
    blocks = portable_blocks(blocks, project_dir())

    written = []
    for fmt in fmts:
        if fmt == "md":
            path = out / "report.md"
            path.write_text(to_markdown(blocks), encoding="utf-8")
        elif fmt == "tex":
            from lwgan.report.latex import write_tex

            path = write_tex(blocks, out / "report.tex", safe_name(data.study))
        else:
            from lwgan.report.pdf import write_pdf

            path = write_pdf(blocks, out, out / "report.pdf", footer_text=f"lwgan-study report: {data.study}")
        written.append(path)
    return written


def portable_text(text: str, project: Path) -> str:
    """Machine paths made portable: the project folder's prefix dropped (paths relative to the project,
    ``sqlite:///mlflow.db``), the home folder written ``~``."""
    import re

    for root, short in ((str(project.resolve()), ""), (str(project), ""), (str(Path.home()), "~")):
        if root and root != "/":
            text = re.sub(re.escape(root) + r"(/|(?![\w.-]))", lambda m: (short + "/" if short else "") if m.group(1) else (short or "."), text)
    return text


def portable_blocks(blocks: list, project: Path) -> list:
    """Every text of the report through ``portable_text`` (a committed report names no machine's paths)."""
    from dataclasses import fields, is_dataclass, replace

    from lwgan.report.document import Cell

    def fix(value):
        if isinstance(value, str):
            return portable_text(value, project)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, Cell) or (is_dataclass(value) and not isinstance(value, type)):
            return replace(value, **{f.name: fix(getattr(value, f.name)) for f in fields(value) if f.name != "path"})
        return value

    return [fix(b) for b in blocks]


def _write_data(data, an, folder: Path) -> None:
    """The numbers behind the tables, for anyone who wants to redo them."""
    folder.mkdir(parents=True, exist_ok=True)
    data.runs.to_csv(folder / "runs.csv", index=False)
    an.finals.to_csv(folder / "final_values.csv", index=False)
    an.comparison.to_csv(folder / "comparison.csv", index=False)
    an.oscillation.to_csv(folder / "stability.csv", index=False)  # lwgan.report.stability, one row per run
    # Per-run values every claim is tested on (final windows, unweighted terms, stability measures),
    # the verdicts, and the single-factor contrasts: each verdict recomputes from these with scipy.
    an.values.to_csv(folder / "claim_values.csv", index=False)
    from lwgan.report.verdicts import claims_frame

    claims_frame(an.claims).to_csv(folder / "claims.csv", index=False)
    if not an.factor_comparison.empty:
        an.factor_comparison.to_csv(folder / "factors.csv", index=False)


def _publish_verdicts(data, an) -> None:
    """The verdicts on the MLflow parent run too (tags ``lwgan.claim.<id>``, ``lwgan.claims``, table
    ``claims.json``), so the MLflow UI shows them."""
    if not an.claims:
        return
    from lwgan.report.collect import make_client
    from lwgan.report.verdicts import publish

    publish(make_client(data.tracking_uri), data.parent_run_id, an.claims)
