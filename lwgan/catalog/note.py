"""The study's result on its MLflow page: MLflow shows a run's ``mlflow.note.content`` tag (Markdown) as its
description, so the parent run carries Table 1 (taken from the written report) and the claims' verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from lwgan.vocab import Tag

TABLE1_MARK = "Table 1"  # the caption line the report puts above Table 1 (lwgan.report)
SEARCH_MARK = "Best completed trials"  # a search report's headline table (lwgan.report.search)
MAX_NOTE = 4900  # MLflow's tag value limit is 5000 characters on older stores


def table1_markdown(report_md: str, mark: str = TABLE1_MARK) -> str | None:
    """Table 1 of a report.md (or the table under another caption ``mark``): the caption line naming it and
    the Markdown table that follows; None if absent."""
    lines = report_md.splitlines()
    for i, line in enumerate(lines):
        if mark not in line or line.lstrip().startswith("|"):
            continue
        rows = []
        for nxt in lines[i + 1:]:
            if nxt.lstrip().startswith("|"):
                rows.append(nxt)
            elif rows:
                break
            elif nxt.strip():
                break
        if rows:
            return "\n".join([line.strip(), "", *rows])
    return None


def study_note(study: str, tags: Mapping[str, str], report_md: str | None) -> str:
    """The note: a heading, Table 1 (when the report has one) and the verdict tags (when recorded)."""
    parts = [f"### {study} (profile {tags.get(Tag.PROFILE, '?')}, commit {str(tags.get(Tag.GIT_COMMIT, '?'))[:10]})",
             "Full report: artifacts, `report/report.md`."]
    table = (table1_markdown(report_md) or table1_markdown(report_md, SEARCH_MARK)) if report_md else None
    if table:
        parts.append(table)
    claims = {k[len(Tag.CLAIM_PREFIX):]: v for k, v in sorted(tags.items()) if k.startswith(Tag.CLAIM_PREFIX)}
    if claims:
        parts.append(f"**Verdicts** ({tags.get(Tag.CLAIMS_SUMMARY, f'{len(claims)} claims')}):\n"
                     + "\n".join(f"- `{cid}`: {text}" for cid, text in claims.items()))
    note = "\n\n".join(parts)
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 40].rsplit("\n", 1)[0] + "\n\n(cut; see the report)"


def publish_note(client, parent_run_id: str, report_md: Path | None) -> str:
    """Set the parent run's ``mlflow.note.content`` from its report (read now) and its current tags."""
    run = client.get_run(parent_run_id)
    tags = dict(run.data.tags)
    text = Path(report_md).read_text(encoding="utf-8") if report_md and Path(report_md).is_file() else None
    note = study_note(tags.get(Tag.STUDY, run.info.run_name), tags, text)
    client.set_tag(parent_run_id, Tag.MLFLOW_NOTE, note)
    return note
