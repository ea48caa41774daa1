"""Render the report's blocks as GitHub-flavoured Markdown with relative image links."""

from __future__ import annotations

from typing import Sequence

from lwgan.report.document import DAGGER, Block, Bullets, Cell, Heading, Image, PageBreak, Paragraph, Table


def cell_markdown(cell: Cell) -> str:
    text = " ".join(cell.text.split()).replace("|", "\\|")
    if cell.bold and text:
        text = f"**{text}**"
    if cell.mark:
        text = f"{text} {DAGGER}"
    return text


def table_markdown(table: Table) -> list[str]:
    lines = []
    if table.caption:
        lines += [f"*{table.caption}*", ""]
    header = "| " + " | ".join(c.replace("|", "\\|") for c in table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    lines += [header, rule]
    lines += ["| " + " | ".join(cell_markdown(c) for c in row) + " |" for row in table.rows]
    for note in table.notes:
        lines += ["", note]
    return lines


def to_markdown(blocks: Sequence[Block]) -> str:
    """The whole report as one Markdown string (ends with a newline)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out += table_markdown(block) + [""]
        elif isinstance(block, Image):
            alt = block.caption.replace("[", "(").replace("]", ")") or block.path
            out += [f"![{alt}]({block.path})", ""]
            if block.caption:
                out += [f"*{block.caption}*", ""]
        elif isinstance(block, PageBreak):
            continue
        else:
            raise TypeError(f"unknown block {block!r}")
    return "\n".join(out).rstrip() + "\n"
