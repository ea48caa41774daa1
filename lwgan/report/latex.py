"""The report's tables as LaTeX (``report.tex``): every table of the report (Table 1, the other deltas,
statistics, verdicts, ...) as a booktabs ``table`` float rendered by pandas' Styler, under the report's
section headings, to ``\\input`` into a paper. Needs ``\\usepackage{booktabs}`` (and ``amssymb`` for the
check mark); non-ASCII symbols of the Markdown tables become LaTeX math."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from lwgan.report.document import DAGGER, Block, Heading, Table

# Characters the Markdown tables use, as LaTeX (after Styler's escaping, which leaves them alone).
SYMBOLS = {
    "±": r"$\pm$", "Δ": r"$\Delta$", "η": r"$\eta$", "λ": r"$\lambda$", "–": "--", "—": "---", "−": r"$-$",
    "✓": r"\checkmark", DAGGER: r"$^\dagger$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "·": r"$\cdot$",
    "α": r"$\alpha$", "β": r"$\beta$", "σ": r"$\sigma$", "μ": r"$\mu$", "≈": r"$\approx$", "→": r"$\rightarrow$",
}
PREAMBLE = "% lwgan-study report tables. Needs \\usepackage{booktabs} and \\usepackage{amssymb}.\n"


def latex_text(text: str) -> str:
    """Plain text (already LaTeX-escaped) with the report's symbols as LaTeX; ``**bold**`` spans as \\textbf."""
    for char, tex in SYMBOLS.items():
        text = text.replace(char, tex)
    parts = text.split("**")
    return "".join(f"\\textbf{{{p}}}" if i % 2 else p for i, p in enumerate(parts))


_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """LaTeX's special characters escaped (one pass, so an inserted backslash is not escaped again)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def table_latex(table: Table, label: str = "") -> str:
    """One booktabs table float: header, cells (bold cells bold, marked cells with a dagger), caption."""
    frame = pd.DataFrame([[c.text + (DAGGER if c.mark else "") for c in row] for row in table.rows],
                         columns=[f"{i}" for i in range(len(table.columns))])
    bold = pd.DataFrame([[c.bold for c in row] for row in table.rows], columns=frame.columns)
    styler = frame.style.hide(axis="index").format(lambda v: latex_text(escape(str(v))))
    styler = styler.format_index(lambda i: latex_text(escape(table.columns[int(i)])), axis="columns")
    styler = styler.apply(lambda _: bold.map(lambda b: "font-weight: bold;" if b else ""), axis=None)
    caption = latex_text(escape(table.caption.strip("*"))) if table.caption else None
    tex = styler.to_latex(hrules=True, convert_css=True, caption=caption, label=label or None,
                          position="htbp", position_float="centering", column_format="l" * len(table.columns))
    if table.notes:
        notes = " ".join(latex_text(escape(n)) for n in table.notes)
        tex = tex.replace("\\end{table}", f"\\par\\footnotesize {notes}\n\\end{{table}}")
    return tex


def to_latex(blocks: Iterable[Block], study: str = "") -> str:
    """Every table of the report under its section heading (levels 2 and 3), in report order."""
    out = [PREAMBLE]
    pending: list[str] = []
    n = 0
    for block in blocks:
        if isinstance(block, Heading) and block.level >= 2:
            pending.append(("\\subsection*{" if block.level == 2 else "\\subsubsection*{") + latex_text(escape(block.text)) + "}")
        elif isinstance(block, Table):
            n += 1
            out += pending
            pending = []
            out.append(table_latex(block, label=f"tab:{study or 'study'}-{n}"))
    return "\n".join(out)


def write_tex(blocks: Iterable[Block], path: Path, study: str = "") -> Path:
    path.write_text(to_latex(blocks, study), encoding="utf-8")
    return path
