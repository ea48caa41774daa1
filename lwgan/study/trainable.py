"""The Ray Tune trial: builds the trial's TrainConfig, runs ``lwgan.train.Trainer`` in the trial's own
folder and reports to Tune (metric history, the objective, checkpoints, the final status).

Test hook (explicit, documented in the README): the driver copies ``$LWGAN_STUDY_INJECT_CRASH`` =
``TRIAL_ID:STEP[:TIMES][,TRIAL_ID:STEP[:TIMES]...]`` into every trial's context; each named trial then
raises ``InjectedCrash`` at STEP, TIMES times in all (default 1), to exercise retries and failure accounting.
"""

from __future__ import annotations

import importlib
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lwgan import vocab

K = vocab.TuneKey
CRASH_ENV = "LWGAN_STUDY_INJECT_CRASH"
CRASH_MARKERS = ".injected_crashes"
DEFAULT_TRAINER = "lwgan.train.trainer:Trainer"


class InjectedCrash(RuntimeError):
    """Raised by the test hook ``LWGAN_STUDY_INJECT_CRASH``; never raised otherwise."""


@dataclass(frozen=True)
class CrashSpec:
    trial_id: str
    step: int
    times: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "tuple[CrashSpec, ...]":
        """``"E1-s0:5:1,E2-s0:3"`` -> specs; () for an empty value."""
        from lwgan.errors import UserError

        specs = []
        for item in (text or "").split(","):
            if not item.strip():
                continue
            parts = item.strip().split(":")
            try:
                if len(parts) not in (2, 3):
                    raise ValueError
                specs.append(cls(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1))
            except ValueError:
                raise UserError(f"${CRASH_ENV}={text!r}: expected TRIAL_ID:STEP[:TIMES][,...], e.g. E1-s0:5:1") from None
        return tuple(specs)


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs from the driver; all paths absolute (trials run in their own cwd)."""

    trials_dir: str
    baseline: dict[str, Any]  # the full flat baseline config
    plans: dict[str, dict[str, Any]]  # ablations: trial_id -> full flat config; searches: {}
    objective_metric: str
    objective_mode: str
    threads: int = 1
    # Seconds between progress reports to Tune when no checkpoint, eval or end has reported since
    # (each report is a round trip: the trial waits while the driver records it).
    report_every_s: float = 30.0
    # Whether checkpoints are reported to Tune, which copies them into its storage: what resumes a
    # trial retried on another node of a cluster. On a Ray the study started itself every trial runs
    # here and resumes from its own folder, so the runner turns this off (no copy of last.pt and
    # prev.pt, ~150 MB at the small profile, at every checkpoint).
    tune_checkpoints: bool = True
    profile: str | None = None
    crashes: tuple[CrashSpec, ...] = ()
    trainer: str = DEFAULT_TRAINER  # "module:Class" with the Trainer contract (tests pass a stand-in)
    # The folders where this invocation's trials share per-frame results, as config key -> folder
    # (run.target_cache_dir, run.correspondence_cache_dir): a trial whose config names its own keeps it;
    # empty = each trial keeps its own in memory.
    frame_caches: Mapping[str, str] = field(default_factory=dict)

    def worst_objective(self) -> float:
        """The objective a diverged trial reports: finite (Optuna and ASHA take no NaN), worse than any real value."""
        return -1e12 if self.objective_mode == "max" else 1e12


def trial_config(context: TrialContext, trial_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's full flat config: its plan (ablation) or the baseline plus the suggested values (search)."""
    if trial_name in context.plans:
        flat = dict(context.plans[trial_name])
    else:
        from lwgan.study.space import config_values

        flat = {**context.baseline, **config_values(config)}
    for key, folder in context.frame_caches.items():
        if not flat.get(key):
            flat[key] = folder
    return flat


