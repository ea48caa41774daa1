"""The study progress view: one line per trial event with the counts by state, the best objective so far
and an ETA (mean finished-trial time x the trials' work left / concurrency, running trials counted by
the steps they have left)."""

from __future__ import annotations

import sys
import time
from typing import Mapping, Sequence, TextIO

from lwgan.train.progress import format_eta
from lwgan.vocab import FINAL_STATUSES, TrialStatus

# Counts shown after "n/total done", in this order ('running' always, the others when non-zero).
SHOWN_STATES = (TrialStatus.RUNNING, TrialStatus.FAILED, TrialStatus.DIVERGED, TrialStatus.PRUNED)


def format_counts(counts: Mapping[str, int], total: int | None) -> str:
    done = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    head = f"{done}/{total} done" if total else f"{done} done"
    rest = [f"{counts.get(s, 0)} {s}" for s in SHOWN_STATES if counts.get(s, 0) or s == TrialStatus.RUNNING]
    return ", ".join([head, *rest])


def estimate_eta(durations: list[float], remaining: int, concurrency: int,
                 running_done: Sequence[float] = ()) -> float | None:
    """Seconds left, from the mean duration of finished trials; None before any finished.

    ``remaining`` counts the trials not finished (running ones included); ``running_done`` is the
    fraction of its steps each running trial has done. The work left (in trials) is shared by
    ``concurrency`` slots, and the study cannot end before its furthest-behind running trial."""
    if not durations or remaining <= 0:
        return None if remaining > 0 else 0.0
    mean = sum(durations) / len(durations)
    done = [min(1.0, max(0.0, f)) for f in running_done]
    left = max(0.0, remaining - sum(done))
    longest = max((1.0 - f for f in done), default=0.0)
    return mean * max(left / max(1, concurrency), longest)


class StudyProgress:
    """Prints timestamped event lines; the counts, best and ETA come from the caller."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True):
        self._stream = stream  # None: whatever sys.stdout is when a line is written
        self.enabled = enabled
        self.start = time.monotonic()

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def event(self, trial_id: str, what: str, status_line: str) -> None:
        if not self.enabled:
            return
        elapsed = format_eta(time.monotonic() - self.start)
        self.stream.write(f"[{elapsed}] {trial_id:<14} {what:<40} | {status_line}\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


def status_line(counts: Mapping[str, int], total: int | None, best: tuple[str, float] | None, metric: str,
                eta_s: float | None) -> str:
    parts = [format_counts(counts, total)]
    parts.append(f"best {best[0]} {metric} {best[1]:.4g}" if best else f"best {metric} -")
    parts.append(f"ETA {format_eta(eta_s)}" if eta_s is not None else "ETA ?")
    return " | ".join(parts)
