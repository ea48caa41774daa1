"""Render the report's blocks as an A4 PDF with fpdf2 (no browser, no LaTeX), using matplotlib's
bundled DejaVu Sans so that η, λ, ±, Δ, ✓ and † render.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Sequence

from fpdf import FPDF
from fpdf.fonts import FontFace

from lwgan.report.document import DAGGER, Block, Bullets, Heading, Image, PageBreak, Paragraph, Table

MARGIN_MM = 15.0
BODY_PT = 9.5
TABLE_PT = 8.0
CAPTION_PT = 8.5
HEADING_PT = {1: 16.0, 2: 13.0, 3: 10.5}
FONT = "DejaVu"
_OTHER_MARKERS = re.compile(r"(__|--|~~)")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
LINE_MM = TABLE_PT * 0.5


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


class _ReportPDF(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(110)
        self.cell(0, 4, f"{self.footer_text}    page {self.page_no()} / {{nb}}", align="C")
        self.set_text_color(0)


def pdf_markdown(text: str) -> str:
    """Keep ``**bold**`` spans; escape fpdf2's other markers (``__``, ``--``, ``~~``) so they print literally;
    a Markdown link ``[label](path)`` becomes ``label (path)`` (relative file links do not work in a PDF)."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    return _OTHER_MARKERS.sub(lambda m: "\\" + m.group(1), text)