def _load_trainer(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def restore_checkpoint(out_dir: Path) -> bool:
    """Copy Tune's checkpoint into the trial folder when the folder has none (a retry on another node)."""
    from ray import tune

    from lwgan.train.checkpoint import PREVIOUS_NAME, checkpoint_files

    checkpoint = tune.get_checkpoint()
    local = out_dir / "checkpoints" / "last.pt"
    if checkpoint is None or checkpoint_files(local):
        return False
    with checkpoint.as_directory() as folder:
        sources = [Path(folder) / name for name in (local.name, PREVIOUS_NAME) if (Path(folder) / name).is_file()]
        if not sources:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        for src in sources:  # both generations: the Trainer falls back to prev.pt if last.pt is unreadable
            shutil.copy2(src, local.parent / src.name)
    return True


class TuneReporter:
    """Trainer callback: buffers every logged step and hands the buffered history to Tune (and so to
    MLflow) just before each checkpoint is written and at the end (``vocab.TuneKey.FINAL``). A report
    returns once the driver has recorded it, so the history up to a checkpoint is in MLflow before the
    checkpoint exists, and the steps after it, which a retry runs again, are not: each step is logged
    once. An eval's objective goes with the step's checkpoint, else at the next step (ASHA and the
    progress line see it at once); with no report for ``report_every_s`` seconds one without history
    keeps the progress line moving. Every report is a round trip (the trial waits while the driver
    writes MLflow and the state file), so there are few: 8 for a small-profile trial on a local Ray
    (14 with checkpoints copied to Tune), where reports every 10 steps made ~37."""

    def __init__(self, context: TrialContext, trial_name: str, out_dir: Path, clock=time.monotonic):
        self.context = context
        self.trial_name = trial_name
        self.out_dir = out_dir
        self.history: list[tuple[int, dict[str, float]]] = []
        self.last: dict[str, float] = {}
        self.info: dict[str, Any] | None = None
        self.objective_pending = False
        self.clock = clock
        self.last_report_t = clock()
        self.step = 0

    # -- Trainer callback hooks -------------------------------------------------------
    def on_start(self, info: dict[str, Any]) -> None:
        self.info = {k: info.get(k) for k in ("device", "precision", "precision_reason", "channels_last", "cuda_graphs", "dataset", "body_model", "backbones", "profile", "total_steps", "resumed_from_step",
                                             "checkpoint_fallback")}

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._maybe_crash(step)
        if self.objective_pending or self.clock() - self.last_report_t >= self.context.report_every_s:
            self._report()  # the previous step's eval had no checkpoint with it; or a progress report
        self.step = step
        self.history.append((step, dict(metrics)))
        self.last.update(metrics)
        if self.context.objective_metric in metrics:
            self.objective_pending = True

    def before_checkpoint(self, step: int) -> None:
        self.step = max(self.step, step)
        self._report(history=True)

    def on_checkpoint(self, step: int, path: Path) -> None:
        if not self.context.tune_checkpoints:
            return
        from ray import tune

        self.step = max(self.step, step)
        self._report(checkpoint=tune.Checkpoint.from_directory(str(Path(path).parent)))

    def on_end(self, result) -> None:
        self.step = result.step
        final = {K.FINAL: True, K.STATUS: result.status, K.ERROR: result.error or ""}
        if result.status == vocab.TrialStatus.DIVERGED:
            final[K.OBJECTIVE] = self.context.worst_objective()
        self._report(extra=final, history=True)

    # -- reporting --------------------------------------------------------------------
    def _objective(self) -> float | None:
        value = self.last.get(self.context.objective_metric)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def _report(self, checkpoint=None, extra: Mapping[str, Any] | None = None, history: bool = False) -> None:
        from ray import tune

        result: dict[str, Any] = {K.STEP: self.step, K.HISTORY: self.history if history else [], K.FINAL: False}
        objective = self._objective()
        if objective is not None:
            result[K.OBJECTIVE] = objective
        if self.info is not None:
            result[K.INFO] = self.info
            self.info = None
        result.update(extra or {})
        if history:
            self.history = []
        self.objective_pending = False
        self.last_report_t = self.clock()
        tune.report(result, checkpoint=checkpoint)

    def _maybe_crash(self, step: int) -> None:
        crash = next((c for c in self.context.crashes if c.trial_id == self.trial_name), None)
        if crash is None or step < crash.step:
            return
        markers = self.out_dir / CRASH_MARKERS
        done = len(markers.read_text().split()) if markers.is_file() else 0
        if done >= crash.times:
            return
        with markers.open("a") as fh:
            fh.write(f"{step}\n")
        raise InjectedCrash(f"injected crash {done + 1}/{crash.times} at step {step} (${CRASH_ENV})")


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Tune function trainable (wrapped with ``tune.with_parameters(run_trial, context=...)``)."""
    import torch
    from ray import tune

    from lwgan.config import TrainConfig

    torch.set_num_threads(max(1, int(context.threads)))
    trial_name = tune.get_context().get_trial_name()
    out_dir = Path(context.trials_dir) / trial_name
    out_dir.mkdir(parents=True, exist_ok=True)
    restore_checkpoint(out_dir)
    cfg = TrainConfig.from_flat(trial_config(context, trial_name, config))
    reporter = TuneReporter(context, trial_name, out_dir)
    trainer_cls = _load_trainer(context.trainer)
    try:
        trainer_cls(cfg, out_dir, callbacks=[reporter], progress=False, profile=context.profile).fit()
    finally:  # this actor runs the next trial: hand back what this one freed (lwgan/memory.py)
        from lwgan.memory import return_free_memory

        return_free_memory()
