"""Report tables, findings and renderers on hand-built frames: Table 1 reproduces the seed paper's
layout and numbers, failures are accounted for, Markdown/PDF helpers keep the content."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lwgan.config import TrainConfig
from lwgan.report import stats, tables
from lwgan.report.document import Cell, Table
from lwgan.report.findings import findings
from lwgan.report.markdown import cell_markdown, to_markdown

# The seed paper's Table 1 (E1, E3) as final-window values against a baseline of 1.0.
PAPER = {
    "E1": ({"gp_weight": 2.0, "lr_G": 1e-4, "lr_D": 3e-4}, (-12.80, -5.75, -16.54)),
    "E3": ({"spectral_norm": True, "lr_G": 4e-4, "lr_D": 1e-4, "lr_final": 1e-5, "lambda_rec": 15.0, "epochs_decay": 15},
           (0.93, -1.25, 32.28)),
}


def _runs(extra: list[dict] | None = None) -> pd.DataFrame:
    rows = []
    variants = {"baseline": {}, **{k: v[0] for k, v in PAPER.items()}}
    for i, (variant, changes) in enumerate(variants.items()):
        flat = TrainConfig.from_flat(changes).to_flat()
        rows.append({"run_id": f"{i:032x}", "variant": variant, "seed": 0, "status": "completed", "diverged_step": pd.NA,
                     "error": None, **{f"param.{k}": v for k, v in flat.items()}, "param.seed": 0, "param.variant": variant})
    rows += extra or []
    return pd.DataFrame(rows)


def _comparison(n_seeds: int = 1) -> pd.DataFrame:
    rows = []
    for seed in range(n_seeds):
        for key in tables.MAIN_KEYS:
            rows.append(dict(run_id=f"b{seed}", variant="baseline", seed=seed, key=key, value=1.0 + 0.001 * seed))
        for variant, (_, deltas) in PAPER.items():
            for key, d in zip(tables.MAIN_KEYS, deltas):
                rows.append(dict(run_id=f"{variant}{seed}", variant=variant, seed=seed, key=key, value=(1 + d / 100) * (1 + 0.001 * seed)))
    return stats.compare_to_baseline(pd.DataFrame(rows), tables.MAIN_KEYS, ["baseline", "E1", "E3"])


def test_table1_reproduces_the_paper_layout_and_numbers():
    t = tables.table1(_comparison(), _runs(), ["baseline", "E1", "E3"], "baseline")
    assert t.columns == ["Exp", "SN", "GP weight", "TTUR (\u03b7_G, \u03b7_D, \u03b7_F)", "Loss weights", "Other changes",
                         "\u0394L_face", "\u0394L_tsf", "\u0394L_rec"]
    e1, e3, base = t.row("E1"), t.row("E3"), t.row("baseline")
    assert [c.text for c in e1] == ["E1", "\u2013", "2", "(1e-4, 3e-4, 2e-6)", "\u2013", "\u2013", "-12.80%", "-5.75%", "-16.54%"]
    assert [c.text for c in e3] == ["E3", "\u2713", "\u2013", "(4e-4, 1e-4, 1e-5)", "\u03bb_rec = 15", "epochs_decay = 15",
                                    "+0.93%", "-1.25%", "+32.28%"]
    assert [c.text for c in base[:5]] == ["baseline", "\u2013", "\u2013", "(2e-4, 2e-4, 2e-6)", "reference"]
    assert [c.text for c in base[6:]] == ["1", "1", "1"]  # absolute values, one seed: no CI
    assert not any(c.bold or c.mark for row in t.rows for c in row)  # one seed: nothing can be marked


def test_delta_cells_with_seeds_carry_ci_and_mark():
    comp = _comparison(n_seeds=4)
    t = tables.table1(comp, _runs(), ["baseline", "E1", "E3"], "baseline")
    face = t.row("E1")[6]
    assert face.text.startswith("-12.80% [") and face.bold and face.mark
    assert t.row("baseline")[6].text.startswith("1.002 \u00b1 ")
    detail = tables.statistics_table(comp, "baseline", tables.MAIN_KEYS)
    assert len(detail.rows) == 6 and detail.rows[0][0].text == "E1" and detail.rows[0][1].text == "loss/G_face"
    assert detail.rows[0][2].text == "paired t" and detail.rows[0][3].text == "4 pairs"
    assert detail.rows[0][7].text == "<0.001" and detail.rows[0][7].bold


def test_delta_cells_with_two_seeds_show_the_range_unmarked():
    comp = _comparison(n_seeds=2)
    cell = tables.table1(comp, _runs(), ["baseline", "E1", "E3"], "baseline").row("E1")[6]
    assert "(range " in cell.text and "[" not in cell.text and not cell.mark and not cell.bold
    assert "(" in tables.table1(comp, _runs(), ["baseline", "E1", "E3"], "baseline").row("baseline")[6].text  # mean (min .. max)


def test_delta_cell_edge_cases():
    base = dict(n_var=3, n_base=3, n_pairs=3, scale="%", delta_pct=math.nan, pct_lo=math.nan, pct_hi=math.nan, diff=math.nan,
                diff_lo=math.nan, diff_hi=math.nan, range_lo=math.nan, range_hi=math.nan, pct_range_lo=math.nan,
                pct_range_hi=math.nan, marked=False, var_mean=0.5)
    assert tables.delta_cell({**base, "n_var": 0}).text == "no completed run"
    assert tables.delta_cell({**base, "n_base": 0}).text == "no baseline"
    assert tables.delta_cell(base).text == "n/a: baseline 0 (variant 0.5)"
    assert tables.fmt_lr(2.5e-4) == "2.5e-4" and tables.fmt_lr(1e-5) == "1e-5"
    assert tables.metric_label("loss/G_face", delta=True) == "\u0394L_face"
    assert tables.metric_label("eval/ssim") == "SSIM" and tables.metric_label("loss/D_real") == "D_real"


def test_accounting_counts_every_outcome_and_names_reasons():
    extra = [
        {"run_id": "d" * 32, "variant": "E1", "seed": 1, "status": "diverged", "diverged_step": 37,
         "error": "diverged at step 37: loss/G_total = nan"},
        {"run_id": "f" * 32, "variant": "E3", "seed": 1, "status": "failed", "diverged_step": pd.NA, "error": "RuntimeError: boom"},
        {"run_id": "p" * 32, "variant": "E3", "seed": 2, "status": "pruned", "diverged_step": pd.NA, "error": None},
        {"run_id": "x" * 32, "variant": "E3", "seed": 3, "status": "failed", "diverged_step": pd.NA, "error": None},
    ]
    runs = _runs(extra)
    t = tables.accounting_table(runs, ["baseline", "E1", "E3"])
    assert [c.text for c in t.row("E1")] == ["E1", "2", "1", "1 (seed 1 @ step 37)", "0", "0", "0"]
    assert [c.text for c in t.row("E3")] == ["E3", "4", "1", "0", "2 (seed 1, 3)", "1", "0"]
    notes = tables.failure_notes(runs)
    assert len(notes) == 4
    assert any("E3, seed 1" in n and "failed" in n and "RuntimeError: boom" in n for n in notes)
    assert any("E3, seed 3" in n and "no error message was recorded" in n for n in notes)
    assert any("E1, seed 1" in n and "diverged" in n and n.count("step 37") == 1 for n in notes)
    same = [{"run_id": f"{i}" * 32, "variant": v, "seed": s, "status": "failed", "diverged_step": pd.NA, "error": "ImportError: x"}
            for i, (v, s) in enumerate([("E1", 4), ("E1", 5), ("E3", 4)])]
    grouped = [n for n in tables.failure_notes(_runs(same), ["baseline", "E1", "E3"]) if "ImportError" in n]
    assert grouped == ["E1, seeds 4, 5; E3, seed 4 (runs 00000000, 11111111, 22222222): failed \u2013 ImportError: x"]


def test_design_table_lists_the_config_diff():
    described = tables.design_table(_runs(), ["baseline", "E1", "E3"], "baseline", {"E1": "GP 2 + TTUR", "E3": ""})
    assert described.columns[1] == "Description" and described.row("E1")[1].text == "GP 2 + TTUR"
    assert described.row("E3")[1].text == "\u2013"
    t = tables.design_table(_runs(), ["baseline", "E1", "E3"], "baseline")
    e3 = t.row("E3")[1].text
    assert "\u03bb_rec: 10 \u2192 15" in e3 and "spectral_norm: false \u2192 true" in e3 and "lr_final: 2e-6 \u2192 1e-5" in e3
    assert "seed" not in e3.replace("epochs_decay", "")
    assert t.row("baseline")[3].text == "full schedule"  # max_steps null


def _finding_frames(shift: float, n: int):
    rng = np.random.default_rng(11)
    rows = []
    for variant, factor in (("baseline", 1.0), ("v", 1.0 + shift)):
        for seed in range(n):
            for key in tables.MAIN_KEYS:
                rows.append(dict(run_id=f"{variant}{seed}", variant=variant, seed=seed, key=key,
                                 value=factor * (1 + 0.02 * rng.standard_normal())))
    return stats.compare_to_baseline(pd.DataFrame(rows), tables.MAIN_KEYS, ["baseline", "v"])


def test_findings_state_effects_with_numbers():
    comp = _finding_frames(-0.2, 5)
    text = " ".join(findings(comp, ["baseline", "v"], "baseline", {"baseline": 5, "v": 5}, {"failed": 1}))
    assert "**v** differs from the baseline" in text and "L_face -" in text and "Holm p" in text and "paired t" in text
    assert "1 run(s) did not complete" in text


def test_findings_say_when_nothing_is_significant_or_seeds_are_too_few():
    quiet = _finding_frames(0.0, 5)
    text = " ".join(findings(quiet, ["baseline", "v"], "baseline", {"baseline": 5, "v": 5}, {}))
    assert "No variant changes any metric significantly" in text and "3 tests" in text
    few = _finding_frames(-0.2, 2)
    text = " ".join(findings(few, ["baseline", "v"], "baseline", {"baseline": 2, "v": 2}, {}))
    assert "Too few seeds for significance tests" in text and "no p-values" in text
    assert "untested (too few seeds), changes these metrics in the same direction in every seed" in text and "(range " in text
    none = findings(few, ["baseline", "v"], "baseline", {"baseline": 0, "v": 2}, {"diverged": 2})
    assert none[0].startswith("No baseline run completed")


def test_markdown_rendering_of_cells_and_tables():
    assert cell_markdown(Cell("-20.00% \u00b1 1.00", bold=True, mark=True)) == "**-20.00% \u00b1 1.00** \u2020"
    assert cell_markdown(Cell("a|b")) == "a\\|b"
    md = to_markdown([Table(["Exp", "x"], [[Cell("v"), Cell("1")]], caption="cap")])
    assert md.splitlines() == ["*cap*", "", "| Exp | x |", "| --- | --- |", "| v | 1 |"]
    with pytest.raises(ValueError, match="expected 2"):
        Table(["a", "b"], [[Cell("1")]])


def test_pdf_helpers_escape_markers_and_fit_columns():
    from lwgan.report.pdf import column_widths, pdf_markdown

    assert pdf_markdown("**bold** --resume a__b") == "**bold** \\--resume a\\__b"
    assert pdf_markdown("see [grid](samples/a.png)") == "see grid (samples/a.png)"
    table = Table(["Exp", "long column"], [[Cell("x" * 10), Cell("word " * 60)]])
    widths = column_widths(table, lambda text, bold: 2.0 * len(text), total=180.0)
    assert sum(widths) == pytest.approx(180.0)
    assert widths[0] >= 2.0 * 10  # the short column keeps its natural width


def test_report_text_names_no_machine_paths(tmp_path):
    from pathlib import Path

    from lwgan.report.builder import portable_blocks, portable_text
    from lwgan.report.document import Bullets, Paragraph

    project = tmp_path / "proj"
    home = str(Path.home())
    text = f"sqlite:///{project}/mlflow.db; {project}/lwgan/studies/e.yaml; {home}/.cache/lwgan-study/synth; {project}x/other"
    assert portable_text(text, project) == f"sqlite:///mlflow.db; lwgan/studies/e.yaml; ~/.cache/lwgan-study/synth; {project}x/other"
    blocks = portable_blocks([Paragraph(f"in {project}/a"), Bullets([f"{home}/b"]), Table(["c"], [[Cell(f"{project}/c")]], caption=f"{home}")], project)
    assert blocks[0].text == "in a" and blocks[1].items == ["~/b"] and blocks[2].rows[0][0].text == "c" and blocks[2].caption == "~"
