"""A one-line progress display: step/total, epoch, main losses, it/s and ETA (a line every N steps off a TTY)."""

from __future__ import annotations

import sys
import time
from typing import Mapping, TextIO

from lwgan import vocab

SHOWN_METRICS = ((vocab.G_TOTAL, "G"), (vocab.D_TOTAL, "D"), (vocab.G_REC, "rec"), (vocab.EVAL_SSIM, "ssim"))


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_line(step: int, total: int, epoch: int, metrics: Mapping[str, float], it_per_s: float) -> str:
    parts = [f"step {step}/{total}", f"epoch {epoch}"]
    parts += [f"{short} {metrics[key]:.4g}" for key, short in SHOWN_METRICS if key in metrics]
    eta = (total - step) / it_per_s if it_per_s > 0 else float("inf")
    parts += [f"{it_per_s:.2f} it/s", f"ETA {format_eta(eta) if eta != float('inf') else '?'}"]
    return " | ".join(parts)


class Progress:
    """Rewrites one line on a TTY; elsewhere prints a line every ``every`` steps (and the last one)."""

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None, every: int = 25):
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr  # progress is a diagnostic: stdout keeps the results
        self.every = max(1, every)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_width = 0
        self._last_time = time.monotonic()

    def update(self, step: int, epoch: int, metrics: Mapping[str, float], it_per_s: float) -> None:
        if not self.enabled:
            return
        line = format_line(step, self.total, epoch, metrics, it_per_s)
        if self.tty:
            pad = max(0, self._last_width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._last_width = len(line)
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._last_width:
            self.stream.write("\n")
            self.stream.flush()
