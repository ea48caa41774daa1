"""Render the report's blocks as an A4 PDF with fpdf2 (no browser, no LaTeX), using matplotlib's
bundled DejaVu Sans so that η, λ, ±, Δ, ✓ and † render.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

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
    """Keep ``**bold**`` spans; escape fpdf2's other markers (``__``, ``--``, ``~~``) so they print literally."""
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


def column_widths(table: Table) -> list[float]:
    """Relative widths from the longest word and the typical cell length of each column."""
    widths = []
    for i, name in enumerate(table.columns):
        texts = [name] + [row[i].text + (" " + DAGGER if row[i].mark else "") for row in table.rows]
        longest_word = max(len(w) for t in texts for w in (t.split() or [""]))
        typical = max(len(t) for t in texts)
        widths.append(max(longest_word + 1.5, min(typical, 34) * 0.8, 4.0))
    return widths


def _table(pdf: FPDF, table: Table) -> None:
    _ensure_room(pdf, 30)
    if table.caption:
        _paragraph(pdf, table.caption, CAPTION_PT, "I")
    pdf.set_font(FONT, "", TABLE_PT)
    heading_style = FontFace(emphasis="BOLD", fill_color=(228, 228, 228))
    with pdf.table(
        col_widths=column_widths(table),
        text_align="LEFT",
        line_height=TABLE_PT * 0.5,
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
    for block in blocks:
        if isinstance(block, Heading):
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
