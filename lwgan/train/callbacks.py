"""Trainer callbacks: the hooks a caller (CLI, Ray trial, tests) uses to receive what a run reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``status`` 'completed' | 'diverged', the last step, the last metric values."""

    status: str
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    out_dir: str | None = None


class Callback:
    """Base class: override any of the hooks; each one is optional."""

    def on_start(self, info: dict[str, Any]) -> None:
        pass

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_sample(self, step: int, path: Path) -> None:
        pass

    def before_checkpoint(self, step: int) -> None:
        """A checkpoint at ``step`` is about to be written: a run resumed later starts from it, so what
        must reach a store before that (a study's metric history) is delivered here."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def on_end(self, result: TrainResult) -> None:
        pass


class CallbackList:
    """Calls a hook on every callback that has it (duck-typed: any object with some hooks works)."""

    def __init__(self, callbacks: Iterable[Any] = ()):
        self.callbacks = list(callbacks)

    def _call(self, name: str, *args: Any) -> None:
        for cb in self.callbacks:
            hook = getattr(cb, name, None)
            if hook is not None:
                hook(*args)

    def on_start(self, info: dict[str, Any]) -> None:
        self._call("on_start", info)

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._call("on_metrics", step, dict(metrics))

    def on_sample(self, step: int, path: Path) -> None:
        self._call("on_sample", step, path)

    def before_checkpoint(self, step: int) -> None:
        self._call("before_checkpoint", step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._call("on_checkpoint", step, path)

    def on_end(self, result: TrainResult) -> None:
        self._call("on_end", result)
