"""A full disk during a study stops it with one message naming the file and the free space, and leaves
it resumable: nothing counts as failed, and `--resume` (once there is room) finishes it with every
step in MLflow once. Both ways a study meets it: the driver's own write (the SQLite store) and a
trial's checkpoint. The stand-in trainer (tests/test_study_stub.py) keeps these fast."""

import errno
import os

import pytest
from mlflow.tracking import MlflowClient

from lwgan.errors import DiskFullError
from lwgan.fsutil import free_mib, is_no_space
from lwgan.study.monitor import trial_disk_full
from lwgan.vocab import TrialStatus
from test_study_runner import STUB, children, env, load_state, run_args, study_file  # noqa: F401

SQLITE_FULL = "(sqlite3.OperationalError) database or disk is full\n[SQL: INSERT INTO metrics (key, value) VALUES (?, ?)]"


def test_no_space_is_told_from_other_failures(tmp_path):
    assert is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_no_space(RuntimeError(SQLITE_FULL))
    wrapped = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 512 vs 448")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_no_space(wrapped)  # found through the cause
    assert not is_no_space(RuntimeError("unexpected pos 512 vs 448"))  # torch's text alone does not say why
    assert not is_no_space(OSError(errno.EACCES, "Permission denied"))
    assert not is_no_space(ValueError("database is locked"))
    free = free_mib(tmp_path / "not" / "yet" / "there")  # the nearest existing folder's disk
    assert free is not None and free > 0


def test_a_trial_traceback_with_a_full_disk_reads_as_one_line():
    text = ("Traceback (most recent call last):\n  File \"trainable.py\", line 9, in run_trial\n"
            "lwgan.errors.DiskFullError: cannot write checkpoint /r/E1-s0/checkpoints/last.pt: its disk has 3 MiB free "
            "and a checkpoint takes ~71 MiB (OSError: [Errno 28] No space left on device); free space there (old runs "
            "under runs/, caches) and resume (`--resume`), or train into a folder on another disk\n")
    err = trial_disk_full("E1-s0", text)
    assert isinstance(err, DiskFullError)
    assert str(err) == ("trial E1-s0: cannot write checkpoint /r/E1-s0/checkpoints/last.pt: its disk has 3 MiB free and "
                        "a checkpoint takes ~71 MiB (OSError: [Errno 28] No space left on device)")
    assert trial_disk_full("E1-s0", "Traceback ...\nRuntimeError: CUDA error") is None
    assert trial_disk_full("E1-s0", None) is None


def _resume_completes_each_step_once(path, storage, uri, capsys):
    """With room again: `--resume` finishes every trial, and each trial's MLflow run has steps 1..12 once."""
    from lwgan.cli import main

    assert main(["run", str(path), "--resume", "--steps", "12", "--no-report", "--storage", str(storage),
                 "--set", "checkpoint_every=6", "--max-concurrent", "2"]) == 0, capsys.readouterr().err
    state = load_state(storage, "full")
    assert {r.state for r in state.trials.values()} == {TrialStatus.COMPLETED}
    client, runs = children(uri, state.parent_run_id)
    assert set(runs) == {"baseline-s0", "A-s0"}  # the same runs continued, none added
    for trial_id, run in runs.items():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/G_total")]
        assert sorted(steps) == list(range(1, 13)), (trial_id, sorted(steps))


@pytest.fixture()
def stub_cli(monkeypatch):
    import lwgan.study.commands as commands

    real = commands.command_run
    monkeypatch.setattr(commands, "command_run", lambda args, **kw: real(args, trainer=STUB))


def test_the_driver_store_filling_up_stops_the_study_resumably(env, tmp_path, monkeypatch, capsys, stub_cli):
    from mlflow.exceptions import MlflowException

    from lwgan.cli import main

    path = study_file(tmp_path, {"A": {"lr_G": 3e-4}}, name="full")
    storage = tmp_path / "runs"
    real_log_batch = MlflowClient.log_batch
    metric_batches = []

    def filling_up(self, run_id, metrics=(), *args, **kwargs):
        if metrics:
            metric_batches.append(run_id)
            if len(metric_batches) > 2:  # the disk fills after the first histories are in
                raise MlflowException(SQLITE_FULL)
        return real_log_batch(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", filling_up)
    code = main(["run", str(path), "--steps", "12", "--no-report", "--storage", str(storage),
                 "--set", "checkpoint_every=6", "--max-concurrent", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    db = env[len("sqlite:///"):]
    assert f"error: the study driver cannot write the MLflow store {db}: its disk has " in err
    assert "MiB free (MlflowException: (sqlite3.OperationalError) database or disk is full)" in err
    assert f"then finish it with `lwgan-study run {path} --resume --storage {storage}`" in err
    assert "Traceback" not in err and "TuneError" not in err
    state = load_state(storage, "full")
    assert TrialStatus.FAILED not in {r.state for r in state.trials.values()}  # nothing counted failed
    assert state.unfinished()  # the trial whose history found no room resumes

    monkeypatch.setattr(MlflowClient, "log_batch", real_log_batch)  # room again
    _resume_completes_each_step_once(path, storage, env, capsys)


def test_a_trial_checkpoint_on_a_full_disk_stops_the_study_resumably(env, tmp_path, monkeypatch, capsys, stub_cli):
    from lwgan.cli import main

    path = study_file(tmp_path, {"A": {"lr_G": 3e-4}}, name="full")
    storage = tmp_path / "runs"
    monkeypatch.setenv("LWGAN_STUB_DISK_FULL", "A-s0:6")  # A-s0's checkpoint at step 6 finds no room
    code = main(["run", str(path), "--steps", "12", "--no-report", "--storage", str(storage),
                 "--set", "checkpoint_every=6", "--max-concurrent", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error: trial A-s0: cannot write checkpoint " in err and "/A-s0/checkpoints/last.pt: its disk has " in err
    assert "No space left on device" in err and "retrying" not in err  # a retry would meet the same disk
    assert f"then finish it with `lwgan-study run {path} --resume --storage {storage}`" in err
    assert "Traceback" not in err and "TuneError" not in err
    state = load_state(storage, "full")
    assert state.trials["A-s0"].state == TrialStatus.RUNNING  # interrupted, not failed: --resume continues it
    assert not (state.path.parent / "trials" / "A-s0" / "checkpoints" / "last.pt").exists()  # it died at its first one

    monkeypatch.delenv("LWGAN_STUB_DISK_FULL")
    _resume_completes_each_step_once(path, storage, env, capsys)


def test_the_driver_out_of_space_anywhere_else_is_one_line_too(env, tmp_path, monkeypatch, capsys, stub_cli):
    from lwgan.cli import main
    from lwgan.study.state import StudyState

    path = study_file(tmp_path, {"A": {"lr_G": 3e-4}}, name="full")
    storage = tmp_path / "runs"

    def no_room(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(StudyState, "save", no_room)  # the state file, before anything starts
    code = main(["run", str(path), "--steps", "12", "--no-report", "--storage", str(storage)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"error: the study driver cannot write the study's files under {storage}: its disk has " in err
    assert " MiB free (OSError: [Errno 28] No space left on device). The study stopped: free space there" in err
    assert "Traceback" not in err
