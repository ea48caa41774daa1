"""Faults a user meets with files on disk: atomic writes (lwgan.fsutil), two checkpoint generations,
and ``train --resume`` after a truncated or zero-byte checkpoint (through the real CLI)."""

from __future__ import annotations

import json
import os
import stat
import zipfile

import pytest
import torch

from lwgan.cli import main
from lwgan.errors import DiskFullError, UserError
from lwgan.fsutil import atomic_write, folder_bytes, write_text_atomic
from lwgan.train.checkpoint import (
    CheckpointUnreadable,
    load_latest_checkpoint,
    previous_path,
    save_checkpoint,
    verify_checkpoint_file,
)


# --- lwgan.fsutil ---------------------------------------------------------------------

def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "state.json"
    write_text_atomic(target, "one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half of tw")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "one"  # untouched
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]  # no temp left behind
    write_text_atomic(target, "two")
    assert target.read_text() == "two"


def test_folder_bytes_counts_the_files_directly_in_a_folder(tmp_path):
    assert folder_bytes(tmp_path / "absent") == 0
    write_text_atomic(tmp_path / "a.pt", "x" * 10)
    write_text_atomic(tmp_path / "b.pt", "y" * 5)
    write_text_atomic(tmp_path / "sub" / "c.pt", "z" * 100)  # a sub-folder's files are not this folder's
    assert folder_bytes(tmp_path) == 15


def test_atomic_write_honours_the_umask_and_syncs(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    # The temporary file, then the folder holding the renamed file.
    assert len(synced) == 2 and synced[0].endswith(".tmp") and synced[1] == str(tmp_path)


# --- checkpoint generations -----------------------------------------------------------

def test_save_rotates_last_to_prev_after_a_verified_write(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    assert not previous_path(path).exists()
    save_checkpoint(path, {"step": 2, "w": torch.ones(3) * 2})
    assert torch.load(path, weights_only=True)["step"] == 2
    assert torch.load(previous_path(path), weights_only=True)["step"] == 1
    save_checkpoint(path, {"step": 3})
    assert torch.load(previous_path(path), weights_only=True)["step"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "prev.pt"]


def test_a_write_that_fails_verification_rotates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    real_save = torch.save

    def truncating_save(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)

    monkeypatch.setattr(torch, "save", truncating_save)
    with pytest.raises(CheckpointUnreadable, match="BadZipFile"):
        save_checkpoint(path, {"step": 2})
    assert torch.load(path, weights_only=True)["step"] == 1  # last.pt still the good one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 8007360 vs 8007248"  # as torch says it


def _disk(monkeypatch, free_bytes):
    import shutil as real

    usage = real.disk_usage("/")
    monkeypatch.setattr("lwgan.fsutil.shutil.disk_usage", lambda p: usage._replace(free=free_bytes))


def _failing_save(monkeypatch, err):
    def save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK partial")
        raise err

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_is_a_user_error_naming_the_file_and_the_space(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(4096)})
    size = path.stat().st_size
    _disk(monkeypatch, size // 2)  # less room than the last checkpoint took
    _failing_save(monkeypatch, RuntimeError(TORCH_DISK_FULL))
    with pytest.raises(UserError, match=r"cannot write checkpoint .*last\.pt: its disk has 0 MiB free .*unexpected pos 8007360") as err:
        save_checkpoint(path, {"step": 2})
    assert "--resume" in str(err.value) and isinstance(err.value.__cause__, RuntimeError)
    assert isinstance(err.value, DiskFullError)  # what a study's driver recognises in a trial's traceback
    assert torch.load(path, weights_only=True)["step"] == 1  # last.pt untouched, no temporary file left
    assert sorted(q.name for q in path.parent.iterdir()) == ["last.pt"]
    _failing_save(monkeypatch, OSError(28, "No space left on device"))  # the OS says so: whatever the free space
    _disk(monkeypatch, 10 * 2**30)
    with pytest.raises(UserError, match="its disk has 10240 MiB free"):
        save_checkpoint(path, {"step": 2})


def test_other_write_failures_are_not_called_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    _disk(monkeypatch, 10 * 2**30)
    _failing_save(monkeypatch, RuntimeError("some other torch failure"))
    with pytest.raises(RuntimeError, match="some other torch failure"):
        save_checkpoint(path, {"step": 2})
    _failing_save(monkeypatch, PermissionError(13, "Permission denied"))
    with pytest.raises(PermissionError):
        save_checkpoint(path, {"step": 2})
    assert torch.load(path, weights_only=True)["step"] == 1


def test_verify_catches_a_flipped_byte(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.arange(4096, dtype=torch.float32)})
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.file_size > 1000)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # local header, then the data
    data[start + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointUnreadable, match="CRC"):
        verify_checkpoint_file(path)


@pytest.mark.parametrize("damage", ["truncated", "zero-byte"])
def test_load_falls_back_to_prev_with_one_line(tmp_path, damage):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 2})
    save_checkpoint(path, {"step": 4})
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 3 if damage == "truncated" else 0)
    loaded = load_latest_checkpoint(path)
    assert loaded.payload["step"] == 2 and loaded.path == previous_path(path)
    assert "\n" not in loaded.fallback and str(path) in loaded.fallback and str(previous_path(path)) in loaded.fallback
    assert ("zero bytes" in loaded.fallback) == (damage == "zero-byte")


def test_no_readable_checkpoint_is_a_user_error_with_the_way_out(tmp_path):
    assert load_latest_checkpoint(tmp_path / "last.pt") is None  # nothing yet: a fresh run
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "prev.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError) as err:
        load_latest_checkpoint(tmp_path / "last.pt")
    msg = str(err.value)
    assert str(tmp_path / "last.pt") in msg and str(tmp_path / "prev.pt") in msg and "--out" in msg


def test_only_prev_left_after_a_crash_between_the_renames(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 2})
    save_checkpoint(path, {"step": 4})
    path.unlink()  # a crash after last.pt -> prev.pt, before the new file took its place
    loaded = load_latest_checkpoint(path)
    assert loaded.payload["step"] == 2 and loaded.fallback is None


# --- through the CLI ------------------------------------------------------------------

def test_train_resume_after_truncated_then_zero_byte_checkpoints(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LWGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    base = ["train", "--profile", "tiny", "--out", str(out), "--set", "checkpoint_every=2"]
    assert main(base + ["--steps", "4"]) == 0
    last, prev = out / "checkpoints" / "last.pt", out / "checkpoints" / "prev.pt"
    assert torch.load(last, weights_only=True)["step"] == 4 and torch.load(prev, weights_only=True)["step"] == 2
    capsys.readouterr()

    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a copy cut short
    assert main(base + ["--steps", "6", "--resume"]) == 0
    captured = capsys.readouterr()
    warning = [ln for ln in captured.err.splitlines() if "unreadable" in ln]
    assert len(warning) == 1 and str(last) in warning[0] and str(prev) in warning[0] and "step 2" in warning[0]
    assert "status completed | steps 6" in captured.out
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # steps 3-4 rerun once, not duplicated

    last.write_bytes(b"")
    prev.write_bytes(b"")
    assert main(base + ["--steps", "8", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no readable checkpoint" in err and str(last) in err and "--out" in err
