"""TuneReporter: what a trial hands Tune, and when (few round trips, each step's history once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lwgan import vocab
from lwgan.study import trainable
from lwgan.study.trainable import TrialContext, TuneReporter
from lwgan.train.callbacks import TrainResult

K = vocab.TuneKey


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def reports(monkeypatch):
    """Every tune.report call as (result, checkpoint folder or None)."""
    seen: list[tuple[dict, Path | None]] = []
    monkeypatch.setattr("ray.tune.report", lambda result, checkpoint=None: seen.append(
        (dict(result), Path(checkpoint.path) if checkpoint is not None else None)))
    return seen


def _context(tmp_path, **kw) -> TrialContext:
    return TrialContext(str(tmp_path), {}, {}, vocab.EVAL_SSIM, "max", **kw)


def _train(reporter: TuneReporter, out: Path, total: int, eval_every: int, checkpoint_every: int, clock: Clock | None = None,
           step_s: float = 0.4) -> None:
    """The Trainer's callback order: step 0's eval, then per step metrics (+ eval), checkpoint, and the end."""
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    reporter.on_start({"device": "cpu", "total_steps": total})
    reporter.on_metrics(0, {vocab.EVAL_SSIM: 0.0})
    for step in range(1, total + 1):
        if clock is not None:
            clock.now += step_s
        metrics = {vocab.G_TOTAL: 10.0 / step}
        if step % eval_every == 0 or step == total:
            metrics[vocab.EVAL_SSIM] = step / 1000
        reporter.on_metrics(step, metrics)
        if step % checkpoint_every == 0 or step == total:
            reporter.before_checkpoint(step)
            ckpt.write_text(json.dumps({"step": step}))
            reporter.on_checkpoint(step, ckpt)
    reporter.on_end(TrainResult(vocab.TrialStatus.COMPLETED, total, {}, None, str(out)))


def _logged_steps(seen) -> list[int]:
    return [step for result, _ in seen for step, _ in result[K.HISTORY]]


def test_small_profile_trial_reports_eight_times_and_each_step_once(tmp_path, reports):
    out = tmp_path / "trial"
    _train(TuneReporter(_context(tmp_path, tune_checkpoints=False), "t0", out, clock=Clock()), out, 300, 50, 50)
    # step 0's eval at step 1 (with the run info), the history before each of the 6 checkpoints, the end
    assert len(reports) == 8 and all(folder is None for _, folder in reports)
    assert _logged_steps(reports) == list(range(0, 301))
    first, _ = reports[0]
    assert first[K.STEP] == 0 and first[K.OBJECTIVE] == 0.0 and first[K.INFO]["total_steps"] == 300 and first[K.HISTORY] == []
    for result, _ in reports[1:7]:
        assert result[K.HISTORY][-1][0] == result[K.STEP] and result[K.STEP] % 50 == 0
        assert result[K.OBJECTIVE] == pytest.approx(result[K.STEP] / 1000)  # the eval rides with its checkpoint's history
    final, _ = reports[-1]
    assert final[K.FINAL] and final[K.STATUS] == vocab.TrialStatus.COMPLETED and final[K.HISTORY] == []


def test_checkpoints_copied_to_tune_come_after_their_history(tmp_path, reports):
    """With Tune's copy (a cluster) each checkpoint is a second report, after the one with the history:
    the history up to a checkpoint is recorded before the checkpoint exists."""
    out = tmp_path / "trial"
    _train(TuneReporter(_context(tmp_path), "t0", out, clock=Clock()), out, 300, 50, 50)
    assert len(reports) == 14
    copies = [i for i, (_, folder) in enumerate(reports) if folder is not None]
    assert [reports[i][0][K.STEP] for i in copies] == [50, 100, 150, 200, 250, 300]
    for i in copies:
        assert reports[i][1] == out / "checkpoints" and reports[i][0][K.HISTORY] == []
        assert reports[i - 1][0][K.HISTORY][-1][0] == reports[i][0][K.STEP]
    assert _logged_steps(reports) == list(range(0, 301))


def test_only_checkpoints_and_the_end_carry_history(tmp_path, reports):
    """Evals between checkpoints reach Tune at the next step, without history: a retry resumes from the
    last checkpoint, so steps after it must not be in MLflow yet."""
    out = tmp_path / "trial"
    _train(TuneReporter(_context(tmp_path), "t0", out, clock=Clock()), out, 100, 20, 50)
    with_history = [r[K.STEP] for r, _ in reports if r[K.HISTORY]]
    assert with_history == [50, 100]
    evals = [(r[K.STEP], r[K.OBJECTIVE]) for r, folder in reports if folder is None and not r[K.FINAL] and not r[K.HISTORY]]
    assert evals == [(0, 0.0), (20, 0.02), (40, 0.04), (60, 0.06), (80, 0.08)]
    assert _logged_steps(reports) == list(range(0, 101))


def test_a_crash_between_checkpoints_leaves_nothing_to_log_twice(tmp_path, reports):
    """Steps 51-64 ran, then the trial died: none reached Tune, so the retry from step 50 logs them once."""
    out = tmp_path / "trial"
    reporter = TuneReporter(_context(tmp_path), "t0", out, clock=Clock())
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    reporter.on_metrics(0, {vocab.EVAL_SSIM: 0.0})
    for step in range(1, 65):  # then the process dies: no on_end
        reporter.on_metrics(step, {vocab.G_TOTAL: 1.0, **({vocab.EVAL_SSIM: 0.1} if step % 50 == 0 else {})})
        if step % 50 == 0:
            reporter.before_checkpoint(step)
            ckpt.write_text("{}")
            reporter.on_checkpoint(step, ckpt)
    assert _logged_steps(reports) == list(range(0, 51))


def test_a_progress_report_after_report_every_s_without_one(tmp_path, reports):
    out = tmp_path / "trial"
    clock = Clock()
    _train(TuneReporter(_context(tmp_path, report_every_s=30.0), "t0", out, clock=clock), out, 200, 200, 200, clock, step_s=1.0)
    progress = [r[K.STEP] for r, folder in reports if folder is None and not r[K.FINAL] and not r[K.HISTORY]]
    # step 0's eval at step 1, then one every 30 s (30 steps at 1 s a step)
    assert progress == [0, 30, 60, 90, 120, 150, 180]
    assert [r[K.STEP] for r, _ in reports if r[K.HISTORY]] == [200]  # the history before the one checkpoint
    assert _logged_steps(reports) == list(range(0, 201))


class _TuneCheckpoint:
    def __init__(self, folder: Path):
        self.folder = folder

    def as_directory(self):
        import contextlib

        return contextlib.nullcontext(str(self.folder))


def _restore(monkeypatch, tune_folder: Path | None, out: Path) -> bool:
    monkeypatch.setattr("ray.tune.get_checkpoint", lambda: None if tune_folder is None else _TuneCheckpoint(tune_folder))
    return trainable.restore_checkpoint(out)


def test_restore_copies_tunes_checkpoint_only_into_a_folder_without_one(tmp_path, monkeypatch):
    copied = tmp_path / "tune_copy"
    copied.mkdir()
    (copied / "last.pt").write_bytes(b"L")
    (copied / "prev.pt").write_bytes(b"P")
    out = tmp_path / "retry_elsewhere"
    assert _restore(monkeypatch, copied, out) is True  # a retry on another node: both generations copied
    assert (out / "checkpoints" / "last.pt").read_bytes() == b"L" and (out / "checkpoints" / "prev.pt").read_bytes() == b"P"
    (copied / "last.pt").write_bytes(b"newer elsewhere")
    assert _restore(monkeypatch, copied, out) is False  # the folder has one: the Trainer resumes from it
    assert (out / "checkpoints" / "last.pt").read_bytes() == b"L"
    assert _restore(monkeypatch, None, tmp_path / "fresh") is False  # a first attempt
