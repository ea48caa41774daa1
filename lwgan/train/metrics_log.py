"""``metrics.jsonl``: one JSON object per logged step, appended and flushed; resume drops lines past the checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from lwgan.fsutil import write_text_atomic


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json writes NaN / Infinity, which json.loads and pandas read back
    return value


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``path``; ``truncate_after(step)`` prepares a resume."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = None

    def truncate_after(self, step: int) -> int:
        """Drop every line whose step is greater than ``step`` (and unreadable tail lines); returns lines kept."""
        if not self.path.exists():
            return 0
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if int(record.get("step", -1)) <= step:
                kept.append(line)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))
        return len(kept)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` in file order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
