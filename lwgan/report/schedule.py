"""The learning-rate schedule of each variant as the report's design block states it: constant epochs,
decay epochs, final rate, epochs trained, and where the final window falls in that schedule (in the
decay, or held at eta_F after it). Reads the trials' params and logged ``epoch`` / ``lr/*`` histories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lwgan import vocab
from lwgan.report.document import Cell, Table
from lwgan.report.tables import fmt_lr

SCHEDULE_KEYS = ("lr_G", "lr_D", "lr_final", "epochs_no_decay", "epochs_decay", "train_epochs")


@dataclass(frozen=True)
class Schedule:
    """One variant's schedule (epochs counted from 0, as the trainer logs ``epoch``)."""

    lr_G: float
    lr_D: float
    lr_final: float
    epochs_no_decay: int
    epochs_decay: int
    train_epochs: int  # epochs trained in all

    @property
    def final_from(self) -> int:
        """First epoch at eta_F (lwgan.train.schedule.lr_at: the decay ends one epoch past no_decay + decay - 1)."""
        return self.epochs_no_decay + self.epochs_decay

    def phase(self, epoch: int) -> str:
        if epoch <= self.epochs_no_decay:
            return "constant"
        if epoch < self.final_from:
            return "decay"
        return "held at \u03b7_F"


def _param(row: pd.Series, key: str) -> Any:
    value = row.get(f"param.{key}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def variant_schedule(runs: pd.DataFrame, variant: str, metrics: pd.DataFrame | None = None) -> Schedule | None:
    """The schedule from a variant's first run's params; None when a key is not recorded. Epochs trained:
    from the logged ``epoch`` metric when ``metrics`` has it (a ``--steps`` override changes the run
    length, not ``train_epochs``), else ``train_epochs`` (None = no_decay + decay)."""
    rows = runs[runs["variant"] == variant]
    if rows.empty:
        return None
    row = rows.iloc[0]
    values = {k: _param(row, k) for k in SCHEDULE_KEYS}
    if any(values[k] is None for k in SCHEDULE_KEYS if k != "train_epochs"):
        return None
    no_decay, decay = int(values["epochs_no_decay"]), int(values["epochs_decay"])
    trained = int(values["train_epochs"]) if values["train_epochs"] is not None else no_decay + decay
    if metrics is not None and not metrics.empty:
        logged = metrics[(metrics["variant"] == variant) & (metrics["key"] == vocab.EPOCH)]["value"]
        if not logged.empty:
            trained = int(logged.max()) + 1
    return Schedule(float(values["lr_G"]), float(values["lr_D"]), float(values["lr_final"]), no_decay, decay, trained)


def _window_epochs(metrics: pd.DataFrame, variant: str, first_step: float, last_step: float) -> tuple[int, int] | None:
    """Epochs (from the logged ``epoch`` metric) spanned by steps first_step..last_step of a variant's runs."""
    ep = metrics[(metrics["variant"] == variant) & (metrics["key"] == vocab.EPOCH)]
    ep = ep[(ep["step"] >= first_step) & (ep["step"] <= last_step)]
    if ep.empty:
        return None
    return int(ep["value"].min()), int(ep["value"].max())


def _lr_range(metrics: pd.DataFrame, variant: str, key: str, first_step: float, last_step: float) -> str:
    lr = metrics[(metrics["variant"] == variant) & (metrics["key"] == key)]
    lr = lr[(lr["step"] >= first_step) & (lr["step"] <= last_step)]["value"].to_numpy(float)
    if lr.size == 0:
        return "\u2013"
    lo, hi = float(np.min(lr)), float(np.max(lr))
    return fmt_lr(hi) if math.isclose(lo, hi, rel_tol=1e-6) else f"{fmt_lr(hi)}\u2192{fmt_lr(lo)}"


def schedule_table(runs: pd.DataFrame, metrics: pd.DataFrame, finals: pd.DataFrame, variants: Sequence[str]) -> Table:
    """Per variant: eta_G / eta_D -> eta_F, constant and decay epochs, epochs trained, the epoch eta_F is
    reached, and the final window (steps, epochs, the rates logged there, the phase it falls in).
    Epochs are numbered from 1 in the table."""
    columns = ["variant", "\u03b7_G \u2192 \u03b7_F", "\u03b7_D \u2192 \u03b7_F", "no decay", "decay", "epochs",
               "\u03b7_F from", "final window", "\u03b7_G there", "phase there"]
    rows = []
    ref = finals[finals["key"] == vocab.G_TOTAL]
    for variant in variants:
        sched = variant_schedule(runs, variant, metrics)
        if sched is None:
            continue
        reached = sched.final_from + 1  # numbered from 1
        at_final = f"epoch {reached}" if reached <= sched.train_epochs else "not reached"
        win = ref[ref["variant"] == variant]
        window = lr_there = phase = "\u2013"
        if not win.empty:
            first, last = float(win["first_step"].median()), float(win["last_step"].median())
            epochs = _window_epochs(metrics, variant, first, last)
            window = f"steps {first:.0f}\u2013{last:.0f}"
            if epochs is not None:
                a, b = epochs
                window += f", epochs {a + 1}\u2013{b + 1}"
                phase = " then ".join(dict.fromkeys(sched.phase(e) for e in range(a, b + 1)))
            lr_there = _lr_range(metrics, variant, vocab.LR_G, first, last)
        rows.append([Cell(variant), Cell(f"{fmt_lr(sched.lr_G)} \u2192 {fmt_lr(sched.lr_final)}"),
                     Cell(f"{fmt_lr(sched.lr_D)} \u2192 {fmt_lr(sched.lr_final)}"), Cell(str(sched.epochs_no_decay)),
                     Cell(str(sched.epochs_decay)), Cell(str(sched.train_epochs)), Cell(at_final), Cell(window),
                     Cell(lr_there), Cell(phase)])
    caption = (
        "Learning-rate schedule per variant (lwgan.train.schedule, as the reference: \u03b7 constant for the first "
        "epochs_no_decay + 1 epochs, then lowered linearly each epoch, reaching \u03b7_F one epoch after "
        "epochs_no_decay + epochs_decay; a run longer than that holds \u03b7_F). 'no decay' = epochs_no_decay, "
        "'decay' = epochs_decay, 'epochs' = epochs trained (as logged). Epochs numbered from 1. "
        "Final window: median over the variant's completed runs "
        "(loss/G_total), with the \u03b7_G logged there."
    )
    return Table(columns, rows, caption=caption)


def schedule_notes(runs: pd.DataFrame, variants: Sequence[str], metrics: pd.DataFrame | None = None) -> list[str]:
    """Sentences for variants whose run length departs from their schedule's own end."""
    notes = []
    for variant in variants:
        sched = variant_schedule(runs, variant, metrics)
        if sched is None:
            continue
        own_end = sched.epochs_no_decay + sched.epochs_decay
        if sched.train_epochs > own_end:
            notes.append(
                f"{variant} decays over {sched.epochs_decay} epochs and then holds \u03b7_F = {fmt_lr(sched.lr_final)} "
                f"for {sched.train_epochs - sched.final_from} of its {sched.train_epochs} epochs; the reference code would "
                f"stop it after {own_end} (a choice the paper leaves open)."
            )
        elif sched.train_epochs < own_end:
            notes.append(f"{variant} stops after {sched.train_epochs} of its schedule's {own_end} epochs, before \u03b7 "
                         f"reaches \u03b7_F = {fmt_lr(sched.lr_final)}.")
    return notes