def _new_pdf(footer_text: str) -> _ReportPDF:
    pdf = _ReportPDF(footer_text)
    fonts = _font_dir()
    pdf.add_font(FONT, "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_font(FONT, "I", str(fonts / "DejaVuSans-Oblique.ttf"))
    pdf.add_font(FONT, "BI", str(fonts / "DejaVuSans-BoldOblique.ttf"))
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(True, margin=MARGIN_MM)
    pdf.alias_nb_pages()
    pdf.add_page()
    return pdf


def _room_left(pdf: FPDF) -> float:
    return pdf.page_break_trigger - pdf.get_y()


def _ensure_room(pdf: FPDF, height: float) -> None:
    if _room_left(pdf) < height and pdf.get_y() > pdf.t_margin + 1:
        pdf.add_page()


def _heading(pdf: FPDF, block: Heading) -> None:
    size = HEADING_PT.get(block.level, HEADING_PT[3])
    _ensure_room(pdf, 35 if block.level > 1 else 20)
    if pdf.get_y() > pdf.t_margin + 1:
        pdf.ln(3 if block.level > 2 else 5)
    pdf.set_font(FONT, "B", size)
    pdf.multi_cell(0, size * 0.5, block.text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _paragraph(pdf: FPDF, text: str, size: float = BODY_PT, style: str = "") -> None:
    pdf.set_font(FONT, style, size)
    pdf.multi_cell(0, size * 0.48, pdf_markdown(text), markdown=True, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.8)


def _bullets(pdf: FPDF, items: Sequence[str]) -> None:
    pdf.set_font(FONT, "", BODY_PT)
    indent = 4.0
    for item in items:
        pdf.set_x(pdf.l_margin)
        pdf.cell(indent, BODY_PT * 0.48, "\u2022")
        pdf.multi_cell(pdf.epw - indent, BODY_PT * 0.48, pdf_markdown(item), markdown=True, align="L",
                       new_x="LMARGIN", new_y="NEXT")
        pdf.ln(0.6)
    pdf.ln(1.5)


def column_widths(table: Table, measure: Callable[[str, bool], float], total: float, padding: float = 2.6) -> list[float]:
    """Column widths in mm that sum to ``total``: each column's natural width (its widest cell, capped at
    60 mm) when they fit; otherwise columns shrink towards their longest word, wider ones first."""
    natural, minimum = [], []
    for i, name in enumerate(table.columns):
        texts = [(name, True)] + [(row[i].text + (" " + DAGGER if row[i].mark else ""), row[i].bold) for row in table.rows]
        header_word = max(measure(w, True) for w in (name.split() or [""]))  # headers may wrap at spaces
        natural.append(min(max([header_word] + [measure(t, b) for t, b in texts[1:]]), 60.0) + padding)
        minimum.append(max(measure(w, b) for t, b in texts for w in (t.split() or [""])) + padding)
    minimum = [min(m, n) for m, n in zip(minimum, natural)]
    if sum(natural) <= total:
        extra = (total - sum(natural)) / len(natural)
        return [n + extra for n in natural]
    slack = [n - m for n, m in zip(natural, minimum)]
    need = sum(natural) - total
    if sum(slack) >= need:
        return [n - need * sl / sum(slack) for n, sl in zip(natural, slack)]
    return [m * total / sum(minimum) for m in minimum]


def estimate_table_height(table: Table, widths: Sequence[float], measure: Callable[[str, bool], float]) -> float:
    """Rough height in mm (header + rows) from wrapped line counts; used to keep short tables on one page."""
    height = 0.0
    rows = [[(c, True) for c in table.columns]] + [[(c.text + (" " + DAGGER if c.mark else ""), c.bold) for c in row] for row in table.rows]
    for cells in rows:
        lines = 1
        for (text, bold), width in zip(cells, widths):
            lines = max(lines, math.ceil(measure(text, bold) / max(width - 2.6, 1.0) - 1e-9))
        height += lines * LINE_MM + 1.6
    return height


def _measure(pdf: FPDF) -> Callable[[str, bool], float]:
    def measure(text: str, bold: bool) -> float:
        pdf.set_font(FONT, "B" if bold else "", TABLE_PT)
        return pdf.get_string_width(text)

    return measure


def _table_room(pdf: FPDF, table: Table) -> float:
    """Room a table asks for before it starts: all of it when it fits on one page, else 30 mm."""
    measure = _measure(pdf)
    widths = column_widths(table, measure, pdf.epw)
    pdf.set_font(FONT, "I", CAPTION_PT)
    caption_h = 4.6 * math.ceil(pdf.get_string_width(table.caption) / pdf.epw + 0.05) + 2 if table.caption else 0.0
    whole = estimate_table_height(table, widths, measure) + caption_h
    return whole if whole < pdf.page_break_trigger - pdf.t_margin - 20 else 30.0


def _table(pdf: FPDF, table: Table) -> None:
    widths = column_widths(table, _measure(pdf), pdf.epw)
    _ensure_room(pdf, _table_room(pdf, table))
    if table.caption:
        _paragraph(pdf, table.caption, CAPTION_PT, "I")
    pdf.set_font(FONT, "", TABLE_PT)
    heading_style = FontFace(emphasis="BOLD", fill_color=(228, 228, 228))
    with pdf.table(
        col_widths=widths,
        text_align="LEFT",
        line_height=LINE_MM,
        headings_style=heading_style,
        padding=(0.8, 1.0),
        width=pdf.epw,
        repeat_headings=1,
    ) as out:
        head = out.row()
        for name in table.columns:
            head.cell(name)
        bold = FontFace(emphasis="BOLD")
        for cells in table.rows:
            row = out.row()
            for cell in cells:
                text = cell.text + (f" {DAGGER}" if cell.mark else "")
                row.cell(text, style=bold if cell.bold else None)
    pdf.ln(1.5)
    for note in table.notes:
        _paragraph(pdf, note, CAPTION_PT)
    pdf.ln(1.0)


def _image(pdf: FPDF, block: Image, base_dir: Path) -> None:
    from PIL import Image as PILImage

    path = base_dir / block.path
    with PILImage.open(path) as img:
        px_w, px_h = img.size
    width = pdf.epw * block.width_frac
    height = width * px_h / px_w
    caption_h = 10.0 if block.caption else 0.0
    usable = pdf.page_break_trigger - pdf.t_margin - caption_h
    if height > usable:  # taller than a page: scale down to fit
        width *= usable / height
        height = usable
    _ensure_room(pdf, height + caption_h)
    x = pdf.l_margin + (pdf.epw - width) / 2
    pdf.image(str(path), x=x, y=pdf.get_y(), w=width, h=height)
    pdf.set_y(pdf.get_y() + height + 1.0)
    if block.caption:
        _paragraph(pdf, block.caption, CAPTION_PT, "I")


def write_pdf(blocks: Sequence[Block], base_dir: Path, path: Path, footer_text: str = "") -> Path:
    """Write ``blocks`` to ``path``; image paths are relative to ``base_dir``."""
    pdf = _new_pdf(footer_text)
    for i, block in enumerate(blocks):
        if isinstance(block, Heading):
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if isinstance(following, Table):  # keep a heading with (the start of) its table
                _ensure_room(pdf, _table_room(pdf, following) + 15.0)
            _heading(pdf, block)
        elif isinstance(block, Paragraph):
            _paragraph(pdf, block.text)
        elif isinstance(block, Bullets):
            _bullets(pdf, block.items)
        elif isinstance(block, Table):
            _table(pdf, block)
        elif isinstance(block, Image):
            _image(pdf, block, base_dir)
        elif isinstance(block, PageBreak):
            if pdf.get_y() > pdf.t_margin + 1:
                pdf.add_page()
        else:
            raise TypeError(f"unknown block {block!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def page_count(path: Path) -> int:
    """Pages of a PDF written here (counts /Type /Page objects; enough for our own files)."""
    data = Path(path).read_bytes()
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
