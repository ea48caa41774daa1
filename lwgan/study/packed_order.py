"""Tune's source of an ablation's trials when its last trials share the slots (lwgan/study/packing.py):
the pending trials in run order, each started once ``Packing.admits`` it beside those running.

Why a searcher and not Ray's resource accounting: the trials all ask Ray for the same (the tail's)
share, so that an actor can be reused for any trial; Ray alone would then run three at a time from
the start. This holds the pairs back to two, as their full cpu would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ray.tune.search import Searcher

from lwgan.study.packing import Packing


class PackedOrder(Searcher):
    """Yields ``{"trial_id": ...}`` for each of ``order`` in turn; ``None`` (Tune asks again later)
    while the next one does not fit beside the running trials; ``FINISHED`` after the last."""

    def __init__(self, order: Sequence[str], packing: Packing):
        super().__init__()
        missing = [t for t in order if t not in packing.cpu]
        if missing:
            raise ValueError(f"PackedOrder: trials without a cpu share in the packing: {missing}")
        self._order = list(order)
        self._packing = packing
        self._next = 0
        self._running: dict[str, str] = {}  # Tune's trial id -> the study's trial id

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the order is fixed; Tune's metric and mode do not change it

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._next >= len(self._order):
            return Searcher.FINISHED
        candidate = self._order[self._next]
        if not self._packing.admits(self._running.values(), candidate):
            return None
        self._next += 1
        self._running[trial_id] = candidate
        return {"trial_id": candidate}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._running.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        """Tune's experiment checkpoint (an ablation resumes from its study state, not from this)."""
        Path(checkpoint_path).write_text(json.dumps({"order": self._order, "next": self._next, "live": self._running}))

    def restore(self, checkpoint_path: str) -> None:
        saved = json.loads(Path(checkpoint_path).read_text())
        self._order, self._next, self._running = saved["order"], saved["next"], saved["live"]

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(self._running.values())


__all__ = ["PackedOrder"]
