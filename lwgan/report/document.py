"""The report as a list of blocks (headings, paragraphs, tables, images) that the Markdown and
PDF writers both render, so the two formats carry the same content.

Inline text may hold ``**bold**`` spans; nothing else is interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Cell:
    """A table cell: ``bold`` for emphasis, ``mark`` appends the significance dagger."""

    text: str
    bold: bool = False
    mark: bool = False


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table row has {len(row)} cells, expected {len(self.columns)}: {row}")

    def column(self, name: str) -> list[str]:
        idx = self.columns.index(name)
        return [row[idx].text for row in self.rows]

    def row(self, first_cell: str) -> list[Cell]:
        for row in self.rows:
            if row[0].text == first_cell:
                return row
        raise KeyError(first_cell)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    """A PNG under the output folder: ``path`` is relative to it (POSIX separators)."""

    path: str
    caption: str = ""
    width_frac: float = 1.0  # of the text width


@dataclass(frozen=True)
class PageBreak:
    """PDF only: start the next block on a new page (Markdown ignores it)."""


Block = Union[Heading, Paragraph, Bullets, Table, Image, PageBreak]

DAGGER = "\u2020"
